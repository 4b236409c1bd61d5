#include "params.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "safetensors.h"

void params_init(ParamStore *ps, const Backend *be, const char *label) {
    memset(ps, 0, sizeof(*ps));
    ps->be = be;
    ps->label = xstrdup(label);
}

void params_free(ParamStore *ps) {
    for (int i = 0; i < ps->n; i++) free(ps->info[i].name);
    free(ps->info);
    free(ps->label);
    if (ps->data) ps->be->free(ps->data);
    if (ps->grad) ps->be->free(ps->grad);
    memset(ps, 0, sizeof(*ps));
}

void params_begin(ParamStore *ps) { ps->cursor = 0; }

void params_end(ParamStore *ps) {
    if (!ps->bound) { ps->bound = 1; return; }  // end of the registration pass
    CHECK_OR_DIE(ps->cursor == ps->n, "%s: bind pass visited %d of %d tensors", ps->label, ps->cursor, ps->n);
}

void *param(ParamStore *ps, void *base, const char *name, int ndim, int64_t d0, int64_t d1, int64_t d2, int64_t d3) {
    int64_t dims[4] = {d0, d1, d2, d3};
    if (!ps->bound) {
        if (ps->n == ps->cap) {
            ps->cap = ps->cap ? 2 * ps->cap : 64;
            ps->info = xrealloc(ps->info, sizeof(ParamInfo) * ps->cap);
        }
        ParamInfo *p = &ps->info[ps->n++];
        memset(p, 0, sizeof(*p));
        p->name = xstrdup(name);
        p->ndim = ndim;
        p->numel = 1;
        for (int i = 0; i < ndim; i++) { p->shape[i] = dims[i]; p->numel *= (size_t)dims[i]; }
        p->offset = ps->numel;
        // torch convention used by HF Trainer: no decay for biases and normalization weights (1-d tensors)
        p->decay = ndim >= 2;
        ps->numel += p->numel;
        return NULL;
    }
    CHECK_OR_DIE(ps->cursor < ps->n, "%s: bind pass asked for more tensors than registered (%s)", ps->label, name);
    ParamInfo *p = &ps->info[ps->cursor++];
    CHECK_OR_DIE(!strcmp(p->name, name), "%s: bind order mismatch: %s vs %s", ps->label, p->name, name);
    return base ? act_at(ps->be, base, p->offset) : NULL;
}

void params_alloc(ParamStore *ps, int with_grad) {
    size_t bytes = ps->numel * (size_t)ps->be->act_bytes;
    ps->data = ps->be->malloc(bytes);
    ps->grad = with_grad ? ps->be->malloc(bytes) : NULL;
}

const ParamInfo *params_find(const ParamStore *ps, const char *name) {
    for (int i = 0; i < ps->n; i++) if (!strcmp(ps->info[i].name, name)) return &ps->info[i];
    return NULL;
}

double params_grad_sumsq(const ParamStore *ps) {
    if (!ps->grad) return 0;
    double s = 0;
    ps->be->sumsq(&s, ps->grad, ps->numel);
    return s;
}

// 64-bit multiply-xor hash, 8 bytes at a time (fast enough for 7B weights at load time)
static unsigned long long hash_bytes(unsigned long long h, const void *data, size_t n) {
    const unsigned char *b = data;
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        unsigned long long w;
        memcpy(&w, b + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    for (; i < n; i++) h = (h ^ b[i]) * 0x100000001B3ULL;
    return h;
}

static void shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, i ? ", %lld" : "%lld", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

void params_load(ParamStore *ps, const SafeTensors *st, NameCandidates candidates) {
    size_t max_numel = 0;
    for (int i = 0; i < ps->n; i++) if (ps->info[i].numel > max_numel) max_numel = ps->info[i].numel;
    float *tmp = xmalloc(sizeof(float) * max_numel);
    for (int i = 0; i < ps->n; i++) {
        ParamInfo *p = &ps->info[i];
        char names[8][256];
        int nc = candidates ? candidates(p->name, names, 8) : 0;
        if (nc == 0) { snprintf(names[0], 256, "%s", p->name); nc = 1; }
        const STTensor *t = NULL;
        for (int c = 0; c < nc && !t; c++) t = st_find(st, names[c]);
        if (!t) fatal("%s: missing tensor '%s' for the %s weights", st->files[0], names[0], ps->label);
        int same = t->numel == p->numel;
        // a scalar may be stored as shape [] or [1]
        if (same && p->numel > 1) {
            same = t->ndim == p->ndim;
            for (int d = 0; same && d < p->ndim; d++) same = t->shape[d] == p->shape[d];
        }
        if (!same) {
            char want[96], got[96];
            shape_str(want, sizeof(want), p->ndim, p->shape);
            shape_str(got, sizeof(got), t->ndim, t->shape);
            fatal("%s: tensor '%s' has shape %s but the config implies %s", st->files[t->shard], t->name, got, want);
        }
        st_to_f32(t, tmp);
        ps->source_hash = hash_bytes(ps->source_hash, tmp, sizeof(float) * p->numel);
        ps->be->upload_act(act_at(ps->be, ps->data, p->offset), tmp, p->numel);
    }
    free(tmp);
}

double grad_global_norm(ParamStore **stores, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += params_grad_sumsq(stores[i]);
    return sqrt(s);
}

float grad_clip_factor(double norm, double max_norm) {
    if (max_norm <= 0) return 1.0f;
    double f = max_norm / (norm + 1e-6);
    return f < 1 ? (float)f : 1.0f;
}

// splitmix64: a small, well-mixed generator for weight initialization
static unsigned long long splitmix64(unsigned long long *state) {
    unsigned long long z = (*state += 0x9E3779B97F4A7C15ULL);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

// Fixed-size chunks, each with its own generator seeded from (seed, tensor, chunk): the values do not
// depend on the thread count, and 1.4B parameters initialize in well under a second on 16 cores.
void params_init_random(ParamStore *ps, unsigned long long seed, float std) {
    const size_t chunk = 1 << 16;
    size_t max_numel = 0;
    for (int i = 0; i < ps->n; i++) if (ps->info[i].numel > max_numel) max_numel = ps->info[i].numel;
    float *tmp = xmalloc(sizeof(float) * (max_numel ? max_numel : 1));
    for (int i = 0; i < ps->n; i++) {
        const ParamInfo *p = &ps->info[i];
        // matrices, embeddings and the class token are drawn; norm weights start at 1, biases at 0
        int drawn = p->ndim >= 2 || strstr(p->name, "class_embedding");
        const size_t nl = strlen(p->name);
        int is_norm_weight = (strstr(p->name, "norm") || strstr(p->name, "layrnorm")) && nl > 6 && !strcmp(p->name + nl - 6, "weight");
        size_t nchunks = (p->numel + chunk - 1) / chunk;
        #pragma omp parallel for schedule(static)
        for (size_t c = 0; c < nchunks; c++) {
            unsigned long long state = seed * 0x9E3779B97F4A7C15ULL ^ ((unsigned long long)i << 40) ^ c;
            size_t end = (c + 1) * chunk < p->numel ? (c + 1) * chunk : p->numel;
            for (size_t k = c * chunk; k < end; k += 2) {
                if (!drawn) { tmp[k] = is_norm_weight ? 1.0f : 0.0f; if (k + 1 < end) tmp[k + 1] = tmp[k]; continue; }
                double u1 = ((splitmix64(&state) >> 11) + 0.5) / 9007199254740992.0;
                double u2 = ((splitmix64(&state) >> 11) + 0.5) / 9007199254740992.0;
                double r = std * sqrt(-2 * log(u1));  // Box-Muller: two normals per pair of uniforms
                tmp[k] = (float)(r * cos(2 * M_PI * u2));
                if (k + 1 < end) tmp[k + 1] = (float)(r * sin(2 * M_PI * u2));
            }
        }
        ps->be->upload_act(act_at(ps->be, ps->data, p->offset), tmp, p->numel);
    }
    free(tmp);
}
