// AdamW and gradient clipping against torch.optim.AdamW and torch.nn.utils.clip_grad_norm_
// (tests/fixtures/optim/adamw.safetensors from tests/ref/make_fixtures.py).
#include <stdlib.h>
#include <string.h>

#include "../model/params.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"

static double *load_f64(const SafeTensors *st, const char *name, size_t *n) {
    const STTensor *t = st_find(st, name);
    if (!t || t->dtype != DT_F64) fatal("adamw.safetensors: no F64 tensor '%s'", name);
    double *x = xmalloc(sizeof(double) * t->numel);
    memcpy(x, t->data, sizeof(double) * t->numel);
    if (n) *n = t->numel;
    return x;
}

static void check_adamw(const Backend *be, double tol) {
    SafeTensors *st = st_open_or_die("tests/fixtures/optim/adamw.safetensors");
    size_t n;
    double *p0 = load_f64(st, "p0", &n), *grads = load_f64(st, "grads", NULL), *after = load_f64(st, "after", NULL);
    // fp64 backend: act and acc are doubles, so the host copies go through the acc path unchanged
    void *p = be->malloc(n * be->act_bytes), *g = be->malloc(n * be->act_bytes);
    void *m = be->malloc(n * be->acc_bytes), *v = be->malloc(n * be->acc_bytes);
    float *tmp = xmalloc(sizeof(float) * n);
    double *out = xmalloc(sizeof(double) * n);
    if (be->act_bytes == 8) be->upload_acc(p, p0, n);
    else { for (size_t i = 0; i < n; i++) tmp[i] = (float)p0[i]; be->upload_act(p, tmp, n); }
    for (int step = 0; step < 4; step++) {
        if (be->act_bytes == 8) be->upload_acc(g, grads + step * n, n);
        else { for (size_t i = 0; i < n; i++) tmp[i] = (float)grads[step * n + i]; be->upload_act(g, tmp, n); }
        be->adamw_update(p, NULL, g, m, v, n, 1e-2f, 0.9f, 0.95f, 1e-8f, 0.02f, step + 1, 1.0f);
        if (be->act_bytes == 8) be->download_acc(out, p, n);
        else { be->download_act(tmp, p, n); for (size_t i = 0; i < n; i++) out[i] = tmp[i]; }
        double worst = 0;
        for (size_t i = 0; i < n; i++) worst = fmax(worst, fabs(out[i] - after[step * n + i]));
        EXPECTF(worst <= tol, "%s AdamW step %d: max abs error %.3g", be->name, step + 1, worst);
    }
    be->free(p); be->free(g); be->free(m); be->free(v);
    free(tmp); free(out); free(p0); free(grads); free(after);
    st_close(st);
}

// Two copies of one AdamW state (weights p, master copy w, moments m and v): the plain loop (VLM_CPU_VEC=0)
// steps the first, the AVX-512 path of model/ops_cpu.c the second
typedef struct { float *p[2], *w[2], *m[2], *v[2]; size_t n; } AdamwPair;

static void adamw_pair_init(AdamwPair *a, const float *p0, size_t n) {
    a->n = n;
    for (int k = 0; k < 2; k++) {
        a->p[k] = xmalloc(sizeof(float) * n); a->w[k] = xmalloc(sizeof(float) * n);
        a->m[k] = xcalloc(n, sizeof(float)); a->v[k] = xcalloc(n, sizeof(float));
        memcpy(a->p[k], p0, sizeof(float) * n);
    }
}
static void adamw_pair_step(AdamwPair *a, const float *g, float wd, int step, float grad_scale) {
    for (int k = 0; k < 2; k++) {
        if (k == 0) setenv("VLM_CPU_VEC", "0", 1);
        backend_cpu.adamw_update(a->w[k], a->p[k], g, a->m[k], a->v[k], a->n, 1e-3f, 0.9f, 0.95f, 1e-8f, wd, step, grad_scale);
        unsetenv("VLM_CPU_VEC");
    }
}
static int adamw_pair_equal(const AdamwPair *a) {
    const size_t b = sizeof(float) * a->n;
    return !memcmp(a->p[0], a->p[1], b) && !memcmp(a->w[0], a->w[1], b) && !memcmp(a->m[0], a->m[1], b) && !memcmp(a->v[0], a->v[1], b);
}
static void adamw_pair_free(AdamwPair *a) {
    for (int k = 0; k < 2; k++) { free(a->p[k]); free(a->w[k]); free(a->m[k]); free(a->v[k]); }
}

// The fp32 AdamW's AVX-512 path (model/ops_cpu.c) is bitwise the plain loop (VLM_CPU_VEC=0), with a tail
// that is not a multiple of 16, a gradient scale and a master copy; 3 steps.
TEST(optim_adamw_vector_equals_loop) {
    const size_t n = 70000 + 7;
    float *p0 = xmalloc(sizeof(float) * n), *g = xmalloc(sizeof(float) * n);
    unsigned st = 5;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        p0[i] = ((int)(st >> 8) % 2001 - 1000) * 1e-3f;
    }
    AdamwPair a;
    adamw_pair_init(&a, p0, n);
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) { st = st * 1664525u + 1013904223u; g[i] = ((int)(st >> 8) % 2001 - 1000) * 1e-4f; }
        adamw_pair_step(&a, g, 0.02f, step, 0.5f);
    }
    EXPECTF(adamw_pair_equal(&a), "the vector AdamW differs from the loop");
    adamw_pair_free(&a);
    free(p0); free(g);
}

// The vector AdamW's shortcut for blocks whose gradient and moments are all +0 (rows of an embedding no
// token has used yet) gives the loop's bits: zero gradients throughout (+0 and -0 ones, weights +0, -0 and
// not), gradients that stop after the first step (moments still non-zero), and blocks that mix these, over
// four steps with weight decay.
TEST(optim_adamw_unused_rows_equal_loop) {
    const size_t n = 3 * 4096 + 37;
    float *p0 = xmalloc(sizeof(float) * n), *g = xmalloc(sizeof(float) * n);
    unsigned st = 11;
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        p0[i] = i % 97 == 0 ? 0.0f : i % 89 == 0 ? -0.0f : ((int)(st >> 8) % 2001 - 1000) * 1e-3f;
    }
    AdamwPair a;
    adamw_pair_init(&a, p0, n);
    for (int step = 1; step <= 4; step++) {
        for (size_t i = 0; i < n; i++) {
            st = st * 1664525u + 1013904223u;
            const float r = ((int)(st >> 8) % 2001 - 1000) * 1e-4f;
            g[i] = i < 1000 ? 0.0f                          // never used
                 : i < 2000 ? (step == 1 ? r : 0.0f)        // used once: moments decay, not zero
                 : i < 3000 ? -0.0f                         // negative zeros
                 : i % 50 < 30 ? 0.0f : r;                  // some of each block
        }
        adamw_pair_step(&a, g, 0.1f, step, step == 2 ? 0.5f : 1.0f);
    }
    EXPECTF(adamw_pair_equal(&a), "the vector AdamW differs from the loop on zero gradients");
    adamw_pair_free(&a);
    free(p0); free(g);
}

TEST(optim_adamw_matches_torch) {
    // hyper-parameters travel as float (0.95f is not 0.95), which bounds the fp64 agreement near 1e-9
    check_adamw(&backend_cpu64, 1e-8);
    check_adamw(&backend_cpu, 1e-6);
}

TEST(optim_clip_grad_norm_matches_torch) {
    SafeTensors *st = st_open_or_die("tests/fixtures/optim/adamw.safetensors");
    size_t n;
    double *before = load_f64(st, "clip_before", &n), *after = load_f64(st, "clip_after", NULL);
    double *norm = load_f64(st, "clip_norm", NULL);
    // three stores of 15 gradients each, as in the fixture
    ParamStore stores[3];
    ParamStore *ptrs[3];
    for (int s = 0; s < 3; s++) {
        params_init(&stores[s], &backend_cpu64, "t");
        params_begin(&stores[s]);
        param(&stores[s], NULL, "w", 2, 5, 3, 0, 0);
        params_end(&stores[s]);
        params_alloc(&stores[s], 1);
        backend_cpu64.upload_acc(stores[s].grad, before + s * 15, 15);
        ptrs[s] = &stores[s];
    }
    double got = grad_global_norm(ptrs, 3);
    EXPECT_NEAR(got, norm[0], 1e-12);
    float f = grad_clip_factor(got, 1.5);
    for (size_t i = 0; i < n; i++) EXPECT_NEAR(before[i] * f, after[i], 1e-6);
    EXPECT_NEAR(grad_clip_factor(0.5, 1.5), 1.0, 0);  // under the limit: no change
    EXPECT_NEAR(grad_clip_factor(10, 0), 1.0, 0);     // max_norm <= 0: clipping off
    for (int s = 0; s < 3; s++) params_free(&stores[s]);
    free(before); free(after); free(norm);
    st_close(st);
}
