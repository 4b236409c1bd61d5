// Checkpoints: out/checkpoint-<step>/ holds model.safetensors (every parameter store, our canonical names,
// in the backend's parameter type), optimizer.safetensors (AdamW moments and fp32 master weights),
// state.json (step, data position, seeds, the run's settings) and the base model's config.json,
// preprocessor_config.json and tokenizer.model, so a checkpoint folder is itself a model folder that
// every command loads. Written under a temporary name and renamed; out/latest names the newest.
#pragma once
#include "../model/params.h"
#include "optim.h"

// state_json: the trainer's state object as JSON text (written as state.json).
void checkpoint_save(const char *out_dir, int step, ParamStore **stores, int n_stores, const Optimizer *opt,
                     const char *state_json, const char *base_model_dir);
// The newest checkpoint folder of out_dir (fresh string), or NULL when there is none.
char *checkpoint_latest(const char *out_dir);
// Loads the optimizer moments and master weights saved with the checkpoint (weights are loaded as a model).
void checkpoint_load_optimizer(const char *ckpt_dir, Optimizer *opt);
// state.json of a checkpoint (fresh string; dies naming the file if absent).
char *checkpoint_read_state(const char *ckpt_dir);
