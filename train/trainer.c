#include "trainer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/records.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "../util/threads.h"
#include "dist.h"
#include "run.h"
#include "step.h"

// ---------------------------------------------------------------------------------------------------
// reference log-probs

typedef struct {
    char magic[8];
    int version, recipe, n_examples, rows;
    unsigned long long model_hash, data_hash;
} RefCacheHeader;
_Static_assert(sizeof(RefCacheHeader) == 40, "tests/test_mpi.c compares reference caches after their 40-byte header");

static unsigned long long model_hash(const Llava *m) {
    return m->ps_vision.source_hash * 31 + m->ps_projector.source_hash * 17 + m->ps_text.source_hash;
}

// Row log-probs of every example under `m` (forward only), in example order: (n, rows). Data parallel, rank r
// runs batches r, r + world, ... (the same batches as one process runs, so the same numbers) and the ranks'
// rows are put together on every rank.
static double *compute_ref(const Llava *m, const TrainData *d, int batch, int pack, const char *what) {
    const int R = d->recipe->n_rows;
    double *out = xcalloc((size_t)d->n * R, sizeof(double));
    const int rank = dist_rank(), world = dist_world();
    TrainBatch tb;
    train_batch_init(&tb, d, batch, pack);
    BatchActs ba;
    batch_acts_init(&ba, m, &tb, ACTS_INFERENCE);
    double t0 = now_seconds();
    // the examples stream through the loader in file order: the next batches' rows and images are made while this
    // one runs. Data parallel, batch j is rank j mod world's, and its loader makes only those
    TrainStream *st = train_stream_open_part(d, NULL, batch, train_stream_workers(), train_stream_depth(), rank, world);
    const TrainPrefetched *pre;
    while ((pre = train_stream_next(st))) {
        const int s = pre->idx[0];  // file order: the batch's examples are s, s + 1, ...
        threads_adapt();
        train_batch_build(&tb, d, pre->idx, pre->n, pre);
        batch_forward(m, &ba, &tb);
        for (int b = 0; b < tb.B; b++) out[(size_t)(s + tb.example_of_row[b]) * R + tb.kind_of_row[b]] = ba.row_logp[b];
        if (rank == 0)
            fprintf(stderr, "\r%s: reference log-probs %d/%d examples (%.0f s)", what, s + pre->n, d->n, now_seconds() - t0);
    }
    if (rank == 0) fprintf(stderr, "\n");
    train_stream_close(st);
    // each rank's batches into every rank's table: batch j's rows come from rank j mod world
    for (int j = 0; j * batch < d->n && world > 1; j++) {
        const int s = j * batch, k = d->n - s < batch ? d->n - s : batch;
        dist_broadcast_doubles(out + (size_t)s * R, (size_t)k * R, j % world);
    }
    batch_acts_free(&ba);
    train_batch_free(&tb);
    return out;
}

// The cached pre-pass: ref-<data hash>-<model hash>.bin in --ref-cache (default --out), valid when model, data
// and recipe hashes all match (the header). Called before any update (and before a resume loads newer weights),
// so `policy` holds the base weights.
static double *reference_logps(const TrainConfig *c, const Llava *policy, const TrainData *d, const char *what) {
    const int R = d->recipe->n_rows;
    char name[64];
    snprintf(name, sizeof(name), "ref-%016llx-%016llx.bin", d->hash, model_hash(policy));
    if (c->ref_cache) mkdir_p(c->ref_cache);
    char *path = path_join(c->ref_cache ? c->ref_cache : c->out_dir, name);
    RefCacheHeader want = {{'V', 'L', 'M', 'R', 'E', 'F', 'L', 'P'}, 1, d->recipe->id, d->n, R, model_hash(policy), d->hash};
    // data parallel: rank 0 alone reads the cache and hands it out, so every rank takes the same way (a rank that
    // saw the file another had just written would skip the pre-pass's collectives)
    const size_t n_rows = (size_t)d->n * R;
    size_t len = 0;
    char *buf = dist_rank() == 0 ? try_read_file(path, &len) : NULL;
    const int hit = dist_max_int(buf && len == sizeof(want) + sizeof(double) * n_rows && !memcmp(buf, &want, sizeof(want)));
    if (hit) {
        double *out = xmalloc(sizeof(double) * n_rows);
        if (dist_rank() == 0) memcpy(out, buf + sizeof(want), sizeof(double) * n_rows);
        dist_broadcast_doubles(out, n_rows, 0);
        free(buf);
        if (dist_rank() == 0) fprintf(stderr, "%s: reference log-probs from %s\n", what, path);
        free(path);
        return out;
    }
    free(buf);
    double *out = compute_ref(policy, d, c->batch, c->pack, what);
    size_t n = sizeof(want) + sizeof(double) * (size_t)d->n * R;
    char *file = xmalloc(n);
    memcpy(file, &want, sizeof(want));
    memcpy(file + sizeof(want), out, sizeof(double) * (size_t)d->n * R);
    if (dist_rank() == 0) write_file_atomic(path, file, n);  // every rank has the whole table; one writes it
    free(file);
    free(path);
    return out;
}

// ---------------------------------------------------------------------------------------------------
// the LLaVA model of a run

typedef struct {
    const TrainConfig *c;
    const Backend *be;
    Llava policy, ref_model;
    int have_ref_model;     // --ref online without LoRA: a frozen copy of the base model
    Lora lora;
    int have_lora;
    TrainData data, val;
    double *ref, *val_ref;  // cached reference row log-probs (n, R) of data and val
    TrainBatch tb;
    BatchActs acts, ref_acts;
    TrainStream *stream;    // this rank's micro-batches with their rows and images made ahead (llava_stream_from), or NULL
    int *idx;               // (batch) examples of the micro-batch being probed
    double *ref_rows, *drow;  // (cap_rows + 1) reference log-probs and dL/d(row log-prob) of the batch's rows
} LlavaRun;

// Reference row log-probs for the rows of the current batch: a forward pass of the frozen model, or the cache.
static void batch_reference(LlavaRun *T, const TrainBatch *tb, const int *idx, const double *cache, double *out) {
    const int R = T->c->recipe->n_rows;
    if (!T->c->recipe->uses_reference) return;
    if (T->have_ref_model || (T->have_lora && T->c->ref_online)) {
        // LoRA: the reference is the policy with its adapters off, no second copy of the weights
        int training = T->have_lora ? T->lora.training : 0;
        if (T->have_lora) { T->lora.enabled = 0; T->lora.training = 0; }
        batch_forward(T->have_lora ? &T->policy : &T->ref_model, &T->ref_acts, tb);
        if (T->have_lora) { T->lora.enabled = 1; T->lora.training = training; }
        for (int b = 0; b < tb->B; b++) out[b] = T->ref_acts.row_logp[b];
        return;
    }
    for (int b = 0; b < tb->B; b++) out[b] = cache[(size_t)idx[tb->example_of_row[b]] * R + tb->kind_of_row[b]];
}

// The reference's and then the policy's forward pass over a batch of d: the reference row log-probs into ref_out,
// the policy's into acts. With fresh crops (mDPO) each pass draws its own crops, from the stream of (seed, step,
// micro, pass) as its code draws one inside every forward; the reference goes first so that the pixels the
// policy saw stay for its backward.
static void batch_forwards(LlavaRun *T, BatchActs *acts, TrainBatch *tb, const TrainData *d, const int *idx, const double *cache,
                           double *ref_out, int step, int micro) {
    train_batch_draw_crops(tb, d, train_crop_stream(T->c->seed, step, micro, 1));
    batch_reference(T, tb, idx, cache, ref_out);
    train_batch_draw_crops(tb, d, train_crop_stream(T->c->seed, step, micro, 0));
    batch_forward(&T->policy, acts, tb);
}

// The recipe's loss with parameters lp from the policy row log-probs (ba) and the reference row log-probs
// (ref_rows, one per batch row); writes dL/d(row log-prob) into drow (B) and accumulates the loss and the metrics,
// weighted by `scale`, into st. Returns the loss. Logical rows are in example order, n_rows per example, as the
// loss reads them.
static double batch_loss(const Recipe *r, const LossParams *lp, const TrainBatch *tb, const BatchActs *ba, const double *ref_rows,
                         double *drow, double scale, StepStats *st) {
    const int E = tb->B / r->n_rows, nm = recipe_n_metrics(r);
    const double *pol = ba->row_logp;
    double m[RECIPE_MAX_METRICS] = {0};
    // metric 0 is "logps/mean" (every LLaVA recipe logs it); the loss writes the others
    double loss = r->loss(lp, E, pol, r->uses_reference ? ref_rows : NULL, ba->row_count, drow, m + 1);
    for (int k = 1; k < nm; k++) st->metric[k] += scale * m[k];
    st->loss += loss * scale;
    for (int b = 0; b < tb->B; b++) st->metric[0] += pol[b] / tb->B * scale;
    st->n_examples += E;
    for (int b = 0; b < tb->B; b++) st->n_items += tb->length_of_row[b];
    return loss;
}

static double llava_micro_step(TrainModel *M, const int *idx, int n, int step, int micro, double scale, StepStats *st) {
    LlavaRun *T = M->self;
    const TrainConfig *c = T->c;
    // the loader walks the same order as the loop: its next batch is this one, rows and images made. Data
    // parallel, rank r takes micro-batches r, r + world, ... (train/run.c), and its loader makes only those
    const TrainPrefetched *pre = T->stream ? train_stream_next(T->stream) : NULL;
    if (pre && (pre->n != n || memcmp(pre->idx, idx, sizeof(int) * n)))
        fatal("internal: the data loader's micro-batch is not the one the training loop asks for");
    train_batch_build(&T->tb, &T->data, idx, n, pre);
    if (T->have_lora) {  // dropout on, with a mask that a resumed run draws again
        T->lora.training = 1;
        T->lora.seed = c->seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)step * 4096 + micro;
    }
    batch_forwards(T, &T->acts, &T->tb, &T->data, idx, T->ref, T->ref_rows, step, micro);
    double loss = batch_loss(c->recipe, &c->loss, &T->tb, &T->acts, T->ref_rows, T->drow, scale, st);
    if (isfinite(loss)) {  // a non-finite loss stops the run before any update (the loop says so)
        batch_backward(&T->policy, &T->acts, &T->tb, T->drow, scale);
        st->flops += batch_step_flops(&T->policy, &T->tb);
    }
    if (T->have_lora) T->lora.training = 0;
    return loss;
}

// The loss of the first examples of the training data under the current weights, forward only.
static double llava_probe_loss(TrainModel *M) {
    LlavaRun *T = M->self;
    const TrainConfig *c = T->c;
    int k = T->data.n < c->batch ? T->data.n : c->batch;
    for (int i = 0; i < k; i++) T->idx[i] = i;
    train_batch_build(&T->tb, &T->data, T->idx, k, NULL);
    double *ref_rows = xcalloc(T->tb.cap_rows + 1, sizeof(double));
    batch_forwards(T, &T->acts, &T->tb, &T->data, T->idx, T->ref, ref_rows, -1, 0);  // step -1: the probe's crops
    StepStats st;
    memset(&st, 0, sizeof(st));
    double loss = batch_loss(c->recipe, &c->loss, &T->tb, &T->acts, ref_rows, T->drow, 1, &st);
    free(ref_rows);
    return loss;
}

static void llava_evaluate(TrainModel *M, StepStats *st) {
    LlavaRun *T = M->self;
    memset(st, 0, sizeof(*st));
    const Recipe *r = T->c->recipe;
    LossParams lp = T->c->loss;  // the recipe's evaluation may differ from its training (S-VCO: every term on)
    if (r->eval_params) r->eval_params(&lp);
    const TrainData *d = &T->val;
    const int bs = T->c->batch;
    int *idx = xmalloc(sizeof(int) * bs);
    TrainBatch tb;
    train_batch_init(&tb, d, bs, T->c->pack);
    BatchActs acts;
    batch_acts_init(&acts, &T->policy, &tb, ACTS_INFERENCE);
    double *drow = xmalloc(sizeof(double) * (tb.cap_rows + 1)), *ref_rows = xmalloc(sizeof(double) * (tb.cap_rows + 1));
    TrainStream *stream = train_stream_open(d, NULL, bs, train_stream_workers(), train_stream_depth());
    const TrainPrefetched *pre;
    for (int s = 0; (pre = train_stream_next(stream)); s += pre->n) {
        const int k = pre->n;
        memcpy(idx, pre->idx, sizeof(int) * k);
        train_batch_build(&tb, d, idx, k, pre);
        batch_forwards(T, &acts, &tb, d, idx, T->val_ref, ref_rows, -2, s);  // step -2: each evaluation's same crops
        batch_loss(r, &lp, &tb, &acts, ref_rows, drow, (double)k / d->n, st);
    }
    train_stream_close(stream);
    free(drow);
    batch_acts_free(&acts);
    train_batch_free(&tb);
    free(idx); free(ref_rows);
}

// The adapters' settings next to their weights: loading the folder merges them.
static void save_lora_config(const char *dir, const void *cfg) { lora_config_save((const LoraConfig *)cfg, dir); }

static void llava_close(TrainModel *M) {
    LlavaRun *T = M->self;
    const TrainConfig *c = T->c;
    if (T->stream) train_stream_close(T->stream);
    free(T->idx); free(T->ref_rows); free(T->drow);
    free(T->ref); free(T->val_ref);
    batch_acts_free(&T->acts);
    if (T->have_ref_model) { batch_acts_free(&T->ref_acts); llava_free(&T->ref_model); }
    else if (T->have_lora && c->ref_online) batch_acts_free(&T->ref_acts);
    train_batch_free(&T->tb);
    if (T->have_lora) { T->policy.lm.lora = NULL; lora_free(&T->lora); }
    train_data_free(&T->data);
    if (c->val_path) train_data_free(&T->val);
    llava_free(&T->policy);
    free(T);
}

// The loop's order from its position (after a resume): from here micro_step takes each micro-batch's images from
// the loader, made ahead on its threads.
static void llava_stream_from(TrainModel *M, const DataOrder *order) {
    LlavaRun *T = M->self;
    if (T->stream) train_stream_close(T->stream);
    // the order starts a step: rank r's share is micro-batches r, r + world, ...
    T->stream = train_stream_open_part(&T->data, order, T->c->batch, train_stream_workers(), train_stream_depth(), dist_rank(),
                                       dist_world());
}

// The memory plan of a LLaVA run (weights, gradients, optimizer, activations), once the optimizer exists.
static void llava_memory_report(const TrainModel *M, const Optimizer *opt) {
    const LlavaRun *T = M->self;
    const int ref_acts = T->have_ref_model || (T->have_lora && T->c->ref_online);
    memory_report(stderr, &T->policy, opt, &T->acts, ref_acts ? &T->ref_acts : NULL, T->have_ref_model ? &T->ref_model : NULL);
    if (!T->data.ex)
        fprintf(stderr, "  (activations for the rows of the first examples of the file: the records are tokenized batch by batch, and a "
                "batch of longer rows grows them; --max-len bounds them)\n");
}

TrainDataOptions train_config_data_options(const TrainConfig *c, const char *tokenizer) {
    return (TrainDataOptions){.tokenizer = tokenizer, .template_name = c->template_name, .system = c->system,
                              .images_dir = c->images_dir, .max_len = c->max_len, .max_text_len = c->max_text_len,
                              .skip_bad = c->skip_bad, .seed = c->seed, .crop_lo = c->crop_scale[0], .crop_hi = c->crop_scale[1],
                              .fresh_crops = c->recipe->second_image == IMAGE2_CROP && !c->crop_fixed};
}

void llava_train_open(TrainModel *M, const TrainConfig *c, const Backend *be) {
    if (c->recipe->second_image == IMAGE2_CROP && !c->crop_fixed && c->recipe->uses_reference && !c->ref_online)
        fatal("vlm train --recipe %s: --crop fresh draws a new corrupted crop in every forward pass, so the reference's "
              "log-prob of a crop exists only in the pass that drew it and cannot be cached: give --ref online (the "
              "preset: the reference runs every step on crops of its own, as in mDPO's code), or --crop fixed (one crop "
              "per example, drawn at load and shared by the policy, the cached reference and every epoch)", c->recipe->name);
    LlavaRun *T = xcalloc(1, sizeof(LlavaRun));
    T->c = c;
    T->be = be;
    char probe_err[256];
    SafeTensors *probe = st_open(c->model_dir, probe_err, sizeof(probe_err));
    if (probe) {
        st_close(probe);
        llava_load(&T->policy, be, c->model_dir, c->trainable);
    } else if (c->init_random) {  // from scratch: the config alone
        LlavaConfig cfg0;
        llava_config_load(&cfg0, c->model_dir);
        llava_init(&T->policy, be, &cfg0, c->trainable);
        params_init_random(&T->policy.ps_vision, c->seed, 0.02f);
        params_init_random(&T->policy.ps_projector, c->seed + 1, 0.02f);
        params_init_random(&T->policy.ps_text, c->seed + 2, 0.02f);
        fprintf(stderr, "train: %s has no weights; random initialization (--init random)\n", c->model_dir);
        if (c->vision_from) {  // e.g. the tower of a CLIP trained first (DESIGN.md §5): names and shapes checked
            SafeTensors *vst = st_open_or_die(c->vision_from);
            params_load(&T->policy.ps_vision, vst, llava_name_candidates);
            st_close(vst);
            fprintf(stderr, "train: vision tower from %s\n", c->vision_from);
        }
    } else fatal("%s: no weights (%s); give --init random to start from the config alone", c->model_dir, probe_err);
    if (c->vision_from && !c->init_random) fatal("vlm train: --vision-from goes with --init random (a model with weights has its tower)");
    const LlavaConfig *cfg = &T->policy.cfg;
    PreprocessConfig pcfg = records_tower_preprocess_config(c->model_dir, &cfg->vision);
    char *tok = c->tokenizer ? NULL : tokenizer_find(c->model_dir);
    TrainDataOptions dopt = train_config_data_options(c, c->tokenizer ? c->tokenizer : tok);
    train_data_load(&T->data, c->recipe, c->data_path, cfg, &pcfg, &dopt);
    if (c->val_path) train_data_load(&T->val, c->recipe, c->val_path, cfg, &pcfg, &dopt);
    free(tok);
    if (c->lora.r > 0) {
        if (T->policy.ps_text.grad) fatal("vlm train: with LoRA the decoder's own weights stay frozen (leave decoder out of --train)");
        lora_init(&T->lora, &T->policy.lm, &c->lora, c->seed);
        T->policy.lm.lora = &T->lora;
        T->have_lora = 1;
    }
    ParamStore *trainable[4] = {0};  // what the optimizer updates
    int n = 0;
    if (T->policy.ps_vision.grad) trainable[n++] = &T->policy.ps_vision;
    if (T->policy.ps_projector.grad) trainable[n++] = &T->policy.ps_projector;
    if (T->policy.ps_text.grad) trainable[n++] = &T->policy.ps_text;
    if (T->have_lora) trainable[n++] = &T->lora.ps;
    if (n == 0) fatal("vlm train: nothing to train (--train names no part)");

    // reference log-probs: the pre-pass cache (computed before any update, and before a resume loads newer
    // weights), or a frozen copy online
    if (c->recipe->uses_reference && c->ref_online && !T->have_lora) {
        llava_load(&T->ref_model, be, c->model_dir, (LlavaTrainable){0, 0, 0});
        T->have_ref_model = 1;
    }
    // a frozen tower's features, once per image instead of once per image and step (the pre-pass below uses
    // them too); here, after the model's stores are all allocated, is where the memory plan counts its arena
    double t0 = now_seconds();
    if (train_data_encode_images(&T->data, &T->policy) && !c->quiet)
        fprintf(stderr, "train: vision tower frozen: features of %d images computed once (%.1f MiB, %.1f s)\n",
                T->data.n_images, (double)T->data.n_images * T->data.feat_size * sizeof(float) / 1048576, now_seconds() - t0);
    if (c->val_path) train_data_encode_images(&T->val, &T->policy);
    if (c->recipe->uses_reference && !c->ref_online) {
        T->ref = reference_logps(c, &T->policy, &T->data, "train");
        if (c->val_path) T->val_ref = reference_logps(c, &T->policy, &T->val, "val");
    }
    train_batch_init(&T->tb, &T->data, c->batch, c->pack);
    // a file's data tokenizes its records batch by batch: the batch's capacities start at the first micro-batch's
    // rows (so the memory plan counts activations) and grow when a batch has longer ones
    int k = T->data.n < c->batch ? T->data.n : c->batch, *first = xmalloc(sizeof(int) * k);
    for (int i = 0; i < k; i++) first[i] = i;
    train_batch_build(&T->tb, &T->data, first, k, NULL);
    free(first);
    batch_acts_init(&T->acts, &T->policy, &T->tb, c->recompute ? ACTS_BACKWARD_RECOMPUTE : ACTS_BACKWARD);
    if (T->have_ref_model) batch_acts_init(&T->ref_acts, &T->ref_model, &T->tb, ACTS_INFERENCE);
    else if (T->have_lora && c->ref_online) batch_acts_init(&T->ref_acts, &T->policy, &T->tb, ACTS_INFERENCE);
    T->idx = xmalloc(sizeof(int) * c->batch);
    T->ref_rows = xcalloc(T->tb.cap_rows + 1, sizeof(double));
    T->drow = xmalloc(sizeof(double) * (T->tb.cap_rows + 1));

    *M = (TrainModel){.self = T, .n_examples = T->data.n, .batch = c->batch, .data_hash = T->data.hash, .unit = "tokens",
                      .unit_short = "tok", .stores = {&T->policy.ps_vision, &T->policy.ps_projector, &T->policy.ps_text, &T->lora.ps},
                      .n_stores = T->have_lora ? 4 : 3, .n_trainable = n, .has_val = c->val_path != NULL,
                      .micro_step = llava_micro_step, .stream_from = llava_stream_from, .probe_loss = llava_probe_loss, .evaluate = llava_evaluate,
                      .memory_report = llava_memory_report, .save_extra = T->have_lora ? save_lora_config : NULL,
                      .save_ctx = &T->lora.cfg, .close = llava_close};
    memcpy(M->trainable, trainable, sizeof(trainable));
}
