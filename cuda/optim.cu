// Optimizer ops: the sum of squares behind the global gradient norm, and AdamW (on fp32 master weights in
// the bf16 build).
// Tested against cpu_sumsq / cpu_adamw_update in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_optimizer, cuda_optional_outputs (no master copy),
// cuda_deterministic (sumsq), cuda_unaligned_slices.
#include <math.h>

#include "common.cuh"

#define THREADS 256
#define SUMSQ_BLOCKS 1024

// Stage 1: each block writes the sum of x^2 over its grid-stride share (8-element chunks summed in fp32,
// chunks accumulated in fp64) to partial[blockIdx.x]. The grid depends only on n, so the order of
// every addition is fixed: the result is the same bits on every run.
__global__ void sumsq_partial_kernel(double *partial, const floatX *x, size_t n, bool aligned) {
    double acc = 0.0;
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        float v[8];
        load8(v, x + i, cnt, aligned && cnt == 8);
        float s = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) s += v[k] * v[k];
        acc += s;
    }
    acc = block_sum(acc);
    if (threadIdx.x == 0) partial[blockIdx.x] = acc;
}

// Stage 2: one block sums the partials in a fixed order.
__global__ void sumsq_final_kernel(double *out, const double *partial, int count) {
    double acc = 0.0;
    for (int i = threadIdx.x; i < count; i += blockDim.x) acc += partial[i];
    acc = block_sum(acc);
    if (threadIdx.x == 0) *out = acc;
}

// *out (host) = sum of x[i]^2. Waits for the stream: the caller needs the number.
extern "C" void cuda_sumsq(double *out, const void *x, size_t n) {
    if (!n) {
        *out = 0.0;
        return;
    }
    unsigned blocks = (unsigned)ceil_div(ceil_div(n, 8), THREADS);
    if (blocks > SUMSQ_BLOCKS) blocks = SUMSQ_BLOCKS;
    double *partial = (double *)cuda_scratch((blocks + 1) * sizeof(double));
    sumsq_partial_kernel<<<blocks, THREADS, 0, stream_main()>>>(partial, (const floatX *)x, n, is_aligned16(x));
    CUDA_LAUNCH_CHECK();
    sumsq_final_kernel<<<1, 1024, 0, stream_main()>>>(partial + blocks, partial, (int)blocks);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cudaMemcpyAsync(out, partial + blocks, sizeof(double), cudaMemcpyDeviceToHost, stream_main()));
    CUDA_CHECK(cudaStreamSynchronize(stream_main()));
}

// AdamW (torch.optim.AdamW), as cpu_adamw_update computes it in fp32:
//   g = grad * grad_scale;  m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2
//   p -= lr * (wd * p + (m / bc1) / (sqrt(v / bc2) + eps)),  bc1 = 1 - b1^t, bc2 = 1 - b2^t (host, fp64 -> fp32)
// p is the fp32 master copy when there is one (then params = bf16(p), round to nearest even), else the
// params themselves. train/optim.c keeps masters only when the act type is narrower than fp32, so the
// fp32 build (VLM_CUDA_FP32) updates its float params in place with master == NULL.
__global__ void adamw_kernel(floatX *params, float *master, const floatX *grad, float *m, float *v, size_t n, float lr,
                             float b1, float b2, float one_minus_b1, float one_minus_b2, float eps, float wd, float bc1,
                             float bc2, float grad_scale, bool aligned) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        const bool vec = aligned && cnt == 8;
        float g[8], mv[8], vv[8], p[8];
        load8(g, grad + i, cnt, vec);
        load8f(mv, m + i, cnt, vec);
        load8f(vv, v + i, cnt, vec);
        if (master) load8f(p, master + i, cnt, vec);
        else load8(p, params + i, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float gk = g[k] * grad_scale;
            mv[k] = b1 * mv[k] + one_minus_b1 * gk;
            vv[k] = b2 * vv[k] + one_minus_b2 * gk * gk;
            const float mhat = mv[k] / bc1, vhat = vv[k] / bc2;
            p[k] -= lr * (wd * p[k] + mhat / (sqrtf(vhat) + eps));
        }
        store8f(m + i, mv, cnt, vec);
        store8f(v + i, vv, cnt, vec);
        if (master) store8f(master + i, p, cnt, vec);
        store8(params + i, p, cnt, vec);
    }
}

extern "C" void cuda_adamw_update(void *params, void *master, const void *grad, void *m, void *v, size_t n, float lr,
                                  float b1, float b2, float eps, float wd, int t, float grad_scale) {
    if (!n) return;
    const float bc1 = (float)(1.0 - pow((double)b1, t)), bc2 = (float)(1.0 - pow((double)b2, t));
    bool aligned = is_aligned16(params) && is_aligned16(grad) && is_aligned16(m) && is_aligned16(v) &&
                   (!master || is_aligned16(master));
    adamw_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)params, (float *)master, (const floatX *)grad, (float *)m, (float *)v, n, lr, b1, b2, 1.0f - b1,
        1.0f - b2, eps, wd, bc1, bc2, grad_scale, aligned);
    CUDA_LAUNCH_CHECK();
}
