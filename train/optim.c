#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

Schedule schedule_from_name(const char *name) {
    if (!strcmp(name, "constant")) return SCHED_CONSTANT;
    if (!strcmp(name, "linear")) return SCHED_LINEAR;
    if (!strcmp(name, "cosine")) return SCHED_COSINE;
    fatal("--schedule '%s': expected constant, linear or cosine", name);
}

const char *schedule_name(Schedule s) { return s == SCHED_CONSTANT ? "constant" : s == SCHED_LINEAR ? "linear" : "cosine"; }

// The master copy exists where the act type is narrower than the acc type (bf16 on the GPU).
static int keeps_master(const Backend *be) { return be->act_bytes < be->acc_bytes; }

// Elements from m to v and from v to master in the one buffer of a store: numel rounded up to 64, so each
// starts 256-byte aligned, as a buffer of its own would (the GPU's AdamW takes 16-byte vector loads then).
static size_t state_stride(size_t numel) { return (numel + 63) & ~(size_t)63; }

size_t optim_state_bytes(const Backend *be, size_t numel, size_t *master_bytes) {
    const size_t one = state_stride(numel) * (size_t)be->acc_bytes;
    if (master_bytes) *master_bytes = keeps_master(be) ? one : 0;
    return one * (keeps_master(be) ? 3 : 2);
}

void optim_init(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores) {
    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    o->stores = xmalloc(sizeof(ParamStore *) * n_stores);
    o->m = xcalloc(n_stores, sizeof(void *));
    o->v = xcalloc(n_stores, sizeof(void *));
    o->master = xcalloc(n_stores, sizeof(void *));
    for (int s = 0; s < n_stores; s++) {
        ParamStore *ps = stores[s];
        CHECK_OR_DIE(ps->grad, "store %s has no gradients", ps->label);
        const Backend *be = ps->be;
        const size_t n = ps->numel;
        o->stores[s] = ps;
        o->m[s] = be->malloc(optim_state_bytes(be, n, NULL));  // (3 or 2, stride) acc: m, v, master
        o->v[s] = acc_at(be, o->m[s], state_stride(n));
        if (!keeps_master(be)) continue;
        o->master[s] = acc_at(be, o->m[s], 2 * state_stride(n));
        // the master starts as the narrow weights, converted a chunk at a time: a 7B decoder at once would
        // take 80 GB of host buffers
        const size_t chunk = (size_t)1 << 20;
        float *tmp = xmalloc(sizeof(float) * chunk);
        double *dtmp = xmalloc(sizeof(double) * chunk);
        for (size_t off = 0; off < n; off += chunk) {
            const size_t k = n - off < chunk ? n - off : chunk;
            be->download_act(tmp, act_at(be, ps->data, off), k);
            for (size_t i = 0; i < k; i++) dtmp[i] = tmp[i];
            be->upload_acc(acc_at(be, o->master[s], off), dtmp, k);
        }
        free(tmp);
        free(dtmp);
    }
    o->n_stores = n_stores;
}

void optim_free(Optimizer *o) {
    for (int s = 0; s < o->n_stores; s++) o->stores[s]->be->free(o->m[s]);  // v and master live in m's buffer
    free(o->stores); free(o->m); free(o->v); free(o->master);
    memset(o, 0, sizeof(*o));
}

double optim_lr(const OptimConfig *c, int step) {
    // transformers.get_{constant,linear,cosine}_schedule_with_warmup: the factor at "current_step"
    // (0 for the first update) is step / warmup during warm-up, then the decay over the rest
    double f;
    if (step < c->warmup_steps) f = (double)step / (c->warmup_steps > 1 ? c->warmup_steps : 1);
    else if (c->schedule == SCHED_CONSTANT) f = 1;
    else {
        int span = c->total_steps - c->warmup_steps;
        double progress = (double)(step - c->warmup_steps) / (span > 1 ? span : 1);
        if (c->schedule == SCHED_LINEAR) f = fmax(0.0, 1 - progress);
        else f = fmax(0.0, 0.5 * (1 + cos(M_PI * progress)));
    }
    return c->lr * f;
}

double optim_step(Optimizer *o, double *lr_used) {
    double norm = grad_global_norm(o->stores, o->n_stores);
    float clip = grad_clip_factor(norm, o->cfg.max_grad_norm);
    double lr = optim_lr(&o->cfg, o->step);
    o->step++;
    for (int s = 0; s < o->n_stores; s++) {
        ParamStore *ps = o->stores[s];
        const Backend *be = ps->be;
        // one call per tensor: the weight decay depends on the tensor
        for (int i = 0; i < ps->n; i++) {
            const ParamInfo *p = &ps->info[i];
            be->adamw_update(act_at(be, ps->data, p->offset), o->master[s] ? acc_at(be, o->master[s], p->offset) : NULL,
                             act_at(be, ps->grad, p->offset), acc_at(be, o->m[s], p->offset), acc_at(be, o->v[s], p->offset),
                             p->numel, (float)lr, (float)o->cfg.beta1, (float)o->cfg.beta2, (float)o->cfg.eps,
                             p->decay ? (float)o->cfg.weight_decay : 0.0f, o->step, clip);
        }
    }
    if (lr_used) *lr_used = lr;
    return norm;
}

void optim_zero_grad(Optimizer *o) {
    for (int s = 0; s < o->n_stores; s++) {
        ParamStore *ps = o->stores[s];
        ps->be->zero(ps->grad, ps->numel * ps->be->act_bytes);
    }
}
