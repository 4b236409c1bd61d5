// The training loop for the LLaVA recipes (SFT, DPO, S-VCO, VCO, mDPO): batches of examples, policy
// forward/backward, reference log-probs (cached in a pre-pass or computed online), the loss of the
// recipe, AdamW with the schedule, metrics, evaluation on held-out data, checkpoints and bit-exact resume.
#pragma once
#include "../model/llava.h"
#include "../model/lora.h"
#include "data.h"
#include "losses.h"
#include "optim.h"

typedef struct {
    Recipe recipe;
    const char *model_dir, *data_path, *val_path, *out_dir, *device;
    const char *tokenizer, *template_name, *system, *images_dir;
    OptimConfig optim;
    double warmup_ratio;       // used when optim.warmup_steps < 0: ceil(ratio * total steps), as HF does
    int batch;                 // examples per micro-batch
    int grad_accum;            // micro-batches per optimizer step
    int steps;                 // optimizer steps; 0: from epochs
    double epochs;
    DpoParams dpo;
    SvcoParams svco;
    MdpoParams mdpo;
    int ref_online;            // 1: a frozen copy of the model runs every step; 0: cached pre-pass
    const char *ref_cache;     // folder of the pre-pass's cache files (NULL: out_dir); runs of one model on one
                               // data set can share it (the files are keyed by both)
    unsigned long long seed;
    int save_every, eval_every, log_every;  // in optimizer steps; 0: never (a final checkpoint is always written)
    int resume;                // continue from out_dir/latest if it exists
    int stop_at;               // > 0: stop (with a checkpoint) once this step is reached; --resume goes on
    LlavaTrainable trainable;
    int max_len, skip_bad;
    int pack;                  // share the image + prompt prefix of rows that have the same (train/data.h)
    int init_random;           // the model folder has a config.json but no weights: start from random weights
    const char *vision_from;   // with init_random: the vision tower's weights from this model folder (a CLIPModel or LLaVA)
    LoraConfig lora;           // r > 0: adapters on the decoder, whose base weights stay frozen
    int quiet;                 // no progress line
    int recompute;             // recompute the decoder layers' activations in the backward pass (less memory)
    double peak_tflops;        // the GPU's bf16 matmul ceiling, for the MFU on the progress line
    int argc;                  // the arguments after "vlm train" (NULL argv: unknown), for the command
    char **argv;               // that resumes a run stopped by a signal (train/run.h)
} TrainConfig;

// The paper settings of a recipe (research/methods.md): S-VCO §1.4, SeVa DPO §3.3, mDPO §4; SFT and the
// others get LLaVA-style defaults. Everything is overridable afterwards.
void train_config_preset(TrainConfig *c, Recipe r);
// Runs the whole training; returns 0. Dies with a clear message on bad input or a non-finite loss (the
// last good checkpoint stays in place).
int train_run(const TrainConfig *c);
// --recipe clip (train/clip_train.c): contrastive training of a CLIPModel folder.
int clip_train_run(const TrainConfig *c);
