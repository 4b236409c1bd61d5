// The CLIP transformer encoder (shared by the vision towers, bidirectional, and the text tower, causal; SigLIP's
// encoder is the same layer with its own activation and eps, under the same tensor names):
// pre-LN layers  h = x + out_proj(MHA(LN1(x))),  y = h + fc2(act(fc1(LN2(h)))),  all projections biased.
// q, k, v projections are registered back to back so one matmul computes them as a (C -> 3C) layer.
// With layer_scale (DINOv2) each branch is scaled per channel before its residual add (Dinov2LayerScale, the
// "lambda1" vectors): h = x + ls1 * out_proj(...), y = h + ls2 * fc2(...).
#pragma once
#include "arena.h"
#include "params.h"

typedef struct {
    void *ln1_w, *ln1_b, *qkv_w, *qkv_b, *o_w, *o_b, *ln2_w, *ln2_b, *fc1_w, *fc1_b, *fc2_w, *fc2_b;
    void *ls1, *ls2;  // with layer_scale: (C), (C) the attention's and the MLP's layer scales
} ClipLayerW;

typedef struct {
    const Backend *be;
    int C, F, NH, layers;  // width, MLP width, heads, layers registered
    float eps;
    ActKind act;
    int causal;
    int layer_scale;       // DINOv2's per-channel scale on each branch (ls1, ls2)
    ClipLayerW *w, *g;     // (layers) weights and gradients (g's pointers NULL when frozen)
} ClipEncoder;

// Registers/binds `layers` layers named "<prefix>.<i>.self_attn.q_proj.weight" ... into dst (with layer_scale also
// "<prefix>.<i>.layer_scale1.lambda1" and "layer_scale2.lambda1", as DINOv2 names them).
void clip_encoder_bind(ClipEncoder *e, ParamStore *ps, void *base, ClipLayerW *dst, const char *prefix);

// The layers run on N token rows. N = B*T (the vision tower: every image has all its patches), or, with
// `tokens` laid out, fewer: the text tower's rows end at their end-of-text token, and what follows it in the
// (B, T) grid cannot reach the pooled token through the causal attention, so only the N tokens up to each
// row's end are computed. Then, as in the decoder (model/llama.h, tokens and the grid), the attention runs on
// the grid: qkv[l], att[l], lse[l] are (B*T) cells, filled from and gathered into the token rows through
// tok_pos (N, each token's cell) and cell_tok (B*T, each cell's token, padding -> the zero row cap_tokens of
// qkv_tok and datt_tok). Each token's numbers are bitwise those of the full grid.
typedef struct {
    int cap_tokens, keep, backward;  // capacity in tokens (B*T); keep = store every layer (for backward)
    void **res;                      // (layers+1) (N, C): res[0] input, res[l+1] output of layer l
    void **ln1, **ln1_mean, **ln1_rstd, **qkv, **att, **lse, **mid, **ln2, **ln2_mean, **ln2_rstd, **fc1, **fc1a;
    void **attn_out, **mlp_out;      // with layer_scale: (layers) (N, C) each branch before its scale (backward reads it)
    void *proj;                      // (N, C) scratch
    void *dres, *dln, *dqkv, *datt, *dfc;  // backward scratch; dres holds the residual-stream gradient
    void *qkv_tok, *att_tok, *datt_tok;    // with tokens: (cap + 1, 3C), (cap, C), (cap + 1, C) token rows
    int *tok_pos, *cell_tok;               // with tokens: (cap), (cap) backend memory, filled by the caller
} ClipEncoderActs;

// tokens: lay out for N < B*T token rows (the buffers above)
void clip_encoder_acts_layout(ClipEncoderActs *a, const ClipEncoder *e, int cap_tokens, int keep, int backward, int tokens,
                              Arena *ar);
void clip_encoder_acts_free(ClipEncoderActs *a);
// Runs layers [0, n_layers) on the N tokens res[0] (N, C) of B rows of T (N = B*T, or fewer with tok_pos and
// cell_tok filled) -> res[n_layers].
void clip_encoder_forward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int N, int n_layers);
// a->dres holds dL/d res[n_layers]; on return it holds dL/d res[0]. Weight gradients accumulate.
void clip_encoder_backward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int N, int n_layers);
