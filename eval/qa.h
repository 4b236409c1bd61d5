// Short-answer QA accuracy (the miniature study's general QA, DESIGN.md §5.4): questions JSON Lines
// {question_id, type?, answer} against generated answers (vlm sample's output, matched by question_id,
// else by order: eval/answers.h). Both sides are normalized -- lowercased, split into words
// (eval/text.h: runs of letters and digits), the articles a/an/the dropped -- and then compared:
//   exact     the word sequences are equal ("Red." = "red"; "The circle." = "circle")
//   contains  the answer's words appear as a contiguous run in the response ("It is red." contains "red")
// Accuracy overall and per "type" (existence, colour, count, ...), in the order the types first appear.
// Prior-following errors: when a record carries "prior_answer" (the answer the training prior suggests,
// e.g. a shape's typical colour), a wrong response that is right for the prior answer (same rule) follows
// the prior; prior_err = such errors / wrong answers to questions with a prior answer.
#pragma once
#include <cJSON.h>

typedef enum { QA_RULE_EXACT = 0, QA_RULE_CONTAINS = 1 } QaRule;

// 1 when the response is right for the answer under the rule.
int qa_correct(const char *response, const char *answer, QaRule rule);

typedef struct {
    char *name;
    int n, correct;
} QaType;

typedef struct {
    int n, correct;
    double accuracy;
    QaType *types;
    int n_types;
    int with_prior;         // questions that carry "prior_answer"
    int wrong_with_prior;   // wrong answers to questions that carry "prior_answer"
    int prior_following;    // ... of which right for the prior answer
    // per question, in file order (n of each): question_id as text (the 0-based position when the record
    // has none), 1 when right, 1/0 when the response is/is not right for the prior answer (-1: no prior)
    char **ids;
    int *item_correct, *item_prior;
} QaMetrics;

// *per_question (when not NULL) gets one JSON record per question; *match the MatchMode used.
void qa_eval_files(const char *questions, const char *answers, QaRule rule, QaMetrics *m, cJSON **per_question, int *match);
void qa_metrics_free(QaMetrics *m);
cJSON *qa_metrics_json(const QaMetrics *m);
