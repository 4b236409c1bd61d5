#!/usr/bin/env python3
"""Writes the DINOv2 and MVC-filter parity fixtures (run: make fixtures, or this script from the repo root).

tests/fixtures/models/dinov2       a tiny random Dinov2Model (random layer scales, biases, norms), weights in the
                                   Hub key layout (encoder.layer.N.attention.attention.query, ...); inputs at the
                                   pretraining grid (28 px, patches of 7: no interpolation) and at 42 px (6 x 6,
                                   bicubic up) and 21 px (3 x 3, bicubic down) where transformers interpolates the
                                   position embeddings; last_hidden_state and pooler_output of each, and
                                   every parameter's gradient of sum(pooler_output * dpooled) (grad_<px>.<name>)
tests/fixtures/models/dinov2_reg   Dinov2WithRegistersModel with 2 register tokens, weights under transformers 5's
                                   in-memory names (attention.q_proj, ...); 28 px and 35 px (antialiased bicubic);
                                   outputs and gradients as above
tests/fixtures/mvc_filter/         a few image pairs (PNG, made here) with a tiny SigLIP vision model (with its head)
                                   and a tiny DINOv2, each with its preprocessor_config.json (SiglipImageProcessor;
                                   dinov2's BitImageProcessor: shortest edge, center crop, ImageNet mean/std);
                                   expected.json: both encoders' image-image cosines per pair, from the PIL image
                                   processors and the models' pooler_output, as the released MVC filter describes
                                   (SigLIP similarity > 0.7, DINOv2 similarity < 0.5; s-vco README.md line 35)
Also stored: torch's bicubic interpolate of random planes (interp.safetensors), both with and without antialias.
Requires torch, transformers (>= 5: BitImageProcessorPil) and Pillow.
"""
import json
import os
import shutil
import zlib

import numpy as np
import torch
from PIL import Image
from safetensors.torch import save_file
from transformers import (BitImageProcessorPil, Dinov2Config, Dinov2Model, Dinov2WithRegistersConfig,
                          Dinov2WithRegistersModel, SiglipImageProcessorPil, SiglipVisionConfig, SiglipVisionModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")

# transformers 5's in-memory names -> the Hub's (facebook/dinov2-large's model.safetensors)
HUB_NAMES = [("attention.q_proj", "attention.attention.query"), ("attention.k_proj", "attention.attention.key"),
             ("attention.v_proj", "attention.attention.value"), ("attention.o_proj", "attention.output.dense")]


def randomize(model, scale=0.2):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ("norm" in name and name.endswith("weight")) or "lambda1" in name:
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            else:
                p.copy_(scale * torch.randn_like(p))


def write_model(path, model, hub_names, preprocessor=None):
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    model.config.save_pretrained(path)
    sd = {hub_name(k, hub_names): v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    if preprocessor:
        with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
            json.dump(preprocessor, f, indent=2)


def hub_name(name, hub_names):
    if hub_names:
        for new, old in HUB_NAMES:
            name = name.replace(new, old)
    return name


def dinov2_fixture(name, cls, cfg, sizes, hub_names):
    torch.manual_seed(zlib.crc32(name.encode()))
    model = cls(cfg).float()
    randomize(model)
    model.eval()
    tensors = {}
    # the loss weights come from their own generator, so the models and pixels stay those of the fixtures before
    gen = torch.Generator().manual_seed(zlib.crc32((name + "/dpooled").encode()))
    for s in sizes:
        px = torch.randn(2, 3, s, s)
        model.zero_grad()
        out = model(pixel_values=px)
        # a loss on the image embedding (pooler_output, the class token after the final LayerNorm): a fixed random
        # weighting, so every parameter's gradient is that of sum(pooler_output * dpooled)
        dpooled = torch.randn(out.pooler_output.shape, generator=gen)
        loss = (out.pooler_output * dpooled).sum()
        loss.backward()
        tensors[f"pixel_values_{s}"] = px
        tensors[f"last_hidden_state_{s}"] = out.last_hidden_state.detach()
        tensors[f"pooler_output_{s}"] = out.pooler_output.detach()
        tensors[f"dpooled_{s}"] = dpooled
        tensors[f"loss_{s}"] = loss.detach().double().reshape(1)
        for pname, p in model.named_parameters():
            if p.grad is not None:  # embeddings.mask_token is only read with bool_masked_pos
                tensors[f"grad_{s}." + hub_name(pname, hub_names)] = p.grad.detach().clone()
    path = os.path.join(ROOT, "models", name)
    write_model(path, model, hub_names)
    save_file({k: v.contiguous() if k.startswith("loss") else v.contiguous().float() for k, v in tensors.items()},
              os.path.join(path, "expected.safetensors"))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, sizes {sizes}")


def interp_fixture():
    torch.manual_seed(5)
    t = {}
    src = torch.randn(1, 3, 5, 5)
    t["src"] = src[0]
    for h, w in ((3, 3), (8, 8), (2, 7), (11, 4), (5, 5)):
        for aa in (0, 1):
            t[f"out_{h}x{w}_aa{aa}"] = torch.nn.functional.interpolate(src, size=(h, w), mode="bicubic",
                                                                       align_corners=False, antialias=bool(aa))[0]
    save_file({k: v.contiguous() for k, v in t.items()}, os.path.join(ROOT, "models", "dinov2", "interp.safetensors"))


def make_pair_images(path):
    """Six small RGB scenes: pairs that differ a little (one shape moved or recoloured) and pairs that differ a lot."""
    rng = np.random.default_rng(7)
    base = (rng.random((40, 52, 3)) * 60 + 100).astype(np.uint8)
    imgs = {}
    a = base.copy(); a[8:20, 10:24] = (220, 30, 30); imgs["a.png"] = a
    b = base.copy(); b[8:20, 12:26] = (220, 30, 30); imgs["b.png"] = b            # a, moved by 2 px
    c = base.copy(); c[8:20, 10:24] = (30, 30, 220); imgs["c.png"] = c            # a, recoloured
    d = (rng.random((47, 36, 3)) * 255).astype(np.uint8); imgs["d.png"] = d      # noise, portrait
    e = np.full((33, 33, 3), 240, np.uint8); e[5:28, 5:28] = (10, 120, 10); imgs["e.png"] = e
    f = 255 - a; imgs["f.png"] = f
    for n, x in imgs.items():
        Image.fromarray(x).save(os.path.join(path, n))
    return [("a.png", "b.png"), ("a.png", "c.png"), ("a.png", "d.png"), ("e.png", "f.png"), ("c.png", "c.png"),
            ("d.png", "e.png")]


def mvc_filter_fixture():
    path = os.path.join(ROOT, "mvc_filter")
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(os.path.join(path, "images"))
    pairs = make_pair_images(os.path.join(path, "images"))
    torch.manual_seed(99)
    sig = SiglipVisionModel(SiglipVisionConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                                               num_attention_heads=4, image_size=30, patch_size=6,
                                               vision_use_head=True)).float()
    randomize(sig, 0.1)
    sig.eval()
    sig_pp = {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
              "image_std": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor", "resample": 3,
              "rescale_factor": 0.00392156862745098, "size": {"height": 30, "width": 30}}
    dino = Dinov2Model(Dinov2Config(hidden_size=32, mlp_ratio=2, num_hidden_layers=2, num_attention_heads=4,
                                    image_size=35, patch_size=7)).float()
    randomize(dino, 0.1)
    dino.eval()
    # facebook/dinov2-large's preprocessor_config.json at a smaller scale: shortest edge 32, crop 28 (a 4 x 4 grid
    # against the 5 x 5 pretraining grid, so the position embeddings are interpolated, as 224 vs 518 px are)
    dino_pp = {"crop_size": {"height": 28, "width": 28}, "do_center_crop": True, "do_convert_rgb": True,
               "do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.485, 0.456, 0.406],
               "image_processor_type": "BitImageProcessor", "image_std": [0.229, 0.224, 0.225], "resample": 3,
               "rescale_factor": 0.00392156862745098, "size": {"shortest_edge": 32}}
    write_model(os.path.join(path, "siglip"), sig, False, sig_pp)
    # the Hub's SiglipVisionModel files name the tower vision_model.*
    from safetensors.torch import load_file
    sd = load_file(os.path.join(path, "siglip", "model.safetensors"))
    save_file({"vision_model." + k: v for k, v in sd.items()}, os.path.join(path, "siglip", "model.safetensors"),
              metadata={"format": "pt"})
    write_model(os.path.join(path, "dinov2"), dino, True, dino_pp)
    sp = SiglipImageProcessorPil(**{k: v for k, v in sig_pp.items() if k != "image_processor_type"})
    dp = BitImageProcessorPil(**{k: v for k, v in dino_pp.items() if k != "image_processor_type"})

    def embed(model, proc, name):
        im = Image.open(os.path.join(path, "images", name)).convert("RGB")
        px = proc(images=im, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            e = model(pixel_values=px).pooler_output[0]
        return e / e.norm(), px

    records, expected = [], []
    pix = {}
    for i, (x, y) in enumerate(pairs):
        es, px_s = embed(sig, sp, x)
        es2, _ = embed(sig, sp, y)
        ed, px_d = embed(dino, dp, x)
        ed2, _ = embed(dino, dp, y)
        pix[f"siglip_{x}"], pix[f"dinov2_{x}"] = px_s[0], px_d[0]
        records.append({"id": i, "system_prompt": "s", "instruction_prompt": f"q{i}", "chosen_response": f"yes {i}",
                        "rejected_response": f"no {i}", "chosen_images": ["images/" + x],
                        "rejected_images": ["images/" + y]})
        expected.append({"siglip_cosine": float(es @ es2), "dinov2_cosine": float(ed @ ed2)})
    with open(os.path.join(path, "mvc.json"), "w") as f:
        json.dump(records, f, indent=1)
    with open(os.path.join(path, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    save_file({k: v.contiguous() for k, v in pix.items()}, os.path.join(path, "pixels.safetensors"))
    for e in expected:
        print(f"mvc_filter: siglip {e['siglip_cosine']:.4f} dinov2 {e['dinov2_cosine']:.4f}")


def main():
    d = Dinov2Config(hidden_size=32, mlp_ratio=3, num_hidden_layers=2, num_attention_heads=4, image_size=28,
                     patch_size=7, layer_norm_eps=1e-6)
    dinov2_fixture("dinov2", Dinov2Model, d, (28, 42, 21), True)
    r = Dinov2WithRegistersConfig(hidden_size=32, mlp_ratio=2, num_hidden_layers=2, num_attention_heads=2,
                                  image_size=28, patch_size=7, num_register_tokens=2)
    dinov2_fixture("dinov2_reg", Dinov2WithRegistersModel, r, (28, 35), False)
    interp_fixture()
    mvc_filter_fixture()


if __name__ == "__main__":
    main()
