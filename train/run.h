// What both training loops (train/trainer.c, train/clip_train.c) share around their steps: the lock on
// --out, the length of the run, and the stop signals with the exact command that resumes.
#pragma once
#include "checkpoint.h"
#include "trainer.h"

// Creates --out and takes an exclusive lock on OUT/.lock for the life of the process, so two runs never
// interleave their checkpoints and metrics; dies naming the folder (and the holder's pid) when another
// run holds it. The lock goes with the process (flock), so a killed run never leaves a stale lock.
void run_lock_out(const char *out_dir);
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
