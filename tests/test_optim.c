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

// The fp32 AdamW's AVX-512 path (model/ops_cpu.c) is bitwise the plain loop (VLM_CPU_VEC=0), with a tail
// that is not a multiple of 16, a gradient scale and a master copy; 3 steps.
TEST(optim_adamw_vector_equals_loop) {
    const size_t n = 70000 + 7;
    float *p[2], *w[2], *m[2], *v[2], *g = xmalloc(sizeof(float) * n);
    unsigned st = 5;
    for (int k = 0; k < 2; k++) {
        p[k] = xmalloc(sizeof(float) * n); w[k] = xmalloc(sizeof(float) * n);
        m[k] = xcalloc(n, sizeof(float)); v[k] = xcalloc(n, sizeof(float));
    }
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        p[0][i] = p[1][i] = ((int)(st >> 8) % 2001 - 1000) * 1e-3f;
    }
    for (int step = 1; step <= 3; step++) {
        for (size_t i = 0; i < n; i++) { st = st * 1664525u + 1013904223u; g[i] = ((int)(st >> 8) % 2001 - 1000) * 1e-4f; }
        for (int k = 0; k < 2; k++) {
            if (k == 0) setenv("VLM_CPU_VEC", "0", 1);
            backend_cpu.adamw_update(w[k], p[k], g, m[k], v[k], n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.02f, step, 0.5f);
            unsetenv("VLM_CPU_VEC");
        }
    }
    EXPECTF(!memcmp(p[0], p[1], sizeof(float) * n) && !memcmp(w[0], w[1], sizeof(float) * n) &&
            !memcmp(m[0], m[1], sizeof(float) * n) && !memcmp(v[0], v[1], sizeof(float) * n),
            "the vector AdamW differs from the loop");
    for (int k = 0; k < 2; k++) { free(p[k]); free(w[k]); free(m[k]); free(v[k]); }
    free(g);
}

// The vector AdamW's shortcut for blocks whose gradient and moments are all +0 (rows of an embedding no
// token has used yet) gives the loop's bits: zero gradients throughout (+0 and -0 ones, weights +0, -0 and
// not), gradients that stop after the first step (moments still non-zero), and blocks that mix these, over
// four steps with weight decay.
TEST(optim_adamw_unused_rows_equal_loop) {
    const size_t n = 3 * 4096 + 37;
    float *p[2], *w[2], *m[2], *v[2], *g = xmalloc(sizeof(float) * n);
    unsigned st = 11;
    for (int k = 0; k < 2; k++) {
        p[k] = xmalloc(sizeof(float) * n); w[k] = xmalloc(sizeof(float) * n);
        m[k] = xcalloc(n, sizeof(float)); v[k] = xcalloc(n, sizeof(float));
    }
    for (size_t i = 0; i < n; i++) {
        st = st * 1664525u + 1013904223u;
        p[0][i] = p[1][i] = i % 97 == 0 ? 0.0f : i % 89 == 0 ? -0.0f : ((int)(st >> 8) % 2001 - 1000) * 1e-3f;
    }
    for (int step = 1; step <= 4; step++) {
        for (size_t i = 0; i < n; i++) {
            st = st * 1664525u + 1013904223u;
            const float r = ((int)(st >> 8) % 2001 - 1000) * 1e-4f;
            g[i] = i < 1000 ? 0.0f                          // never used
                 : i < 2000 ? (step == 1 ? r : 0.0f)        // used once: moments decay, not zero
                 : i < 3000 ? -0.0f                         // negative zeros
                 : i % 50 < 30 ? 0.0f : r;                  // some of each block
        }
        for (int k = 0; k < 2; k++) {
            if (k == 0) setenv("VLM_CPU_VEC", "0", 1);
            backend_cpu.adamw_update(w[k], p[k], g, m[k], v[k], n, 1e-3f, 0.9f, 0.95f, 1e-8f, 0.1f, step, step == 2 ? 0.5f : 1.0f);
            unsetenv("VLM_CPU_VEC");
        }
    }
    EXPECTF(!memcmp(p[0], p[1], sizeof(float) * n) && !memcmp(w[0], w[1], sizeof(float) * n) &&
            !memcmp(m[0], m[1], sizeof(float) * n) && !memcmp(v[0], v[1], sizeof(float) * n),
            "the vector AdamW differs from the loop on zero gradients");
    for (int k = 0; k < 2; k++) { free(p[k]); free(w[k]); free(m[k]); free(v[k]); }
    free(g);
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
