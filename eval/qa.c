#include "qa.h"

#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"
#include "answers.h"
#include "text.h"

// lowercase words without articles
static void normalized_words(const char *s, Words *w) {
    Words all;
    words_init(&all);
    text_words(s, &all);
    words_init(w);
    for (int i = 0; i < all.n; i++)
        if (strcmp(all.w[i], "a") && strcmp(all.w[i], "an") && strcmp(all.w[i], "the")) words_push(w, all.w[i], strlen(all.w[i]));
    words_free(&all);
}

int qa_correct(const char *response, const char *answer, QaRule rule) {
    Words r, a;
    normalized_words(response, &r);
    normalized_words(answer, &a);
    int ok = 0;
    if (a.n > 0) {
        if (rule == QA_RULE_EXACT) {
            ok = r.n == a.n;
            for (int i = 0; ok && i < a.n; i++) ok = !strcmp(r.w[i], a.w[i]);
        } else {
            for (int s = 0; !ok && s + a.n <= r.n; s++) {
                ok = 1;
                for (int i = 0; ok && i < a.n; i++) ok = !strcmp(r.w[s + i], a.w[i]);
            }
        }
    }
    words_free(&r);
    words_free(&a);
    return ok;
}

static QaType *type_of(QaMetrics *m, const char *name) {
    for (int i = 0; i < m->n_types; i++)
        if (!strcmp(m->types[i].name, name)) return &m->types[i];
    m->types = xrealloc(m->types, sizeof(QaType) * (m->n_types + 1));
    QaType *t = &m->types[m->n_types++];
    t->name = xstrdup(name);
    t->n = t->correct = 0;
    return t;
}

void qa_eval_files(const char *questions, const char *answers, QaRule rule, QaMetrics *m, cJSON **per_question, int *match) {
    memset(m, 0, sizeof(*m));
    // questions: the answer and the type of each, their ids and lines for the matching
    JsonlReader jr;
    jsonl_open(&jr, questions);
    char **gold = NULL, **type = NULL, **qids = NULL, **prior = NULL;
    int *lines = NULL, n = 0, cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        const cJSON *ans = cJSON_GetObjectItemCaseSensitive(j, "answer"), *ty = cJSON_GetObjectItemCaseSensitive(j, "type");
        if (!cJSON_IsString(ans)) fatal("%s:%d: needs \"answer\" (text)", questions, jr.line);
        if (n == cap) {
            cap = cap ? 2 * cap : 256;
            gold = xrealloc(gold, sizeof(char *) * cap);
            type = xrealloc(type, sizeof(char *) * cap);
            qids = xrealloc(qids, sizeof(char *) * cap);
            prior = xrealloc(prior, sizeof(char *) * cap);
            lines = xrealloc(lines, sizeof(int) * cap);
        }
        char where[600];
        snprintf(where, sizeof(where), "%s:%d", questions, jr.line);
        const cJSON *pr = cJSON_GetObjectItemCaseSensitive(j, "prior_answer");
        if (pr && !cJSON_IsNull(pr) && !cJSON_IsString(pr)) fatal("%s: \"prior_answer\" must be text", where);
        prior[n] = cJSON_IsString(pr) ? xstrdup(pr->valuestring) : NULL;
        gold[n] = xstrdup(ans->valuestring);
        type[n] = xstrdup(cJSON_IsString(ty) ? ty->valuestring : "all");
        qids[n] = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "question_id"), where, "question_id");
        lines[n] = jr.line;
        n++;
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    if (n == 0) fatal("%s: no questions", questions);
    AnswerFile af;
    answers_read(&af, answers);
    QuestionKeys keys = {questions, qids, lines, n};
    int *order = xmalloc(sizeof(int) * n);
    *match = (int)answers_match(&af, &keys, order);
    cJSON *per = per_question ? cJSON_CreateArray() : NULL;
    m->ids = xmalloc(sizeof(char *) * n);
    m->item_correct = xmalloc(sizeof(int) * n);
    m->item_prior = xmalloc(sizeof(int) * n);
    for (int i = 0; i < n; i++) {
        const char *resp = af.v[order[i]].text;
        const int ok = qa_correct(resp, gold[i], rule);
        const int pri = prior[i] ? qa_correct(resp, prior[i], rule) : -1;
        char buf[32];
        snprintf(buf, sizeof(buf), "%d", i);
        m->ids[i] = xstrdup(qids[i] ? qids[i] : buf);
        m->item_correct[i] = ok;
        m->item_prior[i] = pri;
        m->with_prior += pri >= 0;
        if (!ok && pri >= 0) { m->wrong_with_prior++; m->prior_following += pri; }
        QaType *t = type_of(m, type[i]);
        t->n++;
        t->correct += ok;
        m->n++;
        m->correct += ok;
        if (per) {
            cJSON *o = cJSON_CreateObject();
            if (qids[i]) cJSON_AddStringToObject(o, "question_id", qids[i]);
            cJSON_AddStringToObject(o, "type", type[i]);
            cJSON_AddStringToObject(o, "answer", gold[i]);
            cJSON_AddStringToObject(o, "response", resp);
            cJSON_AddBoolToObject(o, "correct", ok);
            if (prior[i]) cJSON_AddBoolToObject(o, "prior_following", !ok && pri);
            cJSON_AddItemToArray(per, o);
        }
    }
    m->accuracy = (double)m->correct / m->n;
    if (per_question) *per_question = per;
    for (int i = 0; i < n; i++) { free(gold[i]); free(type[i]); free(qids[i]); free(prior[i]); }
    free(gold); free(type); free(qids); free(prior); free(lines); free(order);
    answers_free(&af);
}

void qa_metrics_free(QaMetrics *m) {
    for (int i = 0; i < m->n_types; i++) free(m->types[i].name);
    for (int i = 0; m->ids && i < m->n; i++) free(m->ids[i]);
    free(m->ids); free(m->item_correct); free(m->item_prior);
    free(m->types);
    memset(m, 0, sizeof(*m));
}

cJSON *qa_metrics_json(const QaMetrics *m) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "n", m->n);
    cJSON_AddNumberToObject(o, "correct", m->correct);
    cJSON_AddNumberToObject(o, "accuracy", m->accuracy);
    if (m->with_prior) {
        cJSON_AddNumberToObject(o, "wrong_with_prior", m->wrong_with_prior);
        cJSON_AddNumberToObject(o, "prior_following", m->prior_following);
        cJSON_AddNumberToObject(o, "prior_err", m->wrong_with_prior ? (double)m->prior_following / m->wrong_with_prior : 0.0);
    }
    cJSON *ty = cJSON_AddObjectToObject(o, "by_type");
    for (int i = 0; i < m->n_types; i++) {
        cJSON *t = cJSON_AddObjectToObject(ty, m->types[i].name);
        cJSON_AddNumberToObject(t, "n", m->types[i].n);
        cJSON_AddNumberToObject(t, "accuracy", (double)m->types[i].correct / m->types[i].n);
    }
    return o;
}
