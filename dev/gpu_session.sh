#!/bin/bash
# Everything a GPU session checks, in phases that each fit one device call (10 minutes), with every log
# under $OUT (the device tool brings that folder back). Run from the repository root on the GPU machine,
# with .deps/ carried (make deps-device here first: the Debian packages and the tokenizers the demo reads):
#
#   bash dev/gpu_session.sh build test        make all, make test-cuda, the attention test bench
#   bash dev/gpu_session.sh train             vlm bench sft|dpo|svco at llava-1.4b next to bench/torch_ref.py
#   bash dev/gpu_session.sh svco50            the 50-step S-VCO run at llava-1.4b, 8 pairs (issue 5's check)
#   bash dev/gpu_session.sh decode            vlm bench decode at llava-7b, B=1 and 16 (also on cuBLASLt alone), next
#                                             to torch_ref.py; the decode kernels in the kernel lab
#   bash dev/gpu_session.sh kernels           the kernel lab: build/bench_kernels and build/bench_attention bench
#   bash dev/gpu_session.sh sanitize          compute-sanitizer memcheck on the GPU tests
#   bash dev/gpu_session.sh asan              the GPU tests with the host code under ASan+UBSan (make test-cuda-asan)
#   bash dev/gpu_session.sh fp32              the GPU tests on the fp32 build (make test-cuda-fp32)
#   bash dev/gpu_session.sh export            a GPU-trained checkpoint exported with vlm export --to-hf, loaded by the
#                                             machine's transformers, log-probs compared (issue 5's check)
#   bash dev/gpu_session.sh demo              the miniature study, full size, one seed (resumes finished stages
#                                             while the machine stays warm); its table and log under $OUT
#
# Each phase appends "phase step rc seconds" lines to $OUT/summary.txt and keeps going after a failure,
# so one bad step does not cost the rest of the call; each step is stopped after STEP_TIMEOUT seconds
# (default 300, rc 124), so one hang does not either. The JSON lines of the benches collect in
# $OUT/bench.jsonl: vlm.c's and PyTorch's side by side, from the same call, as notes/perf.md wants.
set -u
OUT=${OUT:-gpu-out}
mkdir -p "$OUT"
JOBS=${JOBS:-16}

# run NAME CMD...: the command's output into $OUT/NAME.log, its JSON lines into bench.jsonl, a summary line
run() {
    local name=$1
    shift
    local t0=$SECONDS
    echo "== $name: $*" | tee -a "$OUT/summary.txt"
    timeout -k 10 "${STEP_TIMEOUT:-300}" "$@" >"$OUT/$name.log" 2>&1
    local rc=$?
    grep -h '^{' "$OUT/$name.log" >>"$OUT/bench.jsonl" 2>/dev/null
    echo "$name rc=$rc $((SECONDS - t0))s" | tee -a "$OUT/summary.txt"
    tail -n 4 "$OUT/$name.log"
    return 0
}

header() {
    {
        echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
        echo "commit: $(git rev-parse --short HEAD 2>/dev/null || echo unknown)$(git diff --quiet 2>/dev/null || echo ' (with changes)')"
        nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null
        python3 -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)' 2>/dev/null
    } | tee -a "$OUT/summary.txt"
}

header
for phase in "$@"; do
    case $phase in
    build)
        run build make -j"$JOBS" all
        run build_bench make -j"$JOBS" bench-attention bench-kernels
        ;;
    test)
        run test_cuda make test-cuda
        run attention_test build/bench_attention test
        ;;
    train)
        for w in sft dpo svco; do
            run "vlm_$w" ./vlm bench --shape llava-1.4b --workload "$w" --batch 8 --device cuda
        done
        run vlm_svco_nopack ./vlm bench --shape llava-1.4b --workload svco --batch 8 --device cuda --no-pack
        run vlm_sft_recompute ./vlm bench --shape llava-1.4b --workload sft --batch 8 --device cuda --recompute
        run torch_sft python3 bench/torch_ref.py sft
        run torch_sft_compile python3 bench/torch_ref.py sft --compile
        run torch_svco python3 bench/torch_ref.py svco
        ;;
    svco50)
        # 3 warm-up + 47 timed steps = 50 optimizer steps; bench stops at a non-finite loss
        run vlm_svco50 ./vlm bench --shape llava-1.4b --workload svco --batch 8 --device cuda --steps 47 --warmup 3
        ;;
    decode)
        for b in 1 16; do
            run "vlm_decode_b$b" ./vlm bench --shape llava-7b --workload decode --batch "$b" --device cuda --steps 3 --warmup 1
            # the same step with cuBLASLt for every matmul (no skinny kernel, no fused gate-up + SwiGLU)
            VLM_GEMV=0 run "vlm_decode_b${b}_cublas" ./vlm bench --shape llava-7b --workload decode --batch "$b" --device cuda --steps 3 --warmup 1
            # and with the skinny matmuls launched in plain stream order (no programmatic dependent launch)
            VLM_PDL=0 run "vlm_decode_b${b}_nopdl" ./vlm bench --shape llava-7b --workload decode --batch "$b" --device cuda --steps 3 --warmup 1
        done
        run torch_decode python3 bench/torch_ref.py decode
        # the decode-step kernels in the kernel lab: skinny matmuls against cuBLASLt, fused ops against unfused
        run lab_decode_skinny build/bench_kernels --only gemv7b
        VLM_GEMV=0 run lab_decode_cublas build/bench_kernels --only gemv7b
        run lab_decode_norm build/bench_kernels --only rmsnorm
        run lab_decode_rope build/bench_kernels --only rope
        ;;
    kernels)
        run bench_kernels build/bench_kernels --json "$OUT/kernels.json"
        run bench_attention build/bench_attention bench
        run torch_attention python3 bench/torch_ref.py attention
        ;;
    sanitize)
        # The GPU tests that start no child process. A test binary that had started `vlm` children (the CLI
        # tests) aborted at exit under compute-sanitizer with a glibc heap message, with 0 memcheck errors,
        # whether the children were forked or spawned; with --target-processes application-only a child
        # hung (notes/perf.md, 2026-11-23). The same tests are clean under make test-cuda-asan.
        VLM_CUDA_TESTS=1 run sanitize compute-sanitizer --tool memcheck --error-exitcode 1 build/test_vlm cuda_build \
            cuda_matmul cuda_norms cuda_elementwise cuda_rope cuda_attention_flash cuda_attention_cudnn cuda_embeddings \
            cuda_lora cuda_optim cuda_model cuda_copy_rows cuda_attention_decode cuda_generate cuda_add_rmsnorm
        ;;
    asan)
        run test_cuda_asan make -j"$JOBS" test-cuda-asan
        ;;
    fp32)
        run test_cuda_fp32 make -j"$JOBS" test-cuda-fp32
        ;;
    export)
        E=gpu-work/export  # outside $OUT: the device tool brings back 8 files at most
        rm -rf "$E" && mkdir -p "$E"
        run export_train ./vlm train --recipe dpo --model tests/fixtures/models/llava_gqa --data tests/fixtures/train/dpo.jsonl \
            --out "$E/run" --steps 5 --batch 4 --lr 1e-2 --warmup-steps 0 --device cuda --quiet
        run export_hf ./vlm export --model "$E/run/checkpoint-00000005" --to-hf "$E/hf"
        run export_ours ./vlm logprobs --model "$E/hf" --data tests/fixtures/models/llava_gqa/records.jsonl --device cpu \
            --out "$E/ours.jsonl"
        run export_check python3 tests/ref/check_export.py "$E/hf" tests/fixtures/models/llava_gqa/records.jsonl "$E/ours.jsonl"
        cp "$E/ours.jsonl" "$OUT/export_ours.jsonl.log"
        ;;
    demo)
        run demo env SEEDS=1 DEMO_OUT=demo-out/full RESULTS="$OUT/demo-full" bash demo/run.sh full
        cp demo-out/full/demo.log "$OUT/demo-full.log" 2>/dev/null
        ;;
    *)
        echo "unknown phase '$phase' (build test train svco50 decode kernels sanitize asan fp32 export demo)" | tee -a "$OUT/summary.txt"
        ;;
    esac
done

# The device tool brings back at most 8 files: the logs travel as one archive beside summary.txt,
# bench.jsonl and kernels.json.
(cd "$OUT" && ls *.log >/dev/null 2>&1 && tar -czf logs.tgz *.log && rm -f *.log)
echo "== summary"
cat "$OUT/summary.txt"
