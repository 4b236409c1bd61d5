// CV-Bench (Cambrian-1's vision-centric benchmark, Tong et al. 2024; research/evals-peers.md A5): 2,638
// multiple-choice questions, 2D (Count and Relation on ADE20K and COCO images) and 3D (Depth and Distance on
// Omni3D images). The released annotations (nyu-visionx/CV-Bench test_2d.jsonl / test_3d.jsonl, S-VCO's copy
// eval_vlm/playground/data/eval/cvbench/cvbench_test.jsonl) have per question: idx, type ("2D"/"3D"), task,
// source ("ADE20K", "COCO", "Omni3D"), choices (the option texts), answer ("(C)"), prompt, image.
//
// Scoring: accuracy per source and per task; the CV-Bench number is
//     2D = (accuracy on ADE20K + accuracy on COCO) / 2,  3D = accuracy on Omni3D,  CV-Bench = (2D + 3D) / 2
// (the dataset card's "Accuracy" section and its example code; S-VCO's grader
// s-vco/s-vco:eval_vlm/llava/eval/cvbench_rule_grader.py computes the same), not the accuracy over all
// questions, which is reported beside it. Graders (eval/choice.h): first4 (S-VCO's, the default), cambrian
// (Cambrian-1's extract_mcq_answer, its Omni3D variant on Omni3D questions) or letter.
#pragma once
#include <cJSON.h>

typedef enum { CVBENCH_RULE_FIRST4 = 0, CVBENCH_RULE_CAMBRIAN = 1, CVBENCH_RULE_LETTER = 2 } CvbenchRule;

typedef struct {
    char *name;
    int n, correct;
} CvbenchGroup;

typedef struct {
    int n, correct;
    int unparseable;             // responses the letter rule cannot read (whichever rule scores)
    double accuracy;             // correct / n over all questions
    CvbenchGroup *sources, *tasks;  // in order of first appearance
    int n_sources, n_tasks;
    double acc_2d, acc_3d, combined;  // NAN when a source they need has no questions
    // per question, in question-file order: the id (question_id, else idx, as text), 1 when right, and the
    // index of its source and task group
    char **ids;
    int *item_correct, *item_source, *item_task;
} CvbenchResult;

// Grades the answers to one or more question files (questions[k] answered by answers[k]; answers matched by
// question_id, else by order, eval/answers.h), pooled into r. *per_question (when not NULL) gets one JSON
// record per question; match[k] the MatchMode of pair k.
void cvbench_eval_files(const char *const *questions, const char *const *answers, int n_files, CvbenchRule rule,
                        CvbenchResult *r, cJSON **per_question, int *match);
void cvbench_result_free(CvbenchResult *r);
// The metrics as JSON (sources, tasks, 2D, 3D, CV-Bench).
cJSON *cvbench_metrics_json(const CvbenchResult *r);
