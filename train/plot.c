#include "plot.h"

#include <cJSON.h>
#include <math.h>
#include <stdarg.h>
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

static const char *colors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"};

// The SVG text, grown as needed.
typedef struct {
    char *s;
    size_t len, cap;
} Svg;

static void svg_printf(Svg *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svg_printf(Svg *b, const char *fmt, ...) {
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (b->s && (size_t)n < b->cap - b->len) { b->len += (size_t)n; return; }
        b->cap = (b->cap ? 2 * b->cap : 1 << 16) + (size_t)n;
        b->s = xrealloc(b->s, b->cap);
    }
}

static void svg_finish(Svg *b, const char *path) {
    svg_printf(b, "</svg>\n");
    write_file_atomic(path, b->s, b->len);
    free(b->s);
}

void plot_svg(const char *path, const char *title, const char *xlabel, const PlotSeries *s, int ns) {
    const double W = 720, H = 420, L = 70, R = 170, T = 40, B = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    // a range within rounding of its values (two losses a float ulp apart) would give a tick step that
    // v += step cannot advance: widen it as an empty range
    if (x1 - x0 <= 1e-9 * fmax(fabs(x0), fabs(x1))) x1 = x0 + 1;
    if (y1 - y0 <= 1e-9 * fmax(fabs(y0), fabs(y1))) { y0 -= 0.5; y1 += 0.5; }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    Svg svg = {0};
#define EMIT(...) svg_printf(&svg, __VA_ARGS__)
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
#undef EMIT
#undef PX
#undef PY
    svg_finish(&svg, path);
}

void plot_bars_svg(const char *path, const char *title, const char *const *groups, int n_groups,
                   const char *const *series, int n_series, const double *value, const double *lo, const double *hi) {
    const double W = 180 + 110.0 * n_groups, H = 420, L = 60, R = 170, T = 40, B = 60;
    double y1 = 0;
    for (int i = 0; i < n_groups * n_series; i++)
        if (isfinite(value[i])) y1 = fmax(y1, hi && isfinite(hi[i]) ? fmax(value[i], hi[i]) : value[i]);
    const double ys = nice_step(y1 > 0 ? y1 : 1, 5);
    y1 = ceil((y1 > 0 ? y1 : 1) / ys) * ys;
    const double gw = (W - L - R) / n_groups, bw = gw * 0.8 / n_series;
#define PY(y) (H - B - (y) / y1 * (H - T - B))
    Svg svg = {0};
    svg_printf(&svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", W, H);
    svg_printf(&svg, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    svg_printf(&svg, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n", (L + W - R) / 2, title);
    for (double v = 0; v <= y1 + ys * 1e-9; v += ys) {
        svg_printf(&svg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", L, W - R, PY(v), PY(v));
        svg_printf(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", L - 6, PY(v) + 4, v);
    }
    for (int g = 0; g < n_groups; g++) {
        const double gx = L + g * gw + gw * 0.1;
        svg_printf(&svg, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%s</text>\n", L + (g + 0.5) * gw, H - B + 18, groups[g]);
        for (int k = 0; k < n_series; k++) {
            const double v = value[k * n_groups + g];
            if (!isfinite(v)) continue;  // no value: no bar
            const double x = gx + k * bw;
            svg_printf(&svg, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"%s\"/>\n", x, PY(v), bw * 0.9,
                       PY(0) - PY(v), colors[k % 8]);
            const double a = lo ? lo[k * n_groups + g] : NAN, b = hi ? hi[k * n_groups + g] : NAN;
            if (isfinite(a) && isfinite(b) && b > a) {  // the interval, with caps
                const double cx = x + bw * 0.45, cw = bw * 0.2;
                svg_printf(&svg, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#222\"/>\n", cx, cx, PY(fmax(a, 0)), PY(b));
                svg_printf(&svg, "<path d=\"M%.1f %.1fH%.1fM%.1f %.1fH%.1f\" stroke=\"#222\"/>\n", cx - cw, PY(fmax(a, 0)),
                           cx + cw, cx - cw, PY(b), cx + cw);
            }
        }
    }
    svg_printf(&svg, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", L, T, W - L - R, H - T - B);
    for (int k = 0; k < n_series; k++) {
        const double ly = T + 14 + 18 * k;
        svg_printf(&svg, "<rect x=\"%.0f\" y=\"%.1f\" width=\"14\" height=\"10\" fill=\"%s\"/>\n", W - R + 12, ly - 9, colors[k % 8]);
        svg_printf(&svg, "<text x=\"%.0f\" y=\"%.1f\">%s</text>\n", W - R + 32, ly, series[k]);
    }
#undef PY
    svg_finish(&svg, path);
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
