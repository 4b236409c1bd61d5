// The CPU backend: the readable reference implementation of every op in model/ops.h.
//
// Compiled twice (see Makefile): with CPU_REAL=float it is `backend_cpu`, the fp32 reference that
// matches transformers; with CPU_REAL=double it is `backend_cpu64`, used by the finite-difference
// gradient checks. Activations and accumulators share the type `real`. Loops are written for clarity
// first; the hot ones (matmul, attention, classifier) are parallel over independent outputs with OpenMP
// and keep their inner loops contiguous so the compiler vectorizes them.
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>  // exp, log, erf... pick the float or double version from the argument type

#include "../util/common.h"
#include "gemm_cpu.h"
#include "ops.h"

#ifndef CPU_REAL
#error "compile with -DCPU_REAL=float or -DCPU_REAL=double"
#endif
typedef CPU_REAL real;

// Below this many elements (or multiply-adds) an op runs on the calling thread: at the miniature study's
// shapes a parallel region (wake the team, barrier) costs as much as a few thousand elements of work, and a
// loaded machine makes it worse. The split never changes a result: the loops are over independent outputs.
#ifndef PAR_MIN
#define PAR_MIN 32768
#endif

// fp32 fast paths (AVX-512, chosen at run time; the loops below stay the reference and the fp64 build's
// code): AdamW (bitwise the loop), and the exponentials of SwiGLU, the sigmoid activations and the
// attention softmax (a polynomial exp within ~2 ulp of expf: not bitwise the loop, tests hold it to 1e-6).
// Off with VLM_CPU_VEC=0 (tests compare both).
#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_AVX512 1
#endif
// Leaf loops (the attention's in the loops path, the norms' rows, the residual add, RoPE) are also compiled
// for AVX-512 (target_clones: chosen once at load time where the CPU has it): 16 floats a vector instead of
// SSE's 4. Each is elementwise over its vector index, with no reassociation and no contraction into FMA
// (ISO C mode), so both clones give the same bits.
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define VEC_CLONES __attribute__((target_clones("avx512f", "default")))
#else
#define VEC_CLONES
#endif

static int cpu_vec512(void) {
    const char *e = getenv("VLM_CPU_VEC");
    return sizeof(real) == 4 && gemm_f32_avx512() && !(e && !strcmp(e, "0"));
}

// ----------------------------------------------------------------------------------------------------
// memory: CPU memory is host memory, so transfers are copies with conversion

// Each buffer starts after a header that keeps its size, so cpu_free can take it off the count of
// cpu_memory_in_use (model/ops.h). 64 bytes keep the alignment malloc gives.
#define CPU_HEADER 64
static void *cpu_malloc(size_t bytes) {
    char *p = xcalloc(1, bytes + CPU_HEADER);
    memcpy(p, &bytes, sizeof(bytes));
    cpu_memory_count((long long)bytes);
    return p + CPU_HEADER;
}
static void cpu_free(void *p) {
    if (!p) return;
    char *base = (char *)p - CPU_HEADER;
    size_t bytes;
    memcpy(&bytes, base, sizeof(bytes));
    cpu_memory_count(-(long long)bytes);
    free(base);
}
static void cpu_zero(void *p, size_t bytes) { if (bytes) memset(p, 0, bytes); }
static void cpu_copy(void *dst, const void *src, size_t bytes) { if (bytes) memmove(dst, src, bytes); }
static void cpu_synchronize(void) {}

static void cpu_upload_act(void *dst, const float *host, size_t n) {
    real *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = (real)host[i];
}
static void cpu_download_act(float *host, const void *src, size_t n) {
    const real *s = src;
    for (size_t i = 0; i < n; i++) host[i] = (float)s[i];
}
static void cpu_upload_acc(void *dst, const double *host, size_t n) {
    real *d = dst;
    for (size_t i = 0; i < n; i++) d[i] = (real)host[i];
}
static void cpu_download_acc(double *host, const void *src, size_t n) {
    const real *s = src;
    for (size_t i = 0; i < n; i++) host[i] = (double)s[i];
}

// ----------------------------------------------------------------------------------------------------
// matmul

// The fp32 build runs the products through the blocked AVX-512 kernel of model/gemm_cpu.c (the same
// sums, each one FMA chain over C in order: deterministic and batch invariant); the loops below stay the
// readable reference, which the fp64 build (gradient checks) and VLM_CPU_GEMM=0 run.
static int fast_gemm(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("VLM_CPU_GEMM");
        on = sizeof(real) == sizeof(float) && !(e && !strcmp(e, "0"));
    }
    return on;
}

// out (N, OC) = inp (N, C) @ w (OC, C)^T + b. Four input rows share each weight row load.
static void cpu_matmul_forward(void *out_, const void *inp_, const void *w_, const void *b_, int N, int C, int OC) {
    real *out = out_;
    const real *inp = inp_, *w = w_, *b = b_;
    if (fast_gemm()) {  // b(k, j) = w[j, k]: w read transposed
        gemm_f32(N, OC, C, (const float *)inp, C, 1, (const float *)w, 1, C, (float *)out, OC, 0, (const float *)b);
        return;
    }
    const int R = 4;
    #pragma omp parallel for schedule(static)
    for (int n0 = 0; n0 < N; n0 += R) {
        int rows = N - n0 < R ? N - n0 : R;
        for (int o = 0; o < OC; o++) {
            const real *wr = w + (size_t)o * C;
            real acc[4] = {0, 0, 0, 0};
            for (int r = 0; r < rows; r++) {
                const real *x = inp + (size_t)(n0 + r) * C;
                real s = 0;
                #pragma omp simd reduction(+ : s)
                for (int c = 0; c < C; c++) s += x[c] * wr[c];
                acc[r] = s;
            }
            for (int r = 0; r < rows; r++) out[(size_t)(n0 + r) * OC + o] = acc[r] + (b ? b[o] : 0);
        }
    }
}

static void cpu_matmul_backward(void *dinp_, void *dw_, void *db_, const void *dout_, const void *inp_,
                                const void *w_, int N, int C, int OC) {
    real *dinp = dinp_, *dw = dw_, *db = db_;
    const real *dout = dout_, *inp = inp_, *w = w_;
    if (fast_gemm()) {
        // dinp (N, C) = dout (N, OC) @ w (OC, C);  dw (OC, C) += dout^T @ inp, a(i, k) = dout[k, i]
        if (dinp) gemm_f32(N, C, OC, (const float *)dout, OC, 1, (const float *)w, C, 1, (float *)dinp, C, 0, NULL);
        if (dw) gemm_f32(OC, C, N, (const float *)dout, 1, OC, (const float *)inp, C, 1, (float *)dw, C, 1, NULL);
        if (db) {  // column sums over n in order from 0, then added: the reference's order, vectorized over o
            real *sum = xcalloc(OC, sizeof(real));
            for (int n = 0; n < N; n++)
                for (int o = 0; o < OC; o++) sum[o] += dout[(size_t)n * OC + o];
            for (int o = 0; o < OC; o++) db[o] += sum[o];
            free(sum);
        }
        return;
    }
    if (dinp) {  // dinp (N, C) = dout (N, OC) @ w (OC, C)
        #pragma omp parallel for schedule(static)
        for (int n = 0; n < N; n++) {
            real *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) dx[c] = 0;
            const real *g = dout + (size_t)n * OC;
            for (int o = 0; o < OC; o++) {
                real go = g[o];
                if (go == 0) continue;
                const real *wr = w + (size_t)o * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) dx[c] += go * wr[c];
            }
        }
    }
    if (dw || db) {  // dw (OC, C) += dout^T @ inp; db += column sums. Each thread owns whole weight rows.
        #pragma omp parallel for schedule(static)
        for (int o = 0; o < OC; o++) {
            real *dwr = dw ? dw + (size_t)o * C : NULL;
            real bsum = 0;
            for (int n = 0; n < N; n++) {
                real go = dout[(size_t)n * OC + o];
                bsum += go;
                if (!dwr || go == 0) continue;
                const real *x = inp + (size_t)n * C;
                #pragma omp simd
                for (int c = 0; c < C; c++) dwr[c] += go * x[c];
            }
            if (db) db[o] += bsum;
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// normalization

#ifdef HAVE_AVX512
static inline __mmask16 tail16(long left) { return left >= 16 ? 0xFFFF : (__mmask16)((1u << left) - 1); }
// Sums of a row in double for the norms and the gradient norm, vectorized: 16 interleaved sums (lane l takes
// the elements i = l mod 16), added as a fixed tree at the end. A fixed order for a given n, whatever the
// thread or the row's place in a batch; the loops' single chain waits on every add (4 cycles an element).
// sum_i (a_i b_i) e_i (e NULL: sum_i a_i b_i), each product in double
__attribute__((target("avx512f"))) static inline void cvt16_pd(const float *x, __mmask16 k, __m512d *lo, __m512d *hi) {
    const __m512 v = _mm512_maskz_loadu_ps(k, x);
    *lo = _mm512_cvtps_pd(_mm512_castps512_ps256(v));
    *hi = _mm512_cvtps_pd(_mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
}
// the 16 sums added as a fixed tree (the same instructions every time)
__attribute__((target("avx512f"))) static inline double lanes_sum(__m512d s0, __m512d s1) {
    return _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
}
__attribute__((target("avx512f"))) static double dot_f64_16(const float *a, const float *b, const float *e, size_t n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16((long)(n - i));
        __m512d a0, a1, b0, b1;
        cvt16_pd(a + i, k, &a0, &a1);
        cvt16_pd(b + i, k, &b0, &b1);
        __m512d p0 = _mm512_mul_pd(a0, b0), p1 = _mm512_mul_pd(a1, b1);
        if (e) {
            __m512d e0, e1;
            cvt16_pd(e + i, k, &e0, &e1);
            p0 = _mm512_mul_pd(p0, e0), p1 = _mm512_mul_pd(p1, e1);
        }
        s0 = _mm512_add_pd(s0, p0), s1 = _mm512_add_pd(s1, p1);
    }
    return lanes_sum(s0, s1);
}
// sum_i x_i^2 as dot_f64_16(x, x, NULL, n) computes it, bitwise, skipping blocks of 16 zeros: their squares
// are +0, and a lane's sum (from +0, of squares) is never -0, so adding them changes no bit. A gradient's
// unused embedding rows (the CLIP text tower's 49,408 rows, of which the demo's captions use ~100) are such
// blocks, and the test is cheaper than the conversions.
__attribute__((target("avx512f"))) static double sumsq_f64_16(const float *x, size_t n) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    const __m512i magnitude = _mm512_set1_epi32(0x7fffffff);
    for (size_t i = 0; i < n; i += 16) {
        const __mmask16 k = tail16((long)(n - i));
        if (!_mm512_test_epi32_mask(_mm512_maskz_loadu_epi32(k, x + i), magnitude)) continue;
        __m512d a0, a1;
        cvt16_pd(x + i, k, &a0, &a1);
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(a0, a0)), s1 = _mm512_add_pd(s1, _mm512_mul_pd(a1, a1));
    }
    return lanes_sum(s0, s1);
}
// layernorm's statistics: m = sum_i x_i / n, v = sum_i (x_i - m)^2 / n, in double
__attribute__((target("avx512f"))) static void mean_var_f64_16(const float *x, int n, double *m, double *v) {
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        __m512d x0, x1;
        cvt16_pd(x + i, tail16(n - i), &x0, &x1);
        s0 = _mm512_add_pd(s0, x0), s1 = _mm512_add_pd(s1, x1);
    }
    const double mean = lanes_sum(s0, s1) / n;
    const __m512d vm = _mm512_set1_pd(mean);
    s0 = s1 = _mm512_setzero_pd();
    for (int i = 0; i < n; i += 16) {
        const __mmask16 k = tail16(n - i);
        __m512d x0, x1;
        cvt16_pd(x + i, k, &x0, &x1);
        const __m512d d0 = _mm512_maskz_sub_pd((__mmask8)k, x0, vm), d1 = _mm512_maskz_sub_pd((__mmask8)(k >> 8), x1, vm);
        s0 = _mm512_add_pd(s0, _mm512_mul_pd(d0, d0)), s1 = _mm512_add_pd(s1, _mm512_mul_pd(d1, d1));
    }
    *m = mean, *v = lanes_sum(s0, s1) / n;
}
#endif


static void cpu_layernorm_forward(void *out_, void *mean_, void *rstd_, const void *inp_, const void *w_,
                                  const void *b_, int N, int C, float eps) {
    real *out = out_, *mean = mean_, *rstd = rstd_;
    const real *inp = inp_, *w = w_, *b = b_;
    const int vec = cpu_vec512();
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        double m = 0, v = 0;
#ifdef HAVE_AVX512
        if (vec) mean_var_f64_16((const float *)x, C, &m, &v);
        else
#endif
        {
            for (int c = 0; c < C; c++) m += x[c];
            m /= C;
            for (int c = 0; c < C; c++) v += (x[c] - m) * (x[c] - m);
            v /= C;  // biased variance, as torch.nn.LayerNorm
        }
        real s = (real)(1.0 / sqrt(v + eps));
        real *y = out + (size_t)n * C;
        for (int c = 0; c < C; c++) y[c] = ((x[c] - (real)m) * s) * w[c] + (b ? b[c] : 0);
        mean[n] = (real)m;
        rstd[n] = s;
    }
}

static void cpu_layernorm_backward(void *dinp_, void *dw_, void *db_, const void *dout_, const void *inp_,
                                   const void *w_, const void *mean_, const void *rstd_, int N, int C) {
    real *dinp = dinp_, *dw = dw_, *db = db_;
    const real *dout = dout_, *inp = inp_, *w = w_, *mean = mean_, *rstd = rstd_;
    if (dinp) {
        #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            real m = mean[n], s = rstd[n];
            // dnorm = g * w;  dx = s * (dnorm - mean(dnorm) - xhat * mean(dnorm * xhat))
            double sum_dn = 0, sum_dn_xhat = 0;
            for (int c = 0; c < C; c++) {
                real dn = g[c] * w[c];
                sum_dn += dn;
                sum_dn_xhat += dn * (x[c] - m) * s;
            }
            real a = (real)(sum_dn / C), bb = (real)(sum_dn_xhat / C);
            real *dx = dinp + (size_t)n * C;
            for (int c = 0; c < C; c++) dx[c] += s * (g[c] * w[c] - a - (x[c] - m) * s * bb);
        }
    }
    if (dw || db) {
        #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
        for (int c = 0; c < C; c++) {
            real sw = 0, sb = 0;
            for (int n = 0; n < N; n++) {
                real g = dout[(size_t)n * C + c];
                sw += g * (inp[(size_t)n * C + c] - mean[n]) * rstd[n];
                sb += g;
            }
            if (dw) dw[c] += sw;
            if (db) db[c] += sb;
        }
    }
}

// the rmsnorm's row loops (VEC_CLONES): y = (x s) w (HF: normalize first, then weight); dx += s g w - x k;
// sw += g x r
VEC_CLONES static void rms_row_out(real *y, const real *x, real s, const real *w, int C) {
    for (int c = 0; c < C; c++) y[c] = (x[c] * s) * w[c];
}
VEC_CLONES static void rms_row_dx(real *dx, const real *g, const real *x, const real *w, real s, real k, int C) {
    for (int c = 0; c < C; c++) dx[c] += s * g[c] * w[c] - x[c] * k;
}
VEC_CLONES static void rms_dw_add(real *sw, const real *g, const real *x, real r, int nc) {
    for (int c = 0; c < nc; c++) sw[c] += g[c] * x[c] * r;
}

static void cpu_rmsnorm_forward(void *out_, void *rstd_, const void *inp_, const void *w_, int N, int C, float eps) {
    real *out = out_, *rstd = rstd_;
    const real *inp = inp_, *w = w_;
    const int vec = cpu_vec512();
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = inp + (size_t)n * C;
        double ss = 0;
#ifdef HAVE_AVX512
        if (vec) ss = dot_f64_16((const float *)x, (const float *)x, NULL, C);
        else
#endif
        for (int c = 0; c < C; c++) ss += (double)x[c] * x[c];
        real s = (real)(1.0 / sqrt(ss / C + eps));
        rms_row_out(out + (size_t)n * C, x, s, w, C);
        rstd[n] = s;
    }
}

static void cpu_rmsnorm_backward(void *dinp_, void *dw_, const void *dout_, const void *inp_, const void *w_,
                                 const void *rstd_, int N, int C) {
    real *dinp = dinp_, *dw = dw_;
    const real *dout = dout_, *inp = inp_, *w = w_, *rstd = rstd_;
    if (dinp) {
        const int vec = cpu_vec512();
        #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
        for (int n = 0; n < N; n++) {
            const real *x = inp + (size_t)n * C, *g = dout + (size_t)n * C;
            real s = rstd[n];
            // y = x s w, s = (mean(x^2) + eps)^(-1/2):  dx = s dn - x s^3 mean(dn x),  dn = g w
            double dot = 0;
#ifdef HAVE_AVX512
            if (vec) dot = dot_f64_16((const float *)g, (const float *)w, (const float *)x, C);
            else
#endif
            for (int c = 0; c < C; c++) dot += (double)g[c] * w[c] * x[c];
            real k = (real)(dot / C) * s * s * s;
            rms_row_dx(dinp + (size_t)n * C, g, x, w, s, k, C);
        }
    }
    if (dw) {  // each column's sum over rows in order; rows outer, so the loads are contiguous (and vectorize)
        const int cb = 64, nblk = (C + cb - 1) / cb;
        #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
        for (int blk = 0; blk < nblk; blk++) {
            const int c0 = blk * cb, nc = C - c0 < cb ? C - c0 : cb;
            real sw[64] = {0};
            for (int n = 0; n < N; n++) rms_dw_add(sw, dout + (size_t)n * C + c0, inp + (size_t)n * C + c0, rstd[n], nc);
            for (int c = 0; c < nc; c++) dw[c0 + c] += sw[c];
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// elementwise

static inline real sigmoid(real x) { return 1 / (1 + exp(-x)); }

#ifdef HAVE_AVX512
// exp(x) for 16 floats: x = n ln2 + r (|r| <= ln2/2, ln2 in two parts), exp(r) by Cephes' degree-6
// polynomial, then scaled by 2^n (scalef: overflow to inf, underflow to 0 without special cases; NaN
// passes through). Every lane computes the same way, so a value never depends on its place in a vector.
__attribute__((target("avx512f"))) static inline __m512 exp16(__m512 x) {
    x = _mm512_min_ps(_mm512_set1_ps(100.0f), _mm512_max_ps(_mm512_set1_ps(-110.0f), x));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}
__attribute__((target("avx512f"))) static inline __m512 sigmoid16(__m512 x) {
    const __m512 one = _mm512_set1_ps(1.0f);
    return _mm512_div_ps(one, _mm512_add_ps(one, exp16(_mm512_sub_ps(_mm512_setzero_ps(), x))));
}

// y (F) = silu(gate) * up, the reference's order: (gate * sigmoid(gate)) * up
__attribute__((target("avx512f"))) static void swiglu_fwd16(float *y, const float *gate, const float *up, int F) {
    for (int f = 0; f < F; f += 16) {
        const __mmask16 k = tail16(F - f);
        const __m512 g = _mm512_maskz_loadu_ps(k, gate + f), u = _mm512_maskz_loadu_ps(k, up + f);
        _mm512_mask_storeu_ps(y + f, k, _mm512_mul_ps(_mm512_mul_ps(g, sigmoid16(g)), u));
    }
}
// dup = dy * silu; dgate = dy * up * s * (1 + gate * (1 - s)), in the reference's order
__attribute__((target("avx512f"))) static void swiglu_bwd16(float *dgate, float *dup, const float *dy, const float *gate,
                                                            const float *up, int F) {
    const __m512 one = _mm512_set1_ps(1.0f);
    for (int f = 0; f < F; f += 16) {
        const __mmask16 k = tail16(F - f);
        const __m512 g = _mm512_maskz_loadu_ps(k, gate + f), u = _mm512_maskz_loadu_ps(k, up + f);
        const __m512 d = _mm512_maskz_loadu_ps(k, dy + f), sg = sigmoid16(g), silu = _mm512_mul_ps(g, sg);
        const __m512 t = _mm512_add_ps(one, _mm512_mul_ps(g, _mm512_sub_ps(one, sg)));
        _mm512_mask_storeu_ps(dup + f, k, _mm512_mul_ps(d, silu));
        _mm512_mask_storeu_ps(dgate + f, k, _mm512_mul_ps(_mm512_mul_ps(_mm512_mul_ps(d, u), sg), t));
    }
}
// out = x * sigmoid(a x) (quick_gelu: a = 1.702; silu: a = 1) on [i0, i1)
__attribute__((target("avx512f"))) static void sigmoid_act16(float *out, const float *inp, size_t i0, size_t i1, float a) {
    const __m512 va = _mm512_set1_ps(a);
    for (size_t i = i0; i < i1; i += 16) {
        const __mmask16 k = tail16((long)(i1 - i));
        const __m512 x = _mm512_maskz_loadu_ps(k, inp + i);
        _mm512_mask_storeu_ps(out + i, k, _mm512_mul_ps(x, sigmoid16(a == 1.0f ? x : _mm512_mul_ps(va, x))));
    }
}
// p[j] = p[j] == -inf ? 0 : exp(p[j] - m), j < n
__attribute__((target("avx512f"))) static void exp_shift16(float *p, int n, float m) {
    const __m512 vm = _mm512_set1_ps(m), ninf = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < n; j += 16) {
        const __mmask16 k = tail16(n - j);
        const __m512 x = _mm512_maskz_loadu_ps(k, p + j);
        const __mmask16 masked = _mm512_cmp_ps_mask(x, ninf, _CMP_EQ_OQ);
        _mm512_mask_storeu_ps(p + j, k, _mm512_maskz_mov_ps(~masked, exp16(_mm512_sub_ps(x, vm))));
    }
}

#endif

static void cpu_act_forward(ActKind kind, void *out_, const void *inp_, size_t n) {
    real *out = out_;
    const real *inp = inp_;
#ifdef HAVE_AVX512
    if ((kind == ACT_QUICK_GELU || kind == ACT_SILU) && cpu_vec512()) {
        const size_t blk = 4096, nb = (n + blk - 1) / blk;  // whole vectors per block: blk % 16 == 0
        #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t b = 0; b < nb; b++)
            sigmoid_act16((float *)out, (const float *)inp, b * blk, (b + 1) * blk < n ? (b + 1) * blk : n,
                          kind == ACT_SILU ? 1.0f : 1.702f);
        return;
    }
#endif
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i];
        switch (kind) {
        case ACT_GELU: out[i] = (real)0.5 * x * (1 + erf(x * (real)M_SQRT1_2)); break;
        case ACT_QUICK_GELU: out[i] = x * sigmoid((real)1.702 * x); break;
        case ACT_SILU: out[i] = x * sigmoid(x); break;
        case ACT_GELU_TANH: {
            real u = (real)0.7978845608028654 * (x + (real)0.044715 * x * x * x);  // sqrt(2/pi)
            out[i] = (real)0.5 * x * (1 + tanh(u));
            break;
        }
        }
    }
}

static void cpu_act_backward(ActKind kind, void *dinp_, const void *dout_, const void *inp_, size_t n) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) {
        real x = inp[i], d = 0;
        switch (kind) {
        case ACT_GELU: {  // d/dx x Phi(x) = Phi(x) + x phi(x)
            real cdf = (real)0.5 * (1 + erf(x * (real)M_SQRT1_2));
            real pdf = exp((real)-0.5 * x * x) * (real)0.3989422804014327;  // 1/sqrt(2 pi)
            d = cdf + x * pdf;
            break;
        }
        case ACT_QUICK_GELU: {
            real s = sigmoid((real)1.702 * x);
            d = s + x * (real)1.702 * s * (1 - s);
            break;
        }
        case ACT_SILU: {
            real s = sigmoid(x);
            d = s * (1 + x * (1 - s));
            break;
        }
        case ACT_GELU_TANH: {
            real k = (real)0.7978845608028654;
            real u = k * (x + (real)0.044715 * x * x * x);
            real t = tanh(u);
            d = (real)0.5 * (1 + t) + (real)0.5 * x * (1 - t * t) * k * (1 + 3 * (real)0.044715 * x * x);
            break;
        }
        }
        dinp[i] = dout[i] * d;
    }
}

static void cpu_swiglu_forward(void *out_, const void *inp_, int N, int F) {
    real *out = out_;
    const real *inp = inp_;
    const int vec = cpu_vec512();
    #pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *gate = inp + (size_t)n * 2 * F, *up = gate + F;
        real *y = out + (size_t)n * F;
#ifdef HAVE_AVX512
        if (vec) { swiglu_fwd16((float *)y, (const float *)gate, (const float *)up, F); continue; }
#endif
        for (int f = 0; f < F; f++) y[f] = gate[f] * sigmoid(gate[f]) * up[f];
    }
}

// the definition: the two ops in sequence, the pre-activation kept in gu
static void cpu_matmul_swiglu_forward(void *out, void *gu, const void *inp, const void *w, const void *b, int N, int C,
                                      int F) {
    cpu_matmul_forward(gu, inp, w, b, N, C, 2 * F);
    cpu_swiglu_forward(out, gu, N, F);
}

static void cpu_swiglu_backward(void *dinp_, const void *dout_, const void *inp_, int N, int F) {
    real *dinp = dinp_;
    const real *dout = dout_, *inp = inp_;
    const int vec = cpu_vec512();
    #pragma omp parallel for schedule(static) if ((size_t)N * F >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *gate = inp + (size_t)n * 2 * F, *up = gate + F, *g = dout + (size_t)n * F;
        real *dgate = dinp + (size_t)n * 2 * F, *dup = dgate + F;
#ifdef HAVE_AVX512
        if (vec) { swiglu_bwd16((float *)dgate, (float *)dup, (const float *)g, (const float *)gate, (const float *)up, F); continue; }
#endif
        for (int f = 0; f < F; f++) {
            real s = sigmoid(gate[f]), silu = gate[f] * s;
            real dg = g[f], u = up[f];  // read before writing: dinp may not alias, but keep it obvious
            dup[f] = dg * silu;
            dgate[f] = dg * u * s * (1 + gate[f] * (1 - s));
        }
    }
}

VEC_CLONES static void add_span(real *out, const real *a, const real *b, size_t i0, size_t i1) {
    for (size_t i = i0; i < i1; i++) out[i] = a[i] + b[i];
}
static void cpu_add(void *out_, const void *a_, const void *b_, size_t n) {
    const size_t blk = 4096, nb = (n + blk - 1) / blk;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t b = 0; b < nb; b++) add_span(out_, a_, b_, b * blk, (b + 1) * blk < n ? (b + 1) * blk : n);
}

static void cpu_scale(void *x_, float s, size_t n) {
    real *x = x_;
    for (size_t i = 0; i < n; i++) x[i] *= (real)s;
}

static void cpu_channel_scale_forward(void *out_, const void *inp_, const void *s_, int N, int C) {
    real *out = out_;
    const real *inp = inp_, *s = s_;
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * C + c] = inp[(size_t)n * C + c] * s[c];
}

// ds first (dinp may alias dout): column sums over n in order from 0, then added, as the bias gradient sums
static void cpu_channel_scale_backward(void *dinp_, void *ds_, const void *dout_, const void *inp_, const void *s_, int N,
                                       int C) {
    real *dinp = dinp_, *ds = ds_;
    const real *dout = dout_, *inp = inp_, *s = s_;
    if (ds) {
        real *sum = xcalloc(C ? C : 1, sizeof(real));
        for (int n = 0; n < N; n++)
            for (int c = 0; c < C; c++) sum[c] += dout[(size_t)n * C + c] * inp[(size_t)n * C + c];
        for (int c = 0; c < C; c++) ds[c] += sum[c];
        free(sum);
    }
    if (dinp) cpu_channel_scale_forward(dinp, dout, s, N, C);
}

// ----------------------------------------------------------------------------------------------------
// rotary embedding. Angles are computed as HF does: inv_freq in the working precision, then pos * inv_freq.

// The angle of (position p, pair i) as HF computes it, in the working precision.
static inline real rope_angle(int p, int i, int HD, float theta) {
    real inv_freq = (real)1 / (real)pow((real)theta, (real)(2 * i) / (real)HD);
    return (real)p * inv_freq;
}

// pairs (i, i + half) of each head of a row rotated by (c[i], sign sn[i]), contiguous in i
VEC_CLONES static void rope_rotate(real *x, const real *c, const real *sn, real sign, int heads, int HD) {
    const int half = HD / 2;
    for (int h = 0; h < heads; h++) {
        real *xh = x + (size_t)h * HD;
        for (int i = 0; i < half; i++) {
            real a = xh[i], b = xh[i + half], si = sign * sn[i];
            xh[i] = a * c[i] - b * si;
            xh[i + half] = b * c[i] + a * si;
        }
    }
}

static void rope_apply(real *x_, const int *pos, int N, int heads, int HD, int stride, float theta, real sign) {
    int half = HD / 2, maxpos = 0;
    for (int n = 0; n < N; n++) maxpos = pos[n] > maxpos ? pos[n] : maxpos;
    // Rows share few positions (a training batch: B rows of T positions; a decode step: a few lengths), so
    // the cosines and sines are tabulated per position first when that is fewer evaluations: each entry is
    // computed by the same expression as in the direct loop, so the rotation is bitwise the same.
    const int table = (size_t)(maxpos + 1) * 2 < (size_t)N;
    real *cs = table ? xmalloc(sizeof(real) * 2 * (size_t)(maxpos + 1) * half) : NULL;  // (maxpos+1, cos | sin, half)
    if (table)
        for (int p = 0; p <= maxpos; p++)
            for (int i = 0; i < half; i++) {
                real ang = rope_angle(p, i, HD, theta);
                cs[(size_t)p * 2 * half + i] = cos(ang);
                cs[(size_t)p * 2 * half + half + i] = (real)sin(ang);
            }
    #pragma omp parallel if ((size_t)N * heads * HD >= PAR_MIN)
    {
        real *own = xmalloc(sizeof(real) * 2 * (half > 0 ? half : 1));  // a row's cos | sin when not tabulated
        #pragma omp for schedule(static)
        for (int n = 0; n < N; n++) {
            real *x = x_ + (size_t)n * stride;
            const real *c = own, *sn = own + half;
            if (table && pos[n] >= 0) c = cs + (size_t)pos[n] * 2 * half, sn = c + half;
            else
                for (int i = 0; i < half; i++) {
                    real ang = rope_angle(pos[n], i, HD, theta);
                    own[i] = cos(ang), own[half + i] = (real)sin(ang);
                }
            rope_rotate(x, c, sn, sign, heads, HD);
        }
        free(own);
    }
    free(cs);
}

static void cpu_rope_forward(void *x, const int *pos, int N, int heads, int HD, int stride, float theta) {
    rope_apply(x, pos, N, heads, HD, stride, theta, 1);
}

// The rotation is orthogonal, so the gradient is rotated back by the same angle.
static void cpu_rope_backward(void *dx, const int *pos, int N, int heads, int HD, int stride, float theta) {
    rope_apply(dx, pos, N, heads, HD, stride, theta, -1);
}

// ----------------------------------------------------------------------------------------------------
// attention

static inline int attn_visible(const AttnShape *s, int b, int i, int j) {
    if (s->kv_len && j >= s->kv_len[b]) return 0;
    if (s->causal && j > i) return 0;
    if (s->segment) {
        int sj = s->segment[(size_t)b * s->T + j];
        if (sj != 0 && sj != s->segment[(size_t)b * s->T + i]) return 0;
    }
    return 1;
}

// kt (HD, T) = the T keys (or values) of row b, kv head kvh, transposed: the scores of one query against
// all keys then vectorize over j with contiguous loads, each score still one sum over d in order
static void attn_transpose(real *kt, const real *k, const AttnShape *s, int b, int kvh) {
    for (int j = 0; j < s->T; j++) {
        const real *kj = k + ((size_t)b * s->T + j) * s->kv_stride + (size_t)kvh * s->HD;
        for (int d = 0; d < s->HD; d++) kt[(size_t)d * s->T + j] = kj[d];
    }
}

// dot[j] = sum_d x[d] kt[d, j], d in order: bitwise the scalar loop `dot += x[d] * k_j[d]` of each key
VEC_CLONES static void attn_dots(real *dot, const real *x, const real *kt, int T, int HD) {
    for (int j = 0; j < T; j++) dot[j] = 0;
    for (int d = 0; d < HD; d++) {
        const real xd = x[d], *kd = kt + (size_t)d * T;
        #pragma omp simd
        for (int j = 0; j < T; j++) dot[j] += xd * kd[j];
    }
}

// o[d] += w v[d]
VEC_CLONES static void attn_axpy(real *restrict o, real w, const real *restrict v, int HD) {
    #pragma omp simd
    for (int d = 0; d < HD; d++) o[d] += w * v[d];
}

// one key's updates in the attention backward: dq += ds k, dk += ds q, dv += p dout
VEC_CLONES static void attn_bwd_update(real *restrict dqi, real *restrict dkj, real *restrict dvj, const real *kj,
                                       const real *qi, const real *gi, real ds, real p, int HD) {
    #pragma omp simd
    for (int d = 0; d < HD; d++) {
        dqi[d] += ds * kj[d];
        dkj[d] += ds * qi[d];
        dvj[d] += p * gi[d];
    }
}

#ifdef HAVE_AVX512
// ---- the fp32 attention in AVX-512: blocks of queries at once ----
// The loops above take one query at a time and keep their sums in memory, so at this project's shapes
// (T = 10-80 keys, HD = 24-64) they wait on load-store chains and run scalar tails. These kernels compute the
// same sums with the same roundings, AQ queries at a time with the partial sums in registers:
//   scores  S[r][j] = sum_d q_r[d] k_j[d]          (d in order, mul then add: as attn_dots)
//   forward o_r[d]  = sum_j (p_rj / sum_r) v_j[d]   (j in order, as attn_axpy)
//   backward dq_r = sum_j ds_rj k_j, dk_j = sum_(h,i) ds_ij q_i, dv_j = sum_(h,i) p_ij g_i, each in the
//   reference's order (j in order; heads of the group, then queries, in order).
// The softmax sums and D_i = dout_i . out_i also run in the loops' order, several queries' chains interleaved.
// A key that a query cannot see adds 0 * x there: +-0 added to a sum that started at +0 leaves it unchanged
// (such a sum is never -0; x finite), so the forward is bitwise the VLM_CPU_VEC path of the loops and the
// backward differs from the loops only by its exponentials (exp16, as the forward's; the loops call expf).
// Only the keys up to the last visible one are visited (causal rows: half the scores).
// Query tokens outside s->q_rows are skipped (forward output and lse 0; in the backward their dout is zero,
// so they add nothing: dq 0, dk and dv unchanged bitwise).
#define AQ 8  // queries per block: 8 independent sums in flight cover the add latency

// S (AQ, lds): S[r][j] = q_r . k_j for j < nj, q_r = x + r xs (r < nq; the rows past nq repeat row 0 and are
// not stored); kt (HD, ldk) holds the keys transposed, ldk and lds multiples of 16 with zeros past T
__attribute__((target("avx512f"))) static void attn_scores_vec(float *S, int lds, const float *x, long xs, int nq,
                                                                const float *kt, int ldk, int nj, int HD) {
    const float *xr[AQ];
    for (int r = 0; r < AQ; r++) xr[r] = x + (r < nq ? r : 0) * xs;
    for (int j0 = 0; j0 < nj; j0 += 16) {
        __m512 acc[AQ];
        for (int r = 0; r < AQ; r++) acc[r] = _mm512_setzero_ps();
        for (int d = 0; d < HD; d++) {
            const __m512 kv = _mm512_loadu_ps(kt + (long)d * ldk + j0);
#pragma GCC unroll 8
            for (int r = 0; r < AQ; r++) acc[r] = _mm512_add_ps(acc[r], _mm512_mul_ps(_mm512_set1_ps(xr[r][d]), kv));
        }
#pragma GCC unroll 8
        for (int r = 0; r < AQ; r++)  // constant bounds keep acc[] in registers
            if (r < nq) _mm512_storeu_ps(S + (long)r * lds + j0, acc[r]);
    }
}

// out rows o_r (r < nq <= 4) = sum_j W[r][j] x_j over j < nj, x_j = x + j xs: HD <= 64 in NV vectors
__attribute__((target("avx512f"), always_inline)) static inline void attn_wsum_vec(
    float *o, long os, int nq, const float *W, int ldw, const float *x, long xs, int nj, int HD, int NV) {
    __m512 acc[4][4];
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) m[v] = HD - 16 * v >= 16 ? 0xFFFF : HD > 16 * v ? (__mmask16)((1u << (HD - 16 * v)) - 1) : 0;
    const float *w[4];
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++) {
        w[r] = W + (long)(r < nq ? r : 0) * ldw;
#pragma GCC unroll 4
        for (int v = 0; v < 4; v++) acc[r][v] = _mm512_setzero_ps();
    }
    for (int j = 0; j < nj; j++) {
        __m512 xv[4];
#pragma GCC unroll 4
        for (int v = 0; v < NV; v++) xv[v] = _mm512_maskz_loadu_ps(m[v], x + (long)j * xs + 16 * v);
#pragma GCC unroll 4
        for (int r = 0; r < 4; r++) {
            const __m512 wr = _mm512_set1_ps(w[r][j]);
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) acc[r][v] = _mm512_add_ps(acc[r][v], _mm512_mul_ps(wr, xv[v]));
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < 4; r++)  // constant bounds keep acc[][] in registers
        if (r < nq)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) _mm512_mask_storeu_ps(o + r * os + 16 * v, m[v], acc[r][v]);
}
__attribute__((target("avx512f"))) static void attn_wsum(float *o, long os, int nq, const float *W, int ldw,
                                                          const float *x, long xs, int nj, int HD) {
    for (int r0 = 0; r0 < nq; r0 += 4) {
        const int n = nq - r0 < 4 ? nq - r0 : 4;
        float *orow = o + r0 * os;
        const float *wr = W + (long)r0 * ldw;
        switch ((HD + 15) / 16) {  // constant vector counts: the accumulators stay in registers
        case 1: attn_wsum_vec(orow, os, n, wr, ldw, x, xs, nj, HD, 1); break;
        case 2: attn_wsum_vec(orow, os, n, wr, ldw, x, xs, nj, HD, 2); break;
        case 3: attn_wsum_vec(orow, os, n, wr, ldw, x, xs, nj, HD, 3); break;
        default: attn_wsum_vec(orow, os, n, wr, ldw, x, xs, nj, HD, 4); break;
        }
    }
}

// dk_j += sum_r dS[r][j] q_r and dv_j += sum_r P[r][j] g_r, r = 0..nq-1 in order, for keys j < nj (rows at
// stride ks); two keys at a time so that four or more sums are in flight
__attribute__((target("avx512f"), always_inline)) static inline void attn_kv_update_vec(
    float *dk, float *dv, long ks, int nj, const float *dS, const float *P, int ld, const float *q, long qs,
    const float *g, long gs, int nq, int HD, int NV) {
    __mmask16 m[4];
#pragma GCC unroll 4
    for (int v = 0; v < 4; v++) m[v] = HD - 16 * v >= 16 ? 0xFFFF : HD > 16 * v ? (__mmask16)((1u << (HD - 16 * v)) - 1) : 0;
    for (int j0 = 0; j0 < nj; j0 += 2) {
        const int nk = nj - j0 < 2 ? 1 : 2;
        __m512 ak[2][4], av[2][4];
#pragma GCC unroll 4
        for (int u = 0; u < 2; u++)
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                const long off = (long)(j0 + (u < nk ? u : 0)) * ks + 16 * v;
                ak[u][v] = _mm512_maskz_loadu_ps(m[v], dk + off);
                av[u][v] = _mm512_maskz_loadu_ps(m[v], dv + off);
            }
        for (int r = 0; r < nq; r++) {
            __m512 qv[4], gv[4];
#pragma GCC unroll 4
            for (int v = 0; v < NV; v++) {
                qv[v] = _mm512_maskz_loadu_ps(m[v], q + r * qs + 16 * v);
                gv[v] = _mm512_maskz_loadu_ps(m[v], g + r * gs + 16 * v);
            }
#pragma GCC unroll 4
            for (int u = 0; u < 2; u++) {
                const int j = j0 + (u < nk ? u : 0);
                const __m512 ds = _mm512_set1_ps(dS[(long)r * ld + j]), p = _mm512_set1_ps(P[(long)r * ld + j]);
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) {
                    ak[u][v] = _mm512_add_ps(ak[u][v], _mm512_mul_ps(ds, qv[v]));
                    av[u][v] = _mm512_add_ps(av[u][v], _mm512_mul_ps(p, gv[v]));
                }
            }
        }
#pragma GCC unroll 2
        for (int u = 0; u < 2; u++)  // constant bounds keep ak[][], av[][] in registers
            if (u < nk)
#pragma GCC unroll 4
                for (int v = 0; v < NV; v++) {
                    _mm512_mask_storeu_ps(dk + (long)(j0 + u) * ks + 16 * v, m[v], ak[u][v]);
                    _mm512_mask_storeu_ps(dv + (long)(j0 + u) * ks + 16 * v, m[v], av[u][v]);
                }
    }
}
__attribute__((target("avx512f"))) static void attn_kv_update(float *dk, float *dv, long ks, int nj, const float *dS,
                                                               const float *P, int ld, const float *q, long qs,
                                                               const float *g, long gs, int nq, int HD) {
    switch ((HD + 15) / 16) {
    case 1: attn_kv_update_vec(dk, dv, ks, nj, dS, P, ld, q, qs, g, gs, nq, HD, 1); break;
    case 2: attn_kv_update_vec(dk, dv, ks, nj, dS, P, ld, q, qs, g, gs, nq, HD, 2); break;
    case 3: attn_kv_update_vec(dk, dv, ks, nj, dS, P, ld, q, qs, g, gs, nq, HD, 3); break;
    default: attn_kv_update_vec(dk, dv, ks, nj, dS, P, ld, q, qs, g, gs, nq, HD, 4); break;
    }
}

// The keys query i of row b sees among j0..j0+15: j < lim (causality and key padding) and its segment's
static inline __attribute__((target("avx512f"))) __mmask16 attn_vis16(const AttnShape *s, int b, int i, int j0, int lim) {
    if (lim <= j0) return 0;
    __mmask16 m = tail16(lim - j0);
    if (s->segment) {
        const int *seg = s->segment + (size_t)b * s->T;
        const __m512i sj = _mm512_maskz_loadu_epi32(m, seg + j0);
        m &= _mm512_cmpeq_epi32_mask(sj, _mm512_setzero_si512()) | _mm512_cmpeq_epi32_mask(sj, _mm512_set1_epi32(seg[i]));
    }
    return m;
}
// keys that may be visible from any query of i0..i0+nq-1 of row b: j < attn_kend
static inline int attn_kend(const AttnShape *s, int b, int i0, int nq) {
    int e = s->causal ? i0 + nq : s->T;
    if (s->kv_len && s->kv_len[b] < e) e = s->kv_len[b] < 0 ? 0 : s->kv_len[b];
    return e;
}
static inline int attn_klim(const AttnShape *s, int b, int i) {  // the causal and padding bound of query i
    int e = s->causal ? i + 1 : s->T;
    if (s->kv_len && s->kv_len[b] < e) e = s->kv_len[b];
    return e;
}

// kt (HD, ld) = keys (or values) of row b, kv head kvh, transposed 16 x 16 in registers, up to the row's key
// bound (T, or kv_len[b]: no query visits a key past it, attn_kend) with zeros to the next multiple of 16; the
// columns past that are not written (a padded row of the decoder's grid is a third padding)
__attribute__((target("avx512f"))) static void attn_transpose_pad(float *kt, int ld, const float *k, const AttnShape *s,
                                                                   int b, int kvh) {
    const int HD = s->HD, T = s->kv_len && s->kv_len[b] < s->T ? (s->kv_len[b] > 0 ? s->kv_len[b] : 0) : s->T;
    const int end = (T + 15) / 16 * 16 < ld ? (T + 15) / 16 * 16 : ld;
    const float *kb = k + (size_t)b * s->T * s->kv_stride + (size_t)kvh * HD;
    for (int j0 = 0; j0 < end; j0 += 16)
        for (int d0 = 0; d0 < HD; d0 += 16) {
            const __mmask16 md = tail16(HD - d0);
            __m512 r[16];
#pragma GCC unroll 16
            for (int j = 0; j < 16; j++)
                r[j] = j0 + j < T ? _mm512_maskz_loadu_ps(md, kb + (size_t)(j0 + j) * s->kv_stride + d0) : _mm512_setzero_ps();
            transpose16x16_avx512(r);
#pragma GCC unroll 16
            for (int d = 0; d < 16; d++)
                if (d0 + d < HD) _mm512_storeu_ps(kt + (size_t)(d0 + d) * ld + j0, r[d]);
        }
}

// need[n] = 1 for the query tokens whose outputs are read (all when s->q_rows is NULL); caller frees
static unsigned char *attn_needed(const AttnShape *s) {
    const size_t N = (size_t)s->B * s->T;
    unsigned char *need = xmalloc(N ? N : 1);
    memset(need, s->q_rows ? 0 : 1, N);
    if (s->q_rows)
        for (int m = 0; m < s->n_q_rows; m++)
            if (s->q_rows[m] >= 0 && (size_t)s->q_rows[m] < N) need[s->q_rows[m]] = 1;
    return need;
}

__attribute__((target("avx512f"))) static void attention_forward_vec(float *out, float *lse, const float *q,
                                                                      const float *k, const float *v,
                                                                      const AttnShape *s) {
    const int B = s->B, T = s->T, NH = s->NH, HD = s->HD, group = s->NH / s->NKV, ld = (T + 15) / 16 * 16;
    const float scale = (float)(1.0 / sqrt((double)HD));
    unsigned char *need = attn_needed(s);
    #pragma omp parallel if ((size_t)B * NH * T * T * HD >= PAR_MIN)
    {
        float *kt = xmalloc(sizeof(float) * HD * ld), *S = xmalloc(sizeof(float) * AQ * ld);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const int kvh = h / group;
                int any = 0;
                for (int i = 0; i < T && !any; i++) any = need[(size_t)b * T + i];
                if (any) attn_transpose_pad(kt, ld, k, s, b, kvh);
                const float *vb = v + (size_t)b * T * s->kv_stride + (size_t)kvh * HD;
                for (int i0 = 0; i0 < T; i0 += AQ) {
                    const int nq = T - i0 < AQ ? T - i0 : AQ, nj = attn_kend(s, b, i0, nq);
                    const float *qb = q + ((size_t)b * T + i0) * s->q_stride + (size_t)h * HD;
                    float *ob = out + ((size_t)b * T + i0) * NH * HD + (size_t)h * HD;
                    float *lb = lse + ((size_t)b * NH + h) * T + i0;
                    int live = 0;
                    for (int r = 0; r < nq; r++) live |= need[(size_t)b * T + i0 + r];
                    if (!live || nj <= 0) {  // nothing read, or no visible key: outputs 0
                        for (int r = 0; r < nq; r++) { memset(ob + (size_t)r * NH * HD, 0, sizeof(float) * HD); lb[r] = 0; }
                        continue;
                    }
                    attn_scores_vec(S, ld, qb, s->q_stride, nq, kt, ld, nj, HD);
                    float maxs[AQ], sum[AQ];
                    for (int r = 0; r < nq; r++) {  // S row r -> exp(s - max) (0 where invisible)
                        float *p = S + (size_t)r * ld;
                        const int i = i0 + r, lim = attn_klim(s, b, i);
                        maxs[r] = -INFINITY;
                        if (need[(size_t)b * T + i])
                            for (int j0 = 0; j0 < nj; j0 += 16) {
                                const __mmask16 vis = attn_vis16(s, b, i, j0, lim);
                                const __m512 x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), vis,
                                                                    _mm512_mul_ps(_mm512_loadu_ps(p + j0), _mm512_set1_ps(scale)));
                                _mm512_storeu_ps(p + j0, x);
                                maxs[r] = fmaxf(maxs[r], _mm512_reduce_max_ps(x));
                            }
                        if (maxs[r] == -INFINITY) memset(p, 0, sizeof(float) * nj);  // no visible key, or not needed: output 0
                        else exp_shift16(p, nj, maxs[r]);
                    }
                    // each query's sum over j in order, the queries' chains interleaved
                    const float *srow[AQ];  // rows past nq repeat row 0 (constant bounds: sums in registers)
#pragma GCC unroll 8
                    for (int r = 0; r < AQ; r++) srow[r] = S + (size_t)(r < nq ? r : 0) * ld, sum[r] = 0;
                    for (int j = 0; j < nj; j++)
#pragma GCC unroll 8
                        for (int r = 0; r < AQ; r++) sum[r] += srow[r][j];
                    for (int r = 0; r < nq; r++) {  // -> the weights p / sum
                        float *p = S + (size_t)r * ld;
                        if (maxs[r] == -INFINITY) { lb[r] = 0; continue; }
                        const __m512 vs = _mm512_set1_ps(sum[r]);
                        for (int j0 = 0; j0 < nj; j0 += 16)
                            _mm512_storeu_ps(p + j0, _mm512_div_ps(_mm512_loadu_ps(p + j0), vs));
                        lb[r] = maxs[r] + logf(sum[r]);
                    }
                    attn_wsum(ob, (long)NH * HD, nq, S, ld, vb, s->kv_stride, nj, HD);
                }
            }
        free(kt);
        free(S);
    }
    free(need);
}

__attribute__((target("avx512f"))) static void attention_backward_vec(float *dq, float *dk, float *dv,
                                                                       const float *dout, const float *out,
                                                                       const float *lse, const float *q,
                                                                       const float *k, const float *v,
                                                                       const AttnShape *s) {
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, group = NH / NKV, ld = (T + 15) / 16 * 16;
    const float scale = (float)(1.0 / sqrt((double)HD));
    unsigned char *need = attn_needed(s);
    #pragma omp parallel if ((size_t)B * NH * T * T * HD >= PAR_MIN)
    {
        float *kt = xmalloc(sizeof(float) * HD * ld), *vt = xmalloc(sizeof(float) * HD * ld);
        float *P = xmalloc(sizeof(float) * AQ * ld), *dS = xmalloc(sizeof(float) * AQ * ld);
        float *qs = xmalloc(sizeof(float) * AQ * HD), *gs = xmalloc(sizeof(float) * AQ * HD);
        float *dqs = xmalloc(sizeof(float) * AQ * HD);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kvh = 0; kvh < NKV; kvh++) {
                float *dkb = dk + (size_t)b * T * s->kv_stride + (size_t)kvh * HD;
                float *dvb = dv + (size_t)b * T * s->kv_stride + (size_t)kvh * HD;
                for (int j = 0; j < T; j++) {
                    memset(dkb + (size_t)j * s->kv_stride, 0, sizeof(float) * HD);
                    memset(dvb + (size_t)j * s->kv_stride, 0, sizeof(float) * HD);
                }
                attn_transpose_pad(kt, ld, k, s, b, kvh);
                attn_transpose_pad(vt, ld, v, s, b, kvh);
                const float *kb = k + (size_t)b * T * s->kv_stride + (size_t)kvh * HD;
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int i0 = 0; i0 < T; i0 += AQ) {
                        const int nq0 = T - i0 < AQ ? T - i0 : AQ;
                        // the needed queries of the block, gathered (in order) with their dout rows
                        int rows[AQ], nq = 0;
                        for (int r = 0; r < nq0; r++) {
                            const size_t t = (size_t)b * T + i0 + r;
                            float *dqi = dq + t * s->q_stride + (size_t)h * HD;
                            memset(dqi, 0, sizeof(float) * HD);
                            if (!need[t]) continue;
                            memcpy(qs + nq * HD, q + t * s->q_stride + (size_t)h * HD, sizeof(float) * HD);
                            memcpy(gs + nq * HD, dout + t * NH * HD + (size_t)h * HD, sizeof(float) * HD);
                            rows[nq++] = i0 + r;
                        }
                        const int nj = attn_kend(s, b, i0, nq0);
                        if (!nq || nj <= 0) continue;
                        attn_scores_vec(P, ld, qs, HD, nq, kt, ld, nj, HD);   // scores
                        attn_scores_vec(dS, ld, gs, HD, nq, vt, ld, nj, HD);  // dout . v
                        // D_i = dout_i . out_i, each over d in order, the queries' chains interleaved (rows past
                        // nq repeat row 0; constant bounds keep the sums in registers)
                        float Ds[AQ];
                        const float *orow[AQ], *grow[AQ];
#pragma GCC unroll 8
                        for (int r = 0; r < AQ; r++) {
                            const int rr = r < nq ? r : 0;
                            Ds[r] = 0, grow[r] = gs + rr * HD;
                            orow[r] = out + ((size_t)b * T + rows[rr]) * NH * HD + (size_t)h * HD;
                        }
                        for (int d = 0; d < HD; d++)
#pragma GCC unroll 8
                            for (int r = 0; r < AQ; r++) Ds[r] += grow[r][d] * orow[r][d];
                        for (int r = 0; r < nq; r++) {
                            const int i = rows[r];
                            const float D = Ds[r], l = lse[((size_t)b * NH + h) * T + i];
                            const int lim = attn_klim(s, b, i);
                            float *p = P + (size_t)r * ld, *ds = dS + (size_t)r * ld;
                            for (int j0 = 0; j0 < nj; j0 += 16) {
                                const __mmask16 vis = attn_vis16(s, b, i, j0, lim);
                                const __m512 x = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), vis,
                                                                    _mm512_mul_ps(_mm512_loadu_ps(p + j0), _mm512_set1_ps(scale)));
                                _mm512_storeu_ps(p + j0, x);
                            }
                            exp_shift16(p, nj, l);  // p = exp(s - lse), 0 where invisible
                            const __m512 vD = _mm512_set1_ps(D), vscale = _mm512_set1_ps(scale);
                            for (int j0 = 0; j0 < nj; j0 += 16) {
                                const __mmask16 kk = tail16(nj - j0);
                                const __m512 pv = _mm512_maskz_loadu_ps(kk, p + j0);
                                const __m512 dsv = _mm512_mul_ps(_mm512_mul_ps(pv, _mm512_sub_ps(_mm512_maskz_loadu_ps(kk, ds + j0), vD)), vscale);
                                _mm512_mask_storeu_ps(ds + j0, kk, dsv);
                            }
                        }
                        // dq rows (in place of the zeros above): sum_j ds_j k_j
                        attn_wsum(dqs, HD, nq, dS, ld, kb, s->kv_stride, nj, HD);
                        for (int r = 0; r < nq; r++)
                            memcpy(dq + ((size_t)b * T + rows[r]) * s->q_stride + (size_t)h * HD, dqs + r * HD, sizeof(float) * HD);
                        attn_kv_update(dkb, dvb, s->kv_stride, nj, dS, P, ld, qs, HD, gs, HD, nq, HD);
                    }
            }
        free(kt); free(vt); free(P); free(dS); free(qs); free(gs); free(dqs);
    }
    free(need);
}
#endif

static void cpu_attention_forward(void *out_, void *lse_, const void *q_, const void *k_, const void *v_,
                                  const AttnShape *s) {
    real *out = out_, *lse = lse_;
    const real *q = q_, *k = k_, *v = v_;
    const int B = s->B, T = s->T, NH = s->NH, HD = s->HD, group = s->NH / s->NKV;
    const real scale = (real)(1.0 / sqrt((double)HD));
    const int vec = cpu_vec512();
#ifdef HAVE_AVX512
    if (vec && HD <= 64) {
        attention_forward_vec((float *)out, (float *)lse, (const float *)q, (const float *)k, (const float *)v, s);
        return;
    }
#endif
    #pragma omp parallel if ((size_t)B * NH * T * T * HD >= PAR_MIN)
    {
        real *p = xmalloc(sizeof(real) * T), *kt = xmalloc(sizeof(real) * T * HD);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int h = 0; h < NH; h++) {
                const int kvh = h / group;
                attn_transpose(kt, k, s, b, kvh);
                for (int i = 0; i < T; i++) {
                    const real *qi = q + ((size_t)b * T + i) * s->q_stride + (size_t)h * HD;
                    attn_dots(p, qi, kt, T, HD);
                    real maxs = -INFINITY;
                    for (int j = 0; j < T; j++) {
                        if (!attn_visible(s, b, i, j)) { p[j] = -INFINITY; continue; }
                        p[j] = p[j] * scale;
                        if (p[j] > maxs) maxs = p[j];
                    }
                    real *o = out + ((size_t)b * T + i) * NH * HD + (size_t)h * HD;
                    for (int d = 0; d < HD; d++) o[d] = 0;
                    real *l = lse + ((size_t)b * NH + h) * T + i;
                    if (maxs == -INFINITY) { *l = 0; continue; }  // no visible key: output 0
                    real sum = 0;
#ifdef HAVE_AVX512
                    if (vec) {
                        exp_shift16((float *)p, T, (float)maxs);
                        for (int j = 0; j < T; j++) sum += p[j];
                    } else
#endif
                    for (int j = 0; j < T; j++) {
                        p[j] = p[j] == -INFINITY ? 0 : exp(p[j] - maxs);
                        sum += p[j];
                    }
                    for (int j = 0; j < T; j++) {
                        if (p[j] == 0) continue;
                        const real *vj = v + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                        attn_axpy(o, p[j] / sum, vj, HD);
                    }
                    *l = maxs + log(sum);
                }
            }
        free(p);
        free(kt);
    }
}

// Recomputes the probabilities from q, k and the saved log-sum-exp (no T x T storage):
//   P = exp(S - lse),  D_i = dout_i . out_i,  dS = P (dout v^T - D),  dq = dS k s,  dk = dS^T q s,  dv = P^T dout
// Threads own one (row, kv head) pair each, so the GQA sums into dk, dv need no atomics. The scores and
// dout . v of a query against all keys are computed first (vectorized over keys, each sum over d in
// order), then the updates run over keys in order as before.
static void cpu_attention_backward(void *dq_, void *dk_, void *dv_, const void *dout_, const void *out_,
                                   const void *lse_, const void *q_, const void *k_, const void *v_,
                                   const AttnShape *s) {
    real *dq = dq_, *dk = dk_, *dv = dv_;
    const real *dout = dout_, *out = out_, *lse = lse_, *q = q_, *k = k_, *v = v_;
    const int B = s->B, T = s->T, NH = s->NH, NKV = s->NKV, HD = s->HD, group = NH / NKV;
    const real scale = (real)(1.0 / sqrt((double)HD));
#ifdef HAVE_AVX512
    if (cpu_vec512() && HD <= 64) {
        attention_backward_vec((float *)dq, (float *)dk, (float *)dv, (const float *)dout, (const float *)out,
                               (const float *)lse, (const float *)q, (const float *)k, (const float *)v, s);
        return;
    }
#endif
    #pragma omp parallel if ((size_t)B * NH * T * T * HD >= PAR_MIN)
    {
        real *kt = xmalloc(sizeof(real) * T * HD), *vt = xmalloc(sizeof(real) * T * HD);
        real *dots = xmalloc(sizeof(real) * T), *dps = xmalloc(sizeof(real) * T);
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < B; b++)
            for (int kvh = 0; kvh < NKV; kvh++) {
                for (int j = 0; j < T; j++) {
                    real *dkj = dk + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                    real *dvj = dv + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                    for (int d = 0; d < HD; d++) dkj[d] = dvj[d] = 0;
                }
                attn_transpose(kt, k, s, b, kvh);
                attn_transpose(vt, v, s, b, kvh);
                for (int h = kvh * group; h < (kvh + 1) * group; h++)
                    for (int i = 0; i < T; i++) {
                        const real *qi = q + ((size_t)b * T + i) * s->q_stride + (size_t)h * HD;
                        const real *oi = out + ((size_t)b * T + i) * NH * HD + (size_t)h * HD;
                        const real *gi = dout + ((size_t)b * T + i) * NH * HD + (size_t)h * HD;
                        real *dqi = dq + ((size_t)b * T + i) * s->q_stride + (size_t)h * HD;
                        real l = lse[((size_t)b * NH + h) * T + i];
                        real D = 0;
                        for (int d = 0; d < HD; d++) { D += gi[d] * oi[d]; dqi[d] = 0; }
                        attn_dots(dots, qi, kt, T, HD);
                        attn_dots(dps, gi, vt, T, HD);
                        for (int j = 0; j < T; j++) {
                            if (!attn_visible(s, b, i, j)) continue;
                            const real *kj = k + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                            real p = exp(dots[j] * scale - l);
                            real ds = p * (dps[j] - D) * scale;
                            real *dkj = dk + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                            real *dvj = dv + ((size_t)b * T + j) * s->kv_stride + (size_t)kvh * HD;
                            attn_bwd_update(dqi, dkj, dvj, kj, qi, gi, ds, p, HD);
                        }
                    }
            }
        free(kt); free(vt); free(dots); free(dps);
    }
}

// ----------------------------------------------------------------------------------------------------
// classifier

static void cpu_logprob_forward(void *logp_, void *lse_, const void *logits_, const int *targets, int N, int V) {
    real *logp = logp_, *lse = lse_;
    const real *logits = logits_;
    #pragma omp parallel for schedule(static) if ((size_t)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        real m = -INFINITY;
        for (int i = 0; i < V; i++) if (x[i] > m) m = x[i];
        double sum = 0;
        for (int i = 0; i < V; i++) sum += exp((double)(x[i] - m));
        real l = m + (real)log(sum);
        lse[n] = l;
        logp[n] = targets[n] >= 0 ? x[targets[n]] - l : 0;
    }
}

static void cpu_logprob_backward(void *dlogits_, const void *logits_, const void *lse_, const int *targets,
                                 const void *dlogp_, int N, int V) {
    real *dlogits = dlogits_;
    const real *logits = logits_, *lse = lse_, *dlogp = dlogp_;
    #pragma omp parallel for schedule(static) if ((size_t)N * V >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        const real *x = logits + (size_t)n * V;
        real *dx = dlogits + (size_t)n * V;  // may be x itself: each element is read before it is written
        int t = targets[n];
        if (t < 0) { for (int i = 0; i < V; i++) dx[i] = 0; continue; }
        real g = dlogp[n], l = lse[n];
        for (int i = 0; i < V; i++) dx[i] = g * ((i == t ? 1 : 0) - exp(x[i] - l));
    }
}

// ----------------------------------------------------------------------------------------------------
// embeddings and row movement

static void cpu_embedding_forward(void *out_, const int *ids, const void *table_, int N, int C) {
    real *out = out_;
    const real *table = table_;
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++) {
        real *y = out + (size_t)n * C;
        if (ids[n] < 0) { for (int c = 0; c < C; c++) y[c] = 0; continue; }
        memcpy(y, table + (size_t)ids[n] * C, sizeof(real) * C);
    }
}

static void cpu_embedding_backward(void *dtable_, const void *dout_, const int *ids, int N, int C) {
    real *dtable = dtable_;
    const real *dout = dout_;
    for (int n = 0; n < N; n++) {  // serial: repeated ids must add up in a fixed order
        if (ids[n] < 0) continue;
        real *d = dtable + (size_t)ids[n] * C;
        const real *g = dout + (size_t)n * C;
        for (int c = 0; c < C; c++) d[c] += g[c];
    }
}

static void cpu_add_rows(void *out_, const int *out_idx, const void *inp_, const int *inp_idx, int M, int C) {
    real *out = out_;
    const real *inp = inp_;
    for (int m = 0; m < M; m++) {
        size_t o = out_idx ? (size_t)out_idx[m] : (size_t)m, i = inp_idx ? (size_t)inp_idx[m] : (size_t)m;
        for (int c = 0; c < C; c++) out[o * C + c] += inp[i * C + c];
    }
}

static void cpu_add_broadcast_forward(void *x_, const void *y_, int B, size_t M) {
    real *x = x_;
    const real *y = y_;
    #pragma omp parallel for schedule(static) if ((size_t)B * M >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < M; i++) x[(size_t)b * M + i] += y[i];
}

static void cpu_add_broadcast_backward(void *dy_, const void *dx_, int B, size_t M) {
    real *dy = dy_;
    const real *dx = dx_;
    for (int b = 0; b < B; b++)
        for (size_t i = 0; i < M; i++) dy[i] += dx[(size_t)b * M + i];
}

static void cpu_im2col(void *patches_, const void *pixels_, int B, int Cin, int H, int W, int P) {
    real *patches = patches_;
    const real *pixels = pixels_;
    int gh = H / P, gw = W / P, K = Cin * P * P;
    #pragma omp parallel for collapse(3) schedule(static) if ((size_t)B * Cin * H * W >= PAR_MIN)
    for (int b = 0; b < B; b++)
        for (int py = 0; py < gh; py++)
            for (int px = 0; px < gw; px++) {
                real *row = patches + (((size_t)b * gh + py) * gw + px) * K;
                for (int c = 0; c < Cin; c++)
                    for (int ky = 0; ky < P; ky++)
                        for (int kx = 0; kx < P; kx++)
                            row[(c * P + ky) * P + kx] =
                                pixels[(((size_t)b * Cin + c) * H + py * P + ky) * W + px * P + kx];
            }
}

// ----------------------------------------------------------------------------------------------------
// optimizer

// Fixed-size chunks summed in order: the result does not depend on the thread count or scheduling,
// which a resumed run needs to reproduce the clipping factor bit for bit.

static void cpu_sumsq(double *out, const void *x_, size_t n) {
    const real *x = x_;
    const size_t chunk = 1 << 16, nchunks = (n + chunk - 1) / chunk;
    double *part = xcalloc(nchunks ? nchunks : 1, sizeof(double));
    const int vec = cpu_vec512();
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t c = 0; c < nchunks; c++) {
        double s = 0;
        size_t end = (c + 1) * chunk < n ? (c + 1) * chunk : n;
#ifdef HAVE_AVX512
        if (vec) {
            const float *xc = (const float *)x + c * chunk;
            part[c] = sumsq_f64_16(xc, end - c * chunk);
            continue;
        }
#endif
        for (size_t i = c * chunk; i < end; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double s = 0;
    for (size_t c = 0; c < nchunks; c++) s += part[c];
    free(part);
    *out = s;
}

#ifdef HAVE_AVX512
// fp32 AdamW on 16 elements at a time, [i0, i1) with i1 - i0 a multiple of 16: the operations of the loop
// in cpu_adamw_update in its order, each correctly rounded (that loop is compiled without contraction into
// fused multiply-adds: ISO C mode, and no FMA in the baseline target), so the result is bitwise the same.
__attribute__((target("avx512f"))) static void adamw_f32_avx512(float *p, float *out, float *m, float *v, const float *grad,
                                                                size_t i0, size_t i1, float lr, float b1, float b2,
                                                                float eps, float wd, float bc1, float bc2, float gs) {
    const __m512 vgs = _mm512_set1_ps(gs), vb1 = _mm512_set1_ps(b1), vc1 = _mm512_set1_ps(1 - b1);
    const __m512 vb2 = _mm512_set1_ps(b2), vc2 = _mm512_set1_ps(1 - b2), vbc1 = _mm512_set1_ps(bc1);
    const __m512 vbc2 = _mm512_set1_ps(bc2), vlr = _mm512_set1_ps(lr), vwd = _mm512_set1_ps(wd), veps = _mm512_set1_ps(eps);
    const int finite_gs = isfinite(gs);
    for (size_t i = i0; i < i1; i += 16) {
        const __m512 graw = _mm512_loadu_ps(grad + i), m0 = _mm512_loadu_ps(m + i), v0 = _mm512_loadu_ps(v + i);
        // g, m and v all +0 (an embedding row the run has not used yet): m and v stay +0, and the update term
        // is +0 / (sqrt(+0) + eps) = +0, so p - lr (wd p + 0) below is the loop's result bit for bit, without
        // the divisions and the square root
        const __m512i any = _mm512_or_si512(_mm512_castps_si512(graw), _mm512_or_si512(_mm512_castps_si512(m0), _mm512_castps_si512(v0)));
        if (finite_gs && !_mm512_test_epi32_mask(any, any)) {
            const __m512 pi = _mm512_loadu_ps(p + i);
            const __m512 pn = _mm512_sub_ps(pi, _mm512_mul_ps(vlr, _mm512_add_ps(_mm512_mul_ps(vwd, pi), _mm512_setzero_ps())));
            _mm512_storeu_ps(p + i, pn);
            _mm512_storeu_ps(out + i, pn);
            continue;
        }
        const __m512 g = _mm512_mul_ps(graw, vgs);
        const __m512 mi = _mm512_add_ps(_mm512_mul_ps(vb1, m0), _mm512_mul_ps(vc1, g));
        const __m512 vi = _mm512_add_ps(_mm512_mul_ps(vb2, v0), _mm512_mul_ps(_mm512_mul_ps(vc2, g), g));
        _mm512_storeu_ps(m + i, mi);
        _mm512_storeu_ps(v + i, vi);
        const __m512 mhat = _mm512_div_ps(mi, vbc1), vhat = _mm512_div_ps(vi, vbc2), pi = _mm512_loadu_ps(p + i);
        const __m512 upd = _mm512_add_ps(_mm512_mul_ps(vwd, pi), _mm512_div_ps(mhat, _mm512_add_ps(_mm512_sqrt_ps(vhat), veps)));
        const __m512 pn = _mm512_sub_ps(pi, _mm512_mul_ps(vlr, upd));
        _mm512_storeu_ps(p + i, pn);
        _mm512_storeu_ps(out + i, pn);
    }
}
#endif

static void cpu_adamw_update(void *params_, void *master_, const void *grad_, void *m_, void *v_, size_t n,
                             float lr, float b1, float b2, float eps, float wd, int t, float grad_scale) {
    real *p = master_ ? master_ : params_, *m = m_, *v = v_, *out = params_;
    const real *grad = grad_;
    double bc1 = 1.0 - pow(b1, t), bc2 = 1.0 - pow(b2, t);
    size_t start = 0;
#ifdef HAVE_AVX512
    if (cpu_vec512()) {  // whole blocks of 16 in the vector kernel (blocks of 4096 per task), the tail below
        start = n / 16 * 16;
        const size_t blk = 4096, nb = (start + blk - 1) / blk;
        #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
        for (size_t b = 0; b < nb; b++)
            adamw_f32_avx512((float *)p, (float *)out, (float *)m, (float *)v, (const float *)grad, b * blk,
                             (b + 1) * blk < start ? (b + 1) * blk : start, lr, b1, b2, eps, wd, (float)bc1, (float)bc2,
                             grad_scale);
    }
#endif
    #pragma omp parallel for schedule(static) if (n - start >= PAR_MIN)
    for (size_t i = start; i < n; i++) {
        real g = grad[i] * (real)grad_scale;
        m[i] = (real)b1 * m[i] + (real)(1 - b1) * g;
        v[i] = (real)b2 * v[i] + (real)(1 - b2) * g * g;
        real mhat = m[i] / (real)bc1, vhat = v[i] / (real)bc2;
        p[i] -= (real)lr * ((real)wd * p[i] + mhat / ((real)sqrt(vhat) + (real)eps));
        out[i] = p[i];
    }
}

// ----------------------------------------------------------------------------------------------------
// generation

static void cpu_copy_rows_strided(void *out_, const int *out_idx, int out_stride, const void *inp_, const int *inp_idx,
                                  int inp_stride, int M, int C) {
    real *out = out_;
    const real *inp = inp_;
    #pragma omp parallel for schedule(static) if ((size_t)M * C >= PAR_MIN)
    for (int m = 0; m < M; m++) {
        long o = out_idx ? out_idx[m] : m, i = inp_idx ? inp_idx[m] : m;
        if (o < 0 || i < 0) continue;  // e.g. padding tokens that have no place in the cache
        memmove(out + (size_t)o * out_stride, inp + (size_t)i * inp_stride, sizeof(real) * C);
    }
}

// contiguous rows are the strided case with stride C
static void cpu_copy_rows(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C) {
    cpu_copy_rows_strided(out, out_idx, C, inp, inp_idx, C, M, C);
}

// The same arithmetic as cpu_attention_forward (scores, max, exponentials, weighted sum in that order), so
// a cached decode step reproduces the full forward pass to rounding.
static void cpu_attention_decode(void *out_, const void *q_, const void *k_, const void *v_, const DecodeShape *s) {
    real *out = out_;
    const real *q = q_, *k = k_, *v = v_;
    const int NH = s->NH, HD = s->HD, group = s->NH / s->NKV;
    const size_t row = (size_t)s->NKV * HD;  // elements per cache position
    const real scale = (real)(1.0 / sqrt((double)HD));
    const int vec = cpu_vec512();
    #pragma omp parallel if ((size_t)s->B * NH * s->cap * HD >= PAR_MIN)
    {
        real *p = xmalloc(sizeof(real) * (s->cap > 0 ? s->cap : 1));
        #pragma omp for collapse(2) schedule(static)
        for (int b = 0; b < s->B; b++)
            for (int h = 0; h < NH; h++) {
                const int L = s->len[b], slot = s->slot ? s->slot[b] : b, kvh = h / group;
                const real *qh = q + (size_t)b * s->q_stride + (size_t)h * HD;
                const real *kb = k + (size_t)slot * s->cap * row + (size_t)kvh * HD;
                const real *vb = v + (size_t)slot * s->cap * row + (size_t)kvh * HD;
                real *o = out + (size_t)b * NH * HD + (size_t)h * HD;
                for (int d = 0; d < HD; d++) o[d] = 0;
                if (L <= 0) continue;
                real maxs = -INFINITY;
                // eight keys at a time: eight independent sums over d (each in order, as the forward pass's),
                // not one dependent chain per key
                int j = 0;
                for (; j + 8 <= L; j += 8) {
                    real dot[8] = {0, 0, 0, 0, 0, 0, 0, 0};
                    for (int d = 0; d < HD; d++)
                        for (int u = 0; u < 8; u++) dot[u] += qh[d] * kb[(size_t)(j + u) * row + d];
                    for (int u = 0; u < 8; u++) p[j + u] = dot[u] * scale;
                }
                for (; j < L; j++) {
                    const real *kj = kb + (size_t)j * row;
                    real dot = 0;
                    for (int d = 0; d < HD; d++) dot += qh[d] * kj[d];
                    p[j] = dot * scale;
                }
                for (j = 0; j < L; j++)
                    if (p[j] > maxs) maxs = p[j];
                real sum = 0;
#ifdef HAVE_AVX512
                if (vec) {  // the forward pass's exponentials (exp_shift16), so a step still reproduces it
                    exp_shift16((float *)p, L, (float)maxs);
                    for (int j = 0; j < L; j++) sum += p[j];
                } else
#endif
                for (int j = 0; j < L; j++) { p[j] = exp(p[j] - maxs); sum += p[j]; }
                for (int j = 0; j < L; j++) attn_axpy(o, p[j] / sum, vb + (size_t)j * row, HD);
            }
        free(p);
    }
}

// ----------------------------------------------------------------------------------------------------
// fused ops of the decode step: each is the sequence of ops it stands for, called in order, so it equals
// that sequence by construction (the CUDA backend does the same work in one kernel)

// the residual add, stored in `real`, then the norm reading that stored sum
static void cpu_add_rmsnorm_forward(void *sum, void *out, void *rstd, const void *a, const void *b, const void *w,
                                    int N, int C, float eps) {
    cpu_add(sum, a, b, (size_t)N * C);
    cpu_rmsnorm_forward(out, rstd, sum, w, N, C, eps);
}

// q and k rotated in place, then the rotated k and the v of each row appended to the caches
static void cpu_rope_kv_append(void *qkv, const int *pos, void *kcache, void *vcache, const int *dst, int N, int NH,
                               int NKV, int HD, int qkv_stride, float theta) {
    const int qdim = NH * HD, kvdim = NKV * HD;
    cpu_rope_forward(qkv, pos, N, NH + NKV, HD, qkv_stride, theta);
    cpu_copy_rows_strided(kcache, dst, kvdim, (real *)qkv + qdim, NULL, qkv_stride, N, kvdim);
    cpu_copy_rows_strided(vcache, dst, kvdim, (real *)qkv + qdim + kvdim, NULL, qkv_stride, N, kvdim);
}

// ----------------------------------------------------------------------------------------------------
// LoRA

static void cpu_add_strided(void *out_, int out_stride, const void *inp_, int inp_stride, int N, int C, float s) {
    real *out = out_;
    const real *inp = inp_;
    #pragma omp parallel for schedule(static) if ((size_t)N * C >= PAR_MIN)
    for (int n = 0; n < N; n++)
        for (int c = 0; c < C; c++) out[(size_t)n * out_stride + c] += (real)s * inp[(size_t)n * inp_stride + c];
}

static void cpu_dropout(void *out_, const void *inp_, size_t n, float p, unsigned long long seed) {
    real *out = out_;
    const real *inp = inp_;
    const real k = p < 1 ? (real)1 / ((real)1 - (real)p) : 0;
    #pragma omp parallel for schedule(static) if (n >= PAR_MIN)
    for (size_t i = 0; i < n; i++) out[i] = dropout_keep(seed, i, p) ? inp[i] * k : 0;
}

#define BACKEND_FIELDS                                                                                  \
    .act_bytes = sizeof(real), .acc_bytes = sizeof(real), .malloc = cpu_malloc, .free = cpu_free,       \
    .zero = cpu_zero, .copy = cpu_copy, .to_device = cpu_copy, .to_host = cpu_copy,                    \
    .upload_act = cpu_upload_act, .download_act = cpu_download_act, .upload_acc = cpu_upload_acc,      \
    .download_acc = cpu_download_acc, .synchronize = cpu_synchronize,                                  \
    .matmul_forward = cpu_matmul_forward, .matmul_backward = cpu_matmul_backward,                      \
    .layernorm_forward = cpu_layernorm_forward, .layernorm_backward = cpu_layernorm_backward,          \
    .rmsnorm_forward = cpu_rmsnorm_forward, .add_rmsnorm_forward = cpu_add_rmsnorm_forward,            \
    .rmsnorm_backward = cpu_rmsnorm_backward,                                                          \
    .act_forward = cpu_act_forward, .act_backward = cpu_act_backward,                                  \
    .swiglu_forward = cpu_swiglu_forward, .swiglu_backward = cpu_swiglu_backward, .add = cpu_add,      \
    .matmul_swiglu_forward = cpu_matmul_swiglu_forward,                                                \
    .scale = cpu_scale, .channel_scale_forward = cpu_channel_scale_forward,                            \
    .channel_scale_backward = cpu_channel_scale_backward,                                              \
    .rope_forward = cpu_rope_forward, .rope_backward = cpu_rope_backward,                              \
    .attention_forward = cpu_attention_forward, .attention_backward = cpu_attention_backward,          \
    .logprob_forward = cpu_logprob_forward, .logprob_backward = cpu_logprob_backward,                  \
    .embedding_forward = cpu_embedding_forward, .embedding_backward = cpu_embedding_backward,          \
    .copy_rows = cpu_copy_rows, .add_rows = cpu_add_rows,                                              \
    .add_broadcast_forward = cpu_add_broadcast_forward,                                                \
    .add_broadcast_backward = cpu_add_broadcast_backward, .im2col = cpu_im2col, .sumsq = cpu_sumsq,    \
    .adamw_update = cpu_adamw_update, .copy_rows_strided = cpu_copy_rows_strided,                      \
    .attention_decode = cpu_attention_decode, .rope_kv_append = cpu_rope_kv_append,                    \
    .add_strided = cpu_add_strided, .dropout = cpu_dropout

#define CPU_NAME_float "cpu"
#define CPU_NAME_double "cpu64"
#define CPU_SYM_float backend_cpu
#define CPU_SYM_double backend_cpu64
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)

const Backend CAT(CPU_SYM_, CPU_REAL) = {.name = CAT(CPU_NAME_, CPU_REAL), BACKEND_FIELDS};
