#include "answers.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"
#include "../util/strmap.h"

char *answers_id_text(const void *item, const char *where, const char *field) {
    const cJSON *j = item;
    if (!j || cJSON_IsNull(j)) return NULL;
    if (cJSON_IsString(j)) return xstrdup(j->valuestring);
    if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (fabs(v) > 9e15 || v != floor(v)) fatal("%s: \"%s\" must be an integer or a string", where, field);
        char buf[32];
        snprintf(buf, sizeof(buf), "%lld", (long long)v);
        return xstrdup(buf);
    }
    fatal("%s: \"%s\" must be an integer or a string", where, field);
}

void answers_read(AnswerFile *af, const char *path) {
    memset(af, 0, sizeof(*af));
    af->path = xstrdup(path);
    JsonlReader r;
    jsonl_open(&r, path);
    int cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&r, 0, NULL))) {
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", r.path, r.line);
        if (af->n == cap) af->v = xrealloc(af->v, sizeof(Answer) * (size_t)(cap = cap ? 2 * cap : 256));
        Answer *a = &af->v[af->n++];
        memset(a, 0, sizeof(*a));
        a->line = r.line;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(j, "text");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(j, "response");
        if (!t) t = cJSON_GetObjectItemCaseSensitive(j, "caption");
        if (!t) fatal("%s: no \"text\" (the generated answer)", where);
        if (!cJSON_IsString(t)) fatal("%s: \"%s\" must be a string", where, t->string);
        a->text = xstrdup(t->valuestring);
        a->qid = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "question_id"), where, "question_id");
        if (!a->qid) a->qid = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "id"), where, "id");
        a->image_id = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "image_id"), where, "image_id");
        const cJSON *im = cJSON_GetObjectItemCaseSensitive(j, "image");
        if (im && !cJSON_IsNull(im)) {
            if (!cJSON_IsString(im)) fatal("%s: \"image\" must be a string", where);
            a->image = xstrdup(im->valuestring);
        }
        const cJSON *ix = cJSON_GetObjectItemCaseSensitive(j, "index");
        a->index = -1;
        if (ix) {
            if (!cJSON_IsNumber(ix) || ix->valuedouble < 0 || ix->valuedouble != floor(ix->valuedouble) || ix->valuedouble > 2e9)
                fatal("%s: \"index\" must be a non-negative integer", where);
            a->index = (long)ix->valuedouble;
        }
        cJSON_Delete(j);
    }
    jsonl_close(&r);
}

void answers_free(AnswerFile *af) {
    for (int i = 0; i < af->n; i++) {
        Answer *a = &af->v[i];
        free(a->text); free(a->qid); free(a->image_id); free(a->image);
    }
    free(af->v);
    free(af->path);
    memset(af, 0, sizeof(*af));
}

const char *match_mode_name(MatchMode m) { return m == MATCH_BY_QUESTION_ID ? "question_id" : "order"; }

MatchMode answers_match(const AnswerFile *af, const QuestionKeys *q, int *order) {
    if (af->n != q->n)
        fatal("%s has %d questions but %s has %d answers (one answer per question, in order or with matching "
              "question_id)", q->path, q->n, af->path, af->n);
    int all_ids = 1;
    for (int i = 0; i < q->n; i++) all_ids &= q->qids[i] != NULL && af->v[i].qid != NULL;
    if (!all_ids) {
        for (int i = 0; i < q->n; i++) {
            const Answer *a = &af->v[i];
            if (a->index >= 0 && a->index != i)
                fatal("%s:%d: answers are matched to %s by order (not every record has a question_id), but this "
                      "answer, number %d, has \"index\": %ld", af->path, a->line, q->path, i, a->index);
            if (a->qid && q->qids[i] && strcmp(a->qid, q->qids[i]))
                fatal("%s:%d: answer number %d has question_id %s but question number %d (%s:%d) has question_id %s",
                      af->path, a->line, i, a->qid, i, q->path, q->lines[i], q->qids[i]);
            order[i] = i;
        }
        return MATCH_BY_ORDER;
    }
    StrMap byid;
    strmap_init(&byid);
    for (int i = 0; i < af->n; i++) {
        int prev = strmap_put(&byid, af->v[i].qid, i);
        if (prev >= 0) fatal("%s: lines %d and %d both answer question_id %s", af->path, af->v[prev].line, af->v[i].line, af->v[i].qid);
    }
    StrMap seen;
    strmap_init(&seen);
    for (int i = 0; i < q->n; i++) {
        int prev = strmap_put(&seen, q->qids[i], i);
        if (prev >= 0) fatal("%s: lines %d and %d share question_id %s", q->path, q->lines[prev], q->lines[i], q->qids[i]);
        int k = strmap_get(&byid, q->qids[i]);
        if (k < 0) fatal("%s:%d: question_id %s has no answer in %s", q->path, q->lines[i], q->qids[i], af->path);
        order[i] = k;
    }
    strmap_free(&seen);
    strmap_free(&byid);
    return MATCH_BY_QUESTION_ID;
}
