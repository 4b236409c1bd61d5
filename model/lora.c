#include "lora.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"
#include "llama.h"

static const char *target_names[LORA_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"};
static const char *short_names[LORA_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

unsigned lora_targets_parse(const char *list) {
    if (!strcmp(list, "all")) return (1u << LORA_TARGETS) - 1;
    unsigned mask = 0;
    char *copy = xstrdup(list);
    for (char *t = strtok(copy, ","); t; t = strtok(NULL, ",")) {
        int found = -1;
        for (int k = 0; k < LORA_TARGETS; k++)
            if (!strcmp(t, short_names[k]) || !strcmp(t, target_names[k])) found = k;
        if (found < 0) fatal("LoRA target '%s': expected q, k, v, o, gate, up, down (or all)", t);
        mask |= 1u << found;
    }
    free(copy);
    if (!mask) fatal("LoRA targets: none given");
    return mask;
}

void lora_targets_format(unsigned mask, char *buf, size_t len) {
    if (mask == (1u << LORA_TARGETS) - 1) { snprintf(buf, len, "all"); return; }
    size_t k = 0;
    buf[0] = 0;
    for (int t = 0; t < LORA_TARGETS; t++)
        if (mask >> t & 1) k += snprintf(buf + k, k < len ? len - k : 0, "%s%s", k ? "," : "", short_names[t]);
}

void lora_geometry(const Llama *m, int t, int *in, int *out, int *col) {
    const int D = m->cfg.hidden, F = m->cfg.intermediate;
    switch (t) {
    case LORA_Q: *in = D; *out = m->qdim; *col = 0; break;
    case LORA_K: *in = D; *out = m->kvdim; *col = m->qdim; break;
    case LORA_V: *in = D; *out = m->kvdim; *col = m->qdim + m->kvdim; break;
    case LORA_O: *in = m->qdim; *out = D; *col = 0; break;
    case LORA_GATE: *in = D; *out = F; *col = 0; break;
    case LORA_UP: *in = D; *out = F; *col = F; break;
    default: *in = F; *out = D; *col = 0; break;
    }
}

static void lora_bind(Lora *lo, const Llama *m, void *base, int grads) {
    char n[256];
    params_begin(&lo->ps);
    for (int l = 0; l < lo->layers; l++) {
        LoraLayerW *L = grads ? &lo->g[l] : &lo->w[l];
        for (int t = 0; t < LORA_TARGETS; t++) {
            L->A[t] = L->B[t] = NULL;
            if (!(lo->cfg.targets & (1u << t))) continue;
            int in, out, col;
            lora_geometry(m, t, &in, &out, &col);
            const char *block = t <= LORA_O ? "self_attn" : "mlp";
            snprintf(n, sizeof(n), "model.language_model.layers.%d.%s.%s.lora_A.weight", l, block, target_names[t]);
            L->A[t] = param(&lo->ps, base, n, 2, lo->cfg.r, in, 0, 0);
            snprintf(n, sizeof(n), "model.language_model.layers.%d.%s.%s.lora_B.weight", l, block, target_names[t]);
            L->B[t] = param(&lo->ps, base, n, 2, out, lo->cfg.r, 0, 0);
        }
    }
    params_end(&lo->ps);
}

void lora_layout(Lora *lo, const Llama *m, const LoraConfig *cfg) {
    memset(lo, 0, sizeof(*lo));
    if (cfg->r < 1) fatal("LoRA rank must be at least 1, got %d", cfg->r);
    if (cfg->dropout < 0 || cfg->dropout >= 1) fatal("LoRA dropout must be in [0, 1), got %g", cfg->dropout);
    lo->cfg = *cfg;
    lo->scale = cfg->alpha / cfg->r;
    lo->layers = m->cfg.layers;
    lo->enabled = 1;
    lo->w = xcalloc(lo->layers, sizeof(LoraLayerW));
    lo->g = xcalloc(lo->layers, sizeof(LoraLayerW));
    params_init(&lo->ps, m->be, "lora");
    lora_bind(lo, m, NULL, 0);
    params_alloc(&lo->ps, 1);
    lora_bind(lo, m, lo->ps.data, 0);
    lora_bind(lo, m, lo->ps.grad, 1);
}

void lora_init(Lora *lo, const Llama *m, const LoraConfig *cfg, unsigned long long seed) {
    lora_layout(lo, m, cfg);
    // A ~ U(-1/sqrt(in), 1/sqrt(in)) (torch's kaiming_uniform_ with a = sqrt(5), as PEFT), B = 0
    unsigned long long st = seed * 0x9E3779B97F4A7C15ULL + 7;
    for (int i = 0; i < lo->ps.n; i++) {
        const ParamInfo *p = &lo->ps.info[i];
        if (!strstr(p->name, "lora_A")) continue;
        float *tmp = xmalloc(sizeof(float) * p->numel), bound = 1.0f / sqrtf((float)p->shape[1]);
        for (size_t k = 0; k < p->numel; k++) {
            st = st * 6364136223846793005ULL + 1442695040888963407ULL;
            tmp[k] = bound * (float)(((double)(st >> 11) / 4503599627370496.0) - 1.0);
        }
        m->be->upload_act(act_at(m->be, lo->ps.data, p->offset), tmp, p->numel);
        free(tmp);
    }
}

void lora_free(Lora *lo) {
    params_free(&lo->ps);
    free(lo->w);
    free(lo->g);
}

void lora_merge(const Lora *lo, Llama *m) {
    const Backend *be = m->be;
    const int D = m->cfg.hidden;
    for (int l = 0; l < lo->layers; l++)
        for (int t = 0; t < LORA_TARGETS; t++) {
            if (!lo->w[l].A[t]) continue;
            int in, out, col;
            lora_geometry(m, t, &in, &out, &col);
            // the module's rows of its (fused) weight matrix: (out, in) starting at row `col`
            void *W = t <= LORA_V ? m->lw[l].qkv_w : t == LORA_O ? m->lw[l].o_w : t <= LORA_UP ? m->lw[l].gu_w : m->lw[l].down_w;
            W = act_at(be, W, (size_t)col * in);
            // delta (out, in) = B (out, r) A (r, in): a matmul with A^T as the "weight" (in, r)
            float *a = xmalloc(sizeof(float) * lo->cfg.r * in), *at = xmalloc(sizeof(float) * lo->cfg.r * in);
            be->download_act(a, lo->w[l].A[t], (size_t)lo->cfg.r * in);
            for (int i = 0; i < lo->cfg.r; i++) for (int j = 0; j < in; j++) at[(size_t)j * lo->cfg.r + i] = a[(size_t)i * in + j];
            void *atd = be->malloc((size_t)lo->cfg.r * in * be->act_bytes), *delta = be->malloc((size_t)out * in * be->act_bytes);
            be->upload_act(atd, at, (size_t)lo->cfg.r * in);
            be->matmul_forward(delta, lo->w[l].B[t], atd, NULL, out, lo->cfg.r, in);  // (out, r) @ (in, r)^T
            be->add_strided(W, in, delta, in, out, in, lo->scale);
            be->free(atd);
            be->free(delta);
            free(a);
            free(at);
        }
    (void)D;
}

int lora_config_load(LoraConfig *c, const char *dir) {
    char *p = path_join(dir, "lora_config.json");
    size_t len;
    char *text = try_read_file(p, &len);
    if (!text) { free(p); return 0; }
    char err[512];
    cJSON *j = json_parse_document(text, len, p, err, sizeof(err));
    if (!j) fatal("%s", err);
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(j, "r"), *al = cJSON_GetObjectItemCaseSensitive(j, "lora_alpha");
    const cJSON *dr = cJSON_GetObjectItemCaseSensitive(j, "lora_dropout"), *tm = cJSON_GetObjectItemCaseSensitive(j, "target_modules");
    if (!cJSON_IsNumber(r) || !cJSON_IsNumber(al) || !cJSON_IsArray(tm)) fatal("%s: needs r, lora_alpha and target_modules", p);
    memset(c, 0, sizeof(*c));
    long long rank;
    char val[96];
    // the rank is a matrix dimension: a ceiling far above any real adapter keeps r * in from wrapping
    if (json_int(r, 1, 65536, &rank)) { json_value_text(r, val, sizeof(val)); fatal("%s: r = %s: expected an integer from 1 to 65536", p, val); }
    c->r = (int)rank;
    if (!(fabs(al->valuedouble) <= 1e6)) { json_value_text(al, val, sizeof(val)); fatal("%s: lora_alpha = %s: expected a number from -1e6 to 1e6", p, val); }
    c->alpha = (float)al->valuedouble;
    if (dr && !cJSON_IsNull(dr) && !(cJSON_IsNumber(dr) && dr->valuedouble >= 0 && dr->valuedouble < 1)) {
        json_value_text(dr, val, sizeof(val));
        fatal("%s: lora_dropout = %s: expected a number from 0 to below 1", p, val);
    }
    c->dropout = cJSON_IsNumber(dr) ? (float)dr->valuedouble : 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, tm) {
        if (!cJSON_IsString(v)) fatal("%s: target_modules must be names", p);
        c->targets |= lora_targets_parse(v->valuestring);
    }
    cJSON_Delete(j);
    free(text);
    free(p);
    return 1;
}

void lora_config_save(const LoraConfig *c, const char *dir) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "r", c->r);
    cJSON_AddNumberToObject(o, "lora_alpha", c->alpha);
    cJSON_AddNumberToObject(o, "lora_dropout", c->dropout);
    cJSON *tm = cJSON_AddArrayToObject(o, "target_modules");
    for (int t = 0; t < LORA_TARGETS; t++) if (c->targets & (1u << t)) cJSON_AddItemToArray(tm, cJSON_CreateString(target_names[t]));
    char *s = cJSON_Print(o), *p = path_join(dir, "lora_config.json");
    write_file_atomic(p, s, strlen(s));
    free(s);
    free(p);
    cJSON_Delete(o);
}

void lora_acts_layout(LoraActs *a, const Lora *lo, const Llama *m, int N, int backward, Arena *ar) {
    if (ar->measuring || !a->u) {
        a->u = xcalloc(lo->layers, sizeof(void **));
        for (int l = 0; l < lo->layers; l++) a->u[l] = xcalloc(LORA_TARGETS, sizeof(void *));
        a->layers = lo->layers;
    }
    int max_in = 0, max_out = 0;
    for (int t = 0; t < LORA_TARGETS; t++) {
        if (!(lo->cfg.targets & (1u << t))) continue;
        int in, out, col;
        lora_geometry(m, t, &in, &out, &col);
        if (in > max_in) max_in = in;
        if (out > max_out) max_out = out;
    }
    for (int l = 0; l < lo->layers; l++)
        for (int t = 0; t < LORA_TARGETS; t++)
            a->u[l][t] = (lo->cfg.targets & (1u << t)) ? arena_act(ar, (size_t)N * lo->cfg.r) : NULL;
    a->xd = arena_act(ar, (size_t)N * max_in);
    a->v = arena_act(ar, (size_t)N * max_out);
    if (backward) {
        a->du = arena_act(ar, (size_t)N * lo->cfg.r);
        a->dxd = arena_act(ar, (size_t)N * max_in);
    }
}

void lora_acts_free(LoraActs *a) {
    if (!a->u) return;
    for (int l = 0; l < a->layers; l++) free(a->u[l]);
    free(a->u);
    a->u = NULL;
}

// the dropout seed of one adapter in one forward pass
static unsigned long long adapter_seed(const Lora *lo, int l, int t) {
    return lo->seed * 0x100000001B3ULL + (unsigned long long)(l * LORA_TARGETS + t) * 0x9E3779B97F4A7C15ULL;
}

// x itself, or its dropped-out copy in a->xd
static const void *lora_input(const Lora *lo, LoraActs *a, const Llama *m, int l, int t, const void *x, int N, int in) {
    if (!lo->training || lo->cfg.dropout <= 0) return x;
    m->be->dropout(a->xd, x, (size_t)N * in, lo->cfg.dropout, adapter_seed(lo, l, t));
    return a->xd;
}

void lora_forward(const Lora *lo, LoraActs *a, const Llama *m, int l, int t, const void *x, void *y, int OC, int N) {
    if (!lo->enabled || !lo->w[l].A[t]) return;
    const Backend *be = m->be;
    int in, out, col;
    lora_geometry(m, t, &in, &out, &col);
    const void *xi = lora_input(lo, a, m, l, t, x, N, in);
    be->matmul_forward(a->u[l][t], xi, lo->w[l].A[t], NULL, N, in, lo->cfg.r);  // (N, r)
    be->matmul_forward(a->v, a->u[l][t], lo->w[l].B[t], NULL, N, lo->cfg.r, out);  // (N, out)
    be->add_strided(act_at(be, y, col), OC, a->v, out, N, out, lo->scale);
}

void lora_backward(const Lora *lo, LoraActs *a, const Llama *m, int l, int t, const void *x, const void *dy, int OC,
                   void *dx, int N) {
    if (!lo->enabled || !lo->w[l].A[t]) return;
    const Backend *be = m->be;
    int in, out, col;
    lora_geometry(m, t, &in, &out, &col);
    // dv = scale * dy[:, col : col + out]
    be->zero(a->v, (size_t)N * out * be->act_bytes);
    be->add_strided(a->v, out, act_at(be, dy, col), OC, N, out, lo->scale);
    be->matmul_backward(a->du, lo->g[l].B[t], NULL, a->v, a->u[l][t], lo->w[l].B[t], N, lo->cfg.r, out);
    const void *xi = lora_input(lo, a, m, l, t, x, N, in);  // the same mask as the forward pass
    be->matmul_backward(a->dxd, lo->g[l].A[t], NULL, a->du, xi, lo->w[l].A[t], N, in, lo->cfg.r);
    if (lo->training && lo->cfg.dropout > 0) be->dropout(a->dxd, a->dxd, (size_t)N * in, lo->cfg.dropout, adapter_seed(lo, l, t));
    be->add(dx, dx, a->dxd, (size_t)N * in);
}
