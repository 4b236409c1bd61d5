// Parameters of a module group (vision tower, projector, decoder, ...) live in one backend buffer, with
// a parallel gradient buffer when the group is trainable. Each tensor is registered once by its Hugging
// Face name and shape; a module's "bind" function walks its tensors in a fixed order and gets pointers
// into any buffer laid out like the parameters (the weights, their gradients, optimizer moments).
//
//   bind(m, ps, NULL)      first call: registers every tensor (returns NULL pointers)
//   params_alloc(ps, grad) allocates (and zeroes) the buffers
//   bind(m, ps, ps->data)  weights;  bind(..., ps->grad) gradients (all NULL when frozen)
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "ops.h"
#include "safetensors.h"

typedef struct {
    char *name;
    int ndim;
    int64_t shape[4];
    size_t numel, offset;  // offset in elements from the start of the buffer
    int decay;             // weight decay applies (matrices and embeddings; not biases or norm weights)
} ParamInfo;

typedef struct {
    const Backend *be;
    char *label;       // "vision", "decoder", ... for messages
    ParamInfo *info;
    int n, cap;
    size_t numel;
    void *data;        // (numel) act type
    void *grad;        // (numel) act type, or NULL when frozen
    int bound;         // registration is closed: param() now returns pointers
    unsigned long long source_hash;  // hash of the bytes params_load read (keys caches of model outputs)
    int cursor;        // next tensor bind() will ask for
} ParamStore;

void params_init(ParamStore *ps, const Backend *be, const char *label);
void params_free(ParamStore *ps);
// Registers (first pass) or resolves (later passes, in the same order) one tensor. `base` is the buffer to
// point into (ps->data, ps->grad, ...); returns NULL if base is NULL. dims: ndim sizes.
void *param(ParamStore *ps, void *base, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3);
// Starts a binding pass over base; call param() for every tensor in registration order, then params_end.
void params_begin(ParamStore *ps);
void params_end(ParamStore *ps);
void params_alloc(ParamStore *ps, int with_grad);
const ParamInfo *params_find(const ParamStore *ps, const char *name);
// Sum of squares of all gradients in the store (host double).
double params_grad_sumsq(const ParamStore *ps);

// Loads every registered tensor from safetensors. `rename` maps a canonical (our) name to the candidate
// names to try in the file (NULL: the name itself). Dies naming the file, tensor and problem on a missing
// tensor or a shape mismatch.
typedef int (*NameCandidates)(const char *canonical, char out[][256], int max);
void params_load(ParamStore *ps, const SafeTensors *st, NameCandidates candidates);

// Random initialization for benchmarks and from-scratch training: matrices and embeddings ~ N(0, std),
// normalization weights 1, biases 0 (1-d tensors whose name has "norm" are norm weights). Seeded.
void params_init_random(ParamStore *ps, unsigned long long seed, float std);

// Global gradient norm over several stores, and the clipping factor torch.nn.utils.clip_grad_norm_
// applies: min(1, max_norm / (norm + 1e-6)).
double grad_global_norm(ParamStore **stores, int n);
float grad_clip_factor(double norm, double max_norm);
