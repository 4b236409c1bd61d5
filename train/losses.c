#include "losses.h"

#include <math.h>
#include <stdio.h>
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

// One pair of a DPO batch, as the loss types read it.
typedef struct {
    double hc, hr;   // log-ratios of chosen and rejected (policy - reference)
    double pc;       // the chosen response's policy log-prob (sft)
    double nc, nr;   // response lengths in tokens, at least 1
    double mean_nc;  // the batch's mean chosen length (sft averages per token over the batch)
} DpoPair;

// Each returns the pair's loss and writes dL/d(pc) into g[0] and dL/d(pr) into g[1] (losses.h has the math).
static double dpo_sigmoid(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double b = p->beta, e = p->label_smoothing, h = x->hc - x->hr;
    double dh = b * ((1 - e) * (sigmoid(b * h) - 1) + e * sigmoid(b * h));
    g[0] = dh;
    g[1] = -dh;
    return (1 - e) * neg_log_sigmoid(b * h) + e * neg_log_sigmoid(-b * h);
}

static double dpo_hinge(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double m = 1 - p->beta * (x->hc - x->hr);
    g[0] = m > 0 ? -p->beta : 0;  // torch's relu passes no gradient at 0
    g[1] = -g[0];
    return m > 0 ? m : 0;
}

static double dpo_ipo(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double d = x->hc / x->nc - x->hr / x->nr - 1 / (2 * p->beta);
    g[0] = 2 * d / x->nc;
    g[1] = -2 * d / x->nr;
    return d * d;
}

static double dpo_ipo_sum(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double d = (x->hc - x->hr) - 1 / (2 * p->beta);
    g[0] = 2 * d;
    g[1] = -2 * d;
    return d * d;
}

static double dpo_robust(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double b = p->beta, e = p->label_smoothing, h = x->hc - x->hr;
    const double dh = b * ((1 - e) * (sigmoid(b * h) - 1) - e * sigmoid(b * h)) / (1 - 2 * e);
    g[0] = dh;
    g[1] = -dh;
    return ((1 - e) * neg_log_sigmoid(b * h) - e * neg_log_sigmoid(-b * h)) / (1 - 2 * e);
}

static double dpo_sigmoid_norm(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double b = p->beta, z = x->hc / x->nc - x->hr / x->nr, dz = b * (sigmoid(b * z) - 1);
    g[0] = dz / x->nc;
    g[1] = -dz / x->nr;
    return neg_log_sigmoid(b * z);
}

static double dpo_bco_pair(const DpoParams *p, const DpoPair *x, double g[2]) {
    const double b = p->beta;
    g[0] = b * (sigmoid(b * x->hc) - 1);
    g[1] = b * sigmoid(b * x->hr);
    return neg_log_sigmoid(b * x->hc) + neg_log_sigmoid(-b * x->hr);
}

static double dpo_sft(const DpoParams *p, const DpoPair *x, double g[2]) {
    g[0] = -1 / x->mean_nc;
    g[1] = 0;
    return -x->pc / x->mean_nc;
}

// The loss types by DpoLossType: TRL's name, the function, a line for --help.
static const struct {
    const char *name;
    double (*fn)(const DpoParams *p, const DpoPair *x, double g[2]);
    const char *summary;
} dpo_types[DPO_LOSS_TYPES] = {
    [DPO_SIGMOID] = {"sigmoid", dpo_sigmoid, "DPO (with --label-smoothing: cDPO)"},
    [DPO_HINGE] = {"hinge", dpo_hinge, "SLiC's hinge on the log-ratio margin"},
    [DPO_IPO] = {"ipo", dpo_ipo, "IPO on length-averaged log-probs (TRL >= 0.7.11)"},
    [DPO_IPO_SUM] = {"ipo_sum", dpo_ipo_sum, "IPO on summed log-probs"},
    [DPO_ROBUST] = {"robust", dpo_robust, "rDPO, unbiased under the label-flip rate --label-smoothing"},
    [DPO_SIGMOID_NORM] = {"sigmoid_norm", dpo_sigmoid_norm, "DPO on length-normalized log-ratios (SimPO-style)"},
    [DPO_BCO_PAIR] = {"bco_pair", dpo_bco_pair, "BCO on pairs"},
    [DPO_SFT] = {"sft", dpo_sft, "NLL of the chosen responses per token (MPO's third term)"},
};

const char *dpo_loss_type_name(int t) { return t >= 0 && t < DPO_LOSS_TYPES ? dpo_types[t].name : NULL; }
const char *dpo_loss_type_summary(int t) { return t >= 0 && t < DPO_LOSS_TYPES ? dpo_types[t].summary : NULL; }

int dpo_loss_types_parse(DpoParams *p, const char *text, char *err, size_t errlen) {
    int n = 0;
    const char *s = text;
    while (1) {
        size_t len = strcspn(s, ",");
        char part[64];
        if (len == 0 || len >= sizeof(part)) { snprintf(err, errlen, "'%s': an empty or overlong part", text); return -1; }
        memcpy(part, s, len);
        part[len] = 0;
        double w = 1;
        char *colon = strchr(part, ':');
        if (colon) {
            *colon = 0;
            char *end;
            w = strtod(colon + 1, &end);
            if (end == colon + 1 || *end || !isfinite(w) || w <= 0) {
                snprintf(err, errlen, "'%s': the weight of %s must be a positive number", text, part);
                return -1;
            }
        }
        int t = 0;
        while (t < DPO_LOSS_TYPES && strcmp(part, dpo_types[t].name)) t++;
        if (t == DPO_LOSS_TYPES) {
            char names[256];
            size_t k = 0;
            for (int i = 0; i < DPO_LOSS_TYPES; i++) k += snprintf(names + k, sizeof(names) - k, "%s%s", i ? ", " : "", dpo_types[i].name);
            snprintf(err, errlen, "'%s': %s is not a loss type (%s)", text, part, names);
            return -1;
        }
        for (int k = 0; k < n; k++)
            if (p->term[k] == (DpoLossType)t) { snprintf(err, errlen, "'%s': %s twice", text, part); return -1; }
        if (n == DPO_MAX_TERMS) { snprintf(err, errlen, "'%s': more than %d terms", text, DPO_MAX_TERMS); return -1; }
        p->term[n] = (DpoLossType)t;
        p->weight[n++] = w;
        if (!s[len]) break;
        s += len + 1;
    }
    p->n_terms = n;
    return 0;
}

void dpo_loss_types_format(const DpoParams *p, char *buf, size_t len) {
    if (p->n_terms == 0) { snprintf(buf, len, "sigmoid"); return; }
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < p->n_terms && k < len; i++) {
        k += snprintf(buf + k, len - k, "%s%s", i ? "," : "", dpo_types[p->term[i]].name);
        if (p->weight[i] != 1 || p->n_terms > 1) k += snprintf(buf + k, k < len ? len - k : 0, ":%.17g", p->weight[i]);
    }
}

double dpo_loss(const DpoParams *p, int n, const double *pc, const double *pr, const double *rc, const double *rr,
                const int *nc, const int *nr, double *dpc, double *dpr, DpoMetrics *m) {
    DpoMetrics acc = {0};
    const double b = p->beta;
    const int n_terms = p->n_terms > 0 ? p->n_terms : 1;
    const DpoLossType sigmoid_only = DPO_SIGMOID;
    const DpoLossType *terms = p->n_terms > 0 ? p->term : &sigmoid_only;
    const double one = 1, *weights = p->n_terms > 0 ? p->weight : &one;
    double mean_nc = 0;
    for (int i = 0; i < n; i++) mean_nc += nc[i] > 1 ? nc[i] : 1;
    mean_nc /= n > 0 ? n : 1;
    for (int i = 0; i < n; i++) {
        double refc = p->reference_free ? 0 : rc[i], refr = p->reference_free ? 0 : rr[i];
        // lengths below 1 count as 1, as TRL clamps them
        const DpoPair x = {pc[i] - refc, pr[i] - refr, pc[i], nc[i] > 1 ? nc[i] : 1, nr[i] > 1 ? nr[i] : 1, mean_nc};
        double loss = 0, gc = 0, gr = 0;
        for (int k = 0; k < n_terms; k++) {
            double g[2], l = dpo_types[terms[k]].fn(p, &x, g);
            loss += weights[k] * l;
            gc += weights[k] * g[0];
            gr += weights[k] * g[1];
        }
        acc.loss += loss / n;
        dpc[i] = gc / n;
        dpr[i] = gr / n;
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
        for (int k = 0; k < SVCO_ROWS; k++) {
            r[k] = pp[k] - rp[k];
            dp[k] = 0;
            acc.reward[k] += r[k] / n;
            acc.logp[k] += pp[k] / n;
        }
        for (int t = 0; t < 4; t++) {
            double arg = r[first[t]] - r[second[t]];
            acc.margin[t] += arg / n;
            acc.distance[t] += fabs(pp[first[t]] - pp[second[t]]) / n;
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
