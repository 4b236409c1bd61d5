// LoRA helpers: the strided add of a low-rank update into a fused projection's output, and dropout with a
// counter-based mask. Tested against cpu_add_strided and cpu_dropout (model/ops_cpu.c).
// Checked by: tests/test_cuda.c (make test-cuda): cuda_lora_ops.
#include <cuda_bf16.h>

#include "common.cuh"
#include "cuda_backend.h"

// out[n, c] += s * inp[n, c] over rows at their own strides
__global__ void add_strided_kernel(floatX *out, int out_stride, const floatX *inp, int inp_stride, int N, int C,
                                   float s) {
    const size_t total = (size_t)N * C;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t n = idx / C, c = idx % C;
        floatX *o = out + n * out_stride + c;
        *o = to_floatX(to_f32(*o) + s * to_f32(inp[n * inp_stride + c]));
    }
}

// out[i] = inp[i] * keep(seed, i) / (1 - p), with dropout_keep of model/ops.h: the CPU backend's mask bits
__global__ void dropout_kernel(floatX *out, const floatX *inp, size_t n, float p, unsigned long long seed) {
    const float k = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        out[i] = to_floatX(dropout_keep(seed, i, p) ? to_f32(inp[i]) * k : 0.0f);
}

extern "C" void cuda_add_strided(void *out, int out_stride, const void *inp, int inp_stride, int N, int C, float s) {
    if (N <= 0 || C <= 0) return;
    add_strided_kernel<<<grid_for((size_t)N * C, 256), 256, 0, stream_main()>>>((floatX *)out, out_stride,
                                                                            (const floatX *)inp, inp_stride, N, C, s);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_dropout(void *out, const void *inp, size_t n, float p, unsigned long long seed) {
    if (!n) return;
    dropout_kernel<<<grid_for(n, 256), 256, 0, stream_main()>>>((floatX *)out, (const floatX *)inp, n, p, seed);
    CUDA_LAUNCH_CHECK();
}
