// vlm eval verdict | score: what a table of `vlm eval table --json` says, in words or as one number.
//
// verdict: one method against the others on the metric that measures prior-driven hallucination (POPE
// adversarial accuracy by default) and the one that measures general ability (QA accuracy): its difference
// from each baseline with the 95% interval the table computed, its rank among the models, and one plain
// sentence whose wording follows the intervals (an interval that contains 0 is "not resolved", never a win).
//
// score: the mean of a few metrics' means for each model, one "model<TAB>score" line each; the demo's
// learning-rate grid picks the rate with the best validation score this way.
//
// frontier: the same models over several tables (a sweep: one table per learning rate), each model's
// difference from the baseline on two metrics (hallucination, general ability) at each setting: the trade-off
// a method offers, as a markdown table and a chart, and, for one method, a sentence per rival at equal settings.
#pragma once

typedef struct {
    const char *table;             // vlm eval table --json output
    const char *method;            // the model the verdict is about ("svco")
    const char *const *baselines;  // models it is compared with (each must be a --baseline of the table)
    int n_baselines;
    const char *hallucination;     // metric name ("pope.adversarial.acc")
    const char *general;           // metric name ("qa.acc")
    const char *out;               // also written here (NULL: stdout only)
} VerdictOptions;

// Prints the verdict; dies naming the file and the missing model, baseline or metric.
void verdict_run(const VerdictOptions *o);
// Prints "model\tscore" per model of the table: the mean over `metrics` (comma-separated) of the model's means,
// each metric oriented so that higher is better (100 - value for a lower-is-better metric).
void score_run(const char *table, const char *metrics);

typedef struct {
    const char *const *tables;     // (n_tables) vlm eval table --json outputs, one per setting, in order
    int n_tables;
    const char *const *baselines;  // (n_baselines >= 1) the first is the origin of the chart ("sft"), the others rivals
    int n_baselines;
    const char *x, *y;             // metric names: hallucination ("pope.adversarial.acc"), general ("qa.acc")
    const char *method;            // a sentence for this model against each rival at equal settings (NULL: none)
    const char *out, *svg;         // the markdown also written here; the chart (NULL: none)
    double x_min, y_min;           // floors of the chart's axes (NaN: none; see plot_tradeoff_svg)
} FrontierOptions;

// Prints the markdown table (and the method's sentences); dies naming the file and what is missing.
void frontier_run(const FrontierOptions *o);
