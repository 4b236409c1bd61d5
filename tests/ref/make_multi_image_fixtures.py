#!/usr/bin/env python3
"""Writes multi_image.safetensors into tests/fixtures/models/{llava_gqa,llava_siglip_qwen2}: transformers'
LlavaForConditionalGeneration on rows with several images in one prompt (LLaVA-NeXT-Interleave's kind of row).

The models are the committed fixtures themselves (make_fixtures.py writes them); this script only adds inputs and
outputs. Rows: two images with text between them, one image, no image, and two images again (the second row's
image and a third), so images are shared between rows and the features of every image take gradients from
several places. transformers scatters the stacked features of a prompt's images into its image tokens in order
(masked_scatter); the C side gives row b the consecutive images image_of_row[b] .. + images_of_row[b] - 1.

Tensors as make_fixtures.py's expected.safetensors (input_ids, labels, lengths, image_of_row, pixel_values, logits,
row_logp, loss, grad.*) plus images_of_row. And `vlm logprobs` records with image lists over the fixture's PNG
files (multi_image_records.jsonl: ids with the image token once per image or expanded, a list shared by two
records, a single image, none) with transformers' summed response log-probs from the same files, its own PIL
preprocessing included (multi_image_logprobs_expected.jsonl). Requires torch, transformers and pillow.
"""
import json
import os
import sys
import zlib

import numpy as np
import torch
from safetensors.torch import save_file
from transformers import LlavaForConditionalGeneration

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_fixtures import ROOT, image_processor, is_siglip, llava_key  # noqa: E402


def rows_for(cfg, seed):
    rng = np.random.RandomState(seed)
    P, img_id = cfg.image_seq_length, cfg.image_token_index
    text = lambda n: list(rng.randint(3, img_id, size=n))
    # (first image, number of images, text runs around and between the images, response length)
    spec = [(0, 2, (3, 2, 4), 5), (1, 1, (2, 3), 3), (-1, 0, (4,), 4), (1, 2, (1, 4, 2), 6)]
    rows = []
    for first, k, runs, n_resp in spec:
        ids = [1]
        for i, n in enumerate(runs):
            ids += text(n)
            if i < k:
                ids += [img_id] * P
        resp = text(n_resp) + [2]
        labels = [-100] * len(ids) + resp
        rows.append((ids + resp, labels, first, k))
    return rows


def fixture(name):
    d = os.path.join(ROOT, "models", name)
    torch.manual_seed(zlib.crc32(("multi_image " + name).encode()))
    model = LlavaForConditionalGeneration.from_pretrained(d, torch_dtype=torch.float32)
    model.eval()
    cfg = model.config
    S = cfg.vision_config.image_size
    pixels = torch.randn(3, 3, S, S)
    rows = rows_for(cfg, zlib.crc32(name.encode()) % 2**31)
    B, T, V = len(rows), max(len(r[0]) for r in rows), cfg.text_config.vocab_size
    ids = torch.zeros(B, T, dtype=torch.int32)
    labels = torch.full((B, T), -100, dtype=torch.int32)
    lengths = torch.zeros(B, dtype=torch.int32)
    logits_all = torch.zeros(B, T, V)
    row_logp = torch.zeros(B, dtype=torch.float64)
    n_label = sum(sum(1 for x in r[1][1:] if x != -100) for r in rows)
    model.zero_grad()
    total = 0.0
    for b, (row_ids, row_labels, first, k) in enumerate(rows):
        L = len(row_ids)
        ids[b, :L] = torch.tensor(row_ids)
        labels[b, :L] = torch.tensor(row_labels)
        lengths[b] = L
        kw = {"pixel_values": pixels[first:first + k]} if k else {}
        logits = model(input_ids=torch.tensor([row_ids]), **kw).logits[0].float()  # (L, V)
        logits_all[b, :L] = logits.detach()
        lab = torch.tensor(row_labels[1:])
        mask = lab != -100
        logp = torch.log_softmax(logits[:-1].double(), dim=-1)
        row_logp[b] = logp[torch.arange(L - 1)[mask], lab[mask]].sum().detach()
        loss = -torch.log_softmax(logits[:-1], dim=-1)[torch.arange(L - 1)[mask], lab[mask]].sum() / n_label
        loss.backward()
        total += loss.item()
    tensors = {"input_ids": ids, "labels": labels, "lengths": lengths,
               "image_of_row": torch.tensor([r[2] for r in rows], dtype=torch.int32),
               "images_of_row": torch.tensor([r[3] for r in rows], dtype=torch.int32),
               "pixel_values": pixels, "logits": logits_all, "row_logp": row_logp,
               "loss": torch.tensor(total, dtype=torch.float64)}
    for pname, p in model.named_parameters():
        if p.grad is not None:
            tensors["grad." + llava_key(pname, "new")] = p.grad.detach().clone()
    save_file({k: v.detach().contiguous().float() if v.is_floating_point() else v.contiguous() for k, v in tensors.items()},
              os.path.join(d, "multi_image.safetensors"))
    print(f"{name}: B={B} T={T}, images per row {[r[3] for r in rows]}, loss {total:.6f}, row_logp {row_logp.tolist()}")
    logprobs_records(name, model)


def logprobs_records(name, model):
    from PIL import Image
    d = os.path.join(ROOT, "models", name)
    cfg = model.config
    rng = np.random.RandomState(zlib.crc32(("records " + name).encode()) % 2**31)
    P, img_id = cfg.image_seq_length, cfg.image_token_index
    proc = image_processor(cfg.vision_config.image_size, is_siglip(cfg))
    specs = [(["a.png", "b.png"], "once"), (["b.png", "gray.png"], "expanded"), (["gray.png"], "once"),
             (["a.png", "b.png"], "once"), ([], None)]
    records, results = [], []
    for i, (imgs, form) in enumerate(specs):
        runs = [[1] + list(rng.randint(3, img_id, size=2))] + [list(rng.randint(3, img_id, size=2 + k)) for k in range(len(imgs))]
        resp = list(rng.randint(3, img_id, size=2 + i % 3)) + [2]
        given, full = list(runs[0]), list(runs[0])
        for k in range(len(imgs)):
            given += [img_id] * (1 if form == "once" else P) + runs[k + 1]
            full += [img_id] * P + runs[k + 1]
        rec = {"image": ["images/" + f for f in imgs]} if imgs else {}
        rec["input_ids"] = [int(x) for x in given + resp]
        rec["n_response"] = len(resp)
        records.append(rec)
        full += resp
        kw = {}
        if imgs:
            pils = [Image.open(os.path.join(d, "images", f)) for f in imgs]
            kw["pixel_values"] = proc(images=pils, return_tensors="pt")["pixel_values"]
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([full]), **kw).logits[0].double()
        n = len(full)
        logp = torch.log_softmax(logits[:-1], dim=-1)
        lp = logp[torch.arange(n - 1), torch.tensor(full[1:])][n - 1 - len(resp):].sum().item()
        results.append({"index": i, "logprob": lp, "n_response": len(resp)})
    for fname, rows in (("multi_image_records.jsonl", records), ("multi_image_logprobs_expected.jsonl", results)):
        with open(os.path.join(d, fname), "w") as f:
            for r in rows:
                f.write(json.dumps(r) + "\n")
    print(f"{name}: {len(records)} multi-image logprobs records, {[r['logprob'] for r in results]}")


if __name__ == "__main__":
    for name in sys.argv[1:] or ["llava_gqa", "llava_siglip_qwen2"]:
        fixture(name)
