// MMVP (Multimodal Visual Patterns, Tong et al. 2024): 300 two-option questions in 150 pairs; rows 2k-1 and
// 2k of Questions.csv ask the same question about two CLIP-similar images with opposite answers
// (research/evals-peers.md A4). Questions.csv columns: Index, Question, Options ("(a) Open (b) Closed"),
// Correct Answer ("(a)").
//
// Two graders (eval/choice.h), both reporting per-question accuracy and paired accuracy (a pair counts when
// both of its answers are right; the official MMVP number): first4, S-VCO's rule grader, and letter, a
// standalone option letter. The number of responses the letter rule cannot read is reported whichever grader
// scores.
#pragma once
#include <cJSON.h>

typedef enum { MMVP_RULE_FIRST4 = 0, MMVP_RULE_LETTER = 1 } MmvpRule;

typedef struct {
    int n, correct, pairs, pairs_correct, unparseable;
    double accuracy, pair_accuracy;
} MmvpMetrics;

// Whole evaluation of a Questions.csv against an answer file; *per_question (when not NULL) gets one JSON
// record per question. *match receives the MatchMode used.
void mmvp_eval_files(const char *questions_csv, const char *answers, MmvpRule rule, MmvpMetrics *m,
                     cJSON **per_question, int *match);
cJSON *mmvp_metrics_json(const MmvpMetrics *m);
