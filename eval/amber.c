#include "amber.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"
#include "../util/jsonl.h"
#include "answers.h"
#include "pope.h"
#include "text.h"

const char *amber_dim_name(AmberDim d) {
    static const char *const names[AMBER_N_DIMS] = {"existence", "state", "number", "action", "relation", "attribute", "all"};
    return names[d];
}

// ---- vocabulary and tables ---------------------------------------------------------------------------

static int add_word(AmberVocab *v, const char *w, int *cap) {
    int i = strmap_get(&v->index, w);
    if (i >= 0) return i;
    if (v->n_words == *cap) v->words = xrealloc(v->words, sizeof(char *) * (size_t)(*cap = *cap ? 2 * *cap : 512));
    v->words[v->n_words] = xstrdup(w);
    strmap_put(&v->index, w, v->n_words);
    return v->n_words++;
}

// A whole JSON file (nothing after the value), or a fatal naming the file and line.
static cJSON *read_json_file(const char *path) {
    size_t len;
    char *text = read_file(path, &len), err[600];
    cJSON *j = json_parse_document(text, len, path, err, sizeof(err));
    free(text);
    if (!j) fatal("%s", err);
    return j;
}

static void load_relation(AmberVocab *v, const char *path) {
    cJSON *j = read_json_file(path);
    if (!cJSON_IsObject(j)) fatal("%s: expected an object {\"object\": [associated words], ...}", path);
    int cap = 0, n_keys = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {  // keys first, so that a key's index is below every non-key's
        if (strmap_get(&v->index, e->string) >= 0) fatal("%s: \"%s\" is a key twice", path, e->string);
        add_word(v, e->string, &cap);
        n_keys++;
    }
    int n_assoc = 0;
    cJSON_ArrayForEach(e, j) {
        if (!cJSON_IsArray(e)) fatal("%s: \"%s\": expected a list of associated words", path, e->string);
        const cJSON *w;
        cJSON_ArrayForEach(w, e) {
            if (!cJSON_IsString(w)) fatal("%s: \"%s\": associated words must be strings", path, e->string);
            add_word(v, w->valuestring, &cap);
            n_assoc++;
        }
    }
    v->is_key = xcalloc((size_t)v->n_words + 1, 1);
    v->assoc_start = xcalloc((size_t)v->n_words + 1, sizeof(int));
    v->assoc = xmalloc(sizeof(int) * (size_t)(n_assoc + 1));
    int k = 0, key = 0;
    cJSON_ArrayForEach(e, j) {
        v->is_key[key] = 1;
        v->assoc_start[key] = k;
        const cJSON *w;
        cJSON_ArrayForEach(w, e) v->assoc[k++] = strmap_get(&v->index, w->valuestring);
        key++;
    }
    for (int w = n_keys; w <= v->n_words; w++) v->assoc_start[w] = k;  // non-keys have none
    cJSON_Delete(j);
}

// The lines of a text file, in place: *lines gets pointers into text (the '\n' removed, nothing else).
static int split_lines(char *text, char ***lines) {
    int n = 0, cap = 0;
    *lines = NULL;
    for (char *s = text, *next; s && *s; s = next) {
        next = strchr(s, '\n');
        if (next) *next++ = 0;
        if (n == cap) *lines = xrealloc(*lines, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 256));
        (*lines)[n++] = s;
    }
    return n;
}

// Splits line at tabs into at most max fields; returns the count.
static int tab_fields(char *line, char **f, int max) {
    int n = 0;
    for (char *p = line; p && n < max + 1;) {
        char *t = strchr(p, '\t');
        if (t) *t++ = 0;
        if (n < max) f[n] = p;
        n++;
        p = t;
    }
    return n;
}

static void load_nouns(AmberVocab *v, const char *path) {
    char *text = read_file(path, NULL), **lines;
    int n = split_lines(text, &lines);
    strmap_init(&v->form);
    for (int i = 0; i < n; i++) {
        char *l = lines[i], *f[2];
        size_t len = strlen(l);
        if (len && l[len - 1] == '\r') l[--len] = 0;
        if (!len || l[0] == '#') continue;
        if (tab_fields(l, f, 2) != 2 || !f[0][0] || !f[1][0])
            fatal("%s:%d: expected \"form<TAB>object\" (object \"-\" for a form that is no object)", path, i + 1);
        int obj = strcmp(f[1], "-") ? strmap_get(&v->index, f[1]) : -1;  // an object of another release: none here
        if (strmap_put(&v->form, f[0], obj + 1) >= 0) fatal("%s:%d: the form \"%s\" is listed twice", path, i + 1, f[0]);
    }
    for (int w = 0; w < v->n_words; w++)
        if (strmap_get(&v->form, v->words[w]) < 0) {
            strmap_put(&v->form, v->words[w], w + 1);
            v->not_in_table++;
        }
    free(lines);
    free(text);
}

static void pair_key(int a, int b, char *key, size_t cap) {
    snprintf(key, cap, "%d %d", a < b ? a : b, a < b ? b : a);
}

static void load_similar(AmberVocab *v, const char *path) {
    char *text = read_file(path, NULL), **lines;
    int n = split_lines(text, &lines), cap = 0;
    for (int i = 0; i < n; i++) {
        char *l = lines[i], *f[3];
        size_t len = strlen(l);
        if (len && l[len - 1] == '\r') l[--len] = 0;
        if (!len || l[0] == '#') continue;
        char *end;
        double s = tab_fields(l, f, 3) == 3 ? strtod(f[2], &end) : NAN;
        if (isnan(s) || *end || end == f[2] || s < -1.0001 || s > 1.0001)
            fatal("%s:%d: expected \"word<TAB>word<TAB>similarity\" with a similarity in [-1, 1]", path, i + 1);
        const int a = strmap_get(&v->index, f[0]), b = strmap_get(&v->index, f[1]);
        if (a < 0 || b < 0 || a == b) continue;  // words that are no object here never meet
        char key[32];
        pair_key(a, b, key, sizeof(key));
        if (v->n_sims == cap) v->sims = xrealloc(v->sims, sizeof(double) * (size_t)(cap = cap ? 2 * cap : 1024));
        if (strmap_put(&v->pair, key, v->n_sims) >= 0)
            fatal("%s:%d: the pair %s, %s is listed twice", path, i + 1, f[0], f[1]);
        v->sims[v->n_sims++] = s;
    }
    free(lines);
    free(text);
}

void amber_vocab_load(AmberVocab *v, const char *relation, const char *safe_words, const char *nouns,
                      const char *similar, double threshold) {
    memset(v, 0, sizeof(*v));
    strmap_init(&v->index);
    strmap_init(&v->pair);
    v->threshold = threshold;
    load_relation(v, relation);
    if (v->n_words == 0) fatal("%s: no objects", relation);
    v->safe = xcalloc((size_t)v->n_words, 1);
    // inference.py keeps each line without its '\n' and nothing else removed
    char *text = read_file(safe_words, NULL), **lines;
    int n = split_lines(text, &lines);
    for (int i = 0; i < n; i++) {
        int w = strmap_get(&v->index, lines[i]);
        if (w >= 0) v->safe[w] = 1;
    }
    free(lines);
    free(text);
    load_nouns(v, nouns);
    if (similar) load_similar(v, similar);
}

void amber_vocab_free(AmberVocab *v) {
    for (int i = 0; i < v->n_words; i++) free(v->words[i]);
    free(v->words); free(v->assoc_start); free(v->assoc); free(v->is_key); free(v->safe); free(v->sims);
    strmap_free(&v->index);
    strmap_free(&v->form);
    strmap_free(&v->pair);
    memset(v, 0, sizeof(*v));
}

int amber_noun(const AmberVocab *v, const char *token) {
    int f = strmap_get(&v->form, token);
    return f > 0 ? f - 1 : -1;
}

int amber_similar(const AmberVocab *v, int a, int b) {
    if (a == b) return 1.0 > v->threshold;
    char key[32];
    pair_key(a, b, key, sizeof(key));
    int k = strmap_get(&v->pair, key);
    return k >= 0 && v->sims[k] > v->threshold;
}

// ---- annotations -------------------------------------------------------------------------------------

static const cJSON *get(const cJSON *o, const char *k) { return cJSON_GetObjectItemCaseSensitive(o, k); }

// A list of objects, each a key of relation.json (inference.py looks up its association words).
static int *object_list(const AmberVocab *v, const cJSON *list, const char *where, const char *field, int *n) {
    if (!cJSON_IsArray(list)) fatal("%s: \"%s\" must be a list of objects", where, field);
    *n = cJSON_GetArraySize(list);
    int *out = xmalloc(sizeof(int) * (size_t)(*n ? *n : 1)), k = 0;
    const cJSON *w;
    cJSON_ArrayForEach(w, list) {
        if (!cJSON_IsString(w)) fatal("%s: \"%s\" must be a list of strings", where, field);
        int i = strmap_get(&v->index, w->valuestring);
        if (i < 0 || !v->is_key[i]) fatal("%s: %s object \"%s\" is not a key of relation.json", where, field, w->valuestring);
        out[k++] = i;
    }
    return out;
}

void amber_annotations_load(AmberAnnotations *a, const AmberVocab *v, const char *path) {
    memset(a, 0, sizeof(*a));
    cJSON *j = read_json_file(path);
    if (!cJSON_IsArray(j)) fatal("%s: expected a list of {\"id\", \"type\", \"truth\"} records", path);
    int max = 0, r = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, j) {
        r++;
        const cJSON *id = get(e, "id");
        if (!cJSON_IsNumber(id) || id->valuedouble < 1 || id->valuedouble > 1e7 || id->valuedouble != floor(id->valuedouble))
            fatal("%s: record %d: \"id\" must be a positive integer", path, r);
        if ((int)id->valuedouble > max) max = (int)id->valuedouble;
    }
    a->n = max;
    a->items = xcalloc((size_t)(max ? max : 1), sizeof(AmberItem));
    a->present = xcalloc((size_t)(max ? max : 1), 1);
    r = 0;
    cJSON_ArrayForEach(e, j) {
        r++;
        const int id = (int)get(e, "id")->valuedouble;
        char where[600];
        snprintf(where, sizeof(where), "%s: record %d (id %d)", path, r, id);
        if (a->present[id - 1]) fatal("%s: the id is annotated twice", where);
        a->present[id - 1] = 1;
        AmberItem *it = &a->items[id - 1];
        const cJSON *type = get(e, "type"), *truth = get(e, "truth");
        if (!cJSON_IsString(type)) fatal("%s: \"type\" must be a string", where);
        const char *t = type->valuestring;
        if (!strcmp(t, "generative")) {
            it->generative = 1;
            it->truth = object_list(v, truth, where, "truth", &it->n_truth);
            it->hallu = object_list(v, get(e, "hallu"), where, "hallu", &it->n_hallu);
            continue;
        }
        if (!strcmp(t, "discriminative-hallucination")) it->dim = AMBER_EXISTENCE;
        else if (!strcmp(t, "discriminative-attribute-state")) it->dim = AMBER_STATE;
        else if (!strcmp(t, "discriminative-attribute-number")) it->dim = AMBER_NUMBER;
        else if (!strcmp(t, "discriminative-attribute-action")) it->dim = AMBER_ACTION;
        else if (!strcmp(t, "discriminative-relation") || !strcmp(t, "relation")) it->dim = AMBER_RELATION;
        else fatal("%s: unknown \"type\" \"%s\" (generative, discriminative-hallucination, discriminative-attribute-state, "
                   "-number, -action, discriminative-relation or relation)", where, t);
        if (!cJSON_IsString(truth) || (strcmp(truth->valuestring, "yes") && strcmp(truth->valuestring, "no")))
            fatal("%s: \"truth\" of a yes/no question must be \"yes\" or \"no\"", where);
        it->truth_yes = !strcmp(truth->valuestring, "yes");
    }
    cJSON_Delete(j);
}

void amber_annotations_free(AmberAnnotations *a) {
    for (int i = 0; i < a->n; i++) { free(a->items[i].truth); free(a->items[i].hallu); }
    free(a->items); free(a->present);
    memset(a, 0, sizeof(*a));
}

// ---- scoring -----------------------------------------------------------------------------------------

// The words a caption's nouns are compared with: the association words of each object, in object order,
// then the objects themselves; owner[j] is the object word j belongs to.
typedef struct {
    int *word, *owner, n;
} WordList;

static void word_list(const AmberVocab *v, const int *objects, int n, WordList *l) {
    int total = n;
    for (int i = 0; i < n; i++) total += v->assoc_start[objects[i] + 1] - v->assoc_start[objects[i]];
    l->word = xmalloc(sizeof(int) * (size_t)(total ? total : 1));
    l->owner = xmalloc(sizeof(int) * (size_t)(total ? total : 1));
    l->n = 0;
    for (int i = 0; i < n; i++)
        for (int k = v->assoc_start[objects[i]]; k < v->assoc_start[objects[i] + 1]; k++) {
            l->word[l->n] = v->assoc[k];
            l->owner[l->n++] = i;
        }
    for (int i = 0; i < n; i++) { l->word[l->n] = objects[i]; l->owner[l->n++] = i; }
}

static int first_equal(const WordList *l, int w) {
    for (int j = 0; j < l->n; j++) if (l->word[j] == w) return j;
    return -1;
}

static int first_similar(const AmberVocab *v, const WordList *l, int w) {
    for (int j = 0; j < l->n; j++) if (amber_similar(v, w, l->word[j])) return j;
    return -1;
}

void amber_score_caption(const AmberVocab *v, const AmberItem *it, const char *caption, AmberCaption *c,
                         AmberGenCounts *g) {
    memset(c, 0, sizeof(*c));
    Words ws;
    words_init(&ws);
    text_tokens(caption, &ws);
    c->nouns = xmalloc(sizeof(int) * (size_t)(ws.n ? ws.n : 1));
    for (int i = 0; i < ws.n; i++) {
        int w = amber_noun(v, ws.w[i]);
        if (w >= 0) c->nouns[c->n_nouns++] = w;
    }
    words_free(&ws);
    c->hallucinated = xcalloc((size_t)(c->n_nouns ? c->n_nouns : 1), 1);
    c->truth_covered = xcalloc((size_t)(it->n_truth ? it->n_truth : 1), 1);
    c->hallu_covered = xcalloc((size_t)(it->n_hallu ? it->n_hallu : 1), 1);
    WordList truth, hallu;
    word_list(v, it->truth, it->n_truth, &truth);
    word_list(v, it->hallu, it->n_hallu, &hallu);
    int n_hallucinated = 0;
    for (int i = 0; i < c->n_nouns; i++) {
        const int w = c->nouns[i];
        if (v->safe[w]) continue;
        int j = first_equal(&truth, w);
        if (j >= 0) { c->truth_covered[truth.owner[j]] = 1; continue; }
        j = first_equal(&hallu, w);
        if (j >= 0) c->hallu_covered[hallu.owner[j]] = 1;
        j = first_similar(v, &hallu, w);  // inference.py looks again, by similarity, whether or not it found one
        if (j >= 0) c->hallu_covered[hallu.owner[j]] = 1;
        j = first_similar(v, &truth, w);
        if (j >= 0) { c->truth_covered[truth.owner[j]] = 1; continue; }
        c->hallucinated[i] = 1;
        n_hallucinated++;
    }
    g->captions++;
    g->hallucinated_captions += n_hallucinated > 0;
    g->nouns += c->n_nouns;
    g->hallucinated_nouns += n_hallucinated;
    g->truth += it->n_truth;
    g->hallu += it->n_hallu;
    for (int i = 0; i < it->n_truth; i++) g->truth_covered += c->truth_covered[i];
    for (int i = 0; i < it->n_hallu; i++) g->hallu_covered += c->hallu_covered[i];
    free(truth.word); free(truth.owner); free(hallu.word); free(hallu.owner);
}

void amber_caption_free(AmberCaption *c) {
    free(c->nouns); free(c->hallucinated); free(c->truth_covered); free(c->hallu_covered);
    memset(c, 0, sizeof(*c));
}

int amber_parse(const char *response, AmberParser p) {
    if (p == AMBER_PARSER_STRICT) return pope_parse_strict(response);
    if (p == AMBER_PARSER_REFERENCE) return pope_parse_reference(response);
    return !strcmp(response, "Yes") ? 1 : !strcmp(response, "No") ? 0 : -1;
}

int amber_score_answer(const AmberItem *it, int answer, AmberQaCounts *dims) {
    const int right = answer >= 0 && answer == it->truth_yes;
    const AmberDim pooled = it->dim == AMBER_STATE || it->dim == AMBER_NUMBER || it->dim == AMBER_ACTION ? AMBER_ATTRIBUTE : AMBER_N_DIMS;
    const AmberDim ds[3] = {it->dim, pooled, AMBER_DISCRIMINATIVE};
    for (int k = 0; k < 3; k++) {
        if (ds[k] == AMBER_N_DIMS) continue;
        AmberQaCounts *c = &dims[ds[k]];
        c->n++;
        c->correct += right;
        c->truth_no += !it->truth_yes;
        c->ans_no += answer == 0;
        c->tp += answer == 0 && !it->truth_yes;
        c->other += answer < 0;
    }
    return right;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

void amber_qa_rates(const AmberQaCounts *c, AmberQaRates *r) {
    r->accuracy = ratio(c->correct, c->n);
    r->precision = ratio(c->tp, c->ans_no);
    r->recall = ratio(c->tp, c->truth_no);
    r->f1 = ratio(2 * r->precision * r->recall, r->precision + r->recall);
}

// Python's round(x, 1) on a double: the nearest one-decimal value, as printf rounds the exact binary value.
static double round1(double x) {
    char buf[64];
    snprintf(buf, sizeof(buf), "%.1f", x);
    return strtod(buf, NULL);
}

// inference.py's percentage: every count starts at 0 and every denominator at 0.001 (data/metrics.txt)
static double official_pct(double num, double den) { return round1(num / (den + 0.001) * 100); }

void amber_qa_official(const AmberQaCounts *c, AmberDim d, AmberQaRates *r) {
    // the attribute numbers add the state, number and action counts, so their denominators carry 3 x 0.001
    const double extra = d == AMBER_ATTRIBUTE ? 0.002 : 0.0;
    r->accuracy = official_pct(c->correct, c->n + extra);
    r->precision = official_pct(c->tp, c->ans_no + extra);
    r->recall = official_pct(c->tp, c->truth_no + extra);
    const double p = r->precision / 100, q = r->recall / 100, eps = d == AMBER_EXISTENCE ? 0.001 : 0.0001;
    r->f1 = round1(2 * p * q / (p + q + eps) * 100);
}

void amber_gen_rates(const AmberGenCounts *g, AmberGenRates *r) {
    r->chair = ratio(g->hallucinated_nouns, g->nouns);
    r->cover = ratio(g->truth_covered, g->truth);
    r->hal = ratio(g->hallucinated_captions, g->captions);
    r->cog = ratio(g->hallu_covered, g->hallu);
}

void amber_gen_official(const AmberGenCounts *g, AmberGenRates *r) {
    r->chair = official_pct(g->hallucinated_nouns, g->nouns);
    r->cover = official_pct(g->truth_covered, g->truth);
    r->hal = round1(100 - (g->captions - g->hallucinated_captions) / (g->captions + 0.001) * 100);
    r->cog = official_pct(g->hallu_covered, g->hallu);
}

// ---- files -------------------------------------------------------------------------------------------

// The ids of a query file (data/query/query_*.json: [{"id", "image", "query"}]).
static char **query_ids(const char *path, int **lines, int *n) {
    JsonlReader jr;
    jsonl_open(&jr, path);
    char **ids = NULL;
    int cap = 0;
    *n = 0;
    *lines = NULL;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", jr.path, jr.line);
        if (*n == cap) {
            cap = cap ? 2 * cap : 1024;
            ids = xrealloc(ids, sizeof(char *) * (size_t)cap);
            *lines = xrealloc(*lines, sizeof(int) * (size_t)cap);
        }
        ids[*n] = answers_id_text(get(j, "id"), where, "id");
        if (!ids[*n]) fatal("%s: no \"id\"", where);
        (*lines)[(*n)++] = jr.line;
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    return ids;
}

static cJSON *object_names(const AmberVocab *v, const int *w, const uint8_t *keep, int n) {
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; i < n; i++) if (!keep || keep[i]) cJSON_AddItemToArray(a, cJSON_CreateString(v->words[w[i]]));
    return a;
}

void amber_eval_files(const AmberOptions *o, AmberResult *r, cJSON **per_item) {
    memset(r, 0, sizeof(*r));
    AmberVocab v;
    amber_vocab_load(&v, o->relation, o->safe_words, o->nouns, o->similar, o->threshold);
    r->not_in_table = v.not_in_table;
    AmberAnnotations an;
    amber_annotations_load(&an, &v, o->annotations);
    AnswerFile af;
    answers_read(&af, o->answers);
    // the AMBER id of every answer: from the query file it follows, or its own "id"
    char **id_of = xcalloc((size_t)(af.n ? af.n : 1), sizeof(char *));
    r->match = -1;
    if (o->questions) {
        int nq, *lines;
        char **qids = query_ids(o->questions, &lines, &nq);
        int *order = xmalloc(sizeof(int) * (size_t)(nq ? nq : 1));
        QuestionKeys keys = {o->questions, qids, lines, nq};
        r->match = answers_match(&af, &keys, order);
        for (int k = 0; k < nq; k++) id_of[order[k]] = qids[k];
        free(qids); free(lines); free(order);
    } else {
        for (int i = 0; i < af.n; i++) {
            if (!af.v[i].qid)
                fatal("%s:%d: the answer has no \"id\" (AMBER's {\"id\", \"response\"}) or \"question_id\"; give --questions "
                      "with the query file the answers follow, in order", af.path, af.v[i].line);
            id_of[i] = xstrdup(af.v[i].qid);
        }
    }
    uint8_t *seen = xcalloc((size_t)(an.n ? an.n : 1), 1);
    r->n_items = af.n;
    r->ids = id_of;
    r->item_generative = xmalloc(sizeof(int) * (size_t)(af.n ? af.n : 1));
    r->item_value = xmalloc(sizeof(int) * (size_t)(af.n ? af.n : 1));
    if (per_item) *per_item = cJSON_CreateArray();
    for (int i = 0; i < af.n; i++) {
        const Answer *a = &af.v[i];
        char *end;
        long id = strtol(id_of[i], &end, 10);
        if (*end || id < 1 || id > an.n || !an.present[id - 1])
            fatal("%s:%d: id %s is not annotated in %s", af.path, a->line, id_of[i], o->annotations);
        if (seen[id - 1]) fatal("%s:%d: id %ld is answered twice", af.path, a->line, id);
        seen[id - 1] = 1;
        const AmberItem *it = &an.items[id - 1];
        cJSON *rec = per_item ? cJSON_CreateObject() : NULL;
        if (rec) {
            cJSON_AddNumberToObject(rec, "id", (double)id);
            cJSON_AddStringToObject(rec, "type", it->generative ? "generative" : amber_dim_name(it->dim));
            cJSON_AddStringToObject(rec, "response", a->text);
        }
        r->item_generative[i] = it->generative;
        if (it->generative) {
            AmberCaption c;
            amber_score_caption(&v, it, a->text, &c, &r->gen);
            int h = 0;
            for (int k = 0; k < c.n_nouns; k++) h += c.hallucinated[k];
            r->item_value[i] = h;
            if (rec) {
                cJSON_AddItemToObject(rec, "nouns", object_names(&v, c.nouns, NULL, c.n_nouns));
                cJSON_AddItemToObject(rec, "hallucinated", object_names(&v, c.nouns, c.hallucinated, c.n_nouns));
                cJSON_AddItemToObject(rec, "truth_covered", object_names(&v, it->truth, c.truth_covered, it->n_truth));
                cJSON_AddItemToObject(rec, "hallu_covered", object_names(&v, it->hallu, c.hallu_covered, it->n_hallu));
            }
            amber_caption_free(&c);
        } else {
            const int ans = amber_parse(a->text, o->parser);
            r->item_value[i] = amber_score_answer(it, ans, r->dims);
            if (rec) {
                cJSON_AddStringToObject(rec, "truth", it->truth_yes ? "yes" : "no");
                if (ans < 0) cJSON_AddNullToObject(rec, "answer");
                else cJSON_AddStringToObject(rec, "answer", ans ? "yes" : "no");
                cJSON_AddBoolToObject(rec, "correct", r->item_value[i]);
            }
        }
        if (rec) cJSON_AddItemToArray(*per_item, rec);
    }
    free(seen);
    answers_free(&af);
    amber_annotations_free(&an);
    amber_vocab_free(&v);
}

void amber_result_free(AmberResult *r) {
    for (int i = 0; i < r->n_items; i++) free(r->ids[i]);
    free(r->ids); free(r->item_generative); free(r->item_value);
    memset(r, 0, sizeof(*r));
}

static cJSON *qa_json(const AmberQaCounts *c, AmberDim d) {
    cJSON *o = cJSON_CreateObject();
    AmberQaRates e, off;
    amber_qa_rates(c, &e);
    amber_qa_official(c, d, &off);
    cJSON_AddNumberToObject(o, "n", c->n);
    cJSON_AddNumberToObject(o, "accuracy", e.accuracy);
    cJSON_AddNumberToObject(o, "precision", e.precision);
    cJSON_AddNumberToObject(o, "recall", e.recall);
    cJSON_AddNumberToObject(o, "f1", e.f1);
    cJSON_AddNumberToObject(o, "correct", c->correct);
    cJSON_AddNumberToObject(o, "truth_no", c->truth_no);
    cJSON_AddNumberToObject(o, "answered_no", c->ans_no);
    cJSON_AddNumberToObject(o, "tp", c->tp);
    cJSON_AddNumberToObject(o, "neither_yes_nor_no", c->other);
    cJSON *of = cJSON_AddObjectToObject(o, "official");
    cJSON_AddNumberToObject(of, "accuracy", off.accuracy);
    cJSON_AddNumberToObject(of, "precision", off.precision);
    cJSON_AddNumberToObject(of, "recall", off.recall);
    cJSON_AddNumberToObject(of, "f1", off.f1);
    return o;
}

cJSON *amber_result_json(const AmberResult *r) {
    cJSON *o = cJSON_CreateObject();
    if (r->gen.captions) {
        cJSON *g = cJSON_AddObjectToObject(o, "generative");
        AmberGenRates e, off;
        amber_gen_rates(&r->gen, &e);
        amber_gen_official(&r->gen, &off);
        cJSON_AddNumberToObject(g, "chair", e.chair);
        cJSON_AddNumberToObject(g, "cover", e.cover);
        cJSON_AddNumberToObject(g, "hal", e.hal);
        cJSON_AddNumberToObject(g, "cog", e.cog);
        cJSON_AddNumberToObject(g, "captions", r->gen.captions);
        cJSON_AddNumberToObject(g, "hallucinated_captions", r->gen.hallucinated_captions);
        cJSON_AddNumberToObject(g, "nouns", (double)r->gen.nouns);
        cJSON_AddNumberToObject(g, "hallucinated_nouns", (double)r->gen.hallucinated_nouns);
        cJSON_AddNumberToObject(g, "truth_objects", (double)r->gen.truth);
        cJSON_AddNumberToObject(g, "truth_covered", (double)r->gen.truth_covered);
        cJSON_AddNumberToObject(g, "hallu_objects", (double)r->gen.hallu);
        cJSON_AddNumberToObject(g, "hallu_covered", (double)r->gen.hallu_covered);
        cJSON *of = cJSON_AddObjectToObject(g, "official");
        cJSON_AddNumberToObject(of, "chair", off.chair);
        cJSON_AddNumberToObject(of, "cover", off.cover);
        cJSON_AddNumberToObject(of, "hal", off.hal);
        cJSON_AddNumberToObject(of, "cog", off.cog);
    }
    if (r->dims[AMBER_DISCRIMINATIVE].n) {
        cJSON *d = cJSON_AddObjectToObject(o, "discriminative");
        static const AmberDim order[] = {AMBER_DISCRIMINATIVE, AMBER_EXISTENCE, AMBER_ATTRIBUTE, AMBER_STATE,
                                         AMBER_NUMBER, AMBER_ACTION, AMBER_RELATION};
        for (size_t k = 0; k < sizeof(order) / sizeof(order[0]); k++)
            if (r->dims[order[k]].n) cJSON_AddItemToObject(d, amber_dim_name(order[k]), qa_json(&r->dims[order[k]], order[k]));
    }
    return o;
}
