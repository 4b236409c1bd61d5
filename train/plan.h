// The memory plan of a training run: where each rank's device memory goes (weights, gradients, fp32 master
// weights, AdamW moments, activation arenas, the reference model), known before anything is allocated.
//
// One accounting serves two callers. A run that has allocated its model prints it (memory_report in
// train/step.h). `vlm train --plan` computes it without allocating anything: plan_compute runs the
// allocating calls of train_run, in its order, against a backend whose malloc only counts: those of the LLaVA
// model's open (train/trainer.c: llava_init, lora_layout for lora_init, the pre-pass arena, train_batch_init,
// batch_acts_init), then the optimizer's state (train/run.c: optim_init, sized by optim_state_bytes). So the
// parameter layouts and the arenas' measure passes are the ones a run allocates, not formulas written a second
// time. tests/test_plan.c holds the plan to the bytes the CPU backend really allocates in train_run
// (model/ops.h: cpu_memory_peak).
#pragma once
#include <stdio.h>

#include "../model/llava.h"
#include "../model/lora.h"
#include "data.h"
#include "step.h"
#include "trainer.h"

typedef struct {
    const char *backend;          // the backend's name (model/ops.h), whose act and acc types these are
    int act_bytes, acc_bytes;
    int world;                    // ranks the optimizer state is sharded over (ZeRO-1); 1: not sharded
    size_t params[3];             // parameters of the vision tower, projector and decoder
    int trained[3];               // which of them have gradients and optimizer state
    size_t adapters;              // LoRA parameters (0: none), always trained
    // bytes per rank
    size_t weights;               // every weight: the three parts and the adapters (act type)
    size_t grads;                 // gradients of the trained stores (act type)
    size_t optim;                 // their AdamW moments and fp32 masters (train/optim.h), 1/world of it
    size_t master;                // the part of optim that is fp32 master weights (0 when act is fp32)
    size_t ref_weights;           // a frozen second copy of the model: the online reference without LoRA
    size_t acts, ref_acts;        // activation arenas: the policy's (training), the online reference's
    size_t prepass;               // the cached reference's pre-pass arena, freed before training starts
    size_t eval;                  // the evaluation arena (--val), allocated and freed at each evaluation
    const char *section_name[2 * ARENA_MAX_SECTIONS];  // acts + ref_acts by arena section
    size_t section_bytes[2 * ARENA_MAX_SECTIONS];
    int n_sections;
    size_t peak;                  // the most held at once (see mem_plan_finish)
} MemPlan;

// The stores' terms from a model whose parameters are registered (allocated or not): its three parts, the
// trained stores (those the optimizer updates, adapters included) and a frozen reference copy (or NULL).
void mem_plan_stores(MemPlan *p, const Llava *m, ParamStore *const *trained, int n_trained, const Llava *ref_weights,
                     int world);
// The arenas' terms: the training activations and the online reference's (NULL: none).
void mem_plan_acts(MemPlan *p, const BatchActs *train, const BatchActs *ref);
// peak = weights + grads + ref_weights + max(prepass, optim + acts + ref_acts + eval): the LLaVA model's open
// allocates the weights and gradients (and the online reference's copy), runs the pre-pass in an arena it frees,
// then allocates the training arenas for good; train_run allocates the optimizer's state after it, and each
// evaluation its arena while all of these are held.
void mem_plan_finish(MemPlan *p);
// The breakdown, one line per term.
void mem_plan_print(FILE *f, const MemPlan *p);

// What `vlm train --plan` plans: a run's settings, the rows' lengths, a world size and a target backend.
typedef struct {
    LlavaConfig cfg;
    const Recipe *recipe;         // a LLaVA recipe of the table (train/recipes.h)
    int batch;                    // examples per micro-batch
    int prompt_len, response_len; // text tokens of a prompt (BOS included) and of a response, as
                                  // train_data_synthetic lays rows out: [BOS, image tokens, prompt][response]
    int pack, recompute, ref_online, with_val;
    int fresh_crops;              // mDPO's crop drawn in every pass: the tower runs on every batch (no feature cache)
    LlavaTrainable trainable;
    LoraConfig lora;              // r = 0: no adapters
    int world;
    const char *backend;          // "cuda" (bf16 act, fp32 acc), "cpu" (fp32) or "cpu64" (fp64)
} PlanSpec;

// The plan's result: the memory, and the micro-batch layout train_batch_init made for it.
typedef struct {
    MemPlan mem;
    int logical_rows, images;     // rows of the examples (train/data.h), distinct images
    int rows[2], len[2], outs[2]; // per row group (0: with an image, 1: image-free): physical rows, tokens a
                                  // row, labelled positions (logits rows)
} Plan;

// Computes the plan of s without allocating anything on a device (a few host buffers of the batch's size).
void plan_compute(Plan *p, const PlanSpec *s);

// The spec of the run c describes (cmd_train's flags), for the model of `shape` (a named shape of
// model/config.h) or of c->model_dir's config.json (no weights are read); the target backend is the CPU for
// --device cpu or cpu64, else CUDA.
void plan_spec_init(PlanSpec *s, const TrainConfig *c, const char *shape, int prompt_len, int response_len, int world);
// `vlm train --plan`: the plan of the run c describes, for the model of `shape` (a named shape of
// model/config.h) or of c->model_dir's config.json (no weights read), with rows of prompt_len + response_len
// text tokens, printed with what-if variants (--recompute, the reference, LoRA, ZeRO-1 over `world` ranks)
// and whether each fits one H200 and one 80 GB GPU. Returns 0.
int plan_train(FILE *f, const TrainConfig *c, const char *shape, int prompt_len, int response_len, int world);
