#include "table.h"

#include <cJSON.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../train/plot.h"
#include "../util/common.h"
#include "../util/strmap.h"

const char *table_metrics_help =
    "Metric names (--metrics, comma-separated), values in percent:\n"
    "  pope.SPLIT.M     SPLIT: a split's name in pope.json (random, popular, adversarial; \"pope_\" may be left\n"
    "                   off); M: acc, f1, yes (yes-ratio), prec, recall, fpr (false-positive rate: labelled\n"
    "                   no, answered yes / labelled no)\n"
    "  chair.s, chair.i CHAIR_s (captions with a hallucinated object), CHAIR_i (hallucinated / mentions)\n"
    "  mmvp.acc, mmvp.pairs   per-question and paired accuracy\n"
    "  qa.acc, qa.prior_err   accuracy; of the wrong answers to questions with a prior answer, the fraction\n"
    "                   that gave the prior answer\n"
    "  BENCH[.SPLIT].by.FIELD.VALUE.M   the same over the questions whose FIELD is VALUE (the eval JSON\n"
    "                   must come from --by FIELD; QA's \"type\" is always there), e.g.\n"
    "                   pope.adversarial.by.negative.partner.fpr, qa.by.type.color.acc,\n"
    "                   qa.by.atypical.true.prior_err\n"
    "Default: pope.random.acc, pope.popular.acc, pope.adversarial.acc, pope.adversarial.f1,\n"
    "pope.adversarial.yes, chair.s, chair.i, mmvp.acc, mmvp.pairs, qa.acc\n";

static const char *default_metrics =
    "pope.random.acc,pope.popular.acc,pope.adversarial.acc,pope.adversarial.f1,pope.adversarial.yes,chair.s,chair.i,"
    "mmvp.acc,mmvp.pairs,qa.acc";
// the column headers of the default metrics (others are headed by their names)
static const char *const known_labels[][2] = {
    {"pope.random.acc", "POPE rand acc"}, {"pope.popular.acc", "POPE pop acc"}, {"pope.adversarial.acc", "POPE adv acc"},
    {"pope.adversarial.f1", "POPE adv F1"}, {"pope.adversarial.yes", "adv yes %"}, {"chair.s", "CHAIR_s (lower)"},
    {"chair.i", "CHAIR_i (lower)"}, {"mmvp.acc", "MMVP acc"}, {"mmvp.pairs", "MMVP pairs"}, {"qa.acc", "QA acc"},
};

enum { RNG_SEED = 1234 };

// ---- parsed metric names ----------------------------------------------------------------------------

typedef enum { B_POPE, B_CHAIR, B_MMVP, B_QA } Bench;
static const char *const bench_file[] = {"pope.json", "chair.json", "mmvp.json", "qa.json"};
static const char *const bench_cmd[] = {"vlm eval pope", "vlm eval chair", "vlm eval mmvp", "vlm eval qa"};

typedef struct {
    char *name, *label;
    Bench bench;
    char *split;          // POPE: the split as written in the name
    char *field, *value;  // a group, or NULL
    char *measure;        // acc, f1, ...
    int lower_better;
    int set;              // item set index
} Metric;

static int measure_ok(Bench b, const char *m) {
    static const char *const ok[4][7] = {{"acc", "f1", "yes", "prec", "recall", "fpr", NULL},
                                         {"s", "i", NULL},
                                         {"acc", "pairs", NULL},
                                         {"acc", "prior_err", NULL}};
    for (int i = 0; ok[b][i]; i++) if (!strcmp(ok[b][i], m)) return 1;
    return 0;
}

static void metric_parse(Metric *mt, const char *name) {
    memset(mt, 0, sizeof(*mt));
    mt->name = xstrdup(name);
    char *copy = xstrdup(name), *parts[64];
    int n = 0;
    for (char *p = copy, *dot; n < 64; p = dot + 1) {
        parts[n++] = p;
        if (!(dot = strchr(p, '.'))) break;
        *dot = 0;
    }
    int k = 1;
    if (!strcmp(parts[0], "pope")) mt->bench = B_POPE;
    else if (!strcmp(parts[0], "chair")) mt->bench = B_CHAIR;
    else if (!strcmp(parts[0], "mmvp")) mt->bench = B_MMVP;
    else if (!strcmp(parts[0], "qa")) mt->bench = B_QA;
    else goto bad;
    if (mt->bench == B_POPE) {
        if (n < 3) goto bad;
        mt->split = xstrdup(parts[k++]);
    }
    if (k < n - 1 && !strcmp(parts[k], "by")) {
        if (n - k < 4) goto bad;  // by FIELD VALUE M
        mt->field = xstrdup(parts[k + 1]);
        // the value is everything between the field and the measure (values may hold dots)
        size_t len = 0;
        for (int i = k + 2; i < n - 1; i++) len += strlen(parts[i]) + 1;
        mt->value = xcalloc(len + 1, 1);
        for (int i = k + 2; i < n - 1; i++) {
            if (i > k + 2) strcat(mt->value, ".");
            strcat(mt->value, parts[i]);
        }
        k = n - 1;
    }
    if (k != n - 1 || !measure_ok(mt->bench, parts[k])) goto bad;
    mt->measure = xstrdup(parts[k]);
    mt->lower_better = mt->bench == B_CHAIR || !strcmp(mt->measure, "fpr") || !strcmp(mt->measure, "prior_err");
    mt->label = NULL;
    for (size_t i = 0; i < sizeof(known_labels) / sizeof(known_labels[0]); i++)
        if (!strcmp(known_labels[i][0], name)) mt->label = xstrdup(known_labels[i][1]);
    if (!mt->label) {
        mt->label = xmalloc(strlen(name) + 10);
        sprintf(mt->label, "%s%s", name, mt->lower_better ? " (lower)" : "");
    }
    free(copy);
    return;
bad:
    fatal("vlm eval table: unknown metric '%s' (names like pope.adversarial.acc, chair.s, qa.by.type.color.acc; "
          "see vlm eval table --help)", name);
}

static void metric_free(Metric *m) {
    free(m->name); free(m->label); free(m->split); free(m->field); free(m->value); free(m->measure);
}

// ---- runs and their per-question numbers -------------------------------------------------------------

// A set of questions that runs are paired over: one POPE split, or CHAIR's captions, MMVP's pairs, QA's
// questions. The first run that reads it fixes the order of its ids.
typedef struct {
    char *key;       // "pope/pope_adversarial", "chair", ...
    char *first;     // the file that fixed the ids, for messages
    char **ids;
    int n;
    StrMap index;    // id -> position
} ItemSet;

typedef struct {
    char *dir, *seed;  // the folder; the folder above without the model name (the pairing key)
    char *seed_label;  // "seed2" for messages and the JSON
    int model;
    cJSON *json[4];    // the eval files, read when first needed
    int tried[4];
    cJSON *run_json;   // run.json or NULL
} Run;

typedef struct {
    Metric *metrics;
    int n_metrics;
    ItemSet *sets;
    int n_sets;
    Run *runs;
    int n_runs;
    char **models;
    int n_models;
} Table;

// The markdown header of a table: the model, its run count and one column per metric.
static void table_header(FILE *f, const Table *t) {
    fprintf(f, "| model | runs |");
    for (int k = 0; k < t->n_metrics; k++) fprintf(f, " %s |", t->metrics[k].label);
    fprintf(f, "\n|---|---|");
    for (int k = 0; k < t->n_metrics; k++) fprintf(f, "---|");
    fprintf(f, "\n");
}

static const cJSON *get(const cJSON *j, const char *k) { return j ? cJSON_GetObjectItemCaseSensitive(j, k) : NULL; }

static cJSON *run_file(Run *r, Bench b, const char *why) {
    if (!r->tried[b]) {
        r->tried[b] = 1;
        char *p = path_join(r->dir, bench_file[b]), *text = try_read_file(p, NULL);
        if (!text) fatal("vlm eval table: %s: missing (needed for %s; write it with %s --out)", p, why, bench_cmd[b]);
        r->json[b] = cJSON_Parse(text);
        if (!r->json[b]) fatal("vlm eval table: %s: not valid JSON", p);
        free(text);
        free(p);
    }
    return r->json[b];
}

// The "items" object a metric reads in run r, and its item set's key (written to key).
static const cJSON *run_items(Run *r, const Metric *m, char *key, size_t cap) {
    const cJSON *j = run_file(r, m->bench, m->name), *items = NULL;
    if (m->bench == B_POPE) {
        const cJSON *splits = get(j, "splits"), *s;
        char want[256];
        snprintf(want, sizeof(want), "_%s", m->split);
        cJSON_ArrayForEach(s, splits) {
            const cJSON *nm = get(s, "name");
            if (!cJSON_IsString(nm)) continue;
            const char *x = nm->valuestring;
            size_t lx = strlen(x), lw = strlen(want);
            if (!strcmp(x, m->split) || (lx > lw && !strcmp(x + lx - lw, want))) {
                items = get(s, "items");
                snprintf(key, cap, "pope/%s", x);
                break;
            }
        }
        if (!s) {
            char names[512] = "";
            cJSON_ArrayForEach(s, splits) {
                const cJSON *nm = get(s, "name");
                if (cJSON_IsString(nm) && strlen(names) + strlen(nm->valuestring) + 3 < sizeof(names))
                    strcat(strcat(names, names[0] ? ", " : ""), nm->valuestring);
            }
            fatal("vlm eval table: %s/pope.json: no split '%s' (needed for %s); it has: %s", r->dir, m->split, m->name,
                  names[0] ? names : "none");
        }
    } else {
        items = get(j, "items");
        snprintf(key, cap, "%s", m->bench == B_CHAIR ? "chair" : m->bench == B_MMVP ? "mmvp" : "qa");
    }
    if (!cJSON_IsObject(items) || !cJSON_IsArray(get(items, "ids")))
        fatal("vlm eval table: %s/%s%s%s: no per-question \"items\" (needed for %s); rewrite it with this version's "
              "%s --out", r->dir, bench_file[m->bench], m->split ? ", split " : "", m->split ? m->split : "", m->name,
              bench_cmd[m->bench]);
    return items;
}

// The n elements of a JSON array, walked once (cJSON_GetArrayItem walks the list from the start each call).
static const cJSON **elems(const cJSON *a, int n) {
    const cJSON **v = xmalloc(sizeof(cJSON *) * (size_t)(n ? n : 1));
    int i = 0;
    for (const cJSON *e = a ? a->child : NULL; e && i < n; e = e->next) v[i++] = e;
    return v;
}

// An int list of the items, checked against the item count (malloc'd).
static int *ints(const Run *r, const Metric *m, const cJSON *items, const char *name, int n) {
    const cJSON *a = get(items, name);
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        fatal("vlm eval table: %s/%s: the items have no \"%s\" list of %d entries (needed for %s)", r->dir,
              bench_file[m->bench], name, n, m->name);
    int *v = xmalloc(sizeof(int) * (size_t)(n ? n : 1)), i = 0;
    for (const cJSON *e = a->child; e; e = e->next) v[i++] = e->valueint;
    return v;
}

// Fills num/den (in the item set's order) for metric m in run r.
// Every metric's per-question num and den are small whole numbers (0-2, or a caption's mention count), so
// they are kept as ints: the bootstrap's weighted sums are then exact and vectorize.
static void run_metric(Table *t, Run *r, Metric *m, int *num, int *den, int *set_out) {
    char key[300];
    const cJSON *items = run_items(r, m, key, sizeof(key)), *ids = get(items, "ids");
    const int n = cJSON_GetArraySize(ids);
    const cJSON **idv = elems(ids, n);
    char where[700];
    snprintf(where, sizeof(where), "%s/%s%s%s", r->dir, bench_file[m->bench], m->split ? " split " : "",
             m->split ? key + 5 : "");
    // the item set: created by the first run, checked against by the others
    int s = 0;
    while (s < t->n_sets && strcmp(t->sets[s].key, key)) s++;
    if (s == t->n_sets) {
        t->sets = xrealloc(t->sets, sizeof(ItemSet) * (size_t)(t->n_sets + 1));
        ItemSet *st = &t->sets[t->n_sets++];
        st->key = xstrdup(key);
        st->first = xstrdup(where);
        st->n = n;
        st->ids = xmalloc(sizeof(char *) * (size_t)(n ? n : 1));
        strmap_init(&st->index);
        for (int i = 0; i < n; i++) {
            const cJSON *id = idv[i];
            if (!cJSON_IsString(id)) fatal("vlm eval table: %s: item %d's id is not text", where, i);
            st->ids[i] = xstrdup(id->valuestring);
            if (strmap_put(&st->index, st->ids[i], i) >= 0) fatal("vlm eval table: %s: question id %s appears twice", where, st->ids[i]);
        }
    }
    ItemSet *st = &t->sets[s];
    *set_out = s;
    if (n != st->n)
        fatal("vlm eval table: question ids differ between runs: %s has %d questions, %s has %d (paired runs must "
              "answer the same questions)", where, n, st->first, st->n);
    int *pos = xmalloc(sizeof(int) * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++) {
        const cJSON *id = idv[i];
        pos[i] = cJSON_IsString(id) ? strmap_get(&st->index, id->valuestring) : -1;
        if (pos[i] < 0)
            fatal("vlm eval table: question ids differ between runs: %s has question id %s, which %s lacks (paired "
                  "runs must answer the same questions)", where, cJSON_IsString(id) ? id->valuestring : "(not text)", st->first);
    }
    // the group mask
    unsigned char *in = xmalloc((size_t)(n ? n : 1));
    memset(in, 1, (size_t)(n ? n : 1));
    if (m->field) {
        const cJSON *vals = get(get(items, "by"), m->field);
        if (!cJSON_IsArray(vals) || cJSON_GetArraySize(vals) != n)
            fatal("vlm eval table: %s: no breakdown by \"%s\" (needed for %s; score with %s --by %s)", where, m->field,
                  m->name, bench_cmd[m->bench], m->field);
        int any = 0;
        const cJSON **vv = elems(vals, n);
        for (int i = 0; i < n; i++) {
            const cJSON *v = vv[i];
            in[i] = cJSON_IsString(v) && !strcmp(v->valuestring, m->value);
            any |= in[i];
        }
        free(vv);
        if (!any) fatal("vlm eval table: %s: no question has %s = %s (metric %s)", where, m->field, m->value, m->name);
    }
    for (int i = 0; i < st->n; i++) num[i] = den[i] = 0;
    const char *ms = m->measure;
    if (m->bench == B_POPE) {
        int *lab = ints(r, m, items, "label", n), *pred = ints(r, m, items, "pred", n);
        for (int i = 0; i < n; i++) {
            if (!in[i]) continue;
            const int l = lab[i], p = pred[i];
            const int tp = p == 1 && l == 1, fp = p == 1 && l == 0;
            int a = 0, b = 0;
            if (!strcmp(ms, "acc")) { a = p == l; b = 1; }
            else if (!strcmp(ms, "yes")) { a = p == 1; b = 1; }
            else if (!strcmp(ms, "f1")) { a = 2 * tp; b = l + tp + fp; }  // 2PR/(P+R) = 2TP/(labelled yes + TP + FP)
            else if (!strcmp(ms, "prec")) { a = tp; b = p == 1; }
            else if (!strcmp(ms, "recall")) { a = tp; b = l; }
            else if (!strcmp(ms, "fpr")) { a = fp; b = l == 0; }
            num[pos[i]] = a;
            den[pos[i]] = b;
        }
        free(lab); free(pred);
    } else if (m->bench == B_CHAIR) {
        int *men = ints(r, m, items, "mentions", n), *hal = ints(r, m, items, "hallucinated", n);
        for (int i = 0; i < n; i++) {
            if (!in[i]) continue;
            num[pos[i]] = !strcmp(ms, "s") ? hal[i] > 0 : hal[i];
            den[pos[i]] = !strcmp(ms, "s") ? 1 : men[i];
        }
        free(men); free(hal);
    } else if (m->bench == B_MMVP) {
        int *a = ints(r, m, items, !strcmp(ms, "acc") ? "right" : "correct", n);
        for (int i = 0; i < n; i++) {
            if (!in[i]) continue;
            num[pos[i]] = a[i];
            den[pos[i]] = !strcmp(ms, "acc") ? 2 : 1;
        }
        free(a);
    } else {
        int *c = ints(r, m, items, "correct", n);
        int *pr = NULL;
        if (!strcmp(ms, "prior_err")) {
            if (!cJSON_IsArray(get(items, "prior")))
                fatal("vlm eval table: %s: no \"prior\" items (needed for %s: the questions need \"prior_answer\")", where, m->name);
            pr = ints(r, m, items, "prior", n);
        }
        for (int i = 0; i < n; i++) {
            if (!in[i]) continue;
            const int ok = c[i];
            if (pr) {
                const int p = pr[i];
                num[pos[i]] = !ok && p == 1;
                den[pos[i]] = !ok && p >= 0;
            } else {
                num[pos[i]] = ok;
                den[pos[i]] = 1;
            }
        }
        free(c); free(pr);
    }
    free(in);
    free(pos);
    free(idv);
}

// ---- random streams and percentiles --------------------------------------------------------------------

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t fnv(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

// the stream of resample b for one purpose (an item set's key, a model's name)
static uint64_t stream(int b, const char *purpose) {
    uint64_t s = (uint64_t)RNG_SEED ^ fnv(purpose) ^ ((uint64_t)b * 0xD1B54A32D192ED03ull);
    splitmix(&s);
    return s;
}

// uniform in [0, n)
static int draw(uint64_t *s, int n) { return (int)(((splitmix(s) >> 32) * (uint64_t)n) >> 32); }

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// The 2.5th and 97.5th percentiles of the finite values (sorted in place), linear interpolation between
// order statistics (R's type 7); NaN when none is finite.
static void percentiles(double *v, int n, double *lo, double *hi) {
    int k = 0;
    for (int i = 0; i < n; i++) if (isfinite(v[i])) v[k++] = v[i];
    if (!k) { *lo = *hi = NAN; return; }
    qsort(v, (size_t)k, sizeof(double), cmp_double);
    double q[2] = {0.025, 0.975}, out[2];
    for (int i = 0; i < 2; i++) {
        double h = (k - 1) * q[i];
        int f = (int)floor(h);
        out[i] = f + 1 < k ? v[f] + (h - f) * (v[f + 1] - v[f]) : v[f];
    }
    *lo = out[0];
    *hi = out[1];
}

static double ratio(double a, double b) { return b > 0 ? 100 * a / b : NAN; }

// ---- the table ------------------------------------------------------------------------------------------

// the name of a run folder's last component, and the folder above (the seed key)
static void split_dir(const char *dir, char **model, char **seed, char **label) {
    char *copy = xstrdup(dir);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/') copy[--len] = 0;
    char *slash = strrchr(copy, '/');
    *model = xstrdup(slash ? slash + 1 : copy);
    if (slash) *slash = 0;
    *seed = xstrdup(slash ? (slash == copy ? "/" : copy) : ".");
    // the label: the seed key's last component, skipping a trailing "eval" (…/seed2/eval -> seed2)
    char *k = xstrdup(*seed), *s = strrchr(k, '/');
    if (s && !strcmp(s + 1, "eval")) *s = 0;
    s = strrchr(k, '/');
    *label = xstrdup(s ? s + 1 : k);
    free(k);
    free(copy);
}

static void fmt_cell(char *buf, size_t cap, double v, double lo, double hi, int diff) {
    if (!isfinite(v)) { snprintf(buf, cap, "–"); return; }
    if (!isfinite(lo)) { snprintf(buf, cap, diff ? "%+.1f" : "%.1f", v); return; }
    const int sig = diff && (lo > 0 || hi < 0);
    // a bound that rounds to 0.0 but is not 0 gets two decimals, so a marked interval never reads [.., -0.0]
    const char *fl = lo != 0 && fabs(lo) < 0.05 ? "%+.2f" : "%+.1f", *fh = hi != 0 && fabs(hi) < 0.05 ? "%+.2f" : "%+.1f";
    char a[32], b[32];
    snprintf(a, sizeof(a), fl, lo);
    snprintf(b, sizeof(b), fh, hi);
    if (diff) snprintf(buf, cap, "%+.1f [%s, %s]%s", v, a, b, sig ? "*" : "");
    else snprintf(buf, cap, "%.1f [%.1f, %.1f]", v, lo, hi);
}

static char *scalar_text(const cJSON *v) {
    char buf[64];
    if (cJSON_IsString(v)) return xstrdup(v->valuestring);
    if (cJSON_IsNumber(v)) { snprintf(buf, sizeof(buf), "%g", v->valuedouble); return xstrdup(buf); }
    if (cJSON_IsBool(v)) return xstrdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsNull(v)) return xstrdup("null");
    char *s = cJSON_PrintUnformatted(v);
    return s;
}

void table_run(const TableOptions *o) {
    Table t = {0};
    const int B = o->resamples;
    if (B < 1) fatal("vlm eval table: --resamples must be at least 1");
    // metrics
    char *list = xstrdup(o->metrics ? o->metrics : default_metrics);
    for (char *p = strtok(list, ","); p; p = strtok(NULL, ",")) {
        while (*p == ' ') p++;
        if (!*p) continue;
        t.metrics = xrealloc(t.metrics, sizeof(Metric) * (size_t)(t.n_metrics + 1));
        metric_parse(&t.metrics[t.n_metrics++], p);
    }
    free(list);
    if (!t.n_metrics) fatal("vlm eval table: --metrics names no metric");
    const int K = t.n_metrics;
    // runs and models (in order of first appearance)
    t.n_runs = o->n_dirs;
    t.runs = xcalloc((size_t)t.n_runs, sizeof(Run));
    for (int i = 0; i < t.n_runs; i++) {
        Run *r = &t.runs[i];
        char *model;
        r->dir = xstrdup(o->dirs[i]);
        split_dir(o->dirs[i], &model, &r->seed, &r->seed_label);
        r->model = -1;
        for (int m = 0; m < t.n_models && r->model < 0; m++) if (!strcmp(t.models[m], model)) r->model = m;
        if (r->model < 0) {
            t.models = xrealloc(t.models, sizeof(char *) * (size_t)(t.n_models + 1));
            t.models[t.n_models] = model;
            r->model = t.n_models++;
        } else free(model);
        for (int j = 0; j < i; j++)
            if (t.runs[j].model == r->model && !strcmp(t.runs[j].seed, r->seed))
                fatal("vlm eval table: %s and %s are the same model in the same seed folder", t.runs[j].dir, r->dir);
        char *p = path_join(r->dir, "run.json"), *text = try_read_file(p, NULL);
        if (text && !(r->run_json = cJSON_Parse(text))) fatal("vlm eval table: %s: not valid JSON", p);
        if (r->run_json && !cJSON_IsObject(r->run_json)) fatal("vlm eval table: %s: expected an object", p);
        free(text);
        free(p);
    }
    const int R = t.n_runs, M = t.n_models;
    // per (run, metric): num and den per question of the metric's item set
    int **num = xcalloc((size_t)R * K, sizeof(int *)), **den = xcalloc((size_t)R * K, sizeof(int *));
    double *full = xmalloc(sizeof(double) * (size_t)R * K);  // each run's value on all questions
    for (int k = 0; k < K; k++)
        for (int i = 0; i < R; i++) {
            // the first run fixes the item count; allocate after the set exists
            Run *r = &t.runs[i];
            char key[300];
            const cJSON *items = run_items(r, &t.metrics[k], key, sizeof(key));
            int n = cJSON_GetArraySize(get(items, "ids"));
            for (int s = 0; s < t.n_sets; s++) if (!strcmp(t.sets[s].key, key)) n = t.sets[s].n > n ? t.sets[s].n : n;
            num[i * K + k] = xcalloc((size_t)(n ? n : 1), sizeof(int));
            den[i * K + k] = xcalloc((size_t)(n ? n : 1), sizeof(int));
            run_metric(&t, r, &t.metrics[k], num[i * K + k], den[i * K + k], &t.metrics[k].set);
            long a = 0, b = 0;
            for (int q = 0; q < t.sets[t.metrics[k].set].n; q++) { a += num[i * K + k][q]; b += den[i * K + k][q]; }
            full[i * K + k] = ratio(a, b);
        }
    // the baselines' models and run counts
    const int NB = o->n_baselines;
    int *base = xmalloc(sizeof(int) * (size_t)(NB ? NB : 1)), *base_runs = xcalloc((size_t)(NB ? NB : 1), sizeof(int));
    for (int c = 0; c < NB; c++) {
        base[c] = -1;
        for (int m = 0; m < M; m++) if (!strcmp(t.models[m], o->baselines[c])) base[c] = m;
        if (base[c] < 0) fatal("vlm eval table: --baseline %s: no run folder is named %s", o->baselines[c], o->baselines[c]);
        for (int i = 0; i < R; i++) base_runs[c] += t.runs[i].model == base[c];
    }
    // the bootstrap: boot[(b * R + i) * K + k] = run i's metric k on resample b's questions. Resamples are
    // independent (each draws from its own streams), so threads split them without changing a number.
    double *boot = xmalloc(sizeof(double) * (size_t)B * R * K);
    int max_n = 1;
    for (int s = 0; s < t.n_sets; s++) max_n = t.sets[s].n > max_n ? t.sets[s].n : max_n;
#pragma omp parallel
    {
        int *weight = xmalloc(sizeof(int) * (size_t)max_n);
#pragma omp for schedule(static)
        for (int b = 0; b < B; b++)
            for (int s = 0; s < t.n_sets; s++) {
                const int n = t.sets[s].n;
                memset(weight, 0, sizeof(int) * (size_t)n);
                uint64_t st = stream(b, t.sets[s].key);
                for (int q = 0; q < n; q++) weight[draw(&st, n)]++;
                for (int i = 0; i < R; i++)
                    for (int k = 0; k < K; k++) {
                        if (t.metrics[k].set != s) continue;
                        const int *a = num[i * K + k], *d = den[i * K + k];
                        long sa = 0, sd = 0;
                        for (int q = 0; q < n; q++) { sa += weight[q] * a[q]; sd += weight[q] * d[q]; }
                        boot[((size_t)b * R + i) * K + k] = ratio((double)sa, (double)sd);
                    }
            }
        free(weight);
    }
    // per model: the runs, the mean and the interval; per baseline the paired difference and its interval
    double *mean = xmalloc(sizeof(double) * (size_t)M * K), *lo = xmalloc(sizeof(double) * (size_t)M * K),
           *hi = xmalloc(sizeof(double) * (size_t)M * K);
    double *dmean = xmalloc(sizeof(double) * (size_t)(NB ? NB : 1) * M * K), *dlo = xmalloc(sizeof(double) * (size_t)(NB ? NB : 1) * M * K),
           *dhi = xmalloc(sizeof(double) * (size_t)(NB ? NB : 1) * M * K);
    int *nruns = xcalloc((size_t)M, sizeof(int)), *runs_of = xmalloc(sizeof(int) * (size_t)R);
    double *vals = xmalloc(sizeof(double) * (size_t)B);
    int *drawn = xmalloc(sizeof(int) * (size_t)B * R);
    // per baseline: the (model run, baseline run) pairs and their draws
    int *pa = xmalloc(sizeof(int) * (size_t)R), *pb = xmalloc(sizeof(int) * (size_t)R);
    int *pdrawn = xmalloc(sizeof(int) * (size_t)B * R);
    for (int m = 0; m < M; m++) {
        int S = 0;
        for (int i = 0; i < R; i++) if (t.runs[i].model == m) runs_of[S++] = i;
        nruns[m] = S;
        // the seed level: S runs drawn with replacement per resample, from the model's own stream
        for (int b = 0; b < B; b++) {
            uint64_t st = stream(b, t.models[m]);
            for (int j = 0; j < S; j++) drawn[b * R + j] = runs_of[draw(&st, S)];
        }
        for (int k = 0; k < K; k++) {
            double sum = 0;
            for (int j = 0; j < S; j++) sum += full[runs_of[j] * K + k];
            mean[m * K + k] = sum / S;
            for (int b = 0; b < B; b++) {
                double v = 0;
                for (int j = 0; j < S; j++) v += boot[((size_t)b * R + drawn[b * R + j]) * K + k];
                vals[b] = v / S;
            }
            percentiles(vals, B, &lo[m * K + k], &hi[m * K + k]);
        }
        for (int c = 0; c < NB; c++) {
            if (m == base[c]) {
                for (int k = 0; k < K; k++) dmean[(c * M + m) * K + k] = dlo[(c * M + m) * K + k] = dhi[(c * M + m) * K + k] = NAN;
                continue;
            }
            // Pairs: each run with the baseline's run in the same seed folder; else, when the baseline has a
            // single run (one SFT model for every seed), each run with it; else, when the model has a single
            // run, it with each of the baseline's runs.
            int P = 0, by_seed = 1;
            for (int j = 0; j < S; j++) {
                int p = -1;
                for (int i = 0; i < R && p < 0; i++)
                    if (t.runs[i].model == base[c] && !strcmp(t.runs[i].seed, t.runs[runs_of[j]].seed)) p = i;
                if (p < 0) { by_seed = 0; break; }
                pa[P] = runs_of[j];
                pb[P++] = p;
            }
            if (!by_seed) {
                P = 0;
                if (base_runs[c] == 1 || S == 1) {
                    for (int j = 0; j < S; j++)
                        for (int i = 0; i < R; i++)
                            if (t.runs[i].model == base[c]) { pa[P] = runs_of[j]; pb[P++] = i; }
                } else {
                    for (int j = 0; j < S; j++) {
                        int p = -1;
                        for (int i = 0; i < R && p < 0; i++)
                            if (t.runs[i].model == base[c] && !strcmp(t.runs[i].seed, t.runs[runs_of[j]].seed)) p = i;
                        if (p < 0)
                            fatal("vlm eval table: --baseline %s: no %s run in %s to pair %s with (%s has %d runs, %s %d; "
                                  "runs pair by the folder above the model's)", o->baselines[c], o->baselines[c],
                                  t.runs[runs_of[j]].seed, t.runs[runs_of[j]].dir, o->baselines[c], base_runs[c],
                                  t.models[m], S);
                    }
                }
            }
            // the seed level of a difference: pairs drawn with replacement, from the stream of (model, baseline)
            char purpose[512];
            snprintf(purpose, sizeof(purpose), "%s|%s", t.models[m], o->baselines[c]);
            for (int b = 0; b < B; b++) {
                uint64_t st = stream(b, purpose);
                for (int j = 0; j < P; j++) pdrawn[b * R + j] = draw(&st, P);
            }
            for (int k = 0; k < K; k++) {
                const int x = (c * M + m) * K + k;
                double d = 0;
                for (int j = 0; j < P; j++) d += full[pa[j] * K + k] - full[pb[j] * K + k];
                dmean[x] = d / P;
                for (int b = 0; b < B; b++) {
                    double v = 0;
                    for (int j = 0; j < P; j++) {
                        const int q = pdrawn[b * R + j];
                        v += boot[((size_t)b * R + pa[q]) * K + k] - boot[((size_t)b * R + pb[q]) * K + k];
                    }
                    vals[b] = v / P;
                }
                percentiles(vals, B, &dlo[x], &dhi[x]);
            }
        }
    }
    // ---- markdown ----
    char *buf = NULL, cell[96];
    size_t blen = 0;
    FILE *f = open_memstream(&buf, &blen);
    if (!f) fatal("open_memstream failed");
    table_header(f, &t);
    for (int m = 0; m < M; m++) {
        fprintf(f, "| %s | %d |", t.models[m], nruns[m]);
        for (int k = 0; k < K; k++) {
            fmt_cell(cell, sizeof(cell), mean[m * K + k], lo[m * K + k], hi[m * K + k], 0);
            fprintf(f, " %s |", cell);
        }
        fprintf(f, "\n");
    }
    for (int c = 0; c < NB; c++) {
        fprintf(f, "\nDifference from %s (model − %s, paired by seed and question; * the 95%% interval excludes 0):\n\n",
                o->baselines[c], o->baselines[c]);
        table_header(f, &t);
        for (int m = 0; m < M; m++) {
            if (m == base[c]) continue;
            fprintf(f, "| %s | %d |", t.models[m], nruns[m]);
            for (int k = 0; k < K; k++) {
                const int x = (c * M + m) * K + k;
                fmt_cell(cell, sizeof(cell), dmean[x], dlo[x], dhi[x], 1);
                fprintf(f, " %s |", cell);
            }
            fprintf(f, "\n");
        }
    }
    // hyper-parameters from run.json: the union of keys in order of appearance; values that differ between a
    // model's runs are listed with " / "
    char **keys = NULL;
    int nkeys = 0;
    for (int i = 0; i < R; i++) {
        const cJSON *e;
        cJSON_ArrayForEach(e, t.runs[i].run_json) {
            int seen = 0;
            for (int q = 0; q < nkeys && !seen; q++) seen = !strcmp(keys[q], e->string);
            if (!seen) { keys = xrealloc(keys, sizeof(char *) * (size_t)(nkeys + 1)); keys[nkeys++] = e->string; }
        }
    }
    if (nkeys) {
        fprintf(f, "\nHyper-parameters (run.json of each run):\n\n| model |");
        for (int q = 0; q < nkeys; q++) fprintf(f, " %s |", keys[q]);
        fprintf(f, "\n|---|");
        for (int q = 0; q < nkeys; q++) fprintf(f, "---|");
        fprintf(f, "\n");
        for (int m = 0; m < M; m++) {
            fprintf(f, "| %s |", t.models[m]);
            for (int q = 0; q < nkeys; q++) {
                // the distinct values over the model's runs, in run order
                char **seen = xmalloc(sizeof(char *) * (size_t)R);
                int ns = 0;
                for (int i = 0; i < R; i++) {
                    if (t.runs[i].model != m) continue;
                    const cJSON *v = get(t.runs[i].run_json, keys[q]);
                    char *s = v ? scalar_text(v) : xstrdup("–");
                    int dup = 0;
                    for (int x = 0; x < ns && !dup; x++) dup = !strcmp(seen[x], s);
                    if (dup) free(s);
                    else seen[ns++] = s;
                }
                fprintf(f, " ");
                for (int x = 0; x < ns; x++) { fprintf(f, "%s%s", x ? " / " : "", seen[x]); free(seen[x]); }
                fprintf(f, " |");
                free(seen);
            }
            fprintf(f, "\n");
        }
    }
    fprintf(f, "\nValues in percent, mean over a model's runs (seeds) [95%% interval]; \"(lower)\": lower is better. "
               "Intervals: two-level percentile bootstrap, %d resamples, fixed seed %d: runs drawn with replacement, "
               "then questions (MMVP: question pairs) with replacement, the same questions for every model; "
               "differences paired by seed folder and question. With few seeds the interval is approximate: "
               "conservative when the seeds agree, too narrow when they differ by several points.\n", B, RNG_SEED);
    fclose(f);
    fwrite(buf, 1, blen, stdout);
    if (o->out_md) write_file_atomic(o->out_md, buf, blen);
    free(buf);
    // ---- JSON ----
    if (o->out_json) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "interval", "95% percentile, two-level bootstrap (runs, then questions)");
        cJSON_AddNumberToObject(j, "resamples", B);
        cJSON_AddNumberToObject(j, "rng_seed", RNG_SEED);
        cJSON *jm = cJSON_AddArrayToObject(j, "metrics");
        for (int k = 0; k < K; k++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t.metrics[k].name);
            cJSON_AddStringToObject(e, "label", t.metrics[k].label);
            cJSON_AddBoolToObject(e, "lower_is_better", t.metrics[k].lower_better);
            cJSON_AddNumberToObject(e, "questions", t.sets[t.metrics[k].set].n);
            cJSON_AddItemToArray(jm, e);
        }
        cJSON *jmodels = cJSON_AddArrayToObject(j, "models");
        for (int m = 0; m < M; m++) {
            cJSON *e = cJSON_CreateObject();
            cJSON_AddStringToObject(e, "name", t.models[m]);
            cJSON *jr = cJSON_AddArrayToObject(e, "runs");
            for (int i = 0; i < R; i++) {
                if (t.runs[i].model != m) continue;
                cJSON *x = cJSON_CreateObject();
                cJSON_AddStringToObject(x, "dir", t.runs[i].dir);
                cJSON_AddStringToObject(x, "seed", t.runs[i].seed_label);
                if (t.runs[i].run_json) cJSON_AddItemToObject(x, "run", cJSON_Duplicate(t.runs[i].run_json, 1));
                cJSON *v = cJSON_AddObjectToObject(x, "values");
                for (int k = 0; k < K; k++) cJSON_AddNumberToObject(v, t.metrics[k].name, full[i * K + k]);
                cJSON_AddItemToArray(jr, x);
            }
            cJSON *v = cJSON_AddObjectToObject(e, "values");
            for (int k = 0; k < K; k++) {
                cJSON *x = cJSON_AddObjectToObject(v, t.metrics[k].name);
                cJSON_AddNumberToObject(x, "mean", mean[m * K + k]);
                cJSON_AddNumberToObject(x, "lo", lo[m * K + k]);
                cJSON_AddNumberToObject(x, "hi", hi[m * K + k]);
            }
            if (NB) {
                cJSON *vs = cJSON_AddObjectToObject(e, "vs");
                for (int c = 0; c < NB; c++) {
                    if (m == base[c]) continue;
                    cJSON *bc = cJSON_AddObjectToObject(vs, o->baselines[c]);
                    for (int k = 0; k < K; k++) {
                        const int x = (c * M + m) * K + k;
                        cJSON *d = cJSON_AddObjectToObject(bc, t.metrics[k].name);
                        cJSON_AddNumberToObject(d, "diff", dmean[x]);
                        cJSON_AddNumberToObject(d, "lo", dlo[x]);
                        cJSON_AddNumberToObject(d, "hi", dhi[x]);
                        cJSON_AddBoolToObject(d, "excludes_zero", dlo[x] > 0 || dhi[x] < 0);
                    }
                }
            }
            cJSON_AddItemToArray(jmodels, e);
        }
        char *s = cJSON_Print(j);  // NaN prints as null
        size_t len = strlen(s);
        s = xrealloc(s, len + 2);
        s[len++] = '\n';
        write_file_atomic(o->out_json, s, len);
        free(s);
        cJSON_Delete(j);
    }
    // ---- chart ----
    if (o->out_svg) {
        const char **labels = xmalloc(sizeof(char *) * (size_t)K);
        for (int k = 0; k < K; k++) labels[k] = t.metrics[k].label;
        plot_bars_svg(o->out_svg, "held-out scenes (percent), mean and 95% interval", labels, K,
                      (const char *const *)t.models, M, mean, lo, hi);
        free(labels);
    }
    // ---- cleanup ----
    free(keys);
    free(vals); free(drawn); free(nruns); free(runs_of);
    free(mean); free(lo); free(hi); free(dmean); free(dlo); free(dhi);
    for (int s = 0; s < t.n_sets; s++) {
        for (int q = 0; q < t.sets[s].n; q++) free(t.sets[s].ids[q]);
        free(t.sets[s].ids); free(t.sets[s].key); free(t.sets[s].first);
        strmap_free(&t.sets[s].index);
    }
    free(t.sets); free(boot); free(base); free(base_runs); free(pa); free(pb); free(pdrawn); free(full);
    for (int x = 0; x < R * K; x++) { free(num[x]); free(den[x]); }
    free(num); free(den);
    for (int i = 0; i < R; i++) {
        Run *r = &t.runs[i];
        for (int b = 0; b < 4; b++) cJSON_Delete(r->json[b]);
        cJSON_Delete(r->run_json);
        free(r->dir); free(r->seed); free(r->seed_label);
    }
    free(t.runs);
    for (int m = 0; m < M; m++) free(t.models[m]);
    free(t.models);
    for (int k = 0; k < K; k++) metric_free(&t.metrics[k]);
    free(t.metrics);
}
