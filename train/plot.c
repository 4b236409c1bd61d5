#include "plot.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"

// "nice" tick step: 1, 2 or 5 times a power of ten giving about `target` ticks over span
static double nice_step(double span, int target) {
    double raw = span / target, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

void plot_svg(const char *path, const char *title, const char *xlabel, const PlotSeries *s, int ns) {
    static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};
    const double W = 720, H = 420, L = 70, R = 170, T = 40, B = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 == x0) x1 = x0 + 1;
    if (y1 == y0) { y0 -= 0.5; y1 += 0.5; }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    size_t cap = 1 << 16, len = 0;
    char *out = xmalloc(cap);
#define EMIT(...) do { int _n = snprintf(out + len, cap - len, __VA_ARGS__); \
    while ((size_t)_n >= cap - len) { cap *= 2; out = xrealloc(out, cap); _n = snprintf(out + len, cap - len, __VA_ARGS__); } \
    len += (size_t)_n; } while (0)
#define PX(x) (L + ((x) - x0) / (x1 - x0) * (W - L - R))
#define PY(y) (H - B - ((y) - y0) / (y1 - y0) * (H - T - B))
    EMIT("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    EMIT("<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    EMIT("<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, title);
    double xs = nice_step(x1 - x0, 6), ys = nice_step(y1 - y0, 6);
    for (double v = ceil(y0 / ys) * ys; v <= y1; v += ys) {
        EMIT("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, W - R, PY(v), PY(v));
        EMIT("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, PY(v) + 4, fabs(v) < ys * 1e-6 ? 0 : v);
    }
    for (double v = ceil(x0 / xs) * xs; v <= x1; v += xs) {
        EMIT("<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", PX(v), PX(v), T * 1.0, H - B);
        EMIT("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.4g</text>\n", PX(v), H - B + 16, v);
    }
    EMIT("<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R, H - T - B);
    EMIT("<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, H - 12, xlabel);
    for (int k = 0; k < ns; k++) {
        const char *col = colors[k % 8];
        EMIT("<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", col);
        int pen = 0;
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) {  // a gap: close this polyline and start another
                if (pen) EMIT("\"/>\n<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.6\" points=\"", col);
                pen = 0;
                continue;
            }
            EMIT("%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
            pen = 1;
        }
        EMIT("\"/>\n");
        double ly = T + 14 + 18 * k;
        EMIT("<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - R + 12, W - R + 32, ly - 4, ly - 4, col);
        EMIT("<text x=\"%.0f\" y=\"%.1f\">%s</text>\n", W - R + 38, ly, s[k].name);
    }
    EMIT("</svg>\n");
#undef EMIT
#undef PX
#undef PY
    write_file_atomic(path, out, len);
    free(out);
}

int plot_metrics(const char *log_path, const char *keys, const char *svg_path, const char *title) {
    char *copy = xstrdup(keys);
    char *names[16];
    int nk = 0;
    for (char *t = strtok(copy, ","); t && nk < 16; t = strtok(NULL, ",")) names[nk++] = t;
    double *xs[16], *ys[16];
    int n[16] = {0}, cap = 256;
    for (int k = 0; k < nk; k++) { xs[k] = xmalloc(sizeof(double) * cap); ys[k] = xmalloc(sizeof(double) * cap); }
    JsonlReader r;
    jsonl_open(&r, log_path);
    cJSON *j;
    while ((j = jsonl_next(&r, 0, NULL))) {
        const cJSON *step = cJSON_GetObjectItemCaseSensitive(j, "step");
        for (int k = 0; k < nk && cJSON_IsNumber(step); k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, names[k]);
            if (!cJSON_IsNumber(v)) continue;
            if (n[k] == cap) {
                cap *= 2;
                for (int q = 0; q < nk; q++) { xs[q] = xrealloc(xs[q], sizeof(double) * cap); ys[q] = xrealloc(ys[q], sizeof(double) * cap); }
            }
            xs[k][n[k]] = step->valuedouble;
            ys[k][n[k]++] = v->valuedouble;
        }
        cJSON_Delete(j);
    }
    jsonl_close(&r);
    PlotSeries s[16];
    int ns = 0;
    for (int k = 0; k < nk; k++) if (n[k]) s[ns++] = (PlotSeries){names[k], xs[k], ys[k], n[k]};
    if (ns) plot_svg(svg_path, title, "step", s, ns);
    for (int k = 0; k < nk; k++) { free(xs[k]); free(ys[k]); }
    free(copy);
    return ns;
}
