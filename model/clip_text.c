#include "clip_text.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void clip_text_init(ClipText *m, const Backend *be, const ClipTextConfig *cfg) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    ClipEncoder *e = &m->enc;
    e->be = be;
    e->C = cfg->hidden;
    e->F = cfg->intermediate;
    e->NH = cfg->heads;
    e->layers = cfg->layers;
    e->eps = cfg->eps;
    e->act = cfg->act;
    e->causal = 1;
    e->w = xcalloc(cfg->layers, sizeof(ClipLayerW));
    e->g = xcalloc(cfg->layers, sizeof(ClipLayerW));
}

void clip_text_free(ClipText *m) {
    free(m->enc.w);
    free(m->enc.g);
}

void clip_text_bind(ClipText *m, ParamStore *ps, void *base, int grads, const char *prefix) {
    const int C = m->cfg.hidden;
    ClipTextW *d = grads ? &m->g : &m->w;
    char n[256];
#define NAME(s) (snprintf(n, sizeof(n), "%s.%s", prefix, s), n)
    d->tok = param(ps, base, NAME("embeddings.token_embedding.weight"), 2, m->cfg.vocab, C, 0, 0);
    d->pos = param(ps, base, NAME("embeddings.position_embedding.weight"), 2, m->cfg.max_positions, C, 0, 0);
    clip_encoder_bind(&m->enc, ps, base, grads ? m->enc.g : m->enc.w, NAME("encoder.layers"));
    d->fin_w = param(ps, base, NAME("final_layer_norm.weight"), 1, C, 0, 0, 0);
    d->fin_b = param(ps, base, NAME("final_layer_norm.bias"), 1, C, 0, 0, 0);
#undef NAME
}

void clip_text_acts_layout(ClipTextActs *a, const ClipText *m, int B, int T, int backward, Arena *ar) {
    const int C = m->cfg.hidden;
    a->cap_rows = B;
    a->cap_len = T;
    clip_encoder_acts_layout(&a->enc, &m->enc, B * T, backward, backward, 1, ar);
    a->ids = arena_int(ar, (size_t)B * T);
    a->pos = arena_int(ar, (size_t)B * T);
    a->idx_eos = arena_int(ar, B);
    a->sel = arena_act(ar, (size_t)B * C);
    a->pooled = arena_act(ar, (size_t)B * C);
    a->fin_mean = arena_acc(ar, B);
    a->fin_rstd = arena_acc(ar, B);
    if (backward) a->dsel = arena_act(ar, (size_t)B * C);
}

void clip_text_acts_free(ClipTextActs *a) { clip_encoder_acts_free(&a->enc); }

void clip_text_forward(const ClipText *m, ClipTextActs *a, const int *ids, int B, int T) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, G = B * T;
    CHECK_OR_DIE(B <= a->cap_rows && T <= a->cap_len, "text batch %dx%d exceeds the %dx%d laid out", B, T, a->cap_rows, a->cap_len);
    if (T > m->cfg.max_positions) fatal("text of %d tokens exceeds the %d positions of the CLIP text tower", T, m->cfg.max_positions);
    int *eos = xmalloc(sizeof(int) * B), N = 0;
    for (int b = 0; b < B; b++) {
        eos[b] = -1;
        for (int t = 0; t < T && eos[b] < 0; t++) {
            int id = ids[b * T + t];
            if (id < 0 || id >= m->cfg.vocab) fatal("text row %d: token id %d at position %d is outside the vocabulary of %d", b, id, t, m->cfg.vocab);
            if (id == m->cfg.eos_token_id) eos[b] = t;
        }
        if (eos[b] < 0) fatal("text row %d has no end-of-text token (%d) to pool at", b, m->cfg.eos_token_id);
        for (int t = 0; t < T; t++)
            if (ids[b * T + t] < 0 || ids[b * T + t] >= m->cfg.vocab)
                fatal("text row %d: token id %d at position %d is outside the vocabulary of %d", b, ids[b * T + t], t, m->cfg.vocab);
        N += eos[b] + 1;
    }
    const char *keep = getenv("VLM_KEEP_PADDING");
    if (keep && !strcmp(keep, "1")) N = G;
    // the tokens (every cell, or each row up to its end-of-text), their positions and cells; each row's pooled token
    int *tok = xmalloc(sizeof(int) * G), *pos = xmalloc(sizeof(int) * G), *cell = xmalloc(sizeof(int) * G);
    int *cell_tok = xmalloc(sizeof(int) * G), n = 0;
    for (int b = 0; b < B; b++) {
        const int end = eos[b];
        for (int t = 0; t < T; t++) {
            cell_tok[b * T + t] = N == G || t <= end ? n : a->enc.cap_tokens;  // padding: the zero row
            if (N < G && t > end) continue;
            tok[n] = ids[b * T + t], pos[n] = t, cell[n] = b * T + t;
            if (t == end) eos[b] = n;
            n++;
        }
    }
    a->N = N;
    be->to_device(a->ids, tok, sizeof(int) * N);
    be->to_device(a->pos, pos, sizeof(int) * N);
    be->to_device(a->idx_eos, eos, sizeof(int) * B);
    if (N < G) {
        be->to_device(a->enc.tok_pos, cell, sizeof(int) * N);
        be->to_device(a->enc.cell_tok, cell_tok, sizeof(int) * G);
    }
    free(eos); free(tok); free(pos); free(cell); free(cell_tok);
    be->embedding_forward(a->enc.res[0], a->ids, m->w.tok, N, C);
    be->add_rows(a->enc.res[0], NULL, m->w.pos, a->pos, N, C);  // + the embedding of each token's position
    clip_encoder_forward(&m->enc, &a->enc, B, T, N, m->cfg.layers);
    be->copy_rows(a->sel, NULL, a->enc.res[m->cfg.layers], a->idx_eos, B, C);
    be->layernorm_forward(a->pooled, a->fin_mean, a->fin_rstd, a->sel, m->w.fin_w, m->w.fin_b, B, C, m->cfg.eps);
}

void clip_text_backward(const ClipText *m, ClipTextActs *a, const void *dpooled, int B, int T) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, N = a->N;
    be->zero(a->dsel, (size_t)B * C * be->act_bytes);
    be->layernorm_backward(a->dsel, m->g.fin_w, m->g.fin_b, dpooled, a->sel, m->w.fin_w, a->fin_mean, a->fin_rstd, B, C);
    be->zero(a->enc.dres, (size_t)N * C * be->act_bytes);
    be->add_rows(a->enc.dres, a->idx_eos, a->dsel, NULL, B, C);
    clip_encoder_backward(&m->enc, &a->enc, B, T, N, m->cfg.layers);
    if (m->g.tok) be->embedding_backward(m->g.tok, a->enc.dres, a->ids, N, C);
    if (m->g.pos) be->add_rows(m->g.pos, a->pos, a->enc.dres, NULL, N, C);  // summed over the tokens in order
}
