// vlm eval table: evaluated runs side by side with 95% intervals and paired differences.
//
// Each run folder holds the JSON that vlm eval pope|chair|mmvp|qa --out write (pope.json, chair.json,
// mmvp.json, qa.json), with their per-question "items". The folder's name is the model (method); folders
// of the same name are its seeds, and the folder above (…/seed2/eval) names the seed, which is how a
// model's runs are paired with a baseline's.
//
// Every metric is a ratio of sums over questions, sum(num_i) / sum(den_i) (accuracy: right / 1; F1:
// 2 TP / (questions labelled yes + TP + FP); CHAIR_i: hallucinated / mentions; ...), so it can be
// recomputed on any resample of the questions. The interval is a two-level bootstrap: each of R resamples
// draws the model's runs with replacement (the seed level), then the questions with replacement (the
// item level; MMVP's unit is the pair), and averages the metric over the drawn runs; the interval is the
// 2.5th and 97.5th percentile of the R values (linear interpolation). The question draw of resample b is
// shared by every model and run, so differences are paired by question. A difference (model - baseline)
// pairs each model run with the baseline's run in the same seed folder (a baseline with one run pairs with
// every run; a model with one run with every baseline run) and draws those pairs with replacement at the
// seed level. The random streams are fixed (a seed per purpose, hashed from the resample number and the
// item set's or model's name), so the output is the same every time and one model's numbers do not depend
// on which other models are in the table.
//
// How well it covers (simulated: 60 tables per line, 1000 questions, accuracy 75-78%, model - baseline =
// +3 points, answers independent per seed, 95% nominal):
//   1 seed                                   mean 95%,  difference 93%
//   3 seeds, seed-to-seed spread 0-1 point   mean 98-100%, difference 98-100% (conservative: answer noise
//                                            is counted at the seed level and again at the question level)
//   5 seeds, spread 1 point                  mean 100%, difference 95%
//   3 seeds, spread 3 / 5 points             mean 92% / 85%, difference 95% / 82% (3 seeds cannot show a
//                                            large seed spread; the percentile interval of 3 draws is short)
// So with 3 seeds read the intervals as approximate; more seeds make them honest.
#pragma once

typedef struct {
    const char *const *dirs;       // run folders
    int n_dirs;
    const char *const *baselines;  // model names to difference against
    int n_baselines;
    const char *metrics;           // comma-separated metric names, NULL for the default set
    int resamples;                 // bootstrap resamples (2000)
    const char *out_md, *out_json, *out_svg;  // optional outputs
} TableOptions;

// The default metric names and how to name others, for --help.
extern const char *table_metrics_help;

// Builds the table, prints it to stdout and writes the requested files. Dies with a message naming the run
// folder and file on a missing file, a file without per-question items, question ids that differ between
// runs, an unknown metric, or a baseline without a run for some seed.
void table_run(const TableOptions *o);
