// Matrix-vector products for the matmuls of a decode step with a few rows: out (N, OC) = inp (N, C) @
// w (OC, C)^T + b, N <= GEMV_MAX_N. Such a matmul only streams the weights (2 bytes each, used N times), so
// its speed is the memory bandwidth it reaches; cuBLASLt reached 60-88% of the copy ceiling at LLaVA-7B's
// shapes with N = 1 (notes/perf.md, kernel lab). Here one warp computes one output feature: it streams its
// weight row with 16-byte loads, several in flight per lane, marked evict-first (read once, they should not
// push the activations out of L2), and reads the N input rows, which every warp shares, through L1.
//
// Measured on the H100 (notes/perf.md): in the kernel lab, which flushes L2 before each run, it is ahead of
// cuBLASLt on the wide outputs (gate-up 22016: 88% vs 83% of the copy ceiling; lm_head: 92% vs 88%) and
// behind on the narrower ones (qkv, o, down: 78/55/68% vs 83/60/79%). The decode step itself, where the
// input rows stay in L2, was faster with it on every matmul: the LLaVA-7B B=1 step took 6.11 ms so, and
// 6.43 ms with it on the outputs of >= 16384 features only (6.52 and 6.62 ms on cuBLASLt alone in the
// same calls). So it takes every matmul of a few rows.
#include "common.cuh"

#ifndef VLM_CUDA_FP32  // the fp32 build (make test-cuda-fp32) is for exactness, not speed: cuBLAS serves it
typedef __nv_bfloat16 bf16;

#define GEMV_WARPS 8   // warps per block, one output feature each
#define GEMV_UNROLL 4  // 16-byte weight loads in flight per lane

template <int N>
__global__ void gemv_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                            const bf16 *__restrict__ b, int C, int OC) {
    const int o = blockIdx.x * GEMV_WARPS + threadIdx.x / 32, lane = threadIdx.x % 32;
    if (o >= OC) return;
    const bf16 *wrow = w + (size_t)o * C;
    float acc[N];
#pragma unroll
    for (int n = 0; n < N; n++) acc[n] = 0.0f;
    // C % 8 == 0: lane takes elements [c, c + 8) of each 256-element step, GEMV_UNROLL steps at a time
    for (int c0 = lane * 8; c0 < C; c0 += 256 * GEMV_UNROLL) {
        int4 wv[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++)
            if (c0 + u * 256 < C) wv[u] = __ldcs(reinterpret_cast<const int4 *>(wrow + c0 + u * 256));
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            const int c = c0 + u * 256;
            if (c >= C) break;
            const bf16 *wk = reinterpret_cast<const bf16 *>(&wv[u]);
#pragma unroll
            for (int n = 0; n < N; n++) {
                const int4 xv = *reinterpret_cast<const int4 *>(inp + (size_t)n * C + c);
                const bf16 *xk = reinterpret_cast<const bf16 *>(&xv);
#pragma unroll
                for (int k = 0; k < 8; k++) acc[n] += __bfloat162float(wk[k]) * __bfloat162float(xk[k]);
            }
        }
    }
    const float bias = b ? __bfloat162float(b[o]) : 0.0f;
#pragma unroll
    for (int n = 0; n < N; n++) {
        const float s = warp_sum(acc[n]);
        if (lane == 0) out[(size_t)n * OC + o] = __float2bfloat16_rn(s + bias);
    }
}

static int gemv_enabled(void) {  // VLM_GEMV=0: cuBLASLt for every matmul
    static int on = -1;
    if (on < 0) on = env_switch_on("VLM_GEMV");
    return on;
}

#endif

// 1 when it took the matmul: N <= GEMV_MAX_N, C a multiple of 8 and 16-byte aligned rows
extern "C" int cuda_gemv_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC) {
#ifdef VLM_CUDA_FP32
    return 0;
#else
    if (N < 1 || N > GEMV_MAX_N || C % 8 || !is_aligned16(inp) || !is_aligned16(w) || !gemv_enabled())
        return 0;
    bf16 *o = (bf16 *)out;
    const bf16 *x = (const bf16 *)inp, *wt = (const bf16 *)w, *bias = (const bf16 *)b;
    const unsigned grid = (unsigned)ceil_div((size_t)OC, GEMV_WARPS);
    switch (N) {
    case 1: gemv_kernel<1><<<grid, 32 * GEMV_WARPS, 0, stream_main()>>>(o, x, wt, bias, C, OC); break;
    case 2: gemv_kernel<2><<<grid, 32 * GEMV_WARPS, 0, stream_main()>>>(o, x, wt, bias, C, OC); break;
    case 3: gemv_kernel<3><<<grid, 32 * GEMV_WARPS, 0, stream_main()>>>(o, x, wt, bias, C, OC); break;
    default: gemv_kernel<4><<<grid, 32 * GEMV_WARPS, 0, stream_main()>>>(o, x, wt, bias, C, OC); break;
    }
    CUDA_LAUNCH_CHECK();
    return 1;
#endif
}
