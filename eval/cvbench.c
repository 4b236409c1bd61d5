#include "cvbench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"
#include "answers.h"
#include "choice.h"

// The index of the group called name, added when new.
static int group_of(CvbenchGroup **g, int *n, const char *name) {
    for (int i = 0; i < *n; i++) if (!strcmp((*g)[i].name, name)) return i;
    *g = xrealloc(*g, sizeof(CvbenchGroup) * (size_t)(*n + 1));
    (*g)[*n] = (CvbenchGroup){xstrdup(name), 0, 0};
    return (*n)++;
}

static const char *need_string(const cJSON *j, const char *key, const char *where) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) fatal("%s: no \"%s\"", where, key);
    if (!cJSON_IsString(v) || !v->valuestring[0]) fatal("%s: \"%s\" must be a non-empty string", where, key);
    return v->valuestring;
}

// One question as the grader needs it.
typedef struct {
    char *id, *source, *task, *label;
    ChoiceOptions options;
    int line;
} Question;

static void read_questions(const char *path, Question **out, int *n_out) {
    JsonlReader jr;
    jsonl_open(&jr, path);
    Question *q = NULL;
    int n = 0, cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        char where[512];
        snprintf(where, sizeof(where), "%s:%d", jr.path, jr.line);
        if (n == cap) q = xrealloc(q, sizeof(Question) * (size_t)(cap = cap ? 2 * cap : 256));
        Question *x = &q[n++];
        memset(x, 0, sizeof(*x));
        x->line = jr.line;
        x->id = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "question_id"), where, "question_id");
        if (!x->id) x->id = answers_id_text(cJSON_GetObjectItemCaseSensitive(j, "idx"), where, "idx");
        x->source = xstrdup(need_string(j, "source", where));
        x->task = xstrdup(need_string(j, "task", where));
        x->label = xstrdup(need_string(j, "answer", where));
        const cJSON *ch = cJSON_GetObjectItemCaseSensitive(j, "choices");
        if (!cJSON_IsArray(ch) || cJSON_GetArraySize(ch) < 2)
            fatal("%s: \"choices\" must be a list of at least two option texts", where);
        const int k = cJSON_GetArraySize(ch);
        const char **texts = xmalloc(sizeof(char *) * (size_t)k);
        for (int i = 0; i < k; i++) {
            const cJSON *t = cJSON_GetArrayItem(ch, i);
            if (!cJSON_IsString(t)) fatal("%s: choice %d is not a string", where, i + 1);
            texts[i] = t->valuestring;
        }
        if (!choice_options_from_list(texts, k, &x->options)) fatal("%s: %d choices, at most 26 can be lettered", where, k);
        free(texts);
        const char letter = choice_label_letter(x->label);
        if (!letter || letter - 'a' >= k)
            fatal("%s: \"answer\" \"%s\" does not name one of the %d choices ((A) to (%c))", where, x->label, k, 'A' + k - 1);
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    if (n == 0) fatal("%s: no questions", path);
    *out = q;
    *n_out = n;
}

void cvbench_eval_files(const char *const *questions, const char *const *answers, int n_files, CvbenchRule rule,
                        CvbenchResult *r, cJSON **per_question, int *match) {
    memset(r, 0, sizeof(*r));
    if (per_question) *per_question = cJSON_CreateArray();
    int cap = 0;
    for (int f = 0; f < n_files; f++) {
        Question *q;
        int n;
        read_questions(questions[f], &q, &n);
        AnswerFile af;
        answers_read(&af, answers[f]);
        char **qids = xmalloc(sizeof(char *) * (size_t)n);
        int *lines = xmalloc(sizeof(int) * (size_t)n), *order = xmalloc(sizeof(int) * (size_t)n);
        for (int i = 0; i < n; i++) { qids[i] = q[i].id; lines[i] = q[i].line; }
        QuestionKeys keys = {questions[f], qids, lines, n};
        match[f] = answers_match(&af, &keys, order);
        if (r->n + n > cap) {
            cap = r->n + n;
            r->ids = xrealloc(r->ids, sizeof(char *) * (size_t)cap);
            r->item_correct = xrealloc(r->item_correct, sizeof(int) * (size_t)cap);
            r->item_source = xrealloc(r->item_source, sizeof(int) * (size_t)cap);
            r->item_task = xrealloc(r->item_task, sizeof(int) * (size_t)cap);
        }
        for (int i = 0; i < n; i++) {
            const Question *x = &q[i];
            const char *response = af.v[order[i]].text;
            const char got = choice_parse_letter(response, &x->options);
            int right;
            if (rule == CVBENCH_RULE_FIRST4) right = choice_first4_correct(response, x->label);
            else if (rule == CVBENCH_RULE_CAMBRIAN) right = choice_cambrian_correct(response, x->label, &x->options, !strcmp(x->source, "Omni3D"));
            else right = got == choice_label_letter(x->label);
            const int s = group_of(&r->sources, &r->n_sources, x->source), t = group_of(&r->tasks, &r->n_tasks, x->task);
            r->sources[s].n++; r->sources[s].correct += right;
            r->tasks[t].n++; r->tasks[t].correct += right;
            r->unparseable += got == 0;
            r->correct += right;
            char buf[32];
            snprintf(buf, sizeof(buf), "%d", r->n);  // questions without an id are named by their position
            r->ids[r->n] = xstrdup(x->id ? x->id : buf);
            r->item_correct[r->n] = right;
            r->item_source[r->n] = s;
            r->item_task[r->n] = t;
            r->n++;
            if (per_question) {
                cJSON *rec = cJSON_CreateObject();
                if (x->id) cJSON_AddStringToObject(rec, "id", x->id);
                else cJSON_AddNullToObject(rec, "id");
                cJSON_AddStringToObject(rec, "source", x->source);
                cJSON_AddStringToObject(rec, "task", x->task);
                cJSON_AddStringToObject(rec, "label", x->label);
                cJSON_AddStringToObject(rec, "response", response);
                char g[2] = {got, 0};
                if (got) cJSON_AddStringToObject(rec, "letter", g);
                else cJSON_AddNullToObject(rec, "letter");
                cJSON_AddBoolToObject(rec, "correct", right);
                cJSON_AddItemToArray(*per_question, rec);
            }
        }
        for (int i = 0; i < n; i++) {
            free(q[i].id); free(q[i].source); free(q[i].task); free(q[i].label);
            choice_options_free(&q[i].options);
        }
        free(q); free(qids); free(lines); free(order);
        answers_free(&af);
    }
    r->accuracy = (double)r->correct / r->n;
    // the dataset card's combination: by source, 2D the mean of ADE20K and COCO, 3D Omni3D
    double acc[3];
    static const char *const names[3] = {"ADE20K", "COCO", "Omni3D"};
    for (int k = 0; k < 3; k++) {
        acc[k] = NAN;
        for (int i = 0; i < r->n_sources; i++)
            if (!strcmp(r->sources[i].name, names[k])) acc[k] = (double)r->sources[i].correct / r->sources[i].n;
    }
    r->acc_2d = (acc[0] + acc[1]) / 2;
    r->acc_3d = acc[2];
    r->combined = (r->acc_2d + r->acc_3d) / 2;
}

void cvbench_result_free(CvbenchResult *r) {
    for (int i = 0; i < r->n_sources; i++) free(r->sources[i].name);
    for (int i = 0; i < r->n_tasks; i++) free(r->tasks[i].name);
    for (int i = 0; i < r->n; i++) free(r->ids[i]);
    free(r->sources); free(r->tasks); free(r->ids); free(r->item_correct); free(r->item_source); free(r->item_task);
    memset(r, 0, sizeof(*r));
}

static cJSON *groups_json(const CvbenchGroup *g, int n) {
    cJSON *o = cJSON_CreateObject();
    for (int i = 0; i < n; i++) {
        cJSON *e = cJSON_AddObjectToObject(o, g[i].name);
        cJSON_AddNumberToObject(e, "n", g[i].n);
        cJSON_AddNumberToObject(e, "correct", g[i].correct);
        cJSON_AddNumberToObject(e, "accuracy", (double)g[i].correct / g[i].n);
    }
    return o;
}

static void add_or_null(cJSON *o, const char *k, double v) {
    if (isnan(v)) cJSON_AddNullToObject(o, k);
    else cJSON_AddNumberToObject(o, k, v);
}

cJSON *cvbench_metrics_json(const CvbenchResult *r) {
    cJSON *o = cJSON_CreateObject();
    add_or_null(o, "cv_bench", r->combined);
    add_or_null(o, "accuracy_2d", r->acc_2d);
    add_or_null(o, "accuracy_3d", r->acc_3d);
    cJSON_AddNumberToObject(o, "n", r->n);
    cJSON_AddNumberToObject(o, "correct", r->correct);
    cJSON_AddNumberToObject(o, "accuracy", r->accuracy);
    cJSON_AddNumberToObject(o, "unparseable", r->unparseable);
    cJSON_AddItemToObject(o, "by_source", groups_json(r->sources, r->n_sources));
    cJSON_AddItemToObject(o, "by_task", groups_json(r->tasks, r->n_tasks));
    return o;
}
