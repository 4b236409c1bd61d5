// The configuration of a training run (every recipe, LLaVA and CLIP), and the LLaVA side of training: the
// per-model step that train/run.c's loop runs for the LLaVA recipes (SFT, DPO, S-VCO, VCO, mDPO): batches of
// examples, policy forward/backward, reference log-probs (cached in a pre-pass or computed online), the loss of
// the recipe (train/recipes.h), evaluation on held-out data.
#pragma once
#include "../model/llava.h"
#include "../model/lora.h"
#include "data.h"
#include "losses.h"
#include "optim.h"
#include "recipes.h"

typedef struct {
    const Recipe *recipe;
    const char *model_dir, *data_path, *val_path, *out_dir, *device;
    const char *tokenizer, *template_name, *system, *images_dir;
    OptimConfig optim;
    double warmup_ratio;       // used when optim.warmup_steps < 0: ceil(ratio * total steps), as HF does
    int batch;                 // examples per micro-batch
    int grad_accum;            // micro-batches per optimizer step
    int steps;                 // optimizer steps; 0: from epochs
    double epochs;
    LossParams loss;           // the parameters of the recipe's loss
    double crop_scale[2];      // mDPO's corrupted image: a random-resized crop keeping this range of the area
    int crop_fixed;            // 0 (--crop fresh): a new crop in every forward pass, the policy's and the reference's
                               // each their own; 1 (--crop fixed): one crop per example, drawn at load
    int ref_online;            // 1: a frozen copy of the model runs every step; 0: cached pre-pass
    const char *ref_cache;     // folder of the pre-pass's cache files (NULL: out_dir); runs of one model on one
                               // data set can share it (the files are keyed by both)
    unsigned long long seed;
    int save_every, eval_every, log_every;  // in optimizer steps; 0: never (a final checkpoint is always written)
    int resume;                // continue from out_dir/latest if it exists
    int force;                 // --resume with settings that differ from the run's (no longer bit-exact)
    int stop_at;               // > 0: stop (with a checkpoint) once this step is reached; --resume goes on
    LlavaTrainable trainable;
    int max_len, skip_bad;
    int max_text_len;          // S-VCO's cut: at most this many tokens a row with the image counted as one (0: none)
    int pack;                  // share the image + prompt prefix of rows that have the same (train/data.h)
    int init_random;           // the model folder has a config.json but no weights: start from random weights
    const char *vision_from;   // with init_random: the vision tower's weights from this model folder (a CLIPModel or LLaVA)
    LoraConfig lora;           // r > 0: adapters on the decoder, whose base weights stay frozen
    int quiet;                 // no progress line
    int no_zero;               // data parallel: every rank keeps the whole optimizer state (default: ZeRO-1 shards)
    int recompute;             // recompute the decoder layers' activations in the backward pass (less memory)
    double peak_tflops;        // the GPU's bf16 matmul ceiling, for the MFU on the progress line
    unsigned long long given;  // bit i: setting i of train/settings.h was given on the command line
    int argc;                  // the arguments after "vlm train" (NULL argv: unknown), for the command
    char **argv;               // that resumes a run stopped by a signal (train/run.h)
} TrainConfig;

// Every setting at its default, then the recipe's paper preset (train/recipes.h, through train/settings.h);
// the command line overrides them afterwards.
void train_config_preset(TrainConfig *c, const Recipe *r);

// How the LLaVA data builder reads this run's data (tokenizer: the run's, found in the model folder when
// c->tokenizer is NULL).
TrainDataOptions train_config_data_options(const TrainConfig *c, const char *tokenizer);

// Runs the whole training (train/run.c: the one loop of every recipe); returns 0. Dies with a clear message on
// bad input or a non-finite loss (the last good checkpoint stays in place).
int train_run(const TrainConfig *c);
