// Preference losses against a direct torch implementation of the equations in research/methods.md
// (tests/fixtures/losses.safetensors from tests/ref/make_loss_fixtures.py), the step-0 identities
// (policy = reference: DPO = log 2, S-VCO = 4 log 2, mDPO = 3 log 2), and finite differences.
#include <stdlib.h>
#include <string.h>

#include "../model/safetensors.h"
#include "../train/losses.h"
#include "../util/common.h"
#include "test.h"

static SafeTensors *fx(void) { return st_open_or_die("tests/fixtures/losses.safetensors"); }
static const double *f64(const SafeTensors *st, const char *name) {
    const STTensor *t = st_find(st, name);
    if (!t || t->dtype != DT_F64) fatal("losses.safetensors: no F64 tensor '%s'", name);
    return t->data;  // the writer aligns every tensor to its element size
}

static void expect_all_near(const double *a, const double *b, int n, double tol, const char *what) {
    for (int i = 0; i < n; i++) EXPECTF(fabs(a[i] - b[i]) <= tol * fmax(1e-3, fabs(b[i])), "%s[%d] = %.12g, expected %.12g", what, i, a[i], b[i]);
}

TEST(losses_dpo_matches_torch) {
    SafeTensors *st = fx();
    const int n = 7;
    const double *pc = f64(st, "pc"), *pr = f64(st, "pr"), *rc = f64(st, "rc"), *rr = f64(st, "rr");
    const char *names[3] = {"dpo", "cdpo", "ipo"};
    DpoParams params[3] = {{0.1, 0, 0, 0}, {0.1, 0.2, 0, 0}, {0.1, 0, 1, 0}};
    for (int k = 0; k < 3; k++) {
        double dpc[7], dpr[7];
        char key[64];
        double loss = dpo_loss(&params[k], n, pc, pr, rc, rr, dpc, dpr, NULL);
        snprintf(key, sizeof(key), "%s.loss", names[k]);
        EXPECT_NEAR(loss, f64(st, key)[0], 1e-12);
        snprintf(key, sizeof(key), "%s.dpc", names[k]);
        expect_all_near(dpc, f64(st, key), n, 1e-10, key);
        snprintf(key, sizeof(key), "%s.dpr", names[k]);
        expect_all_near(dpr, f64(st, key), n, 1e-10, key);
    }
    st_close(st);
}

TEST(losses_svco_matches_torch) {
    SafeTensors *st = fx();
    const int n = 7;
    const double *pol = f64(st, "svco.pol"), *ref = f64(st, "svco.ref");
    const char *names[3] = {"svco", "vco", "svco_mixed"};
    SvcoParams params[3] = {{{0.1, 0.1, 0.1, 0.1}}, {{0.1, 0.1, 0, 0}}, {{0.3, 0.05, 0.2, 0.1}}};
    for (int k = 0; k < 3; k++) {
        double dpol[7 * SVCO_ROWS];
        char key[64];
        SvcoMetrics m;
        double loss = svco_loss(&params[k], n, pol, ref, dpol, &m);
        snprintf(key, sizeof(key), "%s.loss", names[k]);
        EXPECT_NEAR(loss, f64(st, key)[0], 1e-12);
        EXPECT_NEAR(m.term[0] + m.term[1] + m.term[2] + m.term[3], loss, 1e-12);
        snprintf(key, sizeof(key), "%s.dpol", names[k]);
        expect_all_near(dpol, f64(st, key), n * SVCO_ROWS, 1e-10, key);
    }
    st_close(st);
}

TEST(losses_mdpo_matches_torch) {
    SafeTensors *st = fx();
    double dpol[7 * MDPO_ROWS];
    MdpoParams p = {0.1, 0};
    double loss = mdpo_loss(&p, 7, f64(st, "mdpo.pol"), f64(st, "mdpo.ref"), dpol, NULL);
    EXPECT_NEAR(loss, f64(st, "mdpo.loss")[0], 1e-12);
    expect_all_near(dpol, f64(st, "mdpo.dpol"), 7 * MDPO_ROWS, 1e-10, "mdpo.dpol");
    st_close(st);
}

// At step 0 the policy is the reference: every comparison is 0 and each sigmoid term is log 2.
TEST(losses_step0_identities) {
    double lp[12] = {-3, -7.5, -1, -20, -4, -2, -9, -11, -6, -5, -8, -3.5}, d[12];
    DpoParams dp = {0.1, 0, 0, 0};
    EXPECT_NEAR(dpo_loss(&dp, 6, lp, lp + 6, lp, lp + 6, d, d + 6, NULL), log(2.0), 1e-15);
    SvcoParams sp = {{0.1, 0.1, 0.1, 0.1}};
    EXPECT_NEAR(svco_loss(&sp, 2, lp, lp, d, NULL), 4 * log(2.0), 1e-15);
    SvcoParams vp = {{0.1, 0.1, 0, 0}};
    EXPECT_NEAR(svco_loss(&vp, 2, lp, lp, d, NULL), 2 * log(2.0), 1e-15);
    MdpoParams mp = {0.1, 0};
    EXPECT_NEAR(mdpo_loss(&mp, 4, lp, lp, d, NULL), 3 * log(2.0), 1e-15);
}

// Finite differences on the loss module, including the label-smoothed DPO and extreme arguments.
TEST(losses_finite_differences) {
    const int n = 3;
    double pol[3 * SVCO_ROWS], ref[3 * SVCO_ROWS], d[3 * SVCO_ROWS];
    for (int i = 0; i < 3 * SVCO_ROWS; i++) { pol[i] = -10 + 7 * sin(i * 1.7); ref[i] = -10 + 9 * cos(i * 0.9); }
    pol[0] = 400;  // a huge argument must not overflow
    SvcoParams sp = {{0.3, 0.1, 0.2, 0.05}};
    svco_loss(&sp, n, pol, ref, d, NULL);
    for (int i = 0; i < n * SVCO_ROWS; i++) {
        double x = pol[i], h = 1e-6;
        pol[i] = x + h;
        double lp = svco_loss(&sp, n, pol, ref, (double[3 * SVCO_ROWS]){0}, NULL);
        pol[i] = x - h;
        double lm = svco_loss(&sp, n, pol, ref, (double[3 * SVCO_ROWS]){0}, NULL);
        pol[i] = x;
        EXPECT_NEAR(d[i], (lp - lm) / (2 * h), 1e-5);
    }
    DpoParams dp = {0.5, 0.1, 0, 0};
    double dpc[3], dpr[3];
    dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, dpc, dpr, NULL);
    for (int i = 0; i < n; i++) {
        double x = pol[i], h = 1e-6, g1[3], g2[3];
        pol[i] = x + h;
        double lp = dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, g1, g2, NULL);
        pol[i] = x - h;
        double lm = dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, g1, g2, NULL);
        pol[i] = x;
        EXPECT_NEAR(dpc[i], (lp - lm) / (2 * h), 1e-5);
    }
    for (int i = 0; i < n * SVCO_ROWS; i++) EXPECT(isfinite(d[i]));
}
