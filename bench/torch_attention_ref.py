# PyTorch SDPA at the shapes of bench/bench_attention.cu, for a side-by-side in the same run:
#   python3 bench/torch_attention_ref.py [--reps N] [--B N]
# Times forward and backward separately (median of CUDA-event timings) for the flash and cuDNN backends
# of torch.nn.functional.scaled_dot_product_attention, with the same FLOP counts as the C benchmark
# (forward 4*B*NH*T^2*HD, backward 2.5x, both halved for causal).
import argparse
import statistics

import torch
import torch.nn.functional as F
from torch.nn.attention import SDPBackend, sdpa_kernel

SHAPES = [
    ("ViT-L 577x16x64 bidirectional", 8, 577, 16, 64, False),
    ("decoder 640x16x128 causal", 8, 640, 16, 128, True),
    ("decoder 2048x32x128 causal", 8, 2048, 32, 128, True),
]


def timed(fn, reps):
    a, b = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
    out = []
    for r in range(reps + 3):
        a.record()
        fn()
        b.record()
        b.synchronize()
        if r >= 3:
            out.append(a.elapsed_time(b))
    return statistics.median(out)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--reps", type=int, default=20)
    ap.add_argument("--B", type=int, default=0)
    args = ap.parse_args()
    print("torch", torch.__version__, torch.cuda.get_device_name())
    for name, B, T, NH, HD, causal in SHAPES:
        B = args.B or B
        # (B, T, 3, NH, HD) fused like our QKV buffer, viewed as (B, NH, T, HD) without copies
        qkv = torch.randn(B, T, 3, NH, HD, device="cuda", dtype=torch.bfloat16, requires_grad=True)
        q, k, v = (qkv[:, :, i].transpose(1, 2) for i in range(3))
        dout = torch.randn(B, NH, T, HD, device="cuda", dtype=torch.bfloat16)
        fwd = 4.0 * B * NH * T * T * HD * (0.5 if causal else 1.0)
        bwd = 2.5 * fwd
        print(f"{name}, B={B}")
        for label, backend in (("flash", SDPBackend.FLASH_ATTENTION), ("cudnn", SDPBackend.CUDNN_ATTENTION)):
            try:
                with sdpa_kernel(backend):
                    o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                    tf = timed(lambda: F.scaled_dot_product_attention(q, k, v, is_causal=causal), args.reps)

                    def fb():
                        qkv.grad = None
                        o = F.scaled_dot_product_attention(q, k, v, is_causal=causal)
                        o.backward(dout)

                    tfb = timed(fb, args.reps)
                tb = tfb - tf
                print(f"  torch-{label:5s} fwd {tf:8.3f} ms {fwd / tf * 1e-9:6.1f} TFLOP/s | bwd {tb:8.3f} ms "
                      f"{bwd / tb * 1e-9:6.1f} TFLOP/s | fwd+bwd {(fwd + bwd) / tfb * 1e-9:6.1f} TFLOP/s")
            except Exception as e:  # a backend may refuse a shape
                print(f"  torch-{label}: {type(e).__name__}: {str(e).splitlines()[0][:120]}")
        del qkv, q, k, v, dout, o
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
