// vlm eval verdict | score (see verdict.h), over the JSON that eval/table.c writes:
//   {"metrics": [{"name", "label", "lower_is_better"}...],
//    "models": [{"name", "values": {METRIC: {"mean", "lo", "hi"}}, "vs": {BASELINE: {METRIC: {"diff", "lo", "hi"}}}}...]}
#include "verdict.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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

void verdict_run(const VerdictOptions *o) {
    // written once into memory, then to stdout and (atomically) to --out
    cJSON *t = load_table(o->table);
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    if (!f) fatal("open_memstream failed");
    verdict_write(f, o, t);
    fclose(f);
    fwrite(buf, 1, len, stdout);
    if (o->out) write_file_atomic(o->out, buf, len);
    free(buf);
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
