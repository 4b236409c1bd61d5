#include "dinov2.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/preprocess.h"
#include "../util/common.h"
#include "safetensors.h"

static const char *PREFIX = "dinov2";

// The encoder layers are bound under CLIP's names (model/clip_encoder.c); DINOv2's files name them differently,
// and transformers 5 renamed the attention's (its conversion_mapping.py reads both)
static const char *const LAYER_NAMES[][3] = {  // ours, the Hub's, transformers 5's
    {"layer_norm1.", "norm1.", "norm1."},
    {"layer_norm2.", "norm2.", "norm2."},
    {"self_attn.q_proj.", "attention.attention.query.", "attention.q_proj."},
    {"self_attn.k_proj.", "attention.attention.key.", "attention.k_proj."},
    {"self_attn.v_proj.", "attention.attention.value.", "attention.v_proj."},
    {"self_attn.out_proj.", "attention.output.dense.", "attention.o_proj."},
    {"mlp.fc1.", "mlp.fc1.", "mlp.fc1."},
    {"mlp.fc2.", "mlp.fc2.", "mlp.fc2."},
    {"layer_scale1.", "layer_scale1.", "layer_scale1."},
    {"layer_scale2.", "layer_scale2.", "layer_scale2."},
};

int dinov2_name_candidates(const char *name, char out[][256], int max) {
    const size_t k = strlen(PREFIX) + 1;
    CHECK_OR_DIE(!strncmp(name, "dinov2.", k), "dinov2: unexpected tensor name %s", name);
    const char *rest = name + k;
    char forms[2][200];  // a tensor name is far shorter; room for the "dinov2." prefix below
    int nf = 1, layer, off = 0;
    snprintf(forms[0], sizeof(forms[0]), "%s", rest);
    if (sscanf(rest, "encoder.layers.%d.%n", &layer, &off) == 1 && off > 0) {
        const char *tail = rest + off;
        for (size_t i = 0; i < sizeof(LAYER_NAMES) / sizeof(LAYER_NAMES[0]); i++) {
            const size_t n = strlen(LAYER_NAMES[i][0]);
            if (strncmp(tail, LAYER_NAMES[i][0], n)) continue;
            for (int f = 0; f < 2; f++) snprintf(forms[f], sizeof(forms[f]), "encoder.layer.%d.%s%s", layer, LAYER_NAMES[i][1 + f], tail + n);
            nf = strcmp(forms[0], forms[1]) ? 2 : 1;
            break;
        }
    }
    int n = 0;
    for (int f = 0; f < nf && n < max; f++) snprintf(out[n++], 256, "%.200s", forms[f]);
    for (int f = 0; f < nf && n < max; f++) snprintf(out[n++], 256, "dinov2.%.200s", forms[f]);  // a classifier's file
    return n;
}

static void bind_all(Dinov2 *m, void *base, int grads) {
    params_begin(&m->ps);
    vit_bind(&m->vision, &m->ps, base, grads, PREFIX);
    params_end(&m->ps);
}

void dinov2_position_map(int G0, int G, int registers_model, float *map) {
    const int P0 = G0 * G0, P = G * G;
    // the interpolation is linear and the same for every channel: column q of the map is the interpolation of the
    // unit impulse at table position q (one plane at a time: P0 planes at once would be P0^2 floats)
    float *src = xcalloc(P0, sizeof(float)), *dst = xmalloc(sizeof(float) * P);
    for (int q = 0; q < P0; q++) {
        src[q] = 1;
        if (registers_model) resample_planes(src, 1, G0, G0, dst, G, G, RESAMPLE_BICUBIC);  // antialias=True
        else interpolate_bicubic_planes(src, 1, G0, G0, dst, G, G);
        src[q] = 0;
        for (int p = 0; p < P; p++) map[(size_t)p * P0 + q] = dst[p];
    }
    free(src);
    free(dst);
}

// pos_map when the images' grid is not the table's (vit.h)
static void build_position_map(Dinov2 *m) {
    const int G0 = m->cfg.pos_grid, G = m->vision.grid;
    if (G == G0) return;
    const size_t n = (size_t)G * G * G0 * G0;
    float *map = xmalloc(sizeof(float) * n);
    dinov2_position_map(G0, G, m->cfg.pos_antialias, map);
    m->vision.pos_map = m->be->malloc(n * m->be->act_bytes);
    m->be->upload_act(m->vision.pos_map, map, n);
    free(map);
}

void dinov2_init(Dinov2 *m, const Backend *be, const VisionConfig *cfg, int with_grad) {
    CHECK_OR_DIE(cfg->kind == VISION_DINOV2, "dinov2: not a DINOv2 config");
    memset(m, 0, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    vit_init(&m->vision, be, &m->cfg, m->cfg.layers, 1);
    params_init(&m->ps, be, "dinov2");
    bind_all(m, NULL, 0);
    params_alloc(&m->ps, with_grad);
    bind_all(m, m->ps.data, 0);
    bind_all(m, m->ps.grad, 1);
    build_position_map(m);
}

void dinov2_load(Dinov2 *m, const Backend *be, const char *dir, int image_size, int with_grad) {
    VisionConfig cfg;
    dinov2_config_load(&cfg, dir);
    if (image_size > 0) cfg.image_size = image_size;
    if (cfg.image_size < cfg.patch_size)
        fatal("%s: images of %d px are smaller than one %d px patch", dir, cfg.image_size, cfg.patch_size);
    dinov2_init(m, be, &cfg, with_grad);
    SafeTensors *st = st_open_or_die(dir);
    params_load(&m->ps, st, dinov2_name_candidates);
    st_close(st);
}

void dinov2_free(Dinov2 *m) {
    if (m->vision.pos_map) m->be->free(m->vision.pos_map);
    vit_free(&m->vision);
    params_free(&m->ps);
}

void dinov2_acts_init(Dinov2Acts *a, const Dinov2 *m, int cap_images, int backward) {
    memset(a, 0, sizeof(*a));
    a->arena = arena_new(m->be);
    a->cap_images = cap_images;
    const int S = m->cfg.image_size;
    for (int pass = 0; pass < 2; pass++) {
        vit_acts_layout(&a->v, &m->vision, cap_images, backward, backward, &a->arena);
        a->pixels = arena_act(&a->arena, (size_t)cap_images * 3 * S * S);
        if (backward) a->dpooled = arena_act(&a->arena, (size_t)cap_images * m->cfg.hidden);
        if (pass == 0) arena_commit(&a->arena);
    }
}

void dinov2_acts_free(Dinov2Acts *a) {
    vit_acts_free(&a->v);
    arena_free(&a->arena);
}

void dinov2_forward(const Dinov2 *m, Dinov2Acts *a, const float *pixels, int B) {
    const int S = m->cfg.image_size;
    CHECK_OR_DIE(B >= 1 && B <= a->cap_images, "DINOv2 batch of %d images, capacity %d", B, a->cap_images);
    m->be->upload_act(a->pixels, pixels, (size_t)B * 3 * S * S);
    vit_forward(&m->vision, &a->v, a->pixels, B, m->cfg.layers);
}

void dinov2_backward(const Dinov2 *m, Dinov2Acts *a, const float *dpooled, int B) {
    const Backend *be = m->be;
    const int C = m->cfg.hidden, N = m->vision.n_tokens;
    CHECK_OR_DIE(a->dpooled, "dinov2_backward needs activations laid out for backward");
    CHECK_OR_DIE(m->ps.grad, "dinov2_backward needs a model loaded with its gradients");
    be->upload_act(a->dpooled, dpooled, (size_t)B * C);
    be->zero(a->v.enc.dres, (size_t)B * N * C * be->act_bytes);  // only the pooled output has a gradient
    vit_backward(&m->vision, &a->v, a->dpooled, NULL, B, m->cfg.layers);
}

void dinov2_embed(const Dinov2 *m, const float *pixels, int n, float *out) {
    enum { CHUNK = 32 };
    const int S = m->cfg.image_size, C = m->cfg.hidden;
    Dinov2Acts a;
    dinov2_acts_init(&a, m, n < CHUNK ? (n > 0 ? n : 1) : CHUNK, 0);
    for (int i = 0; i < n; i += CHUNK) {
        const int k = n - i < CHUNK ? n - i : CHUNK;
        dinov2_forward(m, &a, pixels + (size_t)i * 3 * S * S, k);
        m->be->download_act(out + (size_t)i * C, a.v.pooled, (size_t)k * C);
    }
    dinov2_acts_free(&a);
}
