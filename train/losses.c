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
