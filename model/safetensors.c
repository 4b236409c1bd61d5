// safetensors reader (mmap + strict header validation) and streaming writer. See safetensors.h.
//
// The reader trusts nothing in a file: every length, offset and shape is checked against the mapped size
// before a pointer is formed, so a truncated or hostile file yields an error message, never an
// out-of-bounds read. The header is parsed with cJSON from a NUL-terminated private copy (cJSON must not
// be pointed at the map, which has no terminator).
#include "safetensors.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../util/common.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader maps it directly and assumes a little-endian host"
#endif

// The Rust reference implementation refuses headers above 100 MB; a 7B model's header is ~100 KB.
#define ST_MAX_HEADER 100000000ull
// cJSON stores numbers as doubles, which are exact only up to 2^53; larger offsets or dims would be
// silently rounded, so they are refused (no real file comes near 8 PiB).
#define ST_MAX_INT 9007199254740992.0

static const struct { const char *name; size_t size; } dtype_table[] = {
    [DT_F32] = {"F32", 4}, [DT_F16] = {"F16", 2}, [DT_BF16] = {"BF16", 2}, [DT_F64] = {"F64", 8},
    [DT_I64] = {"I64", 8}, [DT_I32] = {"I32", 4}, [DT_I16] = {"I16", 2},  [DT_I8] = {"I8", 1},
    [DT_U8] = {"U8", 1},   [DT_BOOL] = {"BOOL", 1},
};
#define N_DTYPES ((int)(sizeof(dtype_table) / sizeof(dtype_table[0])))

const char *dtype_name(DType t) { return (int)t >= 0 && (int)t < N_DTYPES ? dtype_table[t].name : "?"; }
size_t dtype_size(DType t) { return (int)t >= 0 && (int)t < N_DTYPES ? dtype_table[t].size : 0; }

int dtype_from_name(const char *s, DType *out) {
    for (int i = 0; i < N_DTYPES; i++)
        if (!strcmp(s, dtype_table[i].name)) { *out = (DType)i; return 1; }
    return 0;
}

// ---------------------------------------------------------------------------------------------------
// Reader

static int st_err(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int st_err(char *err, size_t errlen, const char *fmt, ...) {
    if (err && errlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err, errlen, fmt, ap);
        va_end(ap);
    }
    return 0;
}

// "[4, 8]" for messages; truncates silently on absurd ranks (messages only).
static const char *shape_str(char *buf, size_t n, int ndim, const int64_t *shape) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < ndim && k < n; i++) k += (size_t)snprintf(buf + k, n - k, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (k < n) snprintf(buf + k, n - k, "]");
    return buf;
}

// A JSON number that is an exact non-negative integer representable without rounding.
static int json_uint(const cJSON *v, uint64_t *out) {
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!isfinite(d) || d < 0 || d >= ST_MAX_INT || d != floor(d)) return 0;
    *out = (uint64_t)d;
    return 1;
}

// Describes a rejected JSON value for an error message ("-3", "1.5", "a string", ...).
static const char *json_desc(const cJSON *v, char *buf, size_t n) {
    if (cJSON_IsNumber(v)) snprintf(buf, n, "%.17g", v->valuedouble);
    else if (cJSON_IsString(v)) snprintf(buf, n, "a string");
    else if (cJSON_IsArray(v)) snprintf(buf, n, "an array");
    else if (cJSON_IsObject(v)) snprintf(buf, n, "an object");
    else if (cJSON_IsBool(v)) snprintf(buf, n, "a boolean");
    else snprintf(buf, n, "null");
    return buf;
}

// JSON text may contain only UTF-8 and no raw control characters except the whitespace ones. Checking
// up front keeps NUL bytes out of tensor names and rejects what the reference parser rejects.
static int header_bytes_ok(const unsigned char *s, size_t n, size_t *bad) {
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        size_t len = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r') len = 0;
        if (c == 0xc0 || c == 0xc1 || c > 0xf4) len = 0;  // overlong or beyond U+10FFFF
        if (!len || i + len > n) { *bad = i; return 0; }
        for (size_t k = 1; k < len; k++)
            if ((s[i + k] & 0xc0) != 0x80) { *bad = i; return 0; }
        i += len;
    }
    return 1;
}

typedef struct { uint64_t begin, end; int idx; } Span;

static int span_cmp(const void *a, const void *b) {
    const Span *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return x->idx - y->idx;
}

static int str_ptr_cmp(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static void st_push_tensor(SafeTensors *st, const STTensor *t, int *cap) {
    if (st->n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        st->tensors = xrealloc(st->tensors, (size_t)*cap * sizeof(STTensor));
    }
    st->tensors[st->n++] = *t;
}

// Validates one header entry into t (name not set). Returns 0 with err filled on any problem.
static int st_parse_entry(const char *path, const char *name, const cJSON *e, uint64_t data_len, STTensor *t,
                          uint64_t *begin, uint64_t *end, char *err, size_t errlen) {
    char desc[64], sbuf[256];
    if (!cJSON_IsObject(e)) return st_err(err, errlen, "%s: tensor '%s': entry is %s, not an object", path, name, json_desc(e, desc, sizeof(desc)));
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!dt) return st_err(err, errlen, "%s: tensor '%s': missing \"dtype\"", path, name);
    if (!sh) return st_err(err, errlen, "%s: tensor '%s': missing \"shape\"", path, name);
    if (!off) return st_err(err, errlen, "%s: tensor '%s': missing \"data_offsets\"", path, name);
    if (!cJSON_IsString(dt)) return st_err(err, errlen, "%s: tensor '%s': \"dtype\" is %s, not a string", path, name, json_desc(dt, desc, sizeof(desc)));
    if (!dtype_from_name(dt->valuestring, &t->dtype))
        return st_err(err, errlen, "%s: tensor '%s': unknown dtype '%.32s' (supported: F32 F16 BF16 F64 I64 I32 I16 I8 U8 BOOL)", path, name, dt->valuestring);
    if (!cJSON_IsArray(sh)) return st_err(err, errlen, "%s: tensor '%s': \"shape\" is %s, not an array", path, name, json_desc(sh, desc, sizeof(desc)));
    int ndim = cJSON_GetArraySize(sh);
    if (ndim > ST_MAX_DIMS) return st_err(err, errlen, "%s: tensor '%s': shape has %d dimensions, at most %d supported", path, name, ndim, ST_MAX_DIMS);
    t->ndim = ndim;
    memset(t->shape, 0, sizeof(t->shape));
    uint64_t numel = 1;
    int overflow = 0;
    for (int i = 0; i < ndim; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        uint64_t v;
        if (!json_uint(d, &v))
            return st_err(err, errlen, "%s: tensor '%s': shape dimension %d is %s, not a non-negative integer", path, name, i, json_desc(d, desc, sizeof(desc)));
        t->shape[i] = (int64_t)v;
        if (__builtin_mul_overflow(numel, v, &numel)) overflow = 1;
    }
    uint64_t nbytes = 0;
    if (overflow || numel > SIZE_MAX || __builtin_mul_overflow(numel, (uint64_t)dtype_size(t->dtype), &nbytes))
        return st_err(err, errlen, "%s: tensor '%s': shape %s of %s is too large (byte size overflows)", path, name,
                      shape_str(sbuf, sizeof(sbuf), ndim, t->shape), dtype_name(t->dtype));
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2)
        return st_err(err, errlen, "%s: tensor '%s': \"data_offsets\" must be [begin, end]", path, name);
    const cJSON *b = cJSON_GetArrayItem(off, 0), *en = cJSON_GetArrayItem(off, 1);
    if (!json_uint(b, begin)) return st_err(err, errlen, "%s: tensor '%s': data_offsets begin is %s, not a non-negative integer", path, name, json_desc(b, desc, sizeof(desc)));
    if (!json_uint(en, end)) return st_err(err, errlen, "%s: tensor '%s': data_offsets end is %s, not a non-negative integer", path, name, json_desc(en, desc, sizeof(desc)));
    if (*begin > *end)
        return st_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] has begin > end", path, name, (unsigned long long)*begin, (unsigned long long)*end);
    if (*end > data_len)
        return st_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] end is beyond the %llu-byte data buffer (truncated file?)", path, name,
                      (unsigned long long)*begin, (unsigned long long)*end, (unsigned long long)data_len);
    if (*end - *begin != nbytes)
        return st_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] but shape %s of %s needs %llu bytes", path, name,
                      (unsigned long long)*begin, (unsigned long long)*end, shape_str(sbuf, sizeof(sbuf), ndim, t->shape),
                      dtype_name(t->dtype), (unsigned long long)nbytes);
    t->numel = (size_t)numel;
    t->nbytes = (size_t)nbytes;
    return 1;
}

// Maps one .safetensors file, validates its header and appends its tensors (in data-offset order) to st
// as shard st->n_files. On failure fills err and returns 0; what was appended is still owned by st.
static int st_load_file(SafeTensors *st, const char *path, int *cap, char *err, size_t errlen) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return st_err(err, errlen, "%s: cannot open: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return st_err(err, errlen, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size < 8) {
        close(fd);
        return st_err(err, errlen, "%s: file is %zu bytes, shorter than the 8-byte header length (truncated or not a safetensors file)", path, size);
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int map_errno = errno;
    close(fd);  // the mapping keeps the file alive
    if (map == MAP_FAILED) return st_err(err, errlen, "%s: mmap failed: %s", path, strerror(map_errno));
    int shard = st->n_files++;
    st->files = xrealloc(st->files, (size_t)st->n_files * sizeof(char *));
    st->maps = xrealloc(st->maps, (size_t)st->n_files * sizeof(void *));
    st->map_sizes = xrealloc(st->map_sizes, (size_t)st->n_files * sizeof(size_t));
    st->files[shard] = xstrdup(path);
    st->maps[shard] = map;
    st->map_sizes[shard] = size;

    const unsigned char *bytes = map;
    uint64_t hlen = 0;
    for (int i = 0; i < 8; i++) hlen |= (uint64_t)bytes[i] << (8 * i);
    if (hlen > ST_MAX_HEADER)
        return st_err(err, errlen, "%s: header length %llu is absurd (limit %llu bytes; corrupt or not a safetensors file)", path,
                      (unsigned long long)hlen, ST_MAX_HEADER);
    if (hlen > size - 8)
        return st_err(err, errlen, "%s: header length %llu exceeds the %zu bytes that follow it (truncated file?)", path,
                      (unsigned long long)hlen, size - 8);
    size_t bad;
    if (!header_bytes_ok(bytes + 8, (size_t)hlen, &bad))
        return st_err(err, errlen, "%s: header byte %zu is not valid UTF-8 JSON text", path, bad);
    char *text = xmalloc((size_t)hlen + 1);
    memcpy(text, bytes + 8, (size_t)hlen);
    text[hlen] = 0;
    const char *parse_end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(text, (size_t)hlen, &parse_end, 0);
    if (!root) {
        size_t at = parse_end && parse_end >= text ? (size_t)(parse_end - text) : 0;
        free(text);
        return st_err(err, errlen, "%s: header is not valid JSON (parse error near byte %zu of %llu)", path, at, (unsigned long long)hlen);
    }
    int ok = 1;
    for (const char *p = parse_end; p && p < text + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            ok = st_err(err, errlen, "%s: header has trailing bytes after the JSON object (byte %zu)", path, (size_t)(p - text));
            break;
        }
    if (ok && !cJSON_IsObject(root)) ok = st_err(err, errlen, "%s: header is not a JSON object", path);

    uint64_t data_len = size - 8 - hlen;
    const unsigned char *data = bytes + 8 + hlen;
    int first = st->n, n_entries = 0;
    Span *spans = NULL;
    if (ok) {
        n_entries = cJSON_GetArraySize(root);
        spans = xmalloc((size_t)(n_entries ? n_entries : 1) * sizeof(Span));
    }
    int n_spans = 0;
    for (const cJSON *e = ok ? root->child : NULL; e; e = e->next) {
        const char *name = e->string;
        if (!strcmp(name, "__metadata__")) {
            // The reference library requires {string: string}; anything else means a broken writer.
            if (!cJSON_IsObject(e)) { ok = st_err(err, errlen, "%s: \"__metadata__\" is not an object", path); break; }
            for (const cJSON *m = e->child; m; m = m->next)
                if (!cJSON_IsString(m)) { ok = st_err(err, errlen, "%s: \"__metadata__\" value for '%s' is not a string", path, m->string); break; }
            if (!ok) break;
            if (shard == 0 && !st->metadata_json) {
                char *js = cJSON_PrintUnformatted(e);
                st->metadata_json = xstrdup(js);
                cJSON_free(js);
            }
            continue;
        }
        if (!name[0]) { ok = st_err(err, errlen, "%s: a tensor has an empty name", path); break; }
        STTensor t = {0};
        uint64_t begin, end;
        if (!st_parse_entry(path, name, e, data_len, &t, &begin, &end, err, errlen)) { ok = 0; break; }
        t.name = xstrdup(name);
        t.data = data + begin;
        t.shard = shard;
        spans[n_spans] = (Span){begin, end, st->n};
        n_spans++;
        st_push_tensor(st, &t, cap);
    }
    cJSON_Delete(root);
    free(text);

    if (ok && n_spans > 0) {
        // Overlap: after sorting by begin, every non-empty span must start at or after the furthest end
        // seen so far. Empty tensors occupy no bytes and cannot overlap. Gaps are allowed (harmless).
        qsort(spans, (size_t)n_spans, sizeof(Span), span_cmp);
        uint64_t max_end = 0;
        int max_idx = -1;
        for (int i = 0; i < n_spans && ok; i++) {
            if (spans[i].begin == spans[i].end) continue;
            if (max_idx >= 0 && spans[i].begin < max_end) {
                const STTensor *a = &st->tensors[max_idx], *b = &st->tensors[spans[i].idx];
                ok = st_err(err, errlen, "%s: tensor '%s': data_offsets [%llu, %llu] overlap tensor '%s' (which ends at %llu)", path,
                            b->name, (unsigned long long)spans[i].begin, (unsigned long long)spans[i].end, a->name, (unsigned long long)max_end);
            }
            if (spans[i].end > max_end) { max_end = spans[i].end; max_idx = spans[i].idx; }
        }
        if (ok) {  // keep the tensors in file order so a sequential pass over them reads the file sequentially
            STTensor *tmp = xmalloc((size_t)n_spans * sizeof(STTensor));
            for (int i = 0; i < n_spans; i++) tmp[i] = st->tensors[spans[i].idx];
            memcpy(st->tensors + first, tmp, (size_t)n_spans * sizeof(STTensor));
            free(tmp);
        }
        if (ok) {  // cJSON keeps duplicate keys; a name defined twice is ambiguous
            char **names = xmalloc((size_t)n_spans * sizeof(char *));
            for (int i = 0; i < n_spans; i++) names[i] = st->tensors[first + i].name;
            qsort(names, (size_t)n_spans, sizeof(char *), str_ptr_cmp);
            for (int i = 1; i < n_spans && ok; i++)
                if (!strcmp(names[i], names[i - 1])) ok = st_err(err, errlen, "%s: tensor '%s' is defined twice in the header", path, names[i]);
            free(names);
        }
    }
    free(spans);
    return ok;
}

// Sorts the name index st_find searches; fails on a duplicate name.
static int st_build_index(SafeTensors *st, const char *path, char *err, size_t errlen);

static SafeTensors *st_new(void) { return xcalloc(1, sizeof(SafeTensors)); }

static SafeTensors *st_open_file(const char *path, char *err, size_t errlen) {
    SafeTensors *st = st_new();
    int cap = 0;
    if (!st_load_file(st, path, &cap, err, errlen) || !st_build_index(st, path, err, errlen)) { st_close(st); return NULL; }
    return st;
}

typedef struct { const char *name; int shard; int idx; } NameKey;

static int namekey_cmp(const void *a, const void *b) {
    const NameKey *x = a, *y = b;
    int c = strcmp(x->name, y->name);
    return c ? c : x->shard - y->shard;
}

static SafeTensors *st_open_index(const char *path, char *err, size_t errlen) {
    size_t len;
    char *text = try_read_file(path, &len);
    if (!text) { st_err(err, errlen, "%s: cannot read: %s", path, strerror(errno)); return NULL; }
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    if (!root) { st_err(err, errlen, "%s: not valid JSON", path); return NULL; }
    SafeTensors *st = NULL;
    char **shard_names = NULL;
    NameKey *keys = NULL;
    int n_shards = 0, ok = 1;
    const cJSON *map = cJSON_GetObjectItemCaseSensitive(root, "weight_map");
    if (!cJSON_IsObject(root) || !cJSON_IsObject(map)) {
        ok = st_err(err, errlen, "%s: no \"weight_map\" object (expected {\"metadata\": {...}, \"weight_map\": {name: shard}})", path);
        goto done;
    }
    int n_map = cJSON_GetArraySize(map);
    if (n_map == 0) { ok = st_err(err, errlen, "%s: \"weight_map\" is empty", path); goto done; }
    // Distinct shard files, sorted so shard 0 is model-00001-of-...: the order a checkpoint is written in.
    shard_names = xmalloc((size_t)n_map * sizeof(char *));
    for (const cJSON *e = map->child; e; e = e->next) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) {
            ok = st_err(err, errlen, "%s: weight_map entry for tensor '%s' is not a file name", path, e->string);
            goto done;
        }
        shard_names[n_shards++] = e->valuestring;
    }
    qsort(shard_names, (size_t)n_shards, sizeof(char *), str_ptr_cmp);
    int u = 0;
    for (int i = 0; i < n_shards; i++)
        if (!u || strcmp(shard_names[i], shard_names[u - 1])) shard_names[u++] = shard_names[i];
    n_shards = u;

    st = st_new();
    char *dir = path_dirname(path);
    int cap = 0;
    for (int s = 0; s < n_shards && ok; s++) {
        char *sp = path_join(dir, shard_names[s]);
        if (!file_exists(sp)) {
            const char *user = "?";
            for (const cJSON *e = map->child; e; e = e->next)
                if (!strcmp(e->valuestring, shard_names[s])) { user = e->string; break; }
            ok = st_err(err, errlen, "%s: shard '%s' (holding tensor '%s' and others) is missing: %s", path, shard_names[s], user, sp);
        } else if (!(ok = st_load_file(st, sp, &cap, err, errlen)) && err && errlen) {
            // the shard's own message names the shard; say where it was listed too
            size_t k = strlen(err);
            snprintf(err + k, errlen - k, " (shard listed in %s)", path);
        }
        free(sp);
    }
    free(dir);
    if (!ok) goto done;

    // Resolve every mapped name in its shard; tensors a shard holds but the map does not name are dropped,
    // as transformers does.
    keys = xmalloc((size_t)(st->n ? st->n : 1) * sizeof(NameKey));
    for (int i = 0; i < st->n; i++) keys[i] = (NameKey){st->tensors[i].name, st->tensors[i].shard, i};
    qsort(keys, (size_t)st->n, sizeof(NameKey), namekey_cmp);
    char *keep = xcalloc((size_t)(st->n ? st->n : 1), 1);
    for (const cJSON *e = map->child; e && ok; e = e->next) {
        char **hit = bsearch(&e->valuestring, shard_names, (size_t)n_shards, sizeof(char *), str_ptr_cmp);
        NameKey key = {e->string, (int)(hit - shard_names), 0};
        NameKey *k = bsearch(&key, keys, (size_t)st->n, sizeof(NameKey), namekey_cmp);
        if (!k) ok = st_err(err, errlen, "%s: tensor '%s' is mapped to shard '%s' but that shard does not contain it", path, e->string, e->valuestring);
        else if (keep[k->idx]) ok = st_err(err, errlen, "%s: tensor '%s' appears twice in weight_map", path, e->string);
        else keep[k->idx] = 1;
    }
    if (ok) {
        int m = 0;
        for (int i = 0; i < st->n; i++) {
            if (keep[i]) st->tensors[m++] = st->tensors[i];
            else free(st->tensors[i].name);
        }
        st->n = m;
        ok = st_build_index(st, path, err, errlen);
    }
    free(keep);
done:
    free(keys);
    free(shard_names);
    cJSON_Delete(root);
    if (!ok) { st_close(st); return NULL; }
    return st;
}

static int ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && !strcmp(s + a - b, suffix);
}

SafeTensors *st_open(const char *path, char *err, size_t errlen) {
    struct stat sb;
    if (stat(path, &sb) != 0) { st_err(err, errlen, "%s: cannot open: %s", path, strerror(errno)); return NULL; }
    if (S_ISDIR(sb.st_mode)) {
        char *single = path_join(path, "model.safetensors");
        char *index = path_join(path, "model.safetensors.index.json");
        SafeTensors *st = NULL;
        if (file_exists(single)) st = st_open_file(single, err, errlen);
        else if (file_exists(index)) st = st_open_index(index, err, errlen);
        else st_err(err, errlen, "%s: directory holds neither model.safetensors nor model.safetensors.index.json", path);
        free(single);
        free(index);
        return st;
    }
    return ends_with(path, ".json") ? st_open_index(path, err, errlen) : st_open_file(path, err, errlen);
}

SafeTensors *st_open_or_die(const char *path) {
    char err[1024];
    SafeTensors *st = st_open(path, err, sizeof(err));
    if (!st) fatal("%s", err);
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free(st->tensors[i].name);
    for (int i = 0; i < st->n_files; i++) {
        munmap(st->maps[i], st->map_sizes[i]);
        free(st->files[i]);
    }
    free(st->tensors);
    free(st->files);
    free(st->maps);
    free(st->map_sizes);
    free(st->metadata_json);
    free(st->by_name);
    free(st);
}

static int st_build_index(SafeTensors *st, const char *path, char *err, size_t errlen) {
    st->by_name = xmalloc((size_t)(st->n ? st->n : 1) * sizeof(int));
    // Sorting (name, index) pairs rather than bare indices needs no global comparator context, so
    // st_open stays thread-safe.
    NameKey *keys = xmalloc((size_t)(st->n ? st->n : 1) * sizeof(NameKey));
    for (int i = 0; i < st->n; i++) keys[i] = (NameKey){st->tensors[i].name, 0, i};
    qsort(keys, (size_t)st->n, sizeof(NameKey), namekey_cmp);
    int ok = 1;
    for (int i = 0; i < st->n; i++) {
        st->by_name[i] = keys[i].idx;
        if (i && !strcmp(keys[i].name, keys[i - 1].name)) ok = st_err(err, errlen, "%s: tensor '%s' is defined twice", path, keys[i].name);
    }
    free(keys);
    return ok;
}

const STTensor *st_find(const SafeTensors *st, const char *name) {
    int lo = 0, hi = st->n - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2;
        const STTensor *t = &st->tensors[st->by_name[mid]];
        int c = strcmp(name, t->name);
        if (!c) return t;
        if (c < 0) hi = mid - 1;
        else lo = mid + 1;
    }
    return NULL;
}

const STTensor *st_get(const SafeTensors *st, const char *name) {
    const STTensor *t = st_find(st, name);
    if (!t) fatal("%s: no tensor named '%s'", st->n_files ? st->files[0] : "safetensors", name);
    return t;
}

// Elements are read with memcpy: `data` points into the file and need not be aligned for its dtype.
void st_to_f32(const STTensor *t, float *dst) {
    const unsigned char *src = t->data;
    long long n = (long long)t->numel;
    switch (t->dtype) {
    case DT_F32:
        if (n) memcpy(dst, src, (size_t)n * 4);
        break;
    case DT_F16:
#pragma omp parallel for if (n > (1 << 18))
        for (long long i = 0; i < n; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = f16_to_f32(h); }
        break;
    case DT_BF16:
#pragma omp parallel for if (n > (1 << 18))
        for (long long i = 0; i < n; i++) { uint16_t h; memcpy(&h, src + 2 * i, 2); dst[i] = bf16_to_f32(h); }
        break;
    case DT_F64:
#pragma omp parallel for if (n > (1 << 18))
        for (long long i = 0; i < n; i++) { double d; memcpy(&d, src + 8 * i, 8); dst[i] = (float)d; }
        break;
    default:
        fatal("tensor '%s' has integer dtype %s; st_to_f32 converts only F32/F16/BF16/F64", t->name, dtype_name(t->dtype));
    }
}

// ---------------------------------------------------------------------------------------------------
// Writer

typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t nbytes;
    const void *data;
    int owned;  // data was copied (or converted) and is freed with the writer
} STWEntry;

struct STWriter {
    STWEntry *e;
    int n, cap;
};

STWriter *stw_new(void) { return xcalloc(1, sizeof(STWriter)); }

static size_t stw_check(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape) {
    if (!name || !name[0]) fatal("safetensors writer: empty tensor name");
    if (!strcmp(name, "__metadata__")) fatal("safetensors writer: '__metadata__' is reserved, not a tensor name");
    if (!dtype_size(dtype)) fatal("safetensors writer: tensor '%s': invalid dtype %d", name, (int)dtype);
    if (ndim < 0 || ndim > ST_MAX_DIMS) fatal("safetensors writer: tensor '%s': %d dimensions (0..%d supported)", name, ndim, ST_MAX_DIMS);
    uint64_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) fatal("safetensors writer: tensor '%s': negative dimension %lld", name, (long long)shape[i]);
        if (__builtin_mul_overflow(numel, (uint64_t)shape[i], &numel)) fatal("safetensors writer: tensor '%s': shape overflows", name);
    }
    uint64_t nbytes;
    if (__builtin_mul_overflow(numel, (uint64_t)dtype_size(dtype), &nbytes) || nbytes > SIZE_MAX)
        fatal("safetensors writer: tensor '%s': shape overflows", name);
    // A linear scan is fine: writers hold at most a few thousand tensors.
    for (int i = 0; i < w->n; i++)
        if (!strcmp(w->e[i].name, name)) fatal("safetensors writer: tensor '%s' added twice", name);
    return (size_t)nbytes;
}

static void stw_push(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, size_t nbytes,
                     const void *data, int owned) {
    if (w->n == w->cap) {
        w->cap = w->cap ? w->cap * 2 : 64;
        w->e = xrealloc(w->e, (size_t)w->cap * sizeof(STWEntry));
    }
    STWEntry *e = &w->e[w->n++];
    memset(e, 0, sizeof(*e));
    e->name = xstrdup(name);
    e->dtype = dtype;
    e->ndim = ndim;
    for (int i = 0; i < ndim; i++) e->shape[i] = shape[i];
    e->nbytes = nbytes;
    e->data = data;
    e->owned = owned;
}

void stw_add(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data) {
    size_t nbytes = stw_check(w, name, dtype, ndim, shape);
    if (nbytes && !data) fatal("safetensors writer: tensor '%s': NULL data", name);
    void *copy = xmalloc(nbytes);
    if (nbytes) memcpy(copy, data, nbytes);
    stw_push(w, name, dtype, ndim, shape, nbytes, copy, 1);
}

void stw_add_nocopy(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data) {
    size_t nbytes = stw_check(w, name, dtype, ndim, shape);
    if (nbytes && !data) fatal("safetensors writer: tensor '%s': NULL data", name);
    stw_push(w, name, dtype, ndim, shape, nbytes, data, 0);
}

void stw_add_f32(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const float *data) {
    if (dtype != DT_F32 && dtype != DT_F16 && dtype != DT_BF16)
        fatal("safetensors writer: tensor '%s': stw_add_f32 stores F32, F16 or BF16, not %s", name, dtype_name(dtype));
    size_t nbytes = stw_check(w, name, dtype, ndim, shape);
    if (nbytes && !data) fatal("safetensors writer: tensor '%s': NULL data", name);
    size_t n = nbytes / dtype_size(dtype);
    void *out = xmalloc(nbytes);
    if (dtype == DT_F32) {
        if (n) memcpy(out, data, nbytes);
    } else {
        uint16_t *h = out;
        for (size_t i = 0; i < n; i++) h[i] = dtype == DT_F16 ? f32_to_f16(data[i]) : f32_to_bf16(data[i]);
    }
    stw_push(w, name, dtype, ndim, shape, nbytes, out, 1);
}

typedef struct { char *s; size_t len, cap; } StrBuf;

static void sb_put(StrBuf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        b->cap = (b->len + n + 1) * 2;
        b->s = xrealloc(b->s, b->cap);
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void sb_printf(StrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(StrBuf *b, const char *fmt, ...) {
    char tmp[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    CHECK_OR_DIE(n >= 0 && (size_t)n < sizeof(tmp), "safetensors writer: header fragment too long");
    sb_put(b, tmp, (size_t)n);
}

// A JSON string literal. Bytes >= 0x80 pass through (names are UTF-8); control characters are escaped.
static void sb_json_str(StrBuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\') { char e[2] = {'\\', (char)*p}; sb_put(b, e, 2); }
        else if (*p < 0x20) sb_printf(b, "\\u%04x", *p);
        else sb_put(b, (const char *)p, 1);
    }
    sb_put(b, "\"", 1);
}

// Larger elements first, ties in the order added: with the header padded to 8 bytes every tensor then
// starts at a multiple of its element size, so readers that map the file get aligned data (the Python
// library orders tensors by the same rule).
typedef struct { size_t elem; int idx; } WriteOrder;
static int write_order_cmp(const void *a, const void *b) {
    const WriteOrder *x = a, *y = b;
    if (x->elem != y->elem) return x->elem > y->elem ? -1 : 1;
    return x->idx - y->idx;
}

uint64_t stw_bytes_bound(const STWriter *w) {
    // per tensor: its name, JSON-escaped at worst 6 bytes a byte, and its dtype/shape/offsets (< 256 bytes)
    uint64_t n = 8 + 256;
    for (int i = 0; i < w->n; i++) n += w->e[i].nbytes + 6 * strlen(w->e[i].name) + 256;
    return n;
}

static void stw_free(STWriter *w) {
    for (int i = 0; i < w->n; i++) {
        free(w->e[i].name);
        if (w->e[i].owned) free((void *)w->e[i].data);
    }
    free(w->e);
    free(w);
}

void stw_write(STWriter *w, const char *path, const char **metadata) {
    WriteOrder *order = xmalloc((size_t)(w->n ? w->n : 1) * sizeof(WriteOrder));
    for (int i = 0; i < w->n; i++) order[i] = (WriteOrder){dtype_size(w->e[i].dtype), i};
    qsort(order, (size_t)w->n, sizeof(WriteOrder), write_order_cmp);

    StrBuf h = {0};
    sb_put(&h, "{\"__metadata__\":{", 17);
    int has_format = 0;
    for (int i = 0; metadata && metadata[i]; i += 2) {
        if (!metadata[i + 1]) fatal("%s: metadata key '%s' has no value (pairs must end with NULL)", path, metadata[i]);
        for (int j = 0; j < i; j += 2)
            if (!strcmp(metadata[j], metadata[i])) fatal("%s: metadata key '%s' given twice", path, metadata[i]);
        if (!strcmp(metadata[i], "format")) has_format = 1;
    }
    if (!has_format) sb_put(&h, "\"format\":\"pt\"", 13);
    for (int i = 0; metadata && metadata[i]; i += 2) {
        if (i || !has_format) sb_put(&h, ",", 1);
        sb_json_str(&h, metadata[i]);
        sb_put(&h, ":", 1);
        sb_json_str(&h, metadata[i + 1]);
    }
    sb_put(&h, "}", 1);
    uint64_t offset = 0;
    for (int k = 0; k < w->n; k++) {
        const STWEntry *e = &w->e[order[k].idx];
        sb_put(&h, ",", 1);
        sb_json_str(&h, e->name);
        sb_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", dtype_name(e->dtype));
        for (int d = 0; d < e->ndim; d++) sb_printf(&h, "%s%lld", d ? "," : "", (long long)e->shape[d]);
        sb_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)offset, (unsigned long long)(offset + e->nbytes));
        offset += e->nbytes;
    }
    sb_put(&h, "}", 1);
    while (h.len % 8) sb_put(&h, " ", 1);  // the data buffer then starts 8-aligned

    char *tmp = xmalloc(strlen(path) + 8);
    sprintf(tmp, "%s.tmp", path);
    FILE *f = fopen(tmp, "wb");
    if (!f) fatal("%s: cannot create: %s", tmp, strerror(errno));
    unsigned char len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (unsigned char)((uint64_t)h.len >> (8 * i));
    int ok = fwrite(len8, 1, 8, f) == 8 && fwrite(h.s, 1, h.len, f) == h.len;
    // Streamed tensor by tensor: a multi-GB checkpoint is never assembled in one buffer.
    for (int k = 0; k < w->n && ok; k++) {
        const STWEntry *e = &w->e[order[k].idx];
        if (e->nbytes) ok = fwrite(e->data, 1, e->nbytes, f) == e->nbytes;
    }
    if (!ok) { int en = errno; fclose(f); unlink(tmp); fatal("%s: write failed: %s", tmp, strerror(en)); }
    if (fflush(f) != 0 || fsync(fileno(f)) != 0) { int en = errno; fclose(f); unlink(tmp); fatal("%s: flush failed: %s", tmp, strerror(en)); }
    if (fclose(f) != 0) { int en = errno; unlink(tmp); fatal("%s: close failed: %s", tmp, strerror(en)); }
    if (rename(tmp, path) != 0) { int en = errno; unlink(tmp); fatal("%s: cannot rename to %s: %s", tmp, path, strerror(en)); }
    // Make the rename itself durable; best effort (some filesystems refuse fsync on directories).
    char *dir = path_dirname(path);
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) { (void)fsync(dfd); close(dfd); }
    free(dir);
    free(tmp);
    free(h.s);
    free(order);
    stw_free(w);
}
