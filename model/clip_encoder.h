// The CLIP transformer encoder (shared by the vision tower, bidirectional, and the text tower, causal):
// pre-LN layers  h = x + out_proj(MHA(LN1(x))),  y = h + fc2(act(fc1(LN2(h)))),  all projections biased.
// q, k, v projections are registered back to back so one matmul computes them as a (C -> 3C) layer.
#pragma once
#include "arena.h"
#include "params.h"

typedef struct {
    void *ln1_w, *ln1_b, *qkv_w, *qkv_b, *o_w, *o_b, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
} ClipLayerW;

typedef struct {
    const Backend *be;
    int C, F, NH, layers;  // width, MLP width, heads, layers registered
    float eps;
    ActKind act;
    int causal;
    ClipLayerW *w, *g;     // (layers) weights and gradients (g's pointers NULL when frozen)
} ClipEncoder;

// Registers/binds `layers` layers named "<prefix>.<i>.self_attn.q_proj.weight" ... into dst.
void clip_encoder_bind(ClipEncoder *e, ParamStore *ps, void *base, ClipLayerW *dst, const char *prefix);

typedef struct {
    int cap_tokens, keep, backward;  // capacity in tokens (B*T); keep = store every layer (for backward)
    void **res;                      // (layers+1) (B*T, C): res[0] input, res[l+1] output of layer l
    void **ln1, **ln1_mean, **ln1_rstd, **qkv, **att, **lse, **mid, **ln2, **ln2_mean, **ln2_rstd, **fc1, **fc1a;
    void *proj;                      // (B*T, C) scratch
    void *dres, *dln, *dqkv, *datt, *dfc;  // backward scratch; dres holds the residual-stream gradient
} ClipEncoderActs;

void clip_encoder_acts_layout(ClipEncoderActs *a, const ClipEncoder *e, int cap_tokens, int keep, int backward, Arena *ar);
void clip_encoder_acts_free(ClipEncoderActs *a);
// Runs layers [0, n_layers) on res[0] (B, T, C) -> res[n_layers].
void clip_encoder_forward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int n_layers);
// a->dres holds dL/d res[n_layers]; on return it holds dL/d res[0]. Weight gradients accumulate.
void clip_encoder_backward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int n_layers);
