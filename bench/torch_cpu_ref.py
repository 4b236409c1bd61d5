#!/usr/bin/env python3
"""The PyTorch side of the CPU figures in notes/perf.md: the CPU counterpart of bench/torch_ref.py, timing
the workloads of `./vlm bench --device cpu --shape llava-demo` (cli/cmd_bench.c) with transformers on the
CPU, fp32, eager attention, random weights, torch.set_num_threads(--threads). Median of the timed steps.

  python3 bench/torch_cpu_ref.py sft     SFT step (fwd + bwd + AdamW), vision tower frozen, batch 32; with
                                         --caption-len N every seventh row has an N-token response and the batch
                                         is right-padded to its longest row (an attention mask, labels -100)
  python3 bench/torch_cpu_ref.py dpo     DPO step, 8 pairs: chosen and rejected rows (each with its image),
                                         cached reference log-probs (as vlm bench), vision frozen
  python3 bench/torch_cpu_ref.py svco    S-VCO step, 8 pairs, official formation (4 image rows + 2 image-free
                                         rows per pair), cached reference log-probs, vision frozen
  python3 bench/torch_cpu_ref.py decode  greedy generate, batch 128, prompt 1 + 9 image + 12 text tokens,
                                         4 new tokens

Shape "llava-demo" (model/config.c, the miniature study's final model): CLIP ViT 48 px, patch 16 (9 patches +
CLS), hidden 96, 3 layers, 4 heads, MLP 384, quick_gelu, feature layer -2, CLS dropped; 2-layer GELU projector
96 -> 128 -> 128; LLaMA hidden 128, 2 layers, 4 heads (kv 4), FFN 344, vocab 576 (image token 575). The vision
tower is frozen in every stage (it runs forward only). Rows: BOS, 9 image tokens, 11 prompt tokens, 4 response
tokens (--prompt-len 12 --response-len 4, as vlm bench's defaults for this shape).
What vlm.c does differently at the same workload (and counts in its favour): it runs only the vision layers
the selected feature needs (2 of 3; transformers runs all 3), and it packs a pair's rows over their shared
prefix (DPO: chosen and rejected share one image and prompt; S-VCO: each image is encoded once per pair).
Prints one JSON object per measurement.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F

# the GPU script's helpers (importing it touches no GPU): the frozen tower and the summed response log-probs
from torch_ref import freeze_vision, logps

IMAGE_TOKEN = 575
N_IMG = 9  # 48 px / patch 16: 3 x 3 patch tokens (CLS dropped)
PX = 48


def llava_config(args):
    from transformers import LlavaConfig
    vision = dict(hidden_size=96, intermediate_size=384, num_hidden_layers=3, num_attention_heads=4, image_size=48,
                  patch_size=16, hidden_act="quick_gelu", projection_dim=96)
    text = dict(model_type="llama", vocab_size=576, hidden_size=128, intermediate_size=344, num_hidden_layers=2,
                num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=2048, rms_norm_eps=1e-5)
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=IMAGE_TOKEN, image_seq_length=N_IMG,
                      vision_feature_layer=-2, vision_feature_select_strategy="default", projector_hidden_act="gelu")
    cfg._attn_implementation = args.attn
    return cfg


def build(args):
    from transformers import LlavaForConditionalGeneration
    torch.manual_seed(0)
    model = LlavaForConditionalGeneration(llava_config(args)).float()
    model.config._attn_implementation = args.attn
    return model


def rows(n, args, with_image=True):
    """(ids, labels): BOS, [9 image tokens], prompt, response; labels on the response only."""
    n_text = args.prompt_len + args.response_len
    ids = torch.randint(3, IMAGE_TOKEN - 2, (n, n_text + (N_IMG if with_image else 0)))
    ids[:, 0] = 1
    if with_image:
        ids[:, 1:1 + N_IMG] = IMAGE_TOKEN
    labels = ids.clone()
    labels[:, : labels.shape[1] - args.response_len] = -100
    return ids, labels


def caption_rows(n, args):
    """(ids, labels, attention_mask) as rows(), but every seventh row (i % 7 == 6) has a --caption-len response
    (vlm bench --caption-len): the rows right-padded to the longest, as transformers' collators pad a batch."""
    lens = [args.caption_len if i % 7 == 6 else args.response_len for i in range(n)]
    T = 1 + N_IMG + args.prompt_len - 1 + max(lens)
    ids = torch.zeros(n, T, dtype=torch.long)
    labels = torch.full((n, T), -100, dtype=torch.long)
    mask = torch.zeros(n, T, dtype=torch.long)
    for i, r in enumerate(lens):
        L = 1 + N_IMG + args.prompt_len - 1 + r
        ids[i, :L] = torch.randint(3, IMAGE_TOKEN - 2, (L,))
        ids[i, 0] = 1
        ids[i, 1:1 + N_IMG] = IMAGE_TOKEN
        labels[i, L - r:L] = ids[i, L - r:L]
        mask[i, :L] = 1
    return ids, labels, mask


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times)


def emit(args, what, ms, unit, n, **extra):
    d = {"bench": what, "impl": f"transformers eager ({args.attn})", "device": "cpu", "threads": args.threads,
         "shape": "llava-demo", unit: n, "ms_per_step": ms, f"{'samples' if unit == 'batch' else unit}_per_s": n / ms * 1e3}
    d.update(extra)
    print(json.dumps(d), flush=True)


def bench_sft(args):
    model, opt = pref_setup(args)  # projector and decoder train, the vision tower is frozen (the demo's SFT)
    if args.caption_len:
        ids, labels, mask = caption_rows(args.batch, args)
    else:
        (ids, labels), mask = rows(args.batch, args), None
    pix = torch.randn(args.batch, 3, PX, PX)

    def step():
        out = model(input_ids=ids, pixel_values=pix, labels=labels, attention_mask=mask)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    emit(args, "sft", timed(step, args.warmup, args.iters), "batch", args.batch)


def pref_setup(args):
    model = build(args)
    freeze_vision(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, betas=(0.9, 0.95),
                            weight_decay=0.02)
    return model, opt


def bench_dpo(args):
    model, opt = pref_setup(args)
    P, beta = args.batch, 0.1
    ids, labels = rows(2 * P, args)  # chosen rows then rejected rows, each with the pair's image
    pix = torch.randn(P, 3, PX, PX).repeat(2, 1, 1, 1)
    ref = torch.randn(2 * P) * 0.01 - 60  # cached reference log-probs

    def step():
        lp = logps(model(input_ids=ids, pixel_values=pix).logits, labels) - ref
        loss = -F.logsigmoid(beta * (lp[:P] - lp[P:])).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    emit(args, "dpo", timed(step, args.warmup, args.iters), "pairs", P)


def bench_svco(args):
    model, opt = pref_setup(args)
    P, beta = args.batch, 0.1
    img_ids, img_labels = rows(4 * P, args)
    txt_ids, txt_labels = rows(2 * P, args, with_image=False)
    pix = torch.randn(4 * P, 3, PX, PX)
    ref = torch.randn(6 * P) * 0.01 - 60  # cached reference log-probs

    def step():
        a = logps(model(input_ids=img_ids, pixel_values=pix).logits, img_labels)
        b = logps(model(input_ids=txt_ids).logits, txt_labels)
        r = (torch.cat([a, b]) - ref).view(6, P)  # rows: (w|Iw) (w|Il) (l|Iw) (l|Il) (w|0) (l|0)
        loss = (-F.logsigmoid(beta * (r[0] - r[4])) - F.logsigmoid(beta * (r[4] - r[1]))
                - F.logsigmoid(beta * (r[3] - r[5])) - F.logsigmoid(beta * (r[5] - r[2]))).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    emit(args, "svco", timed(step, args.warmup, args.iters), "pairs", P)


def bench_decode(args):
    model = build(args)
    model.eval()
    B = args.batch
    ids = torch.randint(3, IMAGE_TOKEN - 2, (B, 1 + N_IMG + args.decode_text))
    ids[:, 0] = 1
    ids[:, 1:1 + N_IMG] = IMAGE_TOKEN
    pix = torch.randn(B, 3, PX, PX)
    gen = dict(max_new_tokens=args.new_tokens, min_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)

    def run():
        with torch.no_grad():
            model.generate(input_ids=ids, pixel_values=pix, **gen)

    ms = timed(run, args.warmup, args.iters)
    emit(args, "decode", ms, "batch", B, prompt_tokens=ids.shape[1], new_tokens=args.new_tokens,
         tokens_per_s=B * args.new_tokens / ms * 1e3)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["sft", "dpo", "svco", "decode"])
    ap.add_argument("--batch", type=int, default=None, help="rows (sft, decode) or pairs (dpo, svco)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="eager", choices=["eager", "sdpa"])
    ap.add_argument("--prompt-len", type=int, default=12)
    ap.add_argument("--response-len", type=int, default=4)
    ap.add_argument("--decode-text", type=int, default=12)
    ap.add_argument("--new-tokens", type=int, default=4)
    ap.add_argument("--caption-len", type=int, default=0, help="sft: every seventh row's response (0: none)")
    ap.add_argument("--warmup", type=int, default=2)
    ap.add_argument("--iters", type=int, default=5)
    args = ap.parse_args()
    if args.batch is None:
        args.batch = {"sft": 32, "dpo": 8, "svco": 8, "decode": 128}[args.what]
    torch.set_num_threads(args.threads)
    torch.manual_seed(1)
    {"sft": bench_sft, "dpo": bench_dpo, "svco": bench_svco, "decode": bench_decode}[args.what](args)


if __name__ == "__main__":
    main()
