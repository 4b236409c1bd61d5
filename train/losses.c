#include "losses.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

// x (B, P) -> x / |x| per row; norms (B) kept for the backward
static void l2_normalize(const float *x, double *xn, double *norms, int B, int P) {
    for (int b = 0; b < B; b++) {
        double s = 0;
        for (int p = 0; p < P; p++) s += (double)x[b * P + p] * x[b * P + p];
        norms[b] = sqrt(s);
        for (int p = 0; p < P; p++) xn[b * P + p] = x[b * P + p] / norms[b];
    }
}

// gradient through y = x / |x|:  dx = (dy - y (y . dy)) / |x|
static void l2_normalize_backward(const double *xn, const double *norms, const double *dxn, float *dx, int B, int P) {
    for (int b = 0; b < B; b++) {
        double dot = 0;
        for (int p = 0; p < P; p++) dot += xn[b * P + p] * dxn[b * P + p];
        for (int p = 0; p < P; p++) dx[b * P + p] = (float)((dxn[b * P + p] - xn[b * P + p] * dot) / norms[b]);
    }
}

void clip_contrastive_loss(const float *img, const float *txt, int B, int P, float logit_scale, ClipLossOut *out,
                           float *dimg, float *dtxt) {
    memset(out, 0, sizeof(*out));
    double *in = out->img_normed = xmalloc(sizeof(double) * B * P);
    double *tn = out->txt_normed = xmalloc(sizeof(double) * B * P);
    double *L = out->logits_per_image = xmalloc(sizeof(double) * B * B);
    double *ni = xmalloc(sizeof(double) * B), *nt = xmalloc(sizeof(double) * B);
    l2_normalize(img, in, ni, B, P);
    l2_normalize(txt, tn, nt, B, P);
    double s = exp((double)logit_scale);
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double d = 0;
            for (int p = 0; p < P; p++) d += in[i * P + p] * tn[j * P + p];
            L[i * B + j] = s * d;
        }
    // dL[i][j] collects both cross-entropies: rows (image -> texts) and columns (text -> images)
    double *dL = xcalloc((size_t)B * B, sizeof(double)), loss = 0;
    int hit_i = 0, hit_t = 0;
    for (int dir = 0; dir < 2; dir++)
        for (int a = 0; a < B; a++) {
            // dir 0: row a of L (image a over texts); dir 1: column a (text a over images)
            double m = -INFINITY, z = 0;
            int arg = 0;
            for (int k = 0; k < B; k++) {
                double v = dir ? L[k * B + a] : L[a * B + k];
                if (v > m) { m = v; arg = k; }
            }
            for (int k = 0; k < B; k++) z += exp((dir ? L[k * B + a] : L[a * B + k]) - m);
            double lse = m + log(z);
            loss += (lse - L[a * B + a]) / (2.0 * B);
            if (arg == a) { if (dir) hit_t++; else hit_i++; }
            for (int k = 0; k < B; k++) {
                double p = exp((dir ? L[k * B + a] : L[a * B + k]) - lse);
                double g = (p - (k == a)) / (2.0 * B);
                if (dir) dL[k * B + a] += g; else dL[a * B + k] += g;
            }
        }
    out->loss = loss;
    out->acc_i2t = (double)hit_i / B;
    out->acc_t2i = (double)hit_t / B;
    for (int i = 0; i < B * B; i++) out->dlogit_scale += dL[i] * L[i];  // L = exp(scale) * cos
    double *dIn = xcalloc((size_t)B * P, sizeof(double)), *dTn = xcalloc((size_t)B * P, sizeof(double));
    for (int i = 0; i < B; i++)
        for (int j = 0; j < B; j++) {
            double g = dL[i * B + j] * s;
            for (int p = 0; p < P; p++) {
                dIn[i * P + p] += g * tn[j * P + p];
                dTn[j * P + p] += g * in[i * P + p];
            }
        }
    if (dimg) l2_normalize_backward(in, ni, dIn, dimg, B, P);
    if (dtxt) l2_normalize_backward(tn, nt, dTn, dtxt, B, P);
    free(dL); free(dIn); free(dTn); free(ni); free(nt);
}

void clip_loss_out_free(ClipLossOut *out) {
    free(out->img_normed);
    free(out->txt_normed);
    free(out->logits_per_image);
    memset(out, 0, sizeof(*out));
}

// ---------------------------------------------------------------------------------------------------
// preference losses

// -log sigmoid(x), computed without overflow for either sign of x
static double neg_log_sigmoid(double x) { return x >= 0 ? log1p(exp(-x)) : -x + log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

double dpo_loss(const DpoParams *p, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                double *dpc, double *dpr, DpoMetrics *m) {
    DpoMetrics acc = {0};
    const double b = p->beta, e = p->label_smoothing;
    for (int i = 0; i < n; i++) {
        double refc = p->reference_free ? 0 : rc[i], refr = p->reference_free ? 0 : rr[i];
        double h = (pc[i] - refc) - (pr[i] - refr), loss, dh;
        if (p->ipo) {  // IPO: squared distance of the log-ratio gap from 1/(2 beta)
            double d = h - 1 / (2 * b);
            loss = d * d;
            dh = 2 * d;
        } else {
            loss = (1 - e) * neg_log_sigmoid(b * h) + e * neg_log_sigmoid(-b * h);
            dh = b * ((1 - e) * (sigmoid(b * h) - 1) + e * sigmoid(b * h));
        }
        acc.loss += loss / n;
        dpc[i] = dh / n;
        dpr[i] = -dh / n;
        double rwc = b * (pc[i] - refc), rwr = b * (pr[i] - refr);
        acc.reward_chosen += rwc / n;
        acc.reward_rejected += rwr / n;
        acc.reward_accuracy += (rwc > rwr) / (double)n;
        acc.reward_margin += (rwc - rwr) / n;
        acc.logp_chosen += pc[i] / n;
        acc.logp_rejected += pr[i] / n;
    }
    if (m) *m = acc;
    return acc.loss;
}

double svco_loss(const SvcoParams *p, int n, const double *pol, const double *ref, double *dpol, SvcoMetrics *m) {
    // each term compares two (response, condition) rows: beta * [r(first) - r(second)]
    static const int first[4] = {SVCO_W_IW, SVCO_W_NONE, SVCO_L_IL, SVCO_L_NONE};
    static const int second[4] = {SVCO_W_NONE, SVCO_W_IL, SVCO_L_NONE, SVCO_L_IW};
    SvcoMetrics acc;
    memset(&acc, 0, sizeof(acc));
    for (int i = 0; i < n; i++) {
        const double *pp = pol + (size_t)i * SVCO_ROWS, *rp = ref + (size_t)i * SVCO_ROWS;
        double *dp = dpol + (size_t)i * SVCO_ROWS;
        double r[SVCO_ROWS];
        for (int k = 0; k < SVCO_ROWS; k++) { r[k] = pp[k] - rp[k]; dp[k] = 0; acc.reward[k] += r[k] / n; }
        for (int t = 0; t < 4; t++) {
            double arg = r[first[t]] - r[second[t]];
            acc.margin[t] += arg / n;
            acc.accuracy[t] += (arg > 0) / (double)n;
            if (p->beta[t] <= 0) continue;  // a term switched off contributes nothing (the code returns 0)
            double bx = p->beta[t] * arg, l = neg_log_sigmoid(bx);
            acc.term[t] += l / n;
            acc.loss += l / n;
            double g = p->beta[t] * (sigmoid(bx) - 1) / n;
            dp[first[t]] += g;
            dp[second[t]] -= g;
        }
    }
    if (m) *m = acc;
    return acc.loss;
}

double mdpo_loss(const MdpoParams *p, int n, const double *pol, const double *ref, double *dpol, MdpoMetrics *m) {
    MdpoMetrics acc;
    memset(&acc, 0, sizeof(acc));
    const double b = p->beta;
    for (int i = 0; i < n; i++) {
        const double *pp = pol + (size_t)i * MDPO_ROWS, *rp = ref + (size_t)i * MDPO_ROWS;
        double *dp = dpol + (size_t)i * MDPO_ROWS;
        double rw = pp[MDPO_W] - rp[MDPO_W], rl = pp[MDPO_L] - rp[MDPO_L], rc = pp[MDPO_W_CORRUPT] - rp[MDPO_W_CORRUPT];
        double x[3] = {b * (rw - rl), b * (rw - rc), b * rw - p->delta};
        double g[3];
        for (int t = 0; t < 3; t++) {
            double l = neg_log_sigmoid(x[t]);
            acc.term[t] += l / n;
            acc.loss += l / n;
            acc.accuracy[t] += (x[t] > 0) / (double)n;
            g[t] = (sigmoid(x[t]) - 1) / n;
        }
        dp[MDPO_W] = b * (g[0] + g[1] + g[2]);
        dp[MDPO_L] = -b * g[0];
        dp[MDPO_W_CORRUPT] = -b * g[1];
        acc.reward_chosen += b * rw / n;
        acc.reward_rejected += b * rl / n;
        acc.reward_corrupt += b * rc / n;
    }
    if (m) *m = acc;
    return acc.loss;
}
