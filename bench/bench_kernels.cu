// Kernel lab: one microbenchmark per CUDA kernel family of the backend (cuda/*.cu), at the shapes of the
// llava-1.4b training step and of LLaVA-7B decoding, each against a ceiling measured in the same run.
//
//   make bench-kernels && build/bench_kernels [--only SUBSTRING] [--reps N] [--warmup N] [--json FILE]
//                                             [--opt-n N]
//     --only     run only the benches whose "family/name" contains SUBSTRING (the ceilings always run)
//     --reps     timed repetitions per bench (default 30, at least 20 is the rule), --warmup untimed ones (5)
//     --json     also write one JSON record per bench to FILE (a JSON array)
//     --opt-n    parameters for adamw_update and sumsq (default 1.4e9, the llava-1.4b trainable count;
//                 AdamW then holds 16 bytes per parameter, 22.4 GB)
//   The binary links only the CUDA objects, the CPU reference ops and util/common.o, with a static CUDA
//   runtime (cuBLASLt, cuBLAS and cuDNN as shared libraries), so the one built on a machine without a
//   GPU runs on the GPU machine.
//
// What it measures. Each bench calls the backend's host entry point (cuda/cuda_backend.h: everything
// that op queues, e.g. matmul_backward's two GEMMs and the bias column sum, or the norms' backward
// kernel and the weight-gradient reduction) and times it with a pair of CUDA events per repetition on
// the backend's stream. Before every repetition (warm-ups too) a kernel reads a 256 MB buffer, which
// evicts the 50 MB L2, so every input comes from HBM even where it would fit in L2 (the decode shapes:
// a 32 MB weight, an 11 MB KV cache). The flush reads rather than writes: a write would leave L2 full
// of dirty lines whose write-back the timed op would pay for; the read evicts (and writes back) the
// previous repetition's outputs before the clock starts. It also keeps the GPU busy while the host
// queues the op, so launch latency is not timed. Reported: median and min of the repetitions.
//
// Rates. GEMMs (matmul fwd/bwd at training shapes) are compute-bound: TFLOP/s (2*N*C*OC forward,
// 4*N*C*OC backward) as a fraction of the GEMM ceiling. Everything else is memory-bound: GB/s of the
// bytes the op must read and write AT LEAST (inputs read once, outputs written once; no scratch
// traffic, no re-reads; the count for each op is in a comment at its bench) as a fraction of the copy
// ceiling. The decode GEMVs (M = 1 and 16 rows) are weight-read bound and reported in GB/s too. Ops
// that mostly read (GEMV, attention_decode, sumsq, logprob_fwd) may come out a little above the copy
// ceiling, which mixes reads and writes.
//
// Ceilings, measured first in every run (they are records in the table and the JSON too):
//   gemm   cuda_matmul_forward at N = C = OC = 8192, no bias (cuBLASLt, bf16 in/out, fp32 accumulate):
//          2 * 8192^3 FLOPs / median time. DESIGN.md section 6 saw 746-779 TFLOP/s on the H100.
//   copy   cudaMemcpyAsync device to device of a 1 GiB buffer: 2 GiB moved (read + write) / median
//          time. DESIGN.md saw 2.9 TB/s.
//
// Correctness. Each bench checks the op's output once, before timing, against the CPU reference
// (backend_cpu in model/ops.h) on a few rows or sampled elements, or against a closed form where that
// is cheaper (sum of squares of a known distribution); a bench that fails reports no rate ("FAIL" in
// the table, null in the JSON) and the program exits 1. These are cheap sanity checks so that a broken
// kernel cannot post a fast number; tests/test_cuda.c (make test-cuda) is the real test.
//
// Shapes (DESIGN.md section 6). llava-1.4b: decoder d 2048, 16 heads x 128 (MHA, fused qkv 6144), FFN
// 5632 (fused gate|up 11264), vocab 32064, batch 8 x 640 tokens = 5120 rows; vision tower ViT-L/14-336:
// width 1024, 577 tokens x 8 images = 4616 rows, FFN 4096, quick_gelu; projector 1024 -> 2048 -> 2048
// (GELU) on 8 x 576 = 4608 image rows. LLaVA-7B decode: d 4096 (32 heads x 128), FFN 11008, vocab 32064,
// M = 1 and 16 rows, 700 cached positions.
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "../model/ops.h"
}
#include "../cuda/common.cuh"  // CUDA_CHECK, fatal

// The lab measures the production build: its buffers are sized, filled and read back as bf16, which is
// the act type floatX of every build but the fp32 one (make test-cuda-fp32), a correctness build.
#ifdef VLM_CUDA_FP32
#error "bench_kernels measures the bf16 build; build it without VLM_CUDA_FP32"
#endif
typedef __nv_bfloat16 bf16;

#define CK(call) CUDA_CHECK(call)

// ----------------------------------------------------------------------------------------------------
// options, results

static int g_reps = 30, g_warmup = 5;
static const char *g_only = NULL;
static size_t g_opt_n = 1400000000ull;
static cudaStream_t S;  // the backend's stream: every op runs there

static double g_gemm_tflops = 0, g_copy_gbps = 0;  // the ceilings of this run

#define MAX_RECORDS 256
typedef struct {
    char family[32], name[64], shape[96];
    float ms_med, ms_min;
    double work;  // bytes, or FLOPs when is_flops
    int is_flops;
    double rate;  // GB/s or TFLOP/s
    double frac;  // of the copy or GEMM ceiling
    int ok;       // passed its check
} Record;
static Record g_rec[MAX_RECORDS];
static int g_nrec, g_failed;

static int want(const char *family, const char *name) {
    if (!g_only) return 1;
    char key[128];
    snprintf(key, sizeof key, "%s/%s", family, name);
    return strstr(key, g_only) != NULL;
}

// ----------------------------------------------------------------------------------------------------
// device buffers: random fills on the device (gigabytes would take seconds through the host)

static void *dalloc(size_t bytes) {
    void *p = NULL;
    CK(cudaMalloc(&p, bytes ? bytes : 16));
    return p;
}
static void dfree(void *p) { CK(cudaFree(p)); }

__device__ __forceinline__ float hash_uniform(uint64_t seed, size_t i) {  // [-1, 1), splitmix64
    uint64_t z = seed + 0x9E3779B97F4A7C15ull * (uint64_t)(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return (float)(z >> 40) / 8388608.0f - 1.0f;
}
__global__ void fill_bf16_kernel(bf16 *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = __float2bfloat16_rn(lo + (hi - lo) * 0.5f * (hash_uniform(seed, i) + 1.0f));
}
__global__ void fill_f32_kernel(float *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        x[i] = lo + (hi - lo) * 0.5f * (hash_uniform(seed, i) + 1.0f);
}
static uint64_t g_seed = 1;
// bf16 buffer of n uniform values in [-scale, scale)
static bf16 *dev_bf16(size_t n, float scale) {
    bf16 *p = (bf16 *)dalloc(n * 2);
    fill_bf16_kernel<<<2048, 256, 0, S>>>(p, n, g_seed++, -scale, scale);
    CK(cudaGetLastError());
    return p;
}
static float *dev_f32(size_t n, float lo, float hi) {
    float *p = (float *)dalloc(n * 4);
    fill_f32_kernel<<<2048, 256, 0, S>>>(p, n, g_seed++, lo, hi);
    CK(cudaGetLastError());
    return p;
}
static void dzero(void *p, size_t bytes) { CK(cudaMemsetAsync(p, 0, bytes, S)); }
static int *dev_ints(const int *h, size_t n) {
    int *p = (int *)dalloc(n * 4);
    CK(cudaMemcpyAsync(p, h, n * 4, cudaMemcpyHostToDevice, S));
    CK(cudaStreamSynchronize(S));
    return p;
}

// host copies for the checks
static float *get_bf16(const void *d, size_t n) {  // n bf16 from d -> new fp32 host array
    uint16_t *t = (uint16_t *)xmalloc(n * 2 + 2);
    float *h = (float *)xmalloc(n * 4 + 4);
    CK(cudaStreamSynchronize(S));
    CK(cudaMemcpy(t, d, n * 2, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < n; i++) h[i] = bf16_to_f32(t[i]);
    free(t);
    return h;
}
static float *get_f32(const void *d, size_t n) {
    float *h = (float *)xmalloc(n * 4 + 4);
    CK(cudaStreamSynchronize(S));
    CK(cudaMemcpy(h, d, n * 4, cudaMemcpyDeviceToHost));
    return h;
}
// column `col` of a row-major bf16 matrix (rows, ld) -> fp32 host array of `rows`
static float *get_col_bf16(const void *d, size_t rows, size_t ld, size_t col) {
    uint16_t *t = (uint16_t *)xmalloc(rows * 2);
    float *h = (float *)xmalloc(rows * 4);
    CK(cudaStreamSynchronize(S));
    CK(cudaMemcpy2D(t, 2, (const char *)d + col * 2, ld * 2, 2, rows, cudaMemcpyDeviceToHost));
    for (size_t i = 0; i < rows; i++) h[i] = bf16_to_f32(t[i]);
    free(t);
    return h;
}
static float bf16r(float x) { return bf16_to_f32(f32_to_bf16(x)); }

// max |got - ref| <= rtol * max(max |ref|, 1e-3), no NaN/inf: the same test as bench_attention's
static int close_enough(const char *what, const float *got, const float *ref, size_t n, float rtol) {
    float maxerr = 0, maxref = 0;
    int bad = 0;
    size_t worst = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(got[i])) bad = 1;
        float e = fabsf(got[i] - ref[i]);
        if (e > maxerr) maxerr = e, worst = i;
        if (fabsf(ref[i]) > maxref) maxref = fabsf(ref[i]);
    }
    float rel = maxerr / (maxref > 1e-3f ? maxref : 1e-3f);
    if (bad || !(rel <= rtol)) {
        printf("  CHECK FAILED %s: max|err| %.3g at [%zu] (got %.6g, ref %.6g), max|ref| %.3g, rel %.3g%s\n", what,
               maxerr, worst, got[worst], ref[worst], maxref, rel, bad ? ", NaN/inf" : "");
        return 0;
    }
    return 1;
}
static int all_finite(const char *what, const float *x, size_t n) {
    for (size_t i = 0; i < n; i++)
        if (!isfinite(x[i])) {
            printf("  CHECK FAILED %s: [%zu] = %g\n", what, i, x[i]);
            return 0;
        }
    return 1;
}

// ----------------------------------------------------------------------------------------------------
// timing: flush L2, event, op, event; all repetitions queued, then read back

#define FLUSH_BYTES ((size_t)256 << 20)
static void *g_flush;
static cudaEvent_t *g_ev;  // 2 per timed repetition
static float *g_ms;

// reads every 16 bytes of the flush buffer; the store depends on the values so the loads stay
__global__ void l2_flush_kernel(const float4 *p, size_t n4, float *sink) {
    float acc = 0.0f;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n4; i += (size_t)gridDim.x * blockDim.x) {
        const float4 v = p[i];
        acc += v.x + v.y + v.z + v.w;
    }
    if (acc == 1234.5f) *sink = acc;  // never true: the buffer is zero
}

static void rep_begin(int r) {
    l2_flush_kernel<<<1024, 256, 0, S>>>((const float4 *)g_flush, FLUSH_BYTES / 16, (float *)g_flush);
    CK(cudaGetLastError());
    if (r >= 0) CK(cudaEventRecord(g_ev[2 * r], S));
}
static void rep_end(int r) {
    if (r >= 0) CK(cudaEventRecord(g_ev[2 * r + 1], S));
}
// repetitions -g_warmup .. g_reps-1; only r >= 0 are timed
#define TIMED(stmt)                                               \
    for (int r_ = -g_warmup; r_ < g_reps; r_++) {                 \
        rep_begin(r_);                                            \
        stmt;                                                     \
        rep_end(r_);                                              \
    }

typedef struct { float med, min; } Timing;
static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}
static Timing collect(void) {
    CK(cudaStreamSynchronize(S));
    for (int r = 0; r < g_reps; r++) CK(cudaEventElapsedTime(&g_ms[r], g_ev[2 * r], g_ev[2 * r + 1]));
    qsort(g_ms, g_reps, sizeof(float), cmp_float);
    Timing t = {g_ms[g_reps / 2], g_ms[0]};
    return t;
}

static void report(const char *family, const char *name, const char *shape, Timing t, double work, int is_flops,
                   int ok) {
    if (g_nrec == MAX_RECORDS) fatal("bench_kernels: more than %d records", MAX_RECORDS);
    Record *r = &g_rec[g_nrec++];
    snprintf(r->family, sizeof r->family, "%s", family);
    snprintf(r->name, sizeof r->name, "%s", name);
    snprintf(r->shape, sizeof r->shape, "%s", shape);
    r->ms_med = t.med, r->ms_min = t.min, r->work = work, r->is_flops = is_flops, r->ok = ok;
    r->rate = is_flops ? work / t.med * 1e-9 : work / t.med * 1e-6;  // TFLOP/s or GB/s
    double ceil = is_flops ? g_gemm_tflops : g_copy_gbps;
    r->frac = ceil > 0 ? r->rate / ceil : 0;
    if (!ok) g_failed++;
    if (ok)
        printf("%-10s %-22s %-34s %9.4f %9.4f %9.1f %-7s %6.1f%%\n", family, name, shape, t.med, t.min, r->rate,
               is_flops ? "TFLOP/s" : "GB/s", 100 * r->frac);
    else
        printf("%-10s %-22s %-34s %9.4f %9.4f %9s %-7s %7s\n", family, name, shape, t.med, t.min, "FAIL", "", "");
    fflush(stdout);
}

static void write_json(const char *path) {
    FILE *f = fopen(path, "w");
    if (!f) fatal("bench_kernels: cannot write %s", path);
    fprintf(f, "[\n");
    for (int i = 0; i < g_nrec; i++) {
        const Record *r = &g_rec[i];
        fprintf(f, "  {\"family\": \"%s\", \"name\": \"%s\", \"shape\": \"%s\", \"ms_median\": %.6f, \"ms_min\": %.6f, ",
                r->family, r->name, r->shape, r->ms_med, r->ms_min);
        if (r->is_flops) fprintf(f, "\"flops\": %.6g, \"tflops\": ", r->work);
        else fprintf(f, "\"bytes\": %.6g, \"gbps\": ", r->work);
        if (r->ok) fprintf(f, "%.4f, \"fraction_of_ceiling\": %.4f, ", r->rate, r->frac);
        else fprintf(f, "null, \"fraction_of_ceiling\": null, ");
        fprintf(f, "\"ceiling\": \"%s\", \"check\": \"%s\"}%s\n", r->is_flops ? "gemm" : "copy", r->ok ? "ok" : "fail",
                i + 1 < g_nrec ? "," : "");
    }
    fprintf(f, "]\n");
    fclose(f);
}

// ----------------------------------------------------------------------------------------------------
// ceilings

// out[r, c] against an fp64 dot product of the bf16 inputs: the tolerance is 1% of the value plus
// 0.05% of sum |a_k b_k| (the bf16 rounding of the output is 0.4% at most; the products are exact in
// fp32 and their fp32 sum is far more precise); a wrong row or column misses by the size of the value.
static int dot_ok(float got, double ref, double mag) {
    return isfinite(got) && fabs(got - ref) <= 0.01 * fabs(ref) + 5e-4 * mag + 1e-6;
}

static void bench_ceilings(void) {
    // copy: 1 GiB device to device; 2 GiB moved
    {
        const size_t bytes = (size_t)1 << 30;
        void *a = dalloc(bytes), *b = dalloc(bytes);
        dzero(a, bytes);
        TIMED(CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, S)));
        Timing t = collect();
        g_copy_gbps = 2.0 * bytes / t.med * 1e-6;
        report("ceiling", "copy_d2d", "1 GiB, read+write counted", t, 2.0 * bytes, 0, 1);
        g_rec[g_nrec - 1].frac = 1.0;
        dfree(a), dfree(b);
    }
    // GEMM: 8192^3 through cuda_matmul_forward; checked at sampled outputs like every matmul
    {
        const int n = 8192;
        bf16 *x = dev_bf16((size_t)n * n, 1.0f), *w = dev_bf16((size_t)n * n, 1.0f), *out = (bf16 *)dalloc((size_t)n * n * 2);
        TIMED(cuda_matmul_forward(out, x, w, NULL, n, n, n));
        Timing t = collect();
        float *xr = get_bf16(x, n), *wr = get_bf16(w, n), *o = get_bf16(out, 1);
        double ref = 0, mag = 0;
        for (int k = 0; k < n; k++) ref += (double)xr[k] * wr[k], mag += fabs((double)xr[k] * wr[k]);
        int ok = dot_ok(o[0], ref, mag);
        if (!ok) printf("  CHECK FAILED gemm ceiling: out[0,0] %g, ref %g\n", o[0], ref);
        free(xr), free(wr), free(o);
        g_gemm_tflops = ok ? 2.0 * n * n * (double)n / t.med * 1e-9 : 0;
        report("ceiling", "gemm_bf16", "8192x8192x8192 cuda_matmul_forward", t, 2.0 * n * n * (double)n, 1, ok);
        g_rec[g_nrec - 1].frac = 1.0;
        dfree(x), dfree(w), dfree(out);
    }
}

// ----------------------------------------------------------------------------------------------------
// matmul (cuBLASLt): out (N, OC) = inp (N, C) w (OC, C)^T + b


// decode: 1 = a GEMV shape reported in GB/s (bytes: weight OC*C + input N*C + output N*OC + bias OC,
// bf16); 0 = training shape, 2*N*C*OC FLOPs
// x[r] . w[c] + b[c] in double from the device buffers, and the sum of the terms' magnitudes (dot_ok's scale)
static double ref_dot(const bf16 *x, const bf16 *w, const bf16 *b, int r, int c, int C, double *mag) {
    float *xr = get_bf16(x + (size_t)r * C, C), *wr = get_bf16(w + (size_t)c * C, C);
    double ref = 0, m = 0;
    for (int k = 0; k < C; k++) ref += (double)xr[k] * wr[k], m += fabs((double)xr[k] * wr[k]);
    if (b) {
        float *bb = get_bf16(b + c, 1);
        ref += bb[0], m += fabs(bb[0]);
        free(bb);
    }
    free(xr), free(wr);
    *mag = m;
    return ref;
}

// out (N, OC) = inp w^T (+ b); swiglu: w holds 2 * OC rows (gate, up) and out = silu(gate) * up
// (matmul_swiglu_forward), checked at four elements against a double reference
static void bench_matmul_fwd_kind(const char *name, int N, int C, int OC, int bias, int decode, int swiglu) {
    if (!want("matmul", name)) return;
    const int W = swiglu ? 2 * OC : OC;  // weight rows
    bf16 *x = dev_bf16((size_t)N * C, 1.0f), *w = dev_bf16((size_t)W * C, 1.0f / sqrtf((float)C));
    bf16 *b = bias ? dev_bf16(W, 1.0f) : NULL, *out = (bf16 *)dalloc((size_t)N * OC * 2);
    bf16 *gu = swiglu ? (bf16 *)dalloc((size_t)N * W * 2) : NULL;  // workspace of the unfused fallback
#define RUN_MATMUL() (swiglu ? cuda_matmul_swiglu_forward(out, gu, x, w, b, N, C, OC) : cuda_matmul_forward(out, x, w, b, N, C, OC))
    RUN_MATMUL();
    int ok = 1;
    const int rows[4] = {0, N / 3, N / 2, N - 1}, cols[4] = {0, OC / 5, OC / 2 + 1, OC - 1};
    for (int s = 0; s < 4; s++) {
        int r = rows[s], c = cols[s];
        double mag, ref = ref_dot(x, w, b, r, c, C, &mag);
        if (swiglu) {  // silu(gate) * up; the gate's and the up's errors scale with their own magnitudes
            double mag_up, up = ref_dot(x, w, b, r, OC + c, C, &mag_up), sig = 1.0 / (1.0 + exp(-ref));
            mag = mag * fabs(up) + fabs(ref * sig) * mag_up;
            ref = ref * sig * up;
        }
        float *o = get_bf16(out + (size_t)r * OC + c, 1);
        if (!dot_ok(o[0], ref, mag)) {
            printf("  CHECK FAILED matmul_fwd %s: out[%d, %d] = %g, ref %g\n", name, r, c, o[0], ref);
            ok = 0;
        }
        free(o);
    }
    TIMED(RUN_MATMUL());
#undef RUN_MATMUL
    Timing t = collect();
    char shape[96];
    snprintf(shape, sizeof shape, "N%d C%d OC%d%s%s", N, C, W, bias ? " +bias" : "", swiglu ? " swiglu" : "");
    if (decode) report("matmul", name, shape, t, 2.0 * ((double)W * C + (double)N * C + (double)N * OC + (bias ? W : 0)), 0, ok);
    else report("matmul", name, shape, t, 2.0 * N * (double)C * W, 1, ok);
    dfree(x), dfree(w), dfree(out);
    if (b) dfree(b);
    if (gu) dfree(gu);
}

static void bench_matmul_fwd(const char *name, int N, int C, int OC, int bias, int decode) {
    bench_matmul_fwd_kind(name, N, C, OC, bias, decode, 0);
}

// dinp (N, C) = dout w;  dw (OC, C) += dout^T inp;  db (OC) += colsum(dout). 4*N*C*OC FLOPs (the bias
// column sum is not counted).
static void bench_matmul_bwd(const char *name, int N, int C, int OC, int bias) {
    if (!want("matmul", name)) return;
    bf16 *x = dev_bf16((size_t)N * C, 1.0f), *w = dev_bf16((size_t)OC * C, 1.0f / sqrtf((float)C));
    bf16 *dout = dev_bf16((size_t)N * OC, 1.0f), *dinp = (bf16 *)dalloc((size_t)N * C * 2);
    bf16 *dw = (bf16 *)dalloc((size_t)OC * C * 2), *db = bias ? (bf16 *)dalloc((size_t)OC * 2) : NULL;
    dzero(dw, (size_t)OC * C * 2);
    if (db) dzero(db, (size_t)OC * 2);
    cuda_matmul_backward(dinp, dw, db, dout, x, w, N, C, OC);
    int ok = 1;
    const int rows[3] = {0, N / 2, N - 1}, cols[3] = {0, C / 3 + 1, C - 1}, ocs[3] = {0, OC / 2 + 1, OC - 1};
    for (int s = 0; s < 3; s++) {
        // dinp[r, c] = sum_o dout[r, o] w[o, c]
        int r = rows[s], c = cols[s], o = ocs[s];
        float *dr = get_bf16(dout + (size_t)r * OC, OC), *wc = get_col_bf16(w, OC, C, c), *g = get_bf16(dinp + (size_t)r * C + c, 1);
        double ref = 0, mag = 0;
        for (int k = 0; k < OC; k++) ref += (double)dr[k] * wc[k], mag += fabs((double)dr[k] * wc[k]);
        if (!dot_ok(g[0], ref, mag)) {
            printf("  CHECK FAILED matmul_bwd %s: dinp[%d, %d] = %g, ref %g\n", name, r, c, g[0], ref);
            ok = 0;
        }
        free(dr), free(wc), free(g);
        // dw[o, c] = sum_n dout[n, o] inp[n, c];  db[o] = sum_n dout[n, o]
        float *dc = get_col_bf16(dout, N, OC, o), *xc = get_col_bf16(x, N, C, c), *gw = get_bf16(dw + (size_t)o * C + c, 1);
        ref = 0, mag = 0;
        double rb = 0, mb = 0;
        for (int n = 0; n < N; n++) ref += (double)dc[n] * xc[n], mag += fabs((double)dc[n] * xc[n]), rb += dc[n], mb += fabs(dc[n]);
        if (!dot_ok(gw[0], ref, mag)) {
            printf("  CHECK FAILED matmul_bwd %s: dw[%d, %d] = %g, ref %g\n", name, o, c, gw[0], ref);
            ok = 0;
        }
        if (db) {
            float *gb = get_bf16(db + o, 1);
            if (!dot_ok(gb[0], rb, mb)) {
                printf("  CHECK FAILED matmul_bwd %s: db[%d] = %g, ref %g\n", name, o, gb[0], rb);
                ok = 0;
            }
            free(gb);
        }
        free(dc), free(xc), free(gw);
    }
    TIMED(cuda_matmul_backward(dinp, dw, db, dout, x, w, N, C, OC));
    Timing t = collect();
    char shape[96];
    snprintf(shape, sizeof shape, "N%d C%d OC%d%s", N, C, OC, bias ? " +db" : "");
    report("matmul", name, shape, t, 4.0 * N * (double)C * OC, 1, ok);
    dfree(x), dfree(w), dfree(dout), dfree(dinp), dfree(dw);
    if (db) dfree(db);
}

// ----------------------------------------------------------------------------------------------------
// normalization. Checked: the first CHECK_ROWS rows against backend_cpu on the same rows.

#define CHECK_ROWS 4

// layernorm forward bytes: read inp N*C + w, b 2*C (bf16); write out N*C (bf16) + mean, rstd 2*N (fp32)
// layernorm backward bytes: read dout, inp N*C each, dinp N*C (it accumulates), w C, mean, rstd 2*N (fp32),
// dw, db 2*C; write dinp N*C, dw, db 2*C
static void bench_layernorm(const char *tag, int N, int C) {
    char fname[64], bname[64], shape[96];
    snprintf(fname, sizeof fname, "layernorm_fwd_%s", tag);
    snprintf(bname, sizeof bname, "layernorm_bwd_%s", tag);
    snprintf(shape, sizeof shape, "N%d C%d", N, C);
    int do_f = want("norm", fname), do_b = want("norm", bname);
    if (!do_f && !do_b) return;
    const size_t n = (size_t)N * C;
    bf16 *x = dev_bf16(n, 2.0f), *w = dev_bf16(C, 1.0f), *b = dev_bf16(C, 1.0f), *out = (bf16 *)dalloc(n * 2);
    float *mean = (float *)dalloc(N * 4), *rstd = (float *)dalloc(N * 4);
    cuda_layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5f);
    float *hx = get_bf16(x, CHECK_ROWS * (size_t)C), *hw = get_bf16(w, C), *hb = get_bf16(b, C);
    float *ref = (float *)xmalloc(CHECK_ROWS * (size_t)C * 4), rmean[CHECK_ROWS], rrstd[CHECK_ROWS];
    backend_cpu.layernorm_forward(ref, rmean, rrstd, hx, hw, hb, CHECK_ROWS, C, 1e-5f);
    if (do_f) {
        float *g = get_bf16(out, CHECK_ROWS * (size_t)C), *gm = get_f32(mean, CHECK_ROWS), *gr = get_f32(rstd, CHECK_ROWS);
        int ok = close_enough("layernorm_fwd out", g, ref, CHECK_ROWS * (size_t)C, 2e-2f) &&
                 close_enough("layernorm_fwd mean", gm, rmean, CHECK_ROWS, 1e-3f) &&
                 close_enough("layernorm_fwd rstd", gr, rrstd, CHECK_ROWS, 1e-3f);
        free(g), free(gm), free(gr);
        TIMED(cuda_layernorm_forward(out, mean, rstd, x, w, b, N, C, 1e-5f));
        report("norm", fname, shape, collect(), 2.0 * (2.0 * n + 2.0 * C) + 8.0 * N, 0, ok);
    }
    if (do_b) {
        bf16 *dout = dev_bf16(n, 1.0f), *dinp = (bf16 *)dalloc(n * 2), *dw = (bf16 *)dalloc(C * 2), *db = (bf16 *)dalloc(C * 2);
        dzero(dinp, n * 2), dzero(dw, C * 2), dzero(db, C * 2);
        cuda_layernorm_backward(dinp, dw, db, dout, x, w, mean, rstd, N, C);
        float *hd = get_bf16(dout, CHECK_ROWS * (size_t)C), *rdinp = (float *)xmalloc(CHECK_ROWS * (size_t)C * 4);
        float *rdw = (float *)xmalloc(C * 4), *rdb = (float *)xmalloc(C * 4);
        memset(rdinp, 0, CHECK_ROWS * (size_t)C * 4), memset(rdw, 0, C * 4), memset(rdb, 0, C * 4);
        backend_cpu.layernorm_backward(rdinp, rdw, rdb, hd, hx, hw, rmean, rrstd, CHECK_ROWS, C);
        float *g = get_bf16(dinp, CHECK_ROWS * (size_t)C), *gw = get_bf16(dw, C), *gb = get_bf16(db, C);
        int ok = close_enough("layernorm_bwd dinp", g, rdinp, CHECK_ROWS * (size_t)C, 3e-2f) && all_finite("layernorm_bwd dw", gw, C) &&
                 all_finite("layernorm_bwd db", gb, C);
        free(hd), free(rdinp), free(rdw), free(rdb), free(g), free(gw), free(gb);
        TIMED(cuda_layernorm_backward(dinp, dw, db, dout, x, w, mean, rstd, N, C));
        report("norm", bname, shape, collect(), 2.0 * (4.0 * n + 5.0 * C) + 8.0 * N, 0, ok);
        dfree(dout), dfree(dinp), dfree(dw), dfree(db);
    }
    free(hx), free(hw), free(hb), free(ref);
    dfree(x), dfree(w), dfree(b), dfree(out), dfree(mean), dfree(rstd);
}

// rmsnorm forward bytes: read inp N*C + w C; write out N*C (bf16) + rstd N (fp32)
// rmsnorm backward bytes: read dout, inp, dinp N*C each, w, dw C, rstd N (fp32); write dinp N*C, dw C
static void bench_rmsnorm(const char *tag, int N, int C) {
    char fname[64], bname[64], shape[96];
    snprintf(fname, sizeof fname, "rmsnorm_fwd_%s", tag);
    snprintf(bname, sizeof bname, "rmsnorm_bwd_%s", tag);
    snprintf(shape, sizeof shape, "N%d C%d", N, C);
    int do_f = want("norm", fname), do_b = want("norm", bname);
    if (!do_f && !do_b) return;
    const size_t n = (size_t)N * C;
    bf16 *x = dev_bf16(n, 2.0f), *w = dev_bf16(C, 1.0f), *out = (bf16 *)dalloc(n * 2);
    float *rstd = (float *)dalloc(N * 4);
    cuda_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f);
    float *hx = get_bf16(x, CHECK_ROWS * (size_t)C), *hw = get_bf16(w, C);
    float *ref = (float *)xmalloc(CHECK_ROWS * (size_t)C * 4), rrstd[CHECK_ROWS];
    backend_cpu.rmsnorm_forward(ref, rrstd, hx, hw, CHECK_ROWS, C, 1e-5f);
    if (do_f) {
        float *g = get_bf16(out, CHECK_ROWS * (size_t)C), *gr = get_f32(rstd, CHECK_ROWS);
        int ok = close_enough("rmsnorm_fwd out", g, ref, CHECK_ROWS * (size_t)C, 2e-2f) &&
                 close_enough("rmsnorm_fwd rstd", gr, rrstd, CHECK_ROWS, 1e-3f);
        free(g), free(gr);
        TIMED(cuda_rmsnorm_forward(out, rstd, x, w, N, C, 1e-5f));
        report("norm", fname, shape, collect(), 2.0 * (2.0 * n + C) + 4.0 * N, 0, ok);
    }
    if (do_b) {
        bf16 *dout = dev_bf16(n, 1.0f), *dinp = (bf16 *)dalloc(n * 2), *dw = (bf16 *)dalloc(C * 2);
        dzero(dinp, n * 2), dzero(dw, C * 2);
        cuda_rmsnorm_backward(dinp, dw, dout, x, w, rstd, N, C);
        float *hd = get_bf16(dout, CHECK_ROWS * (size_t)C), *rdinp = (float *)xmalloc(CHECK_ROWS * (size_t)C * 4);
        float *rdw = (float *)xmalloc(C * 4);
        memset(rdinp, 0, CHECK_ROWS * (size_t)C * 4), memset(rdw, 0, C * 4);
        backend_cpu.rmsnorm_backward(rdinp, rdw, hd, hx, hw, rrstd, CHECK_ROWS, C);
        float *g = get_bf16(dinp, CHECK_ROWS * (size_t)C), *gw = get_bf16(dw, C);
        int ok = close_enough("rmsnorm_bwd dinp", g, rdinp, CHECK_ROWS * (size_t)C, 3e-2f) && all_finite("rmsnorm_bwd dw", gw, C);
        free(hd), free(rdinp), free(rdw), free(g), free(gw);
        TIMED(cuda_rmsnorm_backward(dinp, dw, dout, x, w, rstd, N, C));
        report("norm", bname, shape, collect(), 2.0 * (4.0 * n + 3.0 * C) + 4.0 * N, 0, ok);
        dfree(dout), dfree(dinp), dfree(dw);
    }
    free(hx), free(hw), free(ref);
    dfree(x), dfree(w), dfree(out), dfree(rstd);
}

// The residual add fused with the RMSNorm after it (a decode step runs 2 per layer), beside what it
// replaces, at one shape: add_rmsnorm_fwd (the fused op), add_then_rmsnorm (cuda_add + cuda_rmsnorm_forward)
// and rmsnorm_fwd alone. Bytes of all three: those of the fused op, read a, b N*C and w C, write sum and
// out N*C (bf16) and rstd N (fp32), so their rates compare directly. Checked: the fused op's first rows
// (at most CHECK_ROWS) against backend_cpu.
static void bench_add_rmsnorm(const char *tag, int N, int C) {
    char fname[64], uname[64], pname[64], shape[96];
    snprintf(fname, sizeof fname, "add_rmsnorm_fwd_%s", tag);
    snprintf(uname, sizeof uname, "add_then_rmsnorm_%s", tag);
    snprintf(pname, sizeof pname, "rmsnorm_fwd_%s", tag);
    snprintf(shape, sizeof shape, "N%d C%d", N, C);
    const int do_f = want("norm", fname), do_u = want("norm", uname), do_p = want("norm", pname);
    if (!do_f && !do_u && !do_p) return;
    const size_t n = (size_t)N * C;
    bf16 *a = dev_bf16(n, 2.0f), *b = dev_bf16(n, 1.0f), *w = dev_bf16(C, 1.0f);
    bf16 *sum = (bf16 *)dalloc(n * 2), *out = (bf16 *)dalloc(n * 2);
    float *rstd = (float *)dalloc(N * 4);
    const double bytes = 2.0 * (4.0 * n + C) + 4.0 * N;
    cuda_add_rmsnorm_forward(sum, out, rstd, a, b, w, N, C, 1e-5f);
    const int R = N < CHECK_ROWS ? N : CHECK_ROWS;
    float *ha = get_bf16(a, (size_t)R * C), *hb = get_bf16(b, (size_t)R * C), *hw = get_bf16(w, C);
    float *rsum = (float *)xmalloc((size_t)R * C * 4), *ref = (float *)xmalloc((size_t)R * C * 4), rrstd[CHECK_ROWS];
    backend_cpu.add_rmsnorm_forward(rsum, ref, rrstd, ha, hb, hw, R, C, 1e-5f);
    float *gs = get_bf16(sum, (size_t)R * C), *g = get_bf16(out, (size_t)R * C), *gr = get_f32(rstd, R);
    const int ok = close_enough("add_rmsnorm_fwd sum", gs, rsum, (size_t)R * C, 1e-2f) &&
                   close_enough("add_rmsnorm_fwd out", g, ref, (size_t)R * C, 2e-2f) &&
                   close_enough("add_rmsnorm_fwd rstd", gr, rrstd, R, 1e-3f);
    free(ha), free(hb), free(hw), free(rsum), free(ref), free(gs), free(g), free(gr);
    if (do_f) {
        TIMED(cuda_add_rmsnorm_forward(sum, out, rstd, a, b, w, N, C, 1e-5f));
        report("norm", fname, shape, collect(), bytes, 0, ok);
    }
    if (do_u) {
        TIMED((cuda_add(sum, a, b, n), cuda_rmsnorm_forward(out, rstd, sum, w, N, C, 1e-5f)));
        report("norm", uname, shape, collect(), bytes, 0, ok);
    }
    if (do_p) {
        TIMED(cuda_rmsnorm_forward(out, rstd, sum, w, N, C, 1e-5f));
        report("norm", pname, shape, collect(), bytes, 0, ok);
    }
    dfree(a), dfree(b), dfree(w), dfree(sum), dfree(out), dfree(rstd);
}

// ----------------------------------------------------------------------------------------------------
// elementwise. Checked: the first CHECK_ELEMS elements (or rows) against backend_cpu.

#define CHECK_ELEMS 8192

// act forward bytes: read inp n, write out n (bf16). backward: read dout, inp n, write dinp n.
static void bench_act(const char *tag, ActKind kind, size_t n, const char *shape) {
    char fname[64], bname[64];
    snprintf(fname, sizeof fname, "%s_fwd", tag);
    snprintf(bname, sizeof bname, "%s_bwd", tag);
    int do_f = want("act", fname), do_b = want("act", bname);
    if (!do_f && !do_b) return;
    bf16 *x = dev_bf16(n, 4.0f), *out = (bf16 *)dalloc(n * 2);
    float *hx = get_bf16(x, CHECK_ELEMS), *ref = (float *)xmalloc(CHECK_ELEMS * 4);
    if (do_f) {
        cuda_act_forward(kind, out, x, n);
        backend_cpu.act_forward(kind, ref, hx, CHECK_ELEMS);
        float *g = get_bf16(out, CHECK_ELEMS);
        int ok = close_enough(fname, g, ref, CHECK_ELEMS, 2e-2f);
        free(g);
        TIMED(cuda_act_forward(kind, out, x, n));
        report("act", fname, shape, collect(), 4.0 * n, 0, ok);
    }
    if (do_b) {
        bf16 *dout = dev_bf16(n, 1.0f);
        cuda_act_backward(kind, out, dout, x, n);
        float *hd = get_bf16(dout, CHECK_ELEMS);
        backend_cpu.act_backward(kind, ref, hd, hx, CHECK_ELEMS);
        float *g = get_bf16(out, CHECK_ELEMS);
        int ok = close_enough(bname, g, ref, CHECK_ELEMS, 2e-2f);
        free(g), free(hd);
        TIMED(cuda_act_backward(kind, out, dout, x, n));
        report("act", bname, shape, collect(), 6.0 * n, 0, ok);
        dfree(dout);
    }
    free(hx), free(ref);
    dfree(x), dfree(out);
}

// swiglu forward bytes: read inp N*2F, write out N*F. backward: read inp N*2F and dout N*F, write dinp N*2F.
static void bench_swiglu(int N, int F) {
    int do_f = want("swiglu", "swiglu_fwd"), do_b = want("swiglu", "swiglu_bwd");
    if (!do_f && !do_b) return;
    char shape[96];
    snprintf(shape, sizeof shape, "N%d F%d", N, F);
    const size_t nf = (size_t)N * F;
    bf16 *x = dev_bf16(2 * nf, 4.0f), *out = (bf16 *)dalloc(nf * 2);
    const int R = 2;  // rows checked
    float *hx = get_bf16(x, (size_t)R * 2 * F);
    if (do_f) {
        cuda_swiglu_forward(out, x, N, F);
        float *ref = (float *)xmalloc((size_t)R * F * 4);
        backend_cpu.swiglu_forward(ref, hx, R, F);
        float *g = get_bf16(out, (size_t)R * F);
        int ok = close_enough("swiglu_fwd", g, ref, (size_t)R * F, 2e-2f);
        free(g), free(ref);
        TIMED(cuda_swiglu_forward(out, x, N, F));
        report("swiglu", "swiglu_fwd", shape, collect(), 2.0 * 3.0 * nf, 0, ok);
    }
    if (do_b) {
        bf16 *dout = dev_bf16(nf, 1.0f), *dinp = (bf16 *)dalloc(2 * nf * 2);
        cuda_swiglu_backward(dinp, dout, x, N, F);
        float *hd = get_bf16(dout, (size_t)R * F), *ref = (float *)xmalloc((size_t)R * 2 * F * 4);
        backend_cpu.swiglu_backward(ref, hd, hx, R, F);
        float *g = get_bf16(dinp, (size_t)R * 2 * F);
        int ok = close_enough("swiglu_bwd", g, ref, (size_t)R * 2 * F, 2e-2f);
        free(g), free(ref), free(hd);
        TIMED(cuda_swiglu_backward(dinp, dout, x, N, F));
        report("swiglu", "swiglu_bwd", shape, collect(), 2.0 * 5.0 * nf, 0, ok);
        dfree(dout), dfree(dinp);
    }
    free(hx);
    dfree(x), dfree(out);
}

// add bytes: read a, b n each, write out n (the residual add)
static void bench_add(size_t n, const char *shape) {
    if (!want("add", "add")) return;
    bf16 *a = dev_bf16(n, 1.0f), *b = dev_bf16(n, 1.0f), *out = (bf16 *)dalloc(n * 2);
    cuda_add(out, a, b, n);
    float *ha = get_bf16(a, CHECK_ELEMS), *hb = get_bf16(b, CHECK_ELEMS), *ref = (float *)xmalloc(CHECK_ELEMS * 4);
    backend_cpu.add(ref, ha, hb, CHECK_ELEMS);
    float *g = get_bf16(out, CHECK_ELEMS);
    int ok = close_enough("add", g, ref, CHECK_ELEMS, 1e-2f);
    free(ha), free(hb), free(ref), free(g);
    TIMED(cuda_add(out, a, b, n));
    report("add", "add", shape, collect(), 6.0 * n, 0, ok);
    dfree(a), dfree(b), dfree(out);
}

// rope, in place on the q and k heads of the fused qkv rows (N, stride): bytes read and written
// N*heads*HD each (bf16) + pos N (int32). The v columns are not touched.
static void bench_rope(int N, int heads, int HD, int stride, int T) {
    int do_f = want("rope", "rope_fwd"), do_b = want("rope", "rope_bwd");
    if (!do_f && !do_b) return;
    char shape[96];
    snprintf(shape, sizeof shape, "N%d heads%d HD%d stride%d", N, heads, HD, stride);
    const float theta = 10000.0f;
    int *hpos = (int *)xmalloc((size_t)N * 4);
    for (int i = 0; i < N; i++) hpos[i] = i % T;
    int *pos = dev_ints(hpos, N);
    bf16 *x = dev_bf16((size_t)N * stride, 2.0f);
    const int R = 3;  // rows checked: the first R tokens (positions 0, 1, 2; position 0 is the identity)
    const size_t nck = (size_t)R * stride;
    for (int dir = 0; dir < 2; dir++) {
        if (!(dir ? do_b : do_f)) continue;
        float *before = get_bf16(x, nck);
        if (dir) cuda_rope_backward(x, pos, N, heads, HD, stride, theta);
        else cuda_rope_forward(x, pos, N, heads, HD, stride, theta);
        float *g = get_bf16(x, nck);
        if (dir) backend_cpu.rope_backward(before, hpos, R, heads, HD, stride, theta);
        else backend_cpu.rope_forward(before, hpos, R, heads, HD, stride, theta);
        int ok = close_enough(dir ? "rope_bwd" : "rope_fwd", g, before, nck, 2e-2f);
        free(before), free(g);
        if (dir) {
            TIMED(cuda_rope_backward(x, pos, N, heads, HD, stride, theta));
        } else {
            TIMED(cuda_rope_forward(x, pos, N, heads, HD, stride, theta));
        }
        report("rope", dir ? "rope_bwd" : "rope_fwd", shape, collect(), 4.0 * N * (double)heads * HD + 4.0 * N, 0, ok);
    }
    free(hpos);
    dfree(pos), dfree(x);
}

// add_broadcast forward (position embeddings): x (B, M) += y (M): read x B*M and y M, write x B*M.
// backward: dy (M) += sum_b dx (B, M): read dx B*M and dy M, write dy M.
static void bench_add_broadcast(int B, size_t M) {
    int do_f = want("broadcast", "add_broadcast_fwd"), do_b = want("broadcast", "add_broadcast_bwd");
    if (!do_f && !do_b) return;
    char shape[96];
    snprintf(shape, sizeof shape, "B%d M%zu", B, M);
    bf16 *x = dev_bf16((size_t)B * M, 1.0f), *y = dev_bf16(M, 1.0f);
    if (do_f) {
        float *hx = get_bf16(x, CHECK_ELEMS), *hy = get_bf16(y, CHECK_ELEMS);
        cuda_add_broadcast_forward(x, y, B, M);
        backend_cpu.add_broadcast_forward(hx, hy, 1, CHECK_ELEMS);
        float *g = get_bf16(x, CHECK_ELEMS);
        int ok = close_enough("add_broadcast_fwd", g, hx, CHECK_ELEMS, 1e-2f);
        free(hx), free(hy), free(g);
        TIMED(cuda_add_broadcast_forward(x, y, B, M));
        report("broadcast", "add_broadcast_fwd", shape, collect(), 2.0 * (2.0 * B * M + M), 0, ok);
    }
    if (do_b) {
        dzero(y, M * 2);
        cuda_add_broadcast_backward(y, x, B, M);
        float *ref = (float *)xmalloc(CHECK_ELEMS * 4);
        memset(ref, 0, CHECK_ELEMS * 4);
        for (int b = 0; b < B; b++) {
            float *row = get_bf16(x + (size_t)b * M, CHECK_ELEMS);
            for (int i = 0; i < CHECK_ELEMS; i++) ref[i] += row[i];
            free(row);
        }
        float *g = get_bf16(y, CHECK_ELEMS);
        int ok = close_enough("add_broadcast_bwd", g, ref, CHECK_ELEMS, 2e-2f);
        free(ref), free(g);
        TIMED(cuda_add_broadcast_backward(y, x, B, M));
        report("broadcast", "add_broadcast_bwd", shape, collect(), 2.0 * ((double)B * M + 2.0 * M), 0, ok);
    }
    dfree(x), dfree(y);
}

// im2col: pixels (B, Cin, H, W) -> patches (B*(H/P)*(W/P), Cin*P*P): read and write B*Cin*H*W each (bf16)
static void bench_im2col(int B, int Cin, int H, int W, int P) {
    if (!want("im2col", "im2col")) return;
    char shape[96];
    snprintf(shape, sizeof shape, "B%d Cin%d %dx%d P%d", B, Cin, H, W, P);
    const size_t n = (size_t)B * Cin * H * W, K = (size_t)Cin * P * P;
    bf16 *px = dev_bf16(n, 1.0f), *patches = (bf16 *)dalloc(n * 2);
    cuda_im2col(patches, px, B, Cin, H, W, P);
    // the first patch row against the CPU on the first image
    float *himg = get_bf16(px, (size_t)Cin * H * W), *ref = (float *)xmalloc((size_t)Cin * H * W * 4);
    backend_cpu.im2col(ref, himg, 1, Cin, H, W, P);
    float *g = get_bf16(patches, K);
    int ok = close_enough("im2col", g, ref, K, 1e-6f);
    free(himg), free(ref), free(g);
    TIMED(cuda_im2col(patches, px, B, Cin, H, W, P));
    report("im2col", "im2col", shape, collect(), 4.0 * n, 0, ok);
    dfree(px), dfree(patches);
}

// ----------------------------------------------------------------------------------------------------
// embeddings and rows

// embedding forward: out (N, C) = table[ids]: read N rows of C, write N*C (bf16), read ids N (int32).
// backward: dtable += dout at ids: read dout N*C, read and write the U distinct rows of dtable (U*C
// each), read ids N. The sort the kernel does to stay deterministic is not counted.
static void bench_embedding(int N, int V, int C) {
    int do_f = want("rows", "embedding_fwd"), do_b = want("rows", "embedding_bwd");
    if (!do_f && !do_b) return;
    char shape[96];
    snprintf(shape, sizeof shape, "N%d V%d C%d", N, V, C);
    int *hids = (int *)xmalloc((size_t)N * 4);
    uint64_t s = 12345;
    for (int i = 0; i < N; i++) {
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        hids[i] = (int)((s >> 33) % (uint64_t)V);
    }
    char *seen = (char *)calloc(V, 1);
    int U = 0;
    for (int i = 0; i < N; i++) U += !seen[hids[i]], seen[hids[i]] = 1;
    free(seen);
    int *ids = dev_ints(hids, N);
    bf16 *table = dev_bf16((size_t)V * C, 1.0f), *out = (bf16 *)dalloc((size_t)N * C * 2);
    if (do_f) {
        cuda_embedding_forward(out, ids, table, N, C);
        int ok = 1;
        for (int r = 0; r < 2 && ok; r++) {
            int n = r ? N - 1 : 0;
            float *g = get_bf16(out + (size_t)n * C, C), *t = get_bf16(table + (size_t)hids[n] * C, C);
            ok = close_enough("embedding_fwd", g, t, C, 0.0f);
            free(g), free(t);
        }
        TIMED(cuda_embedding_forward(out, ids, table, N, C));
        report("rows", "embedding_fwd", shape, collect(), 4.0 * N * (double)C + 4.0 * N, 0, ok);
    }
    if (do_b) {
        bf16 *dout = dev_bf16((size_t)N * C, 1.0f);
        dzero(table, (size_t)V * C * 2);
        cuda_embedding_backward(table, dout, ids, N, C);
        // row ids[0] of dtable = the sum of the dout rows with that id
        float *ref = (float *)xmalloc((size_t)C * 4);
        memset(ref, 0, (size_t)C * 4);
        for (int n = 0; n < N; n++)
            if (hids[n] == hids[0]) {
                float *row = get_bf16(dout + (size_t)n * C, C);
                for (int c = 0; c < C; c++) ref[c] += row[c];
                free(row);
            }
        float *g = get_bf16(table + (size_t)hids[0] * C, C);
        int ok = close_enough("embedding_bwd", g, ref, C, 1e-2f);
        free(ref), free(g);
        TIMED(cuda_embedding_backward(table, dout, ids, N, C));
        char bshape[128];
        snprintf(bshape, sizeof bshape, "%s U%d", shape, U);
        report("rows", "embedding_bwd", bshape, collect(), 2.0 * ((double)N * C + 2.0 * U * C) + 4.0 * N, 0, ok);
        dfree(dout);
    }
    free(hids);
    dfree(ids), dfree(table), dfree(out);
}

// The image features of a batch placed into (and gathered back out of) the decoder rows: B rows of T
// tokens, P image tokens each starting at token 1, M = B*P rows of C.
//   copy_rows   out[idx[m]] = inp[m]:              read M*C, write M*C (bf16), read idx M (int32)
//   add_rows    out[m] += inp[idx[m]] (gather):    read inp M*C, read and write out M*C, read idx M
//   add_rows    out[idx[m]] += inp[m] (scatter):   the same bytes, plus the sort the kernel does for
//               determinism (not counted)
// The check of the three row ops: row a_idx[probe[i]] of a equals row b_idx[probe[i]] of b exactly, for the
// two probed positions (NULL index: the position itself).
static int rows_equal(const char *name, const bf16 *a, const int *a_idx, const bf16 *b, const int *b_idx, const int probe[2],
                      int C) {
    int ok = 1;
    for (int i = 0; i < 2 && ok; i++) {
        const int ra = a_idx ? a_idx[probe[i]] : probe[i], rb = b_idx ? b_idx[probe[i]] : probe[i];
        float *g = get_bf16(a + (size_t)ra * C, C), *r = get_bf16(b + (size_t)rb * C, C);
        ok = close_enough(name, g, r, C, 0.0f);
        free(g), free(r);
    }
    return ok;
}

static void bench_rows(int B, int T, int P, int C) {
    int do_c = want("rows", "copy_rows"), do_g = want("rows", "add_rows_gather"), do_s = want("rows", "add_rows_scatter");
    if (!do_c && !do_g && !do_s) return;
    const int M = B * P, N = B * T;
    char shape[96];
    snprintf(shape, sizeof shape, "M%d of N%d C%d", M, N, C);
    int *hidx = (int *)xmalloc((size_t)M * 4);
    for (int b = 0; b < B; b++)
        for (int p = 0; p < P; p++) hidx[b * P + p] = b * T + 1 + p;
    int *idx = dev_ints(hidx, M);
    bf16 *seq = dev_bf16((size_t)N * C, 1.0f), *feat = dev_bf16((size_t)M * C, 1.0f);
    const double bytes2 = 4.0 * M * (double)C + 4.0 * M, bytes3 = 6.0 * M * (double)C + 4.0 * M;
    const int probe[2] = {0, M - 1};
    if (do_c) {
        cuda_copy_rows(seq, idx, feat, NULL, M, C);
        const int ok = rows_equal("copy_rows", seq, hidx, feat, NULL, probe, C);
        TIMED(cuda_copy_rows(seq, idx, feat, NULL, M, C));
        report("rows", "copy_rows", shape, collect(), bytes2, 0, ok);
    }
    if (do_g) {
        dzero(feat, (size_t)M * C * 2);
        cuda_add_rows(feat, NULL, seq, idx, M, C);
        const int ok = rows_equal("add_rows_gather", feat, NULL, seq, hidx, probe, C);
        TIMED(cuda_add_rows(feat, NULL, seq, idx, M, C));
        report("rows", "add_rows_gather", shape, collect(), bytes3, 0, ok);
    }
    if (do_s) {
        dzero(seq, (size_t)N * C * 2);
        cuda_add_rows(seq, idx, feat, NULL, M, C);
        const int ok = rows_equal("add_rows_scatter", seq, hidx, feat, NULL, probe, C);
        TIMED(cuda_add_rows(seq, idx, feat, NULL, M, C));
        report("rows", "add_rows_scatter", shape, collect(), bytes3, 0, ok);
    }
    free(hidx);
    dfree(idx), dfree(seq), dfree(feat);
}

// ----------------------------------------------------------------------------------------------------
// classifier: log-softmax over the vocabulary, the label's log-prob, its gradient
//   forward bytes:  read logits N*V (bf16), targets N (int32); write logp, lse N (fp32)
//   backward bytes: read logits N*V, lse, dlogp N (fp32), targets N; write dlogits N*V (bf16)
// (the model runs the backward in place, dlogits = logits: the same bytes; here a separate buffer so
// the forward check and every repetition see the same logits)

static void bench_classifier(int N, int V) {
    int do_f = want("classifier", "logprob_fwd"), do_b = want("classifier", "logprob_bwd");
    if (!do_f && !do_b) return;
    char shape[96];
    snprintf(shape, sizeof shape, "N%d V%d", N, V);
    int *ht = (int *)xmalloc((size_t)N * 4);
    for (int i = 0; i < N; i++) ht[i] = (int)(((uint64_t)i * 2654435761u) % (uint64_t)V);
    int *targets = dev_ints(ht, N);
    bf16 *logits = dev_bf16((size_t)N * V, 8.0f);
    float *logp = (float *)dalloc((size_t)N * 4), *lse = (float *)dalloc((size_t)N * 4);
    cuda_logprob_forward(logp, lse, logits, targets, N, V);
    const int R = 2;
    float *hl = get_bf16(logits, (size_t)R * V), rlogp[R], rlse[R];
    backend_cpu.logprob_forward(rlogp, rlse, hl, ht, R, V);
    if (do_f) {
        float *g = get_f32(logp, R), *gl = get_f32(lse, R);
        int ok = close_enough("logprob_fwd logp", g, rlogp, R, 1e-3f) && close_enough("logprob_fwd lse", gl, rlse, R, 1e-3f);
        free(g), free(gl);
        TIMED(cuda_logprob_forward(logp, lse, logits, targets, N, V));
        report("classifier", "logprob_fwd", shape, collect(), 2.0 * N * (double)V + 12.0 * N, 0, ok);
    }
    if (do_b) {
        float *dlogp = dev_f32(N, -1.0f, 0.0f);
        bf16 *dlogits = (bf16 *)dalloc((size_t)N * V * 2);
        cuda_logprob_backward(dlogits, logits, lse, targets, dlogp, N, V);
        float *hdl = get_f32(dlogp, R), *ref = (float *)xmalloc((size_t)R * V * 4);
        backend_cpu.logprob_backward(ref, hl, rlse, ht, hdl, R, V);
        float *g = get_bf16(dlogits, (size_t)R * V);
        int ok = close_enough("logprob_bwd", g, ref, (size_t)R * V, 2e-2f);
        free(hdl), free(ref), free(g);
        TIMED(cuda_logprob_backward(dlogits, logits, lse, targets, dlogp, N, V));
        report("classifier", "logprob_bwd", shape, collect(), 4.0 * N * (double)V + 12.0 * N, 0, ok);
        dfree(dlogp), dfree(dlogits);
    }
    free(ht), free(hl);
    dfree(targets), dfree(logits), dfree(logp), dfree(lse);
}

// ----------------------------------------------------------------------------------------------------
// optimizer

// adamw_update with an fp32 master copy (the training setup): per parameter read grad (bf16 2) and
// m, v, master (fp32 12), write m, v, master (12) and params (bf16 2): 28 bytes.
// sumsq: read x n (bf16 2 bytes per element); the result is copied to the host and waited for (the
// op's contract), so a few microseconds of that round trip are in the time.
static void bench_optim(size_t n) {
    int do_a = want("optim", "adamw_update"), do_s = want("optim", "sumsq");
    if (!do_a && !do_s) return;
    char shape[96];
    snprintf(shape, sizeof shape, "n=%.3g", (double)n);
    bf16 *grad = dev_bf16(n, 1.0f);
    if (do_a) {
        const float lr = 1e-4f, b1 = 0.9f, b2 = 0.95f, eps = 1e-8f, wd = 0.1f, gs = 0.5f;
        const int t = 10;
        bf16 *params = (bf16 *)dalloc(n * 2);
        float *master = dev_f32(n, -0.05f, 0.05f), *m = dev_f32(n, -1e-3f, 1e-3f), *v = dev_f32(n, 0.0f, 1e-6f);
        // the check: the first and the last CHECK_ELEMS parameters against backend_cpu
        int ok = 1;
        const size_t offs[2] = {0, n - CHECK_ELEMS};
        float *hg[2], *hm[2], *hv[2], *hp[2];
        for (int i = 0; i < 2; i++)
            hg[i] = get_bf16(grad + offs[i], CHECK_ELEMS), hm[i] = get_f32(m + offs[i], CHECK_ELEMS),
            hv[i] = get_f32(v + offs[i], CHECK_ELEMS), hp[i] = get_f32(master + offs[i], CHECK_ELEMS);
        cuda_adamw_update(params, master, grad, m, v, n, lr, b1, b2, eps, wd, t, gs);
        for (int i = 0; i < 2; i++) {
            float *hpar = (float *)xmalloc(CHECK_ELEMS * 4);
            backend_cpu.adamw_update(hpar, hp[i], hg[i], hm[i], hv[i], CHECK_ELEMS, lr, b1, b2, eps, wd, t, gs);
            float *gp = get_bf16(params + offs[i], CHECK_ELEMS), *gmaster = get_f32(master + offs[i], CHECK_ELEMS);
            float *gm = get_f32(m + offs[i], CHECK_ELEMS), *gv = get_f32(v + offs[i], CHECK_ELEMS);
            for (int k = 0; k < CHECK_ELEMS; k++) hpar[k] = bf16r(hpar[k]);
            ok = ok && close_enough("adamw params", gp, hpar, CHECK_ELEMS, 1e-2f) &&
                 close_enough("adamw master", gmaster, hp[i], CHECK_ELEMS, 1e-4f) &&
                 close_enough("adamw m", gm, hm[i], CHECK_ELEMS, 1e-4f) && close_enough("adamw v", gv, hv[i], CHECK_ELEMS, 1e-4f);
            free(hpar), free(gp), free(gmaster), free(gm), free(gv);
            free(hg[i]), free(hm[i]), free(hv[i]), free(hp[i]);
        }
        TIMED(cuda_adamw_update(params, master, grad, m, v, n, lr, b1, b2, eps, wd, t, gs));
        report("optim", "adamw_update", shape, collect(), 28.0 * n, 0, ok);
        dfree(params), dfree(master), dfree(m), dfree(v);
    }
    if (do_s) {
        // grad holds bf16-rounded uniform [-1, 1) values: the mean square is 1/3 up to sampling noise
        // (relative std 0.894 / sqrt(n)) and bf16 rounding (unbiased, far below 0.2%)
        double ss = 0;
        cuda_sumsq(&ss, grad, n);
        double expect = n / 3.0, tol = 2e-3 + 5 * 0.894 / sqrt((double)n);  // 0.894: std of x^2 / mean, U(-1, 1)
        int ok = isfinite(ss) && fabs(ss - expect) <= tol * expect;
        if (!ok) printf("  CHECK FAILED sumsq: %.6g, expected about %.6g\n", ss, expect);
        TIMED(cuda_sumsq(&ss, grad, n));
        report("optim", "sumsq", shape, collect(), 2.0 * n, 0, ok);
    }
    dfree(grad);
}

// ----------------------------------------------------------------------------------------------------
// decode attention against the KV cache: each of B rows reads len positions of k and v (NKV*HD bf16
// each) = 4*B*len*NKV*HD bytes, plus q and out B*NH*HD each (bf16) and len B (int32)

static void bench_attention_decode(int B, int NH, int NKV, int HD, int len, int cap) {
    char name[64], shape[96];
    snprintf(name, sizeof name, "attention_decode_B%d", B);
    if (!want("decode", name)) return;
    snprintf(shape, sizeof shape, "B%d NH%d NKV%d HD%d len%d", B, NH, NKV, HD, len);
    const int q_stride = (NH + 2 * NKV) * HD;  // q read in place from the fused qkv rows
    const size_t kvrow = (size_t)NKV * HD;
    bf16 *q = dev_bf16((size_t)B * q_stride, 2.0f), *out = (bf16 *)dalloc((size_t)B * NH * HD * 2);
    bf16 *k = dev_bf16((size_t)B * cap * kvrow, 2.0f), *v = dev_bf16((size_t)B * cap * kvrow, 1.0f);
    int *hlen = (int *)xmalloc((size_t)B * 4);
    for (int b = 0; b < B; b++) hlen[b] = len;
    int *dlen = dev_ints(hlen, B);
    DecodeShape s = {B, NH, NKV, HD, q_stride, cap, dlen, NULL};
    cuda_attention_decode(out, q, k, v, &s);
    // row 0 on the CPU: its q, the first len positions of cache slot 0
    float *hq = get_bf16(q, (size_t)NH * HD), *hk = get_bf16(k, (size_t)len * kvrow), *hv = get_bf16(v, (size_t)len * kvrow);
    float *ref = (float *)xmalloc((size_t)NH * HD * 4);
    int one_len = len;
    DecodeShape hs = {1, NH, NKV, HD, q_stride, len, &one_len, NULL};
    backend_cpu.attention_decode(ref, hq, hk, hv, &hs);
    float *g = get_bf16(out, (size_t)NH * HD);
    int ok = close_enough(name, g, ref, (size_t)NH * HD, 2e-2f);
    free(hq), free(hk), free(hv), free(ref), free(g), free(hlen);
    TIMED(cuda_attention_decode(out, q, k, v, &s));
    report("decode", name, shape, collect(), 4.0 * B * (double)len * kvrow + 4.0 * B * NH * HD + 4.0 * B, 0, ok);
    dfree(q), dfree(out), dfree(k), dfree(v), dfree(dlen);
}

// The rotary embedding of B fused qkv rows with the append of their keys and values to the KV cache (a
// decode step runs one per layer), beside the sequence it replaces: rope_kv_append_B and rope_then_copies_B
// (cuda_rope_forward on the q and k heads, two cuda_copy_rows_strided). Bytes of both: read the row's q, k,
// v B*(NH + 2 NKV)*HD, write q and k back B*(NH + NKV)*HD and k, v to the cache 2*B*NKV*HD (bf16), pos and
// dst 2*B (int32). Checked: every row's rotated q and both cache rows against backend_cpu.
static void bench_rope_kv_append(int B, int NH, int NKV, int HD, int cap) {
    char fname[64], uname[64], shape[96];
    snprintf(fname, sizeof fname, "rope_kv_append_B%d", B);
    snprintf(uname, sizeof uname, "rope_then_copies_B%d", B);
    const int do_f = want("decode", fname), do_u = want("decode", uname);
    if (!do_f && !do_u) return;
    snprintf(shape, sizeof shape, "B%d NH%d NKV%d HD%d", B, NH, NKV, HD);
    const int qdim = NH * HD, kvdim = NKV * HD, stride = qdim + 2 * kvdim;
    const float theta = 10000.0f;
    int *hpos = (int *)xmalloc((size_t)B * 4), *hdst = (int *)xmalloc((size_t)B * 4);
    for (int b = 0; b < B; b++) hpos[b] = 700 + b, hdst[b] = b * cap + 700 + b;  // slot b, position 700 + b
    int *pos = dev_ints(hpos, B), *dst = dev_ints(hdst, B);
    bf16 *qkv = dev_bf16((size_t)B * stride, 2.0f);
    bf16 *kc = dev_bf16((size_t)B * cap * kvdim, 1.0f), *vc = dev_bf16((size_t)B * cap * kvdim, 1.0f);
    const double bytes = 2.0 * B * ((double)(NH + 2 * NKV) * HD + (double)(NH + NKV) * HD + 2.0 * kvdim) + 8.0 * B;
    float *hq = get_bf16(qkv, (size_t)B * stride);
    cuda_rope_kv_append(qkv, pos, kc, vc, dst, B, NH, NKV, HD, stride, theta);
    backend_cpu.rope_forward(hq, hpos, B, NH + NKV, HD, stride, theta);  // the rotated rows: q | k | v (v as it was)
    int ok = 1;
    for (int b = 0; b < B && ok; b++) {
        float *gq = get_bf16(qkv + (size_t)b * stride, qdim);
        float *gk = get_bf16(kc + (size_t)hdst[b] * kvdim, kvdim), *gv = get_bf16(vc + (size_t)hdst[b] * kvdim, kvdim);
        const float *rq = hq + (size_t)b * stride;
        ok = close_enough("rope_kv_append q", gq, rq, qdim, 2e-2f) && close_enough("rope_kv_append k", gk, rq + qdim, kvdim, 2e-2f) &&
             close_enough("rope_kv_append v", gv, rq + qdim + kvdim, kvdim, 0.0f);
        free(gq), free(gk), free(gv);
    }
    free(hq), free(hpos), free(hdst);
    if (do_f) {
        TIMED(cuda_rope_kv_append(qkv, pos, kc, vc, dst, B, NH, NKV, HD, stride, theta));
        report("decode", fname, shape, collect(), bytes, 0, ok);
    }
    if (do_u) {
        TIMED((cuda_rope_forward(qkv, pos, B, NH + NKV, HD, stride, theta),
               cuda_copy_rows_strided(kc, dst, kvdim, qkv + qdim, NULL, stride, B, kvdim),
               cuda_copy_rows_strided(vc, dst, kvdim, qkv + qdim + kvdim, NULL, stride, B, kvdim)));
        report("decode", uname, shape, collect(), bytes, 0, ok);
    }
    dfree(pos), dfree(dst), dfree(qkv), dfree(kc), dfree(vc);
}

// ----------------------------------------------------------------------------------------------------

int main(int argc, char **argv) {
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--only") && i + 1 < argc) g_only = argv[++i];
        else if (!strcmp(argv[i], "--reps") && i + 1 < argc) g_reps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--warmup") && i + 1 < argc) g_warmup = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--json") && i + 1 < argc) json = argv[++i];
        else if (!strcmp(argv[i], "--opt-n") && i + 1 < argc) g_opt_n = (size_t)atof(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            printf("usage: %s [--only SUBSTRING] [--reps N] [--warmup N] [--json FILE] [--opt-n N]\n", argv[0]);
            return 0;
        } else fatal("bench_kernels: unknown option '%s' (see --help)", argv[i]);
    }
    if (g_reps < 1 || g_warmup < 0) fatal("bench_kernels: --reps must be >= 1 and --warmup >= 0");
    if (g_opt_n < 2 * CHECK_ELEMS) fatal("bench_kernels: --opt-n must be at least %d", 2 * CHECK_ELEMS);

    char why[256];
    if (!cuda_device_usable(why, sizeof why)) fatal("bench_kernels: no usable GPU: %s", why);
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int drv = 0, rt = 0;
    cudaDriverGetVersion(&drv);
    cudaRuntimeGetVersion(&rt);
    printf("device: %s, %d SMs, %.1f GiB, L2 %.0f MiB; driver %d, runtime %d\n", prop.name, prop.multiProcessorCount,
           prop.totalGlobalMem / 1073741824.0, prop.l2CacheSize / 1048576.0, drv, rt);
    printf("timing: median and min of %d repetitions after %d warm-ups, CUDA events, L2 flushed (256 MB read) before each\n",
           g_reps, g_warmup);

    S = (cudaStream_t)cuda_stream();
    g_flush = dalloc(FLUSH_BYTES);
    dzero(g_flush, FLUSH_BYTES);
    g_ev = (cudaEvent_t *)xmalloc(sizeof(cudaEvent_t) * 2 * g_reps);
    g_ms = (float *)xmalloc(sizeof(float) * g_reps);
    for (int i = 0; i < 2 * g_reps; i++) CK(cudaEventCreate(&g_ev[i]));

    printf("%-10s %-22s %-34s %9s %9s %9s %-7s %7s\n", "family", "name", "shape", "ms med", "ms min", "rate", "unit",
           "of ceil");
    bench_ceilings();

    // ---- matmul, llava-1.4b training step (TFLOP/s against the GEMM ceiling) ----
    const int N = 5120, D = 2048, F = 5632, V = 32064;    // decoder rows (8 x 640), width, FFN, vocab
    const int NV = 8 * 577, CV = 1024, FV = 4096;         // vision rows, width, FFN
    const int NP = 8 * 576;                               // image rows through the projector
    bench_matmul_fwd("dec_qkv_fwd", N, D, 3 * D, 0, 0);
    bench_matmul_bwd("dec_qkv_bwd", N, D, 3 * D, 0);
    bench_matmul_fwd("dec_o_fwd", N, D, D, 0, 0);
    bench_matmul_bwd("dec_o_bwd", N, D, D, 0);
    bench_matmul_fwd("dec_gateup_fwd", N, D, 2 * F, 0, 0);
    bench_matmul_bwd("dec_gateup_bwd", N, D, 2 * F, 0);
    bench_matmul_fwd("dec_down_fwd", N, F, D, 0, 0);
    bench_matmul_bwd("dec_down_bwd", N, F, D, 0);
    bench_matmul_fwd("lm_head_fwd", N, D, V, 0, 0);
    bench_matmul_bwd("lm_head_bwd", N, D, V, 0);
    bench_matmul_fwd("proj1_fwd", NP, CV, D, 1, 0);
    bench_matmul_bwd("proj1_bwd", NP, CV, D, 1);
    bench_matmul_fwd("proj2_fwd", NP, D, D, 1, 0);
    bench_matmul_bwd("proj2_bwd", NP, D, D, 1);
    bench_matmul_fwd("vit_qkv_fwd", NV, CV, 3 * CV, 1, 0);
    bench_matmul_fwd("vit_o_fwd", NV, CV, CV, 1, 0);
    bench_matmul_fwd("vit_fc1_fwd", NV, CV, FV, 1, 0);
    bench_matmul_fwd("vit_fc2_fwd", NV, FV, CV, 1, 0);
    bench_matmul_bwd("vit_fc1_bwd", NV, CV, FV, 1);  // only CLIP training runs the tower backward

    // ---- matmul, LLaVA-7B decode GEMVs (GB/s of weight read against the copy ceiling) ----
    const int D7 = 4096, F7 = 11008;
    for (int m = 1; m <= 16; m += 15) {
        const struct { const char *what; int C, OC; } g[5] = {
            {"qkv", D7, 3 * D7}, {"o", D7, D7}, {"gateup", D7, 2 * F7}, {"down", F7, D7}, {"lm_head", D7, V}};
        for (int i = 0; i < 5; i++) {
            char nm[64];
            snprintf(nm, sizeof nm, "gemv7b_%s_M%d", g[i].what, m);
            bench_matmul_fwd(nm, m, g[i].C, g[i].OC, 0, 1);
        }
        char nm[64];
        snprintf(nm, sizeof nm, "gemv7b_gateup_swiglu_M%d", m);  // the fused form the decode step runs
        bench_matmul_fwd_kind(nm, m, D7, F7, 0, 1, 1);
    }

    // ---- memory-bound families (GB/s against the copy ceiling) ----
    bench_rmsnorm("dec", N, D);
    bench_layernorm("vit", NV, CV);
    char shp[96];
    snprintf(shp, sizeof shp, "n=%d x %d (projector)", NP, D);
    bench_act("gelu", ACT_GELU, (size_t)NP * D, shp);
    snprintf(shp, sizeof shp, "n=%d x %d (ViT fc1)", NV, FV);
    bench_act("quick_gelu", ACT_QUICK_GELU, (size_t)NV * FV, shp);
    snprintf(shp, sizeof shp, "n=%d x %d", N, F);
    bench_act("silu", ACT_SILU, (size_t)N * F, shp);
    bench_swiglu(N, F);
    snprintf(shp, sizeof shp, "n=%d x %d (residual)", N, D);
    bench_add((size_t)N * D, shp);
    bench_rope(N, 32, 128, 3 * D, 640);  // q and k heads of the fused qkv rows
    bench_add_broadcast(8, (size_t)577 * CV);
    bench_im2col(8, 3, 336, 336, 14);
    bench_embedding(N, V, D);
    bench_rows(8, 640, 576, D);
    bench_classifier(N, V);
    bench_attention_decode(1, 32, 32, 128, 700, 1024);
    bench_attention_decode(16, 32, 32, 128, 700, 1024);
    bench_rope_kv_append(1, 32, 32, 128, 1024);
    bench_rope_kv_append(16, 32, 32, 128, 1024);
    bench_add_rmsnorm("dec7b_M1", 1, D7);
    bench_add_rmsnorm("dec7b_M16", 16, D7);
    bench_optim(g_opt_n);

    if (json) {
        write_json(json);
        printf("wrote %s (%d records)\n", json, g_nrec);
    }
    if (g_failed) printf("%d bench(es) FAILED their check: no rate reported for them\n", g_failed);
    return g_failed ? 1 : 0;
}
