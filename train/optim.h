// AdamW over the trainable parameter stores, with torch.optim.AdamW semantics: decoupled weight decay on
// matrices and embeddings only (HF Trainer excludes biases and norm weights), bias correction, optional
// global-norm clipping (torch.nn.utils.clip_grad_norm_), and the learning-rate schedules of HF's
// get_*_schedule_with_warmup. On backends whose act type is narrower than fp32 the optimizer keeps an
// fp32 master copy of the weights.
//
// Data-parallel (train/dist.h, world > 1): optim_step first sums the ranks' gradients, then updates. With
// ZeRO-1 (the default) each rank keeps the moments and masters of its shard of every store only, updates that
// shard and all-gathers the weights; without it (--no-zero) every rank keeps and updates the whole state. Both
// sum the gradients the same way (reduce-scatter, then all-gather for the unsharded update) and take the norm
// from the same per-shard sums in the same order, so they give the same bits.
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
    void **m, **v, **master;  // per store: (shard_hi - shard_lo) acc; master NULL when act is fp32 already
    size_t *shard_lo, *shard_hi;  // per store: the elements this rank updates and keeps state for (all: [0, numel))
    int world, sharded;       // ranks whose gradients are summed (train/dist.h); ZeRO-1 state sharding
    int step;                 // optimizer steps taken
} Optimizer;

// One process: the whole state. optim_init_dist: over the ranks of train/dist.h (world 1: the same as
// optim_init), state sharded when `zero`.
void optim_init(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores);
void optim_init_dist(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores, int zero);
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
// State buffer k (0: m, 1: v, 2: master) of store s whole, in host memory (numel acc elements), as a checkpoint
// holds it: a fresh buffer on rank 0 (NULL elsewhere, and NULL for a master the optimizer does not keep).
// Sharded: every rank must call it (its shard goes to rank 0).
void *optim_state_download(const Optimizer *o, int s, int k);
// The inverse at --resume: this rank's shard of state buffer k of store s (shard_hi - shard_lo acc elements in
// host memory, cut from the whole buffer a checkpoint holds, so one of any rank count loads on any other).
void optim_state_upload(Optimizer *o, int s, int k, const void *shard);
Schedule schedule_from_name(const char *name);
const char *schedule_name(Schedule s);
