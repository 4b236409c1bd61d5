#include "clipscore.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/records.h"
#include "../util/common.h"

// need_text: the text tower's tokenizer is loaded (image-only use goes without)
static void clipscore_open_for(ClipScorer *s, const char *dir, const char *tokenizer, const Backend *be, int batch,
                               int need_text) {
    memset(s, 0, sizeof(*s));
    if (batch < 1) fatal("CLIP scorer: the batch must be at least 1");
    clip_model_load(&s->m, be, dir, 0);
    s->S = s->m.cfg.vision.image_size;
    s->T = s->m.cfg.text.max_positions;
    s->P = s->m.cfg.projection_dim;
    s->batch = batch;
    s->pcfg = records_tower_preprocess_config(dir, &s->m.cfg.vision);
    if (need_text) {
        char *tp = tokenizer ? xstrdup(tokenizer) : path_join(dir, "bpe_simple_vocab_16e6.txt.gz");
        if (!file_exists(tp)) fatal("CLIP scorer: tokenizer %s not found (give the CLIP BPE file bpe_simple_vocab_16e6.txt.gz)", tp);
        s->tok = cliptok_load(tp);
        free(tp);
    }
    clip_acts_init(&s->a, &s->m, batch, batch, s->T, 0);
}

void clipscore_open(ClipScorer *s, const char *dir, const char *tokenizer, const Backend *be, int batch) {
    clipscore_open_for(s, dir, tokenizer, be, batch, 1);
}

void clipscore_close(ClipScorer *s) {
    clip_acts_free(&s->a);
    if (s->tok) cliptok_free(s->tok);
    clip_model_free(&s->m);
}

// rows (n, P) scaled to unit length in place
static void normalize_rows(float *out, int n, int P) {
    for (int i = 0; i < n; i++) {
        float *r = out + (size_t)i * P;
        double ss = 0;
        for (int k = 0; k < P; k++) ss += (double)r[k] * r[k];
        const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int k = 0; k < P; k++) r[k] *= inv;
    }
}

// rows (n, P) of the backend's embeddings, scaled to unit length in place on the host
static void download_normalized(const ClipScorer *s, const void *emb, int n, float *out) {
    s->m.be->download_act(out, emb, (size_t)n * s->P);
    normalize_rows(out, n, s->P);
}

// Decodes and preprocesses n image files into px (n, 3, S, S); `tower` names the encoder in messages
static void load_pixels(const PreprocessConfig *pcfg, const char *const *paths, int n, int S, const char *tower, float *px) {
    const size_t px_n = (size_t)3 * S * S;
    for (int i = 0; i < n; i++) {
        char err[512];
        Image *im = image_load(paths[i], pcfg->alpha, err, sizeof(err));
        if (!im) fatal("%s", err);
        int h, w;
        float *p = preprocess_image(pcfg, im, &h, &w);
        image_free(im);
        if (h != S || w != S) fatal("%s: preprocesses to %dx%d, the %s tower expects %dx%d", paths[i], w, h, tower, S, S);
        memcpy(px + px_n * i, p, sizeof(float) * px_n);
        free(p);
    }
}

void clipscore_images(ClipScorer *s, const char *const *paths, int n, float *out) {
    float *px = xmalloc(sizeof(float) * (size_t)3 * s->S * s->S * s->batch);
    for (int i0 = 0; i0 < n; i0 += s->batch) {
        const int b = n - i0 < s->batch ? n - i0 : s->batch;
        load_pixels(&s->pcfg, paths + i0, b, s->S, "CLIP", px);
        clip_model_forward(&s->m, &s->a, px, b, NULL, 0, s->T);
        download_normalized(s, s->a.img_emb, b, out + (size_t)i0 * s->P);
    }
    free(px);
}

void clipscore_texts(ClipScorer *s, const char *const *texts, int n, float *out) {
    CHECK_OR_DIE(s->tok, "clipscore_texts: the scorer was opened for images only");
    int *ids = xmalloc(sizeof(int) * s->T * s->batch);
    const int pad = s->m.cfg.text.eos_token_id;  // pooling takes the first end-of-text: pad with it, as HF's repos do
    for (int i0 = 0; i0 < n; i0 += s->batch) {
        const int b = n - i0 < s->batch ? n - i0 : s->batch;
        for (int i = 0; i < b; i++) {
            int *row = ids + (size_t)s->T * i;
            cliptok_tokenize(s->tok, texts[i0 + i], strlen(texts[i0 + i]), s->T, pad, row);
            for (int t = 0; t < s->T; t++)
                if (row[t] >= s->m.cfg.text.vocab)
                    fatal("CLIP scorer: token %d of \"%.60s\" is outside the text tower's vocabulary (%d): the model needs "
                          "OpenAI's BPE vocabulary", row[t], texts[i0 + i], s->m.cfg.text.vocab);
        }
        clip_model_forward(&s->m, &s->a, NULL, 0, ids, b, s->T);
        download_normalized(s, s->a.txt_emb, b, out + (size_t)i0 * s->P);
    }
    free(ids);
}

double clipscore_cosine(const float *a, const float *b, int P) {
    double d = 0;
    for (int k = 0; k < P; k++) d += (double)a[k] * b[k];
    return d;
}

// The side the folder's processor makes its images: the crop (CLIP-style) or the square resize (SigLIP-style)
static int processed_side(const PreprocessConfig *c, const char *dir) {
    int h, w;
    preprocess_output_size(c, 64, 64, &h, &w);  // square in, so any non-square output is the config's own
    if (h != w) fatal("%s/preprocessor_config.json: makes %dx%d images; the encoders here take squares", dir, w, h);
    return h;
}

void image_encoder_open(ImageEncoder *e, const char *dir, const Backend *be, int batch) {
    memset(e, 0, sizeof(*e));
    if (batch < 1) fatal("image encoder: the batch must be at least 1");
    e->batch = batch;
    char *mt = config_model_type(dir);
    if (!strcmp(mt, "clip")) {
        e->kind = IMAGE_ENCODER_CLIP, e->name = "CLIP";
        clipscore_open_for(&e->clip, dir, NULL, be, batch, 0);
        e->pcfg = e->clip.pcfg, e->S = e->clip.S, e->P = e->clip.P;
    } else if (!strcmp(mt, "siglip") || !strcmp(mt, "siglip_vision_model")) {
        e->kind = IMAGE_ENCODER_SIGLIP, e->name = "SigLIP";
        siglip_vision_load(&e->siglip, be, dir, 0);
        if (!e->siglip.vision.has_head)
            fatal("%s: a SigLIP model without its attention-pooling head (vision_use_head false) has no image embedding", dir);
        e->pcfg = records_tower_preprocess_config(dir, &e->siglip.cfg);
        e->S = e->siglip.cfg.image_size, e->P = e->siglip.cfg.hidden;
        const int side = processed_side(&e->pcfg, dir);
        if (side != e->S) fatal("%s: preprocessor_config.json makes %d px images, the SigLIP tower takes %d", dir, side, e->S);
    } else if (!strcmp(mt, "dinov2") || !strcmp(mt, "dinov2_with_registers")) {
        e->kind = IMAGE_ENCODER_DINOV2, e->name = "DINOv2";
        VisionConfig vc;
        dinov2_config_load(&vc, dir);
        e->pcfg = records_tower_preprocess_config(dir, &vc);  // without a file: CLIP-style at the config's size
        e->S = processed_side(&e->pcfg, dir);
        dinov2_load(&e->dino, be, dir, e->S, 0);  // the positions interpolated to the processor's crop (224 of 518)
        e->P = e->dino.cfg.hidden;
    } else {
        fatal("%s/config.json: model_type '%s' is not an image encoder here (clip, siglip, siglip_vision_model, dinov2, "
              "dinov2_with_registers)", dir, mt);
    }
    free(mt);
}

void image_encoder_close(ImageEncoder *e) {
    if (e->kind == IMAGE_ENCODER_CLIP) clipscore_close(&e->clip);
    else if (e->kind == IMAGE_ENCODER_SIGLIP) siglip_vision_free(&e->siglip);
    else dinov2_free(&e->dino);
}

void image_encoder_images(ImageEncoder *e, const char *const *paths, int n, float *out) {
    if (e->kind == IMAGE_ENCODER_CLIP) {
        clipscore_images(&e->clip, paths, n, out);
        return;
    }
    float *px = xmalloc(sizeof(float) * (size_t)3 * e->S * e->S * e->batch);
    for (int i0 = 0; i0 < n; i0 += e->batch) {
        const int b = n - i0 < e->batch ? n - i0 : e->batch;
        load_pixels(&e->pcfg, paths + i0, b, e->S, e->name, px);
        float *o = out + (size_t)i0 * e->P;
        if (e->kind == IMAGE_ENCODER_SIGLIP) siglip_vision_embed(&e->siglip, px, b, o);
        else dinov2_embed(&e->dino, px, b, o);
        normalize_rows(o, b, e->P);
    }
    free(px);
}
