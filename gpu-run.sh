# temporary: last device call of the session
OUT=${OUT:-gpu-out}; mkdir -p $OUT
T() { local t=$1; shift; timeout -k 5 $t "$@"; }
make -j16 all > $OUT/build.log 2>&1; echo "build rc=$?"; grep -E "error|warning" $OUT/build.log | head -5
VLM_CUDA_TESTS=1 T 100 build/test_vlm cuda > $OUT/test_cuda.log 2>&1; echo "test-cuda rc=$?"; grep -v '^ok' $OUT/test_cuda.log | tail -4
T 80 ./vlm bench --shape llava-7b --workload decode --batch 1 --device cuda --steps 3 --warmup 1 2>/dev/null | tee -a $OUT/bench.jsonl
VLM_GEMV=0 T 80 ./vlm bench --shape llava-7b --workload decode --batch 1 --device cuda --steps 3 --warmup 1 2>/dev/null | sed 's/"impl": "vlm.c"/"impl": "vlm.c, VLM_GEMV=0"/' | tee -a $OUT/bench.jsonl
T 120 python3 bench/torch_ref.py decode 2>$OUT/torch.log | tee -a $OUT/bench.jsonl
export VLM_CUDA_TESTS=1
CS="compute-sanitizer --tool memcheck --error-exitcode 1"
(T 150 $CS build/test_vlm cuda_build cuda_matmul cuda_norms cuda_elementwise cuda_rope cuda_attention_flash cuda_attention_cudnn cuda_embeddings cuda_lora cuda_optim cuda_model cuda_copy_rows cuda_attention_decode cuda_generate > $OUT/csA.log 2>&1; echo "csA (no child processes) rc=$?") &
(T 150 $CS --target-processes application-only build/test_vlm cuda_train_recipes cuda_resume cuda_train_clip cuda_recompute cuda_sample_cli cuda_logprob > $OUT/csB.log 2>&1; echo "csB (tests with child processes, children not instrumented) rc=$?") &
wait
for f in csA csB; do echo "== $f"; grep -v '^ok' $OUT/$f.log | grep -v '^      ' | tail -6; done
cd $OUT && tar czf logs.tgz *.log && rm -f *.log
