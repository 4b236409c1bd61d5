#include "clip_encoder.h"

#include <stdio.h>
#include <stdlib.h>

#include "../util/common.h"

void clip_encoder_bind(ClipEncoder *e, ParamStore *ps, void *base, ClipLayerW *dst, const char *prefix) {
    const int C = e->C, F = e->F;
    char n[256];
#define P1(field, suffix, d0) (snprintf(n, sizeof(n), "%s.%d.%s", prefix, l, suffix), L->field = param(ps, base, n, 1, d0, 0, 0, 0))
#define P2(field, suffix, d0, d1) (snprintf(n, sizeof(n), "%s.%d.%s", prefix, l, suffix), L->field = param(ps, base, n, 2, d0, d1, 0, 0))
    for (int l = 0; l < e->layers; l++) {
        ClipLayerW *L = &dst[l];
        P1(ln1_w, "layer_norm1.weight", C);
        P1(ln1_b, "layer_norm1.bias", C);
        P2(qkv_w, "self_attn.q_proj.weight", C, C);  // q, k, v rows back to back: one (3C, C) matrix
        snprintf(n, sizeof(n), "%s.%d.self_attn.k_proj.weight", prefix, l); param(ps, base, n, 2, C, C, 0, 0);
        snprintf(n, sizeof(n), "%s.%d.self_attn.v_proj.weight", prefix, l); param(ps, base, n, 2, C, C, 0, 0);
        P1(qkv_b, "self_attn.q_proj.bias", C);
        snprintf(n, sizeof(n), "%s.%d.self_attn.k_proj.bias", prefix, l); param(ps, base, n, 1, C, 0, 0, 0);
        snprintf(n, sizeof(n), "%s.%d.self_attn.v_proj.bias", prefix, l); param(ps, base, n, 1, C, 0, 0, 0);
        P2(o_w, "self_attn.out_proj.weight", C, C);
        P1(o_b, "self_attn.out_proj.bias", C);
        P1(ln2_w, "layer_norm2.weight", C);
        P1(ln2_b, "layer_norm2.bias", C);
        P2(fc1_w, "mlp.fc1.weight", F, C);
        P1(fc1_b, "mlp.fc1.bias", F);
        P2(fc2_w, "mlp.fc2.weight", C, F);
        P1(fc2_b, "mlp.fc2.bias", C);
        if (e->layer_scale) {
            P1(ls1, "layer_scale1.lambda1", C);
            P1(ls2, "layer_scale2.lambda1", C);
        }
    }
#undef P1
#undef P2
}

void clip_encoder_acts_layout(ClipEncoderActs *a, const ClipEncoder *e, int cap_tokens, int keep, int backward, int tokens,
                              Arena *ar) {
    const int L = e->layers, N = cap_tokens, C = e->C, F = e->F;
    if (ar->measuring || !a->res) {
        a->res = xcalloc(L + 1, sizeof(void *));
        void ***lists[] = {&a->ln1, &a->ln1_mean, &a->ln1_rstd, &a->qkv, &a->att, &a->lse, &a->mid,
                           &a->ln2, &a->ln2_mean, &a->ln2_rstd, &a->fc1, &a->fc1a, &a->attn_out, &a->mlp_out};
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) *lists[i] = xcalloc(L ? L : 1, sizeof(void *));
    }
    a->cap_tokens = N;
    a->keep = keep;
    a->backward = backward;
    // Without backward only two residual buffers are needed (ping-pong) and one set of layer buffers.
    for (int l = 0; l <= L; l++) a->res[l] = (keep || l < 2) ? arena_act(ar, (size_t)N * C) : a->res[l % 2];
    for (int l = 0; l < L; l++) {
        if (!keep && l > 0) {
            a->ln1[l] = a->ln1[0]; a->ln1_mean[l] = a->ln1_mean[0]; a->ln1_rstd[l] = a->ln1_rstd[0];
            a->qkv[l] = a->qkv[0]; a->att[l] = a->att[0]; a->lse[l] = a->lse[0]; a->mid[l] = a->mid[0];
            a->ln2[l] = a->ln2[0]; a->ln2_mean[l] = a->ln2_mean[0]; a->ln2_rstd[l] = a->ln2_rstd[0];
            a->fc1[l] = a->fc1[0]; a->fc1a[l] = a->fc1a[0];
            a->attn_out[l] = a->attn_out[0]; a->mlp_out[l] = a->mlp_out[0];
            continue;
        }
        a->ln1[l] = arena_act(ar, (size_t)N * C);
        a->ln1_mean[l] = arena_acc(ar, N);
        a->ln1_rstd[l] = arena_acc(ar, N);
        a->qkv[l] = arena_act(ar, (size_t)N * 3 * C);
        a->att[l] = arena_act(ar, (size_t)N * C);
        a->lse[l] = arena_acc(ar, (size_t)N * e->NH);
        a->mid[l] = arena_act(ar, (size_t)N * C);
        a->ln2[l] = arena_act(ar, (size_t)N * C);
        a->ln2_mean[l] = arena_acc(ar, N);
        a->ln2_rstd[l] = arena_acc(ar, N);
        a->fc1[l] = arena_act(ar, (size_t)N * F);
        a->fc1a[l] = arena_act(ar, (size_t)N * F);
        if (e->layer_scale) {
            a->attn_out[l] = arena_act(ar, (size_t)N * C);
            a->mlp_out[l] = arena_act(ar, (size_t)N * C);
        }
    }
    a->proj = arena_act(ar, (size_t)N * C);
    if (backward) {
        a->dres = arena_act(ar, (size_t)N * C);
        a->dln = arena_act(ar, (size_t)N * C);
        a->dqkv = arena_act(ar, (size_t)N * 3 * C);
        a->datt = arena_act(ar, (size_t)N * C);
        a->dfc = arena_act(ar, (size_t)N * F);
    }
    if (tokens) {
        a->qkv_tok = arena_act(ar, (size_t)(N + 1) * 3 * C);  // + the zero row that padding cells copy
        a->att_tok = arena_act(ar, (size_t)N * C);
        if (backward) a->datt_tok = arena_act(ar, (size_t)(N + 1) * C);
        a->tok_pos = arena_int(ar, N);
        a->cell_tok = arena_int(ar, N);
    }
}

void clip_encoder_acts_free(ClipEncoderActs *a) {
    void **lists[] = {a->res, a->ln1, a->ln1_mean, a->ln1_rstd, a->qkv, a->att, a->lse, a->mid,
                      a->ln2, a->ln2_mean, a->ln2_rstd, a->fc1, a->fc1a, a->attn_out, a->mlp_out};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) free(lists[i]);
}

static AttnShape attn_shape(const ClipEncoder *e, int B, int T) {
    AttnShape s = {B, T, e->NH, e->NH, e->C / e->NH, 3 * e->C, 3 * e->C, e->causal, NULL, NULL, NULL, 0};
    return s;
}

void clip_encoder_forward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int N, int n_layers) {
    const Backend *be = e->be;
    const int G = B * T, C = e->C, F = e->F, grid = N < G;
    CHECK_OR_DIE(G <= a->cap_tokens && N <= G && (!grid || a->qkv_tok), "encoder batch of %d tokens (%d cells) exceeds its layout", N, G);
    CHECK_OR_DIE(n_layers <= e->layers, "asked for %d of %d layers", n_layers, e->layers);
    AttnShape s = attn_shape(e, B, T);
    if (grid) s.q_rows = a->tok_pos, s.n_q_rows = N;  // the padding's queries are not read
    for (int l = 0; l < n_layers; l++) {
        const ClipLayerW *w = &e->w[l];
        void *x = a->res[l], *y = a->res[l + 1], *qkv = grid ? a->qkv_tok : a->qkv[l], *att = grid ? a->att_tok : a->att[l];
        be->layernorm_forward(a->ln1[l], a->ln1_mean[l], a->ln1_rstd[l], x, w->ln1_w, w->ln1_b, N, C, e->eps);
        be->matmul_forward(qkv, a->ln1[l], w->qkv_w, w->qkv_b, N, C, 3 * C);                  // (N, 3C)
        if (grid) be->copy_rows(a->qkv[l], NULL, qkv, a->cell_tok, G, 3 * C);                  // (B*T, 3C), padding 0
        const void *q = a->qkv[l], *k = act_at(be, q, C), *v = act_at(be, q, 2 * C);
        be->attention_forward(a->att[l], a->lse[l], q, k, v, &s);                             // (B*T, C)
        if (grid) be->copy_rows(att, NULL, a->att[l], a->tok_pos, N, C);                      // (N, C)
        // with layer scale the branch is kept unscaled for the backward pass and its scaled copy added
        void *branch = e->layer_scale ? a->attn_out[l] : a->proj;
        be->matmul_forward(branch, att, w->o_w, w->o_b, N, C, C);
        if (e->layer_scale) be->channel_scale_forward(a->proj, branch, w->ls1, N, C);
        be->add(a->mid[l], x, a->proj, (size_t)N * C);
        be->layernorm_forward(a->ln2[l], a->ln2_mean[l], a->ln2_rstd[l], a->mid[l], w->ln2_w, w->ln2_b, N, C, e->eps);
        be->matmul_forward(a->fc1[l], a->ln2[l], w->fc1_w, w->fc1_b, N, C, F);                // (N, F)
        be->act_forward(e->act, a->fc1a[l], a->fc1[l], (size_t)N * F);
        branch = e->layer_scale ? a->mlp_out[l] : a->proj;
        be->matmul_forward(branch, a->fc1a[l], w->fc2_w, w->fc2_b, N, F, C);
        if (e->layer_scale) be->channel_scale_forward(a->proj, branch, w->ls2, N, C);
        be->add(y, a->mid[l], a->proj, (size_t)N * C);
    }
}

void clip_encoder_backward(const ClipEncoder *e, ClipEncoderActs *a, int B, int T, int N, int n_layers) {
    const Backend *be = e->be;
    const int G = B * T, C = e->C, F = e->F, grid = N < G;
    CHECK_OR_DIE(a->keep && a->backward, "encoder backward needs activations laid out with keep and backward");
    AttnShape s = attn_shape(e, B, T);
    if (grid) s.q_rows = a->tok_pos, s.n_q_rows = N;  // the padding's output gradient is zero
    for (int l = n_layers - 1; l >= 0; l--) {
        const ClipLayerW *w = &e->w[l];
        const ClipLayerW *g = &e->g[l];
        // y = mid + ls2 * fc2(act(fc1(ln2(mid)))): dres is dy, and the residual path passes it to d mid unchanged;
        // the branch's gradient goes through the layer scale into proj (free scratch in the backward pass)
        const void *dbranch = a->dres;
        if (e->layer_scale) {
            be->channel_scale_backward(a->proj, g->ls2, a->dres, a->mlp_out[l], w->ls2, N, C);
            dbranch = a->proj;
        }
        be->matmul_backward(a->dfc, g->fc2_w, g->fc2_b, dbranch, a->fc1a[l], w->fc2_w, N, F, C);
        be->act_backward(e->act, a->dfc, a->dfc, a->fc1[l], (size_t)N * F);
        be->matmul_backward(a->dln, g->fc1_w, g->fc1_b, a->dfc, a->ln2[l], w->fc1_w, N, C, F);
        be->layernorm_backward(a->dres, g->ln2_w, g->ln2_b, a->dln, a->mid[l], w->ln2_w, a->ln2_mean[l], a->ln2_rstd[l], N, C);
        // mid = x + ls1 * out_proj(attn(qkv(ln1(x)))); on the grid through the token rows (clip_encoder.h)
        dbranch = a->dres;
        if (e->layer_scale) {
            be->channel_scale_backward(a->proj, g->ls1, a->dres, a->attn_out[l], w->ls1, N, C);
            dbranch = a->proj;
        }
        const void *att = a->att[l];
        if (grid) {
            be->copy_rows(a->att_tok, NULL, a->att[l], a->tok_pos, N, C);
            att = a->att_tok;
        }
        be->matmul_backward(grid ? a->datt_tok : a->datt, g->o_w, g->o_b, dbranch, att, w->o_w, N, C, C);
        if (grid) be->copy_rows(a->datt, NULL, a->datt_tok, a->cell_tok, G, C);
        const void *q = a->qkv[l], *k = act_at(be, q, C), *v = act_at(be, q, 2 * C);
        be->attention_backward(a->dqkv, act_at(be, a->dqkv, C), act_at(be, a->dqkv, 2 * C), a->datt, a->att[l],
                               a->lse[l], q, k, v, &s);
        void *dqkv = a->dqkv;
        if (grid) {  // qkv_tok is free in the backward pass
            be->copy_rows(a->qkv_tok, NULL, a->dqkv, a->tok_pos, N, 3 * C);
            dqkv = a->qkv_tok;
        }
        be->matmul_backward(a->dln, g->qkv_w, g->qkv_b, dqkv, a->ln1[l], w->qkv_w, N, C, 3 * C);
        be->layernorm_backward(a->dres, g->ln1_w, g->ln1_b, a->dln, a->res[l], w->ln1_w, a->ln1_mean[l], a->ln1_rstd[l], N, C);
    }
}
