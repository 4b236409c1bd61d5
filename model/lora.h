// LoRA on the LLaMA decoder's linear layers (PEFT semantics): y = x W^T + (alpha / r) * dropout(x) A^T B^T
// with A (r, in) drawn like PyTorch's kaiming-uniform default and B (out, r) zero, so training starts from
// the base model. Targets: q, k, v, o, gate, up, down (any subset). The base weights stay frozen; the
// adapters are one small parameter store. Disabling the adapters gives the base model back, which is the
// DPO reference without a second copy of the weights (research/methods.md §3.3, LoRA r=1024, alpha=2048
// in SeVa). lora_merge folds the adapters into the base weights for export and inference.
#pragma once
#include "arena.h"
#include "params.h"

enum { LORA_Q, LORA_K, LORA_V, LORA_O, LORA_GATE, LORA_UP, LORA_DOWN, LORA_TARGETS };

typedef struct {
    int r;
    float alpha, dropout;
    unsigned targets;  // bit t set: module t gets an adapter
} LoraConfig;

typedef struct { void *A[LORA_TARGETS], *B[LORA_TARGETS]; } LoraLayerW;  // NULL where a module has none

struct Llama;

typedef struct Lora {
    LoraConfig cfg;
    float scale;              // alpha / r
    ParamStore ps;            // the adapters (trainable)
    LoraLayerW *w, *g;        // (layers) weights and gradients
    int layers;
    int enabled;              // 0: the base model (the reference)
    int training;             // dropout only while training
    unsigned long long seed;  // dropout seed of the current forward pass (the trainer sets it per micro-batch)
} Lora;

// "q,k,v,o,gate,up,down" or "all" -> bit mask; dies naming an unknown module.
unsigned lora_targets_parse(const char *list);
// The mask back as "all" or a comma list of the short names (for messages and state.json).
void lora_targets_format(unsigned mask, char *buf, size_t len);
// Registers and allocates the adapters for the decoder m (with gradients), A random (seeded), B zero.
void lora_init(Lora *lo, const struct Llama *m, const LoraConfig *cfg, unsigned long long seed);
// What lora_init allocates, all zero, without drawing A: the memory plan (train/plan.h) lays adapters out
// this way without spending seconds on the draws of a rank-1024 set.
void lora_layout(Lora *lo, const struct Llama *m, const LoraConfig *cfg);
void lora_free(Lora *lo);
// Geometry of module t of the decoder: input width, output width, and the column where its output starts
// in the fused projection output (q|k|v or gate|up; 0 for o and down).
void lora_geometry(const struct Llama *m, int t, int *in, int *out, int *col);
// W += scale * B A for every adapter (on the decoder's weights), after which the adapters can be dropped.
void lora_merge(const Lora *lo, struct Llama *m);
// Reads lora_config.json ({"r", "lora_alpha", "lora_dropout", "target_modules"}); returns 0 if absent.
int lora_config_load(LoraConfig *c, const char *dir);
void lora_config_save(const LoraConfig *c, const char *dir);

// Per-forward buffers: u = dropout(x) A^T for every adapter of every layer, kept for the backward.
typedef struct {
    void ***u;                 // [layer][target] (N, r)
    void *xd, *v, *du, *dxd;   // scratch: (N, max in), (N, max out), (N, r), (N, max in)
    int layers;
} LoraActs;

void lora_acts_layout(LoraActs *a, const Lora *lo, const struct Llama *m, int cap_tokens, int backward, Arena *ar);
void lora_acts_free(LoraActs *a);
// Adds the adapter of module t in layer l to y: x (N, in) the module's input, y the fused output (N, OC)
void lora_forward(const Lora *lo, LoraActs *a, const struct Llama *m, int l, int t, const void *x, void *y, int OC, int N);
// dy (N, OC) the fused output's gradient: dB, dA accumulate; the input gradient is added to dx (N, in)
void lora_backward(const Lora *lo, LoraActs *a, const struct Llama *m, int l, int t, const void *x, const void *dy,
                   int OC, void *dx, int N);
