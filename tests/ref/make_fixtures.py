#!/usr/bin/env python3
"""Writes the transformers parity fixtures of tests/fixtures/models/ (run: make fixtures).

Each fixture folder holds a tiny random model in Hugging Face format (config.json, model.safetensors,
preprocessor_config.json) and expected.safetensors with its inputs and transformers' outputs in fp32:
logits, per-row response log-probs, the loss and the gradient of every parameter. The C tests load the
model with our loader, run the same inputs on the CPU backend and compare (relative error <= 1e-4).

Fixtures:
  llava_gqa     grouped-query attention, feature layer -2, "default" strategy (class token dropped),
                written in the transformers 4.52+ key layout (model.vision_tower.vision_model.*), rope_parameters
  llava_full    feature layer 1, "full" strategy, attention and MLP biases, tied embeddings, written in the
                Hub key layout of llava-hf (language_model.model.*) with an old-style config (rope_theta)
  clip          CLIPModel: embeddings, logits, contrastive loss, gradients
  llava_siglip_qwen2       a SigLIP tower (no head, as LLaVA-Interleave's) and a Qwen2 decoder (q/k/v biases, GQA,
                           rope_theta 1e6, untied head): feature layer -1, "full" strategy; SigLIP preprocessing
  llava_siglip_qwen2_tied  the same kinds with the tower's pooling head present (unused by LLaVA), feature layer -2,
                           "full", embeddings tied by the top-level tie_word_embeddings only, the Hub key layout and an
                           old-style config
  siglip_vision SiglipVisionModel with its attention-pooling head, 30 px images in patches of 7 (the pixels past
                the last whole patch unused): last_hidden_state, pooler_output and the gradient of every parameter
                for a loss on both
  optim         torch.optim.AdamW steps and clip_grad_norm_ on random tensors
Generation (`vlm sample`): llava_gqa, llava_full, llava_tok and llava_siglip_qwen2 also get generate_records.jsonl and
generate_expected.jsonl, transformers' greedy generate on id records (llava_gqa, llava_full) and on text
records through the vicuna_v1 template (llava_tok, with the decoded text). The images are llava_gqa's.
Requires torch and transformers (CPU wheels are enough). `make_fixtures.py NAME...` writes only the named
fixtures (each draws from its own seeds, so the others do not change).
"""
import json
import os
import shutil
import sys
import zlib

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import (CLIPConfig, CLIPModel, LlavaConfig, LlavaForConditionalGeneration, SiglipVisionConfig,
                          SiglipVisionModel)

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "fixtures")
torch.manual_seed(1234)
np.random.seed(1234)


def randomize(model, scale=0.2):
    """Random weights everywhere, norm weights around 1 and nonzero biases, so no term hides."""
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name and name.endswith("weight"):
                p.copy_(1.0 + 0.3 * torch.randn_like(p))
            elif "logit_scale" in name:
                p.fill_(2.3)
            else:
                p.copy_(scale * torch.randn_like(p))


def is_siglip(cfg):
    """Whether a LlavaConfig's tower is SigLIP's (its preprocessing is SiglipImageProcessor's)."""
    return cfg.vision_config.model_type == "siglip_vision_model"


def preprocessor_config(size, siglip=False):
    if siglip:  # SiglipImageProcessor: resize to the square, no crop, mean = std = 0.5
        return {"do_normalize": True, "do_rescale": True, "do_resize": True, "image_mean": [0.5, 0.5, 0.5],
                "image_std": [0.5, 0.5, 0.5], "image_processor_type": "SiglipImageProcessor", "resample": 3,
                "rescale_factor": 0.00392156862745098, "size": {"height": size, "width": size}}
    return {
        "crop_size": {"height": size, "width": size}, "do_center_crop": True, "do_convert_rgb": True,
        "do_normalize": True, "do_rescale": True, "do_resize": True,
        "image_mean": [0.48145466, 0.4578275, 0.40821073], "image_std": [0.26862954, 0.26130258, 0.27577711],
        "image_processor_type": "CLIPImageProcessor", "resample": 3, "rescale_factor": 0.00392156862745098,
        "size": {"shortest_edge": size},
    }


LAYOUTS = {
    # transformers 4.52+ save_pretrained
    "new": {"vision": "model.vision_tower.vision_model.", "projector": "model.multi_modal_projector.",
            "language": "model.language_model.", "head": "lm_head."},
    # llava-hf files on the Hub (and transformers before 4.52)
    "hub": {"vision": "vision_tower.vision_model.", "projector": "multi_modal_projector.",
            "language": "language_model.model.", "head": "language_model.lm_head."},
}


def canonical_parts(name):
    """Splits an in-memory LLaVA parameter name into (part, rest), whatever the transformers version."""
    for part, prefixes in (("vision", ("model.vision_tower.vision_model.", "model.vision_tower.", "vision_tower.vision_model.", "vision_tower.")),
                           ("projector", ("model.multi_modal_projector.", "multi_modal_projector.")),
                           ("language", ("model.language_model.", "language_model.model.")),
                           ("head", ("lm_head.", "language_model.lm_head."))):
        for pre in prefixes:
            if name.startswith(pre):
                return part, name[len(pre):]
    raise ValueError(name)


def llava_key(name, layout):
    part, rest = canonical_parts(name)
    return LAYOUTS[layout][part] + rest


def write_dir(path, model, tensors, layout=None, config_edit=None, image_size=None, siglip=False):
    """config.json from transformers; weights written by us in the chosen key layout (LLaVA) or as named."""
    if os.path.exists(path):
        shutil.rmtree(path)
    os.makedirs(path)
    model.config.save_pretrained(path)
    sd, seen = {}, set()
    for k, v in model.state_dict().items():
        if v.data_ptr() in seen:  # tied weights are stored once, as transformers does
            continue
        seen.add(v.data_ptr())
        sd[llava_key(k, layout) if layout else k] = v.detach().contiguous()
    save_file(sd, os.path.join(path, "model.safetensors"), metadata={"format": "pt"})
    if config_edit:
        with open(os.path.join(path, "config.json")) as f:
            cfg = json.load(f)
        config_edit(cfg)
        with open(os.path.join(path, "config.json"), "w") as f:
            json.dump(cfg, f, indent=2, sort_keys=True)
    if image_size:
        with open(os.path.join(path, "preprocessor_config.json"), "w") as f:
            json.dump(preprocessor_config(image_size, siglip), f, indent=2)
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous() for k, v in tensors.items()},
              os.path.join(path, "expected.safetensors"))


def llava_rows(cfg, n_rows_spec, vocab, img_id):
    """Builds rows: (ids, labels, image index). Prompt ids, image tokens, then a response with labels."""
    P = cfg.image_seq_length
    rows = []
    for img, n_before, n_after, n_resp in n_rows_spec:
        before = [1] + list(np.random.randint(3, img_id, size=n_before))
        image = [img_id] * P if img >= 0 else []
        after = list(np.random.randint(3, img_id, size=n_after))
        resp = list(np.random.randint(3, img_id, size=n_resp)) + [2]
        ids = before + image + after + resp
        labels = [-100] * (len(ids) - len(resp)) + resp
        rows.append((ids, labels, img))
    return rows


def llava_fixture(name, cfg, layout, config_edit=None):
    torch.manual_seed(zlib.crc32(name.encode()))
    np.random.seed(zlib.crc32(name.encode()) % 2**31)
    model = LlavaForConditionalGeneration(cfg).float()
    randomize(model)
    model.eval()
    S = cfg.vision_config.image_size
    n_images = 2
    pixels = torch.randn(n_images, 3, S, S)
    # rows: image 0, image 1, image-free, image 0 again (a shared image), with different lengths
    spec = [(0, 3, 4, 5), (1, 2, 6, 3), (-1, 4, 3, 4), (0, 2, 2, 6)]
    rows = llava_rows(cfg, spec, cfg.text_config.vocab_size, cfg.image_token_index)
    B, T = len(rows), max(len(r[0]) for r in rows)
    V = cfg.text_config.vocab_size
    ids = torch.zeros(B, T, dtype=torch.int32)
    labels = torch.full((B, T), -100, dtype=torch.int32)
    lengths = torch.zeros(B, dtype=torch.int32)
    image_of_row = torch.tensor([r[2] for r in rows], dtype=torch.int32)
    logits_all = torch.zeros(B, T, V)
    row_logp = torch.zeros(B, dtype=torch.float64)
    n_label = sum(sum(1 for x in r[1][1:] if x != -100) for r in rows)
    model.zero_grad()
    total_loss = 0.0
    for b, (row_ids, row_labels, img) in enumerate(rows):
        L = len(row_ids)
        ids[b, :L] = torch.tensor(row_ids)
        labels[b, :L] = torch.tensor(row_labels)
        lengths[b] = L
        kw = {}
        if img >= 0:
            kw["pixel_values"] = pixels[img:img + 1]
        out = model(input_ids=torch.tensor([row_ids]), **kw)
        logits = out.logits[0].float()  # (L, V)
        logits_all[b, :L] = logits.detach()
        lab = torch.tensor(row_labels[1:])
        logp = torch.log_softmax(logits[:-1].double(), dim=-1)
        mask = lab != -100
        tok = logp[torch.arange(L - 1)[mask], lab[mask]]
        row_logp[b] = tok.sum().detach()
        # loss = mean cross-entropy over every label token of the batch (what SFT minimizes)
        loss = -torch.log_softmax(logits[:-1], dim=-1)[torch.arange(L - 1)[mask], lab[mask]].sum() / n_label
        loss.backward()
        total_loss += loss.item()
    tensors = {"input_ids": ids, "labels": labels, "lengths": lengths, "image_of_row": image_of_row,
               "pixel_values": pixels, "logits": logits_all, "row_logp": row_logp,
               "loss": torch.tensor(total_loss, dtype=torch.float64)}
    for pname, p in model.named_parameters():
        if p.grad is not None:  # layers past the feature layer get none: they are never computed
            tensors["grad." + llava_key(pname, "new")] = p.grad.detach().clone()
    write_dir(os.path.join(ROOT, "models", name), model, tensors, layout=layout, config_edit=config_edit,
              image_size=S, siglip=is_siglip(cfg))
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, B={B} T={T}, loss {total_loss:.6f}")
    return model


def image_processor(size, siglip=False):
    try:  # transformers >= 5: the PIL-backed processor is a separate class
        from transformers import CLIPImageProcessorPil as Clip, SiglipImageProcessorPil as Siglip
    except ImportError:
        from transformers import CLIPImageProcessor as Clip, SiglipImageProcessor as Siglip
    Proc = Siglip if siglip else Clip
    cfg = preprocessor_config(size, siglip)
    cfg.pop("image_processor_type")
    return Proc(**cfg)


def logprobs_fixture(name, model, cfg):
    """`vlm logprobs` inputs and outputs: PNG images, id records in every accepted form, and the summed
    response log-probs transformers computes from the same files (its own PIL preprocessing included)."""
    from PIL import Image
    d = os.path.join(ROOT, "models", name)
    rng = np.random.RandomState(5)
    S, P, img_id, V = cfg.vision_config.image_size, cfg.image_seq_length, cfg.image_token_index, cfg.text_config.vocab_size
    os.makedirs(os.path.join(d, "images"), exist_ok=True)
    sizes = {"a.png": (S, S), "b.png": (S + 13, S + 5), "gray.png": (S + 2, S + 9)}  # b, gray: resize + crop
    for fname, (w, h) in sizes.items():
        arr = rng.randint(0, 256, size=(h, w, 3)).astype(np.uint8)
        im = Image.fromarray(arr).convert("L") if fname == "gray.png" else Image.fromarray(arr)
        im.save(os.path.join(d, "images", fname))
    proc = image_processor(S, is_siglip(cfg))
    records, results = [], []
    specs = [("a.png", "once"), ("b.png", "expanded"), (None, None), ("a.png", "once"), ("gray.png", "once")]
    for i, (img, form) in enumerate(specs):
        prompt = [1] + list(rng.randint(3, img_id, size=3 + i))
        resp = list(rng.randint(3, img_id, size=2 + i % 3)) + [2]
        rec = {}
        if img:
            rec["image"] = "images/" + img
            prompt_ids = prompt[:2] + [img_id] * (1 if form == "once" else P) + prompt[2:]
        else:
            prompt_ids = prompt
        rec["input_ids"] = [int(x) for x in prompt_ids + resp]
        rec["n_response"] = len(resp)
        records.append(rec)
        full = prompt[:2] + ([img_id] * P if img else []) + prompt[2:] + resp
        kw = {}
        if img:
            pil = Image.open(os.path.join(d, "images", img))
            kw["pixel_values"] = proc(images=pil, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full]), **kw).logits[0].double()
        n = len(full)
        logp = torch.log_softmax(logits[:-1], dim=-1)
        tgt = torch.tensor(full[1:])
        lp = logp[torch.arange(n - 1), tgt][n - 1 - len(resp):].sum().item()
        results.append({"index": i, "logprob": lp, "n_response": len(resp)})
    with open(os.path.join(d, "records.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "logprobs_expected.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"{name}: {len(records)} logprobs records")


def text_logprobs_fixture():
    """`vlm logprobs` text records: a LLaVA with the real LLaMA-2 vocabulary (32064 rows, tiny width, bf16
    weights to keep the file small), prompts and responses tokenized by the llava-hf tokenizer."""
    from PIL import Image
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from chat_ref import llava_hf_tokenizer
    shared = os.environ.get("VLM_SHARED_DATA", os.path.join(ROOT, "..", "..", "..", "shared", "data"))
    tok = llava_hf_tokenizer(os.path.join(shared, "tokenizers", "llama2_tokenizer.model"))
    torch.manual_seed(21)
    cfg = LlavaConfig(
        vision_config=dict(hidden_size=16, intermediate_size=32, num_hidden_layers=2, num_attention_heads=2,
                           image_size=28, patch_size=14, projection_dim=16),
        text_config=dict(model_type="llama", vocab_size=32064, hidden_size=16, intermediate_size=24,
                         num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=1, rms_norm_eps=1e-5,
                         tie_word_embeddings=True, max_position_embeddings=512),
        image_token_index=32000, image_seq_length=4, tie_word_embeddings=True)
    model = LlavaForConditionalGeneration(cfg).float()
    randomize(model, scale=0.5)
    with torch.no_grad():  # bf16-representable weights: the bf16 file holds them exactly
        for p in model.parameters():
            p.copy_(p.bfloat16().float())
    model.eval()
    name = "llava_tok"
    d = os.path.join(ROOT, "models", name)
    write_dir(d, model, {"dummy": torch.zeros(1)}, layout="hub", image_size=28)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(d, "model.safetensors"))
    save_file({k: v.bfloat16() for k, v in sd.items()}, os.path.join(d, "model.safetensors"), metadata={"format": "pt"})
    os.remove(os.path.join(d, "expected.safetensors"))
    rng = np.random.RandomState(9)
    os.makedirs(os.path.join(d, "images"), exist_ok=True)
    Image.fromarray(rng.randint(0, 256, size=(40, 33, 3)).astype(np.uint8)).save(os.path.join(d, "images", "c.png"))
    proc = image_processor(28)
    texts = [("images/c.png", "USER: <image>\nWhat color is the  circle? ASSISTANT:", "It is red."),
             (None, "USER: Is there a dog in the image? ASSISTANT:", "No, there is no dog."),
             ("images/c.png", "A chat between a curious user and an artificial intelligence assistant. USER: <image>\n"
              "Describe the scene in detail.\nBe brief. ASSISTANT:", " Two squares, one star (yellow) and 3 circles!")]
    records, results = [], []
    for i, (img, prompt, resp) in enumerate(texts):
        p_ids = tok(prompt).input_ids
        r_ids = tok(resp, add_special_tokens=False).input_ids + [2]
        full = []
        for t in p_ids:
            full += [32000] * cfg.image_seq_length if t == 32000 else [t]
        full += r_ids
        kw = {}
        if img:
            kw["pixel_values"] = proc(images=Image.open(os.path.join(d, img)), return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full]), **kw).logits[0].double()
        n = len(full)
        lp = torch.log_softmax(logits[:-1], dim=-1)[torch.arange(n - 1), torch.tensor(full[1:])][n - 1 - len(r_ids):].sum().item()
        rec = {"prompt": prompt, "response": resp}
        if img:
            rec["image"] = img
        records.append(rec)
        results.append({"index": i, "logprob": lp, "n_response": len(r_ids)})
    with open(os.path.join(d, "records.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "logprobs_expected.jsonl"), "w") as f:
        for r in results:
            f.write(json.dumps(r) + "\n")
    print(f"{name}: {len(records)} text records")
    return model, tok


def old_style_config(cfg):
    """An older transformers config: rope_theta at the top of text_config, image_token_index."""
    tc = cfg["text_config"]
    rp = tc.pop("rope_parameters", None)
    if rp:
        tc["rope_theta"] = rp["rope_theta"]
        tc["rope_scaling"] = None
    if "image_token_id" in cfg:
        cfg["image_token_index"] = cfg.pop("image_token_id")


def clip_fixture():
    torch.manual_seed(7)
    cfg = CLIPConfig(
        vision_config=dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                           image_size=28, patch_size=7, projection_dim=24),
        text_config=dict(vocab_size=64, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                         num_attention_heads=4, max_position_embeddings=16, projection_dim=24,
                         eos_token_id=63, bos_token_id=62, pad_token_id=0),
        projection_dim=24)
    model = CLIPModel(cfg).float()
    randomize(model)
    model.train(False)
    B, T = 3, 10
    ids = torch.randint(1, 62, (B, T), dtype=torch.int64)
    ids[:, 0] = 62
    for b, e in enumerate([9, 4, 6]):  # end-of-text positions; padding after them
        ids[b, e] = 63
        ids[b, e + 1:] = 0
    pixels = torch.randn(B, 3, 28, 28)
    model.zero_grad()
    out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
    out.loss.backward()
    tensors = {"input_ids": ids.to(torch.int32), "pixel_values": pixels, "image_embeds": out.image_embeds,
               "text_embeds": out.text_embeds, "logits_per_image": out.logits_per_image,
               "loss": out.loss.detach().double()}
    for pname, p in model.named_parameters():
        tensors["grad." + pname] = p.grad.detach().clone()
    write_dir(os.path.join(ROOT, "models", "clip"), model, tensors, image_size=28)
    print(f"clip: loss {out.loss.item():.6f}")


def siglip_vision_fixture():
    """SiglipVisionModel with its pooling head. The loss is a fixed random weighting of both outputs,
    sum(pooler_output * dpooled) + sum(last_hidden_state * dhidden), so its gradients reach the head, the
    post-LayerNorm and the encoder. Weights are written as the Hub names them (vision_model.*), gradients under
    transformers 5's in-memory names (without the prefix): the loader must know both."""
    name = "siglip_vision"
    torch.manual_seed(zlib.crc32(name.encode()))
    # 30 px in patches of 7: the convolution drops the last 2 rows and columns (as so400m's 384 / 14 does)
    cfg = SiglipVisionConfig(hidden_size=32, intermediate_size=48, num_hidden_layers=2, num_attention_heads=4,
                             image_size=30, patch_size=7, vision_use_head=True)
    model = SiglipVisionModel(cfg).float()
    randomize(model)
    model.eval()
    B, N, C = 3, (30 // 7) ** 2, 32
    pixels = torch.randn(B, 3, 30, 30)
    dpooled, dhidden = torch.randn(B, C), torch.randn(B, N, C)
    model.zero_grad()
    out = model(pixel_values=pixels)
    loss = (out.pooler_output * dpooled).sum() + (out.last_hidden_state * dhidden).sum()
    loss.backward()
    tensors = {"pixel_values": pixels, "last_hidden_state": out.last_hidden_state, "pooler_output": out.pooler_output,
               "dpooled": dpooled, "dhidden": dhidden, "loss": loss.detach().double()}
    for pname, p in model.named_parameters():
        tensors["grad." + pname] = p.grad.detach().clone()
    path = os.path.join(ROOT, "models", name)
    write_dir(path, model, tensors, image_size=30, siglip=True)
    from safetensors.torch import load_file
    sd = load_file(os.path.join(path, "model.safetensors"))
    save_file({"vision_model." + k: v for k, v in sd.items()}, os.path.join(path, "model.safetensors"),
              metadata={"format": "pt"})
    print(f"{name}: {sum(p.numel() for p in model.parameters())} parameters, loss {loss.item():.6f}")


def optim_fixture():
    torch.manual_seed(11)
    p = torch.randn(37, dtype=torch.float64, requires_grad=True)
    p0 = p.detach().clone()
    opt = torch.optim.AdamW([p], lr=1e-2, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.02)
    grads, after = [], []
    for step in range(4):
        g = torch.randn(37, dtype=torch.float64)
        p.grad = g.clone()
        opt.step()
        grads.append(g)
        after.append(p.detach().clone())
    # clip_grad_norm_ over three tensors
    ts = [torch.randn(5, 3, dtype=torch.float64, requires_grad=True) for _ in range(3)]
    for t in ts:
        t.grad = torch.randn_like(t) * 2
    g_before = torch.cat([t.grad.flatten() for t in ts]).clone()
    norm = torch.nn.utils.clip_grad_norm_(ts, max_norm=1.5)
    g_after = torch.cat([t.grad.flatten() for t in ts]).clone()
    os.makedirs(os.path.join(ROOT, "optim"), exist_ok=True)
    save_file({"p0": p0, "grads": torch.stack(grads), "after": torch.stack(after),
               "clip_before": g_before, "clip_after": g_after, "clip_norm": norm.detach().double().reshape(1)},
              os.path.join(ROOT, "optim", "adamw.safetensors"))
    print("optim: written")


def greedy_reference(model, ids, pixel_values, max_new_tokens):
    """transformers' generate, greedy, stopping at EOS (id 2). Returns the new ids and the smallest gap
    between the two largest logits over the steps (how safe each argmax is against rounding)."""
    kw = {"pixel_values": pixel_values} if pixel_values is not None else {}
    with torch.no_grad():
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             do_sample=False, num_beams=1, max_new_tokens=max_new_tokens, eos_token_id=2,
                             pad_token_id=0, output_logits=True, return_dict_in_generate=True, **kw)
    new = out.sequences[0, len(ids):].tolist()
    logits = torch.stack(out.logits)[:, 0].double()
    top2 = logits.topk(2, dim=-1).values
    return new, (top2[:, 0] - top2[:, 1]).min().item()


def generate_fixture(name, model, cfg, max_new_tokens=12, image_dir="images", tok=None):
    """`vlm sample` greedy outputs: generate_records.jsonl (inputs in the command's format) and
    generate_expected.jsonl (one line per record: the new ids, why generation ended, and for text records the
    decoded text). Records mix image and image-free rows and prompt lengths. A record whose greedy path has
    two logits within 1e-3 of each other at some step is redrawn, so that fp32 rounding differences between
    the implementations cannot flip an argmax."""
    from PIL import Image
    d = os.path.join(ROOT, "models", name)
    rng = np.random.RandomState(zlib.crc32(("generate:" + name).encode()) % 2**31)
    S, P, img_id = cfg.vision_config.image_size, cfg.image_seq_length, cfg.image_token_index
    proc = image_processor(S, is_siglip(cfg))
    images = [image_dir + "/a.png", None, image_dir + "/b.png", None, image_dir + "/gray.png"]
    questions = ["What is in the picture?", "Name three colors.", "Describe the scene in detail.",
                 "Is there a dog?", "Count the stars, then the circles.", "Why is the sky blue?",
                 "Write one sentence about shapes.", "Where is the red square?"]
    records, expected = [], []
    for i, img in enumerate(images):
        pix = None
        if img:
            pix = proc(images=Image.open(os.path.join(d, img)), return_tensors="pt")["pixel_values"]
        for attempt in range(50):
            rec = {"question_id": f"q{i}"} if i % 2 == 0 else {"question_id": 100 + i}
            if img:
                rec["image"] = img
            if tok is None:  # id records: BOS, some text ids, the image token (once or expanded), more text
                before = [1] + [int(x) for x in rng.randint(3, img_id, size=1 + (i + attempt) % 3)]
                after = [int(x) for x in rng.randint(3, img_id, size=2 + 3 * i)]
                n_img = 0 if not img else (P if i == 2 else 1)
                rec["input_ids"] = before + [img_id] * n_img + after
                full = before + [img_id] * (P if img else 0) + after
            else:  # text records through the vicuna_v1 template with the generation prompt
                q = questions[(i + attempt) % len(questions)]
                rec["prompt"] = q
                text = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives "
                        "helpful, detailed, and polite answers to the user's questions. USER: "
                        + ("<image>\n" if img else "") + q + " ASSISTANT:")
                prompt_ids = tok(text).input_ids
                full = []
                for t in prompt_ids:
                    full += [img_id] * P if t == img_id else [t]
            new, margin = greedy_reference(model, full, pix, max_new_tokens)
            # text records: every generated id must be a real token of the tokenizer (the model's vocabulary
            # has padding rows past it)
            if margin >= 1e-3 and (tok is None or all(t < 32000 for t in new)):
                break
        else:
            raise SystemExit(f"{name}: no record {i} with a safe greedy path")
        exp = {"index": i, "ids": new, "finish": "eos" if new and new[-1] == 2 else "length",
               "max_new_tokens": max_new_tokens, "min_margin": round(margin, 6)}
        if tok is not None:
            exp["prompt_ids"] = prompt_ids
            exp["text"] = tok.decode(new, skip_special_tokens=True)
        records.append(rec)
        expected.append(exp)
    with open(os.path.join(d, "generate_records.jsonl"), "w") as f:
        for r in records:
            f.write(json.dumps(r) + "\n")
    with open(os.path.join(d, "generate_expected.jsonl"), "w") as f:
        for r in expected:
            f.write(json.dumps(r) + "\n")
    print(f"{name}: {len(records)} generate records, finishes {[e['finish'] for e in expected]}, "
          f"lengths {[len(e['ids']) for e in expected]}")


def siglip_qwen2_configs():
    """LLaVA-Interleave's kinds of tower and decoder at a tiny size: SigLIP (gelu_pytorch_tanh, eps 1e-6) and
    Qwen2 (q/k/v biases only, GQA, rope_theta 1e6), "full" strategy."""
    siglip = dict(model_type="siglip_vision_model", hidden_size=32, intermediate_size=64, num_hidden_layers=3,
                  num_attention_heads=4, image_size=28, patch_size=7)
    qwen2 = dict(model_type="qwen2", vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                 num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6, max_position_embeddings=256,
                 rope_parameters={"rope_type": "default", "rope_theta": 1000000.0}, eos_token_id=2)
    untied = LlavaConfig(vision_config=dict(siglip, vision_use_head=False), text_config=qwen2, image_token_index=90,
                         image_seq_length=16, vision_feature_layer=-1, vision_feature_select_strategy="full")
    tied = LlavaConfig(vision_config=dict(siglip, vision_use_head=True),
                       text_config=dict(qwen2, vocab_size=80, num_key_value_heads=1, rms_norm_eps=1e-5,
                                        rope_parameters={"rope_type": "default", "rope_theta": 5000.0}),
                       image_token_index=77, image_seq_length=16, vision_feature_layer=-2,
                       vision_feature_select_strategy="full", tie_word_embeddings=True)
    return untied, tied


def main(only=None):
    want = lambda name: not only or name in only
    vision = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=3, num_attention_heads=4,
                  image_size=28, patch_size=7, projection_dim=16)
    gqa = LlavaConfig(
        vision_config=vision,
        text_config=dict(model_type="llama", vocab_size=96, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, head_dim=12, rms_norm_eps=1e-5,
                         max_position_embeddings=256),
        image_token_index=90, image_seq_length=16, vision_feature_layer=-2, vision_feature_select_strategy="default")
    full = LlavaConfig(
        vision_config=dict(vision, hidden_act="quick_gelu"),
        text_config=dict(model_type="llama", vocab_size=80, hidden_size=32, intermediate_size=56, num_hidden_layers=2,
                         num_attention_heads=2, num_key_value_heads=2, rms_norm_eps=1e-6, attention_bias=True,
                         mlp_bias=True, tie_word_embeddings=True, max_position_embeddings=256,
                         rope_parameters={"rope_type": "default", "rope_theta": 500.0}),
        image_token_index=77, image_seq_length=17, vision_feature_layer=1, vision_feature_select_strategy="full",
        tie_word_embeddings=True)
    sq_untied, sq_tied = siglip_qwen2_configs()
    models = {}
    if want("llava_gqa"):
        models["llava_gqa"] = llava_fixture("llava_gqa", gqa, "new")
        logprobs_fixture("llava_gqa", models["llava_gqa"], gqa)
    if want("llava_full"):
        models["llava_full"] = llava_fixture("llava_full", full, "hub", config_edit=old_style_config)
    if want("llava_tok"):
        models["llava_tok"], tok = text_logprobs_fixture()
    if want("clip"):
        clip_fixture()
    if want("optim"):
        optim_fixture()
    if want("llava_siglip_qwen2"):
        models["llava_siglip_qwen2"] = llava_fixture("llava_siglip_qwen2", sq_untied, "new")
        logprobs_fixture("llava_siglip_qwen2", models["llava_siglip_qwen2"], sq_untied)
    if want("llava_siglip_qwen2_tied"):
        llava_fixture("llava_siglip_qwen2_tied", sq_tied, "hub", config_edit=old_style_config)
    if want("siglip_vision"):
        siglip_vision_fixture()
    # generation fixtures last: their random draws cannot change the fixtures above
    if want("llava_gqa"):
        generate_fixture("llava_gqa", models["llava_gqa"], gqa)
    if want("llava_full"):
        generate_fixture("llava_full", models["llava_full"], full, image_dir="../llava_gqa/images")
    if want("llava_tok"):
        generate_fixture("llava_tok", models["llava_tok"], models["llava_tok"].config, image_dir="../llava_gqa/images",
                         tok=tok)
    if want("llava_siglip_qwen2"):
        generate_fixture("llava_siglip_qwen2", models["llava_siglip_qwen2"], sq_untied)


if __name__ == "__main__":
    sys.exit(main(set(sys.argv[1:])))
