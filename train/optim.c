#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "dist.h"

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

void optim_init_dist(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores, int zero) {
    memset(o, 0, sizeof(*o));
    o->cfg = *cfg;
    o->world = dist_world();
    o->sharded = zero && o->world > 1;
    o->stores = xmalloc(sizeof(ParamStore *) * n_stores);
    o->m = xcalloc(n_stores, sizeof(void *));
    o->v = xcalloc(n_stores, sizeof(void *));
    o->master = xcalloc(n_stores, sizeof(void *));
    o->shard_lo = xcalloc(n_stores, sizeof(size_t));
    o->shard_hi = xcalloc(n_stores, sizeof(size_t));
    for (int s = 0; s < n_stores; s++) {
        ParamStore *ps = stores[s];
        CHECK_OR_DIE(ps->grad, "store %s has no gradients", ps->label);
        const Backend *be = ps->be;
        o->stores[s] = ps;
        if (o->sharded) dist_shard_of(ps->numel, dist_rank(), &o->shard_lo[s], &o->shard_hi[s]);
        else o->shard_hi[s] = ps->numel;
        // every rank allocates a whole shard's room (ceil(numel / world)), as the memory plan counts it
        const size_t n = o->sharded ? dist_shard_cap(ps->numel, o->world) : ps->numel, lo = o->shard_lo[s];
        const size_t mine = o->shard_hi[s] - lo;
        o->m[s] = be->malloc(optim_state_bytes(be, n, NULL));  // (3 or 2, stride) acc: m, v, master
        o->v[s] = acc_at(be, o->m[s], state_stride(n));
        if (!keeps_master(be)) continue;
        o->master[s] = acc_at(be, o->m[s], 2 * state_stride(n));
        // the master starts as the narrow weights, converted a chunk at a time: a 7B decoder at once would
        // take 80 GB of host buffers
        const size_t chunk = (size_t)1 << 20;
        float *tmp = xmalloc(sizeof(float) * chunk);
        double *dtmp = xmalloc(sizeof(double) * chunk);
        for (size_t off = 0; off < mine; off += chunk) {
            const size_t k = mine - off < chunk ? mine - off : chunk;
            be->download_act(tmp, act_at(be, ps->data, lo + off), k);
            for (size_t i = 0; i < k; i++) dtmp[i] = tmp[i];
            be->upload_acc(acc_at(be, o->master[s], off), dtmp, k);
        }
        free(tmp);
        free(dtmp);
    }
    o->n_stores = n_stores;
}

void optim_init(Optimizer *o, const OptimConfig *cfg, ParamStore **stores, int n_stores) {
    optim_init_dist(o, cfg, stores, n_stores, 0);
    CHECK_OR_DIE(o->world == 1, "optim_init in a data-parallel job: optim_init_dist sums the ranks' gradients");
}

void optim_free(Optimizer *o) {
    for (int s = 0; s < o->n_stores; s++) o->stores[s]->be->free(o->m[s]);  // v and master live in m's buffer
    free(o->stores); free(o->m); free(o->v); free(o->master); free(o->shard_lo); free(o->shard_hi);
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

// The global gradient norm over ranks: each store's sum of squares per shard (every rank's shard, by the rank
// that holds its sum), added stores outer, shards in rank order, the same on every rank and in both modes.
static double dist_grad_norm(const Optimizer *o) {
    const int W = o->world, S = o->n_stores;
    double *mine = xcalloc((size_t)S * W, sizeof(double)), *all = xmalloc(sizeof(double) * S * W * W);
    for (int s = 0; s < S; s++) {
        const ParamStore *ps = o->stores[s];
        for (int r = 0; r < W; r++) {
            size_t lo, hi;
            dist_shard_of(ps->numel, r, &lo, &hi);
            // sharded: only rank r holds shard r's sum; unsharded: every rank holds all of them
            if ((o->sharded && r != dist_rank()) || hi == lo) continue;
            ps->be->sumsq(&mine[s * W + r], act_at(ps->be, ps->grad, lo), hi - lo);
        }
    }
    dist_all_gather_doubles(mine, S * W, all);
    double sum = 0;
    for (int s = 0; s < S; s++)
        for (int r = 0; r < W; r++) sum += all[((size_t)(o->sharded ? r : 0) * S + s) * W + r];
    free(mine);
    free(all);
    return sqrt(sum);
}

double optim_step(Optimizer *o, double *lr_used) {
    // the ranks' gradients summed: each rank's shard reduced at that rank (unsharded: then gathered whole)
    for (int s = 0; s < o->n_stores && o->world > 1; s++) {
        ParamStore *ps = o->stores[s];
        dist_reduce_scatter(ps->be, ps->grad, ps->numel);
        if (!o->sharded) dist_all_gather(ps->be, ps->grad, ps->numel);
    }
    double norm = o->world > 1 ? dist_grad_norm(o) : grad_global_norm(o->stores, o->n_stores);
    float clip = grad_clip_factor(norm, o->cfg.max_grad_norm);
    double lr = optim_lr(&o->cfg, o->step);
    o->step++;
    for (int s = 0; s < o->n_stores; s++) {
        ParamStore *ps = o->stores[s];
        const Backend *be = ps->be;
        const size_t lo = o->shard_lo[s], hi = o->shard_hi[s];
        // one call per tensor (the weight decay depends on the tensor), on the part of it in this rank's shard;
        // AdamW is elementwise, so the parts give the bits of the whole
        for (int i = 0; i < ps->n; i++) {
            const ParamInfo *p = &ps->info[i];
            const size_t a = p->offset > lo ? p->offset : lo, b = p->offset + p->numel < hi ? p->offset + p->numel : hi;
            if (a >= b) continue;
            be->adamw_update(act_at(be, ps->data, a), o->master[s] ? acc_at(be, o->master[s], a - lo) : NULL,
                             act_at(be, ps->grad, a), acc_at(be, o->m[s], a - lo), acc_at(be, o->v[s], a - lo), b - a,
                             (float)lr, (float)o->cfg.beta1, (float)o->cfg.beta2, (float)o->cfg.eps,
                             p->decay ? (float)o->cfg.weight_decay : 0.0f, o->step, clip);
        }
        if (o->sharded) dist_all_gather(be, ps->data, ps->numel);  // every rank's updated shard to every rank
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

static void *state_buffer(const Optimizer *o, int s, int k) { return k == 0 ? o->m[s] : k == 1 ? o->v[s] : o->master[s]; }

void *optim_state_download(const Optimizer *o, int s, int k) {
    if (!state_buffer(o, s, k)) return NULL;
    const ParamStore *ps = o->stores[s];
    const Backend *be = ps->be;
    const size_t lo = o->shard_lo[s], mine = o->shard_hi[s] - lo, bytes = (size_t)be->acc_bytes;
    const int root = dist_rank() == 0;
    // rank 0 holds the whole buffer; another rank only its own shard, sent from where rank 0 would hold it
    char *host = xmalloc((root || !o->sharded ? ps->numel : o->shard_hi[s]) * bytes + 1);
    be->to_host(host + lo * bytes, state_buffer(o, s, k), mine * bytes);
    if (o->sharded) dist_gather_to_root(host, ps->numel, be->acc_bytes);
    if (root) return host;
    free(host);
    return NULL;
}

void optim_state_upload(Optimizer *o, int s, int k, const void *shard) {
    if (!state_buffer(o, s, k)) return;
    const Backend *be = o->stores[s]->be;
    be->to_device(state_buffer(o, s, k), shard, (o->shard_hi[s] - o->shard_lo[s]) * (size_t)be->acc_bytes);
}
