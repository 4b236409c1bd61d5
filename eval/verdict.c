// vlm eval verdict | score (see verdict.h), over the JSON that eval/table.c writes:
//   {"metrics": [{"name", "label", "lower_is_better"}...],
//    "models": [{"name", "values": {METRIC: {"mean", "lo", "hi"}}, "vs": {BASELINE: {METRIC: {"diff", "lo", "hi"}}}}...]}
#include "verdict.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../train/plot.h"
#include "../util/common.h"

static cJSON *load_table(const char *path) {
    char *text = read_file(path, NULL);
    cJSON *j = cJSON_Parse(text);
    free(text);
    if (!j || !cJSON_IsArray(cJSON_GetObjectItemCaseSensitive(j, "models")))
        fatal("%s: not a vlm eval table --json file (no \"models\" list)", path);
    return j;
}

static const cJSON *find_named(const cJSON *arr, const char *name) {
    const cJSON *e;
    cJSON_ArrayForEach(e, arr) {
        const cJSON *n = cJSON_GetObjectItemCaseSensitive(e, "name");
        if (cJSON_IsString(n) && !strcmp(n->valuestring, name)) return e;
    }
    return NULL;
}

// A number at j[k1][k2][k3] (k3 may be NULL); dies naming the path when it is missing.
static double num(const char *file, const cJSON *j, const char *k1, const char *k2, const char *k3, const char *what) {
    const cJSON *x = cJSON_GetObjectItemCaseSensitive(j, k1);
    if (x && k2) x = cJSON_GetObjectItemCaseSensitive(x, k2);
    if (x && k3) x = cJSON_GetObjectItemCaseSensitive(x, k3);
    if (!cJSON_IsNumber(x)) fatal("%s: %s has no %s.%s%s%s", file, what, k1, k2 ? k2 : "", k3 ? "." : "", k3 ? k3 : "");
    return x->valuedouble;
}

typedef struct {
    const char *name, *label;
    int lower_better;
} MetricInfo;

static MetricInfo metric_info(const char *file, const cJSON *t, const char *name) {
    const cJSON *m = find_named(cJSON_GetObjectItemCaseSensitive(t, "metrics"), name);
    if (!m) fatal("%s: the table has no metric '%s' (make it with vlm eval table --metrics ...,%s)", file, name, name);
    const cJSON *l = cJSON_GetObjectItemCaseSensitive(m, "label");
    return (MetricInfo){name, cJSON_IsString(l) ? l->valuestring : name, cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(m, "lower_is_better"))};
}

// A difference and its interval, signed so that + is better, and whether the interval settles the sign.
typedef struct {
    double d, lo, hi;
    int better, worse;  // the interval lies above / below 0
} Delta;

static Delta delta(const char *file, const cJSON *model, const char *base, const MetricInfo *m) {
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(model, "vs");
    const cJSON *b = vs ? cJSON_GetObjectItemCaseSensitive(vs, base) : NULL;
    if (!b) fatal("%s: no differences against '%s' (make the table with --baseline %s)", file, base, base);
    char what[160];
    snprintf(what, sizeof(what), "the difference from %s", base);
    double d = num(file, b, m->name, "diff", NULL, what), lo = num(file, b, m->name, "lo", NULL, what),
           hi = num(file, b, m->name, "hi", NULL, what);
    if (m->lower_better) { double t = -d; d = t; t = -lo; lo = -hi; hi = t; }
    return (Delta){d, lo, hi, lo > 0, hi < 0};
}

static void put_delta(FILE *f, const Delta *x) {
    fprintf(f, "%+.1f [%+.1f, %+.1f] points%s", x->d, x->lo, x->hi,
            x->better ? " (better; the interval excludes 0)" : x->worse ? " (worse; the interval excludes 0)" : " (not resolved: the interval contains 0)");
}

static void verdict_write(FILE *f, const VerdictOptions *o, const cJSON *t) {
    const cJSON *models = cJSON_GetObjectItemCaseSensitive(t, "models");
    const cJSON *me = find_named(models, o->method);
    if (!me) fatal("%s: no model named '%s'", o->table, o->method);
    MetricInfo h = metric_info(o->table, t, o->hallucination), g = metric_info(o->table, t, o->general);
    // rank on the hallucination metric, by mean
    int n = 0, rank = 1, ties = 0;
    double mine = num(o->table, me, "values", h.name, "mean", o->method);
    const cJSON *e;
    cJSON_ArrayForEach(e, models) {
        const cJSON *nm = cJSON_GetObjectItemCaseSensitive(e, "name");
        double v = num(o->table, e, "values", h.name, "mean", nm->valuestring);
        n++;
        if (e != me && (h.lower_better ? v < mine : v > mine)) rank++;
        ties += e != me && fabs(v - mine) < 0.05;  // equal at the printed precision
    }
    fprintf(f, "%s on %s (prior-driven hallucination; %s) and %s (general ability), 95%% intervals from the table:\n",
            o->method, h.label, h.lower_better ? "lower is better" : "higher is better", g.label);
    fprintf(f, "- ranking on %s (mean over runs):", h.label);
    // models in order of the metric (selection sort over a copy of the pointers)
    const cJSON *order[64];
    int k = 0;
    cJSON_ArrayForEach(e, models) if (k < 64) order[k++] = e;
    for (int i = 0; i < k; i++)
        for (int j = i + 1; j < k; j++) {
            double a = num(o->table, order[i], "values", h.name, "mean", "model"), b = num(o->table, order[j], "values", h.name, "mean", "model");
            if (h.lower_better ? b < a : b > a) { const cJSON *x = order[i]; order[i] = order[j]; order[j] = x; }
        }
    for (int i = 0; i < k; i++)
        fprintf(f, "%s %s %.1f", i ? "," : "", cJSON_GetObjectItemCaseSensitive(order[i], "name")->valuestring,
                num(o->table, order[i], "values", h.name, "mean", "model"));
    fprintf(f, "\n");
    Delta dh[16], dg[16];
    for (int b = 0; b < o->n_baselines && b < 16; b++) {
        dh[b] = delta(o->table, me, o->baselines[b], &h);
        dg[b] = delta(o->table, me, o->baselines[b], &g);
        fprintf(f, "- %s - %s: %s ", o->method, o->baselines[b], h.label);
        put_delta(f, &dh[b]);
        fprintf(f, "; %s ", g.label);
        put_delta(f, &dg[b]);
        fprintf(f, "\n");
    }
    // the sentence: the first baseline is the starting model, the others the method's rivals
    fprintf(f, "Verdict: %s ", o->method);
    if (o->n_baselines == 0) {
        fprintf(f, "ranked %d of %d models on %s%s.\n", rank, n, h.label, ties ? " (tied)" : "");
        return;
    }
    const Delta *s = &dh[0];
    fprintf(f, "%s prior-driven hallucination relative to %s (%s %+.1f points, interval [%+.1f, %+.1f])",
            s->better ? "reduced" : s->worse ? "increased" : "did not measurably change", o->baselines[0], h.label, s->d, s->lo, s->hi);
    fprintf(f, " and ranked %d of %d models on it", rank, n);
    if (ties) fprintf(f, " (tied with %d)", ties);
    for (int b = 1; b < o->n_baselines && b < 16; b++)
        fprintf(f, "; against %s it is %s (%+.1f [%+.1f, %+.1f])", o->baselines[b],
                dh[b].better ? "ahead, resolved at 95%" : dh[b].worse ? "behind, resolved at 95%" : "not resolved at 95%",
                dh[b].d, dh[b].lo, dh[b].hi);
    fprintf(f, ". General ability (%s) %s (%+.1f [%+.1f, %+.1f] points against %s).\n", g.label,
            dg[0].worse ? "measurably dropped" : dg[0].better ? "measurably rose" : "showed no measurable change", dg[0].d,
            dg[0].lo, dg[0].hi, o->baselines[0]);
}

// A text written once into memory (text_open), then to stdout and, atomically, to `out` (text_close; NULL: none).
typedef struct {
    char *buf;
    size_t len;
} Text;

static FILE *text_open(Text *x) {
    FILE *f = open_memstream(&x->buf, &x->len);
    if (!f) fatal("open_memstream failed");
    return f;
}

static void text_close(Text *x, FILE *f, const char *out) {
    fclose(f);
    fwrite(x->buf, 1, x->len, stdout);
    if (out) write_file_atomic(out, x->buf, x->len);
    free(x->buf);
}

void verdict_run(const VerdictOptions *o) {
    cJSON *t = load_table(o->table);
    Text x;
    FILE *f = text_open(&x);
    verdict_write(f, o, t);
    text_close(&x, f, o->out);
    cJSON_Delete(t);
}

void score_run(const char *table, const char *metrics) {
    cJSON *t = load_table(table);
    char *list = xstrdup(metrics);
    MetricInfo mi[32];
    int n = 0;
    for (char *save = NULL, *m = strtok_r(list, ",", &save); m; m = strtok_r(NULL, ",", &save)) {
        if (n == 32) fatal("vlm eval score: at most 32 metrics");
        mi[n++] = metric_info(table, t, m);
    }
    if (!n) fatal("vlm eval score: --metrics names no metric");
    const cJSON *e;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(t, "models")) {
        const char *name = cJSON_GetObjectItemCaseSensitive(e, "name")->valuestring;
        double s = 0;
        for (int k = 0; k < n; k++) {
            double v = num(table, e, "values", mi[k].name, "mean", name);
            s += mi[k].lower_better ? 100 - v : v;
        }
        printf("%s\t%.4f\n", name, s / n);
    }
    free(list);
    cJSON_Delete(t);
}

// ---- frontier ----

// A setting's label: "lr X" from the run.json of the table's first run that has one, else the file's name
static char *setting_label(const char *file, const cJSON *t) {
    const cJSON *m, *r;
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(t, "models")) {
        cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(m, "runs")) {
            const cJSON *lr = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(r, "run"), "lr");
            if (cJSON_IsNumber(lr)) {
                // as a person writes it: 3e-5, 1e-4, 0.01
                char num[32], buf[64];
                const double v = lr->valuedouble;
                if (v != 0 && fabs(v) < 1e-2) {
                    const int ex = (int)floor(log10(fabs(v)) + 1e-9);
                    snprintf(num, sizeof(num), "%.3ge%d", v / pow(10, ex), ex);
                } else snprintf(num, sizeof(num), "%g", v);
                snprintf(buf, sizeof(buf), "lr %s", num);
                return xstrdup(buf);
            }
        }
    }
    const char *b = strrchr(file, '/');
    char *name = xstrdup(b ? b + 1 : file), *dot = strrchr(name, '.');
    if (dot && !strcmp(dot, ".json")) *dot = 0;
    return name;
}

static void put_cell(FILE *f, const Delta *x) {
    fprintf(f, " %+.1f [%+.1f, %+.1f]%s |", x->d, x->lo, x->hi, x->better || x->worse ? "*" : "");
}

void frontier_run(const FrontierOptions *o) {
    if (o->n_tables < 1 || o->n_baselines < 1) fatal("vlm eval frontier: needs a table and a --baseline");
    const int NT = o->n_tables, NB = o->n_baselines;
    cJSON **t = xcalloc((size_t)NT, sizeof(cJSON *));
    char **label = xcalloc((size_t)NT, sizeof(char *));
    MetricInfo mx = {0}, my = {0};
    for (int i = 0; i < NT; i++) {
        t[i] = load_table(o->tables[i]);
        mx = metric_info(o->tables[i], t[i], o->x);
        my = metric_info(o->tables[i], t[i], o->y);
        label[i] = setting_label(o->tables[i], t[i]);
        for (int b = 0; b < NB; b++)
            if (!find_named(cJSON_GetObjectItemCaseSensitive(t[i], "models"), o->baselines[b]))
                fatal("%s: no model named '%s' (the --baseline)", o->tables[i], o->baselines[b]);
    }
    // the models, in order of first appearance, the origin left out
    const char **models = NULL;
    int nm = 0;
    for (int i = 0; i < NT; i++) {
        const cJSON *m;
        cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(t[i], "models")) {
            const char *name = cJSON_GetObjectItemCaseSensitive(m, "name")->valuestring;
            int seen = !strcmp(name, o->baselines[0]);
            for (int k = 0; k < nm && !seen; k++) seen = !strcmp(models[k], name);
            if (seen) continue;
            models = xrealloc(models, sizeof(char *) * (size_t)(nm + 1));
            models[nm++] = name;
        }
    }
    if (o->method) {
        int found = 0;
        for (int k = 0; k < nm; k++) found |= !strcmp(models[k], o->method);
        if (!found) fatal("vlm eval frontier: no table has a model named '%s' (--method)", o->method);
    }
    Text x;
    FILE *f = text_open(&x);
    fprintf(f, "Each model's difference from %s at each setting (%s and %s, in points, + is better; paired by seed and "
               "question, 95%% interval; * the interval excludes 0):\n\n| model | setting | runs |", o->baselines[0], mx.label, my.label);
    for (int b = 0; b < NB; b++) fprintf(f, " %s vs %s | %s vs %s |", mx.label, o->baselines[b], my.label, o->baselines[b]);
    fprintf(f, "\n|---|---|---|");
    for (int b = 0; b < NB; b++) fprintf(f, "---|---|");
    fprintf(f, "\n");
    // per model: its points (one per table that has it) for the chart
    PlotPoints *pts = xcalloc((size_t)nm, sizeof(PlotPoints));
    double *store = xcalloc((size_t)nm * NT * 6, sizeof(double));
    const char **plabel = xcalloc((size_t)nm * NT, sizeof(char *));
    for (int k = 0; k < nm; k++) {
        double *v = store + (size_t)k * NT * 6;
        pts[k] = (PlotPoints){models[k], 0, v, v + NT, v + 2 * NT, v + 3 * NT, v + 4 * NT, v + 5 * NT, plabel + (size_t)k * NT};
        for (int i = 0; i < NT; i++) {
            const cJSON *m = find_named(cJSON_GetObjectItemCaseSensitive(t[i], "models"), models[k]);
            if (!m) continue;
            fprintf(f, "| %s | %s | %d |", models[k], label[i], cJSON_GetArraySize(cJSON_GetObjectItemCaseSensitive(m, "runs")));
            for (int b = 0; b < NB; b++) {
                if (!strcmp(models[k], o->baselines[b])) { fprintf(f, " | |"); continue; }
                Delta dx = delta(o->tables[i], m, o->baselines[b], &mx), dy = delta(o->tables[i], m, o->baselines[b], &my);
                put_cell(f, &dx);
                put_cell(f, &dy);
                if (b == 0) {
                    const int j = pts[k].n++;
                    v[j] = dx.d; v[NT + j] = dx.lo; v[2 * NT + j] = dx.hi;
                    v[3 * NT + j] = dy.d; v[4 * NT + j] = dy.lo; v[5 * NT + j] = dy.hi;
                    plabel[(size_t)k * NT + j] = label[i];
                }
            }
            fprintf(f, "\n");
        }
    }
    // the method against each rival at the same setting, in one line each
    for (int b = 1; o->method && b < NB; b++) {
        if (!strcmp(o->method, o->baselines[b])) continue;
        fprintf(f, "\n%s - %s at the same setting:", o->method, o->baselines[b]);
        int ahead = 0, behind = 0, n = 0;
        for (int i = 0; i < NT; i++) {
            const cJSON *m = find_named(cJSON_GetObjectItemCaseSensitive(t[i], "models"), o->method);
            if (!m) continue;
            Delta dx = delta(o->tables[i], m, o->baselines[b], &mx), dy = delta(o->tables[i], m, o->baselines[b], &my);
            fprintf(f, "%s %s: %s %+.1f%s, %s %+.1f%s", n ? ";" : "", label[i], mx.label, dx.d, dx.better || dx.worse ? "*" : "",
                    my.label, dy.d, dy.better || dy.worse ? "*" : "");
            ahead += dx.better; behind += dx.worse; n++;
        }
        fprintf(f, ".\nOn %s %s is ahead of %s, resolved at 95%%, at %d of %d settings and behind at %d.\n", mx.label, o->method,
                o->baselines[b], ahead, n, behind);
    }
    text_close(&x, f, o->out);
    if (o->svg) {
        char title[256], xl[256], yl[256];
        snprintf(title, sizeof(title), "difference from %s at each setting: the trade-off", o->baselines[0]);
        snprintf(xl, sizeof(xl), "%s vs %s (points, + is better)", mx.label, o->baselines[0]);
        snprintf(yl, sizeof(yl), "%s vs %s (points, + is better)", my.label, o->baselines[0]);
        plot_tradeoff_svg(o->svg, title, xl, yl, pts, nm, o->x_min, o->y_min);
    }
    free(pts); free(store); free(plabel); free(models);
    for (int i = 0; i < NT; i++) { cJSON_Delete(t[i]); free(label[i]); }
    free(t); free(label);
}
