#include "mmvp.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "answers.h"
#include "choice.h"
#include "csv.h"

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
        ChoiceOptions o;
        choice_options_parse(row->f[co], &o);
        const char want = choice_label_letter(label);
        char got = choice_parse_letter(response, &o);
        m->unparseable += got == 0;
        if (rule == MMVP_RULE_FIRST4) right[i] = choice_first4_correct(response, label);
        else {
            int known = 0;
            for (int k = 0; k < o.n_options; k++) known |= o.letters[k] == want;
            if (!want || !known)
                fatal("%s:%d: the correct answer \"%s\" is not one of the options \"%s\"", questions_csv, row->line,
                      label, row->f[co]);
            right[i] = got == want;
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
        choice_options_free(&o);
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
