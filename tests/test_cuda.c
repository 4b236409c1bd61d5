// CUDA backend against the CPU reference (make test-cuda, on the GPU machine; make test-cuda-fp32 for the
// backend built with fp32 activations, VLM_CUDA_FP32).
//
// Every op runs on both backends with the same inputs (random values, rounded to bf16 first in the bf16
// build, fresh each run), outputs of the GPU poisoned with NaN before the call so an unwritten element
// fails, accumulating outputs pre-filled with the same random values on both sides; again on unaligned
// slices (the kernels' scalar paths), with the optional outputs left out, and twice from the same inputs
// where the result must be the same bits (the scatter-adds and the fixed-order reductions). Tolerances (DESIGN.md
// §4, the TOL_* constants below): bf16 outputs within 1e-2 of the output's scale, fp32 statistics within
// 1e-3; in the fp32 build, where the only differences are the order of fp32 roundings, 1e-4 and 1e-5. NaN
// never passes. Then the whole fixture models forward and backward, and `vlm logprobs --device cuda`
// against transformers' values.
#ifdef VLM_CUDA
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../cuda/cuda_backend.h"
#include "../model/clip.h"
#include "../model/generate.h"
#include "../model/llava.h"
#include "../model/safetensors.h"
#include "../model/dinov2.h"
#include "../model/siglip.h"
#include "../util/common.h"
#include "test.h"

static const Backend *GPU(void) { return backend_select("cuda"); }
static const Backend *CPU(void) { return &backend_cpu; }

// The precision the CUDA backend was built with (the CFLAGS carry -DVLM_CUDA_FP32 with the NVCCFLAGS), and
// the tolerances for each. All are relative errors: max |gpu - cpu| / max |cpu| over a buffer (EXPECT_CLOSE)
// unless named _L2 (||gpu - cpu|| / ||cpu||); TOL_LOSS and TOL_TRANSFORMERS relative to the value.
#ifdef VLM_CUDA_FP32
#define GPU_ACT_NAME "fp32"
#define GPU_ACT_BYTES 4
// Inputs are identical on both sides and every op computes in fp32 on both: the differences are the order
// of roundings in sums (about 1e-7 relative per element, ~1e-6 after the longest reductions here), so
// these catch any wrong element, mask or index while leaving two orders of magnitude of headroom.
#define TOL_ACT 1e-4              // act outputs of one op
#define TOL_ACC 1e-5              // fp32 statistics of one op (mean, rstd, lse, log-probs, AdamW moments)
#define TOL_MODEL_LOGITS 1e-3     // whole model, ~10 layers of fp32 ops
#define TOL_MODEL_LOGITS_L2 1e-4
#define TOL_MODEL_GRADS 1e-3
#define TOL_MODEL_GRADS_L2 1e-4
#define TOL_LOSS 1e-4             // a first training loss or a row's log-prob, GPU against CPU
#define TOL_TRANSFORMERS 1e-4     // vlm logprobs --device cuda against transformers (the CPU's own bound)
#define MIN_FIRST_TOKENS 5        // of 5 greedy first tokens equal to transformers' (fixture margins 1e-3)
#else
#define GPU_ACT_NAME "bf16"
#define GPU_ACT_BYTES 2
#define TOL_ACT 1e-2
#define TOL_ACC 1e-3
// bf16 activations are rounded after every op through ~10 layers, so the max-norm relative error grows to
// a few 1e-2 while the L2-relative error stays near 1e-2 for the logits and reaches 4.5e-2 for the vision
// tower's gradients (measured on the H100, notes/perf.md), which pass through every layer of both towers
#define TOL_MODEL_LOGITS 5e-2
#define TOL_MODEL_LOGITS_L2 2e-2
#define TOL_MODEL_GRADS 1e-1
#define TOL_MODEL_GRADS_L2 6e-2
#define TOL_LOSS 2e-2
#define TOL_TRANSFORMERS 2e-2
#define MIN_FIRST_TOKENS 3        // near-ties that bf16 rounding decides otherwise may change a few
#endif

// The build the tests run against, first in the output; the C and CUDA sides must agree on the act type.
TEST(cuda_build_precision) {
    printf("      CUDA backend '%s': %s activations (%d bytes), fp32 statistics\n", GPU()->name, GPU_ACT_NAME,
           GPU()->act_bytes);
    EXPECT_INT_EQ(GPU()->act_bytes, GPU_ACT_BYTES);
}

static unsigned long long seed_state;
static float frand(void) {  // uniform [-1, 1)
    if (!seed_state) seed_state = (unsigned long long)time(NULL) * 2654435761ULL | 1;
    seed_state ^= seed_state << 13;
    seed_state ^= seed_state >> 7;
    seed_state ^= seed_state << 17;
    return (float)((double)(seed_state >> 11) / (double)(1ULL << 53) * 2 - 1);
}

// A tensor present on both backends. acc = accumulator type (fp32 on both). gpu_base: the allocation gpu lies
// in (buf_free frees it); NULL for views of buffers owned elsewhere (the models' logits and gradients).
typedef struct { void *cpu, *gpu; size_t n; int acc; void *gpu_base; } Buf;

// Elements in front of every act buffer made while it is set: with 1, no GPU act pointer is 16-byte aligned,
// so every kernel takes its general (scalar) path, as it must for slices of a buffer at odd offsets.
static size_t slice_pad;

static Buf buf_from(const float *h, size_t n, int acc) {
    Buf b = {NULL, NULL, n, acc, NULL};
    const size_t pad = acc ? 0 : slice_pad;
    b.cpu = CPU()->malloc(n * 4 + 4);
    b.gpu_base = GPU()->malloc((n + pad) * (acc ? GPU()->acc_bytes : GPU()->act_bytes) + 4);
    b.gpu = act_at(GPU(), b.gpu_base, pad);
    if (acc) {
        double *d = xmalloc(sizeof(double) * (n + 1));
        for (size_t i = 0; i < n; i++) d[i] = h[i];
        CPU()->upload_acc(b.cpu, d, n);
        GPU()->upload_acc(b.gpu, d, n);
        free(d);
    } else {
        CPU()->upload_act(b.cpu, h, n);
        GPU()->upload_act(b.gpu, h, n);
    }
    return b;
}

// random values, rounded to bf16 in the bf16 build, so that both backends start from identical numbers
static Buf buf_rand(size_t n, float scale, int acc) {
    float *h = xmalloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) {
        h[i] = frand() * scale;
#ifndef VLM_CUDA_FP32
        h[i] = bf16_to_f32(f32_to_bf16(h[i]));
#endif
    }
    Buf b = buf_from(h, n, acc);
    free(h);
    return b;
}

// output buffer: CPU zero, GPU NaN
static Buf buf_out(size_t n, int acc) {
    float *h = xmalloc(sizeof(float) * (n + 1));
    for (size_t i = 0; i < n; i++) h[i] = NAN;
    Buf b = buf_from(h, n, acc);
    free(h);
    return b;
}

// act buffers owned elsewhere, seen as a Buf to compare them (not to free)
static Buf buf_view(void *cpu, void *gpu, size_t n) {
    Buf b = {cpu, gpu, n, 0, NULL};
    return b;
}

static void buf_free(Buf *b) {
    CPU()->free(b->cpu);
    GPU()->free(b->gpu_base);
}

typedef struct { int *cpu, *gpu; } IBuf;
static IBuf ibuf(const int *h, size_t n) {
    IBuf b;
    b.cpu = CPU()->malloc(sizeof(int) * (n + 1));
    b.gpu = GPU()->malloc(sizeof(int) * (n + 1));
    CPU()->to_device(b.cpu, h, sizeof(int) * n);
    GPU()->to_device(b.gpu, h, sizeof(int) * n);
    return b;
}
static void ibuf_free(IBuf *b) { CPU()->free(b->cpu); GPU()->free(b->gpu); }

// max |gpu - cpu| / max |cpu| over the buffer (NaN gives infinity)
static double buf_err(const Buf *b) {
    float *c = xmalloc(sizeof(float) * (b->n + 1)), *g = xmalloc(sizeof(float) * (b->n + 1));
    if (b->acc) {
        double *d = xmalloc(sizeof(double) * (b->n + 1));
        CPU()->download_acc(d, b->cpu, b->n);
        for (size_t i = 0; i < b->n; i++) c[i] = (float)d[i];
        GPU()->download_acc(d, b->gpu, b->n);
        for (size_t i = 0; i < b->n; i++) g[i] = (float)d[i];
        free(d);
    } else {
        CPU()->download_act(c, b->cpu, b->n);
        GPU()->download_act(g, b->gpu, b->n);
    }
    double num = 0, den = 0;
    for (size_t i = 0; i < b->n; i++) {
        double d = fabs((double)g[i] - c[i]);
        if (isnan(d)) { num = INFINITY; break; }
        if (d > num) num = d;
        if (fabs(c[i]) > den) den = fabs(c[i]);
    }
    free(c); free(g);
    return num / (den > 1e-6 ? den : 1e-6);
}

// ||gpu - cpu|| / ||cpu|| over the buffer
static double buf_err_l2(const Buf *b) {
    float *c = xmalloc(sizeof(float) * (b->n + 1)), *g = xmalloc(sizeof(float) * (b->n + 1));
    CPU()->download_act(c, b->cpu, b->n);
    GPU()->download_act(g, b->gpu, b->n);
    double num = 0, den = 0;
    for (size_t i = 0; i < b->n; i++) { num += ((double)g[i] - c[i]) * ((double)g[i] - c[i]); den += (double)c[i] * c[i]; }
    free(c); free(g);
    return isnan(num) ? INFINITY : sqrt(num / (den > 0 ? den : 1));
}

#define EXPECT_CLOSE(buf, tol, ...) do { double _e = buf_err(&(buf)); \
    if (!(_e <= (tol))) { char _w[160]; snprintf(_w, sizeof(_w), __VA_ARGS__); \
        test_fail(__FILE__, __LINE__, "%s: relative error %.3g > %g", _w, _e, (double)(tol)); } } while (0)

// a copy of a GPU buffer, and whether two GPU buffers hold the same bytes
static void *gpu_dup(const void *src, size_t bytes) {
    void *p = GPU()->malloc(bytes + 4);
    GPU()->copy(p, src, bytes);
    return p;
}
static int gpu_same_bytes(const void *x, const void *y, size_t bytes) {
    char *a = xmalloc(bytes + 1), *b = xmalloc(bytes + 1);
    GPU()->to_host(a, x, bytes);
    GPU()->to_host(b, y, bytes);
    int same = !memcmp(a, b, bytes);
    free(a); free(b);
    return same;
}

// ---------------------------------------------------------------------------------------------------

static void check_matmul(int N, int C, int OC, int bias) {
    Buf x = buf_rand((size_t)N * C, 1, 0), w = buf_rand((size_t)OC * C, 0.5f, 0), b = buf_rand(OC, 1, 0);
    Buf out = buf_out((size_t)N * OC, 0);
    CPU()->matmul_forward(out.cpu, x.cpu, w.cpu, bias ? b.cpu : NULL, N, C, OC);
    GPU()->matmul_forward(out.gpu, x.gpu, w.gpu, bias ? b.gpu : NULL, N, C, OC);
    EXPECT_CLOSE(out, TOL_ACT, "matmul forward %dx%dx%d bias %d", N, C, OC, bias);
    Buf dout = buf_rand((size_t)N * OC, 1, 0), dx = buf_out((size_t)N * C, 0);
    Buf dw = buf_rand((size_t)OC * C, 1, 0), db = buf_rand(OC, 1, 0);  // accumulate onto these
    CPU()->matmul_backward(dx.cpu, dw.cpu, bias ? db.cpu : NULL, dout.cpu, x.cpu, w.cpu, N, C, OC);
    GPU()->matmul_backward(dx.gpu, dw.gpu, bias ? db.gpu : NULL, dout.gpu, x.gpu, w.gpu, N, C, OC);
    EXPECT_CLOSE(dx, TOL_ACT, "matmul dinp %dx%dx%d", N, C, OC);
    EXPECT_CLOSE(dw, TOL_ACT, "matmul dw %dx%dx%d", N, C, OC);
    if (bias) EXPECT_CLOSE(db, TOL_ACT, "matmul db %dx%dx%d", N, C, OC);
    buf_free(&x); buf_free(&w); buf_free(&b); buf_free(&out); buf_free(&dout); buf_free(&dx); buf_free(&dw); buf_free(&db);
}

TEST(cuda_matmul) {
    check_matmul(7, 13, 33, 1);
    check_matmul(1, 1, 1, 1);
    check_matmul(64, 256, 512, 0);
    check_matmul(300, 1024, 4096, 1);
    check_matmul(577, 1024, 3072, 1);
    check_matmul(129, 4096, 1031, 0);
    // the skinny kernel (cuda/gemv.cu): N <= 16, C a multiple of 8 (partial 32-wide k blocks: 1032, 8, 24, 1000),
    // OC not a multiple of its 16-feature strips, one and two tiles of 8 rows; N = 17 on cuBLASLt
    check_matmul(1, 4096, 16384, 0);
    check_matmul(1, 1032, 22017, 1);
    check_matmul(2, 8, 16390, 1);
    check_matmul(3, 2056, 16391, 0);
    check_matmul(4, 520, 32064, 1);
    check_matmul(1, 4096, 4096, 0);
    check_matmul(8, 11008, 4096, 1);
    check_matmul(9, 1000, 515, 1);
    check_matmul(16, 4096, 12288, 0);
    check_matmul(16, 24, 100, 1);
    check_matmul(5, 1024, 512, 1);
    check_matmul(17, 1024, 512, 1);
    check_matmul(17, 40, 24, 0);
    check_matmul(5, 1024, 8, 1);
}

// The skinny kernel splits C the same way whatever N is, so row r of an N-row product is bitwise the product
// of row r alone: what makes a batch's greedy decoding equal batch-of-one decoding. (The fp32 build runs cuBLAS,
// which promises no such thing, so the test belongs to the bf16 build.)
#ifndef VLM_CUDA_FP32
TEST(cuda_skinny_matmul_batch_invariant) {
    const int C = 4096, OC = 1040, N = 16;
    Buf x = buf_rand((size_t)N * C, 1, 0), w = buf_rand((size_t)OC * C, 0.5f, 0), b = buf_rand(OC, 1, 0);
    Buf all = buf_out((size_t)N * OC, 0), one = buf_out(OC, 0);
    GPU()->matmul_forward(all.gpu, x.gpu, w.gpu, b.gpu, N, C, OC);
    float *a = xmalloc(sizeof(float) * N * OC), *r = xmalloc(sizeof(float) * OC);
    GPU()->download_act(a, all.gpu, (size_t)N * OC);
    for (int n = 0; n < N; n += 5) {
        GPU()->matmul_forward(one.gpu, act_at(GPU(), x.gpu, (size_t)n * C), w.gpu, b.gpu, 1, C, OC);
        GPU()->download_act(r, one.gpu, OC);
        EXPECTF(memcmp(r, a + (size_t)n * OC, sizeof(float) * OC) == 0, "row %d of %d differs from the row alone", n, N);
    }
    free(a); free(r);
    buf_free(&x); buf_free(&w); buf_free(&b); buf_free(&all); buf_free(&one);
}
#endif

// matmul_swiglu_forward: the fused skinny kernel (N <= 16) and the matmul + swiglu fallback, against the CPU
static void check_matmul_swiglu(int N, int C, int F, int bias) {
    Buf x = buf_rand((size_t)N * C, 1, 0), w = buf_rand((size_t)2 * F * C, 0.5f, 0), b = buf_rand(2 * F, 1, 0);
    Buf out = buf_out((size_t)N * F, 0), gu = buf_out((size_t)N * 2 * F, 0);
    CPU()->matmul_swiglu_forward(out.cpu, gu.cpu, x.cpu, w.cpu, bias ? b.cpu : NULL, N, C, F);
    GPU()->matmul_swiglu_forward(out.gpu, gu.gpu, x.gpu, w.gpu, bias ? b.gpu : NULL, N, C, F);
    EXPECT_CLOSE(out, TOL_ACT, "matmul_swiglu forward %dx%dx%d bias %d", N, C, F, bias);
    buf_free(&x); buf_free(&w); buf_free(&b); buf_free(&out); buf_free(&gu);
}

TEST(cuda_matmul_swiglu) {
    check_matmul_swiglu(1, 4096, 11008, 0);
    check_matmul_swiglu(3, 1032, 1001, 1);
    check_matmul_swiglu(16, 4096, 11008, 0);
    check_matmul_swiglu(11, 24, 40, 1);
    check_matmul_swiglu(40, 256, 300, 1);  // the fallback
}

static void check_norm(int rms, int N, int C) {
    Buf x = buf_rand((size_t)N * C, 2, 0), w = buf_rand(C, 1, 0), b = buf_rand(C, 1, 0);
    Buf out = buf_out((size_t)N * C, 0), mean = buf_out(N, 1), rstd = buf_out(N, 1);
    if (rms) {
        CPU()->rmsnorm_forward(out.cpu, rstd.cpu, x.cpu, w.cpu, N, C, 1e-5f);
        GPU()->rmsnorm_forward(out.gpu, rstd.gpu, x.gpu, w.gpu, N, C, 1e-5f);
    } else {
        CPU()->layernorm_forward(out.cpu, mean.cpu, rstd.cpu, x.cpu, w.cpu, b.cpu, N, C, 1e-5f);
        GPU()->layernorm_forward(out.gpu, mean.gpu, rstd.gpu, x.gpu, w.gpu, b.gpu, N, C, 1e-5f);
        EXPECT_CLOSE(mean, TOL_ACC, "layernorm mean %dx%d", N, C);
    }
    EXPECT_CLOSE(out, TOL_ACT, "%s forward %dx%d", rms ? "rmsnorm" : "layernorm", N, C);
    EXPECT_CLOSE(rstd, TOL_ACC, "%s rstd %dx%d", rms ? "rmsnorm" : "layernorm", N, C);
    Buf dout = buf_rand((size_t)N * C, 1, 0), dx = buf_rand((size_t)N * C, 1, 0);  // dinp accumulates
    Buf dw = buf_rand(C, 1, 0), db = buf_rand(C, 1, 0);
    if (rms) {
        CPU()->rmsnorm_backward(dx.cpu, dw.cpu, dout.cpu, x.cpu, w.cpu, rstd.cpu, N, C);
        GPU()->rmsnorm_backward(dx.gpu, dw.gpu, dout.gpu, x.gpu, w.gpu, rstd.gpu, N, C);
    } else {
        CPU()->layernorm_backward(dx.cpu, dw.cpu, db.cpu, dout.cpu, x.cpu, w.cpu, mean.cpu, rstd.cpu, N, C);
        GPU()->layernorm_backward(dx.gpu, dw.gpu, db.gpu, dout.gpu, x.gpu, w.gpu, mean.gpu, rstd.gpu, N, C);
        EXPECT_CLOSE(db, TOL_ACT, "layernorm db %dx%d", N, C);
    }
    EXPECT_CLOSE(dx, TOL_ACT, "%s dinp %dx%d", rms ? "rmsnorm" : "layernorm", N, C);
    EXPECT_CLOSE(dw, TOL_ACT, "%s dw %dx%d", rms ? "rmsnorm" : "layernorm", N, C);
    buf_free(&x); buf_free(&w); buf_free(&b); buf_free(&out); buf_free(&mean); buf_free(&rstd);
    buf_free(&dout); buf_free(&dx); buf_free(&dw); buf_free(&db);
}

TEST(cuda_norms) {
    // odd sizes, the models' widths, rows wider than one pass of a block (5000 to 30000 columns), many rows
    int shapes[][2] = {{7, 13}, {1, 1}, {64, 1024}, {333, 4096}, {2, 33}, {3, 5000}, {4, 10000}, {2, 30000},
                       {2000, 256}};
    for (int i = 0; i < 9; i++)
        for (int rms = 0; rms < 2; rms++) check_norm(rms, shapes[i][0], shapes[i][1]);
}

// the activations forward and backward, add (also in place: out = b) and scale over n elements
static void check_elementwise(size_t n) {
    const ActKind kinds[] = {ACT_GELU, ACT_QUICK_GELU, ACT_SILU, ACT_GELU_TANH};
    for (int k = 0; k < 4; k++) {
        Buf x = buf_rand(n, 4, 0), y = buf_out(n, 0), g = buf_rand(n, 1, 0), dx = buf_out(n, 0);
        CPU()->act_forward(kinds[k], y.cpu, x.cpu, n);
        GPU()->act_forward(kinds[k], y.gpu, x.gpu, n);
        EXPECT_CLOSE(y, TOL_ACT, "act %d forward n=%zu", k, n);
        CPU()->act_backward(kinds[k], dx.cpu, g.cpu, x.cpu, n);
        GPU()->act_backward(kinds[k], dx.gpu, g.gpu, x.gpu, n);
        EXPECT_CLOSE(dx, TOL_ACT, "act %d backward n=%zu", k, n);
        buf_free(&x); buf_free(&y); buf_free(&g); buf_free(&dx);
    }
    Buf a = buf_rand(n, 1, 0), b = buf_rand(n, 1, 0), o = buf_out(n, 0);
    CPU()->add(o.cpu, a.cpu, b.cpu, n);
    GPU()->add(o.gpu, a.gpu, b.gpu, n);
    EXPECT_CLOSE(o, TOL_ACT, "add n=%zu", n);
    CPU()->scale(o.cpu, 0.37f, n);
    GPU()->scale(o.gpu, 0.37f, n);
    EXPECT_CLOSE(o, TOL_ACT, "scale n=%zu", n);
    CPU()->add(b.cpu, a.cpu, b.cpu, n);
    GPU()->add(b.gpu, a.gpu, b.gpu, n);
    EXPECT_CLOSE(b, TOL_ACT, "add in place (out = b) n=%zu", n);
    buf_free(&a); buf_free(&b); buf_free(&o);
}

static void check_swiglu(int N, int F) {
    Buf x = buf_rand((size_t)N * 2 * F, 3, 0), y = buf_out((size_t)N * F, 0), g = buf_rand((size_t)N * F, 1, 0);
    Buf dx = buf_out((size_t)N * 2 * F, 0);
    CPU()->swiglu_forward(y.cpu, x.cpu, N, F);
    GPU()->swiglu_forward(y.gpu, x.gpu, N, F);
    EXPECT_CLOSE(y, TOL_ACT, "swiglu forward %dx%d", N, F);
    CPU()->swiglu_backward(dx.cpu, g.cpu, x.cpu, N, F);
    GPU()->swiglu_backward(dx.gpu, g.gpu, x.gpu, N, F);
    EXPECT_CLOSE(dx, TOL_ACT, "swiglu backward %dx%d", N, F);
    buf_free(&x); buf_free(&y); buf_free(&g); buf_free(&dx);
}

// DINOv2's layer scale: out = inp * s per channel; dinp = dout * s, ds += column sums of dout * inp (also in place)
static void check_channel_scale(int N, int C) {
    const size_t n = (size_t)N * C;
    Buf x = buf_rand(n, 2, 0), s = buf_rand(C, 1, 0), y = buf_out(n, 0), g = buf_rand(n, 1, 0), dx = buf_out(n, 0);
    Buf ds = buf_rand(C, 1, 0);
    CPU()->channel_scale_forward(y.cpu, x.cpu, s.cpu, N, C);
    GPU()->channel_scale_forward(y.gpu, x.gpu, s.gpu, N, C);
    EXPECT_CLOSE(y, TOL_ACT, "channel_scale forward %dx%d", N, C);
    CPU()->channel_scale_backward(dx.cpu, ds.cpu, g.cpu, x.cpu, s.cpu, N, C);
    GPU()->channel_scale_backward(dx.gpu, ds.gpu, g.gpu, x.gpu, s.gpu, N, C);
    EXPECT_CLOSE(dx, TOL_ACT, "channel_scale backward dinp %dx%d", N, C);
    EXPECT_CLOSE(ds, TOL_ACT, "channel_scale backward ds %dx%d", N, C);
    CPU()->channel_scale_backward(g.cpu, ds.cpu, g.cpu, x.cpu, s.cpu, N, C);
    GPU()->channel_scale_backward(g.gpu, ds.gpu, g.gpu, x.gpu, s.gpu, N, C);
    EXPECT_CLOSE(g, TOL_ACT, "channel_scale backward in place %dx%d", N, C);
    EXPECT_CLOSE(ds, TOL_ACT, "channel_scale backward in place ds %dx%d", N, C);
    // either output alone (model/ops.h: NULL is "not needed"), the other left as it was
    CPU()->channel_scale_backward(NULL, ds.cpu, g.cpu, x.cpu, s.cpu, N, C);
    GPU()->channel_scale_backward(NULL, ds.gpu, g.gpu, x.gpu, s.gpu, N, C);
    EXPECT_CLOSE(ds, TOL_ACT, "channel_scale backward ds alone %dx%d", N, C);
    CPU()->channel_scale_backward(dx.cpu, NULL, g.cpu, x.cpu, s.cpu, N, C);
    GPU()->channel_scale_backward(dx.gpu, NULL, g.gpu, x.gpu, s.gpu, N, C);
    EXPECT_CLOSE(dx, TOL_ACT, "channel_scale backward dinp alone %dx%d", N, C);
    EXPECT_CLOSE(ds, TOL_ACT, "channel_scale backward ds untouched %dx%d", N, C);
    buf_free(&x); buf_free(&s); buf_free(&y); buf_free(&g); buf_free(&dx); buf_free(&ds);
}

TEST(cuda_elementwise) {
    size_t sizes[] = {1, 7, 1000, 65537, 1 << 20};
    for (int s = 0; s < 5; s++) check_elementwise(sizes[s]);
    check_swiglu(3, 5);
    check_swiglu(64, 5632);
    check_swiglu(7, 11008);
    check_channel_scale(5, 7);       // channels not a multiple of 8: the scalar path
    check_channel_scale(257, 1024);  // DINOv2-large's width: 128-bit accesses
}

// rope forward then backward over N rows of `heads` heads at a row stride, positions in [0, max_pos)
static void check_rope(int N, int heads, int HD, int stride, int max_pos, float theta) {
    int *pos = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) pos[i] = (int)(((long long)i * 7919 + 13) % max_pos);
    IBuf p = ibuf(pos, N);
    Buf x = buf_rand((size_t)N * stride, 1, 0);
    CPU()->rope_forward(x.cpu, p.cpu, N, heads, HD, stride, theta);
    GPU()->rope_forward(x.gpu, p.gpu, N, heads, HD, stride, theta);
    EXPECT_CLOSE(x, TOL_ACT, "rope forward N=%d HD=%d theta %g", N, HD, theta);
    CPU()->rope_backward(x.cpu, p.cpu, N, heads, HD, stride, theta);
    GPU()->rope_backward(x.gpu, p.gpu, N, heads, HD, stride, theta);
    EXPECT_CLOSE(x, TOL_ACT, "rope backward N=%d HD=%d theta %g", N, HD, theta);
    buf_free(&x); ibuf_free(&p); free(pos);
}

TEST(cuda_rope) {
    check_rope(5, 3, 8, 28, 700, 10000.0f);
    check_rope(640, 24, 128, 24 * 128 + 64, 700, 10000.0f);
    check_rope(33, 6, 12, 100, 700, 10000.0f);
    check_rope(9, 3, 64, 3 * 64 + 5, 4000, 500000.0f);  // long positions, LLaMA-3's theta, spare columns
}

// Attention with q, k, v as slices of one fused buffer, as the models call it.
static void check_attention(const char *impl, int B, int T, int NH, int NKV, int HD, int causal, int pad, int segs) {
    cuda_attention_select(impl);
    int qd = NH * HD, kd = NKV * HD, stride = qd + 2 * kd;
    int *kv_len = xmalloc(sizeof(int) * B), *seg = xmalloc(sizeof(int) * B * T);
    for (int b = 0; b < B; b++) kv_len[b] = pad ? T - (b * 5) % (T / 2 + 1) : T;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) seg[b * T + t] = t < T / 2 ? 0 : 1 + (t % 3 == 0);
    IBuf kl = ibuf(kv_len, B), sg = ibuf(seg, (size_t)B * T);
    AttnShape sc = {B, T, NH, NKV, HD, stride, stride, causal, pad ? kl.cpu : NULL, segs ? sg.cpu : NULL, NULL, 0};
    AttnShape sgp = sc;
    sgp.kv_len = pad ? kl.gpu : NULL;
    sgp.segment = segs ? sg.gpu : NULL;
    size_t N = (size_t)B * T;
    Buf qkv = buf_rand(N * stride, 1.5f, 0), out = buf_out(N * qd, 0), lse = buf_out((size_t)B * NH * T, 1);
    const Backend *c = CPU(), *g = GPU();
    c->attention_forward(out.cpu, lse.cpu, qkv.cpu, act_at(c, qkv.cpu, qd), act_at(c, qkv.cpu, qd + kd), &sc);
    g->attention_forward(out.gpu, lse.gpu, qkv.gpu, act_at(g, qkv.gpu, qd), act_at(g, qkv.gpu, qd + kd), &sgp);
    EXPECT_CLOSE(out, TOL_ACT, "%s attention forward B%d T%d H%d/%d HD%d causal %d pad %d seg %d", impl, B, T, NH, NKV, HD, causal, pad, segs);
    EXPECT_CLOSE(lse, TOL_ACC, "%s attention lse T%d HD%d", impl, T, HD);
    // backward from the CPU's forward outputs so both start from identical numbers
    float *hout = xmalloc(sizeof(float) * N * qd);
    double *hlse = xmalloc(sizeof(double) * B * NH * T);
    c->download_act(hout, out.cpu, N * qd);
    g->upload_act(out.gpu, hout, N * qd);
    c->download_acc(hlse, lse.cpu, (size_t)B * NH * T);
    g->upload_acc(lse.gpu, hlse, (size_t)B * NH * T);
    Buf dout = buf_rand(N * qd, 1, 0), dqkv = buf_out(N * stride, 0);
    c->attention_backward(dqkv.cpu, act_at(c, dqkv.cpu, qd), act_at(c, dqkv.cpu, qd + kd), dout.cpu, out.cpu, lse.cpu,
                          qkv.cpu, act_at(c, qkv.cpu, qd), act_at(c, qkv.cpu, qd + kd), &sc);
    // the gaps between q, k and v columns of the fused buffer are all written; fill nothing else
    g->attention_backward(dqkv.gpu, act_at(g, dqkv.gpu, qd), act_at(g, dqkv.gpu, qd + kd), dout.gpu, out.gpu, lse.gpu,
                          qkv.gpu, act_at(g, qkv.gpu, qd), act_at(g, qkv.gpu, qd + kd), &sgp);
    EXPECT_CLOSE(dqkv, 2 * TOL_ACT, "%s attention backward B%d T%d H%d/%d HD%d causal %d pad %d seg %d", impl, B, T, NH, NKV, HD, causal, pad, segs);
    buf_free(&qkv); buf_free(&out); buf_free(&lse); buf_free(&dout); buf_free(&dqkv);
    ibuf_free(&kl); ibuf_free(&sg); free(kv_len); free(seg); free(hout); free(hlse);
}

static void attention_suite(const char *impl) {
    check_attention(impl, 2, 5, 2, 2, 4, 0, 0, 0);      // tiny, generic head dim
    check_attention(impl, 2, 37, 4, 2, 12, 1, 1, 0);    // odd T, GQA, padding
    check_attention(impl, 2, 23, 2, 2, 8, 1, 0, 1);     // segments (packed rows)
    check_attention(impl, 2, 77, 4, 4, 64, 1, 0, 0);    // CLIP text shape
    check_attention(impl, 1, 257, 16, 16, 64, 0, 0, 0); // ViT (bidirectional)
    check_attention(impl, 2, 200, 8, 2, 128, 1, 1, 0);  // decoder, GQA, padding, partial tiles
    check_attention(impl, 1, 640, 16, 16, 128, 1, 0, 0);
}

// The layout of SigLIP's pooling head (model/vit.c): q (B*T rows at stride C, only row b*T of each image read,
// q_rows), k and v from one (B*T, 2C) buffer, no mask. Compared on the rows read; the backward's output gradient
// is zero elsewhere, as the contract asks of the caller.
static void check_attention_probe(const char *impl, int B, int T, int NH, int HD) {
    cuda_attention_select(impl);
    const int C = NH * HD;
    const size_t N = (size_t)B * T;
    int *rows = xmalloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) rows[b] = b * T;
    IBuf qr = ibuf(rows, B);
    AttnShape sc = {B, T, NH, NH, HD, C, 2 * C, 0, NULL, NULL, qr.cpu, B}, sg = sc;
    sg.q_rows = qr.gpu;
    Buf q = buf_rand(N * C, 1.5f, 0), kv = buf_rand(N * 2 * C, 1.5f, 0), out = buf_out(N * C, 0), lse = buf_out((size_t)B * NH * T, 1);
    const Backend *c = CPU(), *g = GPU();
    c->attention_forward(out.cpu, lse.cpu, q.cpu, kv.cpu, act_at(c, kv.cpu, C), &sc);
    g->attention_forward(out.gpu, lse.gpu, q.gpu, kv.gpu, act_at(g, kv.gpu, C), &sg);
    float *oc = xmalloc(sizeof(float) * N * C), *og = xmalloc(sizeof(float) * N * C), *dh = xcalloc(N * C, sizeof(float));
    c->download_act(oc, out.cpu, N * C);
    g->download_act(og, out.gpu, N * C);
    double num = 0, den = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < C; i++) {
            const size_t k = (size_t)rows[b] * C + i;
            num = fmax(num, isnan(og[k]) ? INFINITY : fabs(og[k] - oc[k]));
            den = fmax(den, fabs(oc[k]));
            dh[k] = frand();
#ifndef VLM_CUDA_FP32
            dh[k] = bf16_to_f32(f32_to_bf16(dh[k]));
#endif
        }
    EXPECTF(num / fmax(den, 1e-6) <= TOL_ACT, "%s probe attention forward B%d T%d H%d HD%d: relative error %.3g", impl, B, T, NH, HD,
            num / fmax(den, 1e-6));
    // backward from the CPU's forward outputs, the output gradient on the probe rows only
    g->upload_act(out.gpu, oc, N * C);
    double *hl = xmalloc(sizeof(double) * B * NH * T);
    c->download_acc(hl, lse.cpu, (size_t)B * NH * T);
    g->upload_acc(lse.gpu, hl, (size_t)B * NH * T);
    Buf dout = buf_from(dh, N * C, 0), dq = buf_out(N * C, 0), dkv = buf_out(N * 2 * C, 0);
    c->attention_backward(dq.cpu, dkv.cpu, act_at(c, dkv.cpu, C), dout.cpu, out.cpu, lse.cpu, q.cpu, kv.cpu, act_at(c, kv.cpu, C), &sc);
    g->attention_backward(dq.gpu, dkv.gpu, act_at(g, dkv.gpu, C), dout.gpu, out.gpu, lse.gpu, q.gpu, kv.gpu, act_at(g, kv.gpu, C), &sg);
    EXPECT_CLOSE(dkv, 2 * TOL_ACT, "%s probe attention dk, dv B%d T%d H%d HD%d", impl, B, T, NH, HD);
    EXPECT_CLOSE(dq, 2 * TOL_ACT, "%s probe attention dq B%d T%d H%d HD%d", impl, B, T, NH, HD);
    buf_free(&q); buf_free(&kv); buf_free(&out); buf_free(&lse); buf_free(&dout); buf_free(&dq); buf_free(&dkv);
    ibuf_free(&qr); free(rows); free(oc); free(og); free(dh); free(hl);
}

TEST(cuda_attention_flash) {
    attention_suite("flash");
    check_attention_probe("flash", 3, 16, 4, 8);     // the siglip_vision fixture's head
    check_attention_probe("flash", 2, 729, 16, 72);  // SigLIP-so400m's head: 27 x 27 tokens, head dim 72
}
TEST(cuda_attention_cudnn) {
    AttnShape probe = {1, 640, 16, 16, 128, 3 * 2048, 3 * 2048, 1, NULL, NULL, NULL, 0};
#ifdef VLM_CUDA_FP32
    // cuDNN's SDPA takes bf16 only: asking for it runs flash (with a notice), and the results hold
    EXPECTF(!cudnn_attention_supported(&probe), "the fp32 build claims cuDNN attention");
    attention_suite("cudnn");
    EXPECTF(!strcmp(cuda_attention_selected(), "flash"), "the fp32 build selected %s attention", cuda_attention_selected());
#else
    EXPECTF(cudnn_attention_supported(&probe), "cuDNN attention is not available in this build");
    attention_suite("cudnn");  // shapes cuDNN does not cover fall back to flash inside
    check_attention_probe("cudnn", 2, 729, 16, 72);
#endif
    cuda_attention_select("flash");
}

// targets: some -1 (masked), the first the last class
static void check_logprob(int N, int V) {
    int *t = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) t[i] = i % 4 == 1 ? -1 : (i * 7919) % V;
    t[0] = V - 1;
    IBuf tg = ibuf(t, N);
    Buf logits = buf_rand((size_t)N * V, 5, 0), logp = buf_out(N, 1), lse = buf_out(N, 1), dlogp = buf_rand(N, 1, 1);
    CPU()->logprob_forward(logp.cpu, lse.cpu, logits.cpu, tg.cpu, N, V);
    GPU()->logprob_forward(logp.gpu, lse.gpu, logits.gpu, tg.gpu, N, V);
    EXPECT_CLOSE(logp, TOL_ACC, "logprob forward %dx%d", N, V);
    EXPECT_CLOSE(lse, TOL_ACC, "logprob lse %dx%d", N, V);
    CPU()->logprob_backward(logits.cpu, logits.cpu, lse.cpu, tg.cpu, dlogp.cpu, N, V);  // in place
    GPU()->logprob_backward(logits.gpu, logits.gpu, lse.gpu, tg.gpu, dlogp.gpu, N, V);
    EXPECT_CLOSE(logits, TOL_ACT, "logprob backward %dx%d", N, V);
    buf_free(&logits); buf_free(&logp); buf_free(&lse); buf_free(&dlogp); ibuf_free(&tg); free(t);
}

TEST(cuda_logprob) {
    int cases[][2] = {{5, 11}, {64, 32064}, {9, 49408}, {3, 80}, {7, 13}, {7, 96}};
    for (int c = 0; c < 6; c++) check_logprob(cases[c][0], cases[c][1]);
}

// embedding forward and backward (ids with many repeats and -1s), add_rows (repeated destinations), copy_rows
// gathering and scattering, and the identity forms of both (NULL index lists); N ids into a V-row table
static void check_rows(int V, int C, int N) {
    const int R = V < 17 ? V : 17;  // ids from the first R rows: many repeats
    int *ids = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) ids[i] = i % 11 == 0 ? -1 : (i * 31) % R;
    IBuf id = ibuf(ids, N);
    Buf table = buf_rand((size_t)V * C, 1, 0), out = buf_out((size_t)N * C, 0), dtable = buf_rand((size_t)V * C, 1, 0);
    Buf g = buf_rand((size_t)N * C, 1, 0);
    CPU()->embedding_forward(out.cpu, id.cpu, table.cpu, N, C);
    GPU()->embedding_forward(out.gpu, id.gpu, table.gpu, N, C);
    EXPECT_CLOSE(out, TOL_ACT, "embedding forward V%d C%d N%d", V, C, N);
    CPU()->embedding_backward(dtable.cpu, g.cpu, id.cpu, N, C);
    GPU()->embedding_backward(dtable.gpu, g.gpu, id.gpu, N, C);
    EXPECT_CLOSE(dtable, TOL_ACT, "embedding backward V%d C%d N%d", V, C, N);
    // M = N / 2 rows: into 40 rows (repeated destinations), gathered, scattered to distinct rows 2m + 1 < N
    const int M = N / 2, D = 40;
    int *oi = xmalloc(sizeof(int) * M), *ii = xmalloc(sizeof(int) * M), *perm = xmalloc(sizeof(int) * M);
    for (int m = 0; m < M; m++) { oi[m] = (m * 13) % D; ii[m] = (m * 7) % N; perm[m] = 2 * m + 1; }
    IBuf o = ibuf(oi, M), in = ibuf(ii, M), pm = ibuf(perm, M);
    Buf dst = buf_rand((size_t)D * C, 1, 0), dst_id = buf_rand((size_t)M * C, 1, 0);
    CPU()->add_rows(dst.cpu, o.cpu, out.cpu, in.cpu, M, C);
    GPU()->add_rows(dst.gpu, o.gpu, out.gpu, in.gpu, M, C);
    EXPECT_CLOSE(dst, TOL_ACT, "add_rows M%d C%d", M, C);
    CPU()->add_rows(dst_id.cpu, NULL, out.cpu, in.cpu, M, C);
    GPU()->add_rows(dst_id.gpu, NULL, out.gpu, in.gpu, M, C);
    EXPECT_CLOSE(dst_id, TOL_ACT, "add_rows identity destinations M%d C%d", M, C);
    Buf gath = buf_out((size_t)M * C, 0), sc = buf_rand((size_t)N * C, 1, 0), cp = buf_out((size_t)M * C, 0);
    CPU()->copy_rows(gath.cpu, NULL, out.cpu, in.cpu, M, C);
    GPU()->copy_rows(gath.gpu, NULL, out.gpu, in.gpu, M, C);
    EXPECT_CLOSE(gath, 0, "copy_rows gather M%d C%d", M, C);
    CPU()->copy_rows(sc.cpu, pm.cpu, gath.cpu, NULL, M, C);
    GPU()->copy_rows(sc.gpu, pm.gpu, gath.gpu, NULL, M, C);
    EXPECT_CLOSE(sc, 0, "copy_rows scatter M%d C%d", M, C);
    CPU()->copy_rows(cp.cpu, NULL, g.cpu, NULL, M, C);
    GPU()->copy_rows(cp.gpu, NULL, g.gpu, NULL, M, C);
    EXPECT_CLOSE(cp, 0, "copy_rows identity M%d C%d", M, C);
    buf_free(&table); buf_free(&out); buf_free(&dtable); buf_free(&g); buf_free(&dst); buf_free(&dst_id);
    buf_free(&gath); buf_free(&sc); buf_free(&cp);
    ibuf_free(&id); ibuf_free(&o); ibuf_free(&in); ibuf_free(&pm);
    free(ids); free(oi); free(ii); free(perm);
}

// x (B, M) += y (M) broadcast over B rows, and dy (M) += the column sums of dx
static void check_add_broadcast(int B, size_t M) {
    Buf x = buf_rand(B * M, 1, 0), y = buf_rand(M, 1, 0), dy = buf_rand(M, 1, 0);
    CPU()->add_broadcast_forward(x.cpu, y.cpu, B, M);
    GPU()->add_broadcast_forward(x.gpu, y.gpu, B, M);
    EXPECT_CLOSE(x, TOL_ACT, "add_broadcast forward B%d M%zu", B, M);
    CPU()->add_broadcast_backward(dy.cpu, x.cpu, B, M);
    GPU()->add_broadcast_backward(dy.gpu, x.gpu, B, M);
    EXPECT_CLOSE(dy, TOL_ACT, "add_broadcast backward B%d M%zu", B, M);
    buf_free(&x); buf_free(&y); buf_free(&dy);
}

// pixels (B, Cin, H, W) into patch rows (B * H/P * W/P, Cin * P * P): exact copies
static void check_im2col(int B, int Cin, int H, int W, int P) {
    Buf px = buf_rand((size_t)B * Cin * H * W, 1, 0), col = buf_out((size_t)B * (H / P) * (W / P) * Cin * P * P, 0);
    CPU()->im2col(col.cpu, px.cpu, B, Cin, H, W, P);
    GPU()->im2col(col.gpu, px.gpu, B, Cin, H, W, P);
    EXPECT_CLOSE(col, 0, "im2col B%d Cin%d %dx%d P%d", B, Cin, H, W, P);
    buf_free(&px); buf_free(&col);
}

TEST(cuda_embeddings_and_rows) {
    check_rows(97, 130, 300);
    check_rows(5, 7, 13);            // fewer table rows than ids
    check_rows(4000, 1024, 2000);    // wide rows: the 128-bit path, many blocks
    check_add_broadcast(5, 77 * 33); // position embeddings
    check_im2col(2, 3, 28, 21, 7);
    check_im2col(2, 3, 28, 30, 14);
}

TEST(cuda_lora_ops) {
    int N = 37, C = 24, os = 101, is = 30;
    Buf out = buf_rand((size_t)N * os, 1, 0), inp = buf_rand((size_t)N * is, 1, 0);
    CPU()->add_strided(act_at(CPU(), out.cpu, 5), os, inp.cpu, is, N, C, 0.5f);
    GPU()->add_strided(act_at(GPU(), out.gpu, 5), os, inp.gpu, is, N, C, 0.5f);
    EXPECT_CLOSE(out, TOL_ACT, "add_strided");
    size_t n = 100003;
    Buf x = buf_rand(n, 1, 0), y = buf_out(n, 0);
    CPU()->dropout(y.cpu, x.cpu, n, 0.3f, 1234);
    GPU()->dropout(y.gpu, x.gpu, n, 0.3f, 1234);
    EXPECT_CLOSE(y, TOL_ACT, "dropout (the same mask on both)");
    buf_free(&out); buf_free(&inp); buf_free(&x); buf_free(&y);
}

// `steps` AdamW steps over n parameters. use_master: as training runs it (train/optim.c): in bf16 the GPU keeps an
// fp32 master copy, which must equal the CPU's fp32 parameters; without (and in the fp32 build) the act
// parameters are updated in place.
static void check_adamw(size_t n, int use_master, int steps) {
    Buf g = buf_rand(n, 1, 0), p = buf_rand(n, 1, 0), m = buf_out(n, 1), v = buf_out(n, 1);
    float *hp = xmalloc(sizeof(float) * n);
    CPU()->download_act(hp, p.cpu, n);
    double *hpd = xmalloc(sizeof(double) * n);
    for (size_t i = 0; i < n; i++) hpd[i] = hp[i];
    void *gmaster = NULL;
    if (use_master && GPU()->act_bytes < GPU()->acc_bytes) {
        gmaster = GPU()->malloc(n * 4);
        GPU()->upload_acc(gmaster, hpd, n);
    }
    CPU()->zero(m.cpu, n * 4); CPU()->zero(v.cpu, n * 4);
    GPU()->zero(m.gpu, n * 4); GPU()->zero(v.gpu, n * 4);
    for (int t = 1; t <= steps; t++) {
        CPU()->adamw_update(p.cpu, NULL, g.cpu, m.cpu, v.cpu, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.02f, t, 0.5f);
        GPU()->adamw_update(p.gpu, gmaster, g.gpu, m.gpu, v.gpu, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.02f, t, 0.5f);
    }
    EXPECT_CLOSE(m, TOL_ACC, "adamw m n%zu master %d", n, use_master);
    EXPECT_CLOSE(v, TOL_ACC, "adamw v n%zu master %d", n, use_master);
    EXPECT_CLOSE(p, TOL_ACT, "adamw params n%zu master %d", n, use_master);
    if (gmaster) {
        double *gm = xmalloc(sizeof(double) * n);
        float *cp = xmalloc(sizeof(float) * n);
        GPU()->download_acc(gm, gmaster, n);
        CPU()->download_act(cp, p.cpu, n);
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(gm[i] - cp[i]));
        EXPECTF(worst < 1e-5, "adamw master weights differ from the fp32 reference by %g", worst);
        GPU()->free(gmaster);
        free(gm); free(cp);
    }
    buf_free(&g); buf_free(&p); buf_free(&m); buf_free(&v);
    free(hp); free(hpd);
}

TEST(cuda_optimizer) {
    size_t n = 100003;
    Buf g = buf_rand(n, 1, 0);
    double sc, sg;
    CPU()->sumsq(&sc, g.cpu, n);
    GPU()->sumsq(&sg, g.gpu, n);
    EXPECT_NEAR(sg, sc, 1e-5);
    buf_free(&g);
    check_adamw(n, 1, 3);
}

// ------------------------------------------------------------------------ unaligned, optional outputs, repeats

// Every family again on buffers that start one element past an aligned address: the general paths the
// 128-bit kernels fall back to for slices at odd offsets.
TEST(cuda_unaligned_slices) {
    slice_pad = 1;
    check_matmul(16, 64, 64, 1);
    check_matmul(5, 1024, 512, 1);  // a skinny kernel's shape, but unaligned rows: cuBLAS
    check_norm(0, 7, 64);
    check_norm(1, 7, 64);
    check_elementwise(13);
    check_elementwise(4099);
    check_swiglu(9, 64);
    check_channel_scale(9, 64);
    check_rope(9, 3, 64, 3 * 64 + 5, 4000, 10000.0f);
    check_logprob(5, 96);
    check_rows(100, 33, 40);
    check_add_broadcast(3, 64 * 8);
    check_im2col(1, 3, 14, 14, 7);
    check_adamw(4099, 1, 1);
    slice_pad = 0;
}

// Any NULL gradient pointer means "not needed" (model/ops.h): each output of the backward ops alone. The ones
// not asked for must be left as they were (accumulating outputs start equal on both sides, so any write shows).
static void check_backward_outputs(int N, int C, int OC) {
    Buf x = buf_rand((size_t)N * C, 1, 0), w = buf_rand((size_t)OC * C, 0.5f, 0), dout = buf_rand((size_t)N * OC, 1, 0);
    Buf xn = buf_rand((size_t)N * C, 2, 0), wn = buf_rand(C, 1, 0), bn = buf_rand(C, 1, 0);
    Buf gn = buf_rand((size_t)N * C, 1, 0);
    Buf yn = buf_out((size_t)N * C, 0), mean = buf_out(N, 1), rstd = buf_out(N, 1), rrstd = buf_out(N, 1);
    CPU()->layernorm_forward(yn.cpu, mean.cpu, rstd.cpu, xn.cpu, wn.cpu, bn.cpu, N, C, 1e-5f);
    GPU()->layernorm_forward(yn.gpu, mean.gpu, rstd.gpu, xn.gpu, wn.gpu, bn.gpu, N, C, 1e-5f);
    CPU()->rmsnorm_forward(yn.cpu, rrstd.cpu, xn.cpu, wn.cpu, N, C, 1e-5f);
    GPU()->rmsnorm_forward(yn.gpu, rrstd.gpu, xn.gpu, wn.gpu, N, C, 1e-5f);
    for (int only = 0; only < 3; only++) {  // 0: the input gradient, 1: the weight gradient, 2: the bias gradient
        Buf dx = buf_rand((size_t)N * C, 1, 0), dw = buf_rand((size_t)OC * C, 1, 0), db = buf_rand(OC, 1, 0);
        CPU()->matmul_backward(only == 0 ? dx.cpu : NULL, only == 1 ? dw.cpu : NULL, only == 2 ? db.cpu : NULL,
                               dout.cpu, x.cpu, w.cpu, N, C, OC);
        GPU()->matmul_backward(only == 0 ? dx.gpu : NULL, only == 1 ? dw.gpu : NULL, only == 2 ? db.gpu : NULL,
                               dout.gpu, x.gpu, w.gpu, N, C, OC);
        EXPECT_CLOSE(dx, TOL_ACT, "matmul backward, only output %d: dinp %dx%dx%d", only, N, C, OC);
        EXPECT_CLOSE(dw, TOL_ACT, "matmul backward, only output %d: dw %dx%dx%d", only, N, C, OC);
        EXPECT_CLOSE(db, TOL_ACT, "matmul backward, only output %d: db %dx%dx%d", only, N, C, OC);
        buf_free(&dx); buf_free(&dw); buf_free(&db);
    }
    for (int only = 0; only < 2; only++) {  // 0: dinp alone, 1: the weight (and bias) gradients alone
        Buf dx = buf_rand((size_t)N * C, 1, 0), dw = buf_rand(C, 1, 0), db = buf_rand(C, 1, 0);
        CPU()->layernorm_backward(only ? NULL : dx.cpu, only ? dw.cpu : NULL, only ? db.cpu : NULL, gn.cpu, xn.cpu,
                                  wn.cpu, mean.cpu, rstd.cpu, N, C);
        GPU()->layernorm_backward(only ? NULL : dx.gpu, only ? dw.gpu : NULL, only ? db.gpu : NULL, gn.gpu, xn.gpu,
                                  wn.gpu, mean.gpu, rstd.gpu, N, C);
        EXPECT_CLOSE(dx, TOL_ACT, "layernorm backward, only %s: dinp %dx%d", only ? "dw, db" : "dinp", N, C);
        EXPECT_CLOSE(dw, TOL_ACT, "layernorm backward, only %s: dw %dx%d", only ? "dw, db" : "dinp", N, C);
        EXPECT_CLOSE(db, TOL_ACT, "layernorm backward, only %s: db %dx%d", only ? "dw, db" : "dinp", N, C);
        CPU()->rmsnorm_backward(only ? NULL : dx.cpu, only ? dw.cpu : NULL, gn.cpu, xn.cpu, wn.cpu, rrstd.cpu, N, C);
        GPU()->rmsnorm_backward(only ? NULL : dx.gpu, only ? dw.gpu : NULL, gn.gpu, xn.gpu, wn.gpu, rrstd.gpu, N, C);
        EXPECT_CLOSE(dx, TOL_ACT, "rmsnorm backward, only %s: dinp %dx%d", only ? "dw" : "dinp", N, C);
        EXPECT_CLOSE(dw, TOL_ACT, "rmsnorm backward, only %s: dw %dx%d", only ? "dw" : "dinp", N, C);
        buf_free(&dx); buf_free(&dw); buf_free(&db);
    }
    buf_free(&x); buf_free(&w); buf_free(&dout); buf_free(&xn); buf_free(&wn); buf_free(&bn); buf_free(&gn);
    buf_free(&yn); buf_free(&mean); buf_free(&rstd); buf_free(&rrstd);
}

TEST(cuda_optional_outputs) {
    check_backward_outputs(7, 13, 33);
    check_backward_outputs(64, 256, 512);
    // AdamW with no master copy: the act parameters updated in place (in bf16, not how training runs it)
    check_adamw(4099, 0, 1);
}

// Two runs from the same start must give the same bits wherever the sums have a fixed order (no atomics):
// the norms' weight gradients, the scatter-adds (embedding backward, add_rows with repeated destinations),
// the bias gradient's column sums and the sum of squares. Bit-exact resume relies on it.
typedef struct { void *run[2]; size_t bytes; const char *what; } Twin;  // two copies of one starting buffer
static Twin twin(const Buf *start, const char *what) {
    const size_t bytes = start->n * (size_t)(start->acc ? GPU()->acc_bytes : GPU()->act_bytes);
    Twin t = {{gpu_dup(start->gpu, bytes), gpu_dup(start->gpu, bytes)}, bytes, what};
    return t;
}
static void twin_expect_same(Twin *t) {
    EXPECTF(gpu_same_bytes(t->run[0], t->run[1], t->bytes), "%s: two runs from the same start differ", t->what);
    GPU()->free(t->run[0]);
    GPU()->free(t->run[1]);
}

TEST(cuda_deterministic) {
    const int N = 2000, C = 256, V = 500;
    Buf x = buf_rand((size_t)N * C, 2, 0), w = buf_rand(C, 1, 0), b = buf_rand(C, 1, 0);
    Buf dout = buf_rand((size_t)N * C, 1, 0);
    Buf y = buf_out((size_t)N * C, 0), mean = buf_out(N, 1), rstd = buf_out(N, 1), start = buf_rand(C, 1, 0);
    Buf table = buf_rand((size_t)V * C, 1, 0);
    GPU()->layernorm_forward(y.gpu, mean.gpu, rstd.gpu, x.gpu, w.gpu, b.gpu, N, C, 1e-5f);
    Twin dw = twin(&start, "layernorm_backward dw"), db = twin(&start, "layernorm_backward db");
    for (int r = 0; r < 2; r++)
        GPU()->layernorm_backward(NULL, dw.run[r], db.run[r], dout.gpu, x.gpu, w.gpu, mean.gpu, rstd.gpu, N, C);
    twin_expect_same(&dw);
    twin_expect_same(&db);
    GPU()->rmsnorm_forward(y.gpu, rstd.gpu, x.gpu, w.gpu, N, C, 1e-5f);
    Twin rw = twin(&start, "rmsnorm_backward dw");
    for (int r = 0; r < 2; r++) GPU()->rmsnorm_backward(NULL, rw.run[r], dout.gpu, x.gpu, w.gpu, rstd.gpu, N, C);
    twin_expect_same(&rw);
    Twin bias = twin(&start, "matmul_backward db (column sums)");
    for (int r = 0; r < 2; r++)  // db alone reads dout (N, OC = C) only
        GPU()->matmul_backward(NULL, NULL, bias.run[r], dout.gpu, NULL, NULL, N, C, C);
    twin_expect_same(&bias);
    int *ids = xmalloc(sizeof(int) * N), *rows_to = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        rows_to[i] = (i * 31) % 23;            // 23 rows, each hit about 87 times
        ids[i] = i % 9 == 0 ? -1 : rows_to[i];  // and some skipped ids
    }
    IBuf id = ibuf(ids, N), to = ibuf(rows_to, N);
    Twin emb = twin(&table, "embedding_backward");
    for (int r = 0; r < 2; r++) GPU()->embedding_backward(emb.run[r], dout.gpu, id.gpu, N, C);
    twin_expect_same(&emb);
    Twin rows = twin(&table, "add_rows");
    for (int r = 0; r < 2; r++) GPU()->add_rows(rows.run[r], to.gpu, dout.gpu, NULL, N, C);
    twin_expect_same(&rows);
    double s1, s2;
    GPU()->sumsq(&s1, dout.gpu, (size_t)N * C);
    GPU()->sumsq(&s2, dout.gpu, (size_t)N * C);
    EXPECTF(s1 == s2, "sumsq: two runs differ (%.17g, %.17g)", s1, s2);
    buf_free(&x); buf_free(&w); buf_free(&b); buf_free(&dout); buf_free(&y); buf_free(&mean); buf_free(&rstd);
    buf_free(&start); buf_free(&table); ibuf_free(&id); ibuf_free(&to); free(ids); free(rows_to);
}

// ------------------------------------------------------------------------------------- whole models

// The model of dir on both backends, the CPU copy holding the GPU's weights as the GPU stores them (rounded
// to bf16 in the bf16 build, exactly the file's in fp32), so that a comparison measures the kernels, not
// the storage.
static void load_cpu_gpu_pair(const char *dir, LlavaTrainable tr, Llava *mc, Llava *mg) {
    llava_load(mc, CPU(), dir, tr);
    llava_load(mg, GPU(), dir, tr);
    ParamStore *wc[3] = {&mc->ps_vision, &mc->ps_projector, &mc->ps_text}, *wg[3] = {&mg->ps_vision, &mg->ps_projector, &mg->ps_text};
    for (int s = 0; s < 3; s++) {
        float *w = xmalloc(sizeof(float) * wc[s]->numel);
        GPU()->download_act(w, wg[s]->data, wc[s]->numel);
        CPU()->upload_act(wc[s]->data, w, wc[s]->numel);
        free(w);
    }
}

static void check_llava_on_gpu(const char *name) {
    char dir[256], exp[300];
    snprintf(dir, sizeof(dir), "tests/fixtures/models/%s", name);
    snprintf(exp, sizeof(exp), "%s/expected.safetensors", dir);
    SafeTensors *ex = st_open_or_die(exp);
    const STTensor *tid = st_find(ex, "input_ids"), *tpx = st_find(ex, "pixel_values");
    int B = (int)tid->shape[0], T = (int)tid->shape[1], NI = (int)tpx->shape[0];
    int *ids = xmalloc(sizeof(int) * B * T), *labels = xmalloc(sizeof(int) * B * T), lengths[16], img[16];
    memcpy(ids, tid->data, sizeof(int) * B * T);
    memcpy(labels, st_find(ex, "labels")->data, sizeof(int) * B * T);
    memcpy(lengths, st_find(ex, "lengths")->data, sizeof(int) * B);
    memcpy(img, st_find(ex, "image_of_row")->data, sizeof(int) * B);
    float *pixels = xmalloc(sizeof(float) * tpx->numel);
    st_to_f32(tpx, pixels);
    Llava mc, mg;
    load_cpu_gpu_pair(dir, (LlavaTrainable){1, 1, 1}, &mc, &mg);
    LlavaActs ac, ag;
    llava_acts_init(&ac, &mc, B, T, NI, 0, ACTS_BACKWARD);
    llava_acts_init(&ag, &mg, B, T, NI, 0, ACTS_BACKWARD);
    LlavaBatch batch = {.B = B, .T = T, .ids = ids, .labels = labels, .lengths = lengths, .image_of_row = img,
                        .n_images = NI, .pixels = pixels, .all_logits = 1};
    llava_forward(&mc, &ac, &batch);
    llava_forward(&mg, &ag, &batch);
    EXPECT_INT_EQ(ag.M, ac.M);
    int V = mc.cfg.text.vocab;
    // whole-model tolerances (TOL_MODEL_*, at the top)
    Buf lg = buf_view(ac.l.logits, ag.l.logits, (size_t)ac.M * V);
    EXPECT_CLOSE(lg, TOL_MODEL_LOGITS, "%s logits", name);
    double l2 = buf_err_l2(&lg);
    EXPECTF(l2 <= TOL_MODEL_LOGITS_L2, "%s logits: L2-relative error %.3g", name, l2);
    printf("      %s logits: max-relative %.2e, L2-relative %.2e\n", name, buf_err(&lg), l2);
    for (int b = 0; b < B; b++) EXPECT_NEAR(ag.row_logp[b], ac.row_logp[b], TOL_LOSS);
    double *dlogp = xcalloc(ac.M, sizeof(double));
    for (int i = 0; i < ac.M; i++) dlogp[i] = ac.logp[i] != 0 ? -1.0 / ac.M : 0;
    llava_backward(&mc, &ac, dlogp);
    llava_backward(&mg, &ag, dlogp);
    ParamStore *sc[3] = {&mc.ps_vision, &mc.ps_projector, &mc.ps_text}, *sg[3] = {&mg.ps_vision, &mg.ps_projector, &mg.ps_text};
    for (int s = 0; s < 3; s++) {
        Buf gb = buf_view(sc[s]->grad, sg[s]->grad, sc[s]->numel);
        double l2g = buf_err_l2(&gb);
        EXPECT_CLOSE(gb, TOL_MODEL_GRADS, "%s gradients of the %s", name, sc[s]->label);
        EXPECTF(l2g <= TOL_MODEL_GRADS_L2, "%s gradients of the %s: L2-relative error %.3g", name, sc[s]->label, l2g);
        printf("      %s gradients of the %s: max-relative %.2e, L2-relative %.2e\n", name, sc[s]->label, buf_err(&gb), l2g);
    }
    free(dlogp); free(ids); free(labels); free(pixels);
    llava_acts_free(&ac); llava_acts_free(&ag);
    llava_free(&mc); llava_free(&mg);
    st_close(ex);
}

TEST(cuda_model_llava_gqa) { check_llava_on_gpu("llava_gqa"); }
TEST(cuda_model_llava_full) { check_llava_on_gpu("llava_full"); }
TEST(cuda_model_llava_siglip_qwen2) { check_llava_on_gpu("llava_siglip_qwen2"); }
TEST(cuda_model_llava_siglip_qwen2_tied) { check_llava_on_gpu("llava_siglip_qwen2_tied"); }

// The SigLIP vision model with its pooling head: both outputs, and every gradient of a loss on both
TEST(cuda_model_siglip_vision) {
    const char *dir = "tests/fixtures/models/siglip_vision";
    SiglipVision mc, mg;
    siglip_vision_load(&mc, CPU(), dir, 1);
    siglip_vision_load(&mg, GPU(), dir, 1);
    float *w = xmalloc(sizeof(float) * mc.ps.numel);  // the CPU holds the GPU's weights as it stores them
    GPU()->download_act(w, mg.ps.data, mc.ps.numel);
    CPU()->upload_act(mc.ps.data, w, mc.ps.numel);
    free(w);
    SafeTensors *ex = st_open_or_die("tests/fixtures/models/siglip_vision/expected.safetensors");
    const STTensor *tp = st_find(ex, "pixel_values"), *tdp = st_find(ex, "dpooled"), *tdh = st_find(ex, "dhidden");
    const int B = (int)tp->shape[0], N = mc.vision.n_tokens, C = mc.cfg.hidden;
    float *pixels = xmalloc(sizeof(float) * tp->numel), *dp = xmalloc(sizeof(float) * tdp->numel), *dh = xmalloc(sizeof(float) * tdh->numel);
    st_to_f32(tp, pixels);
    st_to_f32(tdp, dp);
    st_to_f32(tdh, dh);
    SiglipVisionActs ac, ag;
    siglip_vision_acts_init(&ac, &mc, B, 1);
    siglip_vision_acts_init(&ag, &mg, B, 1);
    siglip_vision_forward(&mc, &ac, pixels, B);
    siglip_vision_forward(&mg, &ag, pixels, B);
    Buf hid = buf_view(ac.v.post, ag.v.post, (size_t)B * N * C), pool = buf_view(ac.v.pooled, ag.v.pooled, (size_t)B * C);
    EXPECT_CLOSE(hid, TOL_MODEL_LOGITS, "siglip_vision last_hidden_state");
    EXPECT_CLOSE(pool, TOL_MODEL_LOGITS, "siglip_vision pooler_output");
    siglip_vision_backward(&mc, &ac, dp, dh, B);
    siglip_vision_backward(&mg, &ag, dp, dh, B);
    Buf gb = buf_view(mc.ps.grad, mg.ps.grad, mc.ps.numel);
    EXPECT_CLOSE(gb, TOL_MODEL_GRADS, "siglip_vision gradients");
    EXPECTF(buf_err_l2(&gb) <= TOL_MODEL_GRADS_L2, "siglip_vision gradients: L2-relative error %.3g", buf_err_l2(&gb));
    printf("      siglip_vision: hidden %.2e, pooled %.2e, gradients %.2e (L2 %.2e) max-relative\n", buf_err(&hid), buf_err(&pool),
           buf_err(&gb), buf_err_l2(&gb));
    free(pixels); free(dp); free(dh);
    siglip_vision_acts_free(&ac); siglip_vision_acts_free(&ag);
    siglip_vision_free(&mc); siglip_vision_free(&mg);
    st_close(ex);
}

// DINOv2 at a size whose grid interpolates the position embeddings (42 px on a 4 x 4 table: 6 x 6): both outputs
// and every gradient of a loss on the pooled output. The CPU runs with the GPU's stored weights and position map.
TEST(cuda_model_dinov2) {
    const char *dir = "tests/fixtures/models/dinov2";
    Dinov2 mc, mg;
    dinov2_load(&mc, CPU(), dir, 42, 1);
    dinov2_load(&mg, GPU(), dir, 42, 1);
    const int N = mc.vision.n_tokens, C = mc.cfg.hidden, G0 = mc.cfg.pos_grid;
    const size_t n_map = (size_t)mc.vision.n_patches * G0 * G0;
    EXPECT(mc.vision.pos_map && mg.vision.pos_map);
    float *w = xmalloc(sizeof(float) * (mc.ps.numel > n_map ? mc.ps.numel : n_map));
    GPU()->download_act(w, mg.ps.data, mc.ps.numel);
    CPU()->upload_act(mc.ps.data, w, mc.ps.numel);
    GPU()->download_act(w, mg.vision.pos_map, n_map);
    CPU()->upload_act(mc.vision.pos_map, w, n_map);
    free(w);
    SafeTensors *ex = st_open_or_die("tests/fixtures/models/dinov2/expected.safetensors");
    const STTensor *tp = st_find(ex, "pixel_values_42"), *tdp = st_find(ex, "dpooled_42");
    const int B = (int)tp->shape[0];
    float *pixels = xmalloc(sizeof(float) * tp->numel), *dp = xmalloc(sizeof(float) * tdp->numel);
    st_to_f32(tp, pixels);
    st_to_f32(tdp, dp);
    Dinov2Acts ac, ag;
    dinov2_acts_init(&ac, &mc, B, 1);
    dinov2_acts_init(&ag, &mg, B, 1);
    dinov2_forward(&mc, &ac, pixels, B);
    dinov2_forward(&mg, &ag, pixels, B);
    Buf hid = buf_view(ac.v.post, ag.v.post, (size_t)B * N * C), pool = buf_view(ac.v.pooled, ag.v.pooled, (size_t)B * C);
    EXPECT_CLOSE(hid, TOL_MODEL_LOGITS, "dinov2 last_hidden_state");
    EXPECT_CLOSE(pool, TOL_MODEL_LOGITS, "dinov2 pooler_output");
    dinov2_backward(&mc, &ac, dp, B);
    dinov2_backward(&mg, &ag, dp, B);
    Buf gb = buf_view(mc.ps.grad, mg.ps.grad, mc.ps.numel);
    EXPECT_CLOSE(gb, TOL_MODEL_GRADS, "dinov2 gradients");
    EXPECTF(buf_err_l2(&gb) <= TOL_MODEL_GRADS_L2, "dinov2 gradients: L2-relative error %.3g", buf_err_l2(&gb));
    printf("      dinov2 at 42 px: hidden %.2e, pooled %.2e, gradients %.2e (L2 %.2e) max-relative\n", buf_err(&hid),
           buf_err(&pool), buf_err(&gb), buf_err_l2(&gb));
    free(pixels); free(dp);
    dinov2_acts_free(&ac); dinov2_acts_free(&ag);
    dinov2_free(&mc); dinov2_free(&mg);
    st_close(ex);
}

// Every recipe trains on the GPU; its first step's loss and the mean row log-prob equal the CPU run's.
TEST(cuda_train_recipes_match_cpu) {
    const char *recipes[6] = {"sft", "dpo", "svco", "vco", "mdpo", "dpo"};
    const char *data[6] = {"sft.jsonl", "dpo.jsonl", "svco.jsonl", "svco.jsonl", "dpo.jsonl", "dpo.jsonl"};
    const char *extra[6] = {"", "", "", "", "", "--lora-r 4 --train projector"};  // the last: LoRA adapters
    for (int r = 0; r < 6; r++) {
        double v[2][2];
        for (int dev = 0; dev < 2; dev++) {
            char args[1024], *out, *err;
            snprintf(args, sizeof(args), "train --recipe %s --model tests/fixtures/models/llava_gqa --data tests/fixtures/train/%s "
                     "--out %s/gpu_%s%d_%d --steps 2 --batch 4 --lr 1e-3 --warmup-steps 0 --device %s --quiet %s",
                     recipes[r], data[r], test_tmpdir(), recipes[r], r, dev, dev ? "cuda" : "cpu", extra[r]);
            int rc = test_run_vlm(args, &out, &err);
            EXPECTF(rc == 0, "%s on %s: %s", recipes[r], dev ? "cuda" : "cpu", err);
            char path[600];
            snprintf(path, sizeof(path), "%s/gpu_%s%d_%d/metrics.jsonl", test_tmpdir(), recipes[r], r, dev);
            char *log = try_read_file(path, NULL);
            const char *l = log ? strstr(log, "\"loss\":") : NULL, *p = log ? strstr(log, "\"logps/mean\":") : NULL;
            v[dev][0] = l ? atof(l + 7) : NAN;
            v[dev][1] = p ? atof(p + 13) : NAN;
            free(log); free(out); free(err);
        }
        EXPECTF(fabs(v[1][0] - v[0][0]) <= TOL_LOSS * fabs(v[0][0]), "%s first loss: cuda %.6f cpu %.6f", recipes[r], v[1][0], v[0][0]);
        EXPECTF(fabs(v[1][1] - v[0][1]) <= TOL_LOSS * fabs(v[0][1]), "%s log-probs: cuda %.6f cpu %.6f", recipes[r], v[1][1], v[0][1]);
        printf("      %s: first loss cuda %.6f / cpu %.6f, mean row log-prob %.4f / %.4f\n", recipes[r], v[1][0], v[0][0], v[1][1], v[0][1]);
    }
}

// Resume on the GPU is bit-exact with the deterministic kernels (flash attention): 4 steps straight
// against 2 steps, a stop, and 2 resumed steps.
TEST(cuda_resume_is_bit_exact) {
    const char *common = "--recipe svco --model tests/fixtures/models/llava_gqa --data tests/fixtures/train/svco.jsonl --steps 4 "
                         "--batch 3 --grad-accum 2 --lr 1e-3 --max-grad-norm 0.5 --warmup-steps 1 --device cuda --attention flash --quiet";
    char args[1024], *out, *err;
    const char *extra[3] = {"", "--stop-at 2", "--resume"};
    const char *dirs[3] = {"cres_a", "cres_b", "cres_b"};
    for (int k = 0; k < 3; k++) {
        snprintf(args, sizeof(args), "train %s --out %s/%s %s", common, test_tmpdir(), dirs[k], extra[k]);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "run %d: %s", k, err);
        free(out); free(err);
    }
    const char *files[2] = {"model.safetensors", "optimizer.safetensors"};
    for (int i = 0; i < 2; i++) {
        char a[600], b[600];
        snprintf(a, sizeof(a), "%s/cres_a/checkpoint-00000004/%s", test_tmpdir(), files[i]);
        snprintf(b, sizeof(b), "%s/cres_b/checkpoint-00000004/%s", test_tmpdir(), files[i]);
        EXPECTF(test_files_equal(a, b), "%s differs between the straight and the resumed GPU run", files[i]);
    }
}

// CLIP contrastive training (the demo's first model) on the GPU: the first step's loss equals the CPU's.
TEST(cuda_train_clip_matches_cpu) {
    char *dir = path_join(test_tmpdir(), "cclip"), cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp tests/fixtures/models/llava_gqa/images/*.png %s/", dir, dir);
    EXPECT(test_shell(cmd) == 0);
    const char *text = "{\"image\": \"a.png\", \"caption_ids\": [62, 5, 6, 7, 63]}\n"
                       "{\"image\": \"b.png\", \"caption_ids\": [62, 9, 10, 63, 0, 0]}\n"
                       "{\"image\": \"gray.png\", \"caption_ids\": [62, 30, 63]}\n";
    char *data = path_join(dir, "cap.jsonl");
    write_file_atomic(data, text, strlen(text));
    double first[2];
    for (int dev = 0; dev < 2; dev++) {
        char args[1024], *out, *err;
        snprintf(args, sizeof(args), "train --recipe clip --model tests/fixtures/models/clip --data %s --out %s/run%d --steps 2 "
                 "--batch 3 --lr 1e-3 --warmup-steps 0 --device %s --quiet", data, dir, dev, dev ? "cuda" : "cpu");
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "clip on %s: %s", dev ? "cuda" : "cpu", err);
        char path[700];
        snprintf(path, sizeof(path), "%s/run%d/metrics.jsonl", dir, dev);
        char *log = try_read_file(path, NULL);
        const char *l = log ? strstr(log, "\"loss\":") : NULL;
        first[dev] = l ? atof(l + 7) : NAN;
        free(log); free(out); free(err);
    }
    EXPECTF(fabs(first[1] - first[0]) <= TOL_LOSS * fabs(first[0]), "clip first loss: cuda %.6f cpu %.6f", first[1], first[0]);
    printf("      clip: first loss cuda %.6f / cpu %.6f\n", first[1], first[0]);
    free(data); free(dir);
}

// Activation recomputation on the GPU: `vlm train --recompute` with our (deterministic) flash attention
// writes the same checkpoint bytes as keeping every activation.
TEST(cuda_recompute_same_checkpoint) {
    const char *common = "--recipe dpo --model tests/fixtures/models/llava_gqa --data tests/fixtures/train/dpo.jsonl --steps 3 "
                         "--batch 4 --lr 1e-3 --warmup-steps 0 --device cuda --attention flash --quiet";
    char args[1024], *out, *err;
    const char *extra[2] = {"", "--recompute"}, *dirs[2] = {"crec_kept", "crec_recomputed"};
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "train %s --out %s/%s %s", common, test_tmpdir(), dirs[k], extra[k]);
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "%s: %s", dirs[k], err);
        free(out); free(err);
    }
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/crec_kept/checkpoint-00000003/model.safetensors", test_tmpdir());
    snprintf(b, sizeof(b), "%s/crec_recomputed/checkpoint-00000003/model.safetensors", test_tmpdir());
    EXPECTF(test_files_equal(a, b), "the GPU weights differ with --recompute");
}

// ------------------------------------------------------------------------------------------------- generation

// copy_rows_strided: exact copies (act type in, act type out), rows with a negative index left as they were
static void check_copy_rows_strided(int M, int C, int in_stride, int out_stride, int out_rows) {
    int *oi = xmalloc(sizeof(int) * M), *ii = xmalloc(sizeof(int) * M);
    for (int m = 0; m < M; m++) {
        oi[m] = m % 7 == 3 ? -1 : (m * 5 + 2) % out_rows;  // distinct while M <= out_rows and gcd(5, out_rows) = 1
        ii[m] = m % 11 == 5 ? -1 : (M - 1 - m);
    }
    IBuf o = ibuf(oi, M), i = ibuf(ii, M);
    Buf in = buf_rand((size_t)M * in_stride, 1, 0), out = buf_rand((size_t)out_rows * out_stride, 1, 0);
    CPU()->copy_rows_strided(out.cpu, o.cpu, out_stride, in.cpu, i.cpu, in_stride, M, C);
    GPU()->copy_rows_strided(out.gpu, o.gpu, out_stride, in.gpu, i.gpu, in_stride, M, C);
    EXPECT_CLOSE(out, 0, "copy_rows_strided M%d C%d strides %d/%d", M, C, in_stride, out_stride);
    CPU()->copy_rows_strided(out.cpu, NULL, out_stride, in.cpu, NULL, in_stride, M < out_rows ? M : out_rows, C);
    GPU()->copy_rows_strided(out.gpu, NULL, out_stride, in.gpu, NULL, in_stride, M < out_rows ? M : out_rows, C);
    EXPECT_CLOSE(out, 0, "copy_rows_strided identity M%d C%d", M, C);
    buf_free(&in); buf_free(&out); ibuf_free(&o); ibuf_free(&i); free(oi); free(ii);
}

TEST(cuda_copy_rows_strided) {
    check_copy_rows_strided(12, 16, 48, 16, 13);    // 128-bit path: the k part of fused qkv rows into a cache
    check_copy_rows_strided(9, 13, 29, 17, 11);     // odd sizes and strides: the scalar path
    check_copy_rows_strided(300, 256, 768, 256, 301);
}

// ---- the fused ops of the decode step (model/ops.h add_rmsnorm_forward, rope_kv_append): against the CPU op
// at the build's tolerances, and bit for bit against the unfused sequence of CUDA ops they stand for

// alias: 0 sum in its own buffer, 1 sum = a, 2 sum = b (the residual stream updated in place)
static void check_add_rmsnorm(int N, int C, int alias) {
    const size_t n = (size_t)N * C, ab = (size_t)GPU()->act_bytes;
    Buf a = buf_rand(n, 2, 0), b = buf_rand(n, 1, 0), w = buf_rand(C, 1, 0);
    Buf own = buf_out(n, 0), out = buf_out(n, 0), rstd = buf_out(N, 1);
    // the unfused sequence on the GPU first, from the inputs before an aliased sum overwrites them
    void *sum1 = GPU()->malloc(n * ab + 4), *out1 = GPU()->malloc(n * ab + 4), *rstd1 = GPU()->malloc((size_t)N * 4 + 4);
    GPU()->add(sum1, a.gpu, b.gpu, n);
    GPU()->rmsnorm_forward(out1, rstd1, sum1, w.gpu, N, C, 1e-5f);
    Buf *sum = alias == 1 ? &a : alias == 2 ? &b : &own;
    CPU()->add_rmsnorm_forward(sum->cpu, out.cpu, rstd.cpu, a.cpu, b.cpu, w.cpu, N, C, 1e-5f);
    GPU()->add_rmsnorm_forward(sum->gpu, out.gpu, rstd.gpu, a.gpu, b.gpu, w.gpu, N, C, 1e-5f);
    EXPECT_CLOSE(*sum, TOL_ACT, "add_rmsnorm sum %dx%d alias %d", N, C, alias);
    EXPECT_CLOSE(out, TOL_ACT, "add_rmsnorm out %dx%d alias %d", N, C, alias);
    // rstd comes from the sum as rounded to the act type (fp32 on the CPU, bf16 here), so for rows of a few
    // elements it moves by up to that rounding (1.1e-3 to 2.0e-3 at 7x13 and 1x1 on the H100): the act tolerance
    EXPECT_CLOSE(rstd, TOL_ACT, "add_rmsnorm rstd %dx%d alias %d", N, C, alias);
    EXPECTF(gpu_same_bytes(sum->gpu, sum1, n * ab), "add_rmsnorm %dx%d alias %d: the sum differs from cuda add", N, C, alias);
    EXPECTF(gpu_same_bytes(out.gpu, out1, n * ab), "add_rmsnorm %dx%d alias %d: out differs from cuda rmsnorm_forward", N, C, alias);
    EXPECTF(gpu_same_bytes(rstd.gpu, rstd1, (size_t)N * 4), "add_rmsnorm %dx%d alias %d: rstd differs from cuda rmsnorm_forward", N, C, alias);
    GPU()->free(sum1); GPU()->free(out1); GPU()->free(rstd1);
    buf_free(&a); buf_free(&b); buf_free(&w); buf_free(&own); buf_free(&out); buf_free(&rstd);
}

TEST(cuda_add_rmsnorm) {
    // odd sizes (scalar path), the LLaVA-7B decode rows (B = 1 and 16 of 4096), many rows, wider rows (J = 2, 4)
    int shapes[][2] = {{7, 13}, {1, 4096}, {16, 4096}, {2, 33}, {333, 4096}, {3, 8192}, {4, 8200}, {1, 1}};
    for (int i = 0; i < 8; i++)
        for (int alias = 0; alias < 3; alias++) check_add_rmsnorm(shapes[i][0], shapes[i][1], alias);
}

// qkv (N, stride) rows with pad columns past v; caches of `rows` rows prefilled with random values (rows the
// op does not name must keep them) and NaN in the rows it writes (an element it misses fails).
static void check_rope_kv_append(int N, int NH, int NKV, int HD, int pad, int null_dst) {
    const int qdim = NH * HD, kvdim = NKV * HD, stride = qdim + 2 * kvdim + pad, rows = 2 * N + 3;
    const size_t nq = (size_t)N * stride, nc = (size_t)rows * kvdim, ab = (size_t)GPU()->act_bytes;
    int *pos = xmalloc(sizeof(int) * N), *dst = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        pos[i] = (i * 131 + 7) % 2000;
        dst[i] = null_dst ? i : i % 5 == 2 ? -1 : (2 * N + 2) - 2 * i;  // distinct; -1: rotated, not appended
    }
    IBuf p = ibuf(pos, N), d = ibuf(dst, N);
    Buf qkv = buf_rand(nq, 1, 0), cache[2];
    for (int c = 0; c < 2; c++) {
        float *h = xmalloc(sizeof(float) * nc);
        for (size_t i = 0; i < nc; i++) {
            h[i] = frand();
#ifndef VLM_CUDA_FP32
            h[i] = bf16_to_f32(f32_to_bf16(h[i]));
#endif
        }
        for (int i = 0; i < N; i++)
            for (int k = 0; k < kvdim && dst[i] >= 0; k++) h[(size_t)dst[i] * kvdim + k] = NAN;
        cache[c] = buf_from(h, nc, 0);
        free(h);
    }
    // the unfused sequence on copies of the GPU buffers
    void *qkv1 = gpu_dup(qkv.gpu, nq * ab), *kc1 = gpu_dup(cache[0].gpu, nc * ab), *vc1 = gpu_dup(cache[1].gpu, nc * ab);
    const int *dg = null_dst ? NULL : d.gpu;
    GPU()->rope_forward(qkv1, p.gpu, N, NH + NKV, HD, stride, 10000.0f);
    GPU()->copy_rows_strided(kc1, dg, kvdim, act_at(GPU(), qkv1, qdim), NULL, stride, N, kvdim);
    GPU()->copy_rows_strided(vc1, dg, kvdim, act_at(GPU(), qkv1, qdim + kvdim), NULL, stride, N, kvdim);
    CPU()->rope_kv_append(qkv.cpu, p.cpu, cache[0].cpu, cache[1].cpu, null_dst ? NULL : d.cpu, N, NH, NKV, HD, stride, 10000.0f);
    GPU()->rope_kv_append(qkv.gpu, p.gpu, cache[0].gpu, cache[1].gpu, dg, N, NH, NKV, HD, stride, 10000.0f);
    EXPECT_CLOSE(qkv, TOL_ACT, "rope_kv_append qkv N%d H%d/%d HD%d pad %d", N, NH, NKV, HD, pad);
    EXPECT_CLOSE(cache[0], TOL_ACT, "rope_kv_append key cache N%d H%d/%d HD%d pad %d", N, NH, NKV, HD, pad);
    EXPECT_CLOSE(cache[1], 0, "rope_kv_append value cache N%d H%d/%d HD%d pad %d", N, NH, NKV, HD, pad);
    EXPECTF(gpu_same_bytes(qkv.gpu, qkv1, nq * ab), "rope_kv_append N%d HD%d: qkv differs from cuda rope_forward", N, HD);
    EXPECTF(gpu_same_bytes(cache[0].gpu, kc1, nc * ab), "rope_kv_append N%d HD%d: the key cache differs from the unfused ops", N, HD);
    EXPECTF(gpu_same_bytes(cache[1].gpu, vc1, nc * ab), "rope_kv_append N%d HD%d: the value cache differs from the unfused ops", N, HD);
    GPU()->free(qkv1); GPU()->free(kc1); GPU()->free(vc1);
    buf_free(&qkv); buf_free(&cache[0]); buf_free(&cache[1]); ibuf_free(&p); ibuf_free(&d); free(pos); free(dst);
}

TEST(cuda_rope_kv_append) {
    check_rope_kv_append(3, 4, 2, 6, 3, 0);       // scalar path: GQA, head dim 6, odd stride
    check_rope_kv_append(5, 3, 1, 8, 0, 0);       // head dim 8: chunks of 4 pairs
    check_rope_kv_append(7, 4, 2, 16, 0, 1);      // 16-byte path, NULL destinations
    check_rope_kv_append(4, 2, 2, 128, 1, 0);     // odd stride: scalar path at HD 128
    check_rope_kv_append(1, 32, 32, 128, 0, 0);   // LLaVA-7B decode, B = 1
    check_rope_kv_append(16, 32, 32, 128, 0, 0);  // LLaVA-7B decode, B = 16
    check_rope_kv_append(300, 32, 8, 128, 0, 0);  // a prefill's rows, GQA
    check_rope_kv_append(9, 2, 2, 256, 8, 0);     // head dim 256
}

// attention_decode against the CPU: queries at a fused-row stride, rows in permuted cache slots, lengths
// from 0 to past one chunk of the kernel (256 positions). The cases cover the generic kernel (head dim 12,
// or a q stride that is not a multiple of 8) and the vectorized one, with and without split-K (which it
// uses when rows x heads are fewer than two blocks per SM).
static void check_attention_decode(int B, int NH, int NKV, int HD, int cap, int q_pad) {
    const int qd = NH * HD, kd = NKV * HD, q_stride = qd + 2 * kd + q_pad, slots = B + 1;
    int *len = xmalloc(sizeof(int) * B), *slot = xmalloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) {
        len[b] = b == 1 ? 0 : cap - (b * 37) % cap;
        slot[b] = (b + 2) % slots;
    }
    IBuf l = ibuf(len, B), sl = ibuf(slot, B);
    Buf q = buf_rand((size_t)B * q_stride, 1.5f, 0), k = buf_rand((size_t)slots * cap * kd, 1.5f, 0);
    Buf v = buf_rand((size_t)slots * cap * kd, 1, 0), out = buf_out((size_t)B * qd, 0);
    DecodeShape dc = {B, NH, NKV, HD, q_stride, cap, l.cpu, sl.cpu}, dg = dc;
    dg.len = l.gpu;
    dg.slot = sl.gpu;
    CPU()->attention_decode(out.cpu, q.cpu, k.cpu, v.cpu, &dc);
    GPU()->attention_decode(out.gpu, q.gpu, k.gpu, v.gpu, &dg);
    EXPECT_CLOSE(out, TOL_ACT, "attention_decode B%d H%d/%d HD%d cap %d q_pad %d", B, NH, NKV, HD, cap, q_pad);
    buf_free(&q); buf_free(&k); buf_free(&v); buf_free(&out); ibuf_free(&l); ibuf_free(&sl); free(len); free(slot);
}

TEST(cuda_attention_decode) {
    check_attention_decode(3, 4, 2, 12, 40, 0);      // generic kernel: GQA, head dim 12
    check_attention_decode(3, 4, 2, 128, 300, 1);    // generic kernel: odd q stride, two chunks
    check_attention_decode(2, 8, 1, 64, 300, 0);     // one kv head; split in two
    check_attention_decode(1, 32, 32, 128, 1200, 0); // LLaVA-7B, B=1: split-K
    check_attention_decode(5, 32, 32, 128, 700, 0);  // split, each span over two chunks
    check_attention_decode(16, 32, 32, 128, 700, 0); // LLaVA-7B, B=16: no split, three chunks
    check_attention_decode(2, 2, 2, 256, 9, 0);      // head dim 256 (one 8-element group per lane)
    check_attention_decode(4, 4, 4, 8, 33, 0);       // head dim 8 (one lane per key)
}

// Prefill and cached decode steps on the GPU against the CPU running the GPU's weights (bf16-rounded in the
// bf16 build), with the same forced tokens on both (greedy choices could differ at near-ties under bf16).
static void check_generate_on_gpu(const char *name) {
    char dir[256], exp[300];
    snprintf(dir, sizeof(dir), "tests/fixtures/models/%s", name);
    snprintf(exp, sizeof(exp), "%s/expected.safetensors", dir);
    Llava mc, mg;
    load_cpu_gpu_pair(dir, (LlavaTrainable){0, 0, 0}, &mc, &mg);
    SafeTensors *ex = st_open_or_die(exp);
    const STTensor *tpx = st_get(ex, "pixel_values");
    float *pixels = xmalloc(sizeof(float) * tpx->numel);
    st_to_f32(tpx, pixels);
    st_close(ex);
    const int P = mc.cfg.image_tokens, V = mc.cfg.text.vocab, T = 1 + P + 4;
    int ids[2 * 32], lengths[2] = {T, 6}, img_of[2] = {0, -1}, slot_of_row[2] = {1, 0};
    for (int t = 0; t < T; t++) {
        ids[t] = t == 0 ? 1 : t <= P ? mc.cfg.image_token_id : 10 + t;
        ids[T + t] = t < 6 ? 1 + 7 * t : 0;
    }
    LlavaBatch bt = {.B = 2, .T = T, .ids = ids, .lengths = lengths, .image_of_row = img_of, .n_images = 1, .pixels = pixels};
    Generator gc, gg;
    gen_init(&gc, &mc, 2, T, 8, 2);
    gen_init(&gg, &mg, 2, T, 8, 2);
    Buf lg = buf_view(gc.logits, gg.logits, (size_t)2 * V);
    gen_prefill(&gc, &bt, slot_of_row);
    gen_prefill(&gg, &bt, slot_of_row);
    // the whole-model tolerance of cuda_model_*: in bf16, activations and the KV cache round at each layer
    double l2 = buf_err_l2(&lg);
    printf("      %s: cached generation on the GPU, L2-relative logits error: prefill %.2e, decode steps", name, l2);
    EXPECT_CLOSE(lg, TOL_MODEL_LOGITS, "prefill logits");
    for (int step = 0; step < 6; step++) {
        int slots[2] = {0, 1}, toks[2] = {3 + step, 40 + 3 * step};
        gen_decode(&gc, 2, slots, toks);
        gen_decode(&gg, 2, slots, toks);
        printf(" %.2e", buf_err_l2(&lg));
        EXPECT_CLOSE(lg, TOL_MODEL_LOGITS, "decode step %d logits", step);
    }
    printf("\n");
    gen_free(&gc); gen_free(&gg);
    llava_free(&mc); llava_free(&mg);
    free(pixels);
}

TEST(cuda_generate_matches_cpu) {
    check_generate_on_gpu("llava_gqa");
    check_generate_on_gpu("llava_siglip_qwen2");  // q/k/v biases without an o bias through the decode kernels
}

// The "ids" lists of two vlm sample outputs (or fixtures), record by record: how many records, how many
// first tokens agree, the summed common prefix, and how many records are identical.
typedef struct {
    int records, first_ok, same_prefix, identical;
} IdsAgreement;

static IdsAgreement compare_sample_ids(const char *p, const char *q) {
    IdsAgreement a = {0, 0, 0, 0};
    while ((p = strstr(p, "\"ids\": [")) && (q = strstr(q, "\"ids\": ["))) {
        p += 8; q += 8;
        a.records++;
        int t = 0;
        for (; *p != ']' && *q != ']'; t++) {
            int x = (int)strtol(p, (char **)&p, 10), y = (int)strtol(q, (char **)&q, 10);
            if (t == 0) a.first_ok += x == y;
            if (x != y) break;
            a.same_prefix++;
            while (*p == ',' || *p == ' ') p++;
            while (*q == ',' || *q == ' ') q++;
        }
        a.identical += *p == ']' && *q == ']';
    }
    return a;
}

// vlm sample --device cuda runs the generation fixtures, and the CPU backend runs them too. Greedy tokens
// follow transformers' fp32 ones until a near-tie that bf16 rounding decides otherwise (the fixtures only
// guarantee margins of 1e-3): the agreement is reported, and a majority of first tokens must agree (garbage
// would not). In the fp32 build, whose logits differ from the CPU's and transformers' far below those
// margins, every token of every record must agree with both.
static void check_sample_cli(const char *name) {
    char args[512], cmd[600], path[256], *gpu, *cpu, *err;
    snprintf(args, sizeof(args), "sample --model tests/fixtures/models/%s --data tests/fixtures/models/%s/generate_records.jsonl "
             "--max-new-tokens 12 --batch 3 --device ", name, name);
    snprintf(cmd, sizeof(cmd), "%scuda", args);
    int rc = test_run_vlm(cmd, &gpu, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    free(err);
    snprintf(cmd, sizeof(cmd), "%scpu", args);
    rc = test_run_vlm(cmd, &cpu, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    snprintf(path, sizeof(path), "tests/fixtures/models/%s/generate_expected.jsonl", name);
    char *want = read_file(path, NULL);
    const IdsAgreement tf = compare_sample_ids(gpu, want), cb = compare_sample_ids(gpu, cpu);
    EXPECT_INT_EQ(tf.records, 5);
    EXPECT_INT_EQ(cb.records, 5);
    EXPECTF(tf.first_ok >= MIN_FIRST_TOKENS, "only %d of 5 first tokens agree with transformers", tf.first_ok);
#ifdef VLM_CUDA_FP32
    // fp32 differences (~1e-6) are far below the fixtures' 1e-3 margins: every token must agree
    EXPECTF(cb.identical == 5, "greedy output on the GPU differs from the CPU backend's in %d of 5 records", 5 - cb.identical);
    EXPECTF(tf.identical == 5, "greedy output on the GPU differs from transformers' in %d of 5 records", 5 - tf.identical);
#endif
    printf("      vlm sample --device cuda, %s: %d of 5 first tokens and a common prefix of %d tokens with transformers;\n"
           "      %d of 5 records token for token the CPU backend's (common prefix %d tokens)\n",
           name, tf.first_ok, tf.same_prefix, cb.identical, cb.same_prefix);
    free(gpu); free(cpu); free(err); free(want);
}

TEST(cuda_sample_cli) {
    check_sample_cli("llava_gqa");
    check_sample_cli("llava_siglip_qwen2");
}

static void check_logprobs_cli(const char *name) {
    char *out, *err, cmd[512], path[256];
    snprintf(cmd, sizeof(cmd), "logprobs --model tests/fixtures/models/%s --data tests/fixtures/models/%s/records.jsonl --device cuda",
             name, name);
    int rc = test_run_vlm(cmd, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    snprintf(path, sizeof(path), "tests/fixtures/models/%s/logprobs_expected.jsonl", name);
    char *want = read_file(path, NULL);
    const char *p = out, *q = want;
    int n = 0;
    double worst = 0;
    while ((p = strstr(p, "\"logprob\": ")) && (q = strstr(q, "\"logprob\": "))) {
        double a = atof(p + 11), b = atof(q + 11);
        worst = fmax(worst, fabs(a - b) / fabs(b));
        p++; q++; n++;
    }
    EXPECT_INT_EQ(n, 5);
    EXPECTF(worst <= TOL_TRANSFORMERS, "%s: logprobs on the GPU (%s) differ from transformers by %.3g relative", name,
            GPU_ACT_NAME, worst);
    printf("      vlm logprobs --device cuda, %s: worst relative difference to transformers %.2e\n", name, worst);
    free(out); free(err); free(want);
}

TEST(cuda_logprobs_cli) {
    check_logprobs_cli("llava_gqa");
    check_logprobs_cli("llava_siglip_qwen2");  // SigLIP tower and preprocessing, Qwen2 decoder
}
#endif
