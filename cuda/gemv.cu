// Skinny matmuls: the matmuls of a decode step, out (N, OC) = inp (N, C) @ w (OC, C)^T + b with N <= GEMV_MAX_N
// (16) rows. Such a matmul streams the weights once (2 bytes each, used N times), so its speed is the memory
// bandwidth it reaches; cuBLASLt reached 58-88% of the copy ceiling at LLaVA-7B's decode shapes (notes/perf.md,
// kernel lab), and nothing else in the step comes close to the weights' 13 GB.
//
// One warp computes a strip of 16 output features over a slice of the C dimension with tensor-core MMAs
// (mma16816, cuda/ptx.cuh: mma.sync m16n8k16, bf16 in, fp32 accumulate): A = 16 weight rows x 16 k, B = 16 k x 8 input rows, so one MMA
// serves up to 8 input rows and two serve 16. The MMA only sums over k, in any order, so the k elements are
// assigned to the fragment slots in the order that makes the loads simple: for each 32-wide k block, lane
// (g = lane / 4, t = lane % 4) loads 8 consecutive elements [8t, 8t + 8) of weight rows g and g + 8 and of
// input row g (one 16-byte load each), and the block's two MMAs (s = 0, 1) take elements [8t + 4s, 8t + 4s + 4)
// of them: fragment columns 2t, 2t + 1 <- elements 4s, 4s + 1 and columns 2t + 8, 2t + 9 <- 4s + 2, 4s + 3, the
// same map for A's rows and B's columns. The loads are cp.async copies into a ring of SK_STAGES k blocks in
// shared memory, so SK_STAGES - 1 blocks are in flight per warp while one is multiplied, and they take no
// registers. (Plain loads into registers, unrolled 4 k blocks deep, were scheduled by ptxas one k block at a
// time behind the MMA that needed the previous one: 55-65% of the copy ceiling where the copies reach ...%.)
//
// The S warps of a block split C (S chosen from OC and C so that ~2,000 warps stream at once, never from N); their
// partial sums meet in shared memory and are added in warp order, so the result of a row does not depend on N or
// on the other rows: greedy decoding of a batch equals batch-of-one decoding as far as these matmuls go.
//
// The SwiGLU form (cuda_gemv_swiglu_forward) computes the gate and the up strip of the same features in one
// warp and writes silu(gate) * up, each rounded as the unfused matmul + swiglu_forward would round them: the
// (N, 2F) pre-activation never goes to memory and the step has one kernel less per layer.
#include "common.cuh"
#include "ptx.cuh"

#ifndef VLM_CUDA_FP32  // the fp32 build (make test-cuda-fp32) is for exactness, not speed: cuBLAS serves it
typedef __nv_bfloat16 bf16;

#define SK_ROWS 16            // output features per warp: the MMA's M
#define SK_KBLOCK 32          // k elements per lane step: 8 per lane, 4 lanes per row
#define SK_MAX_WARPS 8        // warps per block, splitting C
#define SK_TARGET_WARPS 2048  // warps to have in flight: ~16 per SM on an H100
#define SK_STAGES 6           // k blocks per warp in shared memory: 5 in flight while one is multiplied
#define SK_SLOTS(P, NT) (2 * (P) + (NT))  // 16-byte copies per lane and k block: 2 weight rows per part, 1 input row per tile

// P = 1: out (N, OC) = inp @ w^T + b.  P = 2 (SwiGLU): features o < F = OC of the gate rows w[o] and the up rows
// w[F + o]; out (N, F) = silu(gate) * up.  NT = input-row tiles of 8 (N <= 8 * NT).
// grid: ceil(OC / 16) strips; block: S warps, warp w takes k blocks [w * kb_per_warp, (w + 1) * kb_per_warp);
// dynamic shared memory: S * SK_STAGES * SK_SLOTS(P, NT) * 32 int4.
template <int P, int NT>
__global__ void __launch_bounds__(32 * SK_MAX_WARPS)
    skinny_matmul_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                         const bf16 *__restrict__ b, int N, int C, int OC, int kb_per_warp) {
    constexpr int SLOTS = SK_SLOTS(P, NT);
    extern __shared__ int4 stages[];
    __shared__ float partial[SK_MAX_WARPS][P * NT * 4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4;
    const int S = blockDim.x / 32, strip = blockIdx.x * SK_ROWS;

    // the lane's two weight rows per part and its input row per tile; rows past the end read row 0 instead
    // (an MMA's output row or column depends only on its own A row or B column, and those are not stored)
    const bf16 *src[SLOTS];
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            const int o = strip + g + 8 * r;
            src[2 * p + r] = w + ((size_t)p * OC + (o < OC ? o : 0)) * C;
        }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        const int n = nt * 8 + g;
        src[2 * P + nt] = inp + (size_t)(n < N ? n : 0) * C;
    }

    // Each lane copies its own 16-byte slots of a k block into the block's stage and reads back only those,
    // so the warps never wait for each other. SK_STAGES - 1 k blocks are in flight while one is multiplied.
    int4 *mine = stages + (size_t)warp * SK_STAGES * SLOTS * 32 + lane;  // [stage][slot] at a stride of 32
    const int kb_begin = warp * kb_per_warp, kb_end = min(kb_begin + kb_per_warp, (int)ceil_div(C, SK_KBLOCK));
    auto issue = [&](int kb) {  // a commit group per k block, empty past the slice so the counting holds
        if (kb < kb_end) {
            const int k = kb * SK_KBLOCK + 8 * t, bytes = k < C ? 16 : 0;  // C % 8 == 0: all in or all out
            int4 *st = mine + (size_t)((kb - kb_begin) % SK_STAGES) * SLOTS * 32;
#pragma unroll
            for (int i = 0; i < SLOTS; i++) cp_async16(st + i * 32, bytes ? src[i] + k : src[i], bytes);
        }
        cp_async_commit();
    };

    float acc[P][NT][4];
#pragma unroll
    for (int p = 0; p < P; p++)
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) acc[p][nt][i] = 0.0f;

#pragma unroll
    for (int i = 0; i < SK_STAGES - 1; i++) issue(kb_begin + i);
    for (int kb = kb_begin; kb < kb_end; kb++) {
        cp_async_wait<SK_STAGES - 2>();  // k block kb has landed
        // refills the stage of k block kb - 1, whose values the previous MMAs consumed before this point
        issue(kb + SK_STAGES - 1);
        const int4 *st = mine + (size_t)((kb - kb_begin) % SK_STAGES) * SLOTS * 32;
        int4 v[SLOTS];
#pragma unroll
        for (int i = 0; i < SLOTS; i++) v[i] = st[i * 32];
#pragma unroll
        for (int s = 0; s < 2; s++)
#pragma unroll
            for (int p = 0; p < P; p++) {
                const uint32_t *w0 = reinterpret_cast<const uint32_t *>(&v[2 * p]);      // row g
                const uint32_t *w8 = reinterpret_cast<const uint32_t *>(&v[2 * p + 1]);  // row g + 8
                const uint32_t a[4] = {w0[2 * s], w8[2 * s], w0[2 * s + 1], w8[2 * s + 1]};
#pragma unroll
                for (int nt = 0; nt < NT; nt++) {
                    const uint32_t *x = reinterpret_cast<const uint32_t *>(&v[2 * P + nt]);
                    mma16816(acc[p][nt], a, x[2 * s], x[2 * s + 1]);
                }
            }
    }
    cp_async_wait<0>();  // nothing in flight at exit (the groups past the slice are empty)

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

template <int P, int NT>
static void launch_skinny(int strips, int S, bf16 *out, const bf16 *inp, const bf16 *w, const bf16 *b, int N, int C,
                          int OC, int kb_per_warp) {
    const size_t smem = (size_t)S * SK_STAGES * SK_SLOTS(P, NT) * 32 * sizeof(int4);
    static int configured = 0;  // once per instantiation: beyond 48 KiB of dynamic shared memory needs opting in
    if (!configured) {
        const int most = SK_MAX_WARPS * SK_STAGES * SK_SLOTS(P, NT) * 32 * (int)sizeof(int4);
        CUDA_CHECK(cudaFuncSetAttribute(skinny_matmul_kernel<P, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize, most));
        configured = 1;
    }
    skinny_matmul_kernel<P, NT><<<strips, 32 * S, smem, stream_main()>>>(out, inp, w, b, N, C, OC, kb_per_warp);
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
    if (N <= 8) launch_skinny<P, 1>(strips, S, out, inp, w, b, N, C, OC, kb_per_warp);
    else launch_skinny<P, 2>(strips, S, out, inp, w, b, N, C, OC, kb_per_warp);
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
