#!/usr/bin/env python3
"""What a vision tower keeps of the miniature world's objects, cell by cell (notes/results/README.md, fourth pass).

The world (vlm data synth) puts each object inside one cell of a 3x3 grid, so at 48 px with 16-px patches a cell
is exactly one patch token (with 8-px patches, 2x2 tokens, concatenated). For every hidden layer of the tower
this trains a probe (linear, or a one-hidden-layer MLP with --mlp) on the training scenes' cells to name the
colour, the shape, or both, of the object drawn there, and reports its accuracy on the test scenes' cells that
hold an object. --pixels adds the ceiling: an MLP on the cell's raw pixels, trained on the same labels.

    python3 dev/probe_tower.py --model demo-out/cpu/clip/checkpoint-00004800 --world demo-out/cpu/world
    python3 dev/probe_tower.py --model demo-out/cpu/sft1/sft/checkpoint-00020000 --world ... --kinds shape --mlp

--model takes a CLIP checkpoint (--recipe clip) or a LLaVA folder (its vision tower). Needs torch, transformers,
Pillow (CPU wheels are enough); a diagnostic, not part of the build or the tests.
"""
import argparse
import collections
import json
import os
import re

import numpy as np
import torch
from PIL import Image

CELLS = ["top left", "top", "top right", "left", "center", "right", "bottom left", "bottom", "bottom right"]
# "a red circle on the left": the full captions name colour, shape and cell of every drawn object
OBJECT = re.compile(r"\ban? (\w+) (\w+) (?:at|on|in) the (top left|top right|bottom left|bottom right|top|bottom|left|right|center)\b")
CLIP_MEAN = np.array([0.48145466, 0.4578275, 0.40821073])
CLIP_STD = np.array([0.26862954, 0.26130258, 0.27577711])


def cell_labels(caption):
    """[9] (colour, shape) or None per cell, from a full caption."""
    lab = [None] * 9
    for colour, shape, cell in OBJECT.findall(caption):
        lab[CELLS.index(cell)] = (colour, shape)
    return lab


def scenes(world, n_train):
    """(train, test): lists of (image path, [9] labels). Training: the first caption of each image in clip.jsonl
    (the full caption of what is drawn); test: eval_scenes.jsonl."""
    train, seen = [], set()
    for line in open(os.path.join(world, "clip.jsonl")):
        r = json.loads(line)
        if r["image"] in seen:
            continue
        seen.add(r["image"])
        train.append((r["image"], cell_labels(r["caption"])))
        if len(train) >= n_train:
            break
    test = [(s["image"], cell_labels(s["caption"])) for s in map(json.loads, open(os.path.join(world, "eval_scenes.jsonl")))]
    return train, test


def load_tower(path):
    cfg = open(os.path.join(path, "config.json")).read()
    if '"llava"' in cfg:
        from transformers import LlavaForConditionalGeneration
        m = LlavaForConditionalGeneration.from_pretrained(path)
        tower = m.model.vision_tower if hasattr(m, "model") and hasattr(m.model, "vision_tower") else m.vision_tower
    else:
        from transformers import CLIPModel
        tower = CLIPModel.from_pretrained(path).vision_model
    tower = tower.vision_model if hasattr(tower, "vision_model") else tower
    return tower.eval()


def pixels(world, recs):
    """[N, H, W, 3] float in [0, 1]."""
    return np.stack([np.asarray(Image.open(os.path.join(world, p)).convert("RGB"), dtype=np.float32) / 255.0 for p, _ in recs])


def tower_cells(tower, images):
    """[L+1, N, 9, D'] the patch tokens of every hidden state, grouped by cell (D' = D x tokens per cell)."""
    x = torch.tensor(((images - CLIP_MEAN) / CLIP_STD).transpose(0, 3, 1, 2), dtype=torch.float32)
    out = []
    with torch.no_grad():
        for i in range(0, len(x), 256):
            hs = tower(pixel_values=x[i:i + 256], output_hidden_states=True).hidden_states
            out.append(torch.stack(hs)[:, :, 1:, :])  # drop the class token
    h = torch.cat(out, 1)
    L, N, T, D = h.shape
    g = int(round(T ** 0.5)) // 3  # tokens per cell side
    h = h.reshape(L, N, 3, g, 3, g, D).permute(0, 1, 2, 4, 3, 5, 6).reshape(L, N, 9, g * g * D)
    return h


def pixel_cells(images):
    """[1, N, 9, (S/3)^2 * 3] each cell's raw pixels."""
    N, S = images.shape[0], images.shape[1]
    c = S // 3
    x = images[:, :3 * c, :3 * c].reshape(N, 3, c, 3, c, 3).transpose(0, 1, 3, 2, 4, 5).reshape(N, 9, c * c * 3)
    return torch.tensor(x)[None]


def targets(recs, kind):
    out = []
    for _, lab in recs:
        for x in lab:
            out.append("none" if x is None else x[0] if kind == "color" else x[1] if kind == "shape" else x[0] + " " + x[1])
    return out


def probe(xtr, ytr, xte, yte, hidden, epochs):
    """accuracy on the test cells that hold an object, and the commonest confusions"""
    classes = sorted(set(ytr) | set(yte))
    index = {c: i for i, c in enumerate(classes)}
    a = torch.tensor([index[y] for y in ytr])
    b = torch.tensor([index[y] for y in yte])
    mu, sd = xtr.mean(0), xtr.std(0) + 1e-3
    xtr, xte = (xtr - mu) / sd, (xte - mu) / sd
    torch.manual_seed(0)
    net = torch.nn.Linear(xtr.shape[1], len(classes)) if not hidden else torch.nn.Sequential(
        torch.nn.Linear(xtr.shape[1], hidden), torch.nn.GELU(), torch.nn.Linear(hidden, len(classes)))
    opt = torch.optim.Adam(net.parameters(), 1e-3, weight_decay=1e-4)
    for _ in range(epochs):
        perm = torch.randperm(len(xtr))
        for i in range(0, len(xtr), 256):
            idx = perm[i:i + 256]
            opt.zero_grad()
            torch.nn.functional.cross_entropy(net(xtr[idx]), a[idx]).backward()
            opt.step()
    with torch.no_grad():
        pred = net(xte).argmax(1)
    obj = b != index["none"]
    wrong = collections.Counter((classes[b[i]], classes[pred[i]]) for i in range(len(b)) if obj[i] and b[i] != pred[i])
    return (pred[obj] == b[obj]).float().mean().item(), wrong.most_common(4)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", required=True, help="a CLIP checkpoint or a LLaVA folder")
    ap.add_argument("--world", required=True, help="the world folder of vlm data synth")
    ap.add_argument("--train-scenes", type=int, default=6000)
    ap.add_argument("--kinds", default="color,shape,joint", help="comma list of color, shape, joint")
    ap.add_argument("--layers", default="", help="comma list of hidden-state indices (default all)")
    ap.add_argument("--mlp", action="store_true", help="a one-hidden-layer probe (256) instead of a linear one")
    ap.add_argument("--pixels", action="store_true", help="also the MLP on each cell's raw pixels (the ceiling)")
    ap.add_argument("--epochs", type=int, default=30)
    args = ap.parse_args()

    train, test = scenes(args.world, args.train_scenes)
    itr, ite = pixels(args.world, train), pixels(args.world, test)
    tower = load_tower(args.model)
    htr, hte = tower_cells(tower, itr), tower_cells(tower, ite)
    layers = [int(x) for x in args.layers.split(",") if x] or list(range(htr.shape[0]))
    for kind in args.kinds.split(","):
        ytr, yte = targets(train, kind), targets(test, kind)
        for L in layers:
            acc, wrong = probe(htr[L].reshape(-1, htr.shape[-1]), ytr, hte[L].reshape(-1, hte.shape[-1]), yte,
                               256 if args.mlp else 0, args.epochs)
            print(f"{kind:6s} hidden state {L}: {100 * acc:.1f}%  commonest errors (true, probe): {wrong}", flush=True)
        if args.pixels:
            ptr, pte = pixel_cells(itr), pixel_cells(ite)
            acc, wrong = probe(ptr[0].reshape(-1, ptr.shape[-1]), ytr, pte[0].reshape(-1, pte.shape[-1]), yte, 512, args.epochs)
            print(f"{kind:6s} raw pixels (MLP 512): {100 * acc:.1f}%  commonest errors: {wrong}", flush=True)


if __name__ == "__main__":
    main()
