// The fp32 matrix product of the CPU backend: a register-tiled AVX-512 kernel (plain C fallback).
//
// c (M, Ncol) = [c +] a (M, K) @ b (K, Ncol) [+ bias], strides free (see gemm_cpu.h). The three products of a
// linear layer map onto it without copying activations:
//   forward   out (N, OC) = inp (N, C) @ w^T:    a = inp (rsa C, csa 1),   b(k, j) = w[j, k]  (rsb 1, csb C)
//   dinp      dinp (N, C) = dout (N, OC) @ w:    a = dout (rsa OC, csa 1), b = w row-major   (rsb C, csb 1)
//   dw        dw (OC, C) += dout^T @ inp:       a(i, k) = dout[k, i] (rsa 1, csa OC), b = inp (rsb C, csb 1)
//
// Blocking. The output is cut into tiles of MR = 8 rows x NR = 32 columns (two 16-float vectors). A tile's
// 16 accumulators stay in zmm registers for the whole reduction over k: per k the kernel loads one 32-wide
// row of b (two vectors), broadcasts 8 values of a, and issues 16 FMAs; 16 independent chains cover the FMA
// latency (4 cycles x 2 ports). b must be contiguous along j for the vector loads; where it is not (the
// forward pass reads w transposed) each task first packs its 32 columns into a (K, 32) panel, a copy of
// K x 32 floats against the 2 x rows x K x 32 flops the task then does. There is no blocking over k: at this
// project's CPU shapes (C, OC <= a few thousand) a panel and 8 rows of a fit in L2, and a k split would
// only add loads and stores of c.
// Where a is read down its columns (the dw product: a(i, k) = dout[k, i]) each task first copies its row
// block into (K, MR) strips, contiguous along k: read in place, a tile takes a new cache line per k and uses
// 32 of its 64 bytes (~105 GFLOP/s at the demo's dw products against ~150 with the strips). Panels whose 32
// columns are all in range load without masks.
// Threads take tasks of (one 32-column panel, up to RB rows), panel-major so a thread's consecutive tasks
// reuse its packed panel (row block first for the dw product, whose b is not packed, to reuse its strips). Products under ~2^18 multiply-adds run on the calling thread: at the demo's
// shapes a parallel region costs more than the work.
//
// Determinism. Every c(i, j) is one chain acc = fma(a(i, k), b(k, j), acc) over k = 0..K-1 in order, from 0
// (or from c), then + bias: no partial sums, no reduction tree. Which tile, task, thread or lane computes an
// element therefore changes nothing, so the result is bitwise independent of M (batch invariance: a row alone
// equals that row in a batch), of the thread count and of the kernel (the plain C fallback uses fmaf, which
// rounds as the vector FMA does). Rows past the end of a short tile are computed from a copy of row 0 and
// not stored; columns past the end are masked.
#include "gemm_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

#define MR 8
#define NR 32
#define RB (MR * 16)  // rows per task: 16 tiles share a packed panel

// ---- the plain C kernel: the same chains, one element at a time ----
static void tile_scalar(int mr, int nr, int K, const float *a, long rsa, long csa, const float *b, long ldb,
                        float *c, long ldc, int accumulate, const float *bias) {
    for (int i = 0; i < mr; i++)
        for (int j = 0; j < nr; j++) {
            float acc = accumulate ? c[(long)i * ldc + j] : 0.0f;
            for (int k = 0; k < K; k++) acc = fmaf(a[i * rsa + k * csa], b[(long)k * ldb + j], acc);
            c[(long)i * ldc + j] = bias ? acc + bias[j] : acc;
        }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512_KERNEL 1

// full: nr == NR, so the panel's rows load without masks (the masks would sit in the loop as stack reloads)
__attribute__((target("avx512f"), always_inline)) static inline void tile_avx512_body(
    int mr, int nr, int K, const float *a, long rsa, long csa, const float *b, long ldb, float *c, long ldc,
    int accumulate, const float *bias, const int full) {
    const __mmask16 m0 = nr >= 16 ? 0xFFFF : (__mmask16)((1u << nr) - 1);
    const __mmask16 m1 = nr >= 32 ? 0xFFFF : nr <= 16 ? 0 : (__mmask16)((1u << (nr - 16)) - 1);
    const float *ap[MR];
    for (int i = 0; i < MR; i++) ap[i] = a + (i < mr ? i : 0) * rsa;  // short tile: repeat row 0, not stored
    __m512 acc[MR][2];
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (accumulate && i < mr) {
            acc[i][0] = _mm512_maskz_loadu_ps(m0, c + (long)i * ldc);
            acc[i][1] = _mm512_maskz_loadu_ps(m1, c + (long)i * ldc + 16);
        } else acc[i][0] = acc[i][1] = _mm512_setzero_ps();
    }
    if (csa == 1) {
        for (int k = 0; k < K; k++) {
            const __m512 b0 = full ? _mm512_loadu_ps(b + (long)k * ldb) : _mm512_maskz_loadu_ps(m0, b + (long)k * ldb);
            const __m512 b1 = full ? _mm512_loadu_ps(b + (long)k * ldb + 16) : _mm512_maskz_loadu_ps(m1, b + (long)k * ldb + 16);
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++) {
                const __m512 x = _mm512_set1_ps(ap[i][k]);
                acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
            }
        }
    } else {
        for (int k = 0; k < K; k++) {
            const __m512 b0 = full ? _mm512_loadu_ps(b + (long)k * ldb) : _mm512_maskz_loadu_ps(m0, b + (long)k * ldb);
            const __m512 b1 = full ? _mm512_loadu_ps(b + (long)k * ldb + 16) : _mm512_maskz_loadu_ps(m1, b + (long)k * ldb + 16);
            const long off = (long)k * csa;
#pragma GCC unroll 8
            for (int i = 0; i < MR; i++) {
                const __m512 x = _mm512_set1_ps(ap[i][off]);
                acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
                acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
            }
        }
    }
    __m512 bias0 = _mm512_setzero_ps(), bias1 = _mm512_setzero_ps();
    if (bias) { bias0 = _mm512_maskz_loadu_ps(m0, bias); bias1 = _mm512_maskz_loadu_ps(m1, bias + 16); }
#pragma GCC unroll 8
    for (int i = 0; i < MR; i++) {
        if (i >= mr) break;
        __m512 y0 = acc[i][0], y1 = acc[i][1];
        if (bias) { y0 = _mm512_add_ps(y0, bias0); y1 = _mm512_add_ps(y1, bias1); }
        _mm512_mask_storeu_ps(c + (long)i * ldc, m0, y0);
        _mm512_mask_storeu_ps(c + (long)i * ldc + 16, m1, y1);
    }
}
// One MR x NR tile: a rows at a + i rsa (stride csa along k), b (K, nr <= NR) at row stride ldb.
__attribute__((target("avx512f"))) static void tile_avx512(int mr, int nr, int K, const float *a, long rsa, long csa,
                                                            const float *b, long ldb, float *c, long ldc,
                                                            int accumulate, const float *bias) {
    if (nr == NR) tile_avx512_body(mr, nr, K, a, rsa, csa, b, ldb, c, ldc, accumulate, bias, 1);
    else tile_avx512_body(mr, nr, K, a, rsa, csa, b, ldb, c, ldc, accumulate, bias, 0);
}
#endif

#ifdef HAVE_AVX512_KERNEL
// The forward pass's panel: panel (K, NR) = columns j0.. j0+nr-1 of b where b(k, j) = w[j * csb + k] (rsb 1):
// rows of w are contiguous along k, the panel along j, so 16 x 16 blocks are transposed in registers
// (a copy: the same values as the scalar packing loop). Columns past nr are zero.
__attribute__((target("avx512f"))) static void pack_panel_t_avx512(float *panel, const float *w, long csb, int K,
                                                                  int j0, int nr) {
    int k0 = 0;
    for (; k0 + 16 <= K; k0 += 16)
        for (int jb = 0; jb < NR; jb += 16) {
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = jb + j < nr ? _mm512_loadu_ps(w + (long)(j0 + jb + j) * csb + k0) : _mm512_setzero_ps();
            transpose16x16_avx512(r);  // now r[kk] holds k = k0 + kk of the 16 columns
#pragma GCC unroll 16
            for (int kk = 0; kk < 16; kk++) _mm512_storeu_ps(panel + (long)(k0 + kk) * NR + jb, r[kk]);
        }
    for (int k = k0; k < K; k++)
        for (int j = 0; j < NR; j++) panel[(long)k * NR + j] = j < nr ? w[(long)(j0 + j) * csb + k] : 0.0f;
}

// The dw product's a strips: rows i_begin..i_end-1 of a, tile by tile, (i, k) of the tile at i0 stored at
// strips[(i0 - i_begin) K + k MR + i] (a copy; rows past the end of a short tile are not written or read)
__attribute__((target("avx512f"))) static void pack_strips_avx512(float *strips, const float *a, long rsa, long csa,
                                                                 int K, int i_begin, int i_end) {
    if (rsa == 1) {  // the block's values at each k are contiguous: read them once, k outer, all tiles inner
        for (int k = 0; k < K; k++)
            for (int i0 = i_begin; i0 < i_end; i0 += MR) {
                const int mr = i_end - i0 < MR ? i_end - i0 : MR;
                const __mmask16 m = (__mmask16)((1u << mr) - 1);
                _mm512_mask_storeu_ps(strips + (long)(i0 - i_begin) * K + (long)k * MR, m,
                                      _mm512_maskz_loadu_ps(m, a + i0 + (long)k * csa));
            }
        return;
    }
    for (int i0 = i_begin; i0 < i_end; i0 += MR) {
        const int mr = i_end - i0 < MR ? i_end - i0 : MR;
        float *st = strips + (long)(i0 - i_begin) * K;
        for (int k = 0; k < K; k++)
            for (int i = 0; i < mr; i++) st[(long)k * MR + i] = a[(long)(i0 + i) * rsa + (long)k * csa];
    }
}
#endif

static int use_avx512 = -1;  // -1: not decided yet

int gemm_f32_avx512(void) {
    if (use_avx512 < 0) {
#ifdef HAVE_AVX512_KERNEL
        const char *e = getenv("VLM_CPU_GEMM");
        use_avx512 = __builtin_cpu_supports("avx512f") && !(e && !strcmp(e, "scalar"));
#else
        use_avx512 = 0;
#endif
    }
    return use_avx512;
}

// Forgets the kernel choice so that the next call reads VLM_CPU_GEMM again (tests/test_gemm.c compares both).
void gemm_f32_reset_for_tests(void) { use_avx512 = -1; }

void gemm_f32(int M, int Ncol, int K, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
              float *c, long ldc, int accumulate, const float *bias) {
    if (M <= 0 || Ncol <= 0) return;
    const int vec = gemm_f32_avx512();
    const int panels = (Ncol + NR - 1) / NR, rblocks = (M + RB - 1) / RB, tasks = panels * rblocks;
    const int pack = csb != 1;  // b not contiguous along j: copy each panel to (K, NR) first
    // a read down its columns (csa != 1: the dw product, a = dout^T): a tile would take a new cache line per k
    // and use half of it, so the AVX-512 path copies each row block's tiles to (K, MR) strips first
    // (contiguous along k), in tasks ordered row block first so that every panel reuses the copy
    const int apack = vec && csa != 1, rb_major = apack && !pack;
    const double work = (double)M * Ncol * (K > 0 ? K : 1);
    #pragma omp parallel if (work >= (1 << 18) && tasks > 1)
    {
        float *panel = pack ? xmalloc(sizeof(float) * NR * (K > 0 ? K : 1)) : NULL;
        float *astrips = apack ? xmalloc(sizeof(float) * RB * (K > 0 ? K : 1)) : NULL;
        int packed = -1, apacked = -1;  // the panel now in `panel`, the row block now in `astrips`
        #pragma omp for schedule(static)
        for (int t = 0; t < tasks; t++) {
            const int p = rb_major ? t % panels : t / rblocks, rb = rb_major ? t / panels : t % rblocks;
            const int j0 = p * NR, nr = Ncol - j0 < NR ? Ncol - j0 : NR;
            const float *bp;
            long ldb;
            if (pack) {
                if (packed != p) {
#ifdef HAVE_AVX512_KERNEL
                    if (vec && rsb == 1) pack_panel_t_avx512(panel, b, csb, K, j0, nr);
                    else
#endif
                    for (int k = 0; k < K; k++)
                        for (int j = 0; j < NR; j++) panel[(long)k * NR + j] = j < nr ? b[k * rsb + (j0 + j) * csb] : 0.0f;
                    packed = p;
                }
                bp = panel, ldb = NR;
            } else bp = b + (long)j0 * csb, ldb = rsb;
            const int i_end = (rb + 1) * RB < M ? (rb + 1) * RB : M;
            if (apack && apacked != rb) {
#ifdef HAVE_AVX512_KERNEL
                pack_strips_avx512(astrips, a, rsa, csa, K, rb * RB, i_end);
#endif
                apacked = rb;
            }
            for (int i0 = rb * RB; i0 < i_end; i0 += MR) {
                const int mr = i_end - i0 < MR ? i_end - i0 : MR;
                const float *ai = a + (long)i0 * rsa;
                float *ci = c + (long)i0 * ldc + j0;
                const float *bi = bias ? bias + j0 : NULL;
#ifdef HAVE_AVX512_KERNEL
                if (apack) {
                    tile_avx512(mr, nr, K, astrips + (long)(i0 - rb * RB) * K, 1, MR, bp, ldb, ci, ldc, accumulate, bi);
                    continue;
                }
                if (vec) { tile_avx512(mr, nr, K, ai, rsa, csa, bp, ldb, ci, ldc, accumulate, bi); continue; }
#endif
                tile_scalar(mr, nr, K, ai, rsa, csa, bp, ldb, ci, ldc, accumulate, bi);
            }
        }
        free(panel);
        free(astrips);
    }
}
