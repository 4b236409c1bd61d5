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

static void bind_all(Dinov2 *m, void *base) {
    params_begin(&m->ps);
    vit_bind(&m->vision, &m->ps, base, 0, PREFIX);
    params_end(&m->ps);
}

void dinov2_interpolate_positions(const float *pos, int G0, int C, int G, int registers_model, float *out) {
    const float *patch = pos + C;  // row 0 is the class token's
    if (G == G0) {  // transformers uses the table as it is
        memcpy(out, patch, sizeof(float) * (size_t)G * G * C);
        return;
    }
    float *src = xmalloc(sizeof(float) * (size_t)C * G0 * G0), *dst = xmalloc(sizeof(float) * (size_t)C * G * G);
    for (int p = 0; p < G0 * G0; p++)  // (G0*G0, C) rows -> [C][G0][G0] planes, as the reshape and permute
        for (int c = 0; c < C; c++) src[(size_t)c * G0 * G0 + p] = patch[(size_t)p * C + c];
    if (registers_model) resample_planes(src, C, G0, G0, dst, G, G, RESAMPLE_BICUBIC);  // antialias=True
    else interpolate_bicubic_planes(src, C, G0, G0, dst, G, G);
    for (int p = 0; p < G * G; p++)
        for (int c = 0; c < C; c++) out[(size_t)p * C + c] = dst[(size_t)c * G * G + p];
    free(src);
    free(dst);
}

static float *download(const Backend *be, const void *p, size_t n) {
    float *h = xmalloc(sizeof(float) * n);
    be->download_act(h, p, n);
    return h;
}

// w (rows, cols) and b (rows) scaled row by row by s (rows): s * (W x + b) = (s W) x + s b
static void fold_scale(const Backend *be, void *w, void *b, const void *s, int rows, int cols) {
    float *hw = download(be, w, (size_t)rows * cols), *hb = download(be, b, rows), *hs = download(be, s, rows);
    for (int r = 0; r < rows; r++) {
        for (int c = 0; c < cols; c++) hw[(size_t)r * cols + c] *= hs[r];
        hb[r] *= hs[r];
    }
    be->upload_act(w, hw, (size_t)rows * cols);
    be->upload_act(b, hb, rows);
    free(hw); free(hb); free(hs);
}

// tok_base (N, C): [class token + position 0, the registers, the patch positions at this grid]
static void build_token_base(Dinov2 *m) {
    const Backend *be = m->be;
    const ViT *v = &m->vision;
    const int C = m->cfg.hidden, G0 = m->cfg.pos_grid, G = v->grid, R = m->cfg.n_registers, N = v->n_tokens;
    float *pos = download(be, v->w.pos, (size_t)(1 + G0 * G0) * C), *cls = download(be, v->w.cls, C);
    float *base = xcalloc((size_t)N * C, sizeof(float));
    for (int c = 0; c < C; c++) base[c] = cls[c] + pos[c];
    if (R) be->download_act(base + C, v->w.registers, (size_t)R * C);
    dinov2_interpolate_positions(pos, G0, C, G, m->cfg.pos_antialias, base + (size_t)(1 + R) * C);
    m->vision.w.tok_base = be->malloc((size_t)N * C * be->act_bytes);
    be->upload_act(m->vision.w.tok_base, base, (size_t)N * C);
    free(pos); free(cls); free(base);
}

static void dinov2_setup(Dinov2 *m, const Backend *be, const VisionConfig *cfg) {
    CHECK_OR_DIE(cfg->kind == VISION_DINOV2, "dinov2: not a DINOv2 config");
    memset(m, 0, sizeof(*m));
    m->be = be;
    m->cfg = *cfg;
    vit_init(&m->vision, be, &m->cfg, m->cfg.layers, 1);
    params_init(&m->ps, be, "dinov2");
    bind_all(m, NULL);
    params_alloc(&m->ps, 0);
    bind_all(m, m->ps.data);
}

void dinov2_init(Dinov2 *m, const Backend *be, const VisionConfig *cfg) {
    dinov2_setup(m, be, cfg);
    build_token_base(m);
}

void dinov2_load(Dinov2 *m, const Backend *be, const char *dir, int image_size) {
    VisionConfig cfg;
    dinov2_config_load(&cfg, dir);
    if (image_size > 0) cfg.image_size = image_size;
    if (cfg.image_size < cfg.patch_size)
        fatal("%s: images of %d px are smaller than one %d px patch", dir, cfg.image_size, cfg.patch_size);
    dinov2_setup(m, be, &cfg);
    SafeTensors *st = st_open_or_die(dir);
    params_load(&m->ps, st, dinov2_name_candidates);
    st_close(st);
    const int C = m->cfg.hidden, F = m->cfg.intermediate;
    for (int l = 0; l < m->cfg.layers; l++) {
        const ClipLayerW *w = &m->vision.enc.w[l];
        fold_scale(be, w->o_w, w->o_b, m->vision.w.ls[2 * l], C, C);
        fold_scale(be, w->fc2_w, w->fc2_b, m->vision.w.ls[2 * l + 1], C, F);
    }
    build_token_base(m);
}

void dinov2_free(Dinov2 *m) {
    if (m->vision.w.tok_base) m->be->free(m->vision.w.tok_base);
    vit_free(&m->vision);
    params_free(&m->ps);
}

void dinov2_acts_init(Dinov2Acts *a, const Dinov2 *m, int cap_images) {
    memset(a, 0, sizeof(*a));
    a->arena = arena_new(m->be);
    a->cap_images = cap_images;
    const int S = m->cfg.image_size;
    for (int pass = 0; pass < 2; pass++) {
        vit_acts_layout(&a->v, &m->vision, cap_images, 0, 0, &a->arena);
        a->pixels = arena_act(&a->arena, (size_t)cap_images * 3 * S * S);
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

void dinov2_embed(const Dinov2 *m, const float *pixels, int n, float *out) {
    enum { CHUNK = 32 };
    const int S = m->cfg.image_size, C = m->cfg.hidden;
    Dinov2Acts a;
    dinov2_acts_init(&a, m, n < CHUNK ? (n > 0 ? n : 1) : CHUNK);
    for (int i = 0; i < n; i += CHUNK) {
        const int k = n - i < CHUNK ? n - i : CHUNK;
        dinov2_forward(m, &a, pixels + (size_t)i * 3 * S * S, k);
        m->be->download_act(out + (size_t)i * C, a.v.pooled, (size_t)k * C);
    }
    dinov2_acts_free(&a);
}
