#!/bin/bash
# Everything a GPU session checks, prepared here so that the few minutes of device time go to running, not
# debugging. Run from the repository root on the GPU machine, with .deps/ carried (make deps-device here
# first: the Debian packages and the tokenizers the demo reads). Every log lands under $OUT (the device tool
# brings that folder back; gpu-out/ when OUT is unset).
#
#   bash dev/gpu_session.sh                  `all`, one run within BUDGET seconds (default 480): builds, runs
#                                            make test-cuda, measures the ceilings (bf16 GEMM, device copy), then
#                                            every `vlm bench` workload next to bench/torch_ref.py and the
#                                            attention bench; writes $OUT/ratios.md and ratios.tsv, the table of
#                                            ratios (dev/gpu_table.py), and $OUT/status.tsv, one line per step
#   bash dev/gpu_session.sh --only sft,test_cuda      only those steps or groups (names as in status.tsv)
#   bash dev/gpu_session.sh --failed [FILE]  only the groups with a step that did not pass in FILE (default
#                                            gpu-work/status.tsv: the last run's, kept on a warm machine; on a
#                                            fresh one copy the returned status.tsv into gpu-work/ and carry it),
#                                            so both sides of a ratio are measured again in the same run
#   bash dev/gpu_session.sh --dry-run [...]  what a machine without a GPU can check (also chosen when nvidia-smi
#                                            finds none): the build (with CUDA where nvcc is), "skipped: no GPU"
#                                            for every step that needs one, and the bench steps and the table on
#                                            the CPU backend at the demo's shape against bench/torch_cpu_ref.py
#   bash dev/gpu_session.sh PHASE...         the longer checks, one device call each (set BUDGET=570 for them):
#     build test      make all, make test-cuda, the attention test bench
#     train           vlm bench sft|dpo|svco at llava-1.4b (also unpacked and with --recompute) next to torch_ref.py
#     svco50          the 50-step S-VCO run at llava-1.4b, 8 pairs (issue 5's check)
#     decode          vlm bench decode at llava-7b, B=1 and 16 (also on cuBLASLt alone and without programmatic
#                     launch), next to torch_ref.py; the decode kernels in the kernel lab
#     kernels         the kernel lab: build/bench_kernels and build/bench_attention bench
#     sanitize        compute-sanitizer memcheck on the GPU tests
#     asan            the GPU tests with the host code under ASan+UBSan (make test-cuda-asan)
#     fp32            the GPU tests on the fp32 build (make test-cuda-fp32)
#     export          a GPU-trained checkpoint exported with vlm export --to-hf, loaded by the machine's
#                     transformers, log-probs compared (issue 5's check)
#     demo            the miniature study, full size, one seed; its table and log under $OUT
#     dist            data-parallel training on the CUDA backend (train/dist.h): the NCCL library's version, a
#                     DPO run at world size 1 under mpirun, and 2 ranks on the one GPU (NCCL_MULTI_RANK_GPU_ENABLE=1,
#                     NCCL 2.30 or newer) whose losses must match the 1-rank run's (bf16 tolerance)
#
# Every step has its own timeout (STEP_TIMEOUT overrides them all), never longer than what is left of BUDGET,
# so one hang cannot eat the run; a step that no longer fits is recorded "skipped: budget". A failed step does
# not stop the others. The JSON lines the steps print collect in $OUT/bench.jsonl, each tagged with its step.
# Environment: OUT, BUDGET, STEP_TIMEOUT, JOBS (make -j; default: all cores), STEPS and WARMUP (timed and
# warm-up steps of every bench, default 6 and 2).
set -u
cd "$(dirname "$0")/.." || exit 2
OUT=${OUT:-gpu-out}
WORK=gpu-work  # git-ignored; kept between calls while the device machine stays warm
mkdir -p "$OUT" "$WORK"
JOBS=${JOBS:-$(nproc)}
BUDGET=${BUDGET:-480}
STEPS=${STEPS:-6}
WARMUP=${WARMUP:-2}
T_START=$SECONDS

usage() { sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; }

DRY=0 ONLY="" FAILED_FROM="" PHASES=()
while [ $# -gt 0 ]; do
    case $1 in
    --dry-run) DRY=1 ;;
    --only) ONLY=${2:?--only needs a list of steps or groups}; shift ;;
    --failed)
        FAILED_FROM=$WORK/status.tsv
        if [ $# -gt 1 ] && [ "${2#-}" = "$2" ] && [ -f "$2" ]; then FAILED_FROM=$2; shift; fi ;;
    -h | --help) usage; exit 0 ;;
    -*) echo "gpu_session: unknown option '$1'" >&2; usage >&2; exit 2 ;;
    *) PHASES+=("$1") ;;
    esac
    shift
done
[ ${#PHASES[@]} -eq 0 ] && PHASES=(all)

HAVE_GPU=0
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1 && HAVE_GPU=1
if [ $HAVE_GPU = 0 ] && [ $DRY = 0 ]; then
    echo "gpu_session: no GPU found (nvidia-smi -L): running as --dry-run" | tee -a "$OUT/summary.txt"
    DRY=1
fi
[ $DRY = 1 ] && HAVE_GPU=0

# --failed FILE: every group with a step whose status was not "pass"
if [ -n "$FAILED_FROM" ]; then
    [ -f "$FAILED_FROM" ] || { echo "gpu_session: --failed: no status file $FAILED_FROM" >&2; exit 2; }
    ONLY=$(awk -F'\t' 'NR > 1 && $3 != "pass" {print $2}' "$FAILED_FROM" | sort -u | paste -sd, -)
    if [ -z "$ONLY" ]; then echo "gpu_session: every step in $FAILED_FROM passed; nothing to repeat"; exit 0; fi
    echo "gpu_session: repeating the groups that did not pass in $FAILED_FROM: $ONLY" | tee -a "$OUT/summary.txt"
fi

STATUS=$OUT/status.tsv
printf 'step\tgroup\tstatus\trc\tseconds\tnote\n' >"$STATUS"

selected() {  # selected STEP GROUP: with --only / --failed, whether the step or its group was named (the
    [ -z "$ONLY" ] || [ "$2" = build ] && return 0  # build always runs: a no-op when up to date)
    case ",$ONLY," in *",$1,"* | *",$2,"*) return 0 ;; esac
    return 1
}

record() {  # record STEP GROUP STATUS RC SECONDS NOTE
    printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$@" >>"$STATUS"
    printf '%-22s %-8s %s%s\n' "$1" "$3" "$5s" "${6:+  ($6)}" | tee -a "$OUT/summary.txt"
}

# step NAME GROUP NEEDS TIMEOUT CMD...: NEEDS is gpu (skipped in a dry run) or - ; the command's output goes to
# $OUT/NAME.log, its JSON lines to bench.jsonl with "step": NAME in front
step() {
    local name=$1 group=$2 needs=$3 limit=${STEP_TIMEOUT:-$4}
    shift 4
    selected "$name" "$group" || return 0
    if [ "$needs" = gpu ] && [ $HAVE_GPU = 0 ]; then
        record "$name" "$group" skipped - 0 "skipped: no GPU"
        return 0
    fi
    local left=$((BUDGET - (SECONDS - T_START)))
    if [ $left -lt 20 ]; then
        record "$name" "$group" skipped - 0 "skipped: budget (${BUDGET}s spent)"
        return 0
    fi
    [ "$limit" -gt "$left" ] && limit=$left
    echo "== $name: $*" >>"$OUT/summary.txt"
    local t0=$SECONDS
    timeout -k 10 "$limit" "$@" >"$OUT/$name.log" 2>&1
    local rc=$? status=pass note=""
    [ $rc -ne 0 ] && status=fail
    [ $rc -eq 124 ] || [ $rc -eq 137 ] && status=timeout note="timed out after ${limit}s"
    grep -h '^{' "$OUT/$name.log" | sed "s/^{/{\"step\": \"$name\", /" >>"$OUT/bench.jsonl"
    record "$name" "$group" "$status" "$rc" "$((SECONDS - t0))" "$note"
    [ $status = pass ] || tail -n 5 "$OUT/$name.log" | sed 's/^/    /'
    return 0
}

# skip NAME GROUP WHY: a step that cannot run here, recorded as such
skip() { selected "$1" "$2" && record "$1" "$2" skipped - 0 "skipped: $3"; return 0; }

header() {
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with changes)')"
        if [ $HAVE_GPU = 1 ]; then nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
        else echo "device: none (dry run: CPU backend, $(nproc) cores)"; fi
        python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>/dev/null
        echo "phases: ${PHASES[*]}${ONLY:+, only $ONLY}; budget ${BUDGET}s"
    } | tee -a "$OUT/summary.txt"
}

# `all`: the steps in order of importance, so that what a short budget leaves out is the least needed. On the
# GPU: llava-1.4b (llava-7b for decode) against bench/torch_ref.py; in a dry run: the CPU backend at the demo's
# shape against bench/torch_cpu_ref.py, the same table code.
phase_all() {
    local targets="vlm build/test_vlm"
    make -s flags 2>/dev/null | grep -q '^NVCC=(CUDA backend not built)' || targets+=" bench-attention"
    step build build - 420 make -j"$JOBS" $targets
    step test_cuda test gpu 240 make test-cuda
    step ceiling ceiling gpu 60 python3 bench/torch_ref.py ceiling
    local dev=cuda shape=llava-1.4b torch="python3 bench/torch_ref.py" needs=gpu
    if [ $DRY = 1 ]; then dev=cpu shape=llava-demo torch="python3 bench/torch_cpu_ref.py" needs=-; fi
    local bench="./vlm bench --device $dev --steps $STEPS --warmup $WARMUP"
    local tr="--iters $STEPS --warmup $WARMUP"
    local has_torch=1
    python3 -c 'import torch, transformers' 2>/dev/null || has_torch=0
    torch_step() {  # torch_step NAME GROUP TIMEOUT ARGS...
        if [ $has_torch = 0 ]; then skip "$1" "$2" "no torch/transformers"; return 0; fi
        local n=$1 g=$2 l=$3
        shift 3
        step "$n" "$g" $needs "$l" $torch "$@"
    }
    step vlm_sft sft $needs 150 $bench --shape $shape --workload sft --batch 8
    torch_step torch_sft sft 150 sft --batch 8 $tr
    if [ $DRY = 0 ]; then torch_step torch_sft_compile sft 240 sft --batch 8 --compile $tr
    else skip torch_sft_compile sft "no GPU"; fi
    step vlm_svco svco $needs 150 $bench --shape $shape --workload svco --batch 8
    if ./vlm bench --help 2>/dev/null | grep -q -- '--ref'; then
        step vlm_svco_online svco $needs 150 $bench --shape $shape --workload svco --batch 8 --ref online
    else skip vlm_svco_online svco "vlm bench has no --ref option yet"; fi
    torch_step torch_svco svco 180 svco --batch 8 $tr
    local dshape=llava-7b
    [ $DRY = 1 ] && dshape=$shape
    step vlm_decode_b1 decode $needs 150 ./vlm bench --device $dev --shape $dshape --workload decode --batch 1 --steps 3 --warmup 1
    step vlm_decode_b16 decode $needs 150 ./vlm bench --device $dev --shape $dshape --workload decode --batch 16 --steps 3 --warmup 1
    if [ $DRY = 0 ]; then torch_step torch_decode decode 240 decode
    else
        torch_step torch_decode_b1 decode 120 decode --batch 1 --iters 3 --warmup 1
        torch_step torch_decode_b16 decode 120 decode --batch 16 --iters 3 --warmup 1
    fi
    step attention attention gpu 120 build/bench_attention bench --reps 10
    if [ $DRY = 0 ]; then torch_step torch_attention attention 90 attention
    else skip torch_attention attention "no GPU"; fi
    step vlm_dpo dpo $needs 150 $bench --shape $shape --workload dpo --batch 8
    if [ $DRY = 1 ]; then torch_step torch_dpo dpo 150 dpo --batch 8 $tr; fi
    python3 dev/gpu_table.py "$OUT" >/dev/null || echo "gpu_session: dev/gpu_table.py failed" | tee -a "$OUT/summary.txt"
}

header
for phase in "${PHASES[@]}"; do
    case $phase in
    all) phase_all ;;
    build)
        step build build - 420 make -j"$JOBS" all
        step build_bench build - 300 make -j"$JOBS" bench-attention bench-kernels
        ;;
    test)
        step test_cuda test gpu 300 make test-cuda
        step attention_test test gpu 300 build/bench_attention test
        ;;
    train)
        for w in sft dpo svco; do
            step "vlm_$w" train gpu 300 ./vlm bench --shape llava-1.4b --workload "$w" --batch 8 --device cuda
        done
        step vlm_svco_nopack train gpu 300 ./vlm bench --shape llava-1.4b --workload svco --batch 8 --device cuda --no-pack
        step vlm_sft_recompute train gpu 300 ./vlm bench --shape llava-1.4b --workload sft --batch 8 --device cuda --recompute
        step torch_sft train gpu 300 python3 bench/torch_ref.py sft
        step torch_sft_compile train gpu 300 python3 bench/torch_ref.py sft --compile
        step torch_svco train gpu 300 python3 bench/torch_ref.py svco
        ;;
    svco50)
        # 3 warm-up + 47 timed steps = 50 optimizer steps; bench stops at a non-finite loss
        step vlm_svco50 svco50 gpu 300 ./vlm bench --shape llava-1.4b --workload svco --batch 8 --device cuda --steps 47 --warmup 3
        ;;
    decode)
        for b in 1 16; do
            step "vlm_decode_b$b" decode gpu 300 ./vlm bench --shape llava-7b --workload decode --batch "$b" --device cuda --steps 3 --warmup 1
            # the same step with cuBLASLt for every matmul (no skinny kernel, no fused gate-up + SwiGLU)
            step "vlm_decode_b${b}_cublas" decode gpu 300 env VLM_GEMV=0 ./vlm bench --shape llava-7b --workload decode \
                --batch "$b" --device cuda --steps 3 --warmup 1
            # and with the skinny matmuls launched in plain stream order (no programmatic dependent launch)
            step "vlm_decode_b${b}_nopdl" decode gpu 300 env VLM_PDL=0 ./vlm bench --shape llava-7b --workload decode \
                --batch "$b" --device cuda --steps 3 --warmup 1
        done
        step torch_decode decode gpu 300 python3 bench/torch_ref.py decode
        # the decode-step kernels in the kernel lab: skinny matmuls against cuBLASLt, fused ops against unfused
        step lab_decode_skinny decode gpu 300 build/bench_kernels --only gemv7b
        step lab_decode_cublas decode gpu 300 env VLM_GEMV=0 build/bench_kernels --only gemv7b
        step lab_decode_norm decode gpu 300 build/bench_kernels --only rmsnorm
        step lab_decode_rope decode gpu 300 build/bench_kernels --only rope
        ;;
    kernels)
        step bench_kernels kernels gpu 300 build/bench_kernels --json "$OUT/kernels.json"
        step attention kernels gpu 300 build/bench_attention bench
        step torch_attention kernels gpu 300 python3 bench/torch_ref.py attention
        ;;
    sanitize)
        # The GPU tests that start no child process. A test binary that had started `vlm` children (the CLI
        # tests) aborted at exit under compute-sanitizer with a glibc heap message, with 0 memcheck errors,
        # whether the children were forked or spawned; with --target-processes application-only a child
        # hung (notes/perf.md, 2026-11-23). The same tests are clean under make test-cuda-asan.
        step sanitize sanitize gpu 300 env VLM_CUDA_TESTS=1 compute-sanitizer --tool memcheck --error-exitcode 1 \
            build/test_vlm cuda_build cuda_matmul cuda_norms cuda_elementwise cuda_rope cuda_attention_flash \
            cuda_attention_cudnn cuda_embeddings cuda_lora cuda_optim cuda_model cuda_copy_rows cuda_attention_decode \
            cuda_generate cuda_add_rmsnorm cuda_unaligned_slices cuda_optional_outputs cuda_deterministic
        ;;
    asan)
        step test_cuda_asan asan gpu 300 make -j"$JOBS" test-cuda-asan
        ;;
    fp32)
        step test_cuda_fp32 fp32 gpu 300 make -j"$JOBS" test-cuda-fp32
        ;;
    export)
        E=$WORK/export  # outside $OUT: the device tool brings back 8 files at most
        rm -rf "$E" && mkdir -p "$E"
        step export_train export gpu 300 ./vlm train --recipe dpo --model tests/fixtures/models/llava_gqa \
            --data tests/fixtures/train/dpo.jsonl --out "$E/run" --steps 5 --batch 4 --lr 1e-2 --warmup-steps 0 \
            --device cuda --quiet
        step export_hf export - 300 ./vlm export --model "$E/run/checkpoint-00000005" --to-hf "$E/hf"
        step export_ours export - 300 ./vlm logprobs --model "$E/hf" --data tests/fixtures/models/llava_gqa/records.jsonl \
            --device cpu --out "$E/ours.jsonl"
        step export_check export - 300 python3 tests/ref/check_export.py "$E/hf" \
            tests/fixtures/models/llava_gqa/records.jsonl "$E/ours.jsonl"
        cp "$E/ours.jsonl" "$OUT/export_ours.jsonl.log" 2>/dev/null
        ;;
    demo)
        step demo demo gpu 570 env SEEDS=1 DEMO_OUT=demo-out/full RESULTS="$OUT/demo-full" bash demo/run.sh full
        cp demo-out/full/demo.log "$OUT/demo-full.log" 2>/dev/null
        ;;
    dist)
        D=$WORK/dist
        rm -rf "$D" && mkdir -p "$D"
        # the version of the libnccl this vlm loads (the header's may differ), as an integer: 23001 is 2.30.1
        lib=$(ldd ./vlm 2>/dev/null | awk '/libnccl/ {print $3; exit}')
        ver=$(python3 -c "import ctypes,sys; v=ctypes.c_int(); ctypes.CDLL(sys.argv[1]).ncclGetVersion(ctypes.byref(v)); print(v.value)" \
            "$lib" 2>/dev/null)
        echo "dist: libnccl ${lib:-not linked} version ${ver:-unknown}" | tee -a "$OUT/summary.txt"
        args="--recipe dpo --model tests/fixtures/models/llava_gqa --data tests/fixtures/train/dpo.jsonl --steps 5 --batch 2 \
            --grad-accum 2 --lr 1e-3 --warmup-steps 0 --device cuda --attention flash --quiet"
        if ! command -v mpirun >/dev/null; then
            skip dist_w1 dist "no mpirun on this machine (Open MPI is not installed)"
            skip dist_w2 dist "no mpirun on this machine (Open MPI is not installed)"
        else
            mpi="mpirun --oversubscribe --allow-run-as-root"
            step dist_w1 dist gpu 180 $mpi -np 1 ./vlm train $args --out "$D/w1"
            if [ -n "$ver" ] && [ "$ver" -ge 23000 ]; then
                step dist_w2 dist gpu 180 $mpi -np 2 -x NCCL_MULTI_RANK_GPU_ENABLE=1 ./vlm train $args --out "$D/w2"
                # the losses of the two runs, step by step, within bf16's summation tolerance
                step dist_compare dist gpu 30 python3 -c "
import json, sys
a = [json.loads(l)['loss'] for l in open('$D/w1/metrics.jsonl')]
b = [json.loads(l)['loss'] for l in open('$D/w2/metrics.jsonl')]
print('1 rank ', a); print('2 ranks', b)
sys.exit(0 if len(a) == len(b) == 5 and all(abs(x - y) <= 2e-2 * max(1, abs(x)) for x, y in zip(a, b)) else 1)"
            else
                skip dist_w2 dist "NCCL ${ver:-unknown} is older than 2.30: two ranks cannot share one GPU"
            fi
        fi
        for w in w1 w2; do cp "$D/$w/metrics.jsonl" "$OUT/dist_${w}_metrics.log" 2>/dev/null; done
        ;;
    *)
        echo "unknown phase '$phase' (all build test train svco50 decode kernels sanitize asan fp32 export demo dist)" |
            tee -a "$OUT/summary.txt"
        ;;
    esac
done

# The status for --failed in the next call on this machine; what to ask for if it comes back cold.
cp "$STATUS" "$WORK/status.tsv"
again=$(awk -F'\t' 'NR > 1 && $3 != "pass" && $6 !~ /no GPU|no --ref/ {print $2}' "$STATUS" | sort -u | paste -sd, -)
# The device tool brings back at most 8 files: the logs travel as one archive beside summary.txt, status.tsv,
# bench.jsonl, ratios.md, ratios.tsv (and kernels.json).
(cd "$OUT" && ls *.log >/dev/null 2>&1 && tar -czf logs.tgz *.log && rm -f *.log)
echo "== status ($((SECONDS - T_START))s)"
column -t -s $'\t' "$STATUS" 2>/dev/null || cat "$STATUS"
if [ -f "$OUT/ratios.md" ]; then
    echo "== ratios"
    cat "$OUT/ratios.md"
fi
if [ -n "$again" ]; then
    echo "== to repeat what did not pass: bash dev/gpu_session.sh --failed   (or --only $again)"
fi
