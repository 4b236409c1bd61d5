#include "llama.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void llama_init(Llama *m, const Backend *be, const LlamaConfig *cfg) {
    memset(m, 0, sizeof(*m));
    if (cfg->act != ACT_SILU) fatal("the LLaMA decoder supports hidden_act silu only");
    m->be = be;
    m->cfg = *cfg;
    m->qdim = cfg->heads * cfg->head_dim;
    m->kvdim = cfg->kv_heads * cfg->head_dim;
    m->qkvdim = m->qdim + 2 * m->kvdim;
    m->lw = xcalloc(cfg->layers, sizeof(LlamaLayerW));
    m->lg = xcalloc(cfg->layers, sizeof(LlamaLayerW));
}

void llama_free(Llama *m) {
    free(m->lw);
    free(m->lg);
}

void llama_bind(Llama *m, ParamStore *ps, void *base, int grads, const char *prefix, const char *head) {
    const LlamaConfig *c = &m->cfg;
    const int D = c->hidden, F = c->intermediate;
    LlamaW *d = grads ? &m->g : &m->w;
    char n[256];
#define NAME(...) (snprintf(n, sizeof(n), __VA_ARGS__), n)
    d->embed = param(ps, base, NAME("%s.embed_tokens.weight", prefix), 2, c->vocab, D, 0, 0);
    for (int l = 0; l < c->layers; l++) {
        LlamaLayerW *L = grads ? &m->lg[l] : &m->lw[l];
        const char *a = "self_attn", *f = "mlp";
        L->ln1_w = param(ps, base, NAME("%s.layers.%d.input_layernorm.weight", prefix, l), 1, D, 0, 0, 0);
        L->qkv_w = param(ps, base, NAME("%s.layers.%d.%s.q_proj.weight", prefix, l, a), 2, m->qdim, D, 0, 0);
        param(ps, base, NAME("%s.layers.%d.%s.k_proj.weight", prefix, l, a), 2, m->kvdim, D, 0, 0);
        param(ps, base, NAME("%s.layers.%d.%s.v_proj.weight", prefix, l, a), 2, m->kvdim, D, 0, 0);
        L->qkv_b = NULL;
        if (c->qkv_bias) {
            L->qkv_b = param(ps, base, NAME("%s.layers.%d.%s.q_proj.bias", prefix, l, a), 1, m->qdim, 0, 0, 0);
            param(ps, base, NAME("%s.layers.%d.%s.k_proj.bias", prefix, l, a), 1, m->kvdim, 0, 0, 0);
            param(ps, base, NAME("%s.layers.%d.%s.v_proj.bias", prefix, l, a), 1, m->kvdim, 0, 0, 0);
        }
        L->o_w = param(ps, base, NAME("%s.layers.%d.%s.o_proj.weight", prefix, l, a), 2, D, m->qdim, 0, 0);
        L->o_b = c->o_bias ? param(ps, base, NAME("%s.layers.%d.%s.o_proj.bias", prefix, l, a), 1, D, 0, 0, 0) : NULL;
        L->ln2_w = param(ps, base, NAME("%s.layers.%d.post_attention_layernorm.weight", prefix, l), 1, D, 0, 0, 0);
        L->gu_w = param(ps, base, NAME("%s.layers.%d.%s.gate_proj.weight", prefix, l, f), 2, F, D, 0, 0);
        param(ps, base, NAME("%s.layers.%d.%s.up_proj.weight", prefix, l, f), 2, F, D, 0, 0);
        L->gu_b = NULL;
        if (c->mlp_bias) {
            L->gu_b = param(ps, base, NAME("%s.layers.%d.%s.gate_proj.bias", prefix, l, f), 1, F, 0, 0, 0);
            param(ps, base, NAME("%s.layers.%d.%s.up_proj.bias", prefix, l, f), 1, F, 0, 0, 0);
        }
        L->down_w = param(ps, base, NAME("%s.layers.%d.%s.down_proj.weight", prefix, l, f), 2, D, F, 0, 0);
        L->down_b = c->mlp_bias ? param(ps, base, NAME("%s.layers.%d.%s.down_proj.bias", prefix, l, f), 1, D, 0, 0, 0) : NULL;
    }
    d->norm_w = param(ps, base, NAME("%s.norm.weight", prefix), 1, D, 0, 0, 0);
    // tied embeddings: the head reads (and its gradient adds into) the embedding table
    d->lm_head = c->tie_embeddings ? d->embed : param(ps, base, head, 2, c->vocab, D, 0, 0);
#undef NAME
}

void llama_acts_layout(LlamaActs *a, const Llama *m, int B, int N, int M, LlamaKeep keep, int backward, Arena *ar) {
    const LlamaConfig *c = &m->cfg;
    const int L = c->layers, D = c->hidden, F = c->intermediate, V = c->vocab;
    if (ar->measuring || !a->res) {
        a->res = xcalloc(L + 1, sizeof(void *));
        void ***lists[] = {&a->ln1, &a->ln1_rstd, &a->qkv, &a->att, &a->lse, &a->mid, &a->ln2, &a->ln2_rstd, &a->gu, &a->h};
        for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) *lists[i] = xcalloc(L, sizeof(void *));
    }
    a->cap_rows = B;
    a->cap_tokens = N;
    a->cap_out = M;
    a->keep = keep;
    a->backward = backward;
    CHECK_OR_DIE(!backward || keep != LLAMA_KEEP_NONE, "decoder backward needs kept activations");
    arena_section(ar, "decoder layers");
    for (int l = 0; l <= L; l++) a->res[l] = (keep != LLAMA_KEEP_NONE || l < 2) ? arena_act(ar, (size_t)N * D) : a->res[l % 2];
    for (int l = 0; l < L; l++) {
        if (keep != LLAMA_KEEP_ALL && l > 0) {  // every layer reuses layer 0's buffers
            a->ln1[l] = a->ln1[0]; a->ln1_rstd[l] = a->ln1_rstd[0]; a->qkv[l] = a->qkv[0]; a->att[l] = a->att[0];
            a->lse[l] = a->lse[0]; a->mid[l] = a->mid[0]; a->ln2[l] = a->ln2[0]; a->ln2_rstd[l] = a->ln2_rstd[0];
            a->gu[l] = a->gu[0]; a->h[l] = a->h[0];
            continue;
        }
        a->ln1[l] = arena_act(ar, (size_t)N * D);
        a->ln1_rstd[l] = arena_acc(ar, N);
        a->qkv[l] = arena_act(ar, (size_t)N * m->qkvdim);
        a->att[l] = arena_act(ar, (size_t)N * m->qdim);
        a->lse[l] = arena_acc(ar, (size_t)N * c->heads);
        a->mid[l] = arena_act(ar, (size_t)N * D);
        a->ln2[l] = arena_act(ar, (size_t)N * D);
        a->ln2_rstd[l] = arena_acc(ar, N);
        a->gu[l] = arena_act(ar, (size_t)N * 2 * F);
        a->h[l] = arena_act(ar, (size_t)N * F);
    }
    a->proj = arena_act(ar, (size_t)N * D);
    a->qkv_tok = arena_act(ar, (size_t)(N + 1) * m->qkvdim);  // + the zero row that padding cells copy
    a->att_tok = arena_act(ar, (size_t)N * m->qdim);
    arena_section(ar, "decoder inputs and head");
    a->pos = arena_int(ar, N);
    a->kv_len = arena_int(ar, B);
    a->segment = arena_int(ar, N);
    a->tok_pos = arena_int(ar, N);
    a->cell_tok = arena_int(ar, N);
    a->sel_grid = arena_int(ar, M > B ? M : B);
    a->idx_out = arena_int(ar, M);
    a->targets = arena_int(ar, M);
    a->hsel = arena_act(ar, (size_t)M * D);
    a->fin = arena_act(ar, (size_t)M * D);
    a->fin_rstd = arena_acc(ar, M);
    a->logits = arena_act(ar, (size_t)M * V);
    a->logp = arena_acc(ar, M);
    a->lse_v = arena_acc(ar, M);
    a->dlogp = arena_acc(ar, M);
    a->xsel = arena_act(ar, (size_t)(M > B ? M : B) * D);
    a->attsel = arena_act(ar, (size_t)(M > B ? M : B) * m->qdim);
    if (backward) {
        arena_section(ar, "decoder gradients");
        a->dres = arena_act(ar, (size_t)N * D);
        a->datt_tok = arena_act(ar, (size_t)(N + 1) * m->qdim);
        a->dln = arena_act(ar, (size_t)N * D);
        a->dqkv = arena_act(ar, (size_t)N * m->qkvdim);
        a->datt = arena_act(ar, (size_t)N * m->qdim);
        a->dgu = arena_act(ar, (size_t)N * 2 * F);
        a->dh = arena_act(ar, (size_t)N * F);
        a->dhsel = arena_act(ar, (size_t)M * D);
        a->dfin = arena_act(ar, (size_t)M * D);
        a->dattsel = arena_act(ar, (size_t)M * m->qdim);
    }
    if (m->lora) {
        arena_section(ar, "LoRA");
        lora_acts_layout(&a->lora, m->lora, m, N, backward, ar);
    }
}

void llama_acts_free(LlamaActs *a) {
    lora_acts_free(&a->lora);
    void **lists[] = {a->res, a->ln1, a->ln1_rstd, a->qkv, a->att, a->lse, a->mid, a->ln2, a->ln2_rstd, a->gu, a->h};
    for (size_t i = 0; i < sizeof(lists) / sizeof(lists[0]); i++) free(lists[i]);
}

static AttnShape llama_attn_shape(const Llama *m, const LlamaActs *a, int B, int T, int use_segments) {
    AttnShape s = {B, T, m->cfg.heads, m->cfg.kv_heads, m->cfg.head_dim, m->qkvdim, m->qkvdim, 1, a->kv_len,
                   use_segments ? a->segment : NULL, NULL, 0};
    return s;
}

// One decoder layer: res[l] -> res[l+1], keeping its activations in the layer's buffers. N tokens; when
// N < B*T (grid) the attention runs on the grid cells of the tokens (see LlamaActs).
// R < N (the last layer, when only R rows sel are read: the head's a->idx_out, or a->last_sel): everything
// after the attention works row by row, so it runs on those rows only (a->xsel, a->attsel gathered) and res[l+1]
// holds R rows; the keys and values, and so the attention, still cover all N rows. The matmuls are batch
// invariant, so each kept row comes out bitwise as it would in the full layer.
static void layer_forward(const Llama *m, LlamaActs *a, int l, const AttnShape *s, int N, int R, const int *sel) {
    const Backend *be = m->be;
    const LlamaConfig *c = &m->cfg;
    const int D = c->hidden, F = c->intermediate, HD = c->head_dim, G = s->B * s->T, grid = N < G;
    const LlamaLayerW *w = &m->lw[l];
    void *x = a->res[l], *y = a->res[l + 1];
    void *qkv = grid ? a->qkv_tok : a->qkv[l];
    be->rmsnorm_forward(a->ln1[l], a->ln1_rstd[l], x, w->ln1_w, N, D, c->eps);
    be->matmul_forward(qkv, a->ln1[l], w->qkv_w, w->qkv_b, N, D, m->qkvdim);           // (N, q | k | v)
    if (m->lora)  // adapters add into their module's columns, before the rotation
        for (int t = LORA_Q; t <= LORA_V; t++) lora_forward(m->lora, &a->lora, m, l, t, a->ln1[l], qkv, m->qkvdim, N);
    // q and k heads sit side by side in each row: one rotation call covers both
    if (a->kv)  // generation prefill: the same rotation, and this layer's keys (rotated) and values kept
        be->rope_kv_append(qkv, a->pos, a->kv->k[l], a->kv->v[l], a->kv->dst, N, c->heads, c->kv_heads, HD,
                           m->qkvdim, c->rope_theta);
    else
        be->rope_forward(qkv, a->pos, N, c->heads + c->kv_heads, HD, m->qkvdim, c->rope_theta);
    if (grid)  // the tokens into their cells, zeros into the padding's: no backend reads stale values there
        be->copy_rows(a->qkv[l], NULL, qkv, a->cell_tok, G, m->qkvdim);                 // (B*T, q | k | v)
    const void *q = a->qkv[l], *k = act_at(be, q, m->qdim), *v = act_at(be, q, m->qdim + m->kvdim);
    AttnShape sq = *s;
    const int *sel_cells = grid ? a->sel_grid : sel;
    if (R < N) sq.q_rows = sel_cells, sq.n_q_rows = R;  // only the kept rows' queries are read
    else if (grid) sq.q_rows = a->tok_pos, sq.n_q_rows = N;  // not the padding's
    be->attention_forward(a->att[l], a->lse[l], q, k, v, &sq);                           // (B*T or N, H*HD)
    const void *att = a->att[l], *xr = x;
    if (R < N) {
        be->copy_rows(a->attsel, NULL, a->att[l], sel_cells, R, m->qdim);                 // (R, H*HD)
        be->copy_rows(a->xsel, NULL, x, sel, R, D);                                       // (R, D)
        att = a->attsel, xr = a->xsel;
    } else if (grid) {
        be->copy_rows(a->att_tok, NULL, a->att[l], a->tok_pos, N, m->qdim);               // (N, H*HD)
        att = a->att_tok;
    }
    be->matmul_forward(a->proj, att, w->o_w, w->o_b, R, m->qdim, D);
    if (m->lora) lora_forward(m->lora, &a->lora, m, l, LORA_O, att, a->proj, D, R);
    // mid = x + proj and its norm in one op (the same values as add then rmsnorm_forward)
    be->add_rmsnorm_forward(a->mid[l], a->ln2[l], a->ln2_rstd[l], xr, a->proj, w->ln2_w, R, D, c->eps);
    be->matmul_forward(a->gu[l], a->ln2[l], w->gu_w, w->gu_b, R, D, 2 * F);           // (R, gate | up)
    if (m->lora)
        for (int t = LORA_GATE; t <= LORA_UP; t++) lora_forward(m->lora, &a->lora, m, l, t, a->ln2[l], a->gu[l], 2 * F, R);
    be->swiglu_forward(a->h[l], a->gu[l], R, F);                                       // (R, F)
    be->matmul_forward(a->proj, a->h[l], w->down_w, w->down_b, R, F, D);
    if (m->lora) lora_forward(m->lora, &a->lora, m, l, LORA_DOWN, a->h[l], a->proj, D, R);
    be->add(y, a->mid[l], a->proj, (size_t)R * D);
}

// The rows the last layer runs on past its attention: the head's M rows (or, with no head, the caller's
// a->last_sel) when they are fewer than N (no adapters: LoRA's buffers are laid out for N rows).
static int last_layer_rows(const Llama *m, const LlamaActs *a, int N, int M) {
    const char *e = getenv("VLM_PRUNE_LAST");  // "0": the full layer (tests compare the two)
    if ((e && !strcmp(e, "0")) || m->lora) return N;
    if (M > 0) return M < N ? M : N;
    return a->last_sel && a->n_last_sel < N && a->n_last_sel <= a->cap_rows ? a->n_last_sel : N;
}

void llama_forward(const Llama *m, LlamaActs *a, int B, int T, int N, int M, int use_segments) {
    const Backend *be = m->be;
    const LlamaConfig *c = &m->cfg;
    const int D = c->hidden;
    CHECK_OR_DIE(B * T <= a->cap_tokens && N <= B * T && B <= a->cap_rows && M <= a->cap_out, "decoder batch exceeds its layout");
    a->n_tokens = N;
    AttnShape s = llama_attn_shape(m, a, B, T, use_segments);
    const int R = last_layer_rows(m, a, N, M);
    const int *sel = M > 0 ? a->idx_out : a->last_sel;
    for (int l = 0; l < c->layers; l++) layer_forward(m, a, l, &s, N, l == c->layers - 1 ? R : N, sel);
    a->last_rows = R;
    // head on the selected rows only (already selected when the last layer ran on them)
    if (M) be->copy_rows(a->hsel, NULL, a->res[c->layers], R < N ? NULL : a->idx_out, M, D);
    be->rmsnorm_forward(a->fin, a->fin_rstd, a->hsel, m->w.norm_w, M, D, c->eps);
    be->matmul_forward(a->logits, a->fin, m->w.lm_head, NULL, M, D, c->vocab);              // (M, V)
    be->logprob_forward(a->logp, a->lse_v, a->logits, a->targets, M, c->vocab);
}

void llama_backward(const Llama *m, LlamaActs *a, int B, int T, int N, int M, int use_segments) {
    const Backend *be = m->be;
    const LlamaConfig *c = &m->cfg;
    const int D = c->hidden, F = c->intermediate, HD = c->head_dim, G = B * T, grid = N < G;
    CHECK_OR_DIE(a->keep != LLAMA_KEEP_NONE && a->backward, "decoder backward needs activations laid out for it");
    CHECK_OR_DIE(a->keep == LLAMA_KEEP_ALL || !a->kv, "a KV capture runs in inference only");
    AttnShape s = llama_attn_shape(m, a, B, T, use_segments);
    be->logprob_backward(a->logits, a->logits, a->lse_v, a->targets, a->dlogp, M, c->vocab);  // in place
    be->matmul_backward(a->dfin, m->g.lm_head, NULL, a->logits, a->fin, m->w.lm_head, M, D, c->vocab);
    be->zero(a->dhsel, (size_t)M * D * be->act_bytes);
    be->rmsnorm_backward(a->dhsel, m->g.norm_w, a->dfin, a->hsel, m->w.norm_w, a->fin_rstd, M, D);
    be->zero(a->dres, (size_t)N * D * be->act_bytes);
    const int RL = a->last_rows;  // < N: the last layer ran on the head rows past its attention
    if (RL == N) be->add_rows(a->dres, a->idx_out, a->dhsel, NULL, M, D);
    for (int l = c->layers - 1; l >= 0; l--) {
        const LlamaLayerW *w = &m->lw[l], *g = &m->lg[l];
        // the last layer's activations are still in the shared buffers from the forward pass
        if (a->keep == LLAMA_KEEP_RESIDUALS && l < c->layers - 1) layer_forward(m, a, l, &s, N, N, NULL);
        // R rows up to the attention: dres (R, D) is dhsel for the pruned last layer
        const int R = l == c->layers - 1 ? RL : N;
        void *dres = R < N ? a->dhsel : a->dres, *datt = R < N ? a->dattsel : grid ? a->datt_tok : a->datt;
        const void *att = R < N ? a->attsel : a->att[l];
        if (R == N && grid) {  // the o-projection's input: the tokens' rows of the grid, gathered again
            be->copy_rows(a->att_tok, NULL, a->att[l], a->tok_pos, N, m->qdim);
            att = a->att_tok;
        }
        be->matmul_backward(a->dh, g->down_w, g->down_b, dres, a->h[l], w->down_w, R, F, D);
        if (m->lora) lora_backward(m->lora, &a->lora, m, l, LORA_DOWN, a->h[l], dres, D, a->dh, R);
        be->swiglu_backward(a->dgu, a->dh, a->gu[l], R, F);
        be->matmul_backward(a->dln, g->gu_w, g->gu_b, a->dgu, a->ln2[l], w->gu_w, R, D, 2 * F);
        if (m->lora)
            for (int t = LORA_GATE; t <= LORA_UP; t++) lora_backward(m->lora, &a->lora, m, l, t, a->ln2[l], a->dgu, 2 * F, a->dln, R);
        be->rmsnorm_backward(dres, g->ln2_w, a->dln, a->mid[l], w->ln2_w, a->ln2_rstd[l], R, D);
        be->matmul_backward(datt, g->o_w, g->o_b, dres, att, w->o_w, R, m->qdim, D);
        if (m->lora) lora_backward(m->lora, &a->lora, m, l, LORA_O, att, dres, D, datt, R);
        // the attention's output gradient on its B*T (or N) rows: zero where no row reads the output
        const int *sel_cells = grid ? a->sel_grid : a->idx_out;
        if (R < N) {  // back to all N rows: the other rows' gradients are zero up to here
            be->zero(a->datt, (size_t)(grid ? G : N) * m->qdim * be->act_bytes);
            be->add_rows(a->datt, sel_cells, a->dattsel, NULL, R, m->qdim);
            be->add_rows(a->dres, a->idx_out, a->dhsel, NULL, R, D);
        } else if (grid) {
            be->copy_rows(a->datt, NULL, a->datt_tok, a->cell_tok, G, m->qdim);
        }
        const void *q = a->qkv[l], *k = act_at(be, q, m->qdim), *v = act_at(be, q, m->qdim + m->kvdim);
        AttnShape sq = s;
        if (R < N) sq.q_rows = sel_cells, sq.n_q_rows = R;  // datt is zero on the other rows
        else if (grid) sq.q_rows = a->tok_pos, sq.n_q_rows = N;  // and on the padding cells
        be->attention_backward(a->dqkv, act_at(be, a->dqkv, m->qdim), act_at(be, a->dqkv, m->qdim + m->kvdim),
                               a->datt, a->att[l], a->lse[l], q, k, v, &sq);
        void *dqkv = a->dqkv;
        if (grid) {  // the tokens' rows of the grid's gradient (qkv_tok is free in the backward pass)
            be->copy_rows(a->qkv_tok, NULL, a->dqkv, a->tok_pos, N, m->qkvdim);
            dqkv = a->qkv_tok;
        }
        be->rope_backward(dqkv, a->pos, N, c->heads + c->kv_heads, HD, m->qkvdim, c->rope_theta);
        be->matmul_backward(a->dln, g->qkv_w, g->qkv_b, dqkv, a->ln1[l], w->qkv_w, N, D, m->qkvdim);
        if (m->lora)
            for (int t = LORA_Q; t <= LORA_V; t++) lora_backward(m->lora, &a->lora, m, l, t, a->ln1[l], dqkv, m->qkvdim, a->dln, N);
        be->rmsnorm_backward(a->dres, g->ln1_w, a->dln, a->res[l], w->ln1_w, a->ln1_rstd[l], N, D);
    }
}
