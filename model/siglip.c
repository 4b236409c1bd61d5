#include "siglip.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "safetensors.h"

static const char *PREFIX = "vision_model";

int siglip_name_candidates(const char *name, char out[][256], int max) {
    int n = 0;
    snprintf(out[n++], 256, "%s", name);
    const size_t k = strlen(PREFIX) + 1;
    if (n < max && !strncmp(name, "vision_model.", k)) snprintf(out[n++], 256, "%s", name + k);  // transformers 5
    return n;
}

static void bind_all(SiglipVision *m, void *base, int grads) {
    params_begin(&m->ps);
    vit_bind(&m->vision, &m->ps, base, grads, PREFIX);
    params_end(&m->ps);
}

void siglip_vision_init(SiglipVision *m, const Backend *be, const VisionConfig *cfg, int with_grad) {
    CHECK_OR_DIE(cfg->kind == VISION_SIGLIP, "siglip_vision_init: not a SigLIP config");
    memset(m, 0, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    vit_init(&m->vision, be, cfg, cfg->layers, 1);
    params_init(&m->ps, be, "siglip");
    bind_all(m, NULL, 0);
    params_alloc(&m->ps, with_grad);
    bind_all(m, m->ps.data, 0);
    bind_all(m, m->ps.grad, 1);
}

void siglip_vision_load(SiglipVision *m, const Backend *be, const char *dir, int with_grad) {
    VisionConfig cfg;
    siglip_vision_config_load(&cfg, dir);
    siglip_vision_init(m, be, &cfg, with_grad);
    SafeTensors *st = st_open_or_die(dir);
    params_load(&m->ps, st, siglip_name_candidates);
    st_close(st);
}

void siglip_vision_free(SiglipVision *m) {
    vit_free(&m->vision);
    params_free(&m->ps);
}

void siglip_vision_acts_init(SiglipVisionActs *a, const SiglipVision *m, int cap_images, int backward) {
    memset(a, 0, sizeof(*a));
    a->arena = arena_new(m->be);
    a->cap_images = cap_images;
    const int S = m->cfg.image_size, C = m->cfg.hidden, N = m->vision.n_tokens;
    for (int pass = 0; pass < 2; pass++) {
        Arena *ar = &a->arena;
        vit_acts_layout(&a->v, &m->vision, cap_images, backward, backward, ar);
        a->pixels = arena_act(ar, (size_t)cap_images * 3 * S * S);
        if (backward) {
            a->dpooled = arena_act(ar, (size_t)cap_images * C);
            a->dhidden = arena_act(ar, (size_t)cap_images * N * C);
        }
        if (pass == 0) arena_commit(ar);
    }
}

void siglip_vision_acts_free(SiglipVisionActs *a) {
    vit_acts_free(&a->v);
    arena_free(&a->arena);
}

void siglip_vision_forward(const SiglipVision *m, SiglipVisionActs *a, const float *pixels, int B) {
    const int S = m->cfg.image_size;
    CHECK_OR_DIE(B >= 1 && B <= a->cap_images, "SigLIP batch of %d images, capacity %d", B, a->cap_images);
    m->be->upload_act(a->pixels, pixels, (size_t)B * 3 * S * S);
    vit_forward(&m->vision, &a->v, a->pixels, B, m->cfg.layers);
}

void siglip_vision_backward(const SiglipVision *m, SiglipVisionActs *a, const float *dpooled, const float *dhidden, int B) {
    const Backend *be = m->be;
    const int C = m->cfg.hidden, N = m->vision.n_tokens;
    CHECK_OR_DIE(a->dpooled, "siglip_vision_backward needs activations laid out for backward");
    if (dpooled) be->upload_act(a->dpooled, dpooled, (size_t)B * C);
    if (dhidden) be->upload_act(a->dhidden, dhidden, (size_t)B * N * C);
    be->zero(a->v.enc.dres, (size_t)B * N * C * be->act_bytes);  // only the outputs have gradients
    vit_backward(&m->vision, &a->v, dpooled ? a->dpooled : NULL, dhidden ? a->dhidden : NULL, B, m->cfg.layers);
}

void siglip_vision_embed(const SiglipVision *m, const float *pixels, int n, float *out) {
    CHECK_OR_DIE(m->vision.has_head, "SigLIP image embeddings need the pooling head (vision_use_head)");
    enum { CHUNK = 32 };
    const int S = m->cfg.image_size, C = m->cfg.hidden;
    SiglipVisionActs a;
    siglip_vision_acts_init(&a, m, n < CHUNK ? (n > 0 ? n : 1) : CHUNK, 0);
    for (int i = 0; i < n; i += CHUNK) {
        const int k = n - i < CHUNK ? n - i : CHUNK;
        siglip_vision_forward(m, &a, pixels + (size_t)i * 3 * S * S, k);
        m->be->download_act(out + (size_t)i * C, a.v.pooled, (size_t)k * C);
    }
    siglip_vision_acts_free(&a);
}
