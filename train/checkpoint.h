// Checkpoints: out/checkpoint-<step>/ holds model.safetensors (every parameter store, our canonical names,
// in the backend's parameter type), optimizer.safetensors (AdamW moments and fp32 master weights),
// state.json (step, data position, seeds, the run's settings), the base model's config.json,
// preprocessor_config.json and tokenizer.model, so a checkpoint folder is itself a model folder that
// every command loads, and manifest.json (the size and CRC-32 of every other file, checked at --resume).
// Written under a temporary name and renamed; out/latest names the newest. A checkpoint is only
// published when every weight and optimizer value in it is finite.
#pragma once
#include "../model/params.h"
#include "optim.h"

// opt_state (3 * opt->n_stores): the optimizer's m, v and master of each store whole in host memory
// (optim_state_download; NULL for a master it does not keep). state_json: the trainer's state object as JSON
// text (written as state.json). extra (may be NULL) writes
// further files into the folder before it is sealed and published (e.g. the LoRA settings). Dies, leaving
// the last good checkpoint in place, when a value is not finite or a write fails.
void checkpoint_save(const char *out_dir, int step, ParamStore **stores, int n_stores, const Optimizer *opt,
                     void *const *opt_state, const char *state_json, const char *base_model_dir, void (*extra)(const char *dir, const void *ctx),
                     const void *ctx);
// The newest checkpoint folder of out_dir (fresh string), or NULL when there is none (no `latest`, or an
// empty one: the first save writes it empty before publishing).
char *checkpoint_latest(const char *out_dir);
// Whether out_dir holds any checkpoint folder (published or not named by `latest`).
int checkpoint_any(const char *out_dir);
// The checkpoint --resume continues from (fresh string), its files verified against its manifest; NULL
// when out_dir has no checkpoint or an empty `latest` (a first save stopped between publishing its folder
// and naming it, which the next run saves again). Dies when `latest` is missing but checkpoint folders are there (naming
// them), when it names a missing folder, or when a file does not match the manifest.
char *checkpoint_resume_dir(const char *out_dir);
// Writes ckpt_dir/manifest.json: the size and CRC-32 of every other file in the folder.
void checkpoint_write_manifest(const char *ckpt_dir);
// Checks every file of ckpt_dir against its manifest.json (reading each file once); dies naming the file
// and what differs. A checkpoint written before manifests existed is accepted with a warning.
void checkpoint_verify(const char *ckpt_dir);
// Loads the optimizer moments and master weights saved with the checkpoint (weights are loaded as a model): each
// rank its shard (train/optim.h), whatever rank count wrote them.
void checkpoint_load_optimizer(const char *ckpt_dir, Optimizer *opt);

// The position a resumed run continues from, and what state.json's values must lie within.
typedef struct {
    int step, epoch, cursor;
} CheckpointState;
typedef struct {
    const char *recipe;           // the run's recipe; state.json's must be the same
    unsigned long long data_hash; // the run's data; state.json's must be the same
    int total_steps;              // step in [0, total_steps]
    int n_examples;               // cursor in [0, n_examples]
    int max_epoch;                // epoch in [0, max_epoch]
} CheckpointLimits;
// Parses state.json text (`file` names it in messages): strict JSON with nothing after it, and step,
// epoch and cursor exact integers within the limits. Returns 0, or -1 with a message naming the file,
// the key and the value in err.
int checkpoint_state_parse(const char *text, const char *file, const CheckpointLimits *lim, CheckpointState *out,
                           char *err, size_t errlen);
// Reads and checks ckpt_dir/state.json; dies with the message of checkpoint_state_parse.
CheckpointState checkpoint_read_state(const char *ckpt_dir, const CheckpointLimits *lim);
