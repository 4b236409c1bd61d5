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

// Writes the document; with err NULL a failure dies naming the file, else it returns -1 with the message in err.
static int svg_finish(Svg *b, const char *path, char *err, size_t errlen) {
    svg_printf(b, "</svg>\n");
    int rc = 0;
    if (err) rc = try_write_file_atomic(path, b->s, b->len, err, errlen);
    else write_file_atomic(path, b->s, b->len);
    free(b->s);
    return rc;
}

// A chart's geometry: its size and margins, px, and the data ranges of its numeric axes.
typedef struct {
    double W, H, L, R, T, B;  // width, height; left, right, top and bottom margins around the plot area
    double x0, x1, y0, y1;    // the data values at the plot area's edges
} Frame;

// A data value's pixel position, clamped to the plot area.
static double frame_x(const Frame *f, double x) { return f->L + (fmax(f->x0, fmin(f->x1, x)) - f->x0) / (f->x1 - f->x0) * (f->W - f->L - f->R); }
static double frame_y(const Frame *f, double y) { return f->H - f->B - (fmax(f->y0, fmin(f->y1, y)) - f->y0) / (f->y1 - f->y0) * (f->H - f->T - f->B); }

// The document's start: its size, a white background and the title, centred on the whole width (over the
// plot area a narrow chart, a bar chart of two metrics, would cut it at the left edge).
static void svg_begin(Svg *b, const Frame *f, const char *title) {
    svg_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\" font-size=\"12\">\n", f->W, f->H);
    svg_printf(b, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
    svg_printf(b, "<text x=\"%.0f\" y=\"24\" font-size=\"15\" text-anchor=\"middle\">%s</text>\n", f->W / 2, title);
}

// Two numeric axes: grid lines at "nice" steps, about `ticks` on each, with their values (a value within
// rounding of 0 printed as 0), the plot area's border and the x axis' label.
static void svg_axes(Svg *b, const Frame *f, int ticks, const char *xlabel) {
    const double xs = nice_step(f->x1 - f->x0, ticks), ys = nice_step(f->y1 - f->y0, ticks);
    for (double v = ceil(f->y0 / ys) * ys; v <= f->y1; v += ys) {
        svg_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", f->L, f->W - f->R, frame_y(f, v), frame_y(f, v));
        svg_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\">%.4g</text>\n", f->L - 6, frame_y(f, v) + 4, fabs(v) < ys * 1e-6 ? 0 : v);
    }
    for (double v = ceil(f->x0 / xs) * xs; v <= f->x1; v += xs) {
        svg_printf(b, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#e5e5e5\"/>\n", frame_x(f, v), frame_x(f, v), f->T, f->H - f->B);
        // up to 6 digits: a step count reads 12000, where %.4g would write 1.2e+04 and run into its neighbours
        svg_printf(b, "<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"middle\">%.6g</text>\n", frame_x(f, v), f->H - f->B + 16, fabs(v) < xs * 1e-6 ? 0 : v);
    }
    svg_printf(b, "<rect x=\"%.0f\" y=\"%.0f\" width=\"%.0f\" height=\"%.0f\" fill=\"none\" stroke=\"#444\"/>\n", f->L, f->T, f->W - f->L - f->R,
               f->H - f->T - f->B);
    svg_printf(b, "<text x=\"%.0f\" y=\"%.0f\" text-anchor=\"middle\">%s</text>\n", (f->L + f->W - f->R) / 2, f->H - 12, xlabel);
}

// Inside a chart function with a local `Svg svg` and `Frame fr`: append text, and data values to pixels.
#define EMIT(...) svg_printf(&svg, __VA_ARGS__)
#define PX(x) frame_x(&fr, (x))
#define PY(y) frame_y(&fr, (y))

void plot_smooth(const double *y, int n, double *out) {
    const double span = n / 20.0, w = span > 2 ? 1 - 1 / span : 0;  // the EMA's weight of the past
    double ema = 0, norm = 0;
    for (int i = 0; i < n; i++) {
        ema = w * ema + (1 - w) * y[i];
        norm = w * norm + (1 - w);  // 1 - w^(i+1): the debiasing of the zero start
        out[i] = ema / norm;
    }
}

int plot_svg(const char *path, const char *title, const char *xlabel, const PlotSeries *s, int ns, double mark,
             const char *mark_label, char *err, size_t errlen) {
    const double W = 720, H = 420, L = 70, R = 170, T = 40, B = 50;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            if (!isfinite(s[k].y[i])) continue;
            x0 = fmin(x0, s[k].x[i]); x1 = fmax(x1, s[k].x[i]);
            y0 = fmin(y0, s[k].y[i]); y1 = fmax(y1, s[k].y[i]);
        }
    if (!isfinite(x0)) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (isfinite(mark)) { y0 = fmin(y0, mark); y1 = fmax(y1, mark); }  // the marker is always in view
    // a range within rounding of its values (two losses a float ulp apart) would give a tick step that
    // v += step cannot advance: widen it as an empty range
    if (x1 - x0 <= 1e-9 * fmax(fabs(x0), fabs(x1))) x1 = x0 + 1;
    if (y1 - y0 <= 1e-9 * fmax(fabs(y0), fabs(y1))) { y0 -= 0.5; y1 += 0.5; }
    double pad = (y1 - y0) * 0.05;
    y0 -= pad; y1 += pad;
    Svg svg = {0};
    const Frame fr = {W, H, L, R, T, B, x0, x1, y0, y1};
    svg_begin(&svg, &fr, title);
    svg_axes(&svg, &fr, 6, xlabel);
    if (isfinite(mark)) {
        EMIT("<line class=\"mark\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", L,
             W - R, PY(mark), PY(mark));
        EMIT("<text x=\"%.1f\" y=\"%.1f\" text-anchor=\"end\" fill=\"#555\">%s</text>\n", W - R - 4, PY(mark) - 4, mark_label ? mark_label : "");
    }
    const int cols = (int)(W - L - R);  // drawn points per line at most: one (smoothed) or two (raw band) a pixel column
    for (int k = 0; k < ns; k++) {
        const char *col = colors[k % 8];
        double *xv = xmalloc(sizeof(double) * (s[k].n + 1)), *yv = xmalloc(sizeof(double) * (s[k].n + 1));
        int n = 0;
        for (int i = 0; i < s[k].n; i++)
            if (isfinite(s[k].y[i])) { xv[n] = s[k].x[i]; yv[n++] = s[k].y[i]; }
        // the raw points, faint
        if (n <= 400) {
            EMIT("<g class=\"raw\" fill=\"%s\" fill-opacity=\"0.35\">", col);
            for (int i = 0; i < n; i++) EMIT("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"1.6\"/>", PX(xv[i]), PY(yv[i]));
            EMIT("</g>\n");
        } else {  // each pixel column's lowest and highest value: every spike stays visible
            EMIT("<polyline class=\"raw\" fill=\"none\" stroke=\"%s\" stroke-opacity=\"0.3\" stroke-width=\"1\" points=\"", col);
            for (int i = 0; i < n;) {
                const int c = (int)PX(xv[i]) - (int)L;
                double lo = yv[i], hi = yv[i];
                int j = i + 1;
                for (; j < n && (int)PX(xv[j]) - (int)L == c; j++) { lo = fmin(lo, yv[j]); hi = fmax(hi, yv[j]); }
                EMIT("%.1f,%.1f %.1f,%.1f ", PX(xv[i]), PY(lo), PX(xv[j - 1]), PY(hi));
                i = j;
            }
            EMIT("\"/>\n");
        }
        // the smoothed line over them: its last point in each pixel column
        plot_smooth(yv, n, yv);
        EMIT("<polyline class=\"smooth\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.8\" points=\"", col);
        for (int i = 0; i < n; i++)
            if (i + 1 == n || (int)PX(xv[i + 1]) != (int)PX(xv[i]) || n <= cols) EMIT("%.1f,%.1f ", PX(xv[i]), PY(yv[i]));
        EMIT("\"/>\n");
        free(xv);
        free(yv);
        double ly = T + 14 + 18 * k;
        EMIT("<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - R + 12, W - R + 32, ly - 4, ly - 4, col);
        EMIT("<text x=\"%.0f\" y=\"%.1f\">%s</text>\n", W - R + 38, ly, s[k].name);
    }
    // two lines: one would run past the legend's margin
    EMIT("<text x=\"%.0f\" y=\"%.1f\" fill=\"#777\" font-size=\"10\">dots: every step;</text>\n", W - R + 12, T + 14 + 18 * ns + 4);
    EMIT("<text x=\"%.0f\" y=\"%.1f\" fill=\"#777\" font-size=\"10\">lines: smoothed</text>\n", W - R + 12, T + 14 + 18 * ns + 17);
    return svg_finish(&svg, path, err, errlen);
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
    Svg svg = {0};
    const Frame fr = {W, H, L, R, T, B, 0, 1, 0, y1};  // x unused: bars are placed by group
    svg_begin(&svg, &fr, title);
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
    svg_finish(&svg, path, NULL, 0);
}

void plot_chart_init(PlotChart *c, const char *keys, double mark, const char *mark_label) {
    memset(c, 0, sizeof(*c));
    char *copy = xstrdup(keys);
    for (char *t = strtok(copy, ","); t && c->n_keys < PLOT_MAX_KEYS; t = strtok(NULL, ",")) c->keys[c->n_keys++] = xstrdup(t);
    free(copy);
    c->mark = mark;
    snprintf(c->mark_label, sizeof(c->mark_label), "%s", mark_label ? mark_label : "");
}

void plot_chart_add(PlotChart *c, const cJSON *record) {
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(record, "step");
    if (!cJSON_IsNumber(step)) return;
    for (int k = 0; k < c->n_keys; k++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(record, c->keys[k]);
        if (!cJSON_IsNumber(v)) continue;
        if (c->n[k] == c->cap[k]) {
            c->cap[k] = c->cap[k] ? 2 * c->cap[k] : 256;
            c->x[k] = xrealloc(c->x[k], sizeof(double) * c->cap[k]);
            c->y[k] = xrealloc(c->y[k], sizeof(double) * c->cap[k]);
        }
        c->x[k][c->n[k]] = step->valuedouble;
        c->y[k][c->n[k]++] = v->valuedouble;
    }
}

void plot_chart_add_log(PlotChart *const *charts, int n, const char *log_path) {
    JsonlReader r;
    jsonl_open(&r, log_path);
    cJSON *j;
    while ((j = jsonl_next(&r, 0, NULL))) {
        for (int k = 0; k < n; k++) plot_chart_add(charts[k], j);
        cJSON_Delete(j);
    }
    jsonl_close(&r);
}

int plot_chart_write(const PlotChart *c, const char *path, const char *title, char *err, size_t errlen) {
    PlotSeries s[PLOT_MAX_KEYS];
    int ns = 0;
    for (int k = 0; k < c->n_keys; k++) if (c->n[k]) s[ns++] = (PlotSeries){c->keys[k], c->x[k], c->y[k], c->n[k]};
    if (ns && plot_svg(path, title, "step", s, ns, c->mark, c->mark_label, err, errlen)) return -1;
    return ns;
}

void plot_chart_free(PlotChart *c) {
    for (int k = 0; k < c->n_keys; k++) { free(c->keys[k]); free(c->x[k]); free(c->y[k]); }
    memset(c, 0, sizeof(*c));
}

int plot_metrics(const char *log_path, const char *keys, const char *svg_path, const char *title) {
    PlotChart c;
    plot_chart_init(&c, keys, NAN, NULL);
    plot_chart_add_log(&(PlotChart *){&c}, 1, log_path);
    const int ns = plot_chart_write(&c, svg_path, title, NULL, 0);
    plot_chart_free(&c);
    return ns;
}

void plot_tradeoff_svg(const char *path, const char *title, const char *xlabel, const char *ylabel, const PlotPoints *s,
                       int ns, double x_min, double y_min) {
    const double W = 760, H = 520, L = 70, R = 170, T = 40, B = 56;
    double x0 = 0, x1 = 0, y0 = 0, y1 = 0;  // the origin (the baseline) is always in view
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < s[k].n; i++) {
            const double xs[3] = {s[k].x[i], s[k].xlo[i], s[k].xhi[i]}, ys[3] = {s[k].y[i], s[k].ylo[i], s[k].yhi[i]};
            for (int j = 0; j < 3; j++) {
                if (isfinite(xs[j])) { x0 = fmin(x0, xs[j]); x1 = fmax(x1, xs[j]); }
                if (isfinite(ys[j])) { y0 = fmin(y0, ys[j]); y1 = fmax(y1, ys[j]); }
            }
        }
    // a floor keeps the region that matters readable when a model collapses far below it
    if (isfinite(x_min) && x_min < 0) x0 = fmax(x0, x_min);
    if (isfinite(y_min) && y_min < 0) y0 = fmax(y0, y_min);
    if (x1 - x0 < 1e-9) { x0 -= 1; x1 += 1; }
    if (y1 - y0 < 1e-9) { y0 -= 1; y1 += 1; }
    const double px = (x1 - x0) * 0.06, py = (y1 - y0) * 0.06;
    x0 -= px; x1 += px; y0 -= py; y1 += py;
    // positions clamped to the frame: a point past a floor sits on the edge, hollow, with its values in its label
    Svg svg = {0};
    const Frame fr = {W, H, L, R, T, B, x0, x1, y0, y1};
    svg_begin(&svg, &fr, title);
    svg_axes(&svg, &fr, 7, xlabel);
    EMIT("<line class=\"origin\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", L, W - R,
         PY(0), PY(0));
    EMIT("<line class=\"origin\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"#555\" stroke-dasharray=\"6,4\"/>\n", PX(0), PX(0),
         T * 1.0, H - B);
    EMIT("<text transform=\"translate(16 %.0f) rotate(-90)\" text-anchor=\"middle\">%s</text>\n", (T + H - B) / 2, ylabel);
    int n_outside = 0;
    for (int k = 0; k < ns; k++) {
        const char *col = colors[k % 8];
        EMIT("<g class=\"series\" stroke=\"%s\" fill=\"%s\">\n", col, col);
        EMIT("<polyline fill=\"none\" stroke-width=\"1.8\" points=\"");
        for (int i = 0; i < s[k].n; i++) EMIT("%.1f,%.1f ", PX(s[k].x[i]), PY(s[k].y[i]));
        EMIT("\"/>\n");
        for (int i = 0; i < s[k].n; i++) {
            const double cx = PX(s[k].x[i]), cy = PY(s[k].y[i]);
            if (isfinite(s[k].xlo[i]) && isfinite(s[k].xhi[i]))
                EMIT("<line stroke-opacity=\"0.5\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", PX(s[k].xlo[i]), PX(s[k].xhi[i]), cy, cy);
            if (isfinite(s[k].ylo[i]) && isfinite(s[k].yhi[i]))
                EMIT("<line stroke-opacity=\"0.5\" x1=\"%.1f\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\"/>", cx, cx, PY(s[k].ylo[i]), PY(s[k].yhi[i]));
            const int outside = s[k].x[i] < x0 || s[k].x[i] > x1 || s[k].y[i] < y0 || s[k].y[i] > y1;
            EMIT("<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\"%s/>", cx, cy, outside ? " fill=\"white\"" : "");
            if (s[k].label && s[k].label[i]) {
                // labels of points on the frame are stacked, so that several collapsed models stay legible
                EMIT("<text stroke=\"none\" font-size=\"10\" x=\"%.1f\" y=\"%.1f\">%s", cx + 5, cy - 5 - (outside ? 11.0 * n_outside++ : 0),
                     s[k].label[i]);
                if (outside) EMIT(" (%.1f, %.1f)", s[k].x[i], s[k].y[i]);
                EMIT("</text>");
            }
            EMIT("\n");
        }
        EMIT("</g>\n");
        const double ly = T + 14 + 18 * k;
        EMIT("<line x1=\"%.0f\" x2=\"%.0f\" y1=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"3\"/>\n", W - R + 12, W - R + 32, ly - 4, ly - 4, col);
        EMIT("<text x=\"%.0f\" y=\"%.1f\">%s</text>\n", W - R + 38, ly, s[k].name);
    }
    EMIT("<text x=\"%.0f\" y=\"%.1f\" fill=\"#777\" font-size=\"10\">bars: 95%% intervals</text>\n", W - R + 12, T + 14 + 18 * ns + 4);
    svg_finish(&svg, path, NULL, 0);
}
