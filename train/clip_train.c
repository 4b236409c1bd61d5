// vlm train --recipe clip: CLIP contrastive training of both towers (symmetric InfoNCE with a learnable
// logit scale, train/losses.h), for the tiny CLIP of the miniature study and for fine-tuning CLIP models.
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
#include "checkpoint.h"
#include "losses.h"
#include "metrics.h"
#include "plot.h"
#include "run.h"
#include "trainer.h"

typedef struct {
    int n, S, T;              // pairs, image size, caption length (padded)
    float *pixels;            // (n, 3, S, S)
    int *ids;                 // (n, T)
    unsigned long long hash;
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

int clip_train_run(const TrainConfig *c) {
    const Backend *be = backend_select(c->device);
    run_lock_out(c->out_dir);
    ClipModel m;
    char *weights = NULL;
    SafeTensors *probe = NULL;
    char err[256];
    probe = st_open(c->model_dir, err, sizeof(err));
    if (probe) {
        st_close(probe);
        clip_model_load(&m, be, c->model_dir, 1);
    } else if (c->init_random) {
        ClipConfig cfg;
        clip_config_load(&cfg, c->model_dir);
        clip_model_init(&m, be, &cfg, 1);
        params_init_random(&m.ps, c->seed, 0.02f);
        float ls = 2.6592f;  // CLIP's initial logit scale, log(1 / 0.07)
        be->upload_act(m.w.logit_scale, &ls, 1);
        fprintf(stderr, "train: %s has no weights; random initialization (--init random)\n", c->model_dir);
    } else fatal("%s: no weights (%s); give --init random to start from scratch", c->model_dir, err);
    free(weights);
    PreprocessConfig pcfg = records_preprocess_config(c->model_dir, m.cfg.vision.image_size);
    char *tok = c->tokenizer ? xstrdup(c->tokenizer) : path_join(c->model_dir, "bpe_simple_vocab_16e6.txt.gz");
    ClipData data, val;
    clip_data_load(&data, c->data_path, &m, &pcfg, file_exists(tok) ? tok : NULL, c->images_dir, c->skip_bad);
    if (c->val_path) clip_data_load(&val, c->val_path, &m, &pcfg, file_exists(tok) ? tok : NULL, c->images_dir, c->skip_bad);
    free(tok);
    const int B = c->batch < data.n ? c->batch : data.n;
    if (B < 2) fatal("vlm train --recipe clip: --batch must be at least 2 (the other pairs are the negatives)");
    const int total = run_total_steps(c, data.n, (long long)B * c->grad_accum);
    OptimConfig oc = c->optim;
    oc.total_steps = total;
    if (oc.warmup_steps < 0) oc.warmup_steps = (int)ceil(c->warmup_ratio * total);
    ParamStore *stores[1] = {&m.ps};
    Optimizer opt;
    optim_init(&opt, &oc, stores, 1);
    DataOrder order = {data.n, 0, 0, c->seed, xmalloc(sizeof(int) * data.n)};
    data_order_shuffle(&order);
    int step = 0;
    char *latest = c->resume ? checkpoint_resume_dir(c->out_dir) : NULL;
    if (c->resume && !latest) fprintf(stderr, "vlm train: --resume: no checkpoint in %s yet; starting from the base model\n", c->out_dir);
    if (latest) {  // weights, optimizer, data position
        CheckpointLimits lim = run_checkpoint_limits("clip", data.hash, total, data.n, (long long)B * c->grad_accum);
        CheckpointState cs = checkpoint_read_state(latest, &lim);
        step = cs.step;
        order.epoch = cs.epoch;
        order.cursor = cs.cursor;
        data_order_shuffle(&order);
        char *w = path_join(latest, "model.safetensors");
        SafeTensors *wst = st_open_or_die(w);
        params_load(&m.ps, wst, NULL);
        st_close(wst);
        free(w);
        checkpoint_load_optimizer(latest, &opt);
        opt.step = step;
        fprintf(stderr, "resumed from %s at step %d\n", latest, step);
    }
    free(latest);
    ClipActs acts;
    clip_acts_init(&acts, &m, B, B, data.T, 1);
    char *log_path = path_join(c->out_dir, "metrics.jsonl");
    MetricsLog log;
    metrics_open(&log, log_path, step);
    fprintf(stderr, "train: recipe clip, %d pairs, %d steps of %d x %d pairs, lr %g, backend %s\n", data.n, total, B, c->grad_accum, oc.lr, be->name);
    int *idx = xmalloc(sizeof(int) * B);
    double t_start = now_seconds();
    int first = step;
    optim_zero_grad(&opt);
    run_signals_install();  // from here a stop signal ends the run with a checkpoint
    while (step < total) {
        double t0 = now_seconds(), loss = 0, acc_i = 0, acc_t = 0;
        for (int micro = 0; micro < c->grad_accum; micro++) {
            data_order_next(&order, idx, B);
            ClipLossOut out;
            double l = clip_step_loss(&m, &acts, &data, idx, B, 1, 1.0 / c->grad_accum, &out);
            if (!isfinite(l)) {
                char *last = checkpoint_latest(c->out_dir);
                fatal("step %d: the loss is %g; stopping. The last good checkpoint is %s", step + 1, l, last ? last : "(none yet)");
            }
            loss += l / c->grad_accum;
            acc_i += out.acc_i2t / c->grad_accum;
            acc_t += out.acc_t2i / c->grad_accum;
            clip_loss_out_free(&out);
        }
        double lr, norm = optim_step(&opt, &lr);
        optim_zero_grad(&opt);
        step++;
        be->synchronize();
        double dt = now_seconds() - t0, rate = (step - first) / (now_seconds() - t_start);
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "step", step);
        cJSON_AddNumberToObject(rec, "loss", loss);
        cJSON_AddNumberToObject(rec, "accuracy/image_to_text", acc_i);
        cJSON_AddNumberToObject(rec, "accuracy/text_to_image", acc_t);
        cJSON_AddNumberToObject(rec, "logit_scale", clip_model_logit_scale(&m));
        cJSON_AddNumberToObject(rec, "lr", lr);
        cJSON_AddNumberToObject(rec, "grad_norm", norm);
        cJSON_AddNumberToObject(rec, "pairs_per_s", B * c->grad_accum / dt);
        double vloss = NAN;
        if (c->val_path && c->eval_every > 0 && (step % c->eval_every == 0 || step == total)) {
            // held-out retrieval in batches of B
            double sum = 0, ai = 0;
            int nb = 0;
            for (int s0 = 0; s0 + B <= val.n; s0 += B, nb++) {
                for (int i = 0; i < B; i++) idx[i] = s0 + i;
                ClipLossOut out;
                sum += clip_step_loss(&m, &acts, &val, idx, B, 0, 1, &out);
                ai += out.acc_i2t;
                clip_loss_out_free(&out);
            }
            if (nb) {
                vloss = sum / nb;
                cJSON_AddNumberToObject(rec, "val/loss", vloss);
                cJSON_AddNumberToObject(rec, "val/accuracy/image_to_text", ai / nb);
            }
        }
        metrics_write(&log, rec);
        cJSON_Delete(rec);
        if (!c->quiet && (step % (c->log_every > 0 ? c->log_every : 1) == 0 || step == total)) {
            double eta = rate > 0 ? (total - step) / rate : 0;
            fprintf(stderr, "step %d/%d | loss %.4f | acc i2t %.2f t2i %.2f%s | lr %.2e | %.0f pairs/s | ETA %dm%02ds\n", step, total,
                    loss, acc_i, acc_t, isfinite(vloss) ? " | val" : "", lr, B * c->grad_accum / dt, (int)eta / 60, (int)eta % 60);
        }
        int stop = c->stop_at > 0 && step >= c->stop_at;
        const int sig = run_stop_signal();
        if (sig || stop || step == total || (c->save_every > 0 && step % c->save_every == 0)) {
            char state[512];
            snprintf(state, sizeof(state), "{\"step\": %d, \"total_steps\": %d, \"epoch\": %d, \"cursor\": %d, \"recipe\": \"clip\", "
                     "\"data_hash\": \"%016llx\", \"backend\": \"%s\"}", step, total, order.epoch, order.cursor, data.hash, be->name);
            checkpoint_save(c->out_dir, step, stores, 1, &opt, state, c->model_dir, NULL, NULL);
        }
        if (stop) break;
        if (sig) run_exit_interrupted(c, sig, step);
    }
    metrics_close(&log);
    char *svg = path_join(c->out_dir, "loss.svg");
    plot_metrics(log_path, "loss,val/loss", svg, "CLIP contrastive loss");
    free(svg);
    svg = path_join(c->out_dir, "accuracy.svg");
    plot_metrics(log_path, "accuracy/image_to_text,accuracy/text_to_image,val/accuracy/image_to_text", svg, "retrieval accuracy");
    free(svg);
    free(log_path);
    fprintf(stderr, "train: done, %d steps in %.1f s; checkpoint in %s\n", step - first, now_seconds() - t_start, c->out_dir);
    free(idx);
    free(order.perm);
    clip_acts_free(&acts);
    optim_free(&opt);
    free(data.pixels); free(data.ids);
    if (c->val_path) { free(val.pixels); free(val.ids); }
    clip_model_free(&m);
    return 0;
}
