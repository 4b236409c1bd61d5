#include "checkpoint.h"

#include <cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <ftw.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>
#include <zlib.h>

#include "../model/safetensors.h"
#include "../util/common.h"

static DType act_dtype(const Backend *be) {
    return be->act_bytes == 2 ? DT_BF16 : be->act_bytes == 4 ? DT_F32 : DT_F64;
}
static DType acc_dtype(const Backend *be) { return be->acc_bytes == 4 ? DT_F32 : DT_F64; }

// Index of the first value of x (n elements of dt: BF16, F32 or F64) that is NaN or infinite, or -1.
static long long first_nonfinite(const void *x, DType dt, size_t n) {
    for (size_t i = 0; i < n; i++) {
        int ok;
        if (dt == DT_BF16) { uint16_t h; memcpy(&h, (const char *)x + 2 * i, 2); ok = (h & 0x7f80) != 0x7f80; }  // exponent all ones
        else if (dt == DT_F32) { float f; memcpy(&f, (const char *)x + 4 * i, 4); ok = isfinite(f); }
        else { double d; memcpy(&d, (const char *)x + 8 * i, 8); ok = isfinite(d); }
        if (!ok) return (long long)i;
    }
    return -1;
}

// Adds every tensor of `buf` (laid out like the store, elements of `bytes` each) to the writer, named
// prefix + tensor name. The data is copied to the host first. Returns 0, or -1 with the first value that
// is not finite named in `bad` (nothing non-finite may be published: a diverged run must not replace the
// last good checkpoint, whose loss on one batch can still look finite).
// The tensors of a store from `host` (numel values of dt, each tensor at its offset) into w, named prefix + name;
// -1 with the first non-finite value named in bad.
static int add_host(STWriter *w, const ParamStore *ps, const char *host, int bytes, DType dt, const char *prefix, char *bad,
                    size_t badlen) {
    int rc = 0;
    for (int i = 0; i < ps->n; i++) {
        const ParamInfo *p = &ps->info[i];
        const char *x = host + p->offset * (size_t)bytes;
        long long k = first_nonfinite(x, dt, p->numel);
        if (k >= 0 && !rc) {
            float f = 0;
            if (dt == DT_BF16) { uint16_t h; memcpy(&h, x + 2 * k, 2); f = bf16_to_f32(h); }
            else if (dt == DT_F32) memcpy(&f, x + 4 * k, 4);
            else { double d; memcpy(&d, x + 8 * k, 8); f = (float)d; }
            snprintf(bad, badlen, "%s%s[%lld] is %g", prefix, p->name, k, f);
            rc = -1;
        }
        char name[300];
        snprintf(name, sizeof(name), "%s%s", prefix, p->name);
        if (!rc) stw_add(w, name, dt, p->ndim, p->shape, x);
    }
    return rc;
}

// The store's weights (a backend buffer) into w.
static int add_store(STWriter *w, const ParamStore *ps, char *bad, size_t badlen) {
    const int bytes = ps->be->act_bytes;
    size_t total = ps->numel * (size_t)bytes;
    char *host = xmalloc(total ? total : 1);  // (numel) values of dt, the store's tensors at their offsets
    ps->be->to_host(host, ps->data, total);
    int rc = add_host(w, ps, host, bytes, act_dtype(ps->be), "", bad, badlen);
    free(host);
    return rc;
}

// Removes a file tree without a shell (no quoting to get wrong): children first, symbolic links as
// links (never followed out of the tree).
static int remove_entry(const char *path, const struct stat *sb, int type, struct FTW *ftw) {
    (void)sb; (void)ftw;
    int rc = type == FTW_DP ? rmdir(path) : unlink(path);
    if (rc != 0 && errno != ENOENT) fprintf(stderr, "vlm: warning: could not remove %s: %s\n", path, strerror(errno));
    return 0;  // go on with the rest
}

static void remove_tree(const char *dir) {
    struct stat st;
    if (lstat(dir, &st) != 0) return;  // nothing there
    if (nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS) != 0 && errno != ENOENT)
        fprintf(stderr, "vlm: warning: could not remove %s: %s\n", dir, strerror(errno));
}

// fsync of a folder, so that renames in it survive a power cut (best effort: not every filesystem can)
static void sync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0) return;
    if (fsync(fd) != 0 && errno != EINVAL) fprintf(stderr, "vlm: warning: %s: fsync: %s\n", dir, strerror(errno));
    close(fd);
}

// CRC-32 (zlib's) of a whole file and its size; returns -1 with errno set when it cannot be read.
static int file_crc32(const char *path, unsigned long *crc, unsigned long long *bytes) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    enum { CHUNK = 1 << 20 };
    unsigned char *buf = xmalloc(CHUNK);
    unsigned long c = crc32(0L, Z_NULL, 0);
    unsigned long long n = 0;
    size_t k;
    while ((k = fread(buf, 1, CHUNK, f)) > 0) { c = crc32(c, buf, (uInt)k); n += k; }
    int err = ferror(f);
    fclose(f);
    free(buf);
    if (err) { errno = EIO; return -1; }
    *crc = c;
    *bytes = n;
    return 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

void checkpoint_write_manifest(const char *ckpt_dir) {
    DIR *d = opendir(ckpt_dir);
    if (!d) fatal("%s: cannot list: %s", ckpt_dir, strerror(errno));
    char **names = NULL;
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || !strcmp(e->d_name, "manifest.json")) continue;
        if (n == cap) { cap = cap ? 2 * cap : 16; names = xrealloc(names, sizeof(char *) * cap); }
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(char *), cmp_str);  // the same manifest for the same files
    cJSON *o = cJSON_CreateObject(), *files = cJSON_AddArrayToObject(o, "files");
    for (int i = 0; i < n; i++) {
        char *p = path_join(ckpt_dir, names[i]);
        unsigned long crc;
        unsigned long long bytes;
        if (file_crc32(p, &crc, &bytes) != 0) fatal("%s: cannot read back: %s", p, strerror(errno));
        char hex[16];
        snprintf(hex, sizeof(hex), "%08lx", crc);
        cJSON *f = cJSON_CreateObject();
        cJSON_AddStringToObject(f, "name", names[i]);
        cJSON_AddNumberToObject(f, "bytes", (double)bytes);
        cJSON_AddStringToObject(f, "crc32", hex);
        cJSON_AddItemToArray(files, f);
        free(p);
        free(names[i]);
    }
    free(names);
    char *text = cJSON_Print(o), *p = path_join(ckpt_dir, "manifest.json");
    write_file_atomic(p, text, strlen(text));
    free(p);
    free(text);
    cJSON_Delete(o);
}

void checkpoint_verify(const char *ckpt_dir) {
    char *mp = path_join(ckpt_dir, "manifest.json");
    char *text = try_read_file(mp, NULL);
    if (!text) {
        if (errno != ENOENT) fatal("%s: cannot read: %s", mp, strerror(errno));
        fprintf(stderr, "vlm: warning: %s has no manifest.json (written before checkpoints had checksums); its files are not verified\n",
                ckpt_dir);
        free(mp);
        return;
    }
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(text, &end, 1);
    if (!o) fatal("%s: invalid JSON near byte %ld", mp, end ? (long)(end - text) : 0L);
    const cJSON *files = cJSON_GetObjectItemCaseSensitive(o, "files"), *f;
    if (!cJSON_IsArray(files)) fatal("%s: \"files\" must be an array", mp);
    // what a resume reads must be covered: a manifest that leaves them out verifies nothing
    const char *needed[3] = {"model.safetensors", "optimizer.safetensors", "state.json"};
    int seen[3] = {0, 0, 0};
    cJSON_ArrayForEach(f, files) {
        const cJSON *name = cJSON_GetObjectItemCaseSensitive(f, "name"), *bytes = cJSON_GetObjectItemCaseSensitive(f, "bytes");
        const cJSON *crc = cJSON_GetObjectItemCaseSensitive(f, "crc32");
        if (!cJSON_IsString(name) || !name->valuestring[0] || strchr(name->valuestring, '/') || name->valuestring[0] == '.')
            fatal("%s: an entry without a plain file \"name\"", mp);
        if (!cJSON_IsNumber(bytes) || !(bytes->valuedouble >= 0 && bytes->valuedouble <= 9007199254740992.0) ||
            bytes->valuedouble != floor(bytes->valuedouble))
            fatal("%s: \"%s\": \"bytes\" must be a whole number of bytes", mp, name->valuestring);
        char *stop = NULL;
        unsigned long want = cJSON_IsString(crc) ? strtoul(crc->valuestring, &stop, 16) : 0;
        if (!cJSON_IsString(crc) || strlen(crc->valuestring) != 8 || *stop)
            fatal("%s: \"%s\": \"crc32\" must be 8 hex digits", mp, name->valuestring);
        for (int k = 0; k < 3; k++) seen[k] |= !strcmp(name->valuestring, needed[k]);
        char *p = path_join(ckpt_dir, name->valuestring);
        unsigned long got;
        unsigned long long n;
        if (file_crc32(p, &got, &n) != 0) fatal("%s: cannot read (listed in %s): %s", p, mp, strerror(errno));
        if (n != (unsigned long long)bytes->valuedouble)
            fatal("%s: %llu bytes, but manifest.json says %.0f: the checkpoint is damaged (truncated or overwritten)", p, n,
                  bytes->valuedouble);
        if (got != want)
            fatal("%s: CRC-32 %08lx, but manifest.json says %s: the checkpoint is damaged; resume from an earlier one "
                  "(write its name into latest) or start afresh", p, got, crc->valuestring);
        free(p);
    }
    for (int k = 0; k < 3; k++)
        if (!seen[k]) fatal("%s: lists no %s", mp, needed[k]);
    cJSON_Delete(o);
    free(text);
    free(mp);
}

// Bytes of dir/name, 0 when it is not there.
static unsigned long long file_bytes(const char *dir, const char *name) {
    char *p = path_join(dir, name);
    struct stat st;
    unsigned long long n = stat(p, &st) == 0 ? (unsigned long long)st.st_size : 0;
    free(p);
    return n;
}

// The free bytes of the filesystem that holds dir, for an unprivileged writer; -1 when unknown.
// VLM_TEST_FREE_BYTES replaces the figure (the tests use it to fill a disk that is not full).
static long long free_bytes(const char *dir) {
    const char *fake = getenv("VLM_TEST_FREE_BYTES");
    if (fake && fake[0]) return strtoll(fake, NULL, 10);
    struct statvfs v;
    if (statvfs(dir, &v) != 0) return -1;
    unsigned long long n = (unsigned long long)v.f_bavail * v.f_frsize;
    return n > (unsigned long long)LLONG_MAX ? LLONG_MAX : (long long)n;
}

// Refuses a save that would not fit: before, a full disk was found by a failed write() halfway through the
// folder, and with --save-every 0 only at the final save. The margin (5% + 16 MiB) leaves room for what
// the run writes beside the checkpoint (metrics, the plot) and for filesystem overhead.
static void check_free_space(const char *out_dir, const char *name, unsigned long long need) {
    long long have = free_bytes(out_dir);
    if (have < 0) {
        fprintf(stderr, "vlm: warning: %s: cannot tell the free space (%s); saving %s anyway\n", out_dir, strerror(errno), name);
        return;
    }
    const unsigned long long margin = need / 20 + (16ULL << 20);
    if ((unsigned long long)have >= need + margin) return;
    char *last = checkpoint_latest(out_dir);
    fatal("%s: %.1f MiB free, but %s needs %.1f MiB plus a margin of %.1f MiB; not saving it. Free some space or move the run "
          "to another --out; the last good checkpoint is %s", out_dir, have / 1048576.0, name, need / 1048576.0, margin / 1048576.0,
          last ? last : "(none: no checkpoint was written)");
}

static int is_checkpoint_name(const char *s);

// Removes every checkpoint-<step>.tmp folder in out_dir: what saves that were killed or failed (a full
// disk) left, whatever their step. None can be a save in progress: the run holds the lock on --out.
static void remove_stale_saves(const char *out_dir) {
    DIR *d = opendir(out_dir);
    if (!d) return;
    char **stale = NULL;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        size_t k = strlen(e->d_name);
        if (k < 5 || strcmp(e->d_name + k - 4, ".tmp") != 0) continue;
        char *name = xstrdup(e->d_name);
        name[k - 4] = 0;
        if (is_checkpoint_name(name)) { stale = xrealloc(stale, sizeof(char *) * (n + 1)); stale[n++] = path_join(out_dir, e->d_name); }
        free(name);
    }
    closedir(d);
    for (int i = 0; i < n; i++) { remove_tree(stale[i]); free(stale[i]); }
    free(stale);
}

void checkpoint_save(const char *out_dir, int step, ParamStore **stores, int n_stores, const Optimizer *opt,
                     void *const *opt_state, const char *state_json, const char *base_model_dir, void (*extra)(const char *dir, const void *ctx),
                     const void *ctx) {
    char name[64], tmpname[80], oldname[80];
    snprintf(name, sizeof(name), "checkpoint-%08d", step);
    snprintf(tmpname, sizeof(tmpname), "%s.tmp", name);
    snprintf(oldname, sizeof(oldname), "%s.old", name);
    char *final = path_join(out_dir, name), *tmp = path_join(out_dir, tmpname), *old = path_join(out_dir, oldname);
    remove_stale_saves(out_dir);  // and their space, before the free-space check
    char bad[512] = "";
    int rc = 0;
    // weights
    STWriter *w = stw_new();
    for (int s = 0; s < n_stores && !rc; s++)
        rc = add_store(w, stores[s], bad, sizeof(bad));
    // optimizer
    STWriter *wo = stw_new();
    for (int s = 0; s < opt->n_stores && !rc; s++) {
        const ParamStore *ps = opt->stores[s];
        const Backend *be = ps->be;
        static const char *const prefixes[3] = {"m.", "v.", "master."};
        for (int k = 0; k < 3 && !rc; k++)
            if (opt_state[3 * s + k]) rc = add_host(wo, ps, opt_state[3 * s + k], be->acc_bytes, acc_dtype(be), prefixes[k], bad, sizeof(bad));
    }
    if (rc) {
        char *last = checkpoint_latest(out_dir);
        fatal("step %d: %s; not publishing %s. The last good checkpoint is %s", step, bad, name,
              last ? last : "(none: no checkpoint was written)");
    }
    // what the folder will hold: the two tensor files, state.json, the base model's files copied below, and
    // 64 KiB for the manifest and the extra files (the LoRA settings)
    static const char *copied[5] = {"config.json", "preprocessor_config.json", "tokenizer.model", "tokenizer.json", "tokenizer_config.json"};
    unsigned long long need = stw_bytes_bound(w) + stw_bytes_bound(wo) + strlen(state_json) + (64u << 10);
    for (int i = 0; i < 5; i++) need += file_bytes(base_model_dir, copied[i]);
    check_free_space(out_dir, name, need);
    if (mkdir(tmp, 0755) != 0) fatal("%s: cannot create: %s", tmp, strerror(errno));
    char *p = path_join(tmp, "model.safetensors");
    stw_write(w, p, NULL);
    free(p);
    p = path_join(tmp, "optimizer.safetensors");
    stw_write(wo, p, NULL);
    free(p);
    p = path_join(tmp, "state.json");
    write_file_atomic(p, state_json, strlen(state_json));
    free(p);
    for (int i = 0; i < 5; i++) copy_file_if_exists(base_model_dir, tmp, copied[i]);
    if (extra) extra(tmp, ctx);
    checkpoint_write_manifest(tmp);  // last: it seals every file above
    // publish. A re-save of the same step swaps the new folder in atomically (RENAME_EXCHANGE), so
    // `latest` names a complete folder at every instant; where the filesystem cannot, the old folder is
    // renamed aside first and only removed once the new one is in place.
    // The first save of a run writes an empty `latest` before its folder appears: a kill between the
    // rename below and the write of `latest` then leaves "nothing published yet" (the next run starts
    // afresh and re-saves this step), not a folder without `latest`, which --resume must refuse as a lost
    // `latest` (found by the kill -9 test of tests/test_checkpoint.c).
    char *latest = path_join(out_dir, "latest");
    struct stat st;
    if (lstat(latest, &st) != 0) write_file_atomic(latest, "", 0);
    if (lstat(final, &st) == 0) {
        remove_tree(old);
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, final, RENAME_EXCHANGE) == 0) {
            if (rename(tmp, old) != 0) fatal("%s: cannot rename to %s: %s", tmp, old, strerror(errno));  // tmp holds the old one
        } else {
            if (rename(final, old) != 0) fatal("%s: cannot rename to %s: %s", final, old, strerror(errno));
            if (rename(tmp, final) != 0) fatal("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
        }
    } else if (rename(tmp, final) != 0) fatal("%s: cannot rename to %s: %s", tmp, final, strerror(errno));
    sync_dir(out_dir);
    write_file_atomic(latest, name, strlen(name));
    sync_dir(out_dir);
    remove_tree(old);
    free(latest);
    free(final);
    free(tmp);
    free(old);
}

// 1 for the name of a published checkpoint folder: "checkpoint-" and digits only (not .tmp or .old).
static int is_checkpoint_name(const char *s) {
    if (strncmp(s, "checkpoint-", 11) || !s[11]) return 0;
    for (s += 11; *s; s++)
        if (*s < '0' || *s > '9') return 0;
    return 1;
}

char *checkpoint_latest(const char *out_dir) {
    char *latest = path_join(out_dir, "latest");
    char *name = try_read_file(latest, NULL);
    free(latest);
    if (!name) return NULL;
    name[strcspn(name, "\r\n")] = 0;
    if (!name[0]) { free(name); return NULL; }  // written by a first save that did not get to the end: none yet
    if (!is_checkpoint_name(name))  // never a path that leads out of --out
        fatal("%s/latest holds '%.80s', not the name of a checkpoint folder (checkpoint-<step>)", out_dir, name);
    char *dir = path_join(out_dir, name);
    char *state = path_join(dir, "state.json");
    if (!file_exists(state)) {
        char *old = xmalloc(strlen(dir) + 8);
        sprintf(old, "%s.old", dir);
        if (file_exists(old))  // a re-save was stopped between its two renames (a filesystem without RENAME_EXCHANGE)
            fatal("%s/latest names %s, which is missing; %s is that step's previous save: rename it back to %s", out_dir, dir,
                  old, name);
        fatal("%s/latest names %s, which has no state.json", out_dir, dir);
    }
    free(name);
    free(state);
    return dir;
}

// The checkpoint folders' names in out_dir, sorted (by step: the names are zero-padded); *n gets their count.
static char **checkpoint_names(const char *out_dir, int *n) {
    DIR *d = opendir(out_dir);
    char **names = NULL;
    struct dirent *e;
    *n = 0;
    while (d && (e = readdir(d)))
        if (is_checkpoint_name(e->d_name)) { names = xrealloc(names, sizeof(char *) * (*n + 1)); names[(*n)++] = xstrdup(e->d_name); }
    if (d) closedir(d);
    if (*n) qsort(names, *n, sizeof(char *), cmp_str);
    return names;
}

int checkpoint_any(const char *out_dir) {
    int n;
    char **names = checkpoint_names(out_dir, &n);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names);
    return n > 0;
}

char *checkpoint_resume_dir(const char *out_dir) {
    char *dir = checkpoint_latest(out_dir);
    char *latest = path_join(out_dir, "latest");
    const int have_latest = file_exists(latest);
    free(latest);
    if (!dir && have_latest) return NULL;  // an empty `latest`: the run's first save was stopped before it published
    if (!dir) {
        // no `latest`: checkpoints beside it mean it was lost, and starting from step 0 would overwrite them
        int n;
        char **names = checkpoint_names(out_dir, &n);
        if (!n) return NULL;
        char list[1024] = "";
        for (int i = 0; i < n; i++) {
            size_t k = strlen(list);
            if (k + strlen(names[i]) + 8 >= sizeof(list)) { snprintf(list + k, sizeof(list) - k, ", ..."); break; }
            snprintf(list + k, sizeof(list) - k, "%s%s", i ? ", " : "", names[i]);
        }
        fatal("--resume: %s/latest is missing, but %s holds %s. Write the name of the one to continue from into %s/latest "
              "(the newest is %s), or give another --out", out_dir, out_dir, list, out_dir, names[n - 1]);
    }
    checkpoint_verify(dir);
    return dir;
}

// An exact integer in [lo, hi] from key of o, or -1 with a message naming file, key and value.
static int state_int(const cJSON *o, const char *key, long long lo, long long hi, const char *why, const char *file,
                     int *out, char *err, size_t errlen) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) { snprintf(err, errlen, "%s: \"%s\" is missing", file, key); return -1; }
    if (!cJSON_IsNumber(v)) {
        char *s = cJSON_PrintUnformatted(v);
        snprintf(err, errlen, "%s: \"%s\" is %.40s, not a number", file, key, s ? s : "?");
        free(s);
        return -1;
    }
    const double x = v->valuedouble;
    if (!(x >= (double)lo && x <= (double)hi) || x != floor(x)) {
        snprintf(err, errlen, "%s: \"%s\" is %.17g; expected a whole number in [%lld, %lld] (%s)", file, key, x, lo, hi, why);
        return -1;
    }
    *out = (int)x;
    return 0;
}

int checkpoint_state_parse(const char *text, const char *file, const CheckpointLimits *lim, CheckpointState *out,
                           char *err, size_t errlen) {
    const char *end = NULL;
    cJSON *o = cJSON_ParseWithOpts(text, &end, 1);  // 1: nothing but whitespace may follow the object
    if (!o || !cJSON_IsObject(o)) {
        snprintf(err, errlen, "%s: not a JSON object (invalid near byte %ld)", file, o ? 0L : end ? (long)(end - text) : 0L);
        cJSON_Delete(o);
        return -1;
    }
    int rc = 0;
    const cJSON *dh = cJSON_GetObjectItemCaseSensitive(o, "data_hash"), *rcp = cJSON_GetObjectItemCaseSensitive(o, "recipe");
    char want[32], why[128];
    snprintf(want, sizeof(want), "%016llx", lim->data_hash);
    if (!cJSON_IsString(rcp) || strcmp(rcp->valuestring, lim->recipe) != 0) {
        snprintf(err, errlen, "%s: \"recipe\" is %s, but this run's recipe is %s", file, cJSON_IsString(rcp) ? rcp->valuestring : "missing",
                 lim->recipe);
        rc = -1;
    } else if (!cJSON_IsString(dh) || strcmp(dh->valuestring, want) != 0) {
        snprintf(err, errlen, "%s: the checkpoint was trained on other data (\"data_hash\" %s, this run's data %s); use another --out",
                 file, cJSON_IsString(dh) ? dh->valuestring : "missing", want);
        rc = -1;
    }
    snprintf(why, sizeof(why), "this run has %d steps", lim->total_steps);
    if (!rc) rc = state_int(o, "step", 0, lim->total_steps, why, file, &out->step, err, errlen);
    snprintf(why, sizeof(why), "the data has %d examples", lim->n_examples);
    if (!rc) rc = state_int(o, "cursor", 0, lim->n_examples, why, file, &out->cursor, err, errlen);
    snprintf(why, sizeof(why), "%d steps over %d examples pass at most %d epochs", lim->total_steps, lim->n_examples, lim->max_epoch);
    if (!rc) rc = state_int(o, "epoch", 0, lim->max_epoch, why, file, &out->epoch, err, errlen);
    cJSON_Delete(o);
    return rc;
}

CheckpointState checkpoint_read_state(const char *ckpt_dir, const CheckpointLimits *lim) {
    char *p = path_join(ckpt_dir, "state.json");
    char *s = read_file(p, NULL);
    CheckpointState st;
    char err[1024];
    if (checkpoint_state_parse(s, p, lim, &st, err, sizeof(err)) != 0) fatal("%s", err);
    free(s);
    free(p);
    return st;
}

void checkpoint_load_optimizer(const char *ckpt_dir, Optimizer *opt) {
    char *p = path_join(ckpt_dir, "optimizer.safetensors");
    SafeTensors *st = st_open_or_die(p);
    for (int s = 0; s < opt->n_stores; s++) {
        const ParamStore *ps = opt->stores[s];
        const Backend *be = ps->be;
        const char *prefixes[3] = {"m.", "v.", "master."};
        for (int k = 0; k < 3; k++) {
            if (k == 2 && !opt->master[s]) continue;
            // this rank's shard only (ZeRO-1: 1/world of the store; else all of it), from the part of each tensor in it
            const size_t lo = opt->shard_lo[s], hi = opt->shard_hi[s], bytes = (size_t)be->acc_bytes;
            char *host = xmalloc((hi - lo) * bytes + 1);
            for (int i = 0; i < ps->n; i++) {
                const ParamInfo *pi = &ps->info[i];
                char name[300];
                snprintf(name, sizeof(name), "%s%s", prefixes[k], pi->name);
                const STTensor *t = st_find(st, name);
                if (!t) fatal("%s: missing tensor '%s'", p, name);
                if (t->dtype != acc_dtype(be) || t->numel != pi->numel)
                    fatal("%s: tensor '%s' is %s with %zu elements, expected %s with %zu", p, name, dtype_name(t->dtype),
                          t->numel, dtype_name(acc_dtype(be)), pi->numel);
                const size_t a = pi->offset > lo ? pi->offset : lo, b = pi->offset + pi->numel < hi ? pi->offset + pi->numel : hi;
                if (a < b) memcpy(host + (a - lo) * bytes, (const char *)t->data + (a - pi->offset) * bytes, (b - a) * bytes);
            }
            optim_state_upload(opt, s, k, host);
            free(host);
        }
    }
    st_close(st);
    free(p);
}
