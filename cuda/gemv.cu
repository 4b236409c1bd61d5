// Skinny matmuls: the matmuls of a decode step, out (N, OC) = inp (N, C) @ w (OC, C)^T + b with N <= GEMV_MAX_N
// (16) rows. Such a matmul streams the weights once (2 bytes each, used N times), so its speed is the memory
// bandwidth it reaches; cuBLASLt reached 58-88% of the copy ceiling at LLaVA-7B's decode shapes (notes/perf.md,
// kernel lab), and nothing else in the step comes close to the weights' 13 GB.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_matmul (N = 1..16), cuda_matmul_swiglu,
// cuda_skinny_matmul_batch_invariant.
//
// A warp computes a strip of 16 output features over a slice of C with tensor-core MMAs (mma16816 in
// cuda/ptx.cuh: m16n8k16, bf16 in, fp32 accumulate): A = 16 weight rows x 16 k, B = 16 k x 8 input rows, so one
// MMA serves up to 8 input rows and two serve 16.
//
// Loads. The weights come in stages of SK_KS k (256 bytes of each of the strip's rows), copied by cp.async into a
// ring of SK_STAGES stages in shared memory, so SK_STAGES - 1 stages are in flight while one is multiplied and
// the copies hold no registers. Each copy instruction moves 256 contiguous bytes of two rows: DRAM sees long runs
// of one row, not 64-byte pieces of many. (Two earlier forms measured 48-69% of the copy ceiling: 16-byte loads
// laid out as the MMA fragments, 64 bytes of each of 8 rows per instruction, whether into registers, where ptxas
// issued one k block at a time, or through a cp.async ring of such pieces.) The input rows ride along in the
// same stages.
//
// Fragments. The MMA only sums over k, in any order, so the k elements go to the fragment slots in the order
// that makes the shared-memory reads simple: in each 32-wide k block, lane (g = lane / 4, t = lane % 4) reads
// the 16-byte chunk t of weight rows g and g + 8 and of input row g, and the block's two MMAs (s = 0, 1) take
// elements [4s, 4s + 4) of each chunk: fragment columns 2t, 2t + 1 <- elements 4s, 4s + 1 and columns 2t + 8,
// 2t + 9 <- 4s + 2, 4s + 3, the same map for A's rows and B's columns. Chunks are stored at position
// c ^ 4 (row & 1) within their row, which keeps both the copies and these reads free of bank conflicts.
//
// Work split. The S warps of a block split C and add their partial sums in warp order through shared memory;
// as many blocks as fit at once walk the strips (skinny_split picks S). S depends on OC and C only, never on
// N, so the result of a row does not depend on the other rows: greedy decoding of a batch equals batch-of-one
// decoding as far as these matmuls go (tests/test_cuda.c, cuda_skinny_matmul_batch_invariant).
//
// Launch. For 9-16 rows the kernel is a programmatic dependent of the kernel before it: it starts streaming
// weights while that one finishes and waits for it only before reading the inputs (launch_skinny).
//
// Measured on the H100 (notes/perf.md): 60-94% of the copy ceiling at LLaVA-7B's shapes, ahead of cuBLASLt
// except at qkv with one row; the B=1 decode step 5.73-5.80 ms against 5.96-6.11 on cuBLASLt alone, B=16
// 7.34 against 7.81-7.84.
//
// The SwiGLU form (cuda_gemv_swiglu_forward) computes the gate and the up strip of the same features in one
// warp and writes silu(gate) * up, each rounded as the unfused matmul + swiglu_forward would round them: the
// (N, 2F) pre-activation never goes to memory and the step has one kernel less per layer.
#include "common.cuh"
#include "ptx.cuh"

#ifndef VLM_CUDA_FP32  // the fp32 build (make test-cuda-fp32) is for exactness, not speed: cuBLAS serves it
typedef __nv_bfloat16 bf16;

#define SK_ROWS 16          // output features per strip: the MMA's M
#define SK_KS 128           // k per stage: 256 bytes of a row, 16 chunks of 16 bytes
#define SK_CHUNKS (SK_KS / 8)
#define SK_STAGES 3         // stages per warp: 2 in flight (8 KiB of weights) while one is multiplied
#define SK_MAX_WARPS 4      // warps per block, splitting C
#define SK_TARGET_WARPS 1024  // ~8 per SM on an H100, each with 8 KiB of weights in flight
// rows of a stage: 16 weight rows per part (P = 2: gate and up), then 8 input rows per tile
#define SK_TILE_ROWS(P, NT) (SK_ROWS * (P) + 8 * (NT))

// where chunk c of stage row r is kept (in 16-byte units from the stage's start)
__device__ __forceinline__ int sk_slot(int r, int c) { return r * SK_CHUNKS + (c ^ ((r & 1) << 2)); }

// P = 1: out (N, OC) = inp @ w^T + b.  P = 2 (SwiGLU): features o < F = OC of the gate rows w[o] and the up rows
// w[F + o]; out (N, F) = silu(gate) * up.  NT = input-row tiles of 8 (N <= 8 * NT).
// grid: any number of blocks, walking the ceil(OC / 16) strips; block: S warps, warp w takes the stages
// [w * ks_per_warp, (w + 1) * ks_per_warp) of C; dynamic shared memory: S * SK_STAGES * SK_TILE_ROWS * 256 bytes.
template <int P, int NT>
__global__ void __launch_bounds__(32 * SK_MAX_WARPS)
    skinny_matmul_kernel(bf16 *__restrict__ out, const bf16 *__restrict__ inp, const bf16 *__restrict__ w,
                         const bf16 *__restrict__ b, int N, int C, int OC, int ks_per_warp) {
    constexpr int R = SK_TILE_ROWS(P, NT), COPIES = R * SK_CHUNKS / 32;  // 16-byte copies per lane and stage
    extern __shared__ int4 ring_all[];
    __shared__ float partial[SK_MAX_WARPS][P * NT * 4][32];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, t = lane % 4, S = blockDim.x / 32;
    int4 *ring = ring_all + (size_t)warp * SK_STAGES * R * SK_CHUNKS;
    const int ks_begin = warp * ks_per_warp, ks_end = min(ks_begin + ks_per_warp, (int)ceil_div(C, SK_KS));
    const int strips = (int)ceil_div(OC, SK_ROWS);
    griddep_launch_dependents();  // the next matmul (down after gate-up) may start streaming its weights

    for (int strip = blockIdx.x; strip < strips; strip += gridDim.x) {
        const int o0 = strip * SK_ROWS;
        // copy i of a stage: row 2i + lane / 16, chunk lane % 16. Weight rows past OC and input rows past N read
        // row 0 instead: an MMA's output row or column depends only on its own A row or B column, and those
        // are not stored.
        const bf16 *src[COPIES];
#pragma unroll
        for (int i = 0; i < COPIES; i++) {
            const int r = 2 * i + lane / 16;
            if (r < SK_ROWS * P) {
                const int p = r / SK_ROWS, o = o0 + r % SK_ROWS;
                src[i] = w + ((size_t)p * OC + (o < OC ? o : 0)) * C;
            } else {
                const int n = r - SK_ROWS * P;
                src[i] = inp + (size_t)(n < N ? n : 0) * C;
            }
        }
        // the copies [first, last) of stage ks: the weight rows are copies [0, 8P), the input rows the rest
        auto copy = [&](int ks, int first, int last) {
            if (ks >= ks_end) return;
            int4 *st = ring + (size_t)((ks - ks_begin) % SK_STAGES) * R * SK_CHUNKS;
            const int c = lane % 16, k = ks * SK_KS + 8 * c, bytes = k < C ? 16 : 0;  // C % 8 == 0
#pragma unroll
            for (int i = 0; i < COPIES; i++)
                if (i >= first && i < last) cp_async16(st + sk_slot(2 * i + lane / 16, c), bytes ? src[i] + k : src[i], bytes);
        };
        constexpr int WCOPIES = SK_ROWS * P / 2;
        auto issue = [&](int ks) {  // one commit group per stage, empty past the slice so the counting holds
            copy(ks, 0, COPIES);
            cp_async_commit();
        };

        float acc[P][NT][4];
#pragma unroll
        for (int p = 0; p < P; p++)
#pragma unroll
            for (int nt = 0; nt < NT; nt++)
#pragma unroll
                for (int i = 0; i < 4; i++) acc[p][nt][i] = 0.0f;

        // The weights do not depend on the kernel before this one, the inputs do: launched as a programmatic
        // dependent (launch_skinny does so for 9-16 rows), it starts streaming its first weights while that kernel finishes,
        // and waits for it (griddep_wait) only before copying inputs. The first commit group holds all of
        // the prologue's weight copies, which only makes the first wait a little longer.
#pragma unroll
        for (int i = 0; i < SK_STAGES - 1; i++) copy(ks_begin + i, 0, WCOPIES);
        griddep_wait();
#pragma unroll
        for (int i = 0; i < SK_STAGES - 1; i++) {
            copy(ks_begin + i, WCOPIES, COPIES);
            cp_async_commit();
        }
        for (int ks = ks_begin; ks < ks_end; ks++) {
            cp_async_wait<SK_STAGES - 2>();  // stage ks has landed
            __syncwarp();                    // for every lane: the chunks a lane reads were copied by others
            // refills the stage of ks - 1, which every lane finished reading before the barrier above
            issue(ks + SK_STAGES - 1);
            const int4 *st = ring + (size_t)((ks - ks_begin) % SK_STAGES) * R * SK_CHUNKS;
#pragma unroll
            for (int j = 0; j < SK_CHUNKS / 4; j++) {  // 32-wide k blocks: chunk 4j + t
                const int c = 4 * j + t;
                int4 wv[P][2], xv[NT];
#pragma unroll
                for (int p = 0; p < P; p++) {
                    wv[p][0] = st[sk_slot(SK_ROWS * p + g, c)];
                    wv[p][1] = st[sk_slot(SK_ROWS * p + g + 8, c)];
                }
#pragma unroll
                for (int nt = 0; nt < NT; nt++) xv[nt] = st[sk_slot(SK_ROWS * P + 8 * nt + g, c)];
#pragma unroll
                for (int s = 0; s < 2; s++)
#pragma unroll
                    for (int p = 0; p < P; p++) {
                        const uint32_t *w0 = reinterpret_cast<const uint32_t *>(&wv[p][0]);  // row g
                        const uint32_t *w8 = reinterpret_cast<const uint32_t *>(&wv[p][1]);  // row g + 8
                        const uint32_t a[4] = {w0[2 * s], w8[2 * s], w0[2 * s + 1], w8[2 * s + 1]};
#pragma unroll
                        for (int nt = 0; nt < NT; nt++) {
                            const uint32_t *x = reinterpret_cast<const uint32_t *>(&xv[nt]);
                            mma16816(acc[p][nt], a, x[2 * s], x[2 * s + 1]);
                        }
                    }
            }
        }
        cp_async_wait<0>();  // the ring is reused by the next strip (the groups past the slice are empty)
        __syncwarp();

        // the split's partial sums, added in warp order by warp 0
        if (S > 1) {
#pragma unroll
            for (int p = 0; p < P; p++)
#pragma unroll
                for (int nt = 0; nt < NT; nt++)
#pragma unroll
                    for (int i = 0; i < 4; i++) partial[warp][(p * NT + nt) * 4 + i][lane] = acc[p][nt][i];
            __syncthreads();
            if (warp == 0) {
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
            __syncthreads();  // partial is rewritten for the next strip
            if (warp != 0) continue;
        }

        // accumulator slot i of tile nt: feature o0 + g + 8 * (i / 2), input row nt * 8 + 2t + i % 2
#pragma unroll
        for (int nt = 0; nt < NT; nt++)
#pragma unroll
            for (int i = 0; i < 4; i++) {
                const int o = o0 + g + 8 * (i / 2), n = nt * 8 + 2 * t + i % 2;
                if (o >= OC || n >= N) continue;
                float y = acc[0][nt][i] + (b ? __bfloat162float(b[o]) : 0.0f);
                if (P == 2) {  // rounded as matmul_forward's outputs, then as swiglu_forward computes
                    const float gate = __bfloat162float(__float2bfloat16_rn(y));
                    const float up = __bfloat162float(
                        __float2bfloat16_rn(acc[P - 1][nt][i] + (b ? __bfloat162float(b[OC + o]) : 0.0f)));
                    y = gate * sigmoidf_(gate) * up;
                }
                out[(size_t)n * OC + o] = __float2bfloat16_rn(y);
            }
    }
}

static int gemv_enabled(void) {  // VLM_GEMV=0: cuBLASLt for every matmul
    static int on = -1;
    if (on < 0) on = env_switch_on("VLM_GEMV");
    return on;
}

// Blocks of S warps that fit on the GPU at once (cached per S; the first call also allows the kernel the shared
// memory it needs beyond the default 48 KiB)
template <int P, int NT>
static int resident_blocks(int S) {
    static int resident[SK_MAX_WARPS + 1];
    if (!resident[S]) {
        const int per_warp = SK_STAGES * SK_TILE_ROWS(P, NT) * SK_CHUNKS * (int)sizeof(int4);
        CUDA_CHECK(cudaFuncSetAttribute(skinny_matmul_kernel<P, NT>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        SK_MAX_WARPS * per_warp));
        int per_sm = 0, dev = 0, sms = 0;
        CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, skinny_matmul_kernel<P, NT>, 32 * S,
                                                                 (size_t)S * per_warp));
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
        resident[S] = per_sm * sms > 0 ? per_sm * sms : 1;
    }
    return resident[S];
}

// Warps per block (the split of C). Few strips: enough splits for ~SK_TARGET_WARPS warps. Many: the split whose
// rounds of resident blocks finish soonest, ceil(strips / resident) / S (gate-up fits one round unsplit, lm_head's
// 2004 strips are quicker in 4 rounds of a third than in 2 whole ones). Taken from the 16-row kernel's residency
// whatever N is, so that N never changes the order of a row's sums.
template <int P>
static int skinny_split(int strips, int stages) {
    int lo = (int)ceil_div(SK_TARGET_WARPS, strips), best = 0;
    lo = lo > SK_MAX_WARPS ? SK_MAX_WARPS : lo;
    double best_cost = 0;
    for (int S = lo; S <= SK_MAX_WARPS; S++) {
        const double cost = (double)ceil_div(strips, resident_blocks<P, 2>(S)) / S;
        if (!best || cost < best_cost - 1e-9) best = S, best_cost = cost;
    }
    return best < stages ? best : stages;
}

template <int P, int NT>
static void launch_skinny(int S, bf16 *out, const bf16 *inp, const bf16 *w, const bf16 *b, int N, int C, int OC,
                          int ks_per_warp) {
    const size_t smem = (size_t)S * SK_STAGES * SK_TILE_ROWS(P, NT) * SK_CHUNKS * sizeof(int4);
    const int strips = (int)ceil_div(OC, SK_ROWS), resident = resident_blocks<P, NT>(S);
    // As a programmatic dependent for two row tiles (9-16 rows) only: on the H100 the LLaVA-7B B=16 step took
    // 7.34 ms so against 7.56 in plain stream order, while the B=1 step was slower so (5.81-5.83 against
    // 5.73-5.79 ms, three pairs). VLM_PDL=0: plain stream order always.
    static int pdl = -1;
    if (pdl < 0) pdl = env_switch_on("VLM_PDL");
    cudaLaunchAttribute attr;
    attr.id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr.val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(strips < resident ? strips : resident);
    cfg.blockDim = dim3(32 * S);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream_main();
    cfg.attrs = &attr;
    cfg.numAttrs = pdl && NT == 2 ? 1 : 0;
    CUDA_CHECK(cudaLaunchKernelEx(&cfg, skinny_matmul_kernel<P, NT>, out, inp, w, b, N, C, OC, ks_per_warp));
}

// 0 when the shape or alignment does not fit; OC features (of each of the P parts)
template <int P>
static int skinny_matmul(bf16 *out, const bf16 *inp, const bf16 *w, const bf16 *b, int N, int C, int OC) {
    if (N < 1 || N > GEMV_MAX_N || C % 8 || !is_aligned16(inp) || !is_aligned16(w) || !gemv_enabled()) return 0;
    const int strips = (int)ceil_div(OC, SK_ROWS), stages = (int)ceil_div(C, SK_KS);
    int S = skinny_split<P>(strips, stages);
    const int ks_per_warp = (int)ceil_div(stages, S);
    S = (int)ceil_div(stages, ks_per_warp);  // no idle warps
    if (N <= 8) launch_skinny<P, 1>(S, out, inp, w, b, N, C, OC, ks_per_warp);
    else launch_skinny<P, 2>(S, out, inp, w, b, N, C, OC, ks_per_warp);
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
