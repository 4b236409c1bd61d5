#include "vit.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void vit_init(ViT *m, const Backend *be, const VisionConfig *cfg, int layers, int with_post_ln) {
    memset(m, 0, sizeof(*m));
    m->cfg = *cfg;
    m->with_post_ln = with_post_ln;
    m->grid = cfg->image_size / cfg->patch_size;
    m->n_patches = m->grid * m->grid;
    m->n_tokens = m->n_patches + 1;
    m->patch_dim = cfg->channels * cfg->patch_size * cfg->patch_size;
    ClipEncoder *e = &m->enc;
    e->be = be;
    e->C = cfg->hidden;
    e->F = cfg->intermediate;
    e->NH = cfg->heads;
    e->layers = layers;
    e->eps = cfg->eps;
    e->act = cfg->act;
    e->causal = 0;
    e->w = xcalloc(layers ? layers : 1, sizeof(ClipLayerW));
    e->g = xcalloc(layers ? layers : 1, sizeof(ClipLayerW));
}

void vit_free(ViT *m) {
    free(m->enc.w);
    free(m->enc.g);
}

void vit_bind(ViT *m, ParamStore *ps, void *base, int grads, const char *prefix) {
    const int C = m->cfg.hidden, P = m->cfg.patch_size;
    ViTW *d = grads ? &m->g : &m->w;
    char n[256];
#define NAME(s) (snprintf(n, sizeof(n), "%s.%s", prefix, s), n)
    d->cls = param(ps, base, NAME("embeddings.class_embedding"), 1, C, 0, 0, 0);
    d->patch_w = param(ps, base, NAME("embeddings.patch_embedding.weight"), 4, C, m->cfg.channels, P, P);
    d->pos = param(ps, base, NAME("embeddings.position_embedding.weight"), 2, m->n_tokens, C, 0, 0);
    d->pre_w = param(ps, base, NAME("pre_layrnorm.weight"), 1, C, 0, 0, 0);
    d->pre_b = param(ps, base, NAME("pre_layrnorm.bias"), 1, C, 0, 0, 0);
    clip_encoder_bind(&m->enc, ps, base, grads ? m->enc.g : m->enc.w, NAME("encoder.layers"));
    if (m->with_post_ln) {
        d->post_w = param(ps, base, NAME("post_layernorm.weight"), 1, C, 0, 0, 0);
        d->post_b = param(ps, base, NAME("post_layernorm.bias"), 1, C, 0, 0, 0);
    }
#undef NAME
}

void vit_acts_layout(ViTActs *a, const ViT *m, int B, int keep, int backward, Arena *ar) {
    const int C = m->cfg.hidden, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim;
    a->cap_images = B;
    clip_encoder_acts_layout(&a->enc, &m->enc, B * N, keep, backward, 0, ar);
    a->patches = arena_act(ar, (size_t)B * NP * K);
    a->pe = arena_act(ar, (size_t)B * NP * C);
    a->emb = arena_act(ar, (size_t)B * N * C);
    a->pre_mean = arena_acc(ar, (size_t)B * N);
    a->pre_rstd = arena_acc(ar, (size_t)B * N);
    a->cls_rows = arena_act(ar, (size_t)B * C);
    a->pooled = arena_act(ar, (size_t)B * C);
    a->post_mean = arena_acc(ar, B);
    a->post_rstd = arena_acc(ar, B);
    a->idx_patch = arena_int(ar, (size_t)B * NP);
    a->idx_cls = arena_int(ar, B);
    a->idx_zero = arena_int(ar, B);
    if (backward) {
        a->dpe = arena_act(ar, (size_t)B * NP * C);
        a->demb = arena_act(ar, (size_t)B * N * C);
        a->dcls = arena_act(ar, (size_t)B * C);
    }
    if (!ar->measuring) {  // row indices of the embedding layout, fixed for the capacity
        int *h = xmalloc(sizeof(int) * (size_t)B * NP);
        for (int b = 0; b < B; b++)
            for (int p = 0; p < NP; p++) h[b * NP + p] = b * N + 1 + p;
        m->enc.be->to_device(a->idx_patch, h, sizeof(int) * (size_t)B * NP);
        for (int b = 0; b < B; b++) h[b] = b * N;
        m->enc.be->to_device(a->idx_cls, h, sizeof(int) * B);
        memset(h, 0, sizeof(int) * B);
        m->enc.be->to_device(a->idx_zero, h, sizeof(int) * B);
        free(h);
    }
}

void vit_acts_free(ViTActs *a) { clip_encoder_acts_free(&a->enc); }

void vit_forward(const ViT *m, ViTActs *a, const void *pixels, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim, S = m->cfg.image_size;
    CHECK_OR_DIE(B <= a->cap_images, "vision batch of %d images exceeds the %d laid out", B, a->cap_images);
    be->im2col(a->patches, pixels, B, m->cfg.channels, S, S, m->cfg.patch_size);     // (B*NP, K)
    be->matmul_forward(a->pe, a->patches, m->w.patch_w, NULL, B * NP, K, C);         // (B*NP, C)
    be->copy_rows(a->emb, a->idx_patch, a->pe, NULL, B * NP, C);                      // rows 1..NP of each image
    be->copy_rows(a->emb, a->idx_cls, m->w.cls, a->idx_zero, B, C);                   // row 0: the class token
    be->add_broadcast_forward(a->emb, m->w.pos, B, (size_t)N * C);
    be->layernorm_forward(a->enc.res[0], a->pre_mean, a->pre_rstd, a->emb, m->w.pre_w, m->w.pre_b, B * N, C, m->cfg.eps);
    clip_encoder_forward(&m->enc, &a->enc, B, N, B * N, n_layers);
    if (m->with_post_ln) {
        be->copy_rows(a->cls_rows, NULL, a->enc.res[n_layers], a->idx_cls, B, C);
        be->layernorm_forward(a->pooled, a->post_mean, a->post_rstd, a->cls_rows, m->w.post_w, m->w.post_b, B, C, m->cfg.eps);
    }
}

void vit_backward(const ViT *m, ViTActs *a, const void *dpooled, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim;
    if (dpooled) {
        CHECK_OR_DIE(m->with_post_ln, "pooled gradient given to a tower without post-LayerNorm");
        be->zero(a->dcls, (size_t)B * C * be->act_bytes);
        be->layernorm_backward(a->dcls, m->g.post_w, m->g.post_b, dpooled, a->cls_rows, m->w.post_w, a->post_mean, a->post_rstd, B, C);
        be->add_rows(a->enc.dres, a->idx_cls, a->dcls, NULL, B, C);
    }
    clip_encoder_backward(&m->enc, &a->enc, B, N, B * N, n_layers);
    be->zero(a->demb, (size_t)B * N * C * be->act_bytes);
    be->layernorm_backward(a->demb, m->g.pre_w, m->g.pre_b, a->enc.dres, a->emb, m->w.pre_w, a->pre_mean, a->pre_rstd, B * N, C);
    if (m->g.pos) be->add_broadcast_backward(m->g.pos, a->demb, B, (size_t)N * C);
    if (m->g.cls) be->add_rows(m->g.cls, a->idx_zero, a->demb, a->idx_cls, B, C);
    if (m->g.patch_w) {
        be->copy_rows(a->dpe, NULL, a->demb, a->idx_patch, B * NP, C);
        be->matmul_backward(NULL, m->g.patch_w, NULL, a->dpe, a->patches, m->w.patch_w, B * NP, K, C);
    }
}
