// vlm train --recipe clip: CLIP contrastive training of both towers (symmetric InfoNCE with a learnable
// logit scale, train/losses.h), for the tiny CLIP of the miniature study and for fine-tuning CLIP models.
// This file is the CLIP side of the one training loop (train/run.h): the data, the model and its step.
//
// Data: JSON Lines {"image": path, "caption": text} (or "caption_ids": token ids ending with the
// end-of-text id). Captions are tokenized with OpenAI's CLIP BPE (--tokenizer FILE.txt.gz), truncated
// to the text tower's context. Each batch pairs B images with their B captions; every other caption of
// the batch is a negative.
#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/image.h"
#include "../data/records.h"
#include "../data/tokenizer_clip.h"
#include "../model/clip.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "../util/jsonl.h"
#include "losses.h"
#include "run.h"

typedef struct {
    int n, S, T;              // pairs, image size, caption length (padded)
    float *pixels;            // (n, 3, S, S)
    int *ids;                 // (n, T)
    unsigned long long hash;  // of the ids and (a sample of) the pixels: checked at --resume
} ClipData;

static void clip_data_load(ClipData *d, const char *path, const ClipModel *m, const PreprocessConfig *pcfg,
                           const char *tokenizer, const char *images_dir, int skip_bad) {
    memset(d, 0, sizeof(*d));
    const int S = m->cfg.vision.image_size, T = m->cfg.text.max_positions, V = m->cfg.text.vocab;
    const int eos = m->cfg.text.eos_token_id;
    d->S = S;
    d->T = T;
    char *dir = images_dir ? xstrdup(images_dir) : path_dirname(path);
    ClipTokenizer *tok = NULL;
    JsonlReader jr;
    jsonl_open(&jr, path);
    int cap = 0, n_bad = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, skip_bad, &n_bad))) {
        const cJSON *img = cJSON_GetObjectItemCaseSensitive(j, "image"), *cap_text = cJSON_GetObjectItemCaseSensitive(j, "caption");
        const cJSON *cap_ids = cJSON_GetObjectItemCaseSensitive(j, "caption_ids");
        char why[600] = "";
        if (!cJSON_IsString(img)) snprintf(why, sizeof(why), "needs \"image\" (a path)");
        else if (!cJSON_IsString(cap_text) && !cJSON_IsArray(cap_ids)) snprintf(why, sizeof(why), "needs \"caption\" (text) or \"caption_ids\"");
        int *row = xcalloc(T, sizeof(int));
        if (!why[0] && cJSON_IsString(cap_text)) {
            if (!tok) {
                if (!tokenizer) fatal("%s:%d: text captions need the CLIP tokenizer (--tokenizer bpe_simple_vocab_16e6.txt.gz)", path, jr.line);
                tok = cliptok_load(tokenizer);
            }
            cliptok_tokenize(tok, cap_text->valuestring, strlen(cap_text->valuestring), T, 0, row);
        } else if (!why[0]) {
            int k = 0, seen_eos = 0;
            const cJSON *v;
            cJSON_ArrayForEach(v, cap_ids) {
                if (k == T) { snprintf(why, sizeof(why), "caption_ids is longer than the %d positions of the text tower", T); break; }
                if (!cJSON_IsNumber(v)) { snprintf(why, sizeof(why), "caption_ids must be integers"); break; }
                row[k] = (int)v->valuedouble;
                seen_eos |= row[k] == eos;
                k++;
            }
            if (!why[0] && !seen_eos) snprintf(why, sizeof(why), "caption_ids has no end-of-text id (%d)", eos);
        }
        for (int t = 0; t < T && !why[0]; t++)
            if (row[t] < 0 || row[t] >= V) snprintf(why, sizeof(why), "token id %d is outside the text vocabulary (%d)", row[t], V);
        float *px = NULL;
        if (!why[0]) {
            char err[512], *p = path_join(dir, img->valuestring);
            Image *im = image_load(p, pcfg->alpha, err, sizeof(err));
            free(p);
            int h, w;
            if (!im) snprintf(why, sizeof(why), "%s", err);
            else {
                px = preprocess_image(pcfg, im, &h, &w);
                image_free(im);
                if (h != S || w != S) { snprintf(why, sizeof(why), "the image preprocesses to %dx%d, the tower expects %d", w, h, S); free(px); px = NULL; }
            }
        }
        if (why[0]) {
            if (!skip_bad) fatal("%s:%d: %s", path, jr.line, why);
            fprintf(stderr, "vlm: warning: %s:%d: %s, skipped\n", path, jr.line, why);
            n_bad++;
            free(row);
            cJSON_Delete(j);
            continue;
        }
        if (d->n == cap) {
            cap = cap ? 2 * cap : 256;
            d->pixels = xrealloc(d->pixels, sizeof(float) * (size_t)cap * 3 * S * S);
            d->ids = xrealloc(d->ids, sizeof(int) * (size_t)cap * T);
        }
        memcpy(d->pixels + (size_t)d->n * 3 * S * S, px, sizeof(float) * 3 * S * S);
        memcpy(d->ids + (size_t)d->n * T, row, sizeof(int) * T);
        d->n++;
        free(px);
        free(row);
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    if (tok) cliptok_free(tok);
    free(dir);
    if (d->n < 2) fatal("%s: contrastive training needs at least 2 image-caption pairs, found %d", path, d->n);
    if (n_bad) fprintf(stderr, "vlm: %s: %d records skipped\n", path, n_bad);
    unsigned long long h = 1469598103934665603ULL;
    const unsigned char *b = (const unsigned char *)d->ids;
    for (size_t i = 0; i < sizeof(int) * (size_t)d->n * T; i++) { h ^= b[i]; h *= 1099511628211ULL; }
    b = (const unsigned char *)d->pixels;
    for (size_t i = 0; i < sizeof(float) * (size_t)d->n * 3 * S * S; i += 7) { h ^= b[i]; h *= 1099511628211ULL; }
    d->hash = h;
}

// The caption length a batch needs: up to the last end-of-text token of its rows.
static int batch_len(const ClipData *d, const int *idx, int B, int eos) {
    int T = 1;
    for (int b = 0; b < B; b++)
        for (int t = 0; t < d->T; t++)
            if (d->ids[(size_t)idx[b] * d->T + t] == eos) { if (t + 1 > T) T = t + 1; break; }
    return T;
}

static double clip_step_loss(const ClipModel *m, ClipActs *a, const ClipData *d, const int *idx, int B, int backward,
                             double scale, ClipLossOut *out) {
    const int S = d->S, P = m->cfg.projection_dim, T = batch_len(d, idx, B, m->cfg.text.eos_token_id);
    float *px = xmalloc(sizeof(float) * (size_t)B * 3 * S * S), *img = xmalloc(sizeof(float) * B * P), *txt = xmalloc(sizeof(float) * B * P);
    int *ids = xmalloc(sizeof(int) * B * T);
    for (int b = 0; b < B; b++) {
        memcpy(px + (size_t)b * 3 * S * S, d->pixels + (size_t)idx[b] * 3 * S * S, sizeof(float) * 3 * S * S);
        memcpy(ids + b * T, d->ids + (size_t)idx[b] * d->T, sizeof(int) * T);
    }
    clip_model_forward(m, a, px, B, ids, B, T);
    m->be->download_act(img, a->img_emb, (size_t)B * P);
    m->be->download_act(txt, a->txt_emb, (size_t)B * P);
    float *dimg = xmalloc(sizeof(float) * B * P), *dtxt = xmalloc(sizeof(float) * B * P);
    clip_contrastive_loss(img, txt, B, P, clip_model_logit_scale(m), out, dimg, dtxt);
    if (backward) {
        for (int i = 0; i < B * P; i++) { dimg[i] *= (float)scale; dtxt[i] *= (float)scale; }
        clip_model_backward(m, a, dimg, B, dtxt, B, T, (float)(out->dlogit_scale * scale));
    }
    free(px); free(img); free(txt); free(ids); free(dimg); free(dtxt);
    return out->loss;
}

typedef struct {
    const TrainConfig *c;
    ClipModel m;
    ClipData data, val;
    ClipActs acts;
    int B;     // pairs per micro-batch: --batch, at most the pairs of the data
    int *idx;  // (B) pairs of an evaluation or probe batch
} ClipRun;

static double clip_micro_step(TrainModel *M, const int *idx, int n, int step, int micro, double scale, StepStats *st) {
    ClipRun *R = M->self;
    ClipLossOut out;
    double l = clip_step_loss(&R->m, &R->acts, &R->data, idx, n, 1, scale, &out);
    st->loss += l * scale;
    st->metric[0] += scale * out.acc_i2t;
    st->metric[1] += scale * out.acc_t2i;
    st->n_examples += n;
    st->n_items += n;
    clip_loss_out_free(&out);
    return l;
}

static double clip_probe_loss(TrainModel *M) {
    ClipRun *R = M->self;
    for (int i = 0; i < R->B; i++) R->idx[i] = i;
    ClipLossOut out;
    double l = clip_step_loss(&R->m, &R->acts, &R->data, R->idx, R->B, 0, 1, &out);
    clip_loss_out_free(&out);
    return l;
}

// Held-out retrieval in batches of B (the pairs past the last full batch are left out: a smaller batch has
// fewer negatives, and its loss would not compare).
static void clip_evaluate(TrainModel *M, StepStats *st) {
    ClipRun *R = M->self;
    memset(st, 0, sizeof(*st));
    double sum = 0, ai = 0, at = 0;
    int nb = 0;
    for (int s0 = 0; s0 + R->B <= R->val.n; s0 += R->B, nb++) {
        for (int i = 0; i < R->B; i++) R->idx[i] = s0 + i;
        ClipLossOut out;
        sum += clip_step_loss(&R->m, &R->acts, &R->val, R->idx, R->B, 0, 1, &out);
        ai += out.acc_i2t;
        at += out.acc_t2i;
        clip_loss_out_free(&out);
    }
    if (!nb) return;
    st->loss = sum / nb;
    st->metric[0] = ai / nb;
    st->metric[1] = at / nb;
    st->n_examples = nb * R->B;
}

static void clip_log_extra(TrainModel *M, cJSON *rec) {
    ClipRun *R = M->self;
    cJSON_AddNumberToObject(rec, "logit_scale", clip_model_logit_scale(&R->m));
}

static void clip_close(TrainModel *M) {
    ClipRun *R = M->self;
    free(R->idx);
    clip_acts_free(&R->acts);
    free(R->data.pixels); free(R->data.ids);
    if (R->c->val_path) { free(R->val.pixels); free(R->val.ids); }
    clip_model_free(&R->m);
    free(R);
}

void clip_train_open(TrainModel *M, const TrainConfig *c, const Backend *be) {
    ClipRun *R = xcalloc(1, sizeof(ClipRun));
    R->c = c;
    char err[256];
    SafeTensors *probe = st_open(c->model_dir, err, sizeof(err));
    if (probe) {
        st_close(probe);
        clip_model_load(&R->m, be, c->model_dir, 1);
    } else if (c->init_random) {
        ClipConfig cfg;
        clip_config_load(&cfg, c->model_dir);
        clip_model_init(&R->m, be, &cfg, 1);
        params_init_random(&R->m.ps, c->seed, 0.02f);
        float ls = 2.6592f;  // CLIP's initial logit scale, log(1 / 0.07)
        be->upload_act(R->m.w.logit_scale, &ls, 1);
        fprintf(stderr, "train: %s has no weights; random initialization (--init random)\n", c->model_dir);
    } else fatal("%s: no weights (%s); give --init random to start from scratch", c->model_dir, err);
    if (c->vision_from) fatal("vlm train --recipe clip: --vision-from is for a LLaVA (a CLIP trains its own tower)");
    PreprocessConfig pcfg = records_tower_preprocess_config(c->model_dir, &R->m.cfg.vision);
    char *tok = c->tokenizer ? xstrdup(c->tokenizer) : path_join(c->model_dir, "bpe_simple_vocab_16e6.txt.gz");
    clip_data_load(&R->data, c->data_path, &R->m, &pcfg, file_exists(tok) ? tok : NULL, c->images_dir, c->skip_bad);
    if (c->val_path) clip_data_load(&R->val, c->val_path, &R->m, &pcfg, file_exists(tok) ? tok : NULL, c->images_dir, c->skip_bad);
    free(tok);
    R->B = c->batch < R->data.n ? c->batch : R->data.n;
    if (R->B < 2) fatal("vlm train --recipe clip: --batch must be at least 2 (the other pairs are the negatives)");
    clip_acts_init(&R->acts, &R->m, R->B, R->B, R->data.T, 1);
    R->idx = xmalloc(sizeof(int) * R->B);

    *M = (TrainModel){.self = R, .n_examples = R->data.n, .batch = R->B, .data_hash = R->data.hash, .unit = "pairs",
                      .unit_short = "pairs", .stores = {&R->m.ps}, .n_stores = 1, .trainable = {&R->m.ps}, .n_trainable = 1,
                      .has_val = c->val_path != NULL, .micro_step = clip_micro_step, .probe_loss = clip_probe_loss,
                      .evaluate = clip_evaluate, .log_extra = clip_log_extra, .close = clip_close};
}
