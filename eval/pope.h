// POPE (Polling-based Object Probing Evaluation): yes/no answers to "Is there a {object} in the image?"
// scored against the labels, positive class "yes" (research/evals-peers.md A1).
//
// Two answer parsers:
//   reference  the rule shared by RUCAIBox/POPE evaluate.py, LLaVA's eval_pope.py and SeVa's
//              pope_calculate.py: keep the text before the first '.', delete commas, split on single
//              spaces; any token exactly "No", "no" or "not" -> no, everything else -> yes. So "NO",
//              "Nope", "There isn't", "" all read as yes. Use it to compare with published numbers.
//   strict     lowercase, punctuation stripped: yes when the word "yes" appears without a negation,
//              no when "no", "not" or an "n't" contraction appears without "yes", otherwise unparseable.
//              Unparseable answers are scored as wrong: they are neither predicted yes nor predicted no.
// Whatever the parser, the number of answers the strict parser cannot read is reported ("unparseable"),
// because the reference parser silently turns them into yes and inflates the yes-ratio.
#pragma once
#include <cJSON.h>

typedef enum { POPE_PARSER_REFERENCE = 0, POPE_PARSER_STRICT = 1 } PopeParser;

// 1 = yes, 0 = no.
int pope_parse_reference(const char *answer);
// 1 = yes, 0 = no, -1 = unparseable.
int pope_parse_strict(const char *answer);

typedef struct {
    int n;                   // questions
    int tp, fp, tn, fn;      // over the answers the chosen parser read (all of them for reference)
    int unparseable;         // answers the strict parser cannot read (diagnostic under reference)
    int unparseable_yes;     // ... of which on questions labelled yes (strict: in recall's denominator, not in fn)
    double accuracy;         // (tp + tn) / n
    double precision;        // tp / (tp + fp), 0 when nothing was predicted yes
    double recall;           // tp / (questions labelled yes)
    double f1;               // 2 p r / (p + r), 0 when p + r = 0
    double yes_ratio;        // (tp + fp) / n
} PopeMetrics;

// labels[i]: 1 yes, 0 no; answers[i]: the generated text for question i. preds (NULL, or n entries) gets
// each prediction: 1 yes, 0 no, -1 unparseable (strict only).
void pope_score(const int *labels, const char *const *answers, int n, PopeParser parser, PopeMetrics *m, int *preds);
// The metrics of the questions with mask[i] set, from labels and predictions as pope_score leaves them
// (unparseable counted as under strict: wrong, in n).
void pope_score_preds(const int *labels, const int *preds, const unsigned char *mask, int n, PopeMetrics *m);
// The mean of the rates over k results (counts summed), for the mean row over splits.
void pope_mean(const PopeMetrics *ms, int k, PopeMetrics *mean);

// One POPE split: a question file (RUCAIBox/POPE format) and an answer file (eval/answers.h).
typedef struct {
    char *questions, *answers;  // paths
    char *name;                 // the question file's name without folder and extension
    int match;                  // MatchMode used
    int typo_imange;            // questions containing "imange" (POPE before the spelling fix, e3e3926)
    PopeMetrics m;
    // per question, in question-file order (m.n of each), so that runs can be paired question by question
    // (vlm eval table): the question_id as text, the label (1 yes), the prediction (1 yes, 0 no, -1 the
    // strict parser could not read it)
    char **ids;
    int *labels, *preds;
} PopeResult;

void pope_eval_files(const char *questions, const char *answers, PopeParser parser, PopeResult *r);
void pope_result_free(PopeResult *r);
// Adds the metrics as fields of o (an object); returns o.
cJSON *pope_metrics_json(cJSON *o, const PopeMetrics *m);
