// The one training loop of every recipe (train_run, declared in train/trainer.h): load or initialize the
// model, the schedule, resume with its checks (recipe, data hash, settings), gradient accumulation, the
// finite-loss guard, metrics, the progress line, checkpoints and plots. What differs between models is a
// per-model step behind TrainModel (train/trainer.c: LLaVA; train/clip_train.c: CLIP), chosen by the recipe's
// model (train/recipes.h). Also here: the lock on --out, the length of the run, and the stop signals with the
// exact command that resumes.
#pragma once
#include <cJSON.h>

#include "checkpoint.h"
#include "trainer.h"

// The metrics of one optimizer step (or of an evaluation): means over its micro-batches.
typedef struct {
    double loss;
    double metric[RECIPE_MAX_METRICS];  // (the recipe's metric names) train/recipes.h
    int n_examples;
    long long n_items;                  // throughput units of the step (TrainModel.unit)
    double flops;                       // model FLOPs of the step for the MFU (0: not counted)
} StepStats;

// A model as the loop sees it. The model's open function fills it; `self` is the model's own state.
typedef struct TrainModel {
    void *self;
    int n_examples;              // training examples: the data order runs over them
    int batch;                   // examples per micro-batch
    unsigned long long data_hash;  // of the training examples as the model sees them (checked at --resume)
    const char *unit, *unit_short;  // throughput unit in metrics.jsonl ("tokens") and on the progress line ("tok")
    ParamStore *stores[4];       // (n_stores) what a checkpoint holds, in order (loaded back the same way)
    int n_stores;
    ParamStore *trainable[4];    // (n_trainable) what the optimizer updates
    int n_trainable;
    int has_val;                 // held-out data was given: evaluate runs
    // Forward, loss and backward of the training examples idx[0..n): gradients scaled by `scale`, metrics
    // accumulated into st weighted by `scale`. `step` (0-based) and `micro` place the micro-batch (LoRA draws
    // its dropout mask from them, so a resumed run draws the same). Returns the micro-batch's loss, unscaled.
    double (*micro_step)(struct TrainModel *m, const int *idx, int n, int step, int micro, double scale, StepStats *st);
    // The batch source: from here on micro_step is called with the micro-batches of `order` (copied) in turn, so a
    // loader may make them ahead on its threads (may be NULL: micro_step makes each batch when called).
    void (*stream_from)(struct TrainModel *m, const DataOrder *order);
    // The loss of the current weights on the first examples of the training data, forward only: a
    // checkpoint is only written when it is finite.
    double (*probe_loss)(struct TrainModel *m);
    // Loss and metrics on the held-out data (has_val).
    void (*evaluate)(struct TrainModel *m, StepStats *st);
    // Prints where the memory goes, once the optimizer exists (may be NULL).
    void (*memory_report)(const struct TrainModel *m, const Optimizer *opt);
    // Adds model values to a step's metrics record after the update (may be NULL).
    void (*log_extra)(struct TrainModel *m, cJSON *rec);
    // Writes further files into a checkpoint folder before it is sealed (may be NULL), with save_ctx.
    void (*save_extra)(const char *dir, const void *ctx);
    const void *save_ctx;
    void (*close)(struct TrainModel *m);
} TrainModel;

// The per-model opens: load the model (or initialize it with --init random), read the data, prepare what the
// step needs (LLaVA: LoRA, the reference log-probs before any update). The stores' weights are the base
// model's when they return; a resume loads the checkpoint's over them afterwards.
void llava_train_open(TrainModel *m, const TrainConfig *c, const Backend *be);
void clip_train_open(TrainModel *m, const TrainConfig *c, const Backend *be);

// Creates --out and takes an exclusive lock on OUT/.lock for the life of the process, so two runs never
// interleave their checkpoints and metrics; dies naming the folder (and the holder's pid) when another
// run holds it. The lock goes with the process (flock), so a killed run never leaves a stale lock.
void run_lock_out(const char *out_dir);
// A new run (no --resume) in a folder that already holds one (`latest`, checkpoints, metrics.jsonl) would mix
// the two: dies saying what to give (--resume, --force, another --out); with force, says it and goes on.
void run_refuse_used_out(const char *out_dir, int force);
// OUT/settings.txt: the table `vlm train` prints at start (every setting the recipe presets or the command line
// gives, with its source), written whether or not --quiet keeps it off the terminal.
void run_write_settings(const TrainConfig *c);
// Optimizer steps of the run: --steps, else ceil(epochs * n / per_step), at least 1. Dies when that does
// not fit an int (a huge --epochs).
int run_total_steps(const TrainConfig *c, int n_examples, long long per_step);
// What a resumed run accepts from state.json: step in [0, total_steps], cursor in [0, n_examples], epoch
// up to the epochs that total_steps steps of per_step examples pass, the run's recipe and data hash.
CheckpointLimits run_checkpoint_limits(const char *recipe, unsigned long long data_hash, int total_steps, int n_examples,
                                       long long per_step);
// SIGINT, SIGTERM and SIGHUP ask the loop to stop after its current step (it writes a checkpoint, then
// calls run_exit_interrupted); a second one exits at once, without a checkpoint.
void run_signals_install(void);
// 0, or the signal that asked the run to stop.
int run_stop_signal(void);
// Prints which signal stopped the run at `step`, where its checkpoint is and the exact command that
// resumes it, then exits with 128 + sig (the shell's convention for a death by that signal).
void run_exit_interrupted(const TrainConfig *c, int sig, int step) __attribute__((noreturn));
// The command line that continues this run: the program, "train", the arguments shell-quoted, and
// --resume unless it is there already (fresh string).
char *run_resume_command(const TrainConfig *c);
