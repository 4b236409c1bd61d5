#!/usr/bin/env python3
"""The table of ratios of a dev/gpu_session.sh run: vlm.c against PyTorch, both measured in the same run.

  python3 dev/gpu_table.py OUT_DIR      reads OUT_DIR/bench.jsonl (each JSON line a step printed, tagged by
                                        the script with "step") and OUT_DIR/status.tsv; writes
                                        OUT_DIR/ratios.md and OUT_DIR/ratios.tsv and prints the markdown

Ratios are "how many times vlm.c's throughput": reference time / vlm.c time, or vlm.c rate / reference rate,
so above 1 means vlm.c is faster. Each target is issue 16's (DESIGN.md section 6) for the GPU, and DESIGN.md's
">= 2x PyTorch CPU eager" for the CPU backend (what a dry run on a machine without a GPU measures). A row
whose numbers are missing says which step did not give them.
"""
import json
import os
import sys

H200_BYTES_PER_S = 4.8e12  # the datasheet bandwidth behind issue 16's weight-read bound


def load(out):
    recs = {}  # step -> list of JSON records in the order printed
    path = os.path.join(out, "bench.jsonl")
    if os.path.exists(path):
        for line in open(path):
            try:
                d = json.loads(line)
            except json.JSONDecodeError:
                continue
            recs.setdefault(d.get("step", "?"), []).append(d)
    status = {}
    path = os.path.join(out, "status.tsv")
    if os.path.exists(path):
        for line in open(path):
            f = line.rstrip("\n").split("\t")
            if len(f) >= 3 and f[0] != "step":
                status[f[0]] = f[5] if len(f) > 5 and f[5] else f[2]  # the note says more ("skipped: no GPU")
    return recs, status


def pick(recs, step, **match):
    """The last record of `step` whose fields equal `match` (e.g. batch=16), or None."""
    for d in reversed(recs.get(step, [])):
        if all(d.get(k) == v for k, v in match.items()):
            return d
    return None


def why_missing(recs, status, *steps):
    """What became of the steps that printed no figure: their status, or "not run"."""
    return "; ".join(f"{s}: {status.get(s, 'not run')}" for s in steps if s and s not in recs)


class Table:
    def __init__(self, recs, status):
        self.recs, self.status, self.rows = recs, status, []

    def add(self, what, ours_txt, ref_impl, ref_txt, ratio, target_txt, met, steps, note=""):
        """One row. ratio: vlm.c's throughput over the reference's (None when a side is missing); met: None
        (no target), True or False."""
        steps = [s for s in steps if s]
        missing = why_missing(self.recs, self.status, *steps)
        if missing and not note and ((met is None and target_txt) or ratio is None):
            note = "missing: " + missing
        self.rows.append(dict(what=what, ours=ours_txt or "–", ref_impl=ref_impl or "–", ref=ref_txt or "–",
                              ratio=f"{ratio:.2f}x" if ratio is not None else "–",
                              ratio_raw="" if ratio is None else f"{ratio:.4f}", target=target_txt or "",
                              met="" if met is None else ("yes" if met else "no"), steps=",".join(steps), note=note))

    def time_row(self, what, ours_step, ref_step, target, ref_match=None):
        """Step times (ms_per_step): ratio = reference / vlm.c, against a target ratio."""
        o = pick(self.recs, ours_step) if ours_step else None
        r = pick(self.recs, ref_step, **(ref_match or {})) if ref_step else None
        om = o.get("ms_per_step") if o else None
        rm = r.get("ms_per_step") if r else None
        ratio = rm / om if om and rm else None
        self.add(what, f"{om:.1f} ms/step" if om else None, r.get("impl") if r else (ref_step and "PyTorch"),
                 f"{rm:.1f} ms/step" if rm else None, ratio, f">= {target:g}x" if target else "",
                 None if target is None or ratio is None else ratio >= target, [ours_step, ref_step])
        return o

    def rate_row(self, what, ours_step, ref_step, target, ref_match=None):
        """End-to-end tokens per second: ratio = vlm.c / reference, against a target ratio."""
        o = pick(self.recs, ours_step)
        r = pick(self.recs, ref_step, **(ref_match or {})) if ref_step else None
        ov = o.get("tokens_per_s") if o else None
        rv = r.get("tokens_per_s") if r else None
        ratio = ov / rv if ov and rv else None
        self.add(what, f"{ov:.1f} tok/s" if ov else None, r.get("impl") if r else "PyTorch",
                 f"{rv:.1f} tok/s" if rv else None, ratio, f">= {target:g}x" if target else "",
                 None if target is None or ratio is None else ratio >= target, [ours_step, ref_step])
        return o


def gpu_rows(t):
    ceil = pick(t.recs, "ceiling")
    gemm = ceil.get("gemm_tflops") if ceil else None
    copy = ceil.get("copy_gb_per_s") if ceil else None
    sft = t.time_row("SFT step, llava-1.4b, 8 rows: vs transformers eager", "vlm_sft", "torch_sft", None)
    t.time_row("SFT step: vs torch.compile", "vlm_sft", "torch_sft_compile", 1.2)
    mfu = sft["model_tflops"] / gemm if sft and gemm else None
    t.add("SFT MFU against this run's bf16 GEMM ceiling", f"{mfu:.1%} ({sft['model_tflops']:.0f} TFLOP/s)" if mfu else None,
          "GEMM 8192^3, torch", f"{gemm:.0f} TFLOP/s" if gemm else None, None, ">= 60%",
          None if mfu is None else mfu >= 0.60, ["vlm_sft", "ceiling"])
    t.time_row("DPO step, 8 pairs (no PyTorch counterpart)", "vlm_dpo", None, None)
    t.time_row("S-VCO step, 8 pairs, cached reference: vs the official formation", "vlm_svco", "torch_svco", 4.0)
    t.time_row("S-VCO step, 8 pairs, --ref online: vs the official formation", "vlm_svco_online", "torch_svco", 2.5)
    for b, goal in ((1, 300.0), (16, 3000.0)):
        d = t.rate_row(f"LLaVA-7B greedy decode B={b}, 128 tokens end to end: vs transformers generate",
                       f"vlm_decode_b{b}", "torch_decode", None, ref_match={"batch": b})
        dec = d.get("decode_tokens_per_s") if d else None
        wr = d.get("weight_read_gb_per_s") if d else None
        txt = f"{dec:.1f} tok/s" if dec else None
        if wr:  # the weight-read bound: decoder weights once per step at the datasheet's and this run's bandwidth
            txt += f", weights read at {wr:.0f} GB/s: {wr / (H200_BYTES_PER_S / 1e9):.0%} of 4.8 TB/s"
            txt += f", {wr / copy:.0%} of the copy ceiling" if copy else ""
        t.add(f"LLaVA-7B decode B={b}, decode steps only", txt, "", "", None, f">= {goal:g} tok/s",
              None if dec is None else dec >= goal, [f"vlm_decode_b{b}"])
    for shape in ("decoder-640", "vit-l", "decoder-2048"):
        f = pick(t.recs, "attention", impl="flash", shape=shape)
        c = pick(t.recs, "attention", impl="cudnn", shape=shape)
        s = pick(t.recs, "torch_attention", shape=shape)
        ft, ct, st = (x.get("tflops") if x else None for x in (f, c, s))
        ratio = ft / ct if ft and ct else None
        goal = 0.8 if shape == "decoder-640" else None
        t.add(f"attention fwd+bwd {shape}: our flash vs cuDNN", f"{ft:.0f} TFLOP/s" if ft else None, "cuDNN SDPA",
              f"{ct:.0f} TFLOP/s" if ct else None, ratio, f">= {goal:g}x" if goal else "",
              None if goal is None or ratio is None else ratio >= goal, ["attention"])
        best = max((x for x in (ft, ct) if x), default=None)
        t.add(f"attention fwd+bwd {shape}: the faster of ours vs torch SDPA", f"{best:.0f} TFLOP/s" if best else None,
              "torch SDPA", f"{st:.0f} TFLOP/s" if st else None, best / st if best and st else None, "", None,
              ["attention", "torch_attention"])


def cpu_rows(t):
    # the dry run: the CPU backend at the demo's shape against transformers eager on the CPU (bench/torch_cpu_ref.py)
    for w, unit in (("sft", "rows"), ("dpo", "pairs"), ("svco", "pairs")):
        t.time_row(f"{w} step, llava-demo, 8 {unit}, CPU: vs transformers eager", f"vlm_{w}", f"torch_{w}", 2.0)
    for b in (1, 16):
        t.rate_row(f"decode B={b}, llava-demo, CPU, end to end: vs transformers generate", f"vlm_decode_b{b}",
                   f"torch_decode_b{b}", 2.0)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "gpu-out"
    recs, status = load(out)
    t = Table(recs, status)
    ours = [d for s, l in recs.items() if s.startswith("vlm_") for d in l]
    backend = ours[0].get("backend", "?") if ours else "?"
    if backend.startswith("cpu"):
        cpu_rows(t)
    else:
        gpu_rows(t)
    cols = ["what", "ours", "ref_impl", "ref", "ratio", "target", "met", "steps", "note"]
    head = ["workload", "vlm.c", "reference", "reference figure", "vlm.c / reference", "target", "met", "steps", "note"]
    with open(os.path.join(out, "ratios.tsv"), "w") as f:
        f.write("\t".join(cols) + "\n")
        for r in t.rows:
            f.write("\t".join(r["ratio_raw"] if c == "ratio" else r[c] for c in cols) + "\n")
    md = [f"vlm.c backend: {backend}; ratios above 1 mean vlm.c is faster (time: reference / vlm.c; rate: vlm.c / "
          "reference; MFU and absolute targets: figure / target)", "",
          "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in t.rows:
        md.append("| " + " | ".join(f"**{r[c]}**" if c == "met" and r[c] == "no" else r[c] for c in cols) + " |")
    text = "\n".join(md) + "\n"
    with open(os.path.join(out, "ratios.md"), "w") as f:
        f.write(text)
    sys.stdout.write(text)


if __name__ == "__main__":
    main()
