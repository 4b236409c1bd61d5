#!/usr/bin/env bash
# The CPU side-by-side of notes/perf.md: `./vlm bench --device cpu --shape llava-demo` against
# bench/torch_cpu_ref.py (transformers, fp32, eager attention) with the same thread count, run interleaved
# (vlm, torch, vlm, torch, ...) in one invocation so that a busy machine slows both alike; medians over the
# repeats, each repeat itself the median of its timed steps. Prints one table: workload, vlm ms, torch ms,
# ratio (torch / vlm: above 1 means vlm.c is faster), and the best run of each side with their ratio.
#
#   bash bench/cpu_side_by_side.sh                      sft sftcap dpo svco decode, 3 repeats, 2 threads
#   REPEATS=5 THREADS=2 WORKLOADS="sft decode" bash bench/cpu_side_by_side.sh
#   VLM_BASE=/path/to/old/vlm bash bench/cpu_side_by_side.sh    adds that binary as a third column
#
# Any OMP_WAIT_POLICY / GOMP_SPINCOUNT in the environment reaches both (PyTorch's CPU build uses libgomp too).
# Workloads (cli/cmd_bench.c and bench/torch_cpu_ref.py document them), the demo's final shape: sft batch 32;
# sftcap the same with every seventh row a 30-token caption answer (--caption-len 30: rows of different
# lengths, as the demo's SFT data; transformers pads them to the longest); dpo and svco 8 pairs, cached reference log-probs; the vision tower frozen in all; decode: greedy generation
# for 128 prompts of 22 tokens, 4 new tokens (the time of the whole generation: prefill and the steps).
set -euo pipefail
cd "$(dirname "$0")/.."
REPEATS=${REPEATS:-3} THREADS=${THREADS:-2} WORKLOADS=${WORKLOADS:-"sft sftcap dpo svco decode"}
VLM=${VLM:-./vlm} VLM_BASE=${VLM_BASE:-}
[ -x "$VLM" ] || { echo "cpu_side_by_side: build ./vlm first (make vlm)" >&2; exit 1; }
python3 -c "import torch, transformers" 2>/dev/null || {
  echo "cpu_side_by_side: needs torch and transformers (pip install torch --index-url https://download.pytorch.org/whl/cpu; pip install transformers)" >&2; exit 1; }
export REPEATS THREADS WORKLOADS VLM VLM_BASE
python3 - <<'EOF'
import json, os, statistics, subprocess, sys

reps, threads = int(os.environ["REPEATS"]), os.environ["THREADS"]
workloads = os.environ["WORKLOADS"].split()
batch = {"sft": 32, "sftcap": 32, "dpo": 8, "svco": 8, "decode": 128}
extra = {"sftcap": ["--caption-len", "30"]}  # a workload that is another's with these flags, on both sides
base = {"sftcap": "sft"}
env = dict(os.environ, OMP_NUM_THREADS=threads)

def last_json(out):
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])

def run_vlm(binary, w):
    cmd = [binary, "bench", "--shape", "llava-demo", "--workload", base.get(w, w), "--batch", str(batch[w]), "--device", "cpu",
           "--steps", "5", "--warmup", "2"] + extra.get(w, [])
    d = last_json(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)
    if w == "decode":  # the whole generation: prefill and every step, as transformers' generate is timed
        return d["batch"] * d["new_tokens"] / d["tokens_per_s"] * 1e3
    return d["ms_per_step"]

def run_torch(w):
    cmd = [sys.executable, "bench/torch_cpu_ref.py", base.get(w, w), "--threads", threads, "--iters", "5", "--warmup", "2"] + extra.get(w, [])
    return last_json(subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout)["ms_per_step"]

cols = [("vlm", lambda w: run_vlm(os.environ["VLM"], w)), ("torch", run_torch)]
if os.environ.get("VLM_BASE"):
    cols.insert(1, ("vlm_base", lambda w: run_vlm(os.environ["VLM_BASE"], w)))
times = {w: {c: [] for c, _ in cols} for w in workloads}
for r in range(reps):
    for w in workloads:
        for c, fn in cols:
            t = fn(w)
            times[w][c].append(t)
            print(f"repeat {r + 1}/{reps} {w:6s} {c:8s} {t:9.1f} ms", file=sys.stderr, flush=True)
policy = os.environ.get("OMP_WAIT_POLICY", "(default)")
print(f"\nllava-demo, {threads} threads, OMP_WAIT_POLICY={policy}, median of {reps} interleaved repeats (ms per step;"
      " decode: ms per 4-token generation of 128 prompts)")
# On a shared machine a run is slowed by whatever else runs then, so besides the medians the table gives
# the best run of each side (the least disturbed one) and their ratio.
head = "| workload | vlm.c ms |" + (" vlm.c base ms |" if "vlm_base" in times[workloads[0]] else "") + \
       " torch eager ms | torch / vlm.c | best vlm.c / torch ms | best torch / best vlm.c | all vlm.c runs | all torch runs |"
print(head)
print("|" + "---|" * (head.count("|") - 1))
for w in workloads:
    med = {c: statistics.median(v) for c, v in times[w].items()}
    best = {c: min(v) for c, v in times[w].items()}
    base = f" {med['vlm_base']:.1f} |" if "vlm_base" in med else ""
    print(f"| {w} | {med['vlm']:.1f} |{base} {med['torch']:.1f} | **{med['torch'] / med['vlm']:.2f}x** | "
          f"{best['vlm']:.1f} / {best['torch']:.1f} | {best['torch'] / best['vlm']:.2f}x | "
          f"{', '.join(f'{t:.0f}' for t in times[w]['vlm'])} | {', '.join(f'{t:.0f}' for t in times[w]['torch'])} |")
EOF
