#include "datasets.h"

#include <cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/jsonl.h"

static const char *kind_names[] = {"none", "llava", "pref", "mvc", "pope"};

DataKind data_kind_parse(const char *name) {
    for (int k = DATA_LLAVA; k <= DATA_POPE; k++)
        if (!strcmp(name, kind_names[k])) return (DataKind)k;
    return DATA_NONE;
}

const char *data_kind_name(DataKind kind) {
    return kind >= DATA_LLAVA && kind <= DATA_POPE ? kind_names[kind] : "none";
}

// ---- field helpers: each returns 0 and writes the reason into why on failure -----------------------

typedef struct {
    const char *dir;  // image root
    char *why;        // reason of the last failure
    size_t why_len;
} Ctx;

#define FAIL(ctx, ...) do { snprintf((ctx)->why, (ctx)->why_len, __VA_ARGS__); return 0; } while (0)

// A string field. required: absent is an error; nonempty: "" is an error. *out is a fresh copy
// (NULL when absent and not required).
static int get_str(Ctx *c, const cJSON *j, const char *key, int required, int nonempty, char **out) {
    *out = NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) {
        if (required) FAIL(c, "missing \"%s\"", key);
        return 1;
    }
    if (!cJSON_IsString(v)) FAIL(c, "\"%s\" must be a string", key);
    if (nonempty && !v->valuestring[0]) FAIL(c, "\"%s\" is empty", key);
    *out = xstrdup(v->valuestring);
    return 1;
}

// An optional image path, resolved against the image root.
static int get_image(Ctx *c, const cJSON *j, const char *key, int required, char **out) {
    char *rel;
    if (!get_str(c, j, key, required, 1, &rel)) return 0;
    *out = rel ? path_join(c->dir, rel) : NULL;
    free(rel);
    return 1;
}

// A non-empty list of image paths (a lone string is not accepted: the schema says list).
static int get_image_list(Ctx *c, const cJSON *j, const char *key, char ***out, int *n) {
    *out = NULL;
    *n = 0;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v) FAIL(c, "missing \"%s\"", key);
    if (!cJSON_IsArray(v)) FAIL(c, "\"%s\" must be a list of image paths", key);
    int len = cJSON_GetArraySize(v);
    if (len < 1) FAIL(c, "\"%s\" is empty: each side needs at least one image", key);
    *out = xcalloc((size_t)len, sizeof(char *));
    const cJSON *e;
    cJSON_ArrayForEach(e, v) {
        if (!cJSON_IsString(e) || !e->valuestring[0]) FAIL(c, "\"%s\"[%d] must be a non-empty string", key, *n);
        (*out)[(*n)++] = path_join(c->dir, e->valuestring);
    }
    return 1;
}

// A LLaVA or preference record's images ("image": a path or a list; TRL's "images": [paths]), resolved.
static int get_record_images(Ctx *c, const cJSON *j, char ***out, int *n) {
    const char *rel[DATASET_MAX_RECORD_IMAGES], *key;
    int count = 0;  // set only on success: the record's free reads *n
    if (json_record_images(j, rel, DATASET_MAX_RECORD_IMAGES, &count, &key, c->why, c->why_len)) return 0;
    *out = count ? xcalloc((size_t)count, sizeof(char *)) : NULL;
    for (int i = 0; i < count; i++) (*out)[i] = path_join(c->dir, rel[i]);
    *n = count;
    return 1;
}

static int count_image_tags(const char *s) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, "<image>")); p += 7) n++;
    return n;
}

static void free_list(char **v, int n) {
    for (int i = 0; i < n; i++) free(v[i]);
    free(v);
}

// ---- per-kind record parsers: fill *r, or return 0 with the reason (the caller frees r) -------------

static int parse_llava(Ctx *c, const cJSON *j, void *rec) {
    LlavaRecord *r = rec;
    const cJSON *id = cJSON_GetObjectItemCaseSensitive(j, "id");
    if (cJSON_IsString(id)) r->id = xstrdup(id->valuestring);
    else if (cJSON_IsNumber(id)) {
        char buf[32];
        snprintf(buf, sizeof(buf), "%.17g", id->valuedouble);
        r->id = xstrdup(buf);
    } else r->id = xstrdup("");
    static const char *const used[] = {"id", "image", "images", "conversations", NULL};
    const char *stray = json_stray_image_key(j, used, NULL);
    if (stray) FAIL(c, "\"%s\" looks like an image but conversation records read it from \"image\" or \"images\"", stray);
    if (!get_record_images(c, j, &r->images, &r->n_images)) return 0;
    const cJSON *conv = cJSON_GetObjectItemCaseSensitive(j, "conversations");
    if (!conv) FAIL(c, "missing \"conversations\"");
    if (!cJSON_IsArray(conv)) FAIL(c, "\"conversations\" must be a list of turns");
    int n = cJSON_GetArraySize(conv);
    if (n < 2) FAIL(c, "\"conversations\" has %d turn%s: needs at least a human turn and a gpt answer", n, n == 1 ? "" : "s");
    r->turns = xcalloc((size_t)n, sizeof(char *));
    const cJSON *t;
    int tags = 0;
    cJSON_ArrayForEach(t, conv) {
        int k = r->n_turns;
        if (!cJSON_IsObject(t)) FAIL(c, "turn %d is not an object", k);
        const cJSON *from = cJSON_GetObjectItemCaseSensitive(t, "from");
        const cJSON *value = cJSON_GetObjectItemCaseSensitive(t, "value");
        if (!cJSON_IsString(from)) FAIL(c, "turn %d: \"from\" must be \"human\" or \"gpt\"", k);
        const char *expect = k % 2 == 0 ? "human" : "gpt";
        if (strcmp(from->valuestring, "human") && strcmp(from->valuestring, "gpt"))
            FAIL(c, "turn %d: \"from\" is \"%s\", expected \"human\" or \"gpt\"", k, from->valuestring);
        if (strcmp(from->valuestring, expect))
            FAIL(c, "turn %d is from \"%s\" but turns must alternate human, gpt, ... starting with human", k, from->valuestring);
        if (!cJSON_IsString(value)) FAIL(c, "turn %d: \"value\" must be a string", k);
        // An empty turn is a broken record: an empty question, or an answer with nothing to learn.
        if (!value->valuestring[strspn(value->valuestring, " \t\r\n")]) FAIL(c, "turn %d (%s) is empty", k, expect);
        int nt = count_image_tags(value->valuestring);
        if (nt && k % 2) FAIL(c, "turn %d (gpt) contains <image>: images go in human turns", k);
        if (nt && k != 0 && r->n_images < 2)
            FAIL(c, "turn %d (%s) contains <image>: LLaVA puts the image in the first human turn", k, expect);
        tags += nt;
        r->turns[r->n_turns++] = xstrdup(value->valuestring);
    }
    if (n % 2) FAIL(c, "the last turn (%d) is from human: a conversation must end with a gpt answer", n - 1);
    if (tags && !r->n_images) FAIL(c, "the first turn has <image> but the record has no \"image\"");
    if (tags > 1 && r->n_images < 2) FAIL(c, "<image> appears %d times; at most once (one image per conversation)", tags);
    if (tags && r->n_images > 1 && tags != r->n_images)
        FAIL(c, "<image> appears %d times for %d images: write one per image, or none to put them all first", tags, r->n_images);
    return 1;
}

static int parse_pref(Ctx *c, const cJSON *j, void *rec) {
    PrefRecord *r = rec;
    // TRL's "images": [path] as well as "image"; "question" as well as "prompt"; any other image-like key is
    // an error (the image would be silently dropped)
    static const char *const used[] = {"image", "images", "prompt", "question", "chosen", "rejected", NULL};
    const char *stray = json_stray_image_key(j, used, NULL);
    if (stray) FAIL(c, "\"%s\" looks like an image but preference records read it from \"image\" or \"images\"", stray);
    if (!get_record_images(c, j, &r->images, &r->n_images)) return 0;
    static const char *const prompt_keys[] = {"prompt", "question", NULL};
    const char *pr, *pr_key;
    if (json_record_text(j, prompt_keys, &pr, &pr_key, c->why, c->why_len)) return 0;
    if (!pr) FAIL(c, "missing \"prompt\" (or \"question\")");
    if (!pr[0]) FAIL(c, "\"%s\" is empty", pr_key);
    r->prompt = xstrdup(pr);
    if (!get_str(c, j, "chosen", 1, 1, &r->chosen)) return 0;
    if (!get_str(c, j, "rejected", 1, 1, &r->rejected)) return 0;
    int tags = count_image_tags(r->prompt);
    if (tags && !r->n_images) FAIL(c, "\"prompt\" has <image> but the record has no \"image\"");
    if (tags && tags != r->n_images)
        FAIL(c, "<image> appears %d times in \"prompt\" for %d image%s: write one per image, or none", tags, r->n_images,
             r->n_images == 1 ? "" : "s");
    if (count_image_tags(r->chosen) || count_image_tags(r->rejected)) FAIL(c, "a response contains <image>");
    // SeVa drops pairs whose two answers are the same string: they carry no preference.
    if (!strcmp(r->chosen, r->rejected)) FAIL(c, "\"chosen\" and \"rejected\" are identical");
    return 1;
}

static int parse_mvc(Ctx *c, const cJSON *j, void *rec) {
    MvcRecord *r = rec;
    if (!get_str(c, j, "system_prompt", 0, 0, &r->system_prompt)) return 0;
    if (!r->system_prompt) r->system_prompt = xstrdup("");
    if (!get_str(c, j, "instruction_prompt", 1, 1, &r->instruction_prompt)) return 0;
    if (!get_image_list(c, j, "chosen_images", &r->chosen_images, &r->n_chosen_images)) return 0;
    if (!get_image_list(c, j, "rejected_images", &r->rejected_images, &r->n_rejected_images)) return 0;
    if (!get_str(c, j, "chosen_response", 1, 1, &r->chosen_response)) return 0;
    if (!get_str(c, j, "rejected_response", 1, 1, &r->rejected_response)) return 0;
    return 1;
}

static int parse_pope(Ctx *c, const cJSON *j, void *rec) {
    PopeRecord *r = rec;
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(j, "question_id");
    if (!q) FAIL(c, "missing \"question_id\"");
    if (!cJSON_IsNumber(q) || fabs(q->valuedouble) > 9e15 || q->valuedouble != (double)(long)q->valuedouble)
        FAIL(c, "\"question_id\" must be an integer");
    r->question_id = (long)q->valuedouble;
    static const char *const used[] = {"question_id", "image", "text", "label", "prompt", NULL};
    const char *stray = json_stray_image_key(j, used, NULL);
    if (stray) FAIL(c, "\"%s\" looks like an image but POPE records read it from \"image\"", stray);
    if (!get_image(c, j, "image", 1, &r->image)) return 0;
    if (!get_str(c, j, "text", 1, 1, &r->text)) return 0;
    const cJSON *label = cJSON_GetObjectItemCaseSensitive(j, "label");
    if (!label) FAIL(c, "missing \"label\"");
    if (!cJSON_IsString(label) || (strcmp(label->valuestring, "yes") && strcmp(label->valuestring, "no")))
        FAIL(c, "\"label\" must be \"yes\" or \"no\"");
    r->label = !strcmp(label->valuestring, "yes");
    return 1;
}

static void free_llava(LlavaRecord *r) { free(r->id); free_list(r->images, r->n_images); free_list(r->turns, r->n_turns); }
static void free_pref(PrefRecord *r) { free_list(r->images, r->n_images); free(r->prompt); free(r->chosen); free(r->rejected); }
static void free_mvc(MvcRecord *r) {
    free(r->system_prompt); free(r->instruction_prompt);
    free_list(r->chosen_images, r->n_chosen_images); free_list(r->rejected_images, r->n_rejected_images);
    free(r->chosen_response); free(r->rejected_response);
}
static void free_pope(PopeRecord *r) { free(r->image); free(r->text); }

typedef struct {
    DataKind kind;
    size_t size;
    int (*parse)(Ctx *, const cJSON *, void *);
    void (*free)(void *);
} KindOps;

static const KindOps ops[] = {
    [DATA_LLAVA] = {DATA_LLAVA, sizeof(LlavaRecord), parse_llava, (void (*)(void *))free_llava},
    [DATA_PREF] = {DATA_PREF, sizeof(PrefRecord), parse_pref, (void (*)(void *))free_pref},
    [DATA_MVC] = {DATA_MVC, sizeof(MvcRecord), parse_mvc, (void (*)(void *))free_mvc},
    [DATA_POPE] = {DATA_POPE, sizeof(PopeRecord), parse_pope, (void (*)(void *))free_pope},
};

// The record array of a dataset, whichever kind it is.
static void **records_slot(Dataset *ds) {
    switch (ds->kind) {
    case DATA_LLAVA: return (void **)&ds->llava;
    case DATA_PREF: return (void **)&ds->pref;
    case DATA_MVC: return (void **)&ds->mvc;
    case DATA_POPE: return (void **)&ds->pope;
    default: fatal("dataset: unknown kind %d", ds->kind);
    }
}

static RecordSource *record_src(const Dataset *ds, int i) {
    switch (ds->kind) {
    case DATA_LLAVA: return &ds->llava[i].src;
    case DATA_PREF: return &ds->pref[i].src;
    case DATA_MVC: return &ds->mvc[i].src;
    case DATA_POPE: return &ds->pope[i].src;
    default: fatal("dataset: unknown kind %d", ds->kind);
    }
}

const char *dataset_where(const Dataset *ds, int i, char *buf, int len) {
    const RecordSource *s = record_src(ds, i);
    if (s->line > 0) snprintf(buf, (size_t)len, "%s:%d", ds->path, s->line);
    else snprintf(buf, (size_t)len, "%s: record %d", ds->path, s->index);
    return buf;
}

// Parses one record; keeps it, or reports it (fatal, or a warning when skipping).
static void add_record(Dataset *ds, const KindOps *k, Ctx *c, const cJSON *j, RecordSource src, int skip_bad, int *cap) {
    void **arr = records_slot(ds);
    if (ds->n == *cap) *arr = xrealloc(*arr, k->size * (size_t)(*cap = *cap ? 2 * *cap : 256));
    void *rec = (char *)*arr + k->size * (size_t)ds->n;
    memset(rec, 0, k->size);
    *(RecordSource *)rec = src;  // every record struct starts with its RecordSource
    int ok = cJSON_IsObject(j) ? k->parse(c, j, rec) : (snprintf(c->why, c->why_len, "expected a JSON object"), 0);
    if (ok) { ds->n++; return; }
    char where[1200];
    if (src.line > 0) snprintf(where, sizeof(where), "%s:%d", ds->path, src.line);
    else if (k->kind == DATA_LLAVA && ((LlavaRecord *)rec)->id && ((LlavaRecord *)rec)->id[0])
        snprintf(where, sizeof(where), "%s: record %d (id \"%s\")", ds->path, src.index, ((LlavaRecord *)rec)->id);
    else snprintf(where, sizeof(where), "%s: record %d", ds->path, src.index);
    if (!skip_bad) fatal("%s: %s", where, c->why);
    fprintf(stderr, "vlm: warning: %s: %s, skipped\n", where, c->why);
    ds->n_bad++;
    k->free(rec);
}

static void finish(Dataset *ds) {
    if (ds->n_bad) fprintf(stderr, "vlm: %s: %d bad record%s skipped, %d kept\n", ds->path, ds->n_bad, ds->n_bad == 1 ? "" : "s", ds->n);
    if (ds->n == 0) fatal("%s: no %srecords", ds->path, ds->n_bad ? "valid " : "");
}

static void read_jsonl(Dataset *ds, DataKind kind, const char *path, const DatasetOptions *opt) {
    const KindOps *k = &ops[kind];
    char why[512];
    char *dir = opt && opt->image_root ? xstrdup(opt->image_root) : path_dirname(path);
    Ctx c = {dir, why, sizeof(why)};
    int skip_bad = opt && opt->skip_bad, cap = 0, n_malformed = 0;
    JsonlReader jr;
    jsonl_open(&jr, path);
    cJSON *j;
    while ((j = jsonl_next(&jr, skip_bad, &n_malformed))) {
        // index counts every non-blank line, malformed ones included, so it matches a line-by-line reader
        RecordSource src = {ds->n + ds->n_bad + n_malformed, jr.line};
        add_record(ds, k, &c, j, src, skip_bad, &cap);
        cJSON_Delete(j);
    }
    jsonl_close(&jr);
    ds->n_bad += n_malformed;
    free(dir);
    finish(ds);
}

static void read_json_array(Dataset *ds, DataKind kind, const char *path, const DatasetOptions *opt) {
    const KindOps *k = &ops[kind];
    size_t len;
    char *text = read_file(path, &len);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(text, &end, 1);
    if (!root) {
        // a JSON array is one value: no record to skip to, so this is fatal even with skip_bad
        fatal("%s:%d: malformed JSON (a %s file is one JSON array)", path, json_error_line(text, end), data_kind_name(kind));
    }
    if (!cJSON_IsArray(root)) fatal("%s: expected a JSON array of records", path);
    char why[512];
    char *dir = opt && opt->image_root ? xstrdup(opt->image_root) : path_dirname(path);
    Ctx c = {dir, why, sizeof(why)};
    int skip_bad = opt && opt->skip_bad, cap = 0, index = 0;
    const cJSON *j;
    cJSON_ArrayForEach(j, root) {
        RecordSource src = {index++, 0};
        add_record(ds, k, &c, j, src, skip_bad, &cap);
    }
    cJSON_Delete(root);
    free(text);
    free(dir);
    finish(ds);
}

static void dataset_init(Dataset *ds, DataKind kind, const char *path) {
    memset(ds, 0, sizeof(*ds));
    ds->kind = kind;
    ds->path = xstrdup(path);
}

void dataset_read_llava(Dataset *ds, const char *path, const DatasetOptions *opt) {
    dataset_init(ds, DATA_LLAVA, path);
    read_json_array(ds, DATA_LLAVA, path, opt);
}

void dataset_read_pref(Dataset *ds, const char *path, const DatasetOptions *opt) {
    dataset_init(ds, DATA_PREF, path);
    read_jsonl(ds, DATA_PREF, path, opt);
}

void dataset_read_mvc(Dataset *ds, const char *path, const DatasetOptions *opt) {
    dataset_init(ds, DATA_MVC, path);
    read_json_array(ds, DATA_MVC, path, opt);
}

void dataset_read_pope(Dataset *ds, const char *path, const DatasetOptions *opt) {
    dataset_init(ds, DATA_POPE, path);
    read_jsonl(ds, DATA_POPE, path, opt);
}

void dataset_read(Dataset *ds, DataKind kind, const char *path, const DatasetOptions *opt) {
    switch (kind) {
    case DATA_LLAVA: dataset_read_llava(ds, path, opt); break;
    case DATA_PREF: dataset_read_pref(ds, path, opt); break;
    case DATA_MVC: dataset_read_mvc(ds, path, opt); break;
    case DATA_POPE: dataset_read_pope(ds, path, opt); break;
    default: fatal("%s: unknown dataset kind %d", path, kind);
    }
}

void dataset_free(Dataset *ds) {
    if (ds->kind >= DATA_LLAVA && ds->kind <= DATA_POPE) {
        const KindOps *k = &ops[ds->kind];
        void *arr = *records_slot(ds);
        for (int i = 0; i < ds->n; i++) k->free((char *)arr + k->size * (size_t)i);
        free(arr);
    }
    free(ds->path);
    memset(ds, 0, sizeof(*ds));
}
