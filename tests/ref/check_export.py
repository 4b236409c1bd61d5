#!/usr/bin/env python3
"""Loads a `vlm export --to-hf` folder with transformers and scores `vlm logprobs` records with it, for
comparison with `vlm logprobs` on the same folder (the export check recorded in notes/perf.md).

  python3 tests/ref/check_export.py EXPORT_DIR RECORDS.jsonl OURS.jsonl
Prints the largest relative difference and exits non-zero above 1e-4."""
import json
import os
import sys

import torch
from transformers import LlavaForConditionalGeneration


def main(export_dir, records, ours):
    try:
        from transformers import CLIPImageProcessorPil as Proc
    except ImportError:
        from transformers import CLIPImageProcessor as Proc
    from PIL import Image
    model = LlavaForConditionalGeneration.from_pretrained(export_dir, torch_dtype=torch.float32).eval()
    proc = Proc.from_pretrained(export_dir)
    P = model.config.image_seq_length if hasattr(model.config, "image_seq_length") else None
    grid = model.config.vision_config.image_size // model.config.vision_config.patch_size
    n_img = grid * grid + (1 if model.config.vision_feature_select_strategy == "full" else 0)
    img_id = model.config.image_token_id if hasattr(model.config, "image_token_id") else model.config.image_token_index
    base = os.path.dirname(records)
    worst = 0.0
    with open(records) as f, open(ours) as g:
        for line, mine in zip(f, g):
            rec, mine = json.loads(line), json.loads(mine)
            ids, n_resp = rec["input_ids"], rec["n_response"]
            if ids.count(img_id) == 1:
                i = ids.index(img_id)
                ids = ids[:i] + [img_id] * n_img + ids[i + 1:]
            kw = {}
            if "image" in rec:
                kw["pixel_values"] = proc(images=Image.open(os.path.join(base, rec["image"])).convert("RGB"), return_tensors="pt")["pixel_values"]
            with torch.no_grad():
                logits = model(input_ids=torch.tensor([ids]), **kw).logits[0].double()
            n = len(ids)
            lp = torch.log_softmax(logits[:-1], -1)[torch.arange(n - 1), torch.tensor(ids[1:])][n - 1 - n_resp:].sum().item()
            rel = abs(lp - mine["logprob"]) / abs(lp)
            worst = max(worst, rel)
            print(f"record {rec.get('index', '?')}: transformers {lp:.6f}  vlm.c {mine['logprob']:.6f}  rel {rel:.2e}")
    print(f"worst relative difference {worst:.2e}")
    return 0 if worst <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:4]))
