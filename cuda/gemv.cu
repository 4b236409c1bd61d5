// Skinny matmuls: the matmuls of a decode step, out (N, OC) = inp (N, C) @ w (OC, C)^T + b with N <= GEMV_MAX_N
// (16) rows. Such a matmul streams the weights once (2 bytes each, used N times), so its speed is the memory
// bandwidth it reaches; cuBLASLt reached 58-88% of the copy ceiling at LLaVA-7B's decode shapes (notes/perf.md,
// kernel lab), and nothing else in the step comes close to the weights' 13 GB.
//
// One warp computes a strip of 16 output features over a slice of the C dimension with tensor-core MMAs
// (mma16816, cuda/mma.cuh: mma.sync m16n8k16, bf16 in, fp32 accumulate): A = 16 weight rows x 16 k, B = 16 k x 8 input rows, so one MMA
// serves up to 8 input rows and two serve 16. The MMA only sums over k, in any order, so the k elements are
// assigned to the fragment slots in the order that makes the loads simple: for each 32-wide k block, lane
// (g = lane / 4, t = lane % 4) loads 8 consecutive elements [8t, 8t + 8) of weight rows g and g + 8 and of
// input row g (one 16-byte load each), and the block's two MMAs (s = 0, 1) take elements [8t + 4s, 8t + 4s + 4)
// of them: fragment columns 2t, 2t + 1 <- elements 4s, 4s + 1 and columns 2t + 8, 2t + 9 <- 4s + 2, 4s + 3, the
// same map for A's rows and B's columns. Weight rows are read with evict-first loads (read once, they should not
// push the inputs out of L2); the inputs, which every warp shares, go through L1.
//
// The S warps of a block split C (S chosen from OC and C so that ~2,000 warps stream at once, never from N); their
// partial sums meet in shared memory and are added in warp order, so the result of a row does not depend on N or
// on the other rows: greedy decoding of a batch equals batch-of-one decoding as far as these matmuls go.
//
// The SwiGLU form (cuda_gemv_swiglu_forward) computes the gate and the up strip of the same features in one
// warp and writes silu(gate) * up, each rounded as the unfused matmul + swiglu_forward would round them: the
// (N, 2F) pre-activation never goes to memory and the step has one kernel less per layer.
#include "common.cuh"
#include "mma.cuh"

#ifndef VLM_CUDA_FP32  // the fp32 build (make test-cuda-fp32) is for exactness, not speed: cuBLAS serves it
typedef __nv_bfloat16 bf16;

#define SK_ROWS 16            // output features per warp: the MMA's M
#define SK_KBLOCK 32          // k elements per lane step: 8 per lane, 4 lanes per row
#define SK_MAX_WARPS 8        // warps per block, splitting C
#define SK_TARGET_WARPS 2048  // warps to have in flight: ~16 per SM on an H100, enough loads to cover the latency

// P = 1: out (N, OC) = inp @ w^T + b.  P = 2 (SwiGLU): features o < F = OC of the gate rows w[o] and the up rows
// w[F + o]; out (N, F) = silu(gate) * up.  NT = input-row tiles of 8 (N <= 8 * NT).
// grid: ceil(OC / 16) strips; block: S warps, warp w takes k blocks [w * kb_per_warp, (w + 1) * kb_per_warp).
template <int P, int NT>
__global__ void __launch_bounds__(32 * SK_MAX_WARPS)
    skinny_matmul_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                         const bf16 *__restrict__ b, int N, int C, int OC, int kb_per_warp) {
    constexpr int U = 4 / P;  // k blocks in flight per lane: 2 * P * U weight loads of 16 bytes
    __shared__ float partial[SK_MAX_WARPS][P * NT * 4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int S = blockDim.x / 32, strip = blockIdx.x * SK_ROWS;

    // the lane's two weight rows per part and its input row per tile; rows past the end read row 0 instead
    // (an MMA's output row or column depends only on its own A row or B column, and those are not stored)
    const bf16 *wrow[P][2], *xrow[NT];
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int o = strip + g + 8 * r;
            wrow[p][r] = w + ((size_t)p * OC + (o < OC ? o : 0)) * C;
        }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int n = nt * 8 + g;
        xrow[nt] = inp + (size_t)(n < N ? n : 0) * C;
    }

    float acc[P][NT][4];
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[p][nt][i] = 0.0f;

    const int kb_end = min((warp + 1) * kb_per_warp, (int)ceil_div(C, SK_KBLOCK));
    for (int kb = warp * kb_per_warp; kb < kb_end; kb += U) {
        int4 wv[U][P][2], xv[U][NT];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int k = (kb + u) * SK_KBLOCK + 8 * t;
            const bool in = kb + u < kb_end && k < C;  // C % 8 == 0: a lane's 8 elements are all in or all out
#pragma unroll
            for (int p = 0; p < P; p++)
#pragma unroll
                for (int r = 0; r < 2; r++)
                    wv[u][p][r] = in ? __ldcs(reinterpret_cast<const int4 *>(wrow[p][r] + k)) : make_int4(0, 0, 0, 0);
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
                xv[u][nt] = in ? __ldg(reinterpret_cast<const int4 *>(xrow[nt] + k)) : make_int4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++)
#pragma unroll
            for (int s = 0; s < 2; s++)
#pragma unroll
                for (int p = 0; p < P; p++) {
                    const uint32_t *w0 = reinterpret_cast<const uint32_t *>(&wv[u][p][0]);  // row g
                    const uint32_t *w8 = reinterpret_cast<const uint32_t *>(&wv[u][p][1]);  // row g + 8
                    const uint32_t a[4] = {w0[2 * s], w8[2 * s], w0[2 * s + 1], w8[2 * s + 1]};
#pragma unroll
                    for (int nt = 0; nt < NT; nt++) {
                        const uint32_t *x = reinterpret_cast<const uint32_t *>(&xv[u][nt]);
                        mma16816(acc[p][nt], a, x[2 * s], x[2 * s + 1]);
                    }
                }
    }

    // the split's partial sums, added in warp order by warp 0
    if (S > 1) {
#pragma unroll
        for (int p = 0; p < P; p++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) partial[warp][(p * NT + nt) * 4 + i][lane] = acc[p][nt][i];
        __syncthreads();
        if (warp != 0) return;
#pragma unroll
        for (int p = 0; p < P; p++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) {
                    float sum = partial[0][(p * NT + nt) * 4 + i][lane];
                    for (int v = 1; v < S; v++) sum += partial[v][(p * NT + nt) * 4 + i][lane];
                    acc[p][nt][i] = sum;
                }
    }

    // accumulator slot i of tile nt: feature strip + g + 8 * (i / 2), input row nt * 8 + 2t + i % 2
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const int o = strip + g + 8 * (i / 2), n = nt * 8 + 2 * t + i % 2;
            if (o >= OC || n >= N) continue;
            float y = acc[0][nt][i] + (b ? __bfloat162float(b[o]) : 0.0f);
            if (P == 2) {  // rounded as matmul_forward's outputs, then as swiglu_forward computes
                const float gate = __bfloat162float(__float2bfloat16_rn(y));
                const float up = __bfloat162float(__float2bfloat16_rn(acc[P - 1][nt][i] + (b ? __bfloat162float(b[OC + o]) : 0.0f)));
                y = gate * sigmoidf_(gate) * up;
            }
            out[(size_t)n * OC + o] = __float2bfloat16_rn(y);
        }
}

static int gemv_enabled(void) {  // VLM_GEMV=0: cuBLASLt for every matmul
    static int on = -1;
    if (on < 0) on = env_switch_on("VLM_GEMV");
    return on;
}

// Launches the kernel for OC features (of each of the P parts); 0 when the shape or alignment does not fit
template <int P>
static int skinny_matmul(bf16 *out, const bf16 *inp, const bf16 *w, const bf16 *b, int N, int C, int OC) {
    if (N < 1 || N > GEMV_MAX_N || C % 8 || !is_aligned16(inp) || !is_aligned16(w) || !gemv_enabled()) return 0;
    const int strips = (int)ceil_div(OC, SK_ROWS), kblocks = (int)ceil_div(C, SK_KBLOCK);
    int S = (int)ceil_div(SK_TARGET_WARPS, strips);
    S = S < 1 ? 1 : S > SK_MAX_WARPS ? SK_MAX_WARPS : S;
    const int kb_per_warp = (int)ceil_div(kblocks, S);
    S = (int)ceil_div(kblocks, kb_per_warp);  // no idle warps
    if (N <= 8) skinny_matmul_kernel<P, 1><<<strips, 32 * S, 0, stream_main()>>>(out, inp, w, b, N, C, OC, kb_per_warp);
    else skinny_matmul_kernel<P, 2><<<strips, 32 * S, 0, stream_main()>>>(out, inp, w, b, N, C, OC, kb_per_warp);
    CUDA_LAUNCH_CHECK();
    return 1;
}
#endif

// 1 when it took the matmul: N <= GEMV_MAX_N, C a multiple of 8 and 16-byte aligned rows
extern "C" int cuda_gemv_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC) {
#ifdef VLM_CUDA_FP32
    return 0;
#else
    return skinny_matmul<1>((bf16 *)out, (const bf16 *)inp, (const bf16 *)w, (const bf16 *)b, N, C, OC);
#endif
}

// out (N, F) = swiglu(inp (N, C) @ w (2F, C)^T + b (2F)): 1 when taken, on the same conditions
extern "C" int cuda_gemv_swiglu_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int F) {
#ifdef VLM_CUDA_FP32
    return 0;
#else
    return skinny_matmul<2>((bf16 *)out, (const bf16 *)inp, (const bf16 *)w, (const bf16 *)b, N, C, F);
#endif
}
