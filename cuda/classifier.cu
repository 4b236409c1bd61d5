// The classifier: log-softmax over the vocabulary, the label's log-prob and its gradient, never storing
// probabilities. One block per row, online max/sum in fp32, 128-bit loads. Tested against
// cpu_logprob_forward / cpu_logprob_backward in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_logprob, cuda_unaligned_slices.
#include <math.h>

#include "common.cuh"

// (max, sum of exp(x - max)) pairs combine as  M = max(m1, m2),  s = s1 e^(m1 - M) + s2 e^(m2 - M);
// (-inf, 0) is the identity (combined with it, a pair comes back exactly: 0 e^-inf + s e^0)
struct LseCombine {
    __device__ __forceinline__ float2 operator()(float2 a, float2 b) const {
        const float m = fmaxf(a.x, b.x);
        if (m == -INFINITY) return make_float2(-INFINITY, 0.0f);
        return make_float2(m, a.y * expf(a.x - m) + b.y * expf(b.x - m));
    }
};

// lse[n] = log sum_i exp(logits[n, i]);  logp[n] = logits[n, target] - lse[n]  (0 when target < 0,
// NaN when target >= V so that a bad label cannot pass silently)
__global__ void logprob_forward_kernel(float *logp, float *lse, const floatX *logits, const int *targets, int V,
                                       bool vec) {
    const int n = blockIdx.x;
    const floatX *x = logits + (size_t)n * V;
    float2 ms = make_float2(-INFINITY, 0.0f);
    for (int c0 = threadIdx.x * 8; c0 < V; c0 += blockDim.x * 8) {
        const int cnt = V - c0 < 8 ? V - c0 : 8;
        float v[8];
        load8(v, x + c0, cnt, vec);
        float cm = -INFINITY;
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < cnt) cm = fmaxf(cm, v[k]);
        if (cm > ms.x) {  // rescale the running sum to the new maximum once per chunk
            ms.y *= expf(ms.x - cm);
            ms.x = cm;
        }
        if (ms.x == -INFINITY) continue;  // everything so far is -inf: contributes nothing
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < cnt) ms.y += expf(v[k] - ms.x);
    }
    const float2 total = block_reduce(ms, make_float2(-INFINITY, 0.0f), LseCombine());
    if (threadIdx.x != 0) return;
    const float l = total.x + logf(total.y);
    lse[n] = l;
    const int t = targets[n];
    logp[n] = t < 0 ? 0.0f : t < V ? to_f32(x[t]) - l : NAN;
}

// dlogits[n, i] = dlogp[n] * ((i == target) - exp(logits[n, i] - lse[n])), zero rows where target < 0.
// In place allowed: each chunk is read before it is written, by the same thread.
__global__ void logprob_backward_kernel(floatX *dlogits, const floatX *logits, const float *lse, const int *targets,
                                        const float *dlogp, int V, bool vec) {
    const int n = blockIdx.x;
    const floatX *x = logits + (size_t)n * V;
    floatX *dx = dlogits + (size_t)n * V;
    const int t = targets[n];
    const float g = t < 0 ? 0.0f : dlogp[n], l = t < 0 ? 0.0f : lse[n];
    for (int c0 = threadIdx.x * 8; c0 < V; c0 += blockDim.x * 8) {
        const int cnt = V - c0 < 8 ? V - c0 : 8;
        float v[8];
        if (t >= 0) {
            load8(v, x + c0, cnt, vec);
#pragma unroll
            for (int k = 0; k < 8; k++) v[k] = g * ((c0 + k == t ? 1.0f : 0.0f) - expf(v[k] - l));
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++) v[k] = 0.0f;
        }
        store8(dx + c0, v, cnt, vec);
    }
}

// threads per row: one 8-wide chunk each, between 32 and 1024 threads (rows over 8192 columns loop)
static int row_threads(int V) {
    size_t chunks = ceil_div((size_t)V, 8);
    size_t t = ceil_div(chunks, 32) * 32;
    return t < 32 ? 32 : t > 1024 ? 1024 : (int)t;
}

extern "C" void cuda_logprob_forward(void *logp, void *lse, const void *logits, const int *targets, int N, int V) {
    if (N <= 0 || V <= 0) return;
    bool vec = V % 8 == 0 && is_aligned16(logits);
    logprob_forward_kernel<<<N, row_threads(V), 0, stream_main()>>>((float *)logp, (float *)lse, (const floatX *)logits,
                                                                     targets, V, vec);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_logprob_backward(void *dlogits, const void *logits, const void *lse, const int *targets,
                                      const void *dlogp, int N, int V) {
    if (N <= 0 || V <= 0) return;
    bool vec = V % 8 == 0 && is_aligned16(logits) && is_aligned16(dlogits);
    logprob_backward_kernel<<<N, row_threads(V), 0, stream_main()>>>((floatX *)dlogits, (const floatX *)logits,
                                                                      (const float *)lse, targets, (const float *)dlogp,
                                                                      V, vec);
    CUDA_LAUNCH_CHECK();
}
