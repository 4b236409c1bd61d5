# temporary: decode with CUDA graphs, and which GPU test makes compute-sanitizer's run abort at exit
OUT=${OUT:-gpu-out}; mkdir -p $OUT
make -j16 all > $OUT/build.log 2>&1; echo "build rc=$?"; grep -E "error|warning" $OUT/build.log | head
VLM_CUDA_TESTS=1 timeout 100 build/test_vlm cuda > $OUT/test_cuda.log 2>&1; echo "test rc=$?"; grep -v '^ok' $OUT/test_cuda.log | tail -6
for b in 1 16; do timeout 100 ./vlm bench --shape llava-7b --workload decode --batch $b --device cuda --steps 3 --warmup 1 2>$OUT/dec$b.err | tee -a $OUT/bench.jsonl; done
VLM_CUDA_GRAPHS=0 timeout 100 ./vlm bench --shape llava-7b --workload decode --batch 1 --device cuda --steps 3 --warmup 1 2>/dev/null | sed 's/"impl": "vlm.c"/"impl": "vlm.c, VLM_CUDA_GRAPHS=0"/' | tee -a $OUT/bench.jsonl
timeout 150 python3 bench/torch_ref.py decode 2>$OUT/torch.err | tee -a $OUT/bench.jsonl
export VLM_CUDA_TESTS=1
CS="compute-sanitizer --tool memcheck --error-exitcode 1"
for t in cuda_matmul cuda_norms cuda_attention_cudnn cuda_optimizer cuda_rope cuda_logprob; do
  (timeout 120 $CS build/test_vlm $t > $OUT/cs_$t.log 2>&1; echo "cs $t rc=$?") &
done
wait
for t in cuda_matmul cuda_norms cuda_attention_cudnn cuda_optimizer cuda_rope cuda_logprob; do echo "== $t"; grep -v '^ok' $OUT/cs_$t.log | grep -v '^      ' | tail -5; done
cd $OUT && tar czf logs.tgz *.log *.err && rm -f *.log *.err
