// Preference losses against a direct torch implementation of the equations in research/methods.md
// (tests/fixtures/losses.safetensors from tests/ref/make_loss_fixtures.py), the step-0 identities
// (policy = reference: DPO = log 2, S-VCO = 4 log 2, mDPO = 3 log 2), and finite differences.
#include <cJSON.h>
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
    // ipo here is the summed form (make_loss_fixtures.py); TRL's averaged one is checked in losses_trl_family_matches_trl
    DpoParams params[3] = {{.beta = 0.1}, {.beta = 0.1, .label_smoothing = 0.2},
                           {.beta = 0.1, .n_terms = 1, .term = {DPO_IPO_SUM}, .weight = {1}}};
    const int len[7] = {3, 5, 2, 8, 4, 6, 1};  // response lengths (no type here reads them)
    for (int k = 0; k < 3; k++) {
        double dpc[7], dpr[7];
        char key[64];
        double loss = dpo_loss(&params[k], n, pc, pr, rc, rr, len, len, dpc, dpr, NULL);
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
    DpoParams dp = {.beta = 0.1};
    const int len[6] = {1, 2, 3, 4, 5, 6};
    EXPECT_NEAR(dpo_loss(&dp, 6, lp, lp + 6, lp, lp + 6, len, len, d, d + 6, NULL), log(2.0), 1e-15);
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
    DpoParams dp = {.beta = 0.5, .label_smoothing = 0.1};
    double dpc[3], dpr[3];
    const int len[3] = {2, 7, 1};
    dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, len, len, dpc, dpr, NULL);
    for (int i = 0; i < n; i++) {
        double x = pol[i], h = 1e-6, g1[3], g2[3];
        pol[i] = x + h;
        double lp = dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, len, len, g1, g2, NULL);
        pol[i] = x - h;
        double lm = dpo_loss(&dp, n, pol, pol + 3, ref, ref + 3, len, len, g1, g2, NULL);
        pol[i] = x;
        EXPECT_NEAR(dpc[i], (lp - lm) / (2 * h), 1e-5);
    }
    for (int i = 0; i < n * SVCO_ROWS; i++) EXPECT(isfinite(d[i]));
}

// TRL's DPO loss family (train/losses.h) against TRL's own DPOTrainer._compute_loss on random log-probs
// (tests/fixtures/trl_losses.json from tests/ref/make_trl_loss_fixtures.py): every loss type alone and two weighted
// sums (MPO's sigmoid 0.8 + bco_pair 0.2 + sft 1), the loss, its gradient per row and TRL's logged rewards and
// log-probs, within 1e-6 (both sides compute in double; the measured difference is printed).
static int json_doubles(const cJSON *o, const char *key, double *out, int max) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *v;
    int n = 0;
    cJSON_ArrayForEach(v, a) if (n < max && cJSON_IsNumber(v)) out[n++] = v->valuedouble;
    return n;
}

TEST(losses_trl_family_matches_trl) {
    char *text = read_file("tests/fixtures/trl_losses.json", NULL);
    cJSON *fx = cJSON_Parse(text);
    EXPECT(fx != NULL);
    if (!fx) { free(text); return; }
    enum { MAXP = 16 };
    const int n = (int)cJSON_GetObjectItemCaseSensitive(fx, "pairs")->valuedouble;
    double pc[MAXP], pr[MAXP], rc[MAXP], rr[MAXP], lc[MAXP], lr[MAXP];
    int nc[MAXP], nr[MAXP];
    EXPECT(n <= MAXP && json_doubles(fx, "pc", pc, MAXP) == n && json_doubles(fx, "pr", pr, MAXP) == n &&
           json_doubles(fx, "rc", rc, MAXP) == n && json_doubles(fx, "rr", rr, MAXP) == n &&
           json_doubles(fx, "nc", lc, MAXP) == n && json_doubles(fx, "nr", lr, MAXP) == n);
    for (int i = 0; i < n; i++) { nc[i] = (int)lc[i]; nr[i] = (int)lr[i]; }
    int covered[DPO_LOSS_TYPES] = {0}, cases = 0;
    double worst = 0;
    const cJSON *c;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(fx, "cases")) {
        // the case's types and weights as --loss-type takes them
        char spec[256] = "", err[256];
        size_t k = 0;
        const cJSON *types = cJSON_GetObjectItemCaseSensitive(c, "loss_type");
        double w[DPO_MAX_TERMS];
        json_doubles(c, "loss_weights", w, DPO_MAX_TERMS);
        for (int t = 0; t < cJSON_GetArraySize(types); t++)
            k += snprintf(spec + k, sizeof(spec) - k, "%s%s:%.17g", t ? "," : "", cJSON_GetArrayItem(types, t)->valuestring, w[t]);
        DpoParams p = {.beta = cJSON_GetObjectItemCaseSensitive(c, "beta")->valuedouble,
                       .label_smoothing = cJSON_GetObjectItemCaseSensitive(c, "label_smoothing")->valuedouble};
        EXPECTF(dpo_loss_types_parse(&p, spec, err, sizeof(err)) == 0, "%s: %s", spec, err);
        for (int t = 0; t < p.n_terms; t++) covered[p.term[t]] = 1;
        double dpc[MAXP], dpr[MAXP], want_c[MAXP], want_r[MAXP];
        DpoMetrics m;
        double loss = dpo_loss(&p, n, pc, pr, rc, rr, nc, nr, dpc, dpr, &m);
        json_doubles(c, "dpc", want_c, MAXP);
        json_doubles(c, "dpr", want_r, MAXP);
        const cJSON *tm = cJSON_GetObjectItemCaseSensitive(c, "metrics");
        const struct { const char *name; double ours; } got[] = {
            {"loss", loss}, {"rewards/chosen", m.reward_chosen}, {"rewards/rejected", m.reward_rejected},
            {"rewards/accuracies", m.reward_accuracy}, {"rewards/margins", m.reward_margin},
            {"logps/chosen", m.logp_chosen}, {"logps/rejected", m.logp_rejected}};
        for (size_t g = 0; g < sizeof(got) / sizeof(got[0]); g++) {
            const cJSON *v = g ? cJSON_GetObjectItemCaseSensitive(tm, got[g].name) : cJSON_GetObjectItemCaseSensitive(c, "loss");
            EXPECTF(cJSON_IsNumber(v), "%s: TRL logs no %s", spec, got[g].name);
            if (!cJSON_IsNumber(v)) continue;
            double e = fabs(got[g].ours - v->valuedouble) / fmax(1, fabs(v->valuedouble));
            EXPECTF(e <= 1e-6, "%s: %s %.12g, TRL %.12g", spec, got[g].name, got[g].ours, v->valuedouble);
            if (g == 0 && e > worst) worst = e;
        }
        for (int i = 0; i < n; i++) {
            double e = fmax(fabs(dpc[i] - want_c[i]), fabs(dpr[i] - want_r[i]));
            EXPECTF(e <= 1e-6, "%s: pair %d gradient (%.12g, %.12g), TRL (%.12g, %.12g)", spec, i, dpc[i], dpr[i], want_c[i], want_r[i]);
            if (e > worst) worst = e;
        }
        cases++;
    }
    for (int t = 0; t < DPO_LOSS_TYPES; t++)
        EXPECTF(covered[t] || t == DPO_IPO_SUM, "loss type %s has no TRL fixture", dpo_loss_type_name(t));  // ipo_sum: not TRL's
    printf("      %d cases (TRL %s): largest difference of loss or gradient %.2g\n", cases,
           cJSON_GetObjectItemCaseSensitive(fx, "trl_version")->valuestring, worst);
    cJSON_Delete(fx);
    free(text);
}
