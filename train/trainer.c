#include "trainer.h"

#include <cJSON.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../data/records.h"
#include "../model/safetensors.h"
#include "../util/common.h"
#include "checkpoint.h"
#include "metrics.h"
#include "plot.h"
#include "run.h"
#include "step.h"

void train_config_preset(TrainConfig *c, Recipe r) {
    memset(c, 0, sizeof(*c));
    c->recipe = r;
    c->device = "auto";
    c->template_name = "vicuna_v1";
    c->batch = 1;
    c->grad_accum = 1;
    c->epochs = 1;
    c->seed = 42;
    c->log_every = 1;
    c->peak_tflops = 760;  // the bf16 GEMM ceiling measured on the H100 (DESIGN.md §6)
    c->optim = (OptimConfig){2e-5, 0.9, 0.999, 1e-8, 0.0, 1.0, SCHED_COSINE, -1, 0};
    c->warmup_ratio = 0.03;
    c->trainable = (LlavaTrainable){0, 1, 1};  // the vision tower stays frozen in every paper recipe
    c->dpo = (DpoParams){0.1, 0, 0, 0};
    c->svco = (SvcoParams){{0.1, 0.1, 0.1, 0.1}};
    c->mdpo = (MdpoParams){0.1, 0};
    c->pack = r != RECIPE_SFT;  // preference rows share image + prompt: computed once (exact)
    switch (r) {
    case RECIPE_SVCO:
    case RECIPE_VCO:  // methods.md §1.4: lr 1e-6 cosine, warm-up 5%, AdamW (0.9, 0.95), wd 0.02, no clipping
        c->optim.lr = 1e-6;
        c->optim.beta2 = 0.95;
        c->optim.weight_decay = 0.02;
        c->optim.max_grad_norm = 0;
        c->warmup_ratio = 0.05;
        if (r == RECIPE_VCO) c->svco.beta[2] = c->svco.beta[3] = 0;
        break;
    case RECIPE_DPO:  // methods.md §3.3 (SeVa): lr 2e-6 cosine, warm-up 3%, beta 0.1, no effective clipping
        c->optim.lr = 2e-6;
        c->optim.max_grad_norm = 0;
        break;
    case RECIPE_MDPO:  // methods.md §4: lr 1e-5, beta2 0.98, wd 0.05, warm-up 10%
        c->optim.lr = 1e-5;
        c->optim.beta2 = 0.98;
        c->optim.weight_decay = 0.05;
        c->warmup_ratio = 0.1;
        break;
    default:  // SFT: LLaVA-1.5's fine-tuning stage (lr 2e-5, cosine, warm-up 3%, no decay)
        break;
    }
}

// ---------------------------------------------------------------------------------------------------
// reference log-probs

typedef struct {
    char magic[8];
    int version, recipe, n_examples, rows;
    unsigned long long model_hash, data_hash;
} RefCacheHeader;

static unsigned long long model_hash(const Llava *m) {
    return m->ps_vision.source_hash * 31 + m->ps_projector.source_hash * 17 + m->ps_text.source_hash;
}

// Row log-probs of every example under `m` (forward only), in example order: (n, rows).
static double *compute_ref(const Llava *m, const TrainData *d, int batch, int pack, const char *what) {
    const int R = recipe_rows(d->recipe);
    double *out = xmalloc(sizeof(double) * (size_t)d->n * R);
    TrainBatch tb;
    train_batch_init(&tb, d, batch, pack);
    BatchActs ba;
    batch_acts_init(&ba, m, &tb, ACTS_INFERENCE);
    int *idx = xmalloc(sizeof(int) * batch);
    double t0 = now_seconds();
    for (int s = 0; s < d->n; s += batch) {
        int k = d->n - s < batch ? d->n - s : batch;
        for (int i = 0; i < k; i++) idx[i] = s + i;
        train_batch_build(&tb, d, idx, k);
        batch_forward(m, &ba, &tb);
        for (int b = 0; b < tb.B; b++) out[(size_t)(s + tb.example_of_row[b]) * R + tb.kind_of_row[b]] = ba.row_logp[b];
        fprintf(stderr, "\r%s: reference log-probs %d/%d examples (%.0f s)", what, s + k, d->n, now_seconds() - t0);
    }
    fprintf(stderr, "\n");
    free(idx);
    batch_acts_free(&ba);
    train_batch_free(&tb);
    return out;
}

// The cached pre-pass: ref-<data hash>-<model hash>.bin in --ref-cache (default --out), valid when model, data
// and recipe hashes all match (the header). Called before any update (and before a resume loads newer weights),
// so `policy` holds the base weights.
static double *reference_logps(const TrainConfig *c, const Llava *policy, const TrainData *d, const char *what) {
    const int R = recipe_rows(d->recipe);
    char name[64];
    snprintf(name, sizeof(name), "ref-%016llx-%016llx.bin", d->hash, model_hash(policy));
    if (c->ref_cache) mkdir_p(c->ref_cache);
    char *path = path_join(c->ref_cache ? c->ref_cache : c->out_dir, name);
    RefCacheHeader want = {{'V', 'L', 'M', 'R', 'E', 'F', 'L', 'P'}, 1, (int)d->recipe, d->n, R, model_hash(policy), d->hash};
    size_t len;
    char *buf = try_read_file(path, &len);
    if (buf && len == sizeof(want) + sizeof(double) * (size_t)d->n * R && !memcmp(buf, &want, sizeof(want))) {
        double *out = xmalloc(sizeof(double) * (size_t)d->n * R);
        memcpy(out, buf + sizeof(want), sizeof(double) * (size_t)d->n * R);
        free(buf);
        fprintf(stderr, "%s: reference log-probs from %s\n", what, path);
        free(path);
        return out;
    }
    free(buf);
    double *out = compute_ref(policy, d, c->batch, c->pack, what);
    size_t n = sizeof(want) + sizeof(double) * (size_t)d->n * R;
    char *file = xmalloc(n);
    memcpy(file, &want, sizeof(want));
    memcpy(file + sizeof(want), out, sizeof(double) * (size_t)d->n * R);
    write_file_atomic(path, file, n);
    free(file);
    free(path);
    return out;
}

// ---------------------------------------------------------------------------------------------------
// one micro-batch: forward, loss of the recipe, gradient per output token

typedef struct {
    double loss, logp_mean;  // logp_mean: mean summed log-prob of the batch's rows (every recipe logs it)
    int n_examples, n_tokens, n_label_tokens;
    double flops;            // model FLOPs of the step (train/step.h), for MFU
    DpoMetrics dpo;
    SvcoMetrics svco;
    MdpoMetrics mdpo;
} StepStats;

// Accumulates `x` (a struct of doubles) weighted by w into `acc`.
static void add_scaled(double *acc, const double *x, size_t count, double w) {
    for (size_t i = 0; i < count; i++) acc[i] += w * x[i];
}

// The loss of the recipe from the policy row log-probs (ba) and the reference row log-probs (ref_rows, one
// per batch row); writes dL/d(row log-prob) into drow (B) and accumulates metrics, weighted by `scale`,
// into st. Returns the loss.
static double batch_loss(const TrainConfig *c, const TrainBatch *tb, const BatchActs *ba, const double *ref_rows,
                         double *drow, double scale, StepStats *st) {
    const int R = recipe_rows(c->recipe), E = tb->B / R;
    const double *pol = ba->row_logp;
    double loss = 0;
    if (c->recipe == RECIPE_SFT) {  // mean cross-entropy over the labelled tokens of the batch
        int ntok = 0;
        for (int b = 0; b < tb->B; b++) { loss -= pol[b]; ntok += ba->row_count[b]; }
        loss /= ntok > 0 ? ntok : 1;
        for (int b = 0; b < tb->B; b++) drow[b] = -1.0 / (ntok > 0 ? ntok : 1);
    } else if (c->recipe == RECIPE_DPO) {  // rows of an example are consecutive, in the order of its kind
        double *v = xmalloc(sizeof(double) * E * 6), *pc = v, *pr = v + E, *rc = v + 2 * E, *rr = v + 3 * E, *dpc = v + 4 * E, *dpr = v + 5 * E;
        for (int e = 0; e < E; e++) { pc[e] = pol[2 * e]; pr[e] = pol[2 * e + 1]; rc[e] = ref_rows[2 * e]; rr[e] = ref_rows[2 * e + 1]; }
        DpoMetrics m;
        loss = dpo_loss(&c->dpo, E, pc, pr, rc, rr, dpc, dpr, &m);
        for (int e = 0; e < E; e++) { drow[2 * e] = dpc[e]; drow[2 * e + 1] = dpr[e]; }
        add_scaled((double *)&st->dpo, (const double *)&m, sizeof(m) / sizeof(double), scale);
        free(v);
    } else if (c->recipe == RECIPE_SVCO || c->recipe == RECIPE_VCO) {
        SvcoMetrics m;
        loss = svco_loss(&c->svco, E, pol, ref_rows, drow, &m);
        add_scaled((double *)&st->svco, (const double *)&m, sizeof(m) / sizeof(double), scale);
    } else if (c->recipe == RECIPE_MDPO) {
        MdpoMetrics m;
        loss = mdpo_loss(&c->mdpo, E, pol, ref_rows, drow, &m);
        add_scaled((double *)&st->mdpo, (const double *)&m, sizeof(m) / sizeof(double), scale);
    }
    st->loss += loss * scale;
    for (int b = 0; b < tb->B; b++) st->logp_mean += pol[b] / tb->B * scale;
    st->n_examples += E;
    for (int b = 0; b < tb->B; b++) { st->n_tokens += tb->length_of_row[b]; st->n_label_tokens += ba->row_count[b]; }
    return loss;
}

static void stats_json(cJSON *o, const TrainConfig *c, const StepStats *s, const char *prefix) {
    char k[96];
#define PUT(name, value) (snprintf(k, sizeof(k), "%s%s", prefix, name), cJSON_AddNumberToObject(o, k, value))
    PUT("loss", s->loss);
    PUT("logps/mean", s->logp_mean);
    if (c->recipe == RECIPE_DPO) {
        PUT("rewards/chosen", s->dpo.reward_chosen);
        PUT("rewards/rejected", s->dpo.reward_rejected);
        PUT("rewards/accuracies", s->dpo.reward_accuracy);
        PUT("rewards/margins", s->dpo.reward_margin);
        PUT("logps/chosen", s->dpo.logp_chosen);
        PUT("logps/rejected", s->dpo.logp_rejected);
    } else if (c->recipe == RECIPE_SVCO || c->recipe == RECIPE_VCO) {
        static const char *terms[4] = {"attend_w", "reject_w", "attend_l", "reject_l"};
        static const char *rows[6] = {"w|Iw", "w|Il", "w|none", "l|Iw", "l|Il", "l|none"};
        for (int t = 0; t < 4; t++) {
            snprintf(k, sizeof(k), "%sloss/%s", prefix, terms[t]); cJSON_AddNumberToObject(o, k, s->svco.term[t]);
            snprintf(k, sizeof(k), "%saccuracy/%s", prefix, terms[t]); cJSON_AddNumberToObject(o, k, s->svco.accuracy[t]);
            snprintf(k, sizeof(k), "%smargin/%s", prefix, terms[t]); cJSON_AddNumberToObject(o, k, s->svco.margin[t]);
        }
        for (int r = 0; r < 6; r++) { snprintf(k, sizeof(k), "%srewards/%s", prefix, rows[r]); cJSON_AddNumberToObject(o, k, s->svco.reward[r]); }
    } else if (c->recipe == RECIPE_MDPO) {
        static const char *terms[3] = {"response", "image", "anchor"};
        for (int t = 0; t < 3; t++) {
            snprintf(k, sizeof(k), "%sloss/%s", prefix, terms[t]); cJSON_AddNumberToObject(o, k, s->mdpo.term[t]);
            snprintf(k, sizeof(k), "%saccuracy/%s", prefix, terms[t]); cJSON_AddNumberToObject(o, k, s->mdpo.accuracy[t]);
        }
        PUT("rewards/chosen", s->mdpo.reward_chosen);
        PUT("rewards/rejected", s->mdpo.reward_rejected);
        PUT("rewards/corrupted", s->mdpo.reward_corrupt);
    }
#undef PUT
}

// The accuracy that summarizes a preference recipe (reward accuracy; S-VCO: mean over its terms)
static double headline_accuracy(const TrainConfig *c, const StepStats *s) {
    if (c->recipe == RECIPE_DPO) return s->dpo.reward_accuracy;
    if (c->recipe == RECIPE_MDPO) return s->mdpo.accuracy[0];
    if (c->recipe == RECIPE_SVCO || c->recipe == RECIPE_VCO) {
        int on = 0;
        double a = 0;
        for (int t = 0; t < 4; t++) if (c->svco.beta[t] > 0) { a += s->svco.accuracy[t]; on++; }
        return on ? a / on : 0;
    }
    return NAN;
}

// ---------------------------------------------------------------------------------------------------

typedef struct {
    const TrainConfig *c;
    const Backend *be;
    Llava policy, ref_model;
    int have_ref_model;
    Lora lora;
    int have_lora;
    TrainData data, val;
    double *ref, *val_ref;  // cached reference row log-probs (n, R)
    TrainBatch tb;
    BatchActs acts, ref_acts;
    Optimizer opt;
    DataOrder order;
    ParamStore *trainable[4];
    int n_trainable;
    int step, total_steps;
    MetricsLog log;
} Trainer;

// Reference row log-probs for the rows of the current batch.
static void batch_reference(Trainer *T, const TrainBatch *tb, const int *idx, const double *cache, double *out) {
    const int R = recipe_rows(T->c->recipe);
    if (T->c->recipe == RECIPE_SFT) return;
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

static void evaluate(Trainer *T, StepStats *st) {
    memset(st, 0, sizeof(*st));
    const TrainData *d = &T->val;
    const int bs = T->c->batch;
    int *idx = xmalloc(sizeof(int) * bs);
    TrainBatch tb;
    train_batch_init(&tb, d, bs, T->c->pack);
    BatchActs acts;
    batch_acts_init(&acts, &T->policy, &tb, ACTS_INFERENCE);
    double *drow = xmalloc(sizeof(double) * (tb.cap_rows + 1)), *ref_rows = xmalloc(sizeof(double) * (tb.cap_rows + 1));
    for (int s = 0; s < d->n; s += bs) {
        int k = d->n - s < bs ? d->n - s : bs;
        for (int i = 0; i < k; i++) idx[i] = s + i;
        train_batch_build(&tb, d, idx, k);
        batch_forward(&T->policy, &acts, &tb);
        batch_reference(T, &tb, idx, T->val_ref, ref_rows);
        batch_loss(T->c, &tb, &acts, ref_rows, drow, (double)k / d->n, st);
    }
    free(drow);
    batch_acts_free(&acts);
    train_batch_free(&tb);
    free(idx); free(ref_rows);
}

static char *state_json(const Trainer *T) {
    const TrainConfig *c = T->c;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "step", T->step);
    cJSON_AddNumberToObject(o, "total_steps", T->total_steps);
    cJSON_AddNumberToObject(o, "epoch", T->order.epoch);
    cJSON_AddNumberToObject(o, "cursor", T->order.cursor);
    char buf[32];
    snprintf(buf, sizeof(buf), "%llu", c->seed);
    cJSON_AddStringToObject(o, "seed", buf);
    snprintf(buf, sizeof(buf), "%016llx", T->data.hash);
    cJSON_AddStringToObject(o, "data_hash", buf);
    cJSON_AddStringToObject(o, "recipe", recipe_name(c->recipe));
    cJSON_AddStringToObject(o, "base_model", c->model_dir);
    cJSON_AddStringToObject(o, "data", c->data_path);
    cJSON_AddNumberToObject(o, "lr", c->optim.lr);
    cJSON_AddNumberToObject(o, "batch", c->batch);
    cJSON_AddNumberToObject(o, "grad_accum", c->grad_accum);
    cJSON_AddStringToObject(o, "backend", T->be->name);
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

// The adapters' settings next to their weights: loading the folder merges them.
static void save_lora_config(const char *dir, const void *cfg) { lora_config_save((const LoraConfig *)cfg, dir); }

// A checkpoint is only written when its weights give a finite loss on the first examples of the data:
// a diverged run must not replace the last good checkpoint with garbage.
static void save(Trainer *T) {
    const TrainConfig *c = T->c;
    int k = T->data.n < c->batch ? T->data.n : c->batch, *idx = xmalloc(sizeof(int) * c->batch);
    for (int i = 0; i < k; i++) idx[i] = i;
    train_batch_build(&T->tb, &T->data, idx, k);
    batch_forward(&T->policy, &T->acts, &T->tb);
    double *ref_rows = xcalloc(T->tb.cap_rows + 1, sizeof(double)), *dl = xmalloc(sizeof(double) * (T->tb.cap_rows + 1));
    batch_reference(T, &T->tb, idx, T->ref, ref_rows);
    StepStats st;
    memset(&st, 0, sizeof(st));
    double loss = batch_loss(c, &T->tb, &T->acts, ref_rows, dl, 1, &st);
    free(ref_rows); free(dl); free(idx);
    if (!isfinite(loss)) {
        char *last = checkpoint_latest(c->out_dir);
        fatal("step %d: the weights give a loss of %g; not saving them. The last good checkpoint is %s", T->step, loss,
              last ? last : "(none: no checkpoint was written)");
    }
    char *s = state_json(T);
    ParamStore *all[4] = {&T->policy.ps_vision, &T->policy.ps_projector, &T->policy.ps_text, &T->lora.ps};
    checkpoint_save(T->c->out_dir, T->step, all, T->have_lora ? 4 : 3, &T->opt, s, T->c->model_dir,
                    T->have_lora ? save_lora_config : NULL, &T->lora.cfg);
    free(s);
}

static void resume(Trainer *T, const char *ckpt) {
    const TrainConfig *c = T->c;
    CheckpointLimits lim = run_checkpoint_limits(recipe_name(c->recipe), T->data.hash, T->total_steps, T->data.n,
                                                 (long long)c->batch * c->grad_accum);
    CheckpointState cs = checkpoint_read_state(ckpt, &lim);
    T->step = cs.step;
    T->order.epoch = cs.epoch;
    T->order.cursor = cs.cursor;
    data_order_shuffle(&T->order);
    // weights (canonical names) and optimizer state
    char *w = path_join(ckpt, "model.safetensors");
    SafeTensors *st = st_open_or_die(w);
    params_load(&T->policy.ps_vision, st, NULL);
    params_load(&T->policy.ps_projector, st, NULL);
    params_load(&T->policy.ps_text, st, NULL);
    if (T->have_lora) params_load(&T->lora.ps, st, NULL);
    st_close(st);
    free(w);
    checkpoint_load_optimizer(ckpt, &T->opt);
    T->opt.step = T->step;
    fprintf(stderr, "resumed from %s at step %d (epoch %d, example %d)\n", ckpt, T->step, T->order.epoch, T->order.cursor);
}

int train_run(const TrainConfig *c) {
    if (c->recipe == RECIPE_CLIP) return clip_train_run(c);
    if (!c->model_dir || !c->data_path || !c->out_dir) fatal("vlm train: --model, --data and --out are required");
    if (c->batch < 1 || c->grad_accum < 1) fatal("vlm train: --batch and --grad-accum must be at least 1");
    Trainer T;
    memset(&T, 0, sizeof(T));
    T.c = c;
    T.be = backend_select(c->device);
    run_lock_out(c->out_dir);
    char probe_err[256];
    SafeTensors *probe = st_open(c->model_dir, probe_err, sizeof(probe_err));
    if (probe) {
        st_close(probe);
        llava_load(&T.policy, T.be, c->model_dir, c->trainable);
    } else if (c->init_random) {  // from scratch: the config alone
        LlavaConfig cfg0;
        llava_config_load(&cfg0, c->model_dir);
        llava_init(&T.policy, T.be, &cfg0, c->trainable);
        params_init_random(&T.policy.ps_vision, c->seed, 0.02f);
        params_init_random(&T.policy.ps_projector, c->seed + 1, 0.02f);
        params_init_random(&T.policy.ps_text, c->seed + 2, 0.02f);
        fprintf(stderr, "train: %s has no weights; random initialization (--init random)\n", c->model_dir);
        if (c->vision_from) {  // e.g. the tower of a CLIP trained first (DESIGN.md §5): names and shapes checked
            SafeTensors *vst = st_open_or_die(c->vision_from);
            params_load(&T.policy.ps_vision, vst, llava_name_candidates);
            st_close(vst);
            fprintf(stderr, "train: vision tower from %s\n", c->vision_from);
        }
    } else fatal("%s: no weights (%s); give --init random to start from the config alone", c->model_dir, probe_err);
    if (c->vision_from && !c->init_random) fatal("vlm train: --vision-from goes with --init random (a model with weights has its tower)");
    const LlavaConfig *cfg = &T.policy.cfg;
    PreprocessConfig pcfg = records_preprocess_config(c->model_dir, cfg->vision.image_size);
    TrainDataOptions dopt = {c->tokenizer, c->template_name, c->system, c->images_dir, c->max_len, c->skip_bad, c->seed, 0.01, 0.2};
    char *tok = NULL;
    if (!dopt.tokenizer) {
        tok = path_join(c->model_dir, "tokenizer.model");
        if (file_exists(tok)) dopt.tokenizer = tok;
    }
    train_data_load(&T.data, c->recipe, c->data_path, cfg, &pcfg, &dopt);
    if (c->val_path) train_data_load(&T.val, c->recipe, c->val_path, cfg, &pcfg, &dopt);
    free(tok);
    // a frozen tower's features, once per image instead of once per image and step (VLM_CACHE_FEATURES=0: the
    // tower runs in every batch, as the tests compare)
    const char *cf = getenv("VLM_CACHE_FEATURES");
    if (!(cf && !strcmp(cf, "0"))) {
        double t0 = now_seconds();
        int n = train_data_encode_images(&T.data, &T.policy);
        if (c->val_path) train_data_encode_images(&T.val, &T.policy);
        if (n && !c->quiet)
            fprintf(stderr, "train: vision tower frozen: features of %d images computed once (%.1f MiB, %.1f s)\n",
                    T.data.n_images, (double)T.data.n_images * T.data.feat_size * sizeof(float) / 1048576, now_seconds() - t0);
    }

    // steps and warm-up
    T.total_steps = run_total_steps(c, T.data.n, (long long)c->batch * c->grad_accum);
    OptimConfig oc = c->optim;
    oc.total_steps = T.total_steps;
    if (oc.warmup_steps < 0) oc.warmup_steps = (int)ceil(c->warmup_ratio * T.total_steps);
    if (c->lora.r > 0) {
        if (T.policy.ps_text.grad) fatal("vlm train: with LoRA the decoder's own weights stay frozen (leave decoder out of --train)");
        lora_init(&T.lora, &T.policy.lm, &c->lora, c->seed);
        T.policy.lm.lora = &T.lora;
        T.have_lora = 1;
    }
    int n = 0;
    if (T.policy.ps_vision.grad) T.trainable[n++] = &T.policy.ps_vision;
    if (T.policy.ps_projector.grad) T.trainable[n++] = &T.policy.ps_projector;
    if (T.policy.ps_text.grad) T.trainable[n++] = &T.policy.ps_text;
    if (T.have_lora) T.trainable[n++] = &T.lora.ps;
    if (n == 0) fatal("vlm train: nothing to train (--train names no part)");
    T.n_trainable = n;
    optim_init(&T.opt, &oc, T.trainable, n);

    T.order = (DataOrder){T.data.n, 0, 0, c->seed, xmalloc(sizeof(int) * T.data.n)};
    data_order_shuffle(&T.order);
    char *latest = c->resume ? checkpoint_resume_dir(c->out_dir) : NULL;
    if (c->resume && !latest) fprintf(stderr, "vlm train: --resume: no checkpoint in %s yet; starting from the base model\n", c->out_dir);

    // reference log-probs: the pre-pass cache (computed before any update), or a frozen copy online
    if (c->recipe != RECIPE_SFT) {
        if (c->ref_online && !T.have_lora) {
            llava_load(&T.ref_model, T.be, c->model_dir, (LlavaTrainable){0, 0, 0});
            T.have_ref_model = 1;
        } else if (!c->ref_online) {
            T.ref = reference_logps(c, &T.policy, &T.data, "train");
            if (c->val_path) T.val_ref = reference_logps(c, &T.policy, &T.val, "val");
        }
    }
    if (latest) resume(&T, latest);
    free(latest);

    train_batch_init(&T.tb, &T.data, c->batch, c->pack);
    batch_acts_init(&T.acts, &T.policy, &T.tb, c->recompute ? ACTS_BACKWARD_RECOMPUTE : ACTS_BACKWARD);
    if (T.have_ref_model) batch_acts_init(&T.ref_acts, &T.ref_model, &T.tb, ACTS_INFERENCE);
    else if (T.have_lora && c->ref_online) batch_acts_init(&T.ref_acts, &T.policy, &T.tb, ACTS_INFERENCE);
    char *log_path = path_join(c->out_dir, "metrics.jsonl");
    metrics_open(&T.log, log_path, T.step);
    free(log_path);
    fprintf(stderr, "train: recipe %s, %d examples%s, %d steps of %d x %d examples, lr %g (%s, %d warm-up), backend %s\n",
            recipe_name(c->recipe), T.data.n, c->val_path ? " (+ validation)" : "", T.total_steps, c->batch, c->grad_accum,
            oc.lr, schedule_name(oc.schedule), oc.warmup_steps, T.be->name);
    if (!c->quiet)
        memory_report(stderr, &T.policy, &T.opt, &T.acts, T.have_ref_model || (T.have_lora && c->ref_online) ? &T.ref_acts : NULL,
                      T.have_ref_model ? &T.ref_model : NULL);
    const int on_gpu = strcmp(T.be->name, "cpu") != 0 && strcmp(T.be->name, "cpu64") != 0;

    int *idx = xmalloc(sizeof(int) * c->batch);
    double *ref_rows = xmalloc(sizeof(double) * (T.tb.cap_rows + 1)), *drow = xmalloc(sizeof(double) * (T.tb.cap_rows + 1));
    double t_start = now_seconds(), tokens_total = 0;
    int first_step = T.step;
    optim_zero_grad(&T.opt);
    run_signals_install();  // from here a stop signal ends the run with a checkpoint
    while (T.step < T.total_steps) {
        double t0 = now_seconds();
        StepStats st;
        memset(&st, 0, sizeof(st));
        for (int micro = 0; micro < c->grad_accum; micro++) {
            data_order_next(&T.order, idx, c->batch);
            train_batch_build(&T.tb, &T.data, idx, c->batch);
            if (T.have_lora) {  // dropout on, with a mask that a resumed run draws again
                T.lora.training = 1;
                T.lora.seed = c->seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)T.step * 4096 + micro;
            }
            batch_forward(&T.policy, &T.acts, &T.tb);
            batch_reference(&T, &T.tb, idx, T.ref, ref_rows);
            double loss = batch_loss(c, &T.tb, &T.acts, ref_rows, drow, 1.0 / c->grad_accum, &st);
            if (!isfinite(loss)) {
                char *last = checkpoint_latest(c->out_dir);
                fatal("step %d: the loss is %g; stopping without an update. The last good checkpoint is %s", T.step + 1, loss,
                      last ? last : "(none yet: no checkpoint was written)");
            }
            batch_backward(&T.policy, &T.acts, &T.tb, drow, 1.0 / c->grad_accum);
            st.flops += batch_step_flops(&T.policy, &T.tb);
            if (T.have_lora) T.lora.training = 0;
        }
        double lr;
        double norm = optim_step(&T.opt, &lr);
        if (!isfinite(norm)) {
            char *last = checkpoint_latest(c->out_dir);
            fatal("step %d: the gradient norm is %g; stopping. The last good checkpoint is %s", T.step + 1, norm,
                  last ? last : "(none yet)");
        }
        optim_zero_grad(&T.opt);
        T.step++;
        T.be->synchronize();
        double dt = now_seconds() - t0;
        tokens_total += st.n_tokens;
        double elapsed = now_seconds() - t_start, rate = (T.step - first_step) / elapsed;
        double eta = rate > 0 ? (T.total_steps - T.step) / rate : 0;
        cJSON *rec = cJSON_CreateObject();
        cJSON_AddNumberToObject(rec, "step", T.step);
        cJSON_AddNumberToObject(rec, "epoch", T.order.epoch + (double)T.order.cursor / T.data.n);
        stats_json(rec, c, &st, "");
        cJSON_AddNumberToObject(rec, "lr", lr);
        cJSON_AddNumberToObject(rec, "grad_norm", norm);
        cJSON_AddNumberToObject(rec, "tokens", st.n_tokens);
        cJSON_AddNumberToObject(rec, "tokens_per_s", st.n_tokens / dt);
        cJSON_AddNumberToObject(rec, "step_time_s", dt);
        const double mfu = st.flops / dt / (c->peak_tflops * 1e12);
        if (on_gpu) cJSON_AddNumberToObject(rec, "mfu", mfu);
        int eval_now = c->val_path && c->eval_every > 0 && (T.step % c->eval_every == 0 || T.step == T.total_steps);
        StepStats ev;
        if (eval_now) {
            evaluate(&T, &ev);
            stats_json(rec, c, &ev, "val/");
            if (c->recipe != RECIPE_SFT) cJSON_AddNumberToObject(rec, "val/accuracy", headline_accuracy(c, &ev));
        }
        metrics_write(&T.log, rec);
        cJSON_Delete(rec);
        if (!c->quiet && (T.step % (c->log_every > 0 ? c->log_every : 1) == 0 || T.step == T.total_steps)) {
            char acc[64] = "";
            if (c->recipe != RECIPE_SFT) snprintf(acc, sizeof(acc), " | acc %.2f", headline_accuracy(c, &st));
            char val[64] = "";
            if (eval_now) snprintf(val, sizeof(val), " | val %.4f", ev.loss);
            char mfu_s[32] = "";  // MFU means something against a GPU's matmul ceiling only
            if (on_gpu) snprintf(mfu_s, sizeof(mfu_s), " | MFU %.1f%%", 100 * mfu);
            fprintf(stderr, "step %d/%d | loss %.4f%s%s | lr %.2e | grad %.3f | %.0f tok/s%s | ETA %dm%02ds\n", T.step,
                    T.total_steps, st.loss, acc, val, lr, norm, st.n_tokens / dt, mfu_s, (int)eta / 60, (int)eta % 60);
        }
        if (c->stop_at > 0 && T.step >= c->stop_at) break;
        const int sig = run_stop_signal();
        if (sig || (c->save_every > 0 && T.step % c->save_every == 0 && T.step < T.total_steps)) save(&T);
        if (sig) run_exit_interrupted(c, sig, T.step);
    }
    save(&T);
    fprintf(stderr, "train: done, %d steps in %.1f s (%.0f tokens/s); checkpoint in %s\n", T.step - first_step,
            now_seconds() - t_start, tokens_total / (now_seconds() - t_start), c->out_dir);
    metrics_close(&T.log);
    // the curves people look at: loss (and validation loss), and the recipe's accuracy
    char *lp = path_join(c->out_dir, "metrics.jsonl"), *svg = path_join(c->out_dir, "loss.svg");
    plot_metrics(lp, "loss,val/loss", svg, "loss");
    free(svg);
    if (c->recipe != RECIPE_SFT) {
        svg = path_join(c->out_dir, "accuracy.svg");
        plot_metrics(lp, c->recipe == RECIPE_DPO ? "rewards/accuracies,val/rewards/accuracies"
                         : c->recipe == RECIPE_MDPO ? "accuracy/response,accuracy/image,val/accuracy"
                         : "accuracy/attend_w,accuracy/reject_w,accuracy/attend_l,accuracy/reject_l,val/accuracy",
                     svg, "reward accuracy");
        free(svg);
    }
    free(lp);
    free(idx); free(ref_rows); free(drow);
    free(T.ref); free(T.val_ref); free(T.order.perm);
    batch_acts_free(&T.acts);
    if (T.have_ref_model) { batch_acts_free(&T.ref_acts); llava_free(&T.ref_model); }
    else if (T.have_lora && c->ref_online) batch_acts_free(&T.ref_acts);
    train_batch_free(&T.tb);
    optim_free(&T.opt);  // before the adapters' store it points to
    if (T.have_lora) { T.policy.lm.lora = NULL; lora_free(&T.lora); }
    train_data_free(&T.data);
    if (c->val_path) train_data_free(&T.val);
    llava_free(&T.policy);
    return 0;
}
