#include "pope.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/datasets.h"
#include "../util/common.h"
#include "answers.h"

int pope_parse_reference(const char *answer) {
    // Walk the first sentence token by token (tokens end at ' ' only, commas vanish), comparing each with
    // the three negative words. Tokens longer than 3 characters cannot match, so only 4 bytes are kept.
    size_t end = strcspn(answer, ".");
    char tok[4];
    size_t len = 0;
    for (size_t i = 0; i <= end; i++) {
        char c = i < end ? answer[i] : ' ';
        if (c == ',') continue;
        if (c == ' ') {
            if ((len == 2 && (!memcmp(tok, "No", 2) || !memcmp(tok, "no", 2))) || (len == 3 && !memcmp(tok, "not", 3)))
                return 0;
            len = 0;
            continue;
        }
        if (len < sizeof(tok)) tok[len] = c;
        len++;
    }
    return 1;
}

int pope_parse_strict(const char *answer) {
    // Words are runs of letters, digits and apostrophes (ASCII ' or the UTF-8 right quote, folded to ').
    int yes = 0, neg = 0;
    const unsigned char *p = (const unsigned char *)answer;
    char w[64];
    size_t len = 0;
    for (;;) {
        unsigned char c = *p;
        int quote = 0;
        if (c == 0xE2 && p[1] == 0x80 && (p[2] == 0x99 || p[2] == 0x98)) { quote = 1; p += 2; }
        else if (c == '\'') quote = 1;
        int alnum = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
        if (alnum || quote) {
            if (len < sizeof(w) - 1) w[len] = quote ? '\'' : (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
            len++;
        } else if (len) {
            size_t k = len < sizeof(w) - 1 ? len : sizeof(w) - 1;
            w[k] = 0;
            if (!strcmp(w, "yes")) yes = 1;
            else if (!strcmp(w, "no") || !strcmp(w, "not") || (k > 3 && !strcmp(w + k - 3, "n't"))) neg = 1;
            len = 0;
        }
        if (!c) break;
        p++;
    }
    if (yes && !neg) return 1;
    if (neg && !yes) return 0;
    return -1;
}

static double ratio(double a, double b) { return b > 0 ? a / b : 0.0; }

void pope_score(const int *labels, const char *const *answers, int n, PopeParser parser, PopeMetrics *m, int *preds) {
    memset(m, 0, sizeof(*m));
    m->n = n;
    int positives = 0;
    for (int i = 0; i < n; i++) {
        int strict = pope_parse_strict(answers[i]);
        positives += labels[i];
        if (strict < 0) { m->unparseable++; m->unparseable_yes += labels[i]; }
        int pred = parser == POPE_PARSER_STRICT ? strict : pope_parse_reference(answers[i]);
        if (preds) preds[i] = pred;
        if (pred < 0) continue;  // strict: unparseable, wrong whatever the label
        if (pred && labels[i]) m->tp++;
        else if (pred) m->fp++;
        else if (labels[i]) m->fn++;
        else m->tn++;
    }
    // Recall's denominator is every question labelled yes, whichever parser: tp + fn (+ the unparseable
    // yes-labelled answers under strict, which are in neither).
    m->accuracy = ratio(m->tp + m->tn, n);
    m->precision = ratio(m->tp, m->tp + m->fp);
    m->recall = ratio(m->tp, positives);
    m->f1 = ratio(2 * m->precision * m->recall, m->precision + m->recall);
    m->yes_ratio = ratio(m->tp + m->fp, n);
}

void pope_score_preds(const int *labels, const int *preds, const unsigned char *mask, int n, PopeMetrics *m) {
    memset(m, 0, sizeof(*m));
    int positives = 0;
    for (int i = 0; i < n; i++) {
        if (mask && !mask[i]) continue;
        m->n++;
        positives += labels[i];
        if (preds[i] < 0) { m->unparseable++; m->unparseable_yes += labels[i]; continue; }
        if (preds[i] && labels[i]) m->tp++;
        else if (preds[i]) m->fp++;
        else if (labels[i]) m->fn++;
        else m->tn++;
    }
    m->accuracy = ratio(m->tp + m->tn, m->n);
    m->precision = ratio(m->tp, m->tp + m->fp);
    m->recall = ratio(m->tp, positives);
    m->f1 = ratio(2 * m->precision * m->recall, m->precision + m->recall);
    m->yes_ratio = ratio(m->tp + m->fp, m->n);
}

void pope_mean(const PopeMetrics *ms, int k, PopeMetrics *mean) {
    memset(mean, 0, sizeof(*mean));
    for (int i = 0; i < k; i++) {
        const PopeMetrics *m = &ms[i];
        mean->n += m->n; mean->tp += m->tp; mean->fp += m->fp; mean->tn += m->tn; mean->fn += m->fn;
        mean->unparseable += m->unparseable; mean->unparseable_yes += m->unparseable_yes;
        mean->accuracy += m->accuracy / k; mean->precision += m->precision / k; mean->recall += m->recall / k;
        mean->f1 += m->f1 / k; mean->yes_ratio += m->yes_ratio / k;
    }
}

static char *file_stem(const char *path) {
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    char *s = xstrdup(base);
    char *dot = strrchr(s, '.');
    if (dot && dot != s) *dot = 0;
    return s;
}

void pope_eval_files(const char *questions, const char *answers, PopeParser parser, PopeResult *r) {
    memset(r, 0, sizeof(*r));
    r->questions = xstrdup(questions);
    r->answers = xstrdup(answers);
    r->name = file_stem(questions);
    // The image paths are not used here; an absolute root keeps the reader from resolving against the folder.
    DatasetOptions opt = {"/", 0};
    Dataset ds;
    dataset_read_pope(&ds, questions, &opt);
    AnswerFile af;
    answers_read(&af, answers);

    char **qids = xmalloc(sizeof(char *) * (size_t)(ds.n ? ds.n : 1));
    r->ids = xmalloc(sizeof(char *) * (size_t)(ds.n ? ds.n : 1));
    r->labels = xmalloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1));
    r->preds = xmalloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1));
    int *lines = xmalloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1));
    for (int i = 0; i < ds.n; i++) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%ld", ds.pope[i].question_id);
        qids[i] = xstrdup(buf);
        r->ids[i] = xstrdup(buf);
        lines[i] = ds.pope[i].src.line;
        r->typo_imange += strstr(ds.pope[i].text, "imange") != NULL;
    }
    QuestionKeys q = {questions, qids, lines, ds.n};
    int *order = xmalloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1));
    r->match = answers_match(&af, &q, order);

    int *labels = xmalloc(sizeof(int) * (size_t)(ds.n ? ds.n : 1));
    const char **texts = xmalloc(sizeof(char *) * (size_t)(ds.n ? ds.n : 1));
    for (int i = 0; i < ds.n; i++) {
        labels[i] = ds.pope[i].label;
        texts[i] = af.v[order[i]].text;
    }
    pope_score(labels, texts, ds.n, parser, &r->m, r->preds);
    memcpy(r->labels, labels, sizeof(int) * (size_t)ds.n);

    free(labels); free(texts); free(order);
    for (int i = 0; i < ds.n; i++) free(qids[i]);
    free(qids); free(lines);
    answers_free(&af);
    dataset_free(&ds);
}

void pope_result_free(PopeResult *r) {
    for (int i = 0; r->ids && i < r->m.n; i++) free(r->ids[i]);
    free(r->ids); free(r->labels); free(r->preds);
    free(r->questions); free(r->answers); free(r->name);
    memset(r, 0, sizeof(*r));
}

cJSON *pope_metrics_json(cJSON *o, const PopeMetrics *m) {
    cJSON_AddNumberToObject(o, "n", m->n);
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    cJSON_AddNumberToObject(o, "precision", m->precision);
    cJSON_AddNumberToObject(o, "recall", m->recall);
    cJSON_AddNumberToObject(o, "f1", m->f1);
    cJSON_AddNumberToObject(o, "yes_ratio", m->yes_ratio);
    cJSON_AddNumberToObject(o, "tp", m->tp);
    cJSON_AddNumberToObject(o, "fp", m->fp);
    cJSON_AddNumberToObject(o, "tn", m->tn);
    cJSON_AddNumberToObject(o, "fn", m->fn);
    cJSON_AddNumberToObject(o, "unparseable", m->unparseable);
    cJSON_AddNumberToObject(o, "unparseable_yes_label", m->unparseable_yes);
    return o;
}
