#!/usr/bin/env python3
"""The PyTorch side of every side-by-side figure in notes/perf.md (run on the GPU machine, in the same
call as `vlm bench`). Random weights, bf16, SDPA attention, CUDA events, median of the timed steps.

  python3 bench/torch_ref.py sft   [--compile]   LLaVA SFT step (fwd + bwd + AdamW) at the llava-1.4b shape
  python3 bench/torch_ref.py svco                S-VCO step, official formation (4 image + 2 image-free rows
                                                 per pair, a frozen reference copy), 8 pairs
  python3 bench/torch_ref.py attention           SDPA forward+backward at the ViT and decoder shapes
  python3 bench/torch_ref.py decode              LLaVA-7B-shaped greedy decode, 128 new tokens, B=1 and B=16
  python3 bench/torch_ref.py ceiling             the device's two ceilings: bf16 GEMM 8192^3 on random data
                                                 and a 1 GiB device-to-device copy (bytes read + written)

Shape "llava-1.4b" (DESIGN.md §6): CLIP ViT-L/14-336 (frozen) + 2-layer GELU projector + LLaMA decoder
(d 2048, 24 layers, 16 heads, FFN 5632, vocab 32064); 576 image tokens + 64 text tokens per row.
Prints one JSON object per measurement.
"""
import argparse
import json
import statistics
import time

import torch
import torch.nn.functional as F


def llava_config(shape):
    from transformers import LlavaConfig
    vision = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=24, num_attention_heads=16,
                  image_size=336, patch_size=14, projection_dim=768)
    if shape == "llava-1.4b":
        text = dict(model_type="llama", vocab_size=32064, hidden_size=2048, intermediate_size=5632, num_hidden_layers=24,
                    num_attention_heads=16, num_key_value_heads=16, max_position_embeddings=4096, rms_norm_eps=1e-5)
    elif shape == "llava-7b":
        text = dict(model_type="llama", vocab_size=32064, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                    num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5)
    else:
        raise SystemExit(f"unknown shape {shape}")
    cfg = LlavaConfig(vision_config=vision, text_config=text, image_token_index=32000, image_seq_length=576)
    cfg._attn_implementation = "sdpa"
    return cfg


def build(shape, dtype=torch.bfloat16):
    from transformers import LlavaForConditionalGeneration
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlavaForConditionalGeneration(llava_config(shape)).to(dtype)
    model.config._attn_implementation = "sdpa"
    return model


def rows(batch, n_text, with_image=True, vocab=32000):
    ids = torch.randint(3, 31999, (batch, n_text + (576 if with_image else 0)), device="cuda")
    if with_image:
        ids[:, 1:577] = 32000
    labels = ids.clone()
    labels[:, : labels.shape[1] - n_text // 2] = -100  # the second half of the text is the response
    return ids, labels


def timed(fn, warmup, iters):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(iters):
        a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        a.record()
        fn()
        b.record()
        torch.cuda.synchronize()
        times.append(a.elapsed_time(b))
    return statistics.median(times)


def freeze_vision(model):
    for p in model.model.vision_tower.parameters():
        p.requires_grad_(False)


def logps(logits, labels):
    lp = torch.log_softmax(logits[:, :-1].float(), -1)
    lab = labels[:, 1:]
    mask = lab != -100
    tok = lp.gather(-1, lab.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (tok * mask).sum(-1)


def bench_sft(args):
    model = build(args.shape)
    freeze_vision(model)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-6, fused=True)
    ids, labels = rows(args.batch, 64)
    pix = torch.randn(args.batch, 3, 336, 336, device="cuda", dtype=torch.bfloat16)
    fwd = torch.compile(model) if args.compile else model

    def step():
        out = fwd(input_ids=ids, pixel_values=pix, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = timed(step, args.warmup, args.iters)
    print(json.dumps({"bench": "sft", "impl": "torch.compile" if args.compile else "transformers eager", "shape": args.shape,
                      "batch": args.batch, "ms_per_step": ms, "samples_per_s": args.batch / ms * 1e3,
                      "peak_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)


def bench_svco(args):
    """The official S-VCO step (s-vco/s-vco trainer.py concatenated_forward): policy forward+backward on 4
    image rows and 2 image-free rows per pair, and the same 6 rows through a frozen reference copy."""
    policy, ref = build(args.shape), build(args.shape)
    freeze_vision(policy)
    for p in ref.parameters():
        p.requires_grad_(False)
    opt = torch.optim.AdamW([p for p in policy.parameters() if p.requires_grad], lr=1e-6, betas=(0.9, 0.95),
                            weight_decay=0.02, fused=True)
    P = args.batch  # pairs
    img_ids, img_labels = rows(4 * P, 64)
    txt_ids, txt_labels = rows(2 * P, 64, with_image=False)
    pix = torch.randn(4 * P, 3, 336, 336, device="cuda", dtype=torch.bfloat16)
    beta = 0.1

    def all_logps(model):
        a = logps(model(input_ids=img_ids, pixel_values=pix).logits, img_labels)
        b = logps(model(input_ids=txt_ids).logits, txt_labels)
        return a, b

    def step():
        with torch.no_grad():
            ra, rb = all_logps(ref)
        pa, pb = all_logps(policy)
        r = torch.cat([pa - ra, pb - rb]).view(6, P)  # rows: (w|Iw) (w|Il) (l|Iw) (l|Il) (w|0) (l|0)
        loss = (-F.logsigmoid(beta * (r[0] - r[4])) - F.logsigmoid(beta * (r[4] - r[1]))
                - F.logsigmoid(beta * (r[3] - r[5])) - F.logsigmoid(beta * (r[5] - r[2]))).mean()
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    ms = timed(step, args.warmup, args.iters)
    print(json.dumps({"bench": "svco", "impl": "transformers eager", "shape": args.shape, "pairs": P, "ms_per_step": ms,
                      "pairs_per_s": P / ms * 1e3, "peak_gib": torch.cuda.max_memory_allocated() / 2**30}), flush=True)


def bench_attention(args):
    for name, B, T, H, D, causal in (("vit-l", 8, 577, 16, 64, False), ("decoder-640", 8, 640, 16, 128, True),
                                     ("decoder-2048", 2, 2048, 32, 128, True)):
        q, k, v = (torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16, requires_grad=True) for _ in range(3))
        g = torch.randn(B, H, T, D, device="cuda", dtype=torch.bfloat16)

        def fb():
            o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
            o.backward(g)

        ms = timed(fb, 5, 20)
        flops = 4 * B * H * T * T * D * 3.5 * (0.5 if causal else 1)  # fwd 4BHT^2D, bwd 2.5x; causal half
        print(json.dumps({"bench": "attention", "impl": "torch sdpa", "shape": name, "ms": ms,
                          "tflops": flops / ms / 1e9}), flush=True)


def bench_decode(args):
    model = build("llava-7b" if args.shape == "llava-1.4b" else args.shape)
    model.eval()
    for B in (1, 16):
        ids = torch.randint(3, 31999, (B, 32), device="cuda")
        ids[:, 1] = 32000
        ids = torch.cat([ids[:, :1], torch.full((B, 575), 32000, device="cuda"), ids[:, 1:]], 1)
        pix = torch.randn(B, 3, 336, 336, device="cuda", dtype=torch.bfloat16)
        gen = dict(max_new_tokens=128, min_new_tokens=128, do_sample=False)
        with torch.no_grad():
            model.generate(input_ids=ids, pixel_values=pix, max_new_tokens=8, do_sample=False)
            torch.cuda.synchronize()
            t0 = time.time()
            model.generate(input_ids=ids, pixel_values=pix, **gen)
            torch.cuda.synchronize()
            dt = time.time() - t0
        print(json.dumps({"bench": "decode", "impl": "transformers generate", "batch": B, "new_tokens": 128,
                          "seconds": dt, "tokens_per_s": B * 128 / dt}), flush=True)


def bench_ceiling(args):
    """What MFU and bandwidth fractions are measured against, in the same run as the workloads (DESIGN.md
    section 6): never zeros, which multiply faster than random data."""
    n = 8192
    a, b = (torch.randn(n, n, device="cuda", dtype=torch.bfloat16) for _ in range(2))
    gemm_ms = timed(lambda: a @ b, 3, 10)
    x = torch.randn(2**29, device="cuda", dtype=torch.bfloat16)  # 1 GiB
    y = torch.empty_like(x)
    copy_ms = timed(lambda: y.copy_(x), 3, 10)
    print(json.dumps({"bench": "ceiling", "impl": "torch", "device": torch.cuda.get_device_name(),
                      "gemm_tflops": 2 * n**3 / gemm_ms / 1e9, "copy_gb_per_s": 2 * x.numel() * 2 / copy_ms / 1e6}),
          flush=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["sft", "svco", "attention", "decode", "ceiling"])
    ap.add_argument("--shape", default="llava-1.4b")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--iters", type=int, default=10)
    args = ap.parse_args()
    torch.backends.cuda.matmul.allow_tf32 = True
    {"sft": bench_sft, "svco": bench_svco, "attention": bench_attention, "decode": bench_decode,
     "ceiling": bench_ceiling}[args.what](args)


if __name__ == "__main__":
    main()
