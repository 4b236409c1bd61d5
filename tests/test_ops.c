// Finite-difference checks of every op's backward, in fp64 (backend_cpu64), plus property tests of the
// forward math that transformers parity does not reach (masks, packing, exact small cases).
//
// Scheme: pick a random cotangent r for the op's output, L = sum(r * out). The backward with dout = r
// gives dL/dx analytically; central differences (h = 1e-6) give it numerically. Accumulating gradients
// start from random values (the test checks the increment), overwritten ones start as NaN (the test
// catches unwritten elements).
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../model/gemm_cpu.h"
#include "../model/ops.h"
#include "../util/common.h"
#include "../util/threads.h"
#include "test.h"

static const Backend *be64(void) { return &backend_cpu64; }

static unsigned long long rng_state = 88172645463325252ULL;
static double urand(void) {  // xorshift64, uniform in [-1, 1)
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (double)(rng_state >> 11) / (double)(1ULL << 53) * 2 - 1;
}
static double *rand_vec(size_t n, double scale) {
    double *x = xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = urand() * scale;
    return x;
}
static double *nan_vec(size_t n) {
    double *x = xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) x[i] = NAN;
    return x;
}
static double *copy_vec(const double *x, size_t n) {
    double *y = xmalloc(sizeof(double) * (n ? n : 1));
    memcpy(y, x, sizeof(double) * n);
    return y;
}

// The forward under test, as a closure: recompute outputs from the current inputs.
typedef struct {
    void (*run)(void *ctx);
    void *ctx;
    const double *out;  // output buffer(s) the loss reads
    const double *r;    // cotangent
    size_t nout;
} Fwd;

static double loss_of(Fwd *f) {
    f->run(f->ctx);
    double L = 0;
    for (size_t i = 0; i < f->nout; i++) L += f->r[i] * f->out[i];
    return L;
}

// Compares analytic gradient `grad` (n) of the input `x` with central differences.
static void fd_compare(const char *what, Fwd *f, double *x, const double *grad, size_t n) {
    const double h = 1e-6;
    double worst = 0;
    size_t worst_i = 0;
    size_t step = n > 400 ? n / 400 : 1;  // large inputs: a strided sample of elements
    for (size_t i = 0; i < n; i += step) {
        double x0 = x[i];
        x[i] = x0 + h;
        double lp = loss_of(f);
        x[i] = x0 - h;
        double lm = loss_of(f);
        x[i] = x0;
        double fd = (lp - lm) / (2 * h);
        double err = fabs(fd - grad[i]) / fmax(1e-3, fmax(fabs(fd), fabs(grad[i])));
        if (!(err <= worst)) { worst = err; worst_i = i; }
        if (isnan(grad[i])) { worst = INFINITY; worst_i = i; break; }
    }
    loss_of(f);  // leave outputs consistent with unperturbed inputs
    EXPECTF(worst < 1e-5, "%s: gradient mismatch %.3g at element %zu (analytic %.10g)", what, worst, worst_i,
            grad[worst_i]);
}

// grad_after - grad_before, for accumulating gradients
static double *delta(const double *after, const double *before, size_t n) {
    double *d = xmalloc(sizeof(double) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) d[i] = after[i] - before[i];
    return d;
}

// ------------------------------------------------------------------------------------------------ matmul

typedef struct { double *out, *inp, *w, *b; int N, C, OC; } MatmulCtx;
static void matmul_run(void *c_) {
    MatmulCtx *c = c_;
    be64()->matmul_forward(c->out, c->inp, c->w, c->b, c->N, c->C, c->OC);
}

static void check_matmul(int N, int C, int OC, int with_bias) {
    MatmulCtx c = {NULL, rand_vec(N * C, 1), rand_vec(OC * C, 1), with_bias ? rand_vec(OC, 1) : NULL, N, C, OC};
    c.out = nan_vec(N * OC);
    double *r = rand_vec(N * OC, 1);
    Fwd f = {matmul_run, &c, c.out, r, (size_t)N * OC};
    loss_of(&f);
    // forward against the plain definition
    double maxerr = 0;
    for (int n = 0; n < N; n++)
        for (int o = 0; o < OC; o++) {
            double s = with_bias ? c.b[o] : 0;
            for (int k = 0; k < C; k++) s += c.inp[n * C + k] * c.w[o * C + k];
            maxerr = fmax(maxerr, fabs(s - c.out[n * OC + o]));
        }
    EXPECTF(maxerr < 1e-12, "matmul forward off by %g", maxerr);
    double *dinp = nan_vec(N * C), *dw0 = rand_vec(OC * C, 1), *db0 = rand_vec(OC, 1);
    double *dw = copy_vec(dw0, OC * C), *db = copy_vec(db0, OC);
    be64()->matmul_backward(dinp, dw, with_bias ? db : NULL, r, c.inp, c.w, N, C, OC);
    fd_compare("matmul dinp", &f, c.inp, dinp, N * C);
    double *ddw = delta(dw, dw0, OC * C), *ddb = delta(db, db0, OC);
    fd_compare("matmul dw", &f, c.w, ddw, OC * C);
    if (with_bias) fd_compare("matmul db", &f, c.b, ddb, OC);
    free(c.out); free(c.inp); free(c.w); free(c.b); free(r); free(dinp); free(dw0); free(db0); free(dw); free(db);
    free(ddw); free(ddb);
}

TEST(ops_matmul_fd) {
    check_matmul(5, 7, 3, 1);
    check_matmul(9, 16, 11, 0);
    check_matmul(1, 1, 1, 1);
}

// ------------------------------------------------------------------------------------------------ norms

typedef struct { double *out, *mean, *rstd, *inp, *w, *b; int N, C, rms; } NormCtx;
static void norm_run(void *c_) {
    NormCtx *c = c_;
    if (c->rms) be64()->rmsnorm_forward(c->out, c->rstd, c->inp, c->w, c->N, c->C, 1e-5f);
    else be64()->layernorm_forward(c->out, c->mean, c->rstd, c->inp, c->w, c->b, c->N, c->C, 1e-5f);
}

static void check_norm(int rms, int N, int C) {
    NormCtx c = {nan_vec(N * C), nan_vec(N), nan_vec(N), rand_vec(N * C, 2), rand_vec(C, 1.5), rand_vec(C, 1), N, C, rms};
    for (int i = 0; i < N * C; i++) c.inp[i] += 0.5;  // a nonzero mean exercises the centering
    double *r = rand_vec(N * C, 1);
    Fwd f = {norm_run, &c, c.out, r, (size_t)N * C};
    loss_of(&f);
    double *dinp0 = rand_vec(N * C, 1), *dw0 = rand_vec(C, 1), *db0 = rand_vec(C, 1);
    double *dinp = copy_vec(dinp0, N * C), *dw = copy_vec(dw0, C), *db = copy_vec(db0, C);
    if (rms) be64()->rmsnorm_backward(dinp, dw, r, c.inp, c.w, c.rstd, N, C);
    else be64()->layernorm_backward(dinp, dw, db, r, c.inp, c.w, c.mean, c.rstd, N, C);
    double *d1 = delta(dinp, dinp0, N * C), *d2 = delta(dw, dw0, C), *d3 = delta(db, db0, C);
    fd_compare(rms ? "rmsnorm dinp" : "layernorm dinp", &f, c.inp, d1, N * C);
    fd_compare(rms ? "rmsnorm dw" : "layernorm dw", &f, c.w, d2, C);
    if (!rms) fd_compare("layernorm db", &f, c.b, d3, C);
    // forward: the normalized rows have zero mean (LN) / unit RMS before the weight
    for (int i = 0; i < C; i++) { c.w[i] = 1; c.b[i] = 0; }
    norm_run(&c);
    for (int n = 0; n < N; n++) {
        double m = 0, ss = 0;
        for (int i = 0; i < C; i++) { m += c.out[n * C + i]; ss += c.out[n * C + i] * c.out[n * C + i]; }
        m /= C; ss /= C;
        if (!rms) EXPECT_NEAR(m, 0.0, 1e-9);
        // with eps = 1e-5 the RMS is a hair under one
        double ms = 0;
        for (int i = 0; i < C; i++) ms += c.inp[n * C + i] * c.inp[n * C + i];
        ms /= C;
        if (rms) EXPECT_NEAR(ss, ms / (ms + 1e-5), 1e-9);
    }
    free(c.out); free(c.mean); free(c.rstd); free(c.inp); free(c.w); free(c.b); free(r);
    free(dinp0); free(dw0); free(db0); free(dinp); free(dw); free(db); free(d1); free(d2); free(d3);
}

TEST(ops_layernorm_fd) { check_norm(0, 6, 13); check_norm(0, 1, 64); }
TEST(ops_rmsnorm_fd) { check_norm(1, 6, 13); check_norm(1, 1, 64); }

// ------------------------------------------------------------------------------------------------ activations

typedef struct { double *out, *inp; size_t n; ActKind kind; int swiglu; int N, F; } ActCtx;
static void act_run(void *c_) {
    ActCtx *c = c_;
    if (c->swiglu) be64()->swiglu_forward(c->out, c->inp, c->N, c->F);
    else be64()->act_forward(c->kind, c->out, c->inp, c->n);
}

TEST(ops_activations_fd) {
    const ActKind kinds[] = {ACT_GELU, ACT_QUICK_GELU, ACT_SILU, ACT_GELU_TANH};
    const char *names[] = {"gelu", "quick_gelu", "silu", "gelu_tanh"};
    for (int k = 0; k < 4; k++) {
        size_t n = 50;
        ActCtx c = {nan_vec(n), rand_vec(n, 4), n, kinds[k], 0, 0, 0};
        double *r = rand_vec(n, 1), *dinp = nan_vec(n);
        Fwd f = {act_run, &c, c.out, r, n};
        loss_of(&f);
        be64()->act_backward(kinds[k], dinp, r, c.inp, n);
        fd_compare(names[k], &f, c.inp, dinp, n);
        free(c.out); free(c.inp); free(r); free(dinp);
    }
    // exact values: gelu(1) = 0.8413447460685429, quick_gelu(1) = sigmoid(1.702), silu(1) = sigmoid(1)
    double x = 1, y;
    be64()->act_forward(ACT_GELU, &y, &x, 1);
    EXPECT_NEAR(y, 0.8413447460685429, 1e-14);
    be64()->act_forward(ACT_QUICK_GELU, &y, &x, 1);
    EXPECT_NEAR(y, 1 / (1 + exp(-1.702)), 1e-14);
    be64()->act_forward(ACT_SILU, &y, &x, 1);
    EXPECT_NEAR(y, 1 / (1 + exp(-1.0)), 1e-14);
    be64()->act_forward(ACT_GELU_TANH, &y, &x, 1);
    EXPECT_NEAR(y, 0.8411919906082768, 1e-14);
}

TEST(ops_swiglu_fd) {
    int N = 4, F = 7;
    ActCtx c = {nan_vec(N * F), rand_vec(N * 2 * F, 3), 0, ACT_SILU, 1, N, F};
    double *r = rand_vec(N * F, 1), *dinp = nan_vec(N * 2 * F);
    Fwd f = {act_run, &c, c.out, r, (size_t)N * F};
    loss_of(&f);
    be64()->swiglu_backward(dinp, r, c.inp, N, F);
    fd_compare("swiglu", &f, c.inp, dinp, N * 2 * F);
    double g = c.inp[1], u = c.inp[F + 1];
    EXPECT_NEAR(c.out[1], g / (1 + exp(-g)) * u, 1e-14);
    free(c.out); free(c.inp); free(r); free(dinp);
}

// ------------------------------------------------------------------------------------------------ rope

typedef struct { double *x, *x0; int *pos; int N, heads, HD, stride; size_t n; } RopeCtx;
static void rope_run(void *c_) {
    RopeCtx *c = c_;
    memcpy(c->x, c->x0, sizeof(double) * c->n);
    be64()->rope_forward(c->x, c->pos, c->N, c->heads, c->HD, c->stride, 10000.0f);
}

TEST(ops_rope_fd) {
    int N = 5, heads = 3, HD = 8, stride = heads * HD + 4;  // extra columns past the heads stay untouched
    size_t n = (size_t)N * stride;
    int pos[5] = {0, 1, 7, 3, 100};
    RopeCtx c = {xmalloc(sizeof(double) * n), rand_vec(n, 1), pos, N, heads, HD, stride, n};
    double *r = rand_vec(n, 1);
    Fwd f = {rope_run, &c, c.x, r, n};
    loss_of(&f);
    double *g = copy_vec(r, n);
    be64()->rope_backward(g, pos, N, heads, HD, stride, 10000.0f);
    // columns past the rotated heads pass through: their gradient is r itself
    fd_compare("rope", &f, c.x0, g, n);
    // the HF half-rotation by hand for token 1 (position 1), head 0, pair (0, 4), frequency theta^0 = 1
    double a = c.x0[stride + 0], b = c.x0[stride + 4];
    EXPECT_NEAR(c.x[stride + 0], a * cos(1.0) - b * sin(1.0), 1e-12);
    EXPECT_NEAR(c.x[stride + 4], b * cos(1.0) + a * sin(1.0), 1e-12);
    // pair (1, 5) at position 7 uses frequency 10000^(-2/8)
    double fq = pow(10000.0, -2.0 / 8), a1 = c.x0[2 * stride + 1], b1 = c.x0[2 * stride + 5];
    EXPECT_NEAR(c.x[2 * stride + 1], a1 * cos(7 * fq) - b1 * sin(7 * fq), 1e-12);
    EXPECT_NEAR(c.x[stride + heads * HD + 2], c.x0[stride + heads * HD + 2], 0);
    free(c.x); free(c.x0); free(r); free(g);
}

// ------------------------------------------------------------------------------------------------ attention

typedef struct { double *out, *lse, *qkv; AttnShape s; } AttnCtx;
static void attn_run(void *c_) {
    AttnCtx *c = c_;
    int qd = c->s.NH * c->s.HD, kd = c->s.NKV * c->s.HD;
    be64()->attention_forward(c->out, c->lse, c->qkv, c->qkv + qd, c->qkv + qd + kd, &c->s);
}

// q, k, v live side by side in one (B*T, (NH + 2 NKV) HD) buffer, as the fused QKV matmul writes them
static void check_attention(int B, int T, int NH, int NKV, int HD, int causal, const int *kv_len, const int *seg) {
    int qd = NH * HD, kd = NKV * HD, stride = qd + 2 * kd;
    size_t nqkv = (size_t)B * T * stride, nout = (size_t)B * T * qd;
    AttnCtx c = {nan_vec(nout), nan_vec((size_t)B * NH * T), rand_vec(nqkv, 1.5),
                 {B, T, NH, NKV, HD, stride, stride, causal, kv_len, seg, NULL, 0}};
    double *r = rand_vec(nout, 1);
    Fwd f = {attn_run, &c, c.out, r, nout};
    loss_of(&f);
    for (size_t i = 0; i < nout; i++) EXPECTF(!isnan(c.out[i]), "attention output %zu not written", i);
    double *dqkv = nan_vec(nqkv);
    be64()->attention_backward(dqkv, dqkv + qd, dqkv + qd + kd, r, c.out, c.lse, c.qkv, c.qkv + qd, c.qkv + qd + kd, &c.s);
    fd_compare("attention dqkv", &f, c.qkv, dqkv, nqkv);
    free(c.out); free(c.lse); free(c.qkv); free(r); free(dqkv);
}

TEST(ops_attention_fd) {
    check_attention(2, 5, 2, 2, 4, 0, NULL, NULL);         // bidirectional (ViT)
    check_attention(2, 6, 4, 2, 4, 1, NULL, NULL);         // causal, grouped-query heads
    int kv_len[2] = {4, 6};
    check_attention(2, 6, 2, 1, 8, 1, kv_len, NULL);      // key padding
    int seg[2 * 7] = {0, 0, 0, 1, 1, 2, 2,  0, 0, 1, 1, 1, 2, 2};
    check_attention(2, 7, 2, 2, 4, 1, NULL, seg);          // tree mask of packed rows
}

// The layout of SigLIP's attention-pooling head (model/vit.c): one query per image (row b*T of a q buffer at
// stride C, named by q_rows), keys and values from a separate (B*T, 2C) buffer, no mask. The cotangent is zero
// off the read rows, as the contract asks of the caller; the gradient of the unread queries must then be 0.
typedef struct { double *out, *lse, *q, *kv; AttnShape s; } ProbeCtx;
static void probe_run(void *c_) {
    ProbeCtx *c = c_;
    be64()->attention_forward(c->out, c->lse, c->q, c->kv, c->kv + c->s.NH * c->s.HD, &c->s);
}

TEST(ops_attention_probe_rows_fd) {
    const int B = 2, T = 5, NH = 2, HD = 4, C = NH * HD;
    int rows[2] = {0, T};
    ProbeCtx c = {nan_vec((size_t)B * T * C), nan_vec((size_t)B * NH * T), rand_vec((size_t)B * T * C, 1.5),
                  rand_vec((size_t)B * T * 2 * C, 1.5), {B, T, NH, NH, HD, C, 2 * C, 0, NULL, NULL, rows, B}};
    double *r = xcalloc((size_t)B * T * C, sizeof(double));
    for (int b = 0; b < B; b++)
        for (int i = 0; i < C; i++) r[(size_t)rows[b] * C + i] = urand();
    Fwd f = {probe_run, &c, c.out, r, (size_t)B * T * C};
    loss_of(&f);
    // the read rows against the definition: softmax over the image's T keys of q.k / sqrt(HD), then v
    double maxerr = 0;
    for (int b = 0; b < B; b++)
        for (int h = 0; h < NH; h++) {
            double sc[8], mx = -INFINITY, z = 0;
            for (int j = 0; j < T; j++) {
                sc[j] = 0;
                for (int d = 0; d < HD; d++) sc[j] += c.q[(size_t)rows[b] * C + h * HD + d] * c.kv[((size_t)b * T + j) * 2 * C + h * HD + d];
                sc[j] /= sqrt((double)HD);
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j < T; j++) z += exp(sc[j] - mx);
            for (int d = 0; d < HD; d++) {
                double o = 0;
                for (int j = 0; j < T; j++) o += exp(sc[j] - mx) / z * c.kv[((size_t)b * T + j) * 2 * C + C + h * HD + d];
                maxerr = fmax(maxerr, fabs(o - c.out[(size_t)rows[b] * C + h * HD + d]));
            }
        }
    EXPECTF(maxerr < 1e-12, "probe attention forward off by %g", maxerr);
    double *dq = nan_vec((size_t)B * T * C), *dkv = nan_vec((size_t)B * T * 2 * C);
    be64()->attention_backward(dq, dkv, dkv + C, r, c.out, c.lse, c.q, c.kv, c.kv + C, &c.s);
    fd_compare("probe attention dq", &f, c.q, dq, (size_t)B * T * C);
    fd_compare("probe attention dk, dv", &f, c.kv, dkv, (size_t)B * T * 2 * C);
    for (int b = 0; b < B; b++)
        for (int t = 1; t < T; t++)
            for (int i = 0; i < C; i++) EXPECT(dq[((size_t)b * T + t) * C + i] == 0);
    free(c.out); free(c.lse); free(c.q); free(c.kv); free(r); free(dq); free(dkv);
}

// A packed row [prefix][a][b] with segments gives the b tokens exactly what the plain row [prefix][b]
// gives them (the positions of b restart after the prefix; attention itself does not see positions).
TEST(ops_attention_packing_equals_separate_rows) {
    const int P = 3, A = 2, Bn = 3, NH = 2, HD = 4, stride = 3 * NH * HD;
    const int Tp = P + A + Bn, Ts = P + Bn;
    double *packed = rand_vec((size_t)Tp * stride, 1), *single = xmalloc(sizeof(double) * Ts * stride);
    memcpy(single, packed, sizeof(double) * P * stride);
    memcpy(single + P * stride, packed + (P + A) * stride, sizeof(double) * Bn * stride);
    int seg[8] = {0, 0, 0, 1, 1, 2, 2, 2};
    AttnShape sp = {1, Tp, NH, NH, HD, stride, stride, 1, NULL, seg, NULL, 0}, ss = {1, Ts, NH, NH, HD, stride, stride, 1, NULL, NULL, NULL, 0};
    double out_p[8 * 8], lse_p[2 * 8], out_s[6 * 8], lse_s[2 * 6];
    int qd = NH * HD;
    be64()->attention_forward(out_p, lse_p, packed, packed + qd, packed + 2 * qd, &sp);
    be64()->attention_forward(out_s, lse_s, single, single + qd, single + 2 * qd, &ss);
    double maxd = 0;
    for (int t = 0; t < Bn; t++)
        for (int i = 0; i < qd; i++) maxd = fmax(maxd, fabs(out_p[(P + A + t) * qd + i] - out_s[(P + t) * qd + i]));
    for (int t = 0; t < P; t++)
        for (int i = 0; i < qd; i++) maxd = fmax(maxd, fabs(out_p[t * qd + i] - out_s[t * qd + i]));
    EXPECTF(maxd < 1e-12, "packed and separate rows differ by %g", maxd);
    free(packed); free(single);
}

// Right padding: the real tokens of a padded row see exactly what they see in an unpadded row.
TEST(ops_attention_padding_invisible) {
    const int T = 6, len = 4, NH = 2, HD = 4, stride = 3 * NH * HD, qd = NH * HD;
    double *x = rand_vec((size_t)T * stride, 1), out_a[6 * 8], lse_a[12], out_b[4 * 8], lse_b[8];
    int kv_len[1] = {len};
    AttnShape sa = {1, T, NH, NH, HD, stride, stride, 0, kv_len, NULL, NULL, 0}, sb = {1, len, NH, NH, HD, stride, stride, 0, NULL, NULL, NULL, 0};
    be64()->attention_forward(out_a, lse_a, x, x + qd, x + 2 * qd, &sa);
    be64()->attention_forward(out_b, lse_b, x, x + qd, x + 2 * qd, &sb);
    double maxd = 0;
    for (int i = 0; i < len * qd; i++) maxd = fmax(maxd, fabs(out_a[i] - out_b[i]));
    EXPECTF(maxd < 1e-12, "padding changed real tokens by %g", maxd);
    free(x);
}

// ------------------------------------------------------------------------------------------------ classifier

typedef struct { double *logp, *lse, *logits; const int *targets; int N, V; } LpCtx;
static void lp_run(void *c_) {
    LpCtx *c = c_;
    be64()->logprob_forward(c->logp, c->lse, c->logits, c->targets, c->N, c->V);
}

TEST(ops_logprob_fd) {
    int N = 6, V = 11, targets[6] = {3, -1, 0, 10, -1, 5};
    LpCtx c = {nan_vec(N), nan_vec(N), rand_vec(N * V, 3), targets, N, V};
    double *r = rand_vec(N, 1), *dlogits = nan_vec(N * V);
    Fwd f = {lp_run, &c, c.logp, r, (size_t)N};
    loss_of(&f);
    for (int n = 0; n < N; n++) {  // forward against the definition
        double s = 0;
        for (int i = 0; i < V; i++) s += exp(c.logits[n * V + i]);
        double want = targets[n] >= 0 ? c.logits[n * V + targets[n]] - log(s) : 0;
        EXPECT_NEAR(c.logp[n], want, 1e-12);
    }
    be64()->logprob_backward(dlogits, c.logits, c.lse, targets, r, N, V);
    fd_compare("logprob dlogits", &f, c.logits, dlogits, N * V);
    // in place: dlogits may overwrite logits
    double *inplace = copy_vec(c.logits, N * V);
    be64()->logprob_backward(inplace, inplace, c.lse, targets, r, N, V);
    for (int i = 0; i < N * V; i++) EXPECT_NEAR(inplace[i], dlogits[i], 1e-14);
    free(c.logp); free(c.lse); free(c.logits); free(r); free(dlogits); free(inplace);
}

// ------------------------------------------------------------------------------------------------ embeddings, rows

typedef struct { double *out, *table, *pos; const int *ids; int N, C, B; } EmbCtx;
static void emb_run(void *c_) {
    EmbCtx *c = c_;
    be64()->embedding_forward(c->out, c->ids, c->table, c->N, c->C);
    be64()->add_broadcast_forward(c->out, c->pos, c->B, (size_t)(c->N / c->B) * c->C);
}

TEST(ops_embedding_fd) {
    int V = 7, C = 5, B = 2, T = 4, N = B * T, ids[8] = {1, 3, 1, -1, 6, 0, 3, 3};
    EmbCtx c = {nan_vec(N * C), rand_vec(V * C, 1), rand_vec(T * C, 1), ids, N, C, B};
    double *r = rand_vec(N * C, 1);
    Fwd f = {emb_run, &c, c.out, r, (size_t)N * C};
    loss_of(&f);
    for (int i = 0; i < C; i++) EXPECT_NEAR(c.out[3 * C + i], c.pos[3 * C + i], 0);  // id -1: zero row + position
    double *dt0 = rand_vec(V * C, 1), *dp0 = rand_vec(T * C, 1);
    double *dt = copy_vec(dt0, V * C), *dp = copy_vec(dp0, T * C);
    be64()->embedding_backward(dt, r, ids, N, C);
    be64()->add_broadcast_backward(dp, r, B, (size_t)T * C);
    double *d1 = delta(dt, dt0, V * C), *d2 = delta(dp, dp0, T * C);
    fd_compare("embedding dtable", &f, c.table, d1, V * C);
    fd_compare("position dpos", &f, c.pos, d2, T * C);
    free(c.out); free(c.table); free(c.pos); free(r); free(dt0); free(dp0); free(dt); free(dp); free(d1); free(d2);
}

typedef struct { double *dst, *dst0, *src; const int *oi, *ii; int M, C, N; } RowsCtx;
static void rows_run(void *c_) {  // dst = dst0 with rows replaced by src rows (the image-feature scatter)
    RowsCtx *c = c_;
    memcpy(c->dst, c->dst0, sizeof(double) * c->N * c->C);
    be64()->copy_rows(c->dst, c->oi, c->src, c->ii, c->M, c->C);
}

TEST(ops_rows_fd) {
    // 2 images of 3 feature rows scattered into 10 token rows; image 0 is used by two rows of the batch
    int C = 4, N = 10, M = 6, oi[6] = {1, 2, 3, 6, 7, 8}, ii[6] = {0, 1, 2, 0, 1, 2};
    RowsCtx c = {nan_vec(N * C), rand_vec(N * C, 1), rand_vec(2 * 3 * C, 1), oi, ii, M, C, N};
    double *r = rand_vec(N * C, 1);
    Fwd f = {rows_run, &c, c.dst, r, (size_t)N * C};
    loss_of(&f);
    double *dsrc = xcalloc(6 * C, sizeof(double));
    be64()->add_rows(dsrc, ii, r, oi, M, C);  // backward of the scatter: gather the gradient, summing reuse
    fd_compare("copy_rows dsrc", &f, c.src, dsrc, 6 * C);
    // gather (copy with an input index) then its backward add_rows with the index on the output side
    double g[3 * 4];
    int pick[3] = {9, 0, 9};
    be64()->copy_rows(g, NULL, c.dst, pick, 3, C);
    for (int i = 0; i < C; i++) { EXPECT_NEAR(g[i], c.dst[9 * C + i], 0); EXPECT_NEAR(g[C + i], c.dst[i], 0); }
    double acc[10 * 4] = {0};
    be64()->add_rows(acc, pick, g, NULL, 3, C);
    for (int i = 0; i < C; i++) EXPECT_NEAR(acc[9 * C + i], 2 * c.dst[9 * C + i], 1e-15);
    free(c.dst); free(c.dst0); free(c.src); free(r); free(dsrc);
}

// Patch embedding = im2col + matmul without bias; matches a direct convolution with stride = kernel.
typedef struct { double *out, *patches, *pixels, *w; int B, Cin, H, W, P, OC; } PatchCtx;
static void patch_run(void *c_) {
    PatchCtx *c = c_;
    int np = (c->H / c->P) * (c->W / c->P), K = c->Cin * c->P * c->P;
    be64()->im2col(c->patches, c->pixels, c->B, c->Cin, c->H, c->W, c->P);
    be64()->matmul_forward(c->out, c->patches, c->w, NULL, c->B * np, K, c->OC);
}

TEST(ops_patch_embedding_fd) {
    int B = 2, Cin = 3, H = 6, W = 9, P = 3, OC = 4, np = (H / P) * (W / P), K = Cin * P * P;
    PatchCtx c = {nan_vec(B * np * OC), nan_vec(B * np * K), rand_vec(B * Cin * H * W, 1), rand_vec(OC * K, 1), B, Cin, H, W, P, OC};
    double *r = rand_vec(B * np * OC, 1);
    Fwd f = {patch_run, &c, c.out, r, (size_t)B * np * OC};
    loss_of(&f);
    double maxerr = 0;  // direct convolution
    for (int b = 0; b < B; b++)
        for (int py = 0; py < H / P; py++)
            for (int px = 0; px < W / P; px++)
                for (int o = 0; o < OC; o++) {
                    double s = 0;
                    for (int ch = 0; ch < Cin; ch++)
                        for (int ky = 0; ky < P; ky++)
                            for (int kx = 0; kx < P; kx++)
                                s += c.w[((o * Cin + ch) * P + ky) * P + kx] *
                                     c.pixels[((b * Cin + ch) * H + py * P + ky) * W + px * P + kx];
                    maxerr = fmax(maxerr, fabs(s - c.out[((b * (H / P) + py) * (W / P) + px) * OC + o]));
                }
    EXPECTF(maxerr < 1e-12, "patch embedding differs from the convolution by %g", maxerr);
    double *dw = xcalloc(OC * K, sizeof(double));
    be64()->matmul_backward(NULL, dw, NULL, r, c.patches, c.w, B * np, K, OC);
    fd_compare("patch embedding dw", &f, c.w, dw, OC * K);
    free(c.out); free(c.patches); free(c.pixels); free(c.w); free(r); free(dw);
}

// ------------------------------------------------------------------------------------------------ fp32 backend agrees

// The fp32 reference backend computes the same thing as the fp64 one (no precision-specific bugs).
TEST(ops_fp32_matches_fp64) {
    int N = 7, C = 33, OC = 9;
    double *x = rand_vec(N * C, 1), *w = rand_vec(OC * C, 1), *b = rand_vec(OC, 1), out64[7 * 9];
    float *xf = xmalloc(4 * N * C), *wf = xmalloc(4 * OC * C), *bf = xmalloc(4 * OC), out32[7 * 9];
    for (int i = 0; i < N * C; i++) xf[i] = (float)x[i];
    for (int i = 0; i < OC * C; i++) wf[i] = (float)w[i];
    for (int i = 0; i < OC; i++) bf[i] = (float)b[i];
    backend_cpu64.matmul_forward(out64, x, w, b, N, C, OC);
    backend_cpu.matmul_forward(out32, xf, wf, bf, N, C, OC);
    for (int i = 0; i < N * OC; i++) EXPECT_NEAR(out32[i], out64[i], 1e-5);
    float lp32[7], lse32[7];
    double lp64[7], lse64[7];
    int t[7] = {0, 1, 2, 3, 4, 5, 6};
    backend_cpu64.logprob_forward(lp64, lse64, out64, t, N, OC);
    backend_cpu.logprob_forward(lp32, lse32, out32, t, N, OC);
    for (int i = 0; i < N; i++) EXPECT_NEAR(lp32[i], lp64[i], 1e-5);
    free(x); free(w); free(b); free(xf); free(wf); free(bf);
}

// ------------------------------------------------------------------------------------------------ generation
// (last in the file: the random inputs of the tests above stay what they were)

// copy_rows_strided against its definition: strided rows, index arrays, negative indices skipped (the
// destination keeps its values), NULL indices the identity.
TEST(ops_copy_rows_strided) {
    const int M = 5, C = 3, in_stride = 7, out_stride = 4, out_rows = 6;
    double *inp = rand_vec((size_t)M * in_stride, 1), *out = rand_vec((size_t)out_rows * out_stride, 1);
    double *before = copy_vec(out, (size_t)out_rows * out_stride);
    int out_idx[5] = {4, -1, 0, 5, 2}, inp_idx[5] = {1, 0, 4, 3, -2};
    be64()->copy_rows_strided(out, out_idx, out_stride, inp, inp_idx, in_stride, M, C);
    int written[6] = {0};
    for (int m = 0; m < M; m++) {
        if (out_idx[m] < 0 || inp_idx[m] < 0) continue;
        written[out_idx[m]] = 1;
        for (int c = 0; c < C; c++)
            EXPECTF(out[out_idx[m] * out_stride + c] == inp[inp_idx[m] * in_stride + c], "row %d col %d not copied", m, c);
    }
    for (int o = 0; o < out_rows; o++)
        for (int c = 0; c < out_stride; c++)
            if (!written[o] || c >= C) EXPECTF(out[o * out_stride + c] == before[o * out_stride + c], "row %d col %d touched", o, c);
    be64()->copy_rows_strided(out, NULL, out_stride, inp, NULL, in_stride, 2, C);  // identity: rows 0, 1
    for (int m = 0; m < 2; m++)
        for (int c = 0; c < C; c++) EXPECT(out[m * out_stride + c] == inp[m * in_stride + c]);
    free(inp); free(out); free(before);
}

// attention_decode at position i of a row = attention_forward (causal, key padding) at position i, when the
// cache holds the row's first i + 1 keys and values. Rows live in permuted cache slots; q is read at a row
// stride wider than NH*HD (the fused qkv rows); a row with length 0 gives zeros.
static void check_attention_decode(int B, int T, int NH, int NKV, int HD) {
    const int qd = NH * HD, kd = NKV * HD, stride = qd + 2 * kd, cap = T + 2, slots = B + 1;
    double *qkv = rand_vec((size_t)B * T * stride, 1.5), *out = nan_vec((size_t)B * T * qd), *lse = nan_vec((size_t)B * NH * T);
    int *kv_len = xmalloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) kv_len[b] = T - b % T;
    AttnShape as = {B, T, NH, NKV, HD, stride, stride, 1, kv_len, NULL, NULL, 0};
    be64()->attention_forward(out, lse, qkv, qkv + qd, qkv + qd + kd, &as);
    // every row's keys and values into slot (b + 1) % slots, at the cache's own row width
    double *kc = nan_vec((size_t)slots * cap * kd), *vc = nan_vec((size_t)slots * cap * kd);
    int *dst = xmalloc(sizeof(int) * B * T), *slot = xmalloc(sizeof(int) * (B + 1)), *len = xmalloc(sizeof(int) * (B + 1));
    for (int b = 0; b < B; b++)
        for (int t = 0; t < T; t++) dst[b * T + t] = t < kv_len[b] ? ((b + 1) % slots) * cap + t : -1;
    be64()->copy_rows_strided(kc, dst, kd, qkv + qd, NULL, stride, B * T, kd);
    be64()->copy_rows_strided(vc, dst, kd, qkv + qd + kd, NULL, stride, B * T, kd);
    // queries: row b at position i_b (its last real token, or an earlier one), gathered with their stride
    int *qsrc = xmalloc(sizeof(int) * B), *pos = xmalloc(sizeof(int) * B);
    for (int b = 0; b < B; b++) {
        pos[b] = (kv_len[b] - 1) - (b % 2) * (kv_len[b] / 2);
        qsrc[b] = b * T + pos[b];
        slot[b] = (b + 1) % slots;
        len[b] = pos[b] + 1;
    }
    slot[B] = 0;
    len[B] = 0;  // one more query row, with nothing to attend to
    double *q = rand_vec((size_t)(B + 1) * stride, 1), *o = nan_vec((size_t)(B + 1) * qd);
    be64()->copy_rows_strided(q, NULL, stride, qkv, qsrc, stride, B, qd);
    DecodeShape ds = {B + 1, NH, NKV, HD, stride, cap, len, slot};
    be64()->attention_decode(o, q, kc, vc, &ds);
    double maxd = 0;
    for (int b = 0; b < B; b++)
        for (int i = 0; i < qd; i++) maxd = fmax(maxd, fabs(o[b * qd + i] - out[(size_t)qsrc[b] * qd + i]));
    EXPECTF(maxd < 1e-12, "attention_decode B%d T%d H%d/%d HD%d differs from attention_forward by %g", B, T, NH, NKV, HD, maxd);
    for (int i = 0; i < qd; i++) EXPECTF(o[B * qd + i] == 0, "a row with length 0 must give zeros");
    free(qkv); free(out); free(lse); free(kv_len); free(kc); free(vc); free(dst); free(slot); free(len); free(qsrc);
    free(pos); free(q); free(o);
}

TEST(ops_attention_decode_matches_forward) {
    check_attention_decode(3, 7, 2, 2, 4);
    check_attention_decode(4, 9, 4, 2, 6);   // grouped-query heads
    check_attention_decode(2, 5, 6, 1, 8);   // one kv head for all
}

// ------------------------------------------------------------------------------------------------ LoRA ops
// (last in the file: earlier tests keep their random inputs)

typedef struct { double *out, *out0, *inp; int N, C, os, is; float s; } AddStridedCtx;
static void add_strided_run(void *c_) {
    AddStridedCtx *c = c_;
    memcpy(c->out, c->out0, sizeof(double) * c->N * c->os);
    be64()->add_strided(c->out, c->os, c->inp, c->is, c->N, c->C, c->s);
}

TEST(ops_add_strided_and_dropout_fd) {
    // a (N, 3) update added into columns 2..4 of rows of 9, read from rows of 5
    int N = 4, C = 3, os = 9, is = 5;
    AddStridedCtx c = {nan_vec(N * os), rand_vec(N * os, 1), rand_vec(N * is, 1), N, C, os, is, 0.75f};
    double *r = rand_vec(N * os, 1);
    Fwd f = {add_strided_run, &c, c.out, r, (size_t)N * os};
    loss_of(&f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < os; k++) {
            double want = c.out0[n * os + k] + (k < C ? 0.75 * c.inp[n * is + k] : 0);
            EXPECT_NEAR(c.out[n * os + k], want, 1e-15);
        }
    double *g = xcalloc(N * is, sizeof(double));  // d/d inp: s * r on the covered columns
    for (int n = 0; n < N; n++) for (int k = 0; k < C; k++) g[n * is + k] = 0.75 * r[n * os + k];
    fd_compare("add_strided", &f, c.inp, g, N * is);
    // dropout: kept elements scaled by 1/(1-p), about p of them dropped, its own backward, seeded
    size_t n = 20000;
    double *x = rand_vec(n, 1), *y = nan_vec(n), *y2 = nan_vec(n);
    be64()->dropout(y, x, n, 0.25f, 77);
    size_t kept = 0;
    for (size_t i = 0; i < n; i++) {
        int k = dropout_keep(77, i, 0.25f);
        kept += k;
        EXPECT_NEAR(y[i], k ? x[i] / 0.75 : 0.0, 1e-15);
    }
    EXPECTF(fabs((double)kept / n - 0.75) < 0.02, "kept %.3f of the elements, expected 0.75", (double)kept / n);
    be64()->dropout(y2, x, n, 0.25f, 78);
    size_t same = 0;
    for (size_t i = 0; i < n; i++) same += (y[i] == 0) == (y2[i] == 0);
    EXPECTF(same < n, "another seed must give another mask");
    be64()->dropout(y2, x, n, 0.0f, 5);  // p = 0: the identity
    for (size_t i = 0; i < 50; i++) EXPECT_NEAR(y2[i], x[i], 0);
    free(c.out); free(c.out0); free(c.inp); free(r); free(g); free(x); free(y); free(y2);
}

// ------------------------------------------------------------------------------------------------ fused ops
// (last in the file: earlier tests keep their random inputs)
// A fused op equals the sequence of ops it stands for, bit for bit, on both CPU backends (fp32 and fp64):
// outputs poisoned with NaN, buffers compared byte for byte.

static void *be_upload(const Backend *be, const double *h, size_t n) {
    float *f = xmalloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++) f[i] = (float)h[i];
    void *p = be->malloc(n * be->act_bytes + 1);
    be->upload_act(p, f, n);
    free(f);
    return p;
}
static void *be_rand(const Backend *be, size_t n, double scale) {
    double *h = rand_vec(n, scale);
    void *p = be_upload(be, h, n);
    free(h);
    return p;
}
static void *be_nan(const Backend *be, size_t n) {
    double *h = nan_vec(n);
    void *p = be_upload(be, h, n);
    free(h);
    return p;
}
static void *be_dup(const Backend *be, const void *x, size_t bytes) {
    void *p = be->malloc(bytes + 1);
    memcpy(p, x, bytes);
    return p;
}
static int be_same(const void *x, const void *y, size_t bytes) { return memcmp(x, y, bytes) == 0; }

// sum = a + b and the RMSNorm of sum, fused, against add then rmsnorm_forward; and with sum aliasing a or b
static void check_add_rmsnorm(const Backend *be, int N, int C) {
    const size_t n = (size_t)N * C, act = n * be->act_bytes, acc = (size_t)N * be->acc_bytes;
    void *a = be_rand(be, n, 2), *b = be_rand(be, n, 1), *w = be_rand(be, C, 1.5);
    void *sum0 = be_nan(be, n), *out0 = be_nan(be, n), *rstd0 = be->malloc(acc);
    be->add(sum0, a, b, n);
    be->rmsnorm_forward(out0, rstd0, sum0, w, N, C, 1e-5f);
    for (int alias = 0; alias < 3; alias++) {  // sum separate, sum = a, sum = b
        void *ac = be_dup(be, a, act), *bc = be_dup(be, b, act), *out = be_nan(be, n), *rstd = be_nan(be, N);
        void *sum = alias == 0 ? be_nan(be, n) : alias == 1 ? ac : bc;
        be->add_rmsnorm_forward(sum, out, rstd, ac, bc, w, N, C, 1e-5f);
        EXPECTF(be_same(sum, sum0, act), "%s add_rmsnorm N%d C%d alias %d: the sum differs from add", be->name, N, C, alias);
        EXPECTF(be_same(out, out0, act), "%s add_rmsnorm N%d C%d alias %d: out differs from rmsnorm_forward", be->name, N, C, alias);
        EXPECTF(be_same(rstd, rstd0, acc), "%s add_rmsnorm N%d C%d alias %d: rstd differs", be->name, N, C, alias);
        if (alias != 1) EXPECTF(be_same(ac, a, act), "%s add_rmsnorm: a was written", be->name);
        if (alias != 2) EXPECTF(be_same(bc, b, act), "%s add_rmsnorm: b was written", be->name);
        if (alias == 0) be->free(sum);
        be->free(ac); be->free(bc); be->free(out); be->free(rstd);
    }
    be->free(a); be->free(b); be->free(w); be->free(sum0); be->free(out0); be->free(rstd0);
}

TEST(ops_add_rmsnorm_equals_add_then_rmsnorm) {
    const Backend *bes[2] = {&backend_cpu, &backend_cpu64};
    for (int i = 0; i < 2; i++) {
        check_add_rmsnorm(bes[i], 3, 13);
        check_add_rmsnorm(bes[i], 1, 64);
        check_add_rmsnorm(bes[i], 5, 4096);
    }
}

// rope_kv_append against rope_forward and two copy_rows_strided: qkv rows at a stride wider than the heads
// (the extra columns untouched), grouped-query heads, rows appended to scattered cache rows, a row with a
// negative destination rotated but not appended, cache rows it does not name left as they were; and a NULL
// destination list (row n to cache row n).
static void check_rope_kv_append(const Backend *be, int N, int NH, int NKV, int HD, int pad) {
    const int qdim = NH * HD, kvdim = NKV * HD, stride = qdim + 2 * kvdim + pad, rows = 2 * N + 3;
    const size_t nq = (size_t)N * stride, nc = (size_t)rows * kvdim, ab = be->act_bytes;
    int *pos = xmalloc(sizeof(int) * N), *dst = xmalloc(sizeof(int) * N);
    for (int i = 0; i < N; i++) {
        pos[i] = (i * 37 + 5) % 300;
        dst[i] = i % 4 == 1 ? -1 : (2 * N + 2) - 2 * i;  // distinct, descending, from the end of the cache
    }
    for (int null_dst = 0; null_dst < 2; null_dst++) {
        const int *d = null_dst ? NULL : dst;
        void *qkv = be_rand(be, nq, 1), *kc = be_rand(be, nc, 1), *vc = be_rand(be, nc, 1);
        void *qkv0 = be_dup(be, qkv, nq * ab), *kc0 = be_dup(be, kc, nc * ab), *vc0 = be_dup(be, vc, nc * ab);
        be->rope_forward(qkv0, pos, N, NH + NKV, HD, stride, 10000.0f);
        be->copy_rows_strided(kc0, d, kvdim, act_at(be, qkv0, qdim), NULL, stride, N, kvdim);
        be->copy_rows_strided(vc0, d, kvdim, act_at(be, qkv0, qdim + kvdim), NULL, stride, N, kvdim);
        be->rope_kv_append(qkv, pos, kc, vc, d, N, NH, NKV, HD, stride, 10000.0f);
        EXPECTF(be_same(qkv, qkv0, nq * ab), "%s rope_kv_append N%d H%d/%d HD%d: qkv differs from rope_forward", be->name, N, NH, NKV, HD);
        EXPECTF(be_same(kc, kc0, nc * ab), "%s rope_kv_append N%d H%d/%d HD%d dst %s: the key cache differs", be->name, N, NH, NKV, HD,
                null_dst ? "NULL" : "scattered");
        EXPECTF(be_same(vc, vc0, nc * ab), "%s rope_kv_append N%d H%d/%d HD%d dst %s: the value cache differs", be->name, N, NH, NKV, HD,
                null_dst ? "NULL" : "scattered");
        be->free(qkv); be->free(kc); be->free(vc); be->free(qkv0); be->free(kc0); be->free(vc0);
    }
    free(pos); free(dst);
}

TEST(ops_rope_kv_append_equals_rope_and_copies) {
    const Backend *bes[2] = {&backend_cpu, &backend_cpu64};
    for (int i = 0; i < 2; i++) {
        check_rope_kv_append(bes[i], 3, 4, 2, 6, 3);     // grouped-query heads, odd padding
        check_rope_kv_append(bes[i], 5, 3, 3, 8, 0);
        check_rope_kv_append(bes[i], 6, 6, 1, 16, 8);    // one kv head
        check_rope_kv_append(bes[i], 2, 32, 32, 128, 0); // LLaVA-7B heads
    }
    // the rotation by hand: position 1, head 0 of q, pair (0, HD/2) at frequency 1
    double qkv[3 * 8], kc[8], vc[8];
    for (int i = 0; i < 24; i++) qkv[i] = urand();
    double a = qkv[0], b = qkv[4], k0 = qkv[8], k4 = qkv[12];
    int pos[1] = {1}, dst[1] = {0};
    be64()->rope_kv_append(qkv, pos, kc, vc, dst, 1, 1, 1, 8, 24, 10000.0f);
    EXPECT_NEAR(qkv[0], a * cos(1.0) - b * sin(1.0), 1e-12);
    EXPECT_NEAR(qkv[4], b * cos(1.0) + a * sin(1.0), 1e-12);
    EXPECT_NEAR(kc[0], k0 * cos(1.0) - k4 * sin(1.0), 1e-12);
    for (int i = 0; i < 8; i++) EXPECT(kc[i] == qkv[8 + i] && vc[i] == qkv[16 + i]);
}

// Every op of the contract is filled in every backend table, the CUDA one too where it is built (a NULL
// entry would crash the first model that calls it). The fields from `malloc` on are function pointers;
// replay and replay_free are the optional ones (model/ops.h).
#ifdef VLM_CUDA
extern const Backend backend_cuda;
#endif
TEST(ops_backend_tables_fill_every_op) {
    const Backend *tables[3] = {&backend_cpu, &backend_cpu64, NULL};
#ifdef VLM_CUDA
    tables[2] = &backend_cuda;
#endif
    const size_t fp = sizeof(void (*)(void));
    for (int t = 0; t < 3 && tables[t]; t++)
        for (size_t off = offsetof(Backend, malloc); off + fp <= sizeof(Backend); off += fp) {
            if (off == offsetof(Backend, replay) || off == offsetof(Backend, replay_free)) continue;
            void (*f)(void);
            memcpy(&f, (const char *)tables[t] + off, fp);
            EXPECTF(f != NULL, "backend '%s': the op at byte %zu of struct Backend is NULL", tables[t]->name, off);
        }
}

// Many rows over few positions take the tabulated cosines and sines (model/ops_cpu.c, rope_apply): bitwise
// each row rotated alone (the direct evaluation), forward and backward, fp32 and fp64.
TEST(ops_rope_table_equals_direct) {
    const Backend *bes[2] = {&backend_cpu, &backend_cpu64};
    const int N = 64, heads = 6, HD = 32, stride = heads * HD;
    for (int k = 0; k < 2; k++) {
        const Backend *be = bes[k];
        const size_t es = be->act_bytes, n = (size_t)N * stride;
        int pos[64];
        for (int i = 0; i < N; i++) pos[i] = (i * 5) % 13;
        char *x = xmalloc(es * n), *y = xmalloc(es * n);
        for (size_t i = 0; i < n; i++) {
            double v = urand();
            if (es == 4) ((float *)x)[i] = (float)v; else ((double *)x)[i] = v;
        }
        for (int dir = 0; dir < 2; dir++) {
            memcpy(y, x, es * n);
            void (*rope)(void *, const int *, int, int, int, int, float) = dir ? be->rope_backward : be->rope_forward;
            rope(x, pos, N, heads, HD, stride, 10000.0f);                      // tabulated: 13 positions, 64 rows
            for (int r = 0; r < N; r++) rope(y + es * r * stride, pos + r, 1, heads, HD, stride, 10000.0f);
            EXPECTF(!memcmp(x, y, es * n), "rope %s (%s): the table differs from the direct angles", dir ? "backward" : "forward",
                    be->name);
        }
        free(x); free(y);
    }
}

// The fp32 vector exponentials (model/ops_cpu.c: exp16 in SwiGLU, the sigmoid activations and the attention
// softmax) against the plain loops (VLM_CPU_VEC=0, libm's expf): within 2e-6 relative (a few ulp), at the
// extremes too (exp under- and overflow, saturated sigmoids).
static double rel_err32(const float *a, const float *b, size_t n) {
    double e = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)a[i] - b[i]) / fmax(fabs((double)b[i]), 1e-30);
        if (!(d <= e)) e = d;  // NaN counts as the largest
    }
    return e;
}
static void run_vec_and_loop(void (*fn)(void *), void *ctx) {
    setenv("VLM_CPU_VEC", "0", 1);
    fn(ctx);
    unsetenv("VLM_CPU_VEC");
}
typedef struct { int which; float *out, *inp, *dout; size_t n; int N, F; AttnShape s; float *lse; } VecCtx;
static void vec_run(void *c_) {
    VecCtx *c = c_;
    if (c->which == 0) backend_cpu.act_forward(ACT_QUICK_GELU, c->out, c->inp, c->n);
    if (c->which == 1) backend_cpu.act_forward(ACT_SILU, c->out, c->inp, c->n);
    if (c->which == 2) backend_cpu.swiglu_forward(c->out, c->inp, c->N, c->F);
    if (c->which == 3) backend_cpu.swiglu_backward(c->out, c->dout, c->inp, c->N, c->F);
    if (c->which == 4) {
        const int qd = c->s.NH * c->s.HD;
        backend_cpu.attention_forward(c->out, c->lse, c->inp, c->inp + qd, c->inp + 2 * qd, &c->s);
    }
}
TEST(ops_vector_exp_close_to_loop) {
    const size_t n = 3001;
    const int N = 5, F = 37;
    float *inp = xmalloc(sizeof(float) * n), *dout = xmalloc(sizeof(float) * n);
    float *a = xmalloc(sizeof(float) * n), *b = xmalloc(sizeof(float) * n), *la = xmalloc(4 * 512), *lb = xmalloc(4 * 512);
    for (size_t i = 0; i < n; i++) { inp[i] = (float)(60 * urand()); dout[i] = (float)urand(); }
    inp[0] = -200; inp[1] = 200; inp[2] = 0; inp[3] = -88; inp[4] = 89; inp[5] = -1e-6f;
    const char *names[5] = {"quick_gelu", "silu", "swiglu forward", "swiglu backward", "attention forward"};
    for (int w = 0; w < 5; w++) {
        VecCtx c = {w, a, inp, dout, n, N, F, {2, 19, 2, 2, 8, 3 * 16, 3 * 16, 1, NULL, NULL, NULL, 0}, la};
        if (w == 4) for (size_t i = 0; i < 2 * 19 * 48; i++) inp[i] = (float)(3 * urand());
        const size_t m = w < 2 ? n : w == 2 ? (size_t)N * F : w == 3 ? (size_t)N * 2 * F : 2 * 19 * 16;
        memset(a, 0, sizeof(float) * n); memset(b, 0, sizeof(float) * n);
        vec_run(&c);
        c.out = b; c.lse = lb;
        run_vec_and_loop(vec_run, &c);
        double e = rel_err32(a, b, m);
        EXPECTF(e <= 2e-6, "%s: the vector exp path differs from the loop by %.3g relative", names[w], e);
        if (w == 4) EXPECTF(rel_err32(la, lb, 2 * 2 * 19) <= 2e-6, "attention lse differs");
    }
    free(inp); free(dout); free(a); free(b); free(la); free(lb);
}

// The fp32 attention's vector kernels (model/ops_cpu.c, attention_forward_vec / attention_backward_vec:
// blocks of queries, only keys up to the last visible one) against the plain loops (VLM_CPU_VEC=0): the same
// sums in the same order, so they differ only by the exponentials (exp16 against expf): within 1e-5 of each
// array's largest value, over causal and bidirectional masks, grouped-query heads, key padding, tree masks of
// packed rows, head dims that are not multiples of 16 and T across the 16-key blocks. Then q_rows: the
// listed queries bitwise the full computation, the others 0, and the backward with dout zero off the listed
// rows bitwise the full backward.
static double max_abs_diff_rel(const float *a, const float *b, size_t n) {
    double m = 0, e = 0;
    for (size_t i = 0; i < n; i++) {
        m = fmax(m, fabs((double)b[i]));
        double d = fabs((double)a[i] - b[i]);
        if (!(d <= e)) e = d;
    }
    return e / fmax(m, 1e-30);
}
typedef struct { float *out, *lse, *qkv, *dout, *dqkv; AttnShape s; } AttnVecCtx;
static void attn_vec_run(void *c_) {
    AttnVecCtx *c = c_;
    const int qd = c->s.NH * c->s.HD, kd = c->s.NKV * c->s.HD;
    backend_cpu.attention_forward(c->out, c->lse, c->qkv, c->qkv + qd, c->qkv + qd + kd, &c->s);
    backend_cpu.attention_backward(c->dqkv, c->dqkv + qd, c->dqkv + qd + kd, c->dout, c->out, c->lse, c->qkv,
                                   c->qkv + qd, c->qkv + qd + kd, &c->s);
}
static void check_attention_vec(int B, int T, int NH, int NKV, int HD, int causal, int pad, int packed) {
    const int qd = NH * HD, kd = NKV * HD, stride = qd + 2 * kd, N = B * T;
    const size_t nqkv = (size_t)N * stride, nout = (size_t)N * qd, nlse = (size_t)B * NH * T;
    int *kv_len = xmalloc(sizeof(int) * B), *seg = xmalloc(sizeof(int) * N), *rows = xmalloc(sizeof(int) * N);
    for (int b = 0; b < B; b++) kv_len[b] = T - (b * 3) % (T > 3 ? 3 : 1);
    for (int n = 0; n < N; n++) seg[n] = (n % T) < T / 3 ? 0 : 1 + ((n % T) * 2 / T);
    float *qkv = xmalloc(4 * nqkv), *dout = xmalloc(4 * nout);
    for (size_t i = 0; i < nqkv; i++) qkv[i] = (float)(2 * urand());
    for (size_t i = 0; i < nout; i++) dout[i] = (float)urand();
    AttnVecCtx c[2];
    for (int v = 0; v < 2; v++) {
        c[v] = (AttnVecCtx){xmalloc(4 * nout), xmalloc(4 * nlse), qkv, dout, xmalloc(4 * nqkv),
                            {B, T, NH, NKV, HD, stride, stride, causal, pad ? kv_len : NULL, packed ? seg : NULL, NULL, 0}};
        for (size_t i = 0; i < nqkv; i++) c[v].dqkv[i] = 7;  // q, k, v columns all overwritten
    }
    attn_vec_run(&c[0]);                    // vector kernels
    run_vec_and_loop(attn_vec_run, &c[1]);  // the loops
    char what[96];
    snprintf(what, sizeof(what), "B%d T%d H%d/%d HD%d causal %d pad %d packed %d", B, T, NH, NKV, HD, causal, pad, packed);
    EXPECTF(max_abs_diff_rel(c[0].out, c[1].out, nout) <= 1e-5, "attention forward (%s): vector != loop", what);
    EXPECTF(max_abs_diff_rel(c[0].lse, c[1].lse, nlse) <= 1e-5, "attention lse (%s): vector != loop", what);
    EXPECTF(max_abs_diff_rel(c[0].dqkv, c[1].dqkv, nqkv) <= 1e-5, "attention backward (%s): vector != loop", what);
    // q_rows: every third token plus the last of each row
    int nr = 0;
    for (int n = 0; n < N; n++) if (n % 3 == 1 || n % T == T - 1) rows[nr++] = n;
    float *dsub = xmalloc(4 * nout), *full_dqkv = xmalloc(4 * nqkv);
    memset(dsub, 0, 4 * nout);
    for (int m = 0; m < nr; m++) memcpy(dsub + (size_t)rows[m] * qd, dout + (size_t)rows[m] * qd, 4 * qd);
    c[1] = c[0];
    c[1].dout = dsub; c[1].dqkv = full_dqkv;
    c[1].out = xmalloc(4 * nout); c[1].lse = xmalloc(4 * nlse);
    attn_vec_run(&c[1]);  // full, dout zero off the rows
    AttnVecCtx sub = c[1];
    sub.out = xmalloc(4 * nout); sub.lse = xmalloc(4 * nlse); sub.dqkv = xmalloc(4 * nqkv);
    sub.s.q_rows = rows; sub.s.n_q_rows = nr;
    for (size_t i = 0; i < nqkv; i++) sub.dqkv[i] = 7;
    attn_vec_run(&sub);
    int bad = 0;
    for (int n = 0; n < N; n++) {
        int listed = 0;
        for (int m = 0; m < nr; m++) listed |= rows[m] == n;
        for (int d = 0; d < qd; d++) {
            const float a = sub.out[(size_t)n * qd + d], b = listed ? c[1].out[(size_t)n * qd + d] : 0;
            bad += memcmp(&a, &b, 4) != 0;
        }
    }
    EXPECTF(!bad, "attention q_rows (%s): %d outputs differ from the full forward (or are not 0)", what, bad);
    EXPECTF(!memcmp(sub.dqkv, full_dqkv, 4 * nqkv), "attention q_rows backward (%s): not bitwise the full one", what);
    for (int v = 0; v < 2; v++) { free(c[v].out); free(c[v].lse); }
    free(c[0].dqkv); free(sub.out); free(sub.lse); free(sub.dqkv); free(full_dqkv); free(dsub);
    free(qkv); free(dout); free(kv_len); free(seg); free(rows);
}
TEST(ops_attention_vector_close_to_loop) {
    if (!gemm_f32_avx512()) return;  // no AVX-512: the loops are the only path
    check_attention_vec(3, 25, 4, 4, 32, 1, 0, 0);   // the demo decoder's shape
    check_attention_vec(4, 10, 4, 4, 24, 0, 0, 0);   // the demo tower's (bidirectional)
    check_attention_vec(2, 33, 6, 2, 40, 1, 1, 0);   // grouped-query heads, key padding, 3 vectors of 40
    check_attention_vec(2, 19, 2, 1, 64, 1, 0, 1);   // tree mask of packed rows, 4 vectors
    check_attention_vec(2, 7, 2, 2, 8, 0, 1, 1);     // fewer keys than a vector
    check_attention_vec(1, 70, 2, 2, 16, 1, 1, 0);   // several key blocks
}

// The gradient norm's sum of squares (model/ops_cpu.c cpu_sumsq): the fp32 vector path (16 interleaved double
// sums per chunk) within 1e-12 of the loop's single chain, and bitwise the same with 1 and 2 threads
typedef struct { const float *x; size_t n; double s; } SumsqCtx;
static void sumsq_run(void *c_) { SumsqCtx *c = c_; backend_cpu.sumsq(&c->s, c->x, c->n); }
TEST(ops_sumsq_vector_close_to_loop) {
    const size_t n = 200003;  // several chunks of 2^16 and a tail
    float *x = xmalloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) x[i] = (float)urand() * (i % 7 == 0 ? 100.0f : 1.0f);
    for (size_t i = 70000; i < 90000; i++) x[i] = i % 3 ? 0.0f : -0.0f;  // zero blocks, skipped by the vector path
    SumsqCtx a = {x, n, 0}, b = {x, n, 0}, c = {x, n, 0};
    const int saved = omp_get_max_threads();
    omp_set_num_threads(1);
    sumsq_run(&a);
    run_vec_and_loop(sumsq_run, &b);
    omp_set_num_threads(2);
    sumsq_run(&c);
    omp_set_num_threads(saved);
    EXPECTF(fabs(a.s - b.s) <= 1e-12 * b.s, "sumsq: vector %.17g, loop %.17g", a.s, b.s);
    EXPECTF(a.s == c.s, "sumsq: 2 threads %.17g, 1 thread %.17g", c.s, a.s);
    free(x);
}

// The norms' row sums in the fp32 vector path (model/ops_cpu.c dot_f64_16, mean_var_f64_16: 16 interleaved
// double sums) against the loops' single chains: rmsnorm forward and backward, layernorm forward, at widths
// that are and are not multiples of 16
typedef struct { float *x, *g, *w, *b, *y, *r, *m, *dx; int N, C; } NormVecCtx;
static void norm_vec_run(void *c_) {
    NormVecCtx *c = c_;
    backend_cpu.rmsnorm_forward(c->y, c->r, c->x, c->w, c->N, c->C, 1e-5f);
    memset(c->dx, 0, sizeof(float) * c->N * c->C);
    backend_cpu.rmsnorm_backward(c->dx, NULL, c->g, c->x, c->w, c->r, c->N, c->C);
    backend_cpu.layernorm_forward(c->y + c->N * c->C, c->m, c->r + c->N, c->x, c->w, c->b, c->N, c->C, 1e-5f);
}
TEST(ops_norm_vector_sums_close_to_loop) {
    const int widths[3] = {128, 96, 37}, N = 9;
    for (int t = 0; t < 3; t++) {
        const int C = widths[t];
        NormVecCtx c[2];
        float *x = xmalloc(sizeof(float) * N * C), *g = xmalloc(sizeof(float) * N * C);
        float *w = xmalloc(sizeof(float) * C), *b = xmalloc(sizeof(float) * C);
        for (int i = 0; i < N * C; i++) { x[i] = (float)(3 * urand() + 0.5); g[i] = (float)urand(); }
        for (int i = 0; i < C; i++) { w[i] = (float)(1 + 0.3 * urand()); b[i] = (float)urand(); }
        for (int v = 0; v < 2; v++)
            c[v] = (NormVecCtx){x, g, w, b, xmalloc(sizeof(float) * 2 * N * C), xmalloc(sizeof(float) * 2 * N),
                             xmalloc(sizeof(float) * N), xmalloc(sizeof(float) * N * C), N, C};
        norm_vec_run(&c[0]);
        run_vec_and_loop(norm_vec_run, &c[1]);
        EXPECTF(max_abs_diff_rel(c[0].y, c[1].y, (size_t)2 * N * C) <= 1e-6, "C=%d: norm outputs: vector != loop", C);
        EXPECTF(max_abs_diff_rel(c[0].r, c[1].r, (size_t)2 * N) <= 1e-6, "C=%d: rstd: vector != loop", C);
        EXPECTF(max_abs_diff_rel(c[0].m, c[1].m, (size_t)N) <= 1e-6, "C=%d: layernorm mean: vector != loop", C);
        EXPECTF(max_abs_diff_rel(c[0].dx, c[1].dx, (size_t)N * C) <= 1e-6, "C=%d: rmsnorm dinp: vector != loop", C);
        for (int v = 0; v < 2; v++) { free(c[v].y); free(c[v].r); free(c[v].m); free(c[v].dx); }
        free(x); free(g); free(w); free(b);
    }
}

// The thread count for the machine's load (util/threads.h): the cores the other processes leave, rounded,
// at least 1 and at most the maximum, and the current count near a midpoint (no flapping around it)
TEST(ops_threads_choose_follows_load) {
    EXPECT_INT_EQ(threads_choose(0.0, 2, 2, 2), 2);
    EXPECT_INT_EQ(threads_choose(0.2, 1, 2, 2), 2);
    EXPECT_INT_EQ(threads_choose(0.9, 2, 2, 2), 1);
    EXPECT_INT_EQ(threads_choose(3.5, 2, 2, 2), 1);
    EXPECT_INT_EQ(threads_choose(0.45, 1, 2, 2), 1);
    EXPECT_INT_EQ(threads_choose(0.45, 2, 2, 2), 2);
    EXPECT_INT_EQ(threads_choose(0.0, 1, 1, 2), 1);
    EXPECT_INT_EQ(threads_choose(1.0, 16, 16, 16), 15);  // a larger machine gives up one core for one busy process
    EXPECT_INT_EQ(threads_choose(0.0, 3, 8, 16), 8);
}

// ------------------------------------------------------------------------------------------------ channel scale
// (at the end of the file: the tests above keep the random inputs they were tuned with)

typedef struct { double *out, *inp, *s; int N, C; } ChannelScaleCtx;
static void channel_scale_run(void *c_) {
    ChannelScaleCtx *c = c_;
    be64()->channel_scale_forward(c->out, c->inp, c->s, c->N, c->C);
}

// DINOv2's layer scale: d inp = dout * s, ds accumulates the column sums of dout * inp; in place (dinp = dout) too
TEST(ops_channel_scale_fd) {
    const int N = 5, C = 7;
    ChannelScaleCtx c = {nan_vec(N * C), rand_vec(N * C, 1), rand_vec(C, 1.5), N, C};
    double *r = rand_vec(N * C, 1);
    Fwd f = {channel_scale_run, &c, c.out, r, (size_t)N * C};
    loss_of(&f);
    for (int n = 0; n < N; n++)
        for (int k = 0; k < C; k++) EXPECT_NEAR(c.out[n * C + k], c.inp[n * C + k] * c.s[k], 0);
    double *dinp = nan_vec(N * C), *ds0 = rand_vec(C, 1), *ds = copy_vec(ds0, C);
    be64()->channel_scale_backward(dinp, ds, r, c.inp, c.s, N, C);
    double *d_s = delta(ds, ds0, C);
    fd_compare("channel_scale dinp", &f, c.inp, dinp, (size_t)N * C);
    fd_compare("channel_scale ds", &f, c.s, d_s, C);
    double *inplace = copy_vec(r, N * C);  // dinp aliasing dout: ds still reads the incoming gradient
    memcpy(ds, ds0, sizeof(double) * C);
    be64()->channel_scale_backward(inplace, ds, inplace, c.inp, c.s, N, C);
    for (int i = 0; i < N * C; i++) EXPECT_NEAR(inplace[i], dinp[i], 0);
    for (int k = 0; k < C; k++) EXPECT_NEAR(ds[k] - ds0[k], d_s[k], 1e-15);
    free(c.out); free(c.inp); free(c.s); free(r); free(dinp); free(ds0); free(ds); free(d_s); free(inplace);
}
