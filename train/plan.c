#include "plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "dist.h"
#include "optim.h"

// "12.34 GiB", "56.7 MiB" or "8.0 KiB": the tiny test models and the 7B shapes print in one format
static const char *human_bytes(char *buf, size_t bytes) {
    const double x = (double)bytes;
    if (x >= 1073741824.0) snprintf(buf, 32, "%.2f GiB", x / 1073741824.0);
    else if (x >= 1048576.0) snprintf(buf, 32, "%.1f MiB", x / 1048576.0);
    else snprintf(buf, 32, "%.1f KiB", x / 1024.0);
    return buf;
}

static const char *part_names[3] = {"vision", "projector", "decoder"};

void mem_plan_stores(MemPlan *p, const Llava *m, ParamStore *const *trained, int n_trained, const Llava *ref_weights,
                     int world) {
    const Backend *be = m->be;
    memset(p, 0, sizeof(*p));
    p->backend = be->name;
    p->act_bytes = be->act_bytes;
    p->acc_bytes = be->acc_bytes;
    p->world = world > 1 ? world : 1;
    const ParamStore *parts[3] = {&m->ps_vision, &m->ps_projector, &m->ps_text};
    for (int i = 0; i < 3; i++) {
        p->params[i] = parts[i]->numel;
        p->weights += parts[i]->numel * be->act_bytes;
    }
    for (int t = 0; t < n_trained; t++) {
        const ParamStore *ps = trained[t];
        int part = -1;
        for (int i = 0; i < 3; i++) if (ps == parts[i]) part = i;
        if (part >= 0) p->trained[part] = 1;
        else {  // the adapters: a store of their own
            p->adapters += ps->numel;
            p->weights += ps->numel * be->act_bytes;
        }
        p->grads += ps->numel * be->act_bytes;
        // ZeRO-1: each rank keeps the state of its 1/world of every store
        size_t master;
        p->optim += optim_state_bytes(be, dist_shard_cap(ps->numel, p->world), &master);
        p->master += master;
    }
    if (ref_weights)
        p->ref_weights = (ref_weights->ps_vision.numel + ref_weights->ps_projector.numel + ref_weights->ps_text.numel) *
                         (size_t)be->act_bytes;
}

// The bytes of a set of row-group arenas, their sections added into p's breakdown.
static size_t acts_bytes(MemPlan *p, const BatchActs *ba) {
    size_t total = 0;
    for (int g = 0; g < 2; g++)
        if (ba->has[g]) {
            total += ba->a[g].arena.cap;
            if (p) arena_sections_add(&ba->a[g].arena, p->section_name, p->section_bytes, &p->n_sections, 2 * ARENA_MAX_SECTIONS);
        }
    return total;
}

void mem_plan_acts(MemPlan *p, const BatchActs *train, const BatchActs *ref) {
    p->acts = acts_bytes(p, train);
    p->ref_acts = ref ? acts_bytes(p, ref) : 0;
}

void mem_plan_finish(MemPlan *p) {
    const size_t model = p->weights + p->grads + p->ref_weights;
    const size_t training = p->optim + p->acts + p->ref_acts + p->eval;
    p->peak = model + (p->prepass > training ? p->prepass : training);
}

void mem_plan_print(FILE *f, const MemPlan *p) {
    char b0[32], b1[32], b2[32], b3[32];
    const size_t act = p->act_bytes;
    fprintf(f, "memory: %s planned on %s%s\n", human_bytes(b0, p->peak), p->backend, p->world > 1 ? ", per rank" : "");
    fprintf(f, "  weights      %s (vision %s, projector %s, decoder %s", human_bytes(b0, p->weights),
            human_bytes(b1, p->params[0] * act), human_bytes(b2, p->params[1] * act), human_bytes(b3, p->params[2] * act));
    if (p->adapters) fprintf(f, ", LoRA adapters %s", human_bytes(b0, p->adapters * act));
    fprintf(f, ")\n");
    if (p->ref_weights) fprintf(f, "  reference    %s (a frozen copy of the weights: --ref online)\n", human_bytes(b0, p->ref_weights));
    fprintf(f, "  gradients    %s (trained parts only)\n", human_bytes(b0, p->grads));
    fprintf(f, "  optimizer    %s (AdamW moments %s", human_bytes(b0, p->optim), human_bytes(b1, p->optim - p->master));
    if (p->master) fprintf(f, ", fp32 master weights %s", human_bytes(b0, p->master));
    if (p->world > 1) fprintf(f, "; each rank's 1/%d: ZeRO-1", p->world);
    fprintf(f, ")\n");
    fprintf(f, "  activations  %s:", human_bytes(b0, p->acts + p->ref_acts));
    for (int i = 0; i < p->n_sections; i++) fprintf(f, "%s %s %s", i ? "," : "", p->section_name[i], human_bytes(b0, p->section_bytes[i]));
    if (p->ref_acts) fprintf(f, " (the online reference's forward %s of it)", human_bytes(b0, p->ref_acts));
    fprintf(f, "\n");
    if (p->prepass)
        fprintf(f, "  pre-pass     %s (the frozen tower's features and the cached reference: forward arenas, freed before training)\n", human_bytes(b0, p->prepass));
    if (p->eval) fprintf(f, "  evaluation   %s (the --val forward arena, while an evaluation runs)\n", human_bytes(b0, p->eval));
}

// ---------------------------------------------------------------------------------------------------
// a backend that allocates nothing
//
// plan_compute runs the initialization code of train_run against this backend. Its malloc records the size
// asked for and returns an address no buffer has: pointer arithmetic on it (act_at, the arenas' second pass)
// works, and the plan runs no op, so nothing ever reads or writes there. Only the memory entries are filled;
// the read-backs die, since a host buffer filled from no memory would be a silent wrong answer.

static struct {
    size_t in_use, peak;
    uintptr_t next;            // the next address handed out
    uintptr_t *addr;           // (n) live buffers and their sizes, for dry_free
    size_t *bytes;
    int n, cap;
} dry;

static void *dry_malloc(size_t bytes) {
    if (dry.n == dry.cap) {
        dry.cap = dry.cap ? 2 * dry.cap : 64;
        dry.addr = xrealloc(dry.addr, sizeof(uintptr_t) * dry.cap);
        dry.bytes = xrealloc(dry.bytes, sizeof(size_t) * dry.cap);
    }
    const uintptr_t p = dry.next;
    dry.next += (bytes + 2 * 4096) & ~(uintptr_t)4095;  // distinct addresses, a gap between buffers
    dry.addr[dry.n] = p;
    dry.bytes[dry.n++] = bytes;
    dry.in_use += bytes;
    if (dry.in_use > dry.peak) dry.peak = dry.in_use;
    return (void *)p;
}

static void dry_free(void *ptr) {
    if (!ptr) return;
    for (int i = 0; i < dry.n; i++)
        if (dry.addr[i] == (uintptr_t)ptr) {
            dry.in_use -= dry.bytes[i];
            dry.addr[i] = dry.addr[--dry.n];
            dry.bytes[i] = dry.bytes[dry.n];
            return;
        }
    fatal("internal: the memory plan freed a buffer it did not allocate");
}

static void dry_zero(void *p, size_t bytes) {}
static void dry_copy(void *dst, const void *src, size_t bytes) {}
static void dry_upload_act(void *dst, const float *host, size_t n) {}
static void dry_upload_acc(void *dst, const double *host, size_t n) {}
static void dry_synchronize(void) {}
static void dry_to_host(void *host, const void *src, size_t bytes) { fatal("internal: the memory plan read device memory"); }
static void dry_download_act(float *host, const void *src, size_t n) { fatal("internal: the memory plan read device memory"); }
static void dry_download_acc(double *host, const void *src, size_t n) { fatal("internal: the memory plan read device memory"); }

static Backend dry_backend = {
    .malloc = dry_malloc, .free = dry_free, .zero = dry_zero, .copy = dry_copy, .to_device = dry_copy,
    .to_host = dry_to_host, .upload_act = dry_upload_act, .download_act = dry_download_act,
    .upload_acc = dry_upload_acc, .download_acc = dry_download_acc, .synchronize = dry_synchronize,
};

#ifdef VLM_CUDA
extern const Backend backend_cuda;
#endif

// The element sizes of the target backend ("cuda", "cpu" or "cpu64"), read from the backend itself; a build
// without nvcc plans the CUDA backend's default types, bf16 act and fp32 acc (floatX in cuda/common.cuh).
static const Backend *dry_start(const char *target) {
    free(dry.addr);
    free(dry.bytes);
    memset(&dry, 0, sizeof(dry));
    dry.next = (uintptr_t)1 << 44;
    const Backend *real = !strcmp(target, "cpu") ? &backend_cpu : !strcmp(target, "cpu64") ? &backend_cpu64 : NULL;
#ifdef VLM_CUDA
    if (!strcmp(target, "cuda")) real = &backend_cuda;
#endif
    CHECK_OR_DIE(real || !strcmp(target, "cuda"), "memory plan: unknown backend '%s'", target);
    dry_backend.name = target;
    dry_backend.act_bytes = real ? real->act_bytes : 2;
    dry_backend.acc_bytes = real ? real->acc_bytes : 4;
    return &dry_backend;
}

// ---------------------------------------------------------------------------------------------------

// train_run's allocations, in its order: llava_train_open (train/trainer.c) allocates the model, the adapters,
// the reference (a frozen copy, or the pre-pass's arena, freed) and the training arenas; then train_run
// (train/run.c) the optimizer's state; each evaluation its arena, freed.
void plan_compute(Plan *p, const PlanSpec *s) {
    memset(p, 0, sizeof(*p));
    if (s->batch < 1 || s->prompt_len < 1 || s->response_len < 1)
        fatal("memory plan: --batch, --prompt-len and --response-len must be at least 1");
    CHECK_OR_DIE(s->recipe->model == MODEL_LLAVA, "memory plan: recipe %s does not train a LLaVA model", s->recipe->name);
    const Backend *be = dry_start(s->backend);
    const int online = s->recipe->uses_reference && s->ref_online, cached = s->recipe->uses_reference && !s->ref_online;
    char err[256];
    if (llava_check_row_length(&s->cfg, s->prompt_len + s->cfg.image_tokens + s->response_len, err, sizeof(err)))
        fatal("memory plan: rows of %d prompt + %d image + %d response tokens: %s", s->prompt_len, s->cfg.image_tokens,
              s->response_len, err);
    // the policy: weights, and gradients of the trained parts
    Llava m;
    llava_init(&m, be, &s->cfg, s->trainable);
    Lora lo;
    const int have_lora = s->lora.r > 0;
    if (have_lora) {
        if (s->trainable.train_text) fatal("memory plan: with LoRA the decoder's own weights stay frozen (leave decoder out of --train)");
        lora_layout(&lo, &m.lm, &s->lora);
        m.lm.lora = &lo;
    }
    // the stores the optimizer updates
    ParamStore *trained[4];
    int n = 0;
    if (m.ps_vision.grad) trained[n++] = &m.ps_vision;
    if (m.ps_projector.grad) trained[n++] = &m.ps_projector;
    if (m.ps_text.grad) trained[n++] = &m.ps_text;
    if (have_lora) trained[n++] = &lo.ps;
    if (n == 0) fatal("memory plan: nothing to train (--train names no part)");
    // the online reference without LoRA: a frozen second copy (with LoRA: the policy with its adapters off)
    Llava ref;
    const int ref_copy = online && !have_lora;
    if (ref_copy) llava_init(&ref, be, &s->cfg, (LlavaTrainable){0, 0, 0});
    // one example of the planned lengths gives the batch capacities, as the data file's longest rows would
    TrainData d;
    train_data_synthetic(&d, s->recipe, 1, &s->cfg, s->prompt_len, s->response_len, 0, 1);
    TrainBatch tb;
    train_batch_init(&tb, &d, s->batch, s->pack);
    BatchActs pre, acts, ref_acts, ev;
    size_t prepass = 0, eval = 0;
    if (train_caches_features(&m, s->cfg.vision.image_size, s->fresh_crops)) {  // a frozen tower's features, computed once, freed
        LlavaActs fa;
        llava_features_acts_init(&fa, &m);
        prepass = fa.arena.cap;
        llava_acts_free(&fa);
    }
    if (cached) {  // the pre-pass: a forward-only arena, freed before training (again for --val's examples)
        batch_acts_init(&pre, &m, &tb, ACTS_INFERENCE);
        const size_t b = acts_bytes(NULL, &pre);
        if (b > prepass) prepass = b;
        batch_acts_free(&pre);
    }
    batch_acts_init(&acts, &m, &tb, s->recompute ? ACTS_BACKWARD_RECOMPUTE : ACTS_BACKWARD);
    if (online) batch_acts_init(&ref_acts, ref_copy ? &ref : &m, &tb, ACTS_INFERENCE);
    // train_run: the optimizer, one state buffer per trained store (train/optim.c), 1/world of it under ZeRO-1
    void *state[4];
    const int world = s->world > 1 ? s->world : 1;
    for (int i = 0; i < n; i++) state[i] = be->malloc(optim_state_bytes(be, dist_shard_cap(trained[i]->numel, world), NULL));
    if (s->with_val) {  // each evaluation: a forward-only arena next to the training ones
        batch_acts_init(&ev, &m, &tb, ACTS_INFERENCE);
        eval = acts_bytes(NULL, &ev);
        batch_acts_free(&ev);
    }
    mem_plan_stores(&p->mem, &m, trained, n, ref_copy ? &ref : NULL, world);
    mem_plan_acts(&p->mem, &acts, online ? &ref_acts : NULL);
    p->mem.prepass = prepass;
    p->mem.eval = eval;
    mem_plan_finish(&p->mem);
    // the terms must add up to what the initialization code asked the backend for
    CHECK_OR_DIE(p->mem.peak == dry.peak, "memory plan: the terms add up to %zu bytes, the initialization allocated %zu at most",
                 p->mem.peak, dry.peak);
    p->logical_rows = tb.cap_rows;
    p->images = tb.cap_images;
    for (int g = 0; g < 2; g++) {
        p->rows[g] = tb.g[g].cap_rows;
        p->len[g] = tb.g[g].cap_rows ? tb.g[g].cap_len : 0;
        p->outs[g] = tb.g[g].cap_rows ? tb.g[g].cap_out : 0;
    }
    for (int i = 0; i < n; i++) be->free(state[i]);
    if (online) batch_acts_free(&ref_acts);
    batch_acts_free(&acts);
    train_batch_free(&tb);
    train_data_free(&d);
    if (ref_copy) llava_free(&ref);
    if (have_lora) { m.lm.lora = NULL; lora_free(&lo); }
    llava_free(&m);
    CHECK_OR_DIE(dry.in_use == 0, "memory plan: %zu bytes left allocated", dry.in_use);
}

// ---------------------------------------------------------------------------------------------------
// vlm train --plan

// Device memory as nvidia-smi reports it (MiB): H200; H100 80GB (the A100 80GB has 81,920).
typedef struct { const char *name; double mib; } Gpu;
static const Gpu gpus[2] = {{"H200 141GB", 143771}, {"80GB GPU", 81559}};
// What the CUDA backend holds beside its malloc: the context, cuBLASLt's and cuDNN's workspaces, the kernels'
// scratch buffer (cuda_scratch, attention's included), none of them planned term by term. Measured on the H100
// at the llava-1.4b shape: 0.6 to 0.85 GiB over this plan (README, "The memory plan").
#define RUNTIME_RESERVE ((size_t)1 << 30)

static int fits(const MemPlan *p, const Gpu *g) { return (double)(p->peak + RUNTIME_RESERVE) <= g->mib * 1048576.0; }

// "projector + decoder", "vision + projector + LoRA r1024", ...
static void parts_label(char *buf, size_t n, const PlanSpec *s) {
    const int on[3] = {s->trainable.train_vision, s->trainable.train_projector, s->trainable.train_text};
    size_t k = 0;
    buf[0] = 0;
    for (int i = 0; i < 3; i++)
        if (on[i]) k += (size_t)snprintf(buf + k, n - k, "%s%s", k ? " + " : "", part_names[i]);
    if (s->lora.r > 0) snprintf(buf + k, n - k, "%sLoRA r%d", k ? " + " : "", s->lora.r);
}

// "ZeRO-1 x8, projector + decoder, --recompute, cached ref"
static void variant_label(char *buf, size_t n, const PlanSpec *s) {
    char parts[96];
    parts_label(parts, sizeof(parts), s);
    size_t k = 0;
    if (s->world > 1) k += (size_t)snprintf(buf, n, "ZeRO-1 x%d, ", s->world);
    k += (size_t)snprintf(buf + k, n - k, "%s, %s", parts, s->recompute ? "--recompute" : "acts kept");
    if (s->recipe->uses_reference) snprintf(buf + k, n - k, ", %s ref", s->ref_online ? "online" : "cached");
}

static void variant_row(FILE *f, const PlanSpec *s, const MemPlan *m, int gpu) {
    char label[160], b[6][32];
    variant_label(label, sizeof(label), s);
    const size_t ref = m->ref_weights + m->ref_acts;
    fprintf(f, "  %-56s %10s %10s %10s %11s %10s %10s", label, human_bytes(b[0], m->weights), human_bytes(b[1], m->grads),
            human_bytes(b[2], m->optim), human_bytes(b[3], m->acts), ref ? human_bytes(b[4], ref) : "-", human_bytes(b[5], m->peak));
    if (gpu) for (int g = 0; g < 2; g++) fprintf(f, " %10s", fits(m, &gpus[g]) ? "fits" : "no");
    fprintf(f, "\n");
}

// "one H200 141GB, projector + decoder, --recompute, cached ref: 102.29 GiB + 1 GiB runtime of 140.40 GiB: fits"
static void verdict(FILE *f, const char *where, const PlanSpec *s, const MemPlan *m, const Gpu *g) {
    char label[160], b0[32], b1[32];
    variant_label(label, sizeof(label), s);
    const double cap = g->mib * 1048576.0, need = (double)(m->peak + RUNTIME_RESERVE);
    fprintf(f, "  %s, %s: %s + 1 GiB runtime of %.2f GiB per GPU: %s\n", where, label, human_bytes(b0, m->peak),
            cap / 1073741824.0, need <= cap ? "fits" : (snprintf(b1, sizeof(b1), "does not fit (%.2f GiB short)", (need - cap) / 1073741824.0), b1));
}

// "6.74 B", "290.9 M", "12,345"
static void count_label(char *buf, double n) {
    if (n >= 1e9) snprintf(buf, 32, "%.2f B", n / 1e9);
    else if (n >= 1e6) snprintf(buf, 32, "%.1f M", n / 1e6);
    else snprintf(buf, 32, "%.0f", n);
}

void plan_spec_init(PlanSpec *s, const TrainConfig *c, const char *shape, int prompt_len, int response_len, int world) {
    if (c->recipe->model != MODEL_LLAVA) {  // the recipes it covers, from the table
        char names[256] = "";
        size_t k = 0;
        for (int i = 0; recipe_at(i); i++)
            if (recipe_at(i)->model == MODEL_LLAVA && k < sizeof(names))
                k += (size_t)snprintf(names + k, sizeof(names) - k, "%s%s", k ? ", " : "", recipe_at(i)->name);
        fatal("vlm train --plan: the plan covers the LLaVA recipes (%s); --recipe %s trains a CLIPModel", names, c->recipe->name);
    }
    memset(s, 0, sizeof(*s));
    if (shape) {
        if (llava_config_preset(&s->cfg, shape)) fatal("vlm train --plan: --shape '%s': expected llava-1.4b, llava-7b, llava-tiny or llava-demo", shape);
    } else if (c->model_dir) llava_config_load(&s->cfg, c->model_dir);  // config.json only: no weights are read
    else fatal("vlm train --plan: --model DIR (its config.json) or --shape NAME is required");
    s->recipe = c->recipe;
    s->batch = c->batch;
    s->prompt_len = prompt_len;
    s->response_len = response_len;
    s->pack = c->pack;
    s->recompute = c->recompute;
    s->ref_online = c->ref_online;
    s->fresh_crops = c->recipe->second_image == IMAGE2_CROP && !c->crop_fixed;
    s->with_val = c->val_path != NULL;
    s->trainable = c->trainable;
    s->lora = c->lora;
    s->world = world;
    s->backend = c->device && (!strcmp(c->device, "cpu") || !strcmp(c->device, "cpu64")) ? c->device : "cuda";
}

int plan_train(FILE *f, const TrainConfig *c, const char *shape, int prompt_len, int response_len, int world) {
    PlanSpec s;
    plan_spec_init(&s, c, shape, prompt_len, response_len, world);
    const int gpu = !strcmp(s.backend, "cuda"), pref = s.recipe->uses_reference, R = s.recipe->n_rows;
    Plan run;
    plan_compute(&run, &s);

    fprintf(f, "vlm train --plan: recipe %s, model %s, %s.\n"
               "Nothing is allocated: the sizes are those of the layouts a run allocates (parameter registration, the\n"
               "activation arenas' measure pass, the optimizer's state).\n\n",
            s.recipe->name, shape ? shape : c->model_dir,
            gpu ? (run.mem.act_bytes == 2 ? "CUDA backend\n(bf16 weights, gradients and activations; fp32 master weights and AdamW moments)"
                                          : "CUDA backend (its fp32 build: fp32 throughout)")
                : run.mem.act_bytes == 8 ? "CPU backend (fp64 throughout, in host memory)" : "CPU backend (fp32 throughout, in host memory)");
    char n0[32], n1[32], n2[32];
    count_label(n0, (double)run.mem.params[0]);
    count_label(n1, (double)run.mem.params[1]);
    count_label(n2, (double)run.mem.params[2]);
    fprintf(f, "model        vision %s parameters (%s), projector %s (%s), decoder %s (%s)", n0, run.mem.trained[0] ? "trained" : "frozen",
            n1, run.mem.trained[1] ? "trained" : "frozen", n2, run.mem.trained[2] ? "trained" : "frozen");
    if (run.mem.adapters) {
        count_label(n0, (double)run.mem.adapters);
        fprintf(f, ",\n             LoRA adapters %s (rank %d)", n0, s.lora.r);
    }
    fprintf(f, "\nmicro-batch  %d example%s of %d row%s each (train/data.h) and %d image%s, run as\n            ", s.batch,
            s.batch > 1 ? "s" : "", R, R > 1 ? "s" : "", run.images, run.images != 1 ? "s" : "");
    for (int g = 0; g < 2; g++)
        if (run.rows[g]) fprintf(f, "%s %d %srow%s of %d tokens", g && run.rows[0] ? " and" : "", run.rows[g], g ? "image-free " : "",
                                 run.rows[g] > 1 ? "s" : "", run.len[g]);
    fprintf(f, "%s,\n             %d labelled positions; rows of %d prompt + %d response text tokens (--prompt-len,\n"
               "             --response-len: the data file is not read) and %d tokens per image\n",
            run.logical_rows > run.rows[0] + run.rows[1] ? " (image + prompt prefixes shared)" : "", run.outs[0] + run.outs[1], s.prompt_len,
            s.response_len, s.cfg.image_tokens);
    fprintf(f, "\nthis run (%s%s%s):\n", s.recompute ? "--recompute" : "activations kept",
            pref ? (s.ref_online ? ", --ref online" : ", cached reference") : "", world > 1 ? ", ZeRO-1" : "");
    mem_plan_print(f, &run.mem);
    if (pref && !s.ref_online) fprintf(f, "  (the cached reference keeps %d doubles per example in host memory)\n", R);
    if (world > 1)
        fprintf(f, "  (ZeRO-1 over %d ranks, as mpirun -np %d vlm train allocates it: each rank 1/%d of the optimizer state)\n", world,
                world, world);
    if (gpu) fprintf(f, "  (beside the plan the CUDA runtime holds about 1 GiB: context, cuBLASLt and cuDNN workspaces, kernel scratch)\n");

    // what-if variants of the same model, recipe and micro-batch
    PlanSpec full = s, lora = s;
    full.lora.r = 0;
    full.trainable.train_text = 1;
    full.world = 1;
    lora.trainable.train_text = 0;
    if (lora.lora.r == 0) lora.lora = (LoraConfig){1024, 2048, 0.05f, (1u << LORA_TARGETS) - 1};  // SeVa's (methods.md §3.3)
    lora.world = 1;
    const int zworld = world > 1 ? world : 8;  // S-VCO's and SeVa's runs used 8 GPUs
    PlanSpec v[7];
    int nv = 0;
    v[nv] = full; v[nv].recompute = 0; v[nv++].ref_online = 0;
    const int i_h200 = nv;
    v[nv] = full; v[nv].recompute = 1; v[nv++].ref_online = 0;
    if (pref) { v[nv] = full; v[nv].recompute = 1; v[nv++].ref_online = 1; }
    const int i_lora = nv;
    v[nv] = lora; v[nv].recompute = 1; v[nv++].ref_online = 0;
    if (pref) { v[nv] = lora; v[nv].recompute = 1; v[nv++].ref_online = 1; }
    const int i_zero = nv;
    v[nv] = full; v[nv].recompute = 1; v[nv].ref_online = 0; v[nv++].world = zworld;
    v[nv] = full; v[nv].recompute = 0; v[nv].ref_online = 0; v[nv++].world = zworld;
    for (int i = 0; i < nv; i++) if (!v[i].ref_online) v[i].fresh_crops = 0;  // a cached reference: crops fixed per example
    Plan vp[7];
    fprintf(f, "\nwhat-if, per GPU (optimizer: AdamW moments and fp32 masters; reference: a frozen copy of the weights and its\n"
               "forward arena; LoRA on every linear layer of the decoder%s)\n",
            gpu ? "; fits: peak + 1 GiB runtime within nvidia-smi's total,\nH200 143,771 MiB, 80GB 81,559 MiB" : "");
    fprintf(f, "  %-56s %10s %10s %10s %11s %10s %10s", "variant", "weights", "gradients", "optimizer", "activations", "reference", "peak");
    if (gpu) for (int g = 0; g < 2; g++) fprintf(f, " %10s", gpus[g].name);
    fprintf(f, "\n");
    for (int i = 0; i < nv; i++) {
        plan_compute(&vp[i], &v[i]);
        variant_row(f, &v[i], &vp[i].mem, gpu);
    }
    if (gpu) {
        fprintf(f, "\nverdict\n");
        verdict(f, "one H200 141GB", &v[i_h200], &vp[i_h200].mem, &gpus[0]);
        verdict(f, "one 80GB GPU", &v[i_lora], &vp[i_lora].mem, &gpus[1]);
        char where[64];
        snprintf(where, sizeof(where), "%d x 80GB GPUs", zworld);
        verdict(f, where, &v[i_zero], &vp[i_zero].mem, &gpus[1]);
        fprintf(f, "  ZeRO-1 as mpirun -np %d vlm train runs it: each rank keeps the whole bf16 weights and gradients and its\n"
                   "  1/%d of the fp32 masters and AdamW moments.\n", zworld, zworld);
    }
    return 0;
}
