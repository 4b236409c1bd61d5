// AdamW over the trainable parameter stores, with torch.optim.AdamW semantics: decoupled weight decay on
// matrices and embeddings only (HF Trainer excludes biases and norm weights), bias correction, optional
// global-norm clipping (torch.nn.utils.clip_grad_norm_), and the learning-rate schedules of HF's
// get_*_schedule_with_warmup. On backends whose act type is narrower than fp32 the optimizer keeps an
// fp32 master copy of the weights.
#pragma once
#include "../model/params.h"

typedef enum { SCHED_CONSTANT, SCHED_LINEAR, SCHED_COSINE } Schedule;

typedef struct {
    double lr, beta1, beta2, eps, weight_decay, max_grad_norm;  // max_grad_norm <= 0: no clipping
    Schedule schedule;
    int warmup_steps, total_steps;
} OptimConfig;

typedef struct {
    OptimConfig cfg;
    ParamStore **stores;
    int n_stores;
    void **m, **v, **master;  // per store: (numel) acc; master NULL when act is fp32 already
    int step;                 // optimizer steps taken
} Optimizer;

void optim_init(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores);
// The bytes of optimizer state for a store of numel parameters on backend be: the moments m and v, and the
// fp32 master copy where the act type is narrower (its share in *master_bytes when not NULL). optim_init
// allocates exactly this per store (one buffer: m, v, master); the memory plan (train/plan.h) counts it
// without allocating.
size_t optim_state_bytes(const Backend *be, size_t numel, size_t *master_bytes);
void optim_free(Optimizer *o);
// The learning rate of optimizer step `step` (0-based), as HF's LambdaLR schedules compute it.
double optim_lr(const OptimConfig *cfg, int step);
// Clips (if configured) and applies one update from the accumulated gradients; returns the gradient
// norm before clipping. Does not zero the gradients.
double optim_step(Optimizer *o, double *lr_used);
void optim_zero_grad(Optimizer *o);
Schedule schedule_from_name(const char *name);
const char *schedule_name(Schedule s);
