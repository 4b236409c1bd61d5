#include "step.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

int train_data_encode_images(TrainData *d, const Llava *m) {
    const size_t feat = (size_t)m->cfg.image_tokens * m->cfg.vision.hidden, px = (size_t)3 * d->image_size * d->image_size;
    if (m->ps_vision.grad || d->n_images == 0 || d->feats || feat > px) return 0;
    d->feats = xmalloc(sizeof(float) * d->n_images * feat);
    llava_image_features(m, d->pixels, d->n_images, d->feats);
    d->feat_size = (int)feat;
    free(d->pixels);
    d->pixels = NULL;
    return 1;
}

void batch_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, ActsMode mode) {
    memset(ba, 0, sizeof(*ba));
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->cap_rows == 0) continue;
        llava_acts_init(&ba->a[g], m, G->cap_rows, G->cap_len, g == 0 ? tb->cap_images : 0, G->cap_out, mode);
        if (ba->a[g].cap_out < G->cap_out) fatal("internal: batch outputs exceed the activation layout");
        ba->dlogp[g] = xmalloc(sizeof(double) * ba->a[g].cap_tokens);
        ba->has[g] = 1;
    }
    ba->row_logp = xmalloc(sizeof(double) * (tb->cap_rows + 1));
    ba->row_count = xmalloc(sizeof(int) * (tb->cap_rows + 1));
}

void batch_acts_free(BatchActs *ba) {
    for (int g = 0; g < 2; g++) if (ba->has[g]) { llava_acts_free(&ba->a[g]); free(ba->dlogp[g]); }
    free(ba->row_logp);
    free(ba->row_count);
}

// Runs every group; ba->row_logp[b], ba->row_count[b] are the summed response log-probs of each logical row.
void batch_forward(const Llava *m, BatchActs *ba, const TrainBatch *tb) {
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->B == 0) continue;
        LlavaBatch lb = {.B = G->B, .T = G->T, .ids = G->ids, .lengths = G->lengths, .image_of_row = G->image_of_row,
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


// "12.34 GiB", "56.7 MiB" or "8.0 KiB": the tiny test models and the 7B shapes print in one format
static const char *human_bytes(char *buf, size_t bytes) {
    const double x = (double)bytes;
    if (x >= 1073741824.0) snprintf(buf, 32, "%.2f GiB", x / 1073741824.0);
    else if (x >= 1048576.0) snprintf(buf, 32, "%.1f MiB", x / 1048576.0);
    else snprintf(buf, 32, "%.1f KiB", x / 1024.0);
    return buf;
}

void memory_report(FILE *f, const Llava *m, const Optimizer *o, const BatchActs *ba, const BatchActs *ref,
                   const Llava *ref_weights) {
    const ParamStore *stores[3] = {&m->ps_vision, &m->ps_projector, &m->ps_text};
    const size_t act = m->be->act_bytes, acc = m->be->acc_bytes;
    size_t weights = 0, grads = 0, optim = 0, acts = 0;
    for (int i = 0; i < 3; i++) {
        weights += stores[i]->numel * act;
        if (stores[i]->grad) grads += stores[i]->numel * act;
    }
    if (ref_weights) weights += (ref_weights->ps_vision.numel + ref_weights->ps_projector.numel + ref_weights->ps_text.numel) * act;
    int master = 0;
    for (int i = 0; o && i < o->n_stores; i++) {
        master |= o->master && o->master[i];
        optim += o->stores[i]->numel * acc * (o->master && o->master[i] ? 3 : 2);
    }
    const char *names[2 * ARENA_MAX_SECTIONS];
    size_t bytes[2 * ARENA_MAX_SECTIONS];
    int n = 0;
    const BatchActs *sets[2] = {ba, ref};
    for (int k = 0; k < 2; k++)
        for (int g = 0; sets[k] && g < 2; g++)
            if (sets[k]->has[g]) {
                arena_sections_add(&sets[k]->a[g].arena, names, bytes, &n, 2 * ARENA_MAX_SECTIONS);
                acts += sets[k]->a[g].arena.cap;
            }
    char b0[32], b1[32], b2[32], b3[32];
    fprintf(f, "memory: %s planned on %s\n", human_bytes(b0, weights + grads + optim + acts), m->be->name);
    fprintf(f, "  weights      %s (vision %s, projector %s, decoder %s%s)\n", human_bytes(b0, weights),
            human_bytes(b1, m->ps_vision.numel * act), human_bytes(b2, m->ps_projector.numel * act),
            human_bytes(b3, m->ps_text.numel * act), ref_weights ? ", and the reference copy" : "");
    fprintf(f, "  gradients    %s (trained parts only)\n", human_bytes(b0, grads));
    fprintf(f, "  optimizer    %s (AdamW moments%s)\n", human_bytes(b0, optim), master ? " and fp32 master weights" : "");
    fprintf(f, "  activations  %s:", human_bytes(b0, acts));
    for (int i = 0; i < n; i++) fprintf(f, "%s %s %s", i ? "," : "", names[i], human_bytes(b0, bytes[i]));
    fprintf(f, "\n");
}

double batch_step_flops(const Llava *m, const TrainBatch *tb) {
    const LlavaConfig *c = &m->cfg;
    const double Dv = c->vision.hidden, Fv = c->vision.intermediate, Nv = c->vision.image_size / c->vision.patch_size;
    const double Pv = Nv * Nv, Tv = Pv + 1, Lv = c->vision_layers_run;
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
