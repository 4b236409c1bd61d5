// The fp32 matrix product behind the CPU backend's matmul_forward and matmul_backward (model/ops_cpu.c).
// See model/gemm_cpu.c for the blocking and for why the result is deterministic and batch invariant.
#pragma once

// c (M, Ncol) = [c +] a (M, K) @ b (K, Ncol) [+ bias (Ncol)], all fp32, with any strides:
//   a(i, k) = a[i * rsa + k * csa],  b(k, j) = b[k * rsb + j * csb],  c(i, j) = c[i * ldc + j]
// accumulate: start each sum from c's value instead of 0 (parameter gradients add up). bias: added once after
// the sum (NULL: none). Every c(i, j) is one chain of fused multiply-adds over k = 0, 1, ..., K-1 in that
// order, whatever M, the thread count or the instruction set: bitwise the same from run to run, for a row
// computed alone or in a batch, with 1 or 16 threads.
void gemm_f32(int M, int Ncol, int K, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
              float *c, long ldc, int accumulate, const float *bias);

// 1 when the AVX-512 kernel is in use (the CPU has it and VLM_CPU_GEMM is not 0), else the plain C kernel.
int gemm_f32_avx512(void);
// Forgets the kernel choice so that the next call reads VLM_CPU_GEMM again (for tests).
void gemm_f32_reset_for_tests(void);

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
// r[i] lane j -> r[j] lane i: a 16 x 16 transpose in registers (a copy: the values move, none is computed).
// Used by the matmul's panel packing and by the attention's key transposes (model/ops_cpu.c). The loops
// are unrolled so that the 16 rows stay in registers (-O2 would keep them on the stack).
__attribute__((target("avx512f"))) static inline void transpose16x16_avx512(__m512 r[16]) {
    __m512 t[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j += 2) {  // interleave pairs of rows
        t[j] = _mm512_unpacklo_ps(r[j], r[j + 1]);
        t[j + 1] = _mm512_unpackhi_ps(r[j], r[j + 1]);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 16; j += 4) {  // then quads (64-bit pairs)
        r[j] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[j]), _mm512_castps_pd(t[j + 2])));
        r[j + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[j]), _mm512_castps_pd(t[j + 2])));
        r[j + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[j + 1]), _mm512_castps_pd(t[j + 3])));
        r[j + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[j + 1]), _mm512_castps_pd(t[j + 3])));
    }
    // now r[4g + c], 128-bit lane L, holds column 4L + c of rows 4g..4g+3: a 4 x 4 transpose of lanes
#pragma GCC unroll 16
    for (int c = 0; c < 4; c++) {
        const __m512 u0 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0x44), u1 = _mm512_shuffle_f32x4(r[c], r[4 + c], 0xEE);
        const __m512 u2 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0x44);
        const __m512 u3 = _mm512_shuffle_f32x4(r[8 + c], r[12 + c], 0xEE);
        t[c] = _mm512_shuffle_f32x4(u0, u2, 0x88);
        t[4 + c] = _mm512_shuffle_f32x4(u0, u2, 0xDD);
        t[8 + c] = _mm512_shuffle_f32x4(u1, u3, 0x88);
        t[12 + c] = _mm512_shuffle_f32x4(u1, u3, 0xDD);
    }
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++) r[j] = t[j];
}
#endif
