#include "step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "plan.h"

int train_caches_features(const Llava *m, int image_size, int fresh_crops) {
    const size_t feat = (size_t)m->cfg.image_tokens * m->cfg.vision.hidden, px = (size_t)3 * image_size * image_size;
    const char *e = getenv("VLM_CACHE_FEATURES");
    return !m->ps_vision.grad && !fresh_crops && feat <= px && !(e && !strcmp(e, "0"));
}

int train_data_encode_images(TrainData *d, const Llava *m) {
    const size_t feat = (size_t)m->cfg.image_tokens * m->cfg.vision.hidden, img = (size_t)3 * d->image_size * d->image_size;
    if (!train_caches_features(m, d->image_size, d->fresh_crops) || d->n_images == 0 || d->feats) return 0;
    // the cache grows with the data set: past VLM_FEATURE_CACHE_MB (1024 by default) the tower runs in every batch
    // instead, so memory stays bounded by the batch (the same numbers either way)
    const char *e = getenv("VLM_FEATURE_CACHE_MB");
    const double budget = (e && *e ? atof(e) : 1024) * 1048576;
    if ((double)d->n_images * feat * sizeof(float) > budget) return 0;
    // the images stream through the loader (a micro-batch of examples at a time), each encoded the first time it
    // comes: memory is the features and the loader's slots, never the data set's pixels
    // a micro-batch of LLAVA_FEATURE_CHUNK examples has up to max_example_images distinct images each
    const size_t chunk_images = (size_t)d->max_example_images * LLAVA_FEATURE_CHUNK;
    float *feats = xmalloc(sizeof(float) * d->n_images * feat), *px = xmalloc(sizeof(float) * chunk_images * img);
    unsigned char *done = xcalloc((size_t)d->n_images, 1);
    int *which = xmalloc(sizeof(int) * chunk_images);
    TrainStream *s = train_stream_open(d, NULL, LLAVA_FEATURE_CHUNK, train_stream_workers(), train_stream_depth());
    const TrainPrefetched *pre;
    while ((pre = train_stream_next(s))) {
        int k = 0;
        for (int i = 0; i < pre->n_images; i++) {
            if (done[pre->images[i]]) continue;
            done[pre->images[i]] = 1;
            which[k] = pre->images[i];
            memcpy(px + k++ * img, pre->pixels + i * img, sizeof(float) * img);
        }
        float *out = xmalloc(sizeof(float) * (k ? k : 1) * feat);
        if (k) llava_image_features(m, px, k, out);
        for (int i = 0; i < k; i++) memcpy(feats + which[i] * feat, out + i * feat, sizeof(float) * feat);
        free(out);
    }
    train_stream_close(s);
    // an image no example names (a record skipped after its image was named) is encoded anyway: every row is defined
    for (int i = 0; i < d->n_images; i++)
        if (!done[i]) { train_data_image(d, i, px); llava_image_features(m, px, 1, feats + i * feat); }
    free(done); free(which); free(px);
    d->feats = feats;
    d->feat_size = (int)feat;
    return 1;
}

// The arenas of group g for tb's capacities.
static void group_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, int g) {
    const BatchGroup *G = &tb->g[g];
    ba->cap_rows[g] = G->cap_rows;
    ba->cap_len[g] = G->cap_len;
    ba->cap_out[g] = G->cap_out;
    if (G->cap_rows == 0) return;
    llava_acts_init(&ba->a[g], m, G->cap_rows, G->cap_len, g == 0 ? tb->cap_images : 0, G->cap_out, ba->mode);
    if (ba->a[g].cap_out < G->cap_out) fatal("internal: batch outputs exceed the activation layout");
    ba->dlogp[g] = xmalloc(sizeof(double) * ba->a[g].cap_tokens);
    ba->has[g] = 1;
}

static void group_acts_free(BatchActs *ba, int g) {
    if (ba->has[g]) { llava_acts_free(&ba->a[g]); free(ba->dlogp[g]); }
    ba->has[g] = 0;
    ba->dlogp[g] = NULL;
}

void batch_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, ActsMode mode) {
    memset(ba, 0, sizeof(*ba));
    ba->mode = mode;
    for (int g = 0; g < 2; g++) group_acts_init(ba, m, tb, g);
    ba->row_logp = xmalloc(sizeof(double) * (tb->cap_rows + 1));
    ba->row_count = xmalloc(sizeof(int) * (tb->cap_rows + 1));
}

void batch_acts_free(BatchActs *ba) {
    for (int g = 0; g < 2; g++) group_acts_free(ba, g);
    free(ba->row_logp);
    free(ba->row_count);
}

// Runs every group; ba->row_logp[b], ba->row_count[b] are the summed response log-probs of each logical row.
void batch_forward(const Llava *m, BatchActs *ba, const TrainBatch *tb) {
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->cap_rows != ba->cap_rows[g] || G->cap_len != ba->cap_len[g] || G->cap_out != ba->cap_out[g]) {
            group_acts_free(ba, g);  // the batch's groups grew: arenas for the new capacities
            group_acts_init(ba, m, tb, g);
        }
        if (G->B == 0) continue;
        LlavaBatch lb = {.B = G->B, .T = G->T, .ids = G->ids, .lengths = G->lengths, .image_of_row = G->image_of_row,
                         .images_of_row = G->images_of_row,
                         .n_images = g == 0 ? tb->n_images : 0, .pixels = tb->pixels, .feats = tb->feats, .pos = G->pos,
                         .segment = G->packed ? G->segment : NULL, .n_out = G->n_out, .out_index = G->out_index,
                         .out_target = G->out_target, .out_row = G->out_row, .n_logical = tb->B};
        llava_forward(m, &ba->a[g], &lb);
        for (int i = 0; i < G->n_members; i++) {
            int r = G->members[i];
            ba->row_logp[r] = ba->a[g].row_logp[r];
            ba->row_count[r] = ba->a[g].row_count[r];
        }
    }
}

// drow (B): dL/d(row log-prob); every labelled token of a row gets its row's gradient times scale.
void batch_backward(const Llava *m, BatchActs *ba, const TrainBatch *tb, const double *drow, double scale) {
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->B == 0) continue;
        LlavaActs *a = &ba->a[g];
        for (int i = 0; i < a->M; i++) ba->dlogp[g][i] = drow[a->out_row[i]] * scale;
        llava_backward(m, a, ba->dlogp[g]);
    }
}


void memory_report(FILE *f, const Llava *m, const Optimizer *o, const BatchActs *ba, const BatchActs *ref,
                   const Llava *ref_weights) {
    MemPlan p;
    mem_plan_stores(&p, m, o->stores, o->n_stores, ref_weights, o->sharded ? o->world : 1);  // as optim_init_dist shards it
    mem_plan_acts(&p, ba, ref);
    mem_plan_finish(&p);
    mem_plan_print(f, &p);
}

double batch_step_flops(const Llava *m, const TrainBatch *tb) {
    const LlavaConfig *c = &m->cfg;
    const double Dv = c->vision.hidden, Fv = c->vision.intermediate, Nv = c->vision.image_size / c->vision.patch_size;
    const double Pv = Nv * Nv, Tv = vision_config_tokens(&c->vision), Lv = c->vision_layers_run;  // + CLIP's class token
    const double vis = 2 * Pv * 3 * c->vision.patch_size * c->vision.patch_size * Dv +
                       Lv * (8 * Tv * Dv * Dv + 4 * Tv * Dv * Fv + 4 * Tv * Tv * Dv);
    const double D = c->text.hidden, F = c->text.intermediate, L = c->text.layers, Dkv = c->text.kv_heads * c->text.head_dim;
    const double proj = 2 * c->image_tokens * (Dv * D + D * D);
    double dec = 0;
    long n_label = 0;
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        for (int b = 0; b < G->B; b++) {
            const double T = G->lengths[b];
            dec += L * (2 * T * D * (2 * D + 2 * Dkv) + 6 * T * D * F + 2 * T * T * D);  // causal: half of 4 T^2 D
        }
        n_label += G->n_out;
    }
    dec += 2.0 * n_label * D * c->text.vocab;
    const double vis_factor = m->ps_vision.grad ? 3 : 1;
    return tb->n_images * (vis_factor * vis + 3 * proj) + 3 * dec;
}
