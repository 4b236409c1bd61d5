#include "checkpoint.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../model/safetensors.h"
#include "../util/common.h"

static DType act_dtype(const Backend *be) {
    return be->act_bytes == 2 ? DT_BF16 : be->act_bytes == 4 ? DT_F32 : DT_F64;
}
static DType acc_dtype(const Backend *be) { return be->acc_bytes == 4 ? DT_F32 : DT_F64; }

// Adds every tensor of `buf` (laid out like the store, elements of `bytes` each) to the writer, named
// prefix + tensor name. The data is copied to the host first.
static void add_store(STWriter *w, const ParamStore *ps, const void *buf, int bytes, DType dt, const char *prefix) {
    size_t total = ps->numel * (size_t)bytes;
    char *host = xmalloc(total ? total : 1);
    ps->be->to_host(host, buf, total);
    for (int i = 0; i < ps->n; i++) {
        const ParamInfo *p = &ps->info[i];
        char name[300];
        snprintf(name, sizeof(name), "%s%s", prefix, p->name);
        stw_add(w, name, dt, p->ndim, p->shape, host + p->offset * (size_t)bytes);
    }
    free(host);
}

static void remove_tree(const char *dir) {
    char cmd[4200];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "vlm: warning: could not remove %s\n", dir);
}

void checkpoint_save(const char *out_dir, int step, ParamStore **stores, int n_stores, const Optimizer *opt,
                     const char *state_json, const char *base_model_dir) {
    char name[64], tmpname[80];
    snprintf(name, sizeof(name), "checkpoint-%08d", step);
    snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);
    char *final = path_join(out_dir, name), *tmp = path_join(out_dir, tmpname);
    remove_tree(tmp);
    if (mkdir(tmp, 0755) != 0) fatal("%s: cannot create: %s", tmp, strerror(errno));
    // weights
    STWriter *w = stw_new();
    for (int s = 0; s < n_stores; s++) add_store(w, stores[s], stores[s]->data, stores[s]->be->act_bytes, act_dtype(stores[s]->be), "");
    char *p = path_join(tmp, "model.safetensors");
    stw_write(w, p, NULL);
    free(p);
    // optimizer
    w = stw_new();
    for (int s = 0; s < opt->n_stores; s++) {
        const ParamStore *ps = opt->stores[s];
        const Backend *be = ps->be;
        add_store(w, ps, opt->m[s], be->acc_bytes, acc_dtype(be), "m.");
        add_store(w, ps, opt->v[s], be->acc_bytes, acc_dtype(be), "v.");
        if (opt->master[s]) add_store(w, ps, opt->master[s], be->acc_bytes, acc_dtype(be), "master.");
    }
    p = path_join(tmp, "optimizer.safetensors");
    stw_write(w, p, NULL);
    free(p);
    p = path_join(tmp, "state.json");
    write_file_atomic(p, state_json, strlen(state_json));
    free(p);
    copy_file_if_exists(base_model_dir, tmp, "config.json");
    copy_file_if_exists(base_model_dir, tmp, "preprocessor_config.json");
    copy_file_if_exists(base_model_dir, tmp, "tokenizer.model");
    copy_file_if_exists(base_model_dir, tmp, "tokenizer.json");
    copy_file_if_exists(base_model_dir, tmp, "tokenizer_config.json");
    // publish: the old folder of the same step (a re-run) goes first, then the rename, then `latest`
    remove_tree(final);
    if (rename(tmp, final) != 0) fatal("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    char *latest = path_join(out_dir, "latest");
    write_file_atomic(latest, name, strlen(name));
    free(latest);
    free(final);
    free(tmp);
}

char *checkpoint_latest(const char *out_dir) {
    char *latest = path_join(out_dir, "latest");
    char *name = try_read_file(latest, NULL);
    free(latest);
    if (!name) return NULL;
    name[strcspn(name, "\r\n")] = 0;
    char *dir = path_join(out_dir, name);
    free(name);
    char *state = path_join(dir, "state.json");
    if (!file_exists(state)) fatal("%s names %s, which has no state.json", out_dir, dir);
    free(state);
    return dir;
}

char *checkpoint_read_state(const char *ckpt_dir) {
    char *p = path_join(ckpt_dir, "state.json");
    char *s = read_file(p, NULL);
    free(p);
    return s;
}

void checkpoint_load_optimizer(const char *ckpt_dir, Optimizer *opt) {
    char *p = path_join(ckpt_dir, "optimizer.safetensors");
    SafeTensors *st = st_open_or_die(p);
    for (int s = 0; s < opt->n_stores; s++) {
        const ParamStore *ps = opt->stores[s];
        const Backend *be = ps->be;
        void *bufs[3] = {opt->m[s], opt->v[s], opt->master[s]};
        const char *prefixes[3] = {"m.", "v.", "master."};
        for (int k = 0; k < 3; k++) {
            if (!bufs[k]) continue;
            char *host = xmalloc(ps->numel * (size_t)be->acc_bytes + 1);
            for (int i = 0; i < ps->n; i++) {
                const ParamInfo *pi = &ps->info[i];
                char name[300];
                snprintf(name, sizeof(name), "%s%s", prefixes[k], pi->name);
                const STTensor *t = st_find(st, name);
                if (!t) fatal("%s: missing tensor '%s'", p, name);
                if (t->dtype != acc_dtype(be) || t->numel != pi->numel)
                    fatal("%s: tensor '%s' is %s with %zu elements, expected %s with %zu", p, name, dtype_name(t->dtype),
                          t->numel, dtype_name(acc_dtype(be)), pi->numel);
                memcpy(host + pi->offset * (size_t)be->acc_bytes, t->data, t->nbytes);
            }
            be->to_device(bufs[k], host, ps->numel * (size_t)be->acc_bytes);
            free(host);
        }
    }
    st_close(st);
    free(p);
}
