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
    m->n_tokens = vision_config_tokens(cfg);
    m->has_head = with_post_ln && cfg->kind == VISION_SIGLIP && cfg->use_head;
    m->first_patch = cfg->kind == VISION_CLIP ? 1 : cfg->kind == VISION_DINOV2 ? 1 + cfg->n_registers : 0;
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
    e->layer_scale = cfg->kind == VISION_DINOV2;
    e->w = xcalloc(layers ? layers : 1, sizeof(ClipLayerW));
    e->g = xcalloc(layers ? layers : 1, sizeof(ClipLayerW));
}

void vit_free(ViT *m) {
    free(m->enc.w);
    free(m->enc.g);
}

// DINOv2's tensors, named as Dinov2Model names them (under `prefix`); the encoder layers under CLIP's names, which
// model/dinov2.c maps to DINOv2's in the file
static void dinov2_bind(ViT *m, ParamStore *ps, void *base, ViTW *d, const char *prefix) {
    const int C = m->cfg.hidden, P = m->cfg.patch_size, G = m->cfg.pos_grid, R = m->cfg.n_registers;
    char n[256];
#define NAME(s) (snprintf(n, sizeof(n), "%s.%s", prefix, s), n)
    d->cls = param(ps, base, NAME("embeddings.cls_token"), 3, 1, 1, C, 0);
    if (R) d->registers = param(ps, base, NAME("embeddings.register_tokens"), 3, 1, R, C, 0);
    d->patch_w = param(ps, base, NAME("embeddings.patch_embeddings.projection.weight"), 4, C, m->cfg.channels, P, P);
    d->patch_b = param(ps, base, NAME("embeddings.patch_embeddings.projection.bias"), 1, C, 0, 0, 0);
    d->pos = param(ps, base, NAME("embeddings.position_embeddings"), 3, 1, 1 + (int64_t)G * G, C, 0);
    clip_encoder_bind(&m->enc, ps, base, d == &m->g ? m->enc.g : m->enc.w, NAME("encoder.layers"));  // with layer scales
    d->post_w = param(ps, base, NAME("layernorm.weight"), 1, C, 0, 0, 0);
    d->post_b = param(ps, base, NAME("layernorm.bias"), 1, C, 0, 0, 0);
#undef NAME
}

void vit_bind(ViT *m, ParamStore *ps, void *base, int grads, const char *prefix) {
    const int C = m->cfg.hidden, F = m->cfg.intermediate, P = m->cfg.patch_size, siglip = m->cfg.kind == VISION_SIGLIP;
    ViTW *d = grads ? &m->g : &m->w;
    if (m->cfg.kind == VISION_DINOV2) {
        dinov2_bind(m, ps, base, d, prefix);
        return;
    }
    char n[256];
#define NAME(s) (snprintf(n, sizeof(n), "%s.%s", prefix, s), n)
    if (!siglip) d->cls = param(ps, base, NAME("embeddings.class_embedding"), 1, C, 0, 0, 0);
    d->patch_w = param(ps, base, NAME("embeddings.patch_embedding.weight"), 4, C, m->cfg.channels, P, P);
    if (siglip) d->patch_b = param(ps, base, NAME("embeddings.patch_embedding.bias"), 1, C, 0, 0, 0);
    d->pos = param(ps, base, NAME("embeddings.position_embedding.weight"), 2, m->n_tokens, C, 0, 0);
    if (!siglip) {
        d->pre_w = param(ps, base, NAME("pre_layrnorm.weight"), 1, C, 0, 0, 0);
        d->pre_b = param(ps, base, NAME("pre_layrnorm.bias"), 1, C, 0, 0, 0);
    }
    clip_encoder_bind(&m->enc, ps, base, grads ? m->enc.g : m->enc.w, NAME("encoder.layers"));
    if (m->with_post_ln) {
        d->post_w = param(ps, base, NAME("post_layernorm.weight"), 1, C, 0, 0, 0);
        d->post_b = param(ps, base, NAME("post_layernorm.bias"), 1, C, 0, 0, 0);
    }
    if (m->has_head) {
        ViTHeadW *h = &d->head;
        h->probe = param(ps, base, NAME("head.probe"), 3, 1, 1, C, 0);
        h->in_w = param(ps, base, NAME("head.attention.in_proj_weight"), 2, 3 * C, C, 0, 0);
        h->in_b = param(ps, base, NAME("head.attention.in_proj_bias"), 1, 3 * C, 0, 0, 0);
        h->out_w = param(ps, base, NAME("head.attention.out_proj.weight"), 2, C, C, 0, 0);
        h->out_b = param(ps, base, NAME("head.attention.out_proj.bias"), 1, C, 0, 0, 0);
        h->ln_w = param(ps, base, NAME("head.layernorm.weight"), 1, C, 0, 0, 0);
        h->ln_b = param(ps, base, NAME("head.layernorm.bias"), 1, C, 0, 0, 0);
        h->fc1_w = param(ps, base, NAME("head.mlp.fc1.weight"), 2, F, C, 0, 0);
        h->fc1_b = param(ps, base, NAME("head.mlp.fc1.bias"), 1, F, 0, 0, 0);
        h->fc2_w = param(ps, base, NAME("head.mlp.fc2.weight"), 2, C, F, 0, 0);
        h->fc2_b = param(ps, base, NAME("head.mlp.fc2.bias"), 1, C, 0, 0, 0);
    }
#undef NAME
}

void vit_acts_layout(ViTActs *a, const ViT *m, int B, int keep, int backward, Arena *ar) {
    const int C = m->cfg.hidden, F = m->cfg.intermediate, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim;
    const int siglip = m->cfg.kind == VISION_SIGLIP, dino = m->cfg.kind == VISION_DINOV2;
    a->cap_images = B;
    clip_encoder_acts_layout(&a->enc, &m->enc, B * N, keep, backward, 0, ar);
    a->patches = arena_act(ar, (size_t)B * NP * K);
    a->idx_cls = arena_int(ar, B);
    a->idx_zero = arena_int(ar, B);
    if (dino) {  // the patch embeddings scatter into the encoder's input; post-LayerNorm of every token
        a->pe = arena_act(ar, (size_t)B * NP * C);
        a->idx_patch = arena_int(ar, (size_t)B * NP);
        a->tok = arena_act(ar, (size_t)N * C);
        a->post = arena_act(ar, (size_t)B * N * C);
        a->post_mean = arena_acc(ar, (size_t)B * N);
        a->post_rstd = arena_acc(ar, (size_t)B * N);
        a->pooled = arena_act(ar, (size_t)B * C);
        if (backward) {
            a->dtok = arena_act(ar, (size_t)N * C);
            a->dpe = arena_act(ar, (size_t)B * NP * C);
            a->dpost = arena_act(ar, (size_t)B * N * C);
        }
    } else if (!siglip) {  // SigLIP's patch embeddings go straight into the encoder's input
        a->pe = arena_act(ar, (size_t)B * NP * C);
        a->emb = arena_act(ar, (size_t)B * N * C);
        a->pre_mean = arena_acc(ar, (size_t)B * N);
        a->pre_rstd = arena_acc(ar, (size_t)B * N);
        a->cls_rows = arena_act(ar, (size_t)B * C);
        a->pooled = arena_act(ar, (size_t)B * C);
        a->post_mean = arena_acc(ar, B);
        a->post_rstd = arena_acc(ar, B);
        a->idx_patch = arena_int(ar, (size_t)B * NP);
        if (backward) {
            a->dpe = arena_act(ar, (size_t)B * NP * C);
            a->demb = arena_act(ar, (size_t)B * N * C);
            a->dcls = arena_act(ar, (size_t)B * C);
        }
    } else if (m->with_post_ln) {
        a->post = arena_act(ar, (size_t)B * N * C);
        a->post_mean = arena_acc(ar, (size_t)B * N);
        a->post_rstd = arena_acc(ar, (size_t)B * N);
        if (backward) a->dpost = arena_act(ar, (size_t)B * N * C);
        if (m->has_head) {
            a->hprobe = arena_act(ar, (size_t)B * C);
            a->hq = arena_act(ar, (size_t)B * C);
            a->hqg = arena_act(ar, (size_t)B * N * C);
            a->hkv = arena_act(ar, (size_t)B * N * 2 * C);
            a->hatt = arena_act(ar, (size_t)B * N * C);
            a->hlse = arena_acc(ar, (size_t)B * m->cfg.heads * N);
            a->hatt_rows = arena_act(ar, (size_t)B * C);
            a->hres = arena_act(ar, (size_t)B * C);
            a->hln = arena_act(ar, (size_t)B * C);
            a->hln_mean = arena_acc(ar, B);
            a->hln_rstd = arena_acc(ar, B);
            a->hfc1 = arena_act(ar, (size_t)B * F);
            a->hfc1a = arena_act(ar, (size_t)B * F);
            a->hfc2 = arena_act(ar, (size_t)B * C);
            a->pooled = arena_act(ar, (size_t)B * C);
            if (backward) {
                a->dhfc = arena_act(ar, (size_t)B * F);
                a->dhln = arena_act(ar, (size_t)B * C);
                a->dhres = arena_act(ar, (size_t)B * C);
                a->dhatt = arena_act(ar, (size_t)B * N * C);
                a->dhq = arena_act(ar, (size_t)B * N * C);
                a->dhkv = arena_act(ar, (size_t)B * N * 2 * C);
            }
        }
    }
    if (!ar->measuring) {  // row indices of the embedding layout, fixed for the capacity
        int *h = xmalloc(sizeof(int) * (size_t)B * (NP > 1 ? NP : 1));
        if (!siglip) {
            for (int b = 0; b < B; b++)
                for (int p = 0; p < NP; p++) h[b * NP + p] = b * N + m->first_patch + p;
            m->enc.be->to_device(a->idx_patch, h, sizeof(int) * (size_t)B * NP);
        }
        for (int b = 0; b < B; b++) h[b] = b * N;
        m->enc.be->to_device(a->idx_cls, h, sizeof(int) * B);
        memset(h, 0, sizeof(int) * B);
        m->enc.be->to_device(a->idx_zero, h, sizeof(int) * B);
        free(h);
    }
}

void vit_acts_free(ViTActs *a) { clip_encoder_acts_free(&a->enc); }

// The attention of the pooling head: each image's probe query (row b*N of the query grid; the other rows are never
// read) against its N tokens' keys and values
static AttnShape head_attn_shape(const ViT *m, const ViTActs *a, int B) {
    const int C = m->cfg.hidden, NH = m->cfg.heads;
    AttnShape s = {B, m->n_tokens, NH, NH, C / NH, C, 2 * C, 0, NULL, NULL, a->idx_cls, B};
    return s;
}

// SigLIP's outputs from the last hidden state x (B*N, C): post-LayerNorm of every token, then the head
static void siglip_outputs_forward(const ViT *m, ViTActs *a, const void *x, int B) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, F = m->cfg.intermediate, N = m->n_tokens;
    const float eps = m->cfg.eps;
    be->layernorm_forward(a->post, a->post_mean, a->post_rstd, x, m->w.post_w, m->w.post_b, B * N, C, eps);  // (B*N, C)
    if (!m->has_head) return;
    const ViTHeadW *h = &m->w.head;
    be->copy_rows(a->hprobe, NULL, h->probe, a->idx_zero, B, C);                              // (B, C) probe.repeat
    be->matmul_forward(a->hq, a->hprobe, h->in_w, h->in_b, B, C, C);                          // (B, C) queries
    be->copy_rows(a->hqg, a->idx_cls, a->hq, NULL, B, C);                                     // row b*N of the grid
    be->matmul_forward(a->hkv, a->post, act_at(be, h->in_w, (size_t)C * C), act_at(be, h->in_b, C), B * N, C, 2 * C);
    AttnShape s = head_attn_shape(m, a, B);
    be->attention_forward(a->hatt, a->hlse, a->hqg, a->hkv, act_at(be, a->hkv, C), &s);      // (B*N, C), rows b*N read
    be->copy_rows(a->hatt_rows, NULL, a->hatt, a->idx_cls, B, C);                             // (B, C)
    be->matmul_forward(a->hres, a->hatt_rows, h->out_w, h->out_b, B, C, C);                   // (B, C) the residual
    be->layernorm_forward(a->hln, a->hln_mean, a->hln_rstd, a->hres, h->ln_w, h->ln_b, B, C, eps);
    be->matmul_forward(a->hfc1, a->hln, h->fc1_w, h->fc1_b, B, C, F);
    be->act_forward(m->cfg.act, a->hfc1a, a->hfc1, (size_t)B * F);
    be->matmul_forward(a->hfc2, a->hfc1a, h->fc2_w, h->fc2_b, B, F, C);
    be->add(a->pooled, a->hres, a->hfc2, (size_t)B * C);                                      // (B, C) pooler_output
}

// The gradients of SigLIP's outputs back to the last hidden state: accumulates into a->enc.dres.
static void siglip_outputs_backward(const ViT *m, ViTActs *a, const void *dpooled, const void *dhidden, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, F = m->cfg.intermediate, N = m->n_tokens;
    const size_t NC = (size_t)B * N * C;
    if (dpooled) {
        CHECK_OR_DIE(m->has_head, "pooled gradient given to a SigLIP tower without its head");
        const ViTHeadW *w = &m->w.head, *g = &m->g.head;
        // pooled = hres + fc2(act(fc1(LN(hres))))
        be->matmul_backward(a->dhfc, g->fc2_w, g->fc2_b, dpooled, a->hfc1a, w->fc2_w, B, F, C);
        be->act_backward(m->cfg.act, a->dhfc, a->dhfc, a->hfc1, (size_t)B * F);
        be->matmul_backward(a->dhln, g->fc1_w, g->fc1_b, a->dhfc, a->hln, w->fc1_w, B, C, F);
        be->copy(a->dhres, dpooled, (size_t)B * C * be->act_bytes);
        be->layernorm_backward(a->dhres, g->ln_w, g->ln_b, a->dhln, a->hres, w->ln_w, a->hln_mean, a->hln_rstd, B, C);
        // hres = out_proj(attention rows); the attention's output gradient is zero off the probe rows
        be->zero(a->dhatt, NC * be->act_bytes);
        be->matmul_backward(a->dhln, g->out_w, g->out_b, a->dhres, a->hatt_rows, w->out_w, B, C, C);  // dhln: d att rows
        be->copy_rows(a->dhatt, a->idx_cls, a->dhln, NULL, B, C);
        AttnShape s = head_attn_shape(m, a, B);
        be->attention_backward(a->dhq, a->dhkv, act_at(be, a->dhkv, C), a->dhatt, a->hatt, a->hlse, a->hqg, a->hkv,
                               act_at(be, a->hkv, C), &s);
        // the probe rows' query gradient into the probe (summed over images) and the q third of in_proj
        be->copy_rows(a->dhres, NULL, a->dhq, a->idx_cls, B, C);                                     // (B, C) dq
        be->matmul_backward(a->dhln, g->in_w, g->in_b, a->dhres, a->hprobe, w->in_w, B, C, C);        // dhln: d probe rows
        if (g->probe) be->add_rows(g->probe, a->idx_zero, a->dhln, NULL, B, C);
        be->matmul_backward(a->dpost, act_at(be, g->in_w, (size_t)C * C), act_at(be, g->in_b, C), a->dhkv, a->post,
                            act_at(be, w->in_w, (size_t)C * C), B * N, C, 2 * C);
        if (dhidden) be->add(a->dpost, a->dpost, dhidden, NC);
    } else if (dhidden) {
        be->copy(a->dpost, dhidden, NC * be->act_bytes);
    } else {
        return;
    }
    be->layernorm_backward(a->enc.dres, m->g.post_w, m->g.post_b, a->dpost, a->enc.res[n_layers], m->w.post_w, a->post_mean,
                           a->post_rstd, B * N, C);
}

// DINOv2's token table tok (N, C) from the parameters: [class token + position 0, the registers, the patch
// positions at this grid (the table's own, or through pos_map: Dinov2Embeddings.interpolate_pos_encoding)]
static void dinov2_tokens_forward(const ViT *m, void *tok) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, R = m->cfg.n_registers, G0 = m->cfg.pos_grid, NP = m->n_patches;
    be->add(tok, m->w.cls, m->w.pos, C);
    if (R) be->copy(act_at(be, tok, C), m->w.registers, (size_t)R * C * be->act_bytes);
    void *patch_pos = act_at(be, tok, (size_t)(1 + R) * C);
    const void *table = act_at(be, m->w.pos, C);  // (G0*G0, C) the patch rows of the table
    if (!m->pos_map) {
        be->copy(patch_pos, table, (size_t)NP * C * be->act_bytes);
        return;
    }
    // (NP, C) = pos_map (NP, G0*G0) @ table (G0*G0, C): matmul_backward's input gradient is exactly this product
    be->matmul_backward(patch_pos, NULL, NULL, m->pos_map, NULL, table, NP, C, G0 * G0);
}

// The gradients of DINOv2's tower from its pooled output's: the final LayerNorm, the encoder, the token table
// (into the class token, the registers and the position table, through pos_map's transpose) and the patch embedding
static void dinov2_tower_backward(const ViT *m, ViTActs *a, const void *dpooled, const void *dhidden, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, R = m->cfg.n_registers, G0 = m->cfg.pos_grid, NP = m->n_patches, N = m->n_tokens;
    const int K = m->patch_dim;
    CHECK_OR_DIE(!dhidden, "a hidden-state gradient given to a DINOv2 tower (its gradients start at the pooled output)");
    CHECK_OR_DIE(a->dtok, "DINOv2 backward needs activations laid out for backward");
    if (dpooled) {  // pooled = the class token's row of the final LayerNorm
        be->zero(a->dpost, (size_t)B * N * C * be->act_bytes);
        be->copy_rows(a->dpost, a->idx_cls, dpooled, NULL, B, C);
        be->layernorm_backward(a->enc.dres, m->g.post_w, m->g.post_b, a->dpost, a->enc.res[n_layers], m->w.post_w,
                               a->post_mean, a->post_rstd, B * N, C);
    }
    clip_encoder_backward(&m->enc, &a->enc, B, N, B * N, n_layers);
    // x = scatter(patch embeddings) + tok broadcast over the images
    be->zero(a->dtok, (size_t)N * C * be->act_bytes);
    be->add_broadcast_backward(a->dtok, a->enc.dres, B, (size_t)N * C);
    if (m->g.cls) be->add(m->g.cls, m->g.cls, a->dtok, C);
    if (m->g.pos) {
        be->add(m->g.pos, m->g.pos, a->dtok, C);
        void *dtable = act_at(be, m->g.pos, C);
        const void *dpatch_pos = act_at(be, a->dtok, (size_t)(1 + R) * C);
        if (!m->pos_map) be->add(dtable, dtable, dpatch_pos, (size_t)NP * C);
        else be->matmul_backward(NULL, dtable, NULL, m->pos_map, dpatch_pos, NULL, NP, C, G0 * G0);  // += pos_map^T @ d
    }
    if (R && m->g.registers) be->add(m->g.registers, m->g.registers, act_at(be, a->dtok, C), (size_t)R * C);
    if (m->g.patch_w) {
        be->copy_rows(a->dpe, NULL, a->enc.dres, a->idx_patch, B * NP, C);
        be->matmul_backward(NULL, m->g.patch_w, m->g.patch_b, a->dpe, a->patches, m->w.patch_w, B * NP, K, C);
    }
}

void vit_forward(const ViT *m, ViTActs *a, const void *pixels, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim, S = m->cfg.image_size;
    CHECK_OR_DIE(B <= a->cap_images, "vision batch of %d images exceeds the %d laid out", B, a->cap_images);
    be->im2col(a->patches, pixels, B, m->cfg.channels, S, S, m->cfg.patch_size);     // (B*NP, K)
    if (m->cfg.kind == VISION_DINOV2) {  // [class, registers, patches] + tok, no pre-LayerNorm
        void *x = a->enc.res[0];
        dinov2_tokens_forward(m, a->tok);                                                    // (N, C)
        be->matmul_forward(a->pe, a->patches, m->w.patch_w, m->w.patch_b, B * NP, K, C);      // (B*NP, C)
        be->zero(x, (size_t)B * N * C * be->act_bytes);
        be->copy_rows(x, a->idx_patch, a->pe, NULL, B * NP, C);                              // patch rows of each image
        be->add_broadcast_forward(x, a->tok, B, (size_t)N * C);                              // (B*N, C)
        clip_encoder_forward(&m->enc, &a->enc, B, N, B * N, n_layers);
        be->layernorm_forward(a->post, a->post_mean, a->post_rstd, a->enc.res[n_layers], m->w.post_w, m->w.post_b, B * N, C,
                              m->cfg.eps);                                                   // last_hidden_state
        be->copy_rows(a->pooled, NULL, a->post, a->idx_cls, B, C);                            // (B, C) the class token
        return;
    }
    if (m->cfg.kind == VISION_SIGLIP) {  // the patches are the tokens: embedded in place, no pre-LayerNorm
        be->matmul_forward(a->enc.res[0], a->patches, m->w.patch_w, m->w.patch_b, B * NP, K, C);  // (B*N, C)
        be->add_broadcast_forward(a->enc.res[0], m->w.pos, B, (size_t)N * C);
        clip_encoder_forward(&m->enc, &a->enc, B, N, B * N, n_layers);
        if (m->with_post_ln) siglip_outputs_forward(m, a, a->enc.res[n_layers], B);
        return;
    }
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

void vit_backward(const ViT *m, ViTActs *a, const void *dpooled, const void *dhidden, int B, int n_layers) {
    const Backend *be = m->enc.be;
    const int C = m->cfg.hidden, NP = m->n_patches, N = m->n_tokens, K = m->patch_dim;
    if (m->cfg.kind == VISION_DINOV2) {
        dinov2_tower_backward(m, a, dpooled, dhidden, B, n_layers);
        return;
    }
    if (m->cfg.kind == VISION_SIGLIP) {
        if (dpooled || dhidden) {
            CHECK_OR_DIE(m->with_post_ln, "output gradients given to a tower without its outputs");
            siglip_outputs_backward(m, a, dpooled, dhidden, B, n_layers);
        }
        clip_encoder_backward(&m->enc, &a->enc, B, N, B * N, n_layers);
        if (m->g.pos) be->add_broadcast_backward(m->g.pos, a->enc.dres, B, (size_t)N * C);
        if (m->g.patch_w)
            be->matmul_backward(NULL, m->g.patch_w, m->g.patch_b, a->enc.dres, a->patches, m->w.patch_w, B * NP, K, C);
        return;
    }
    CHECK_OR_DIE(!dhidden, "a hidden-state gradient given to a CLIP tower (its outputs are the pooled class token)");
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
