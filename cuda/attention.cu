// Attention on the GPU: our flash-attention forward and backward kernels, and the run-time choice
// between them and cuDNN's SDPA (cuda/attention_cudnn.cu).
//
// Checked by: tests/test_cuda.c (make test-cuda): cuda_attention_flash (every path against the CPU op), the
// fixture models; build/bench_attention test (odd shapes, all-padded rows, determinism of the backward).
//
// Math (tested against cpu_attention_forward / cpu_attention_backward in model/ops_cpu.c):
//   S = q k^T * scale (scale = 1/sqrt(HD)),  masked entries -inf,  P = softmax(S) row-wise,  out = P v,
//   lse_i = log sum_j exp(S_ij) (natural log);  a query with no visible key: out = 0, lse = 0.
//   backward: D_i = dO_i . out_i,  P = exp(S - lse),  dV = P^T dO,  dP = dO v^T,  dS = P (dP - D),
//             dQ = dS k * scale,  dK = dS^T q * scale.
// Layouts (model/ops.h AttnShape): q (B,T,NH,HD) at row stride q_stride, k/v (B,T,NKV,HD) at kv_stride
// (slices of one fused QKV buffer), out/dout (B,T,NH,HD) contiguous, lse (B,NH,T) fp32. Query head h
// reads kv head h / (NH/NKV) by index: no K/V copies. dq/dk/dv are written at the strides of q/k/v.
// Mask: key j visible from query i (same row b) iff j < kv_len[b], (causal) j <= i, and (segments)
// seg[b,j] == 0 || seg[b,j] == seg[b,i].
//
// Kernels
//   tensor-core path, HD in {16, 32, 64, 80, 96, 128} with 16-byte aligned rows:
//     flash_fwd_kernel   one block = 128 queries (4 warps x 32 rows) of one (b, h); loops over key tiles
//                        of 64 (32 for HD > 80) with a cp.async double buffer; S = QK^T and O += PV on
//                        mma.sync m16n8k16 (bf16 in, fp32 accumulate); online softmax in fp32 (base 2);
//                        causal tiles past the diagonal and key tiles past kv_len are never loaded.
//     bwd_dot_kernel     D = rowsum(dO * O), fp32.
//     flash_bwd_kernel   one launch, two kinds of block:
//       key blocks       16*MT keys per warp of one (b, kv head); loop over every query head of the GQA
//                        group and every query tile, so dK, dV are complete sums in registers: no
//                        atomics, deterministic. Recomputes P from q, k, lse.
//       query blocks     16*MT queries per warp of one (b, h); loop over key tiles; dQ in registers,
//                        deterministic (a separate pass instead of FA2's fp32 atomics: it recomputes
//                        QK^T and dO V^T, 7 matmuls instead of 5, in exchange for bit-reproducibility).
//   generic path (any HD <= 256, any alignment): one warp per query row (forward, dQ) or per key row
//     (dK, dV), fp32 dot products with warp reductions. Slow, simple, exact; the tiny test models
//     (HD 4..12) and odd head dims run here.
// Every kernel handles any T (partial tiles are zero-filled and masked), padding, segments and GQA.
// The fp32 build (VLM_CUDA_FP32) has only the generic path: the tensor-core kernels are bf16 by nature.
#include <string.h>

#include "common.cuh"
#include "ptx.cuh"

// The tensor-core kernels take bf16 operands only (mma.sync with bf16 inputs, ldmatrix of 16-bit rows), so
// they keep their own type. The fp32 build (VLM_CUDA_FP32) compiles them out and runs every shape on the
// generic kernels, which, like the rest of the backend, read and write the act type floatX.
typedef __nv_bfloat16 bf16;
#ifdef VLM_CUDA_FP32
#define ATTN_TENSOR_CORES 0
#else
#define ATTN_TENSOR_CORES 1
#endif

#define ATTN_LOG2E 1.4426950408889634f
#define ATTN_LN2 0.6931471805599453f

// ----------------------------------------------------------------------------------------------------
// parameters shared by all kernels

typedef struct {
    int B, T, NH, NKV, HD, group;   // group = NH / NKV query heads per kv head
    long long q_stride, kv_stride;  // elements between tokens in q (dq) and in k, v (dk, dv)
    long long o_stride;             // elements between tokens in out and dout: NH * HD
    int causal;
    const int *kv_len;   // (B) device or NULL
    const int *segment;  // (B, T) device or NULL
    float scale;         // 1 / sqrt(HD)
    float scale_log2;    // scale * log2(e): scores in base-2 units for exp2f
} AttnParams;

static AttnParams attn_params(const AttnShape *s) {
    AttnParams p;
    p.B = s->B; p.T = s->T; p.NH = s->NH; p.NKV = s->NKV; p.HD = s->HD; p.group = s->NH / s->NKV;
    p.q_stride = s->q_stride; p.kv_stride = s->kv_stride; p.o_stride = (long long)s->NH * s->HD;
    p.causal = s->causal; p.kv_len = s->kv_len; p.segment = s->segment;
    p.scale = (float)(1.0 / sqrt((double)s->HD));
    p.scale_log2 = p.scale * ATTN_LOG2E;
    return p;
}

// kv_len[b] clamped to [0, T] (the reference treats j >= kv_len as hidden, so > T means all keys)
__device__ __forceinline__ int attn_kvlen(const AttnParams &p, int b) {
    if (!p.kv_len) return p.T;
    int n = p.kv_len[b];
    return n < 0 ? 0 : (n > p.T ? p.T : n);
}

// the mask of attn_visible() in model/ops_cpu.c; si, sj are the segment ids (ignored when !hasseg)
__device__ __forceinline__ bool attn_vis(int i, int j, int kvlen, int causal, bool hasseg, int si, int sj) {
    return j < kvlen && (!causal || j <= i) && (!hasseg || sj == 0 || sj == si);
}

// The first step of every backward (both paths):
// D[b,h,i] = sum_d dout[b,i,h,d] * out[b,i,h,d]; one warp per (b, i, h) row of HD contiguous elements.
__global__ void bwd_dot_kernel(float *__restrict__ D, const floatX *__restrict__ dout,
                               const floatX *__restrict__ out, int B, int T, int NH, int HD) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31;
    if (row >= (long long)B * T * NH) return;
    const floatX *a = dout + row * HD, *c = out + row * HD;
    float sum = 0.f;
    for (int d = lane; d < HD; d += 32) sum += to_f32(a[d]) * to_f32(c[d]);
    sum = warp_sum(sum);
    if (lane == 0) {
        const int h = (int)(row % NH), t = (int)((row / NH) % T), b = (int)(row / ((long long)NH * T));
        D[((long long)b * NH + h) * T + t] = sum;
    }
}

#if ATTN_TENSOR_CORES
// the PTX wrappers (cp.async, ldmatrix, mma.sync) are in cuda/ptx.cuh, shared with cuda/gemv.cu

__device__ __forceinline__ uint32_t pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);  // .x (low 16 bits) = lo
    return *reinterpret_cast<uint32_t *>(&v);
}

// A fragment of a 16x16 accumulator block held as two n-tiles c[2k], c[2k+1]
__device__ __forceinline__ void acc_to_a(uint32_t a[4], const float c0[4], const float c1[4]) {
    a[0] = pack_bf16(c0[0], c0[1]);
    a[1] = pack_bf16(c0[2], c0[3]);
    a[2] = pack_bf16(c1[0], c1[1]);
    a[3] = pack_bf16(c1[2], c1[3]);
}

// Shared-memory tiles are [rows][HD + 8] bf16: the 16-byte pad staggers rows across banks so the eight
// row addresses of an ldmatrix hit eight different bank groups (row pitch 2*HD bytes alone would be a
// multiple of 128 bytes for HD = 64, 128: an 8-way conflict).
//
// Addressing of the ldmatrix.x4 calls below, with m = lane/8 (matrix) and lane%8 (row in it):
//   A operand from [row][k] storage (rows 16, k 16):      row = lane%8 + (m&1)*8,  col = (m>>1)*8
//   B operand (n-tiles 2 and 2+1) from [n][k] storage:  n   = lane%8 + (m>>1)*8, col = (m&1)*8     (non-trans)
//   B operand (n-tiles 2 and 2+1) from [k][n] storage:  k   = lane%8 + (m&1)*8,  n   = (m>>1)*8     (.trans)
__device__ __forceinline__ int ldsm_a_row(int lane) { return (lane & 7) + ((lane >> 3) & 1) * 8; }
__device__ __forceinline__ int ldsm_a_col(int lane) { return (lane >> 4) * 8; }
__device__ __forceinline__ int ldsm_bn_row(int lane) { return (lane & 7) + (lane >> 4) * 8; }
__device__ __forceinline__ int ldsm_bn_col(int lane) { return ((lane >> 3) & 1) * 8; }
// .trans B from [k][n]: same addressing as the A operand
#define ldsm_bt_row ldsm_a_row
#define ldsm_bt_col ldsm_a_col

// ----------------------------------------------------------------------------------------------------
// warp tile products: every matrix product of the tensor-core kernels is one of these two, computed by one
// warp with mma.sync m16n8k16 (bf16 operands, fp32 accumulators; fragment layouts in cuda/ptx.cuh).
//
//   warp_mma_abt   C (16 MT x 8 NT) += A (16 MT x 16 KS) B^T
//                  B (8 NT x 16 KS) is stored [n][k] in shared memory, so its rows are rows of K, Q, V or dO
//                  with the head dim as k: S = Q K^T, S^T = K Q^T, dP = dO V^T, dP^T = V dO^T.
//                  A comes from shared memory stored [m][k] (SmemA: the tile and the warp's first row) or from
//                  fragments already in registers (RegA: f[mt][kk] as load_a_tiles gave them).
//   warp_mma_pb    C (16 MT x 8 NT) += P (16 MT x 16 KT) B
//                  P is held as the fp32 accumulator tiles p[MT][2 KT][4] of an earlier product (S, P^T, dS,
//                  dS^T after the softmax step) and rounded to bf16 on the way in (acc_to_a: an accumulator
//                  pair of n-tiles is exactly an A fragment); B (16 KT x 8 NT) is stored [k][n] in shared memory,
//                  rows of V, dO, Q or K with the head dim as n, read with ldmatrix .trans: O += P V,
//                  dV += P^T dO, dK += dS^T Q, dQ += dS K.
//
// Fragments per thread (g = lane/4, t = lane%4): C is c[MT][NT][4], c[mt][n] the 16 x 8 tile of rows 16 mt..,
// columns 8 n.., of which the thread holds C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]; an A fragment is
// 4 registers of 2 bf16 (the 16 x 16 block of m-tile mt, k step kk), a B fragment 2 registers per n-tile, one
// ldmatrix.x4 giving n-tiles 2j and 2j+1. Each B fragment feeds all MT m-tiles, so MT = 2 halves the shared-
// memory reads per FLOP. Shared tiles have pitch SROW (HD + 8). Every element of C sums its k steps in
// increasing order, one mma each: bit-identical to the loops these replaced.

// A fragments from shared memory stored [m][k]. The warp's first row is an offset, not a moved pointer: the
// same address arithmetic as the loops this replaced, with which ptxas allocates registers as before (a moved
// pointer cost the HD 64 backward a spill slot).
template <int SROW>
struct SmemA {
    const bf16 *p;  // the tile, [rows][SROW]
    int row0;       // the warp's first row
    int lane;
    __device__ __forceinline__ void operator()(uint32_t (&a)[4], int mt, int kk) const {
        const int row = row0 + 16 * mt + ldsm_a_row(lane);
        ldsm_x4(a[0], a[1], a[2], a[3], p + row * SROW + kk * 16 + ldsm_a_col(lane));
    }
};

// A fragments already in registers, loaded once for many products (Q and dO in the query blocks). Every loop
// over them is unrolled, so the indices are constants and the caller's array stays in registers.
template <int KS>
struct RegA {
    const uint32_t (*f)[KS][4];  // f[mt][kk]: m-tile mt, k step kk
    __device__ __forceinline__ void operator()(uint32_t (&a)[4], int mt, int kk) const {
        #pragma unroll
        for (int e = 0; e < 4; e++) a[e] = f[mt][kk][e];
    }
};

// The A fragments of a warp's 16 MT x 16 KS tile, from shared memory into registers (for RegA)
template <int SROW, int MT, int KS>
__device__ __forceinline__ void load_a_tiles(uint32_t (&f)[MT][KS][4], const SmemA<SROW> &src) {
    #pragma unroll
    for (int mt = 0; mt < MT; mt++)
        #pragma unroll
        for (int kk = 0; kk < KS; kk++) src(f[mt][kk], mt, kk);
}

// c[mt][2j] and c[mt][2j+1] += a[mt] times the B fragments b[0..1] (n-tile 2j) and b[2..3] (n-tile 2j+1), for
// every m-tile: one B fragment pair serves all MT m-tiles
template <int MT, int NT>
__device__ __forceinline__ void mma_ntile_pair(float (&c)[MT][NT][4], const uint32_t (&a)[MT][4], int j,
                                               const uint32_t (&b)[4]) {
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        mma16816(c[mt][2 * j], a[mt], b[0], b[1]);
        mma16816(c[mt][2 * j + 1], a[mt], b[2], b[3]);
    }
}

template <int SROW, int KS, int MT, int NT, typename AFrag>
__device__ __forceinline__ void warp_mma_abt(float (&c)[MT][NT][4], const AFrag &afrag, const bf16 *sB, int lane) {
    static_assert(NT % 2 == 0, "B fragments come in pairs of n-tiles");
    #pragma unroll
    for (int kk = 0; kk < KS; kk++) {
        uint32_t a[MT][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) afrag(a[mt], mt, kk);
        #pragma unroll
        for (int n2 = 0; n2 < NT / 2; n2++) {
            uint32_t b[4];
            ldsm_x4(b[0], b[1], b[2], b[3], sB + (n2 * 16 + ldsm_bn_row(lane)) * SROW + kk * 16 + ldsm_bn_col(lane));
            mma_ntile_pair(c, a, n2, b);
        }
    }
}

template <int SROW, int MT, int NT, int NP>
__device__ __forceinline__ void warp_mma_pb(float (&c)[MT][NT][4], const float (&p)[MT][NP][4], const bf16 *sB,
                                            int lane) {
    static_assert(NT % 2 == 0 && NP % 2 == 0, "fragments come in pairs of n-tiles");
    #pragma unroll
    for (int kk = 0; kk < NP / 2; kk++) {
        uint32_t a[MT][4];
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) acc_to_a(a[mt], p[mt][2 * kk], p[mt][2 * kk + 1]);
        #pragma unroll
        for (int n2 = 0; n2 < NT / 2; n2++) {
            uint32_t b[4];
            ldsm_x4_t(b[0], b[1], b[2], b[3], sB + (kk * 16 + ldsm_bt_row(lane)) * SROW + n2 * 16 + ldsm_bt_col(lane));
            mma_ntile_pair(c, a, n2, b);
        }
    }
}

template <int MT, int NT>
__device__ __forceinline__ void zero_tiles(float (&c)[MT][NT][4]) {
    #pragma unroll
    for (int mt = 0; mt < MT; mt++)
        #pragma unroll
        for (int n = 0; n < NT; n++) c[mt][n][0] = c[mt][n][1] = c[mt][n][2] = c[mt][n][3] = 0.f;
}

// Issues cp.async copies of a ROWS x HD tile (global rows at `stride` elements) into shared memory at
// pitch HD + 8. Rows >= valid_rows are zero-filled: padded keys then give finite scores (masked later)
// and padded values contribute exactly 0 (0 * garbage could be NaN; 0 * 0 cannot).
template <int HD, int ROWS, int NTHREADS>
__device__ __forceinline__ void load_tile(bf16 *s, const bf16 *g, long long stride, int valid_rows, int tid) {
    constexpr int CPR = HD / 8;  // 16-byte chunks per row
    constexpr int SROW = HD + 8;
    #pragma unroll
    for (int c = tid; c < ROWS * CPR; c += NTHREADS) {
        const int r = c / CPR, cc = c % CPR;
        const bool ok = r < valid_rows;
        const bf16 *src = g + (ok ? (long long)r * stride : 0) + cc * 8;
        cp_async16(s + r * SROW + cc * 8, src, ok ? 16 : 0);
    }
}

// ----------------------------------------------------------------------------------------------------
// forward, tensor cores

// Tile configuration per head dim. MT = 16-row m-tiles per warp: with MT = 2 every K/V fragment read
// from shared memory feeds two mma instructions, halving shared-memory traffic per FLOP. QREG keeps the
// Q fragments in registers for the whole block (small HD); otherwise they are re-read per k step.
#ifndef ATTN_FWD_BK_LARGE
#define ATTN_FWD_BK_LARGE 64  // key tile of the forward for HD > 80 (tuning knob: 64 spills ~20 bytes, yet beats 32)
#endif
template <int HD>
struct FwdCfg {
    static constexpr int NW = 4, NTHREADS = 32 * NW, MT = 2, BQ = 16 * MT * NW, BK = HD <= 80 ? 64 : ATTN_FWD_BK_LARGE;
    static constexpr int SROW = HD + 8;
    static constexpr bool QREG = HD <= 64;
    // sQ [BQ][SROW], sK [2][BK][SROW], sV [2][BK][SROW] (bf16), sSeg [2][BK] (int)
    static constexpr size_t SMEM = (size_t)(BQ + 4 * BK) * SROW * sizeof(bf16) + 2 * BK * sizeof(int);
};

// Grid: ceil(T/BQ) * NH * B blocks (1-d, see the decoding below).
// Warp w owns query rows q0 + 32w .. +31 as m-tiles mt = 0, 1; in m-tile mt thread (g, t) owns rows
// g and g+8 and, of each 8-key n-tile, keys 2t, 2t+1.
// Invariants: m[mt][r] is the running max of the base-2 scores of its row over all lanes of the quad
// (the same in the 4 lanes), l[mt][r] this lane's partial sum of exp2(score - m) (summed over the quad
// at the end), o the unnormalized output under the same max.
template <int HD>
__global__ void __launch_bounds__(128) flash_fwd_kernel(bf16 *__restrict__ out, float *__restrict__ lse,
                                                        const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                        const bf16 *__restrict__ v, const AttnParams p) {
    using C = FwdCfg<HD>;
    constexpr int BQ = C::BQ, BK = C::BK, SROW = C::SROW, NTH = C::NTHREADS, MT = C::MT;
    constexpr bool QREG = C::QREG;
    constexpr int KS = HD / 16;  // 16-wide k steps over the head dim
    constexpr int NT = BK / 8;   // 8-key n-tiles of S
    constexpr int DT = HD / 8;   // 8-wide n-tiles of O
    extern __shared__ __align__(16) unsigned char smem[];
    bf16 *sQ = reinterpret_cast<bf16 *>(smem);
    bf16 *sK = sQ + BQ * SROW;
    bf16 *sV = sK + 2 * BK * SROW;
    int *sSeg = reinterpret_cast<int *>(sV + 2 * BK * SROW);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    // 1-d grid: block x -> (query tile rank, h, b) with the rank slowest, so that for causal the
    // heaviest tiles (last rows, most keys) of every head start first and light ones fill the tail
    const int nqt = (p.T + BQ - 1) / BQ, rank = (int)(blockIdx.x / ((unsigned)p.NH * p.B));
    const int rest = (int)(blockIdx.x % ((unsigned)p.NH * p.B));
    const int qt = p.causal ? nqt - 1 - rank : rank;
    const int h = rest % p.NH, b = rest / p.NH, kvh = h / p.group, T = p.T;
    const int q0 = qt * BQ, qw0 = q0 + warp * 16 * MT;
    const int kvlen = attn_kvlen(p, b);
    int kend = kvlen;                                // keys [0, kend) can be visible to this block
    if (p.causal) kend = min(kend, min(q0 + BQ, T));
    const int ntiles = kend > 0 ? (kend + BK - 1) / BK : 0;

    const bf16 *qb = q + ((long long)b * T + q0) * p.q_stride + (long long)h * HD;
    const bf16 *kb = k + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const bf16 *vb = v + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;

    // cp.async groups: [Q] [KV 0] then one group per iteration (maybe empty), so before computing tile
    // `it`, wait_group 1 leaves only the newest (tile it+1) in flight.
    load_tile<HD, BQ, NTH>(sQ, qb, p.q_stride, T - q0, tid);
    cp_async_commit();
    auto load_kv = [&](int it, int buf) {
        const int k0 = it * BK;
        load_tile<HD, BK, NTH>(sK + buf * BK * SROW, kb + (long long)k0 * p.kv_stride, p.kv_stride, T - k0, tid);
        load_tile<HD, BK, NTH>(sV + buf * BK * SROW, vb + (long long)k0 * p.kv_stride, p.kv_stride, T - k0, tid);
        if (segb)
            for (int j = tid; j < BK; j += NTH) cp_async4(sSeg + buf * BK + j, segb + (k0 + j < T ? k0 + j : 0), k0 + j < T);
    };
    if (ntiles > 0) load_kv(0, 0);
    cp_async_commit();

    int segq[MT][2];
    #pragma unroll
    for (int mt = 0; mt < MT; mt++)
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = qw0 + 16 * mt + g + 8 * r;
            segq[mt][r] = segb && i < T ? segb[i] : -1;
        }

    uint32_t qf[QREG ? MT : 1][QREG ? KS : 1][4];
    float o[MT][DT][4];
    float m[MT][2], l[MT][2];
    zero_tiles(o);
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        m[mt][0] = m[mt][1] = -INFINITY;
        l[mt][0] = l[mt][1] = 0.f;
    }

    for (int it = 0; it < ntiles; it++) {
        const int buf = it & 1, k0 = it * BK;
        if (it + 1 < ntiles) load_kv(it + 1, buf ^ 1);  // buf^1 was last read in it-1, before its final barrier
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();  // tile `it` (and Q) visible to all warps
        if constexpr (QREG) {
            if (it == 0) load_a_tiles(qf, SmemA<SROW>{sQ, warp * 16 * MT, lane});
        }
        const bf16 *sKb = sK + buf * BK * SROW, *sVb = sV + buf * BK * SROW;

        // S (32 x BK per warp) = Q K^T
        float s[MT][NT][4];
        zero_tiles(s);
        if constexpr (QREG) warp_mma_abt<SROW, KS>(s, RegA<KS>{qf}, sKb, lane);
        else warp_mma_abt<SROW, KS>(s, SmemA<SROW>{sQ, warp * 16 * MT, lane}, sKb, lane);

        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int qm0 = qw0 + 16 * mt;  // first row of this m-tile
            // mask: only tiles that cross kv_len, the causal diagonal, or any tile when segments are on
            const bool need_mask = (k0 + BK > kvlen) || (p.causal && k0 + BK - 1 > qm0) || segb != nullptr;
            if (need_mask) {
                #pragma unroll
                for (int n = 0; n < NT; n++) {
                    #pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int i = qm0 + g + 8 * (e >> 1), jl = n * 8 + 2 * t4 + (e & 1);
                        const int sj = segb ? sSeg[buf * BK + jl] : 0;
                        if (!attn_vis(i, k0 + jl, kvlen, p.causal, segb != nullptr, segq[mt][e >> 1], sj))
                            s[mt][n][e] = -INFINITY;
                    }
                }
            }
            // online softmax in base 2. A fully masked row keeps m = -inf; it then uses 0 as its max so
            // that exp2(-inf - 0) = 0 instead of NaN, and alpha = exp2(m_old - m_use) is 0 or a ratio.
            #pragma unroll
            for (int r = 0; r < 2; r++) {
                float mx = -INFINITY;
                #pragma unroll
                for (int n = 0; n < NT; n++) mx = fmaxf(mx, fmaxf(s[mt][n][2 * r], s[mt][n][2 * r + 1]));
                mx *= p.scale_log2;  // -inf stays -inf (scale > 0)
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
                mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
                const float mn = fmaxf(m[mt][r], mx);
                const float mu = mn == -INFINITY ? 0.f : mn;
                const float alpha = exp2f(m[mt][r] - mu);
                m[mt][r] = mn;
                float sum = 0.f;
                #pragma unroll
                for (int n = 0; n < NT; n++) {
                    s[mt][n][2 * r] = exp2f(fmaf(s[mt][n][2 * r], p.scale_log2, -mu));
                    s[mt][n][2 * r + 1] = exp2f(fmaf(s[mt][n][2 * r + 1], p.scale_log2, -mu));
                    sum += s[mt][n][2 * r] + s[mt][n][2 * r + 1];
                }
                l[mt][r] = l[mt][r] * alpha + sum;
                #pragma unroll
                for (int d = 0; d < DT; d++) { o[mt][d][2 * r] *= alpha; o[mt][d][2 * r + 1] *= alpha; }
            }
        }

        // O (32 x HD) += P (32 x BK, bf16) V (BK x HD)
        warp_mma_pb<SROW>(o, s, sVb, lane);
        __syncthreads();  // all warps done with buffer `buf` before iteration it+1 refills it
    }
    cp_async_wait<0>();

    // epilogue: normalize, write out (bf16) and lse (natural log)
    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            float lr = l[mt][r];
            lr += __shfl_xor_sync(0xffffffffu, lr, 1);
            lr += __shfl_xor_sync(0xffffffffu, lr, 2);
            const int i = qw0 + 16 * mt + g + 8 * r;
            const float inv = lr > 0.f ? 1.f / lr : 0.f;
            if (i < T) {
                bf16 *orow = out + ((long long)b * T + i) * p.o_stride + (long long)h * HD;
                #pragma unroll
                for (int d = 0; d < DT; d++)
                    *reinterpret_cast<__nv_bfloat162 *>(orow + d * 8 + 2 * t4) =
                        __floats2bfloat162_rn(o[mt][d][2 * r] * inv, o[mt][d][2 * r + 1] * inv);
                if (t4 == 0)
                    lse[((long long)b * p.NH + h) * T + i] = lr > 0.f ? m[mt][r] * ATTN_LN2 + logf(lr) : 0.f;
            }
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// backward, tensor cores

#ifndef ATTN_KV_BQ64
#define ATTN_KV_BQ64 32  // query tile of the key blocks at HD = 64 (tuning knob)
#endif
template <int HD>
struct BwdKVCfg {
    // MT = 16-key m-tiles per warp; register budget: dK + dV accumulators are 2 * MT * HD/2 floats
    static constexpr int NW = 4, NTHREADS = 32 * NW, MT = HD <= 64 ? 2 : 1, BKV = 16 * MT * NW;
    static constexpr int BQ = HD <= 32 ? 64 : (HD <= 64 ? ATTN_KV_BQ64 : 32), SROW = HD + 8;
    // sK, sV [BKV][SROW]; sQ, sdO [2][BQ][SROW] (bf16); sSegK [BKV]; sL, sD, sSegQ [2][BQ] (4 bytes each)
    static constexpr size_t SMEM = (size_t)(2 * BKV + 4 * BQ) * SROW * sizeof(bf16) + (BKV + 6 * BQ) * 4;
};

// dK, dV for key block kt of kv head kvh, row b. Warp w owns keys k0 + 16 MT w .. (rows of dK, dV, S^T).
// Per (query head of the group, query tile): S^T = K_w Q^T, P^T = exp2(S^T scale_log2 - lse2) (masked
// entries 0), dV += P^T dO, dP^T = V_w dO^T, dS^T = P^T (dP^T - D), dK += dS^T Q. Every contribution to
// a key row is summed by one thread in a fixed order: deterministic, no atomics.
template <int HD>
__device__ __forceinline__ void bwd_kv_block(const int kt, const int kvh, const int b, unsigned char *smem,
                                             bf16 *__restrict__ dk, bf16 *__restrict__ dv, const bf16 *__restrict__ dout,
                                             const float *__restrict__ lse, const float *__restrict__ Dsum,
                                             const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                             const bf16 *__restrict__ v, const AttnParams &p) {
    using C = BwdKVCfg<HD>;
    constexpr int BKV = C::BKV, BQ = C::BQ, SROW = C::SROW, NTH = C::NTHREADS, MT = C::MT;
    constexpr int KS = HD / 16, NQT = BQ / 8, DT = HD / 8;
    bf16 *sK = reinterpret_cast<bf16 *>(smem);
    bf16 *sV = sK + BKV * SROW;
    bf16 *sQ = sV + BKV * SROW;     // [2][BQ][SROW]
    bf16 *sdO = sQ + 2 * BQ * SROW;  // [2][BQ][SROW]
    int *sSegK = reinterpret_cast<int *>(sdO + 2 * BQ * SROW);
    float *sL = reinterpret_cast<float *>(sSegK + BKV);  // [2][BQ] lse (nats)
    float *sD = sL + 2 * BQ;                              // [2][BQ]
    int *sSegQ = reinterpret_cast<int *>(sD + 2 * BQ);    // [2][BQ]

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int T = p.T;
    const int k0 = kt * BKV, kwl = warp * 16 * MT, kw0 = k0 + kwl;  // kwl: the warp's first key row in sK
    const int kvlen = attn_kvlen(p, b);
    bf16 *dkb = dk ? dk + (long long)b * T * p.kv_stride + (long long)kvh * HD : nullptr;
    bf16 *dvb = dv ? dv + (long long)b * T * p.kv_stride + (long long)kvh * HD : nullptr;

    if (k0 >= kvlen) {  // every key of the block is padding: its gradients are 0
        for (int c = tid; c < BKV * (HD / 2); c += NTH) {
            const int r = c / (HD / 2), d = (c % (HD / 2)) * 2;
            if (k0 + r < T) {
                const long long off = (long long)(k0 + r) * p.kv_stride + d;
                if (dkb) *reinterpret_cast<__nv_bfloat162 *>(dkb + off) = __floats2bfloat162_rn(0.f, 0.f);
                if (dvb) *reinterpret_cast<__nv_bfloat162 *>(dvb + off) = __floats2bfloat162_rn(0.f, 0.f);
            }
        }
        return;
    }

    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;
    const bf16 *kb = k + ((long long)b * T + k0) * p.kv_stride + (long long)kvh * HD;
    const bf16 *vb = v + ((long long)b * T + k0) * p.kv_stride + (long long)kvh * HD;
    load_tile<HD, BKV, NTH>(sK, kb, p.kv_stride, T - k0, tid);
    load_tile<HD, BKV, NTH>(sV, vb, p.kv_stride, T - k0, tid);
    if (segb)
        for (int j = tid; j < BKV; j += NTH) cp_async4(sSegK + j, segb + (k0 + j < T ? k0 + j : 0), k0 + j < T);
    cp_async_commit();

    // work items: (query head of the group) x (query tile), causal tiles entirely above the block skipped
    const int qt_start = p.causal ? k0 / BQ : 0;
    const int nq = (T + BQ - 1) / BQ - qt_start;
    const int nitems = p.group * nq;
    auto load_item = [&](int item, int buf) {
        const int h = kvh * p.group + item / nq, q0 = (qt_start + item % nq) * BQ;
        load_tile<HD, BQ, NTH>(sQ + buf * BQ * SROW, q + ((long long)b * T + q0) * p.q_stride + (long long)h * HD,
                               p.q_stride, T - q0, tid);
        load_tile<HD, BQ, NTH>(sdO + buf * BQ * SROW, dout + ((long long)b * T + q0) * p.o_stride + (long long)h * HD,
                               p.o_stride, T - q0, tid);
        const long long lrow = ((long long)b * p.NH + h) * T;
        // per-query lse, D and segment ids through cp.async as well: a plain load here would stall this
        // warp for a full memory latency on every item. Rows >= T read as 0 and are masked (i < T).
        for (int r = tid; r < BQ; r += NTH) {
            const int i = q0 + r;
            const bool ok = i < T;
            cp_async4(sL + buf * BQ + r, lse + lrow + (ok ? i : 0), ok);
            cp_async4(sD + buf * BQ + r, Dsum + lrow + (ok ? i : 0), ok);
            if (segb) cp_async4(sSegQ + buf * BQ + r, segb + (ok ? i : 0), ok);
        }
    };
    if (nitems > 0) load_item(0, 0);
    cp_async_commit();

    float dka[MT][DT][4], dva[MT][DT][4];
    zero_tiles(dka);
    zero_tiles(dva);

    for (int it = 0; it < nitems; it++) {
        const int buf = it & 1;
        if (it + 1 < nitems) load_item(it + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        const int q0 = (qt_start + it % nq) * BQ;
        const bf16 *sQb = sQ + buf * BQ * SROW, *sdOb = sdO + buf * BQ * SROW;
        const float *sLb = sL + buf * BQ, *sDb = sD + buf * BQ;

        // S^T (16 MT keys x BQ queries) = K_w Q^T
        float st[MT][NQT][4];
        zero_tiles(st);
        warp_mma_abt<SROW, KS>(st, SmemA<SROW>{sK, kwl, lane}, sQb, lane);
        // P^T; masked entries (and query rows >= T) exactly 0
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int km0 = kw0 + 16 * mt;
            const bool need_mask =
                (p.causal && km0 + 15 > q0) || (km0 + 16 > kvlen) || (q0 + BQ > T) || segb != nullptr;
            #pragma unroll
            for (int n = 0; n < NQT; n++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int il = n * 8 + 2 * t4 + (e & 1);
                    float pv = exp2f(fmaf(st[mt][n][e], p.scale_log2, -sLb[il] * ATTN_LOG2E));
                    if (need_mask) {
                        const int jl = kwl + 16 * mt + g + 8 * (e >> 1), i = q0 + il;
                        const int sj = segb ? sSegK[jl] : 0;
                        if (!(i < T && attn_vis(i, k0 + jl, kvlen, p.causal, segb != nullptr, sSegQ[buf * BQ + il], sj)))
                            pv = 0.f;
                    }
                    st[mt][n][e] = pv;
                }
            }
        }
        // dV (16 MT x HD) += P^T (16 MT x BQ) dO (BQ x HD)
        warp_mma_pb<SROW>(dva, st, sdOb, lane);
        // dP^T (16 MT x BQ) = V_w dO^T, then dS^T = P^T (dP^T - D) in place
        float dpt[MT][NQT][4];
        zero_tiles(dpt);
        warp_mma_abt<SROW, KS>(dpt, SmemA<SROW>{sV, kwl, lane}, sdOb, lane);
        #pragma unroll
        for (int mt = 0; mt < MT; mt++)
            #pragma unroll
            for (int n = 0; n < NQT; n++)
                #pragma unroll
                for (int e = 0; e < 4; e++)
                    dpt[mt][n][e] = st[mt][n][e] * (dpt[mt][n][e] - sDb[n * 8 + 2 * t4 + (e & 1)]);
        // dK (16 MT x HD) += dS^T (16 MT x BQ) Q (BQ x HD)
        warp_mma_pb<SROW>(dka, dpt, sQb, lane);
        __syncthreads();  // buffer `buf` free for item it+2
    }
    cp_async_wait<0>();

    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int j = kw0 + 16 * mt + g + 8 * r;
            if (j >= T) continue;
            const long long off = (long long)j * p.kv_stride;
            #pragma unroll
            for (int d = 0; d < DT; d++) {
                if (dkb)
                    *reinterpret_cast<__nv_bfloat162 *>(dkb + off + d * 8 + 2 * t4) =
                        __floats2bfloat162_rn(dka[mt][d][2 * r] * p.scale, dka[mt][d][2 * r + 1] * p.scale);
                if (dvb)
                    *reinterpret_cast<__nv_bfloat162 *>(dvb + off + d * 8 + 2 * t4) =
                        __floats2bfloat162_rn(dva[mt][d][2 * r], dva[mt][d][2 * r + 1]);
            }
        }
    }
}

template <int HD>
struct BwdQCfg {
    // MT = 16-row m-tiles per warp; Q and dO fragments stay in registers (2 * MT * HD/4 registers)
    static constexpr int NW = 4, NTHREADS = 32 * NW, MT = HD <= 64 ? 2 : 1, BQ = 16 * MT * NW;
    static constexpr int BK = HD <= 32 ? 64 : 32, SROW = HD + 8;
    // sQ, sdO [BQ][SROW]; sK, sV [2][BK][SROW] (bf16); sSeg [2][BK] (int)
    static constexpr size_t SMEM = (size_t)(2 * BQ + 4 * BK) * SROW * sizeof(bf16) + 2 * BK * sizeof(int);
};

// dQ for query tile qt of head h, row b. Warp w owns query rows
// q0 + 16 MT w ..; Q and dO fragments stay in registers. Per key tile: S = Q K^T, P = exp2(S scale_log2 -
// lse2) (masked 0), dP = dO V^T, dS = P (dP - D), dQ += dS K. Deterministic (fixed order, no atomics).
template <int HD>
__device__ __forceinline__ void bwd_q_block(const int qt, const int h, const int b, unsigned char *smem,
                                            bf16 *__restrict__ dq, const bf16 *__restrict__ dout,
                                            const float *__restrict__ lse, const float *__restrict__ Dsum,
                                            const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                            const bf16 *__restrict__ v, const AttnParams &p) {
    using C = BwdQCfg<HD>;
    constexpr int BQ = C::BQ, BK = C::BK, SROW = C::SROW, NTH = C::NTHREADS, MT = C::MT;
    constexpr int KS = HD / 16, NT = BK / 8, DT = HD / 8;
    bf16 *sQ = reinterpret_cast<bf16 *>(smem);
    bf16 *sdO = sQ + BQ * SROW;
    bf16 *sK = sdO + BQ * SROW;      // [2][BK][SROW]
    bf16 *sV = sK + 2 * BK * SROW;   // [2][BK][SROW]
    int *sSeg = reinterpret_cast<int *>(sV + 2 * BK * SROW);

    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t4 = lane & 3;
    const int kvh = h / p.group, T = p.T;
    const int q0 = qt * BQ, qwl = warp * 16 * MT, qw0 = q0 + qwl;
    const int kvlen = attn_kvlen(p, b);
    int kend = kvlen;
    if (p.causal) kend = min(kend, min(q0 + BQ, T));
    const int ntiles = kend > 0 ? (kend + BK - 1) / BK : 0;

    const bf16 *kb = k + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const bf16 *vb = v + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;

    load_tile<HD, BQ, NTH>(sQ, q + ((long long)b * T + q0) * p.q_stride + (long long)h * HD, p.q_stride, T - q0, tid);
    load_tile<HD, BQ, NTH>(sdO, dout + ((long long)b * T + q0) * p.o_stride + (long long)h * HD, p.o_stride, T - q0, tid);
    cp_async_commit();
    auto load_kv = [&](int it, int buf) {
        const int k0 = it * BK;
        load_tile<HD, BK, NTH>(sK + buf * BK * SROW, kb + (long long)k0 * p.kv_stride, p.kv_stride, T - k0, tid);
        load_tile<HD, BK, NTH>(sV + buf * BK * SROW, vb + (long long)k0 * p.kv_stride, p.kv_stride, T - k0, tid);
        if (segb)
            for (int j = tid; j < BK; j += NTH) cp_async4(sSeg + buf * BK + j, segb + (k0 + j < T ? k0 + j : 0), k0 + j < T);
    };
    if (ntiles > 0) load_kv(0, 0);
    cp_async_commit();

    float lse2[MT][2], Dr[MT][2];
    int segq[MT][2];
    #pragma unroll
    for (int mt = 0; mt < MT; mt++)
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = qw0 + 16 * mt + g + 8 * r;
            const long long li = ((long long)b * p.NH + h) * T + i;
            lse2[mt][r] = i < T ? lse[li] * ATTN_LOG2E : 0.f;
            Dr[mt][r] = i < T ? Dsum[li] : 0.f;
            segq[mt][r] = segb && i < T ? segb[i] : -1;
        }

    uint32_t qf[MT][KS][4], df[MT][KS][4];
    float dqa[MT][DT][4];
    zero_tiles(dqa);

    for (int it = 0; it < ntiles; it++) {
        const int buf = it & 1, k0 = it * BK;
        if (it + 1 < ntiles) load_kv(it + 1, buf ^ 1);
        cp_async_commit();
        cp_async_wait<1>();
        __syncthreads();
        if (it == 0) {
            load_a_tiles(qf, SmemA<SROW>{sQ, qwl, lane});
            load_a_tiles(df, SmemA<SROW>{sdO, qwl, lane});
        }
        const bf16 *sKb = sK + buf * BK * SROW, *sVb = sV + buf * BK * SROW;

        // S = Q K^T and dP = dO V^T (16 MT x BK each)
        float s[MT][NT][4], dp[MT][NT][4];
        zero_tiles(s);
        zero_tiles(dp);
        warp_mma_abt<SROW, KS>(s, RegA<KS>{qf}, sKb, lane);
        warp_mma_abt<SROW, KS>(dp, RegA<KS>{df}, sVb, lane);
        // P and dS = P (dP - D), masked entries exactly 0
        #pragma unroll
        for (int mt = 0; mt < MT; mt++) {
            const int qm0 = qw0 + 16 * mt;
            const bool need_mask = (k0 + BK > kvlen) || (p.causal && k0 + BK - 1 > qm0) || segb != nullptr;
            #pragma unroll
            for (int n = 0; n < NT; n++) {
                #pragma unroll
                for (int e = 0; e < 4; e++) {
                    const int r = e >> 1;
                    float pv = exp2f(fmaf(s[mt][n][e], p.scale_log2, -lse2[mt][r]));
                    if (need_mask) {
                        const int jl = n * 8 + 2 * t4 + (e & 1);
                        const int sj = segb ? sSeg[buf * BK + jl] : 0;
                        if (!attn_vis(qm0 + g + 8 * r, k0 + jl, kvlen, p.causal, segb != nullptr, segq[mt][r], sj))
                            pv = 0.f;
                    }
                    s[mt][n][e] = pv * (dp[mt][n][e] - Dr[mt][r]);
                }
            }
        }
        // dQ (16 MT x HD) += dS (16 MT x BK) K (BK x HD)
        warp_mma_pb<SROW>(dqa, s, sKb, lane);
        __syncthreads();
    }
    cp_async_wait<0>();

    #pragma unroll
    for (int mt = 0; mt < MT; mt++) {
        #pragma unroll
        for (int r = 0; r < 2; r++) {
            const int i = qw0 + 16 * mt + g + 8 * r;
            if (i >= T) continue;
            bf16 *row = dq + ((long long)b * T + i) * p.q_stride + (long long)h * HD;
            #pragma unroll
            for (int d = 0; d < DT; d++)
                *reinterpret_cast<__nv_bfloat162 *>(row + d * 8 + 2 * t4) =
                    __floats2bfloat162_rn(dqa[mt][d][2 * r] * p.scale, dqa[mt][d][2 * r + 1] * p.scale);
        }
    }
}

// The backward as one launch of key blocks (bwd_kv_block) and query blocks (bwd_q_block). The two
// roles are independent (both read D, lse and the inputs), so one grid lets the short blocks of either
// fill the other's tail. Blocks are ordered by tile rank, slowest: rank r holds the ck key blocks of key
// tile r (all kv heads and rows), then the cq query blocks of query tile r, or of tile nt-1-r for causal.
// For causal, rank 0 is then the heaviest of both kinds (keys [0, BKV) see every query; the last query
// tile sees every key) and the ranks get lighter, so long blocks start first and short ones fill the tail.
template <int HD>
struct BwdCfg {
    static constexpr size_t SMEM = BwdKVCfg<HD>::SMEM > BwdQCfg<HD>::SMEM ? BwdKVCfg<HD>::SMEM : BwdQCfg<HD>::SMEM;
    static_assert(BwdKVCfg<HD>::BKV == BwdQCfg<HD>::BQ, "key and query tiles must have the same count");
};

template <int HD>
__global__ void __launch_bounds__(128) flash_bwd_kernel(bf16 *__restrict__ dq, bf16 *__restrict__ dk,
                                                        bf16 *__restrict__ dv, const bf16 *__restrict__ dout,
                                                        const float *__restrict__ lse, const float *__restrict__ Dsum,
                                                        const bf16 *__restrict__ q, const bf16 *__restrict__ k,
                                                        const bf16 *__restrict__ v, const AttnParams p, const int ck,
                                                        const int cq) {
    extern __shared__ __align__(16) unsigned char smem[];
    const int rank = (int)(blockIdx.x / (unsigned)(ck + cq)), w = (int)(blockIdx.x % (unsigned)(ck + cq));
    if (w < ck) {  // key block: key tile `rank`, kv head, row
        bwd_kv_block<HD>(rank, w % p.NKV, w / p.NKV, smem, dk, dv, dout, lse, Dsum, q, k, v, p);
    } else {       // query block
        const int y = w - ck, nqt = (p.T + BwdQCfg<HD>::BQ - 1) / BwdQCfg<HD>::BQ;
        bwd_q_block<HD>(p.causal ? nqt - 1 - rank : rank, y % p.NH, y / p.NH, smem, dq, dout, lse, Dsum, q, k, v, p);
    }
}
#endif  // ATTN_TENSOR_CORES

// ----------------------------------------------------------------------------------------------------
// generic path: any HD <= 256 (NC = ceil(HD/32) elements per lane), any strides and alignment

template <int NC>
__device__ __forceinline__ void load_row(float x[NC], const floatX *row, int HD, int lane) {
    #pragma unroll
    for (int c = 0; c < NC; c++) {
        const int d = lane + 32 * c;
        x[c] = d < HD ? to_f32(row[d]) : 0.f;
    }
}
template <int NC>
__device__ __forceinline__ float dot_row(const float x[NC], const floatX *row, int HD, int lane) {
    float s = 0.f;
    #pragma unroll
    for (int c = 0; c < NC; c++) {
        const int d = lane + 32 * c;
        if (d < HD) s += x[c] * to_f32(row[d]);
    }
    return warp_sum(s);
}
template <int NC>
__device__ __forceinline__ void store_row(floatX *row, const float x[NC], float mul, int HD, int lane) {
    #pragma unroll
    for (int c = 0; c < NC; c++) {
        const int d = lane + 32 * c;
        if (d < HD) row[d] = to_floatX(x[c] * mul);
    }
}

// one warp per query row (b, h, i), i fastest; online softmax in natural units
template <int NC>
__global__ void attn_fwd_generic_kernel(floatX *__restrict__ out, float *__restrict__ lse, const floatX *__restrict__ q,
                                        const floatX *__restrict__ k, const floatX *__restrict__ v, const AttnParams p) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, T = p.T, HD = p.HD;
    if (row >= (long long)p.B * p.NH * T) return;  // whole warp
    const int i = (int)(row % T), h = (int)((row / T) % p.NH), b = (int)(row / ((long long)T * p.NH));
    const int kvh = h / p.group, kvlen = attn_kvlen(p, b);
    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;
    const int si = segb ? segb[i] : 0;
    const floatX *kb = k + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const floatX *vb = v + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    float qr[NC], o[NC];
    load_row<NC>(qr, q + ((long long)b * T + i) * p.q_stride + (long long)h * HD, HD, lane);
    #pragma unroll
    for (int c = 0; c < NC; c++) o[c] = 0.f;
    float m = -INFINITY, l = 0.f;
    const int jend = p.causal ? min(kvlen, i + 1) : kvlen;
    for (int j = 0; j < jend; j++) {
        if (segb) { const int sj = segb[j]; if (sj != 0 && sj != si) continue; }
        const float s = dot_row<NC>(qr, kb + (long long)j * p.kv_stride, HD, lane) * p.scale;
        const float mn = fmaxf(m, s), alpha = expf(m - mn), pj = expf(s - mn);  // m = -inf: alpha = 0
        l = l * alpha + pj;
        const floatX *vj = vb + (long long)j * p.kv_stride;
        #pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            o[c] = o[c] * alpha + (d < HD ? pj * to_f32(vj[d]) : 0.f);
        }
        m = mn;
    }
    store_row<NC>(out + ((long long)b * T + i) * p.o_stride + (long long)h * HD, o, l > 0.f ? 1.f / l : 0.f, HD, lane);
    if (lane == 0) lse[((long long)b * p.NH + h) * T + i] = l > 0.f ? m + logf(l) : 0.f;
}

// dQ: one warp per query row (b, h, i)
template <int NC>
__global__ void attn_bwd_q_generic_kernel(floatX *__restrict__ dq, const floatX *__restrict__ dout,
                                          const float *__restrict__ lse, const float *__restrict__ Dsum,
                                          const floatX *__restrict__ q, const floatX *__restrict__ k,
                                          const floatX *__restrict__ v, const AttnParams p) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, T = p.T, HD = p.HD;
    if (row >= (long long)p.B * p.NH * T) return;
    const int i = (int)(row % T), h = (int)((row / T) % p.NH), b = (int)(row / ((long long)T * p.NH));
    const int kvh = h / p.group, kvlen = attn_kvlen(p, b);
    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;
    const int si = segb ? segb[i] : 0;
    const floatX *kb = k + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    const floatX *vb = v + (long long)b * T * p.kv_stride + (long long)kvh * HD;
    float qr[NC], gr[NC], acc[NC];
    load_row<NC>(qr, q + ((long long)b * T + i) * p.q_stride + (long long)h * HD, HD, lane);
    load_row<NC>(gr, dout + ((long long)b * T + i) * p.o_stride + (long long)h * HD, HD, lane);
    #pragma unroll
    for (int c = 0; c < NC; c++) acc[c] = 0.f;
    const long long li = ((long long)b * p.NH + h) * T + i;
    const float L = lse[li], Di = Dsum[li];
    const int jend = p.causal ? min(kvlen, i + 1) : kvlen;
    for (int j = 0; j < jend; j++) {
        if (segb) { const int sj = segb[j]; if (sj != 0 && sj != si) continue; }
        const floatX *kj = kb + (long long)j * p.kv_stride;
        const float s = dot_row<NC>(qr, kj, HD, lane) * p.scale;
        const float dpv = dot_row<NC>(gr, vb + (long long)j * p.kv_stride, HD, lane);
        const float ds = expf(s - L) * (dpv - Di);
        #pragma unroll
        for (int c = 0; c < NC; c++) {
            const int d = lane + 32 * c;
            if (d < HD) acc[c] += ds * to_f32(kj[d]);
        }
    }
    store_row<NC>(dq + ((long long)b * T + i) * p.q_stride + (long long)h * HD, acc, p.scale, HD, lane);
}

// dK, dV: one warp per key row (b, kv head, j), summing over the group's query heads and all queries
template <int NC>
__global__ void attn_bwd_kv_generic_kernel(floatX *__restrict__ dk, floatX *__restrict__ dv, const floatX *__restrict__ dout,
                                           const float *__restrict__ lse, const float *__restrict__ Dsum,
                                           const floatX *__restrict__ q, const floatX *__restrict__ k,
                                           const floatX *__restrict__ v, const AttnParams p) {
    const long long row = (long long)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    const int lane = threadIdx.x & 31, T = p.T, HD = p.HD;
    if (row >= (long long)p.B * p.NKV * T) return;
    const int j = (int)(row % T), kvh = (int)((row / T) % p.NKV), b = (int)(row / ((long long)T * p.NKV));
    const int kvlen = attn_kvlen(p, b);
    const int *segb = p.segment ? p.segment + (long long)b * T : nullptr;
    const int sj = segb ? segb[j] : 0;
    const long long kvoff = ((long long)b * T + j) * p.kv_stride + (long long)kvh * HD;
    float kr[NC], vr[NC], dka[NC], dva[NC];
    load_row<NC>(kr, k + kvoff, HD, lane);
    load_row<NC>(vr, v + kvoff, HD, lane);
    #pragma unroll
    for (int c = 0; c < NC; c++) dka[c] = dva[c] = 0.f;
    if (j < kvlen) {
        for (int h = kvh * p.group; h < (kvh + 1) * p.group; h++) {
            const long long lrow = ((long long)b * p.NH + h) * T;
            for (int i = p.causal ? j : 0; i < T; i++) {
                if (segb && sj != 0 && sj != segb[i]) continue;
                const floatX *qi = q + ((long long)b * T + i) * p.q_stride + (long long)h * HD;
                const floatX *gi = dout + ((long long)b * T + i) * p.o_stride + (long long)h * HD;
                const float s = dot_row<NC>(kr, qi, HD, lane) * p.scale;
                const float pj = expf(s - lse[lrow + i]);
                const float dpv = dot_row<NC>(vr, gi, HD, lane);
                const float ds = pj * (dpv - Dsum[lrow + i]);
                #pragma unroll
                for (int c = 0; c < NC; c++) {
                    const int d = lane + 32 * c;
                    if (d < HD) {
                        dva[c] += pj * to_f32(gi[d]);
                        dka[c] += ds * to_f32(qi[d]);
                    }
                }
            }
        }
    }
    if (dk) store_row<NC>(dk + kvoff, dka, p.scale, HD, lane);
    if (dv) store_row<NC>(dv + kvoff, dva, 1.f, HD, lane);
}

// ----------------------------------------------------------------------------------------------------
// padding fixup (shared with the cuDNN path)

// one block per (b, t) token
__global__ void attn_fixup_kernel(floatX *out, float *lse, floatX *dq, floatX *dk, floatX *dv, const AttnParams p) {
    const int t = blockIdx.x % p.T, b = blockIdx.x / p.T;
    const int kvlen = attn_kvlen(p, b);
    const long long tok = (long long)b * p.T + t;
    if (t >= kvlen) {
        for (int e = threadIdx.x; e < p.NKV * p.HD; e += blockDim.x) {
            const long long off = tok * p.kv_stride + e;
            if (dk) dk[off] = to_floatX(0.f);
            if (dv) dv[off] = to_floatX(0.f);
        }
    }
    if (kvlen == 0) {  // no query of this row sees any key
        for (int e = threadIdx.x; e < p.NH * p.HD; e += blockDim.x) {
            if (out) out[tok * p.o_stride + e] = to_floatX(0.f);
            if (dq) dq[tok * p.q_stride + e] = to_floatX(0.f);
        }
        if (lse)
            for (int h = threadIdx.x; h < p.NH; h += blockDim.x) lse[((long long)b * p.NH + h) * p.T + t] = 0.f;
    }
}

void attn_fixup_padding(void *out, float *lse, void *dq, void *dk, void *dv, const AttnShape *s) {
    if (!s->kv_len || s->B <= 0 || s->T <= 0) return;
    const AttnParams p = attn_params(s);
    attn_fixup_kernel<<<(unsigned)((long long)s->B * s->T), 128, 0, stream_main()>>>(
        (floatX *)out, lse, (floatX *)dq, (floatX *)dk, (floatX *)dv, p);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------------------------------
// host: path choice and launches

#if ATTN_TENSOR_CORES
static int g_force_generic = -1;  // -1: read VLM_ATTN_GENERIC once (1 = always use the generic kernels)

void flash_attention_force_generic(int on) { g_force_generic = on ? 1 : 0; }
#else
void flash_attention_force_generic(int on) { (void)on; }  // the generic kernels are all the fp32 build has
#endif

static void check_shape(const AttnShape *s, const char *what) {
    if (s->B < 0 || s->T < 0 || s->NH <= 0 || s->NKV <= 0 || s->HD <= 0 || s->NH % s->NKV != 0)
        fatal("%s: bad shape B=%d T=%d NH=%d NKV=%d HD=%d (need NH %% NKV == 0)", what, s->B, s->T, s->NH, s->NKV, s->HD);
    if (s->HD > 256) fatal("%s: head dim %d > 256 is not supported by the CUDA attention kernels", what, s->HD);
    if (s->q_stride < s->NH * s->HD || s->kv_stride < s->NKV * s->HD)
        fatal("%s: strides q %d / kv %d smaller than a token's heads (%d / %d)", what, s->q_stride, s->kv_stride,
              s->NH * s->HD, s->NKV * s->HD);
}

#if ATTN_TENSOR_CORES
// the tensor-core kernels need HD a multiple of 16 (instantiated below) and 16-byte aligned rows
static int use_tc(const AttnShape *s, const void *a, const void *b, const void *c, const void *d, const void *e,
                  const void *f) {
    if (g_force_generic < 0) {
        const char *env = getenv("VLM_ATTN_GENERIC");
        g_force_generic = env && env[0] == '1';
    }
    if (g_force_generic) return 0;
    switch (s->HD) {
        case 16: case 32: case 64: case 80: case 96: case 128: break;
        default: return 0;
    }
    if (s->q_stride % 8 || s->kv_stride % 8) return 0;
    const void *ps[6] = {a, b, c, d, e, f};
    for (int i = 0; i < 6; i++)
        if (ps[i] && !is_aligned16(ps[i])) return 0;
    return 1;
}

template <typename K>
static void set_smem(K kernel, size_t bytes) {
    if (bytes > 48 * 1024) CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int HD>
static void launch_fwd(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v, const AttnParams &p) {
    using C = FwdCfg<HD>;
    static bool init = false;
    if (!init) { set_smem(flash_fwd_kernel<HD>, C::SMEM); init = true; }
    const long long blocks = (long long)((p.T + C::BQ - 1) / C::BQ) * p.NH * p.B;
    if (blocks > 0x7fffffffLL) fatal("attention_forward: %lld blocks exceed the grid limit", blocks);
    flash_fwd_kernel<HD><<<(unsigned)blocks, C::NTHREADS, C::SMEM, stream_main()>>>(out, lse, q, k, v, p);
    CUDA_LAUNCH_CHECK();
}

template <int HD>
static void launch_bwd(bf16 *dq, bf16 *dk, bf16 *dv, const bf16 *dout, const float *lse, const float *D,
                       const bf16 *q, const bf16 *k, const bf16 *v, const AttnParams &p) {
    using CKV = BwdKVCfg<HD>;
    using CQ = BwdQCfg<HD>;
    static bool init = false;
    if (!init) { set_smem(flash_bwd_kernel<HD>, BwdCfg<HD>::SMEM); init = true; }
    // a NULL dq (or dk and dv) drops that role's blocks; bwd_kv_block skips a NULL dk or dv itself
    const long long ck = (dk || dv) ? (long long)p.NKV * p.B : 0, cq = dq ? (long long)p.NH * p.B : 0;
    const long long blocks = (long long)((p.T + CKV::BKV - 1) / CKV::BKV) * (ck + cq);
    (void)sizeof(CQ);
    if (blocks > 0x7fffffffLL) fatal("attention_backward: %lld blocks exceed the grid limit", blocks);
    if (blocks == 0) return;
    flash_bwd_kernel<HD><<<(unsigned)blocks, 128, BwdCfg<HD>::SMEM, stream_main()>>>(dq, dk, dv, dout, lse, D, q, k, v,
                                                                                     p, (int)ck, (int)cq);
    CUDA_LAUNCH_CHECK();
}
#endif  // ATTN_TENSOR_CORES

template <int NC>
static void launch_generic_fwd(floatX *out, float *lse, const floatX *q, const floatX *k, const floatX *v,
                               const AttnParams &p) {
    const long long rows = (long long)p.B * p.NH * p.T;
    attn_fwd_generic_kernel<NC><<<(unsigned)((rows + 3) / 4), 128, 0, stream_main()>>>(out, lse, q, k, v, p);
    CUDA_LAUNCH_CHECK();
}

template <int NC>
static void launch_generic_bwd(floatX *dq, floatX *dk, floatX *dv, const floatX *dout, const float *lse, const float *D,
                               const floatX *q, const floatX *k, const floatX *v, const AttnParams &p) {
    if (dq) {
        const long long rows = (long long)p.B * p.NH * p.T;
        attn_bwd_q_generic_kernel<NC><<<(unsigned)((rows + 3) / 4), 128, 0, stream_main()>>>(dq, dout, lse, D, q, k, v, p);
        CUDA_LAUNCH_CHECK();
    }
    if (dk || dv) {
        const long long rows = (long long)p.B * p.NKV * p.T;
        attn_bwd_kv_generic_kernel<NC><<<(unsigned)((rows + 3) / 4), 128, 0, stream_main()>>>(dk, dv, dout, lse, D, q, k, v, p);
        CUDA_LAUNCH_CHECK();
    }
}

void flash_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s) {
    check_shape(s, "attention_forward");
    if (s->B == 0 || s->T == 0) return;
    const AttnParams p = attn_params(s);
    floatX *o = (floatX *)out;
    float *l = (float *)lse;
    const floatX *qq = (const floatX *)q, *kk = (const floatX *)k, *vv = (const floatX *)v;
#if ATTN_TENSOR_CORES
    if (use_tc(s, out, q, k, v, NULL, NULL)) {
        switch (s->HD) {
            case 16: launch_fwd<16>(o, l, qq, kk, vv, p); return;
            case 32: launch_fwd<32>(o, l, qq, kk, vv, p); return;
            case 64: launch_fwd<64>(o, l, qq, kk, vv, p); return;
            case 80: launch_fwd<80>(o, l, qq, kk, vv, p); return;
            case 96: launch_fwd<96>(o, l, qq, kk, vv, p); return;
            case 128: launch_fwd<128>(o, l, qq, kk, vv, p); return;
        }
    }
#endif
    switch ((s->HD + 31) / 32) {
        case 1: launch_generic_fwd<1>(o, l, qq, kk, vv, p); return;
        case 2: launch_generic_fwd<2>(o, l, qq, kk, vv, p); return;
        case 3: launch_generic_fwd<3>(o, l, qq, kk, vv, p); return;
        case 4: launch_generic_fwd<4>(o, l, qq, kk, vv, p); return;
        case 5: launch_generic_fwd<5>(o, l, qq, kk, vv, p); return;
        case 6: launch_generic_fwd<6>(o, l, qq, kk, vv, p); return;
        case 7: launch_generic_fwd<7>(o, l, qq, kk, vv, p); return;
        case 8: launch_generic_fwd<8>(o, l, qq, kk, vv, p); return;
    }
    fatal("attention_forward: no kernel for head dim %d", s->HD);
}

void flash_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                              const void *q, const void *k, const void *v, const AttnShape *s) {
    check_shape(s, "attention_backward");
    if (s->B == 0 || s->T == 0) return;
    if (!dq && !dk && !dv) return;
    const AttnParams p = attn_params(s);
    // D = rowsum(dO * O): (B, NH, T) fp32 scratch
    float *D = (float *)cuda_scratch(sizeof(float) * (size_t)s->B * s->NH * s->T);
    {
        const long long rows = (long long)s->B * s->T * s->NH;
        bwd_dot_kernel<<<(unsigned)((rows + 7) / 8), 256, 0, stream_main()>>>(D, (const floatX *)dout,
                                                                              (const floatX *)out, s->B, s->T, s->NH,
                                                                              s->HD);
        CUDA_LAUNCH_CHECK();
    }
    floatX *gq = (floatX *)dq, *gk = (floatX *)dk, *gv = (floatX *)dv;
    const floatX *go = (const floatX *)dout, *qq = (const floatX *)q, *kk = (const floatX *)k, *vv = (const floatX *)v;
    const float *l = (const float *)lse;
#if ATTN_TENSOR_CORES
    if (use_tc(s, dq, dk, dv, q, k, v) && is_aligned16(dout)) {
        switch (s->HD) {
            case 16: launch_bwd<16>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
            case 32: launch_bwd<32>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
            case 64: launch_bwd<64>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
            case 80: launch_bwd<80>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
            case 96: launch_bwd<96>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
            case 128: launch_bwd<128>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        }
    }
#endif
    switch ((s->HD + 31) / 32) {
        case 1: launch_generic_bwd<1>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 2: launch_generic_bwd<2>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 3: launch_generic_bwd<3>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 4: launch_generic_bwd<4>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 5: launch_generic_bwd<5>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 6: launch_generic_bwd<6>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 7: launch_generic_bwd<7>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
        case 8: launch_generic_bwd<8>(gq, gk, gv, go, l, D, qq, kk, vv, p); return;
    }
    fatal("attention_backward: no kernel for head dim %d", s->HD);
}

// ----------------------------------------------------------------------------------------------------
// run-time selection: VLM_ATTN=flash|cudnn. The default is cuDNN where it is built in, the faster of the
// two at every shape measured on the H100 (notes/perf.md); shapes cuDNN does not cover (segments, odd
// head dims) fall back to flash per call. cuDNN's SDPA takes bf16 (or fp16) only: the fp32 build runs
// flash (its generic kernels) whatever is asked, and says so once when cudnn is asked for.

enum { ATTN_IMPL_UNSET = -1, ATTN_IMPL_FLASH = 0, ATTN_IMPL_CUDNN = 1 };
static int g_attn_impl = ATTN_IMPL_UNSET;

void cuda_attention_select(const char *impl) {
    if (!impl || !strcmp(impl, "flash")) { g_attn_impl = ATTN_IMPL_FLASH; return; }
    if (!strcmp(impl, "cudnn")) {
#if defined(VLM_CUDA_FP32)
        static int noticed = 0;
        if (!noticed++)
            fprintf(stderr, "vlm: notice: cuDNN attention takes bf16 only; this fp32 build runs the flash kernels\n");
        g_attn_impl = ATTN_IMPL_FLASH;
        return;
#elif defined(VLM_CUDNN)
        g_attn_impl = ATTN_IMPL_CUDNN;
        return;
#else
        fatal("attention 'cudnn' requested (VLM_ATTN or --attn), but this binary was built without cuDNN "
              "(cudnn.h was not found at build time); use 'flash'");
#endif
    }
    fatal("attention implementation '%s': expected 'flash' or 'cudnn'", impl);
}

static int attn_impl(void) {
    if (g_attn_impl == ATTN_IMPL_UNSET) {
        const char *env = getenv("VLM_ATTN");
#if defined(VLM_CUDNN) && !defined(VLM_CUDA_FP32)
        cuda_attention_select(env && env[0] ? env : "cudnn");
#else
        cuda_attention_select(env && env[0] ? env : "flash");
#endif
    }
    return g_attn_impl;
}

const char *cuda_attention_selected(void) { return attn_impl() == ATTN_IMPL_CUDNN ? "cudnn" : "flash"; }

void cuda_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s) {
    if (attn_impl() == ATTN_IMPL_CUDNN && cudnn_attention_supported(s))
        cudnn_attention_forward(out, lse, q, k, v, s);
    else
        flash_attention_forward(out, lse, q, k, v, s);
}

void cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                             const void *q, const void *k, const void *v, const AttnShape *s) {
    if (attn_impl() == ATTN_IMPL_CUDNN && cudnn_attention_supported(s))
        cudnn_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s);
    else
        flash_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s);
}
