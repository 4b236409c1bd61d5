#include "mmvp.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../util/common.h"
#include "answers.h"
#include "csv.h"

static int is_letter(int c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
static char lower(char c) { return (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c); }

void mmvp_options_parse(const char *s, MmvpOptions *o) {
    memset(o, 0, sizeof(*o));
    const char *start[26];
    const char *end[26];
    for (const char *p = s; *p && o->n_options < 26; p++) {
        if (p[0] == '(' && is_letter((unsigned char)p[1]) && p[2] == ')') {
            if (o->n_options) end[o->n_options - 1] = p;
            o->letters[o->n_options] = lower(p[1]);
            start[o->n_options++] = p + 3;
            p += 2;
        }
    }
    if (o->n_options) end[o->n_options - 1] = s + strlen(s);
    for (int i = 0; i < o->n_options; i++) {
        const char *a = start[i], *b = end[i];
        while (a < b && (isspace((unsigned char)*a) || *a == ',')) a++;
        while (b > a && (isspace((unsigned char)b[-1]) || b[-1] == ',' || b[-1] == ';')) b--;
        o->texts[i] = xmalloc((size_t)(b - a) + 1);
        memcpy(o->texts[i], a, (size_t)(b - a));
        o->texts[i][b - a] = 0;
    }
}

void mmvp_options_free(MmvpOptions *o) {
    for (int i = 0; i < o->n_options; i++) free(o->texts[i]);
    memset(o, 0, sizeof(*o));
}

// Python's re.sub(r'[\(\)\s]', '', s) on an already lowercased string: parentheses and whitespace removed.
static void clean(const char *s, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n && s[i]; i++)
        if (s[i] != '(' && s[i] != ')' && !isspace((unsigned char)s[i])) out[k++] = lower(s[i]);
    out[k] = 0;
}

int mmvp_first4_correct(const char *response, const char *label) {
    while (isspace((unsigned char)*response)) response++;  // .strip() (the end does not matter for [:4])
    char a[8], *b = xmalloc(strlen(label) + 1);
    clean(response, 4, a);
    clean(label, strlen(label), b);
    int ok = !strcmp(a, b);
    free(b);
    return ok;
}

static int option_index(const MmvpOptions *o, char c) {
    c = lower(c);
    for (int i = 0; i < o->n_options; i++) if (o->letters[i] == c) return i;
    return -1;
}

// Case-insensitive search for needle in hay as whole words (not inside a longer word).
static int contains_words(const char *hay, const char *needle) {
    size_t k = strlen(needle);
    if (!k) return 0;
    for (const char *p = hay; *p; p++) {
        if (strncasecmp(p, needle, k)) continue;
        int before = p > hay && isalnum((unsigned char)p[-1]), after = isalnum((unsigned char)p[k]);
        if (!before && !after) return 1;
    }
    return 0;
}

char mmvp_parse_letter(const char *r, const MmvpOptions *o) {
    // 1. "(x)" markers naming exactly one option.
    char found = 0;
    int ambiguous = 0;
    for (const char *p = r; *p; p++)
        if (p[0] == '(' && p[1] && p[2] == ')' && option_index(o, p[1]) >= 0) {
            if (found && found != lower(p[1])) ambiguous = 1;
            found = lower(p[1]);
        }
    if (found && !ambiguous) return found;
    if (ambiguous) return 0;
    // 2. the whole response is a letter, give or take punctuation.
    const char *a = r, *b = r + strlen(r);
    while (a < b && (isspace((unsigned char)*a) || strchr("(\"'", *a))) a++;
    while (b > a && (isspace((unsigned char)b[-1]) || strchr(".:)\"'", b[-1]))) b--;
    if (b - a == 1 && option_index(o, *a) >= 0) return lower(*a);
    // 3. a leading letter with punctuation after it: "B. Closed", "a) Open", "A: Open".
    if (b - a >= 2 && option_index(o, a[0]) >= 0 && strchr(".:),", a[1])) return lower(a[0]);
    // 4. "answer is x", "answer: x", "option x", "choice x".
    static const char *const cues[] = {"answer is", "answer:", "option", "choice", NULL};
    for (int c = 0; cues[c]; c++) {
        size_t k = strlen(cues[c]);
        for (const char *p = r; *p; p++) {
            if (strncasecmp(p, cues[c], k) || (p > r && isalpha((unsigned char)p[-1]))) continue;
            const char *q = p + k;
            while (*q == ' ' || *q == '(') q++;
            if (option_index(o, *q) >= 0 && !isalnum((unsigned char)q[1])) return lower(*q);
        }
    }
    // 5. exactly one option's text.
    int hit = -1, hits = 0;
    for (int i = 0; i < o->n_options; i++)
        if (contains_words(r, o->texts[i])) { hit = i; hits++; }
    return hits == 1 ? o->letters[hit] : 0;
}

void mmvp_eval_files(const char *questions_csv, const char *answers, MmvpRule rule, MmvpMetrics *m,
                     cJSON **per_question, int *match) {
    memset(m, 0, sizeof(*m));
    CsvFile csv;
    csv_read(&csv, questions_csv);
    int ci = csv_column(&csv, "Index"), cq = csv_column(&csv, "Question"), co = csv_column(&csv, "Options"),
        ca = csv_column(&csv, "Correct Answer");
    if (ci < 0 || cq < 0 || co < 0 || ca < 0)
        fatal("%s: expected a header with the columns Index, Question, Options, Correct Answer", questions_csv);
    int n = csv.n - 1, need = ci > cq ? ci : cq;
    need = need > co ? need : co;
    need = need > ca ? need : ca;
    if (n <= 0) fatal("%s: no questions", questions_csv);
    if (n % 2) fatal("%s: %d questions, an odd number: MMVP's rows come in pairs (2k-1, 2k)", questions_csv, n);
    char **qids = xmalloc(sizeof(char *) * (size_t)n);
    int *lines = xmalloc(sizeof(int) * (size_t)n);
    for (int i = 0; i < n; i++) {
        const CsvRow *row = &csv.rows[i + 1];
        if (row->n <= need) fatal("%s:%d: %d fields, expected at least %d", questions_csv, row->line, row->n, need + 1);
        qids[i] = row->f[ci];
        lines[i] = row->line;
    }
    AnswerFile af;
    answers_read(&af, answers);
    QuestionKeys keys = {questions_csv, qids, lines, n};
    int *order = xmalloc(sizeof(int) * (size_t)n);
    *match = answers_match(&af, &keys, order);

    int *right = xmalloc(sizeof(int) * (size_t)n);
    if (per_question) *per_question = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        const CsvRow *row = &csv.rows[i + 1];
        const char *label = row->f[ca], *response = af.v[order[i]].text;
        MmvpOptions o;
        mmvp_options_parse(row->f[co], &o);
        char *want = xmalloc(strlen(label) + 1);
        clean(label, strlen(label), want);
        char got = mmvp_parse_letter(response, &o);
        m->unparseable += got == 0;
        if (rule == MMVP_RULE_FIRST4) right[i] = mmvp_first4_correct(response, label);
        else {
            if (strlen(want) != 1 || option_index(&o, want[0]) < 0)
                fatal("%s:%d: the correct answer \"%s\" is not one of the options \"%s\"", questions_csv, row->line,
                      label, row->f[co]);
            right[i] = got == want[0];
        }
        m->correct += right[i];
        if (per_question) {
            cJSON *rec = cJSON_CreateObject();
            cJSON_AddStringToObject(rec, "index", row->f[ci]);
            cJSON_AddStringToObject(rec, "label", label);
            cJSON_AddStringToObject(rec, "response", response);
            char g[2] = {got, 0};
            if (got) cJSON_AddStringToObject(rec, "letter", g);
            else cJSON_AddNullToObject(rec, "letter");
            cJSON_AddBoolToObject(rec, "correct", right[i]);
            cJSON_AddItemToArray(*per_question, rec);
        }
        mmvp_options_free(&o);
        free(want);
    }
    m->n = n;
    m->pairs = n / 2;
    for (int k = 0; k < n / 2; k++) m->pairs_correct += right[2 * k] && right[2 * k + 1];
    m->accuracy = (double)m->correct / n;
    m->pair_accuracy = (double)m->pairs_correct / m->pairs;
    free(right); free(order); free(qids); free(lines);
    answers_free(&af);
    csv_free(&csv);
}

cJSON *mmvp_metrics_json(const MmvpMetrics *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", m->n);
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    cJSON_AddNumberToObject(o, "correct", m->correct);
    cJSON_AddNumberToObject(o, "pairs", m->pairs);
    cJSON_AddNumberToObject(o, "pair_accuracy", m->pair_accuracy);
    cJSON_AddNumberToObject(o, "pairs_correct", m->pairs_correct);
    cJSON_AddNumberToObject(o, "unparseable", m->unparseable);
    return o;
}
