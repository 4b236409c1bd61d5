// MMVP (Multimodal Visual Patterns, Tong et al. 2024): 300 two-option questions in 150 pairs; rows 2k-1 and
// 2k of Questions.csv ask the same question about two CLIP-similar images with opposite answers
// (research/evals-peers.md A4). Questions.csv columns: Index, Question, Options ("(a) Open (b) Closed"),
// Correct Answer ("(a)").
//
// Two graders, both reporting per-question accuracy and paired accuracy (a pair counts when both of its
// answers are right; the official MMVP number):
//   first4  S-VCO's rule grader (eval_vlm/llava/eval/mmvp_rule_grader*.py): the response stripped and
//           lowercased, its first 4 characters with parentheses and whitespace removed, must equal the
//           label with parentheses and whitespace removed. "(a) Open" and "A" pass; "a. Open" and "The
//           answer is (a)" fail.
//   letter     a standalone option letter, tried in order:
//           1. "(x)" markers in the response naming exactly one option letter x;
//           2. the whole response is a letter ("B", "b.", "(b)");
//           3. the response starts with a letter followed by '.', ':', ')' or ',' ("B. Closed");
//           4. "answer is x", "answer: x", "option x", "choice x" (x optionally in parentheses);
//           5. exactly one option's text appears in the response as whole words ("Closed").
//           Anything else is unparseable and scored wrong.
// The number of responses the letter rule cannot read is reported whichever grader scores.
#pragma once
#include <cJSON.h>

typedef enum { MMVP_RULE_FIRST4 = 0, MMVP_RULE_LETTER = 1 } MmvpRule;

typedef struct {
    int n_options;
    char letters[26];     // lowercase option letters, in order
    char *texts[26];      // option texts (trimmed)
} MmvpOptions;

// Splits "(a) Open (b) Closed" into letters and texts; n_options is 0 when there are no "(x)" markers.
void mmvp_options_parse(const char *options, MmvpOptions *o);
void mmvp_options_free(MmvpOptions *o);

// S-VCO's comparison: 1 when the response's cleaned first 4 characters equal the cleaned label.
int mmvp_first4_correct(const char *response, const char *label);
// The option letter a response chooses (lowercase), or 0 when it cannot be read.
char mmvp_parse_letter(const char *response, const MmvpOptions *o);

typedef struct {
    int n, correct, pairs, pairs_correct, unparseable;
    double accuracy, pair_accuracy;
} MmvpMetrics;

// Whole evaluation of a Questions.csv against an answer file; *per_question (when not NULL) gets one JSON
// record per question. *match receives the MatchMode used.
void mmvp_eval_files(const char *questions_csv, const char *answers, MmvpRule rule, MmvpMetrics *m,
                     cJSON **per_question, int *match);
cJSON *mmvp_metrics_json(const MmvpMetrics *m);
