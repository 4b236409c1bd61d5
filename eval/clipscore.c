#include "clipscore.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/records.h"
#include "../util/common.h"

void clipscore_open(ClipScorer *s, const char *dir, const char *tokenizer, const Backend *be, int batch) {
    memset(s, 0, sizeof(*s));
    if (batch < 1) fatal("CLIP scorer: the batch must be at least 1");
    clip_model_load(&s->m, be, dir, 0);
    s->S = s->m.cfg.vision.image_size;
    s->T = s->m.cfg.text.max_positions;
    s->P = s->m.cfg.projection_dim;
    s->batch = batch;
    s->pcfg = records_tower_preprocess_config(dir, &s->m.cfg.vision);
    char *tp = tokenizer ? xstrdup(tokenizer) : path_join(dir, "bpe_simple_vocab_16e6.txt.gz");
    if (!file_exists(tp)) fatal("CLIP scorer: tokenizer %s not found (give the CLIP BPE file bpe_simple_vocab_16e6.txt.gz)", tp);
    s->tok = cliptok_load(tp);
    free(tp);
    clip_acts_init(&s->a, &s->m, batch, batch, s->T, 0);
}

void clipscore_close(ClipScorer *s) {
    clip_acts_free(&s->a);
    cliptok_free(s->tok);
    clip_model_free(&s->m);
}

// rows (n, P) of the backend's embeddings, scaled to unit length in place on the host
static void download_normalized(const ClipScorer *s, const void *emb, int n, float *out) {
    s->m.be->download_act(out, emb, (size_t)n * s->P);
    for (int i = 0; i < n; i++) {
        float *r = out + (size_t)i * s->P;
        double ss = 0;
        for (int k = 0; k < s->P; k++) ss += (double)r[k] * r[k];
        const float inv = ss > 0 ? (float)(1.0 / sqrt(ss)) : 0.0f;
        for (int k = 0; k < s->P; k++) r[k] *= inv;
    }
}

void clipscore_images(ClipScorer *s, const char *const *paths, int n, float *out) {
    const size_t px_n = (size_t)3 * s->S * s->S;
    float *px = xmalloc(sizeof(float) * px_n * s->batch);
    for (int i0 = 0; i0 < n; i0 += s->batch) {
        const int b = n - i0 < s->batch ? n - i0 : s->batch;
        for (int i = 0; i < b; i++) {
            char err[512];
            Image *im = image_load(paths[i0 + i], s->pcfg.alpha, err, sizeof(err));
            if (!im) fatal("%s", err);
            int h, w;
            float *p = preprocess_image(&s->pcfg, im, &h, &w);
            image_free(im);
            if (h != s->S || w != s->S) fatal("%s: preprocesses to %dx%d, the CLIP tower expects %d", paths[i0 + i], w, h, s->S);
            memcpy(px + px_n * i, p, sizeof(float) * px_n);
            free(p);
        }
        clip_model_forward(&s->m, &s->a, px, b, NULL, 0, s->T);
        download_normalized(s, s->a.img_emb, b, out + (size_t)i0 * s->P);
    }
    free(px);
}

void clipscore_texts(ClipScorer *s, const char *const *texts, int n, float *out) {
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
