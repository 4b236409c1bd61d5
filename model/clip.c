#include "clip.h"

#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "safetensors.h"

static void clip_bind_all(ClipModel *m, void *base, int grads) {
    ParamStore *ps = &m->ps;
    params_begin(ps);
    vit_bind(&m->vision, ps, base, grads, "vision_model");
    clip_text_bind(&m->text, ps, base, grads, "text_model");
    ClipHeadW *d = grads ? &m->g : &m->w;
    d->vproj = param(ps, base, "visual_projection.weight", 2, m->cfg.projection_dim, m->cfg.vision.hidden, 0, 0);
    d->tproj = param(ps, base, "text_projection.weight", 2, m->cfg.projection_dim, m->cfg.text.hidden, 0, 0);
    d->logit_scale = param(ps, base, "logit_scale", 0, 0, 0, 0, 0);
    params_end(ps);
}

void clip_model_init(ClipModel *m, const Backend *be, const ClipConfig *cfg, int with_grad) {
    memset(m, 0, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    vit_init(&m->vision, be, &cfg->vision, cfg->vision.layers, 1);
    clip_text_init(&m->text, be, &cfg->text);
    params_init(&m->ps, be, "clip");
    clip_bind_all(m, NULL, 0);  // registration
    params_alloc(&m->ps, with_grad);
    clip_bind_all(m, m->ps.data, 0);
    clip_bind_all(m, m->ps.grad, 1);
}

void clip_model_load(ClipModel *m, const Backend *be, const char *dir, int with_grad) {
    ClipConfig cfg;
    clip_config_load(&cfg, dir);
    clip_model_init(m, be, &cfg, with_grad);
    SafeTensors *st = st_open_or_die(dir);
    params_load(&m->ps, st, NULL);
    st_close(st);
}

void clip_model_free(ClipModel *m) {
    vit_free(&m->vision);
    clip_text_free(&m->text);
    params_free(&m->ps);
}

void clip_acts_init(ClipActs *a, const ClipModel *m, int cap_images, int cap_texts, int cap_len, int backward) {
    memset(a, 0, sizeof(*a));
    a->arena = arena_new(m->be);
    a->cap_images = cap_images;
    a->cap_texts = cap_texts;
    a->cap_len = cap_len;
    const int S = m->cfg.vision.image_size, P = m->cfg.projection_dim;
    for (int pass = 0; pass < 2; pass++) {
        Arena *ar = &a->arena;
        int bi = cap_images ? cap_images : 1, bt = cap_texts ? cap_texts : 1;
        vit_acts_layout(&a->v, &m->vision, bi, backward, backward, ar);
        clip_text_acts_layout(&a->t, &m->text, bt, cap_len ? cap_len : 1, backward, ar);
        a->pixels = arena_act(ar, (size_t)bi * 3 * S * S);
        a->img_emb = arena_act(ar, (size_t)bi * P);
        a->txt_emb = arena_act(ar, (size_t)bt * P);
        if (backward) {
            a->dimg_emb = arena_act(ar, (size_t)bi * P);
            a->dtxt_emb = arena_act(ar, (size_t)bt * P);
            a->dvpooled = arena_act(ar, (size_t)bi * m->cfg.vision.hidden);
            a->dtpooled = arena_act(ar, (size_t)bt * m->cfg.text.hidden);
        }
        if (pass == 0) arena_commit(ar);
    }
}

void clip_acts_free(ClipActs *a) {
    vit_acts_free(&a->v);
    clip_text_acts_free(&a->t);
    arena_free(&a->arena);
}

void clip_model_forward(const ClipModel *m, ClipActs *a, const float *pixels, int Bi, const int *ids, int Bt, int T) {
    const Backend *be = m->be;
    const int S = m->cfg.vision.image_size, P = m->cfg.projection_dim;
    if (Bi > 0) {
        be->upload_act(a->pixels, pixels, (size_t)Bi * 3 * S * S);
        vit_forward(&m->vision, &a->v, a->pixels, Bi, m->cfg.vision.layers);
        be->matmul_forward(a->img_emb, a->v.pooled, m->w.vproj, NULL, Bi, m->cfg.vision.hidden, P);
    }
    if (Bt > 0) {
        clip_text_forward(&m->text, &a->t, ids, Bt, T);
        be->matmul_forward(a->txt_emb, a->t.pooled, m->w.tproj, NULL, Bt, m->cfg.text.hidden, P);
    }
}

void clip_model_backward(const ClipModel *m, ClipActs *a, const float *dimg, int Bi, const float *dtxt, int Bt, int T,
                         float dlogit_scale) {
    const Backend *be = m->be;
    const int P = m->cfg.projection_dim, Cv = m->cfg.vision.hidden, Ct = m->cfg.text.hidden;
    if (Bi > 0 && dimg) {
        be->upload_act(a->dimg_emb, dimg, (size_t)Bi * P);
        be->matmul_backward(a->dvpooled, m->g.vproj, NULL, a->dimg_emb, a->v.pooled, m->w.vproj, Bi, Cv, P);
        be->zero(a->v.enc.dres, (size_t)Bi * m->vision.n_tokens * Cv * be->act_bytes);
        vit_backward(&m->vision, &a->v, a->dvpooled, NULL, Bi, m->cfg.vision.layers);
    }
    if (Bt > 0 && dtxt) {
        be->upload_act(a->dtxt_emb, dtxt, (size_t)Bt * P);
        be->matmul_backward(a->dtpooled, m->g.tproj, NULL, a->dtxt_emb, a->t.pooled, m->w.tproj, Bt, Ct, P);
        clip_text_backward(&m->text, &a->t, a->dtpooled, Bt, T);
    }
    if (m->g.logit_scale) {  // a scalar: read, add, write back
        float g;
        be->download_act(&g, m->g.logit_scale, 1);
        g += dlogit_scale;
        be->upload_act(m->g.logit_scale, &g, 1);
    }
}

float clip_model_logit_scale(const ClipModel *m) {
    float s;
    m->be->download_act(&s, m->w.logit_scale, 1);
    return s;
}
