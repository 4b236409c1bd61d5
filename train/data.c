#include "data.h"

#include <cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../data/chat.h"
#include "../data/image.h"
#include "../data/prefetch.h"
#include "../data/datasets.h"
#include "../data/records.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../util/common.h"
#include "../util/jsonl.h"
#include "../util/strmap.h"

// ---------------------------------------------------------------------------------------------------
// loading state

typedef struct {
    const TrainData *d;
    TrainData *out;      // loading: the data being indexed (NULL when a record's rows are made later)
    const char *path;
    char *dir;
    const LlavaConfig *cfg;
    const PreprocessConfig *pcfg;
    const TrainDataOptions *opt;
    Tokenizer *tok;
    int cap_img;
    int *shard_map;      // shard image index -> our table index (-1: not named yet)
    unsigned long long image_hash;  // of the file images' identities, in table order
    StrMap image_of;     // image path -> our table index: a data set names each image in many records
    char err[512];
} Loader;

static unsigned long long fnv(unsigned long long h, const void *p, size_t n) {
    const unsigned char *b = p;
    for (size_t i = 0; i < n; i++) { h ^= b[i]; h *= 1099511628211ULL; }
    return h;
}

// The random stream of mDPO's crop of image `part` of example `example` (fixed crops: stream is the run's seed;
// fresh crops: the pass's train_crop_stream). A record's first image draws as one-image records always have; each
// later image of a list draws its own crop.
static unsigned long long crop_rng_seed(unsigned long long stream, int example, int part) {
    return stream * 1000003ULL + (unsigned long long)example + (unsigned long long)part * 0xD1B54A32D192ED03ULL;
}

void train_data_image(const TrainData *d, int i, float *out) {
    const TrainImage *im = &d->images[i];
    const int S = d->image_size;
    const size_t img = (size_t)3 * S * S;
    if (im->kind == TRAIN_IMAGE_MEMORY) { memcpy(out, d->pixels + (size_t)im->index * img, sizeof(float) * img); return; }
    if (im->kind == TRAIN_IMAGE_SHARD) {
        ShardLut lut;  // 3 x 256 floats: cheaper to make than to share across the loader's threads
        shard_lut_init(&lut, d->shard->h);
        shard_normalize(&lut, shard_image(d->shard, (uint64_t)im->index), S, out);
        return;
    }
    if (im->kind == TRAIN_IMAGE_CROP) {
        train_data_image(d, (int)im->index, out);
        AugRng rng;
        augrng_seed(&rng, crop_rng_seed(d->crop_seed, im->example, im->part));
        augment_random_resized_crop(out, 3, S, S, d->crop_lo, d->crop_hi, &rng);
        return;
    }
    char err[512] = "";
    Image *decoded = image_load(im->name, d->pcfg.alpha, err, sizeof(err));
    if (!decoded) fatal("%s:%d: %s", d->path, im->line, err);
    int h, w;
    float *px = preprocess_image(&d->pcfg, decoded, &h, &w);
    image_free(decoded);
    if (h != S || w != S) fatal("%s:%d: %s preprocesses to %dx%d, the vision tower expects %dx%d", d->path, im->line, im->name, w, h, S, S);
    memcpy(out, px, sizeof(float) * img);
    free(px);
}

static int table_append(Loader *L, TrainImage im) {
    TrainData *d = L->out;
    if (d->n_images == L->cap_img) {
        L->cap_img = L->cap_img ? 2 * L->cap_img : 64;
        d->images = xrealloc(d->images, sizeof(TrainImage) * L->cap_img);
    }
    d->images[d->n_images] = im;
    return d->n_images++;
}

// A shard's image: normalized from its uint8 pixels when a batch needs it (train_data_image).
static int shard_image_index(Loader *L, long idx, int line) {
    const Shard *sh = L->d->shard;
    if (idx < 0 || (uint64_t)idx >= sh->h->n_images) fatal("%s: record %d: image %ld is outside the shard", L->path, line, idx);
    if (L->shard_map[idx] >= 0) return L->shard_map[idx];
    const int S = L->d->image_size;
    if ((int)sh->h->image_size != S) fatal("%s: images are %ux%u, the vision tower expects %dx%d", L->path, sh->h->image_size, sh->h->image_size, S, S);
    char name[64];
    snprintf(name, sizeof(name), "(shard image %ld)", idx);
    CHECK_OR_DIE(L->out, "internal: a shard image named after the load");
    L->shard_map[idx] = table_append(L, (TrainImage){TRAIN_IMAGE_SHARD, xstrdup(name), idx, -1, 0, line});
    return L->shard_map[idx];
}

// Each distinct image once: the path -> index hash map finds the ones named before (a data set names each image in
// many records). The file is only found here (it exists); its pixels are made when a batch needs them. -1 with L->err when it cannot be read (--skip-bad skips the record then).
static int image_index(Loader *L, const char *rel, int line) {
    if (L->d->shard && !strncmp(rel, "shard:", 6)) return shard_image_index(L, atol(rel + 6), line);
    char *path = path_join(L->opt->images_dir ? L->opt->images_dir : L->dir, rel);
    const int known = strmap_get(&L->image_of, path);
    if (known >= 0) { free(path); return known; }
    struct stat st;
    // Only that the file exists is checked here (a stat: the load stays cheap per record); a file that does not
    // decode stops the run at the batch that needs it, naming the record. --skip-bad promises a run that meets no
    // bad image, so there each image is decoded whole once (its pixels dropped: memory stays bounded, the load is
    // slower and grows with the data set)
    int readable = 1;
    if (L->opt->skip_bad) {
        Image *whole = image_load(path, L->d->pcfg.alpha, L->err, sizeof(L->err));
        readable = whole != NULL;
        image_free(whole);
    }
    if (!readable || stat(path, &st) != 0) {
        if (!L->err[0]) snprintf(L->err, sizeof(L->err), "%s: cannot read image: %s", path, strerror(errno));
        free(path);
        return -1;
    }
    // the source's identity keys the data hash: the name the record gives, the size and the modification time
    L->image_hash = fnv(L->image_hash, rel, strlen(rel) + 1);
    L->image_hash = fnv(L->image_hash, &st.st_size, sizeof(st.st_size));
    L->image_hash = fnv(L->image_hash, &st.st_mtim, sizeof(st.st_mtim));
    int i = table_append(L, (TrainImage){TRAIN_IMAGE_FILE, path, 0, -1, 0, line});
    strmap_put(&L->image_of, path, i);
    if (i == 0) {  // the first image is made now: a preprocessing that does not give the tower's size stops the load
        float *px = xmalloc(sizeof(float) * 3 * L->d->image_size * L->d->image_size);
        train_data_image(L->out, 0, px);
        free(px);
    }
    return i;
}

// mDPO's corrupted image with --crop fixed: a random-resized crop of `src`, image `part` of the example, drawn from
// (seed, example, part) when a batch needs it, the same every time.
static int corrupt_image(Loader *L, int src, int example, int part) {
    char name[64];
    snprintf(name, sizeof(name), "(crop of image %d)", src);
    return table_append(L, (TrainImage){TRAIN_IMAGE_CROP, xstrdup(name), src, example, part, L->d->images[src].line});
}

static int *json_ids(const cJSON *arr, int *n) {
    if (!cJSON_IsArray(arr)) return NULL;
    int len = cJSON_GetArraySize(arr), i = 0;
    int *ids = xmalloc(sizeof(int) * (len ? len : 1));
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble) { free(ids); return NULL; }
        ids[i++] = (int)v->valuedouble;
    }
    *n = len;
    return ids;
}

static const char *json_str(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

// A row from ids: prompt (with the image token once per image, or expanded) + response; labels on the response.
// n_images = 0 drops the image tokens (the image-free variant). Returns 0 or -1 with L->err set.
static int row_from_ids(Loader *L, TrainRow *r, const int *prompt, int np, const int *resp, int nr, int n_images, int image) {
    const LlavaConfig *c = L->cfg;
    int *p = NULL, n = 0;
    if (n_images) {
        p = records_expand_image_tokens(prompt, np, n_images, c, &n, L->err, sizeof(L->err));
        if (!p) return -1;
    } else {
        p = xmalloc(sizeof(int) * (np ? np : 1));
        for (int i = 0; i < np; i++) if (prompt[i] != c->image_token_id) p[n++] = prompt[i];
    }
    if (nr < 1) { free(p); snprintf(L->err, sizeof(L->err), "empty response"); return -1; }
    r->n = n + nr;
    r->ids = xmalloc(sizeof(int) * r->n);
    r->labels = xmalloc(sizeof(int) * r->n);
    for (int i = 0; i < n; i++) { r->ids[i] = p[i]; r->labels[i] = -100; }
    for (int i = 0; i < nr; i++) {
        if (resp[i] == c->image_token_id) { free(p); snprintf(L->err, sizeof(L->err), "the response contains the image token"); return -1; }
        r->ids[n + i] = resp[i];
        r->labels[n + i] = resp[i];
    }
    for (int i = 0; i < r->n; i++)
        if (r->ids[i] < 0 || r->ids[i] >= c->text.vocab) {
            free(p);
            snprintf(L->err, sizeof(L->err), "token id %d is outside the vocabulary (%d)", r->ids[i], c->text.vocab);
            return -1;
        }
    free(p);
    // --max-text-len counts each image as one token, --max-len as the tokens it expands to; only response tokens
    // are cut, as chat_build cuts text rows
    const int image_extra = n_images * (c->image_tokens - 1);
    const int limits[2] = {L->opt->max_text_len > 0 ? L->opt->max_text_len + image_extra : 0, L->opt->max_len};
    const char *flags[2] = {"--max-text-len", "--max-len"};
    for (int k = 0; k < 2; k++) {
        if (limits[k] <= 0 || r->n <= limits[k]) continue;
        if (r->n - nr >= limits[k]) {
            const int counted = k == 0 ? image_extra : 0;  // --max-text-len: each image as one token
            snprintf(L->err, sizeof(L->err), "the prompt (%d tokens with the image%s) does not fit in %s %d", r->n - nr - counted,
                     counted ? (n_images > 1 ? "s as one each" : " as one") : n_images > 1 ? "s" : "", flags[k], limits[k] - counted);
            return -1;
        }
        r->n = limits[k];
    }
    if (llava_check_row_length(L->cfg, r->n, L->err, sizeof(L->err))) return -1;  // past max_position_embeddings
    r->image = n_images ? image : -1;
    return 0;
}

// A row from text through the chat template: one (prompt, response) turn, or a whole conversation, with n_images
// images (their placeholders where the text has them, else in front: data/chat.h).
static int row_from_turns(Loader *L, TrainRow *r, const char *system, const ChatTurn *turns, int n_turns, int n_images, int image) {
    if (!L->tok) { snprintf(L->err, sizeof(L->err), "text fields need a tokenizer (--tokenizer, or tokenizer.model or tokenizer.json in the model folder)"); return -1; }
    ChatOptions o = {0};
    o.tmpl = L->opt->template_name ? (ChatTemplate)chat_template_from_name(L->opt->template_name) : CHAT_VICUNA_V1;
    o.system = L->opt->system ? L->opt->system : system;
    o.image = n_images;
    o.n_image_tokens = L->cfg->image_tokens;
    o.max_len = L->opt->max_len;
    o.max_text_len = L->opt->max_text_len;
    ChatTokens ct;
    if (chat_build(L->tok, &o, turns, n_turns, &ct, L->err, sizeof(L->err)) != 0) return -1;
    r->n = ct.n;
    r->ids = xmalloc(sizeof(int) * ct.n);
    r->labels = xmalloc(sizeof(int) * ct.n);
    for (int i = 0; i < ct.n; i++) {
        r->ids[i] = ct.ids[i];
        r->labels[i] = ct.mask[i] ? ct.ids[i] : -100;
        if (ct.ids[i] >= L->cfg->text.vocab) {
            snprintf(L->err, sizeof(L->err), "token id %d is outside the model's vocabulary (%d): tokenizer and model disagree",
                     ct.ids[i], L->cfg->text.vocab);
            chat_tokens_free(&ct);
            return -1;
        }
    }
    chat_tokens_free(&ct);
    if (llava_check_row_length(L->cfg, r->n, L->err, sizeof(L->err))) return -1;  // past max_position_embeddings
    r->image = n_images ? image : -1;
    return 0;
}

// The three texts of a pair (prompt, chosen, rejected) as ids or text, whichever the record has.
typedef struct {
    const char *system, *prompt, *a, *b;  // text form
    int *prompt_ids, *a_ids, *b_ids, np, na, nb;  // ids form
} PairFields;

static void pair_fields_free(PairFields *f) { free(f->prompt_ids); free(f->a_ids); free(f->b_ids); }

static int pair_fields(Loader *L, const cJSON *j, PairFields *f, const char *prompt_key, const char *a_key, const char *b_key,
                       const char *system_key) {
    memset(f, 0, sizeof(*f));
    char k[64];
    snprintf(k, sizeof(k), "%s_ids", prompt_key);
    const cJSON *pi = cJSON_GetObjectItemCaseSensitive(j, k);
    if (pi) {
        f->prompt_ids = json_ids(pi, &f->np);
        snprintf(k, sizeof(k), "%s_ids", a_key);
        f->a_ids = json_ids(cJSON_GetObjectItemCaseSensitive(j, k), &f->na);
        if (b_key) {
            snprintf(k, sizeof(k), "%s_ids", b_key);
            f->b_ids = json_ids(cJSON_GetObjectItemCaseSensitive(j, k), &f->nb);
        }
        if (!f->prompt_ids || !f->a_ids || (b_key && !f->b_ids)) {
            pair_fields_free(f);
            snprintf(L->err, sizeof(L->err), "%s_ids, %s_ids%s%s%s must be arrays of integers", prompt_key, a_key,
                     b_key ? " and " : "", b_key ? b_key : "", b_key ? "_ids" : "");
            return -1;
        }
        return 0;
    }
    f->prompt = json_str(j, prompt_key);
    if (!strcmp(prompt_key, "prompt")) {  // VQA-style files name it "question"
        const char *q = json_str(j, "question");
        if (q && f->prompt && strcmp(q, f->prompt)) {
            snprintf(L->err, sizeof(L->err), "both \"prompt\" and \"question\", with different texts: give one");
            return -1;
        }
        if (q) f->prompt = q;
    }
    f->a = json_str(j, a_key);
    f->b = b_key ? json_str(j, b_key) : NULL;
    f->system = system_key ? json_str(j, system_key) : NULL;
    if (!f->prompt || !f->a || (b_key && !f->b)) {
        snprintf(L->err, sizeof(L->err), "needs \"%s\"%s, \"%s\"%s%s%s (strings) or the same fields with _ids", prompt_key,
                 strcmp(prompt_key, "prompt") ? "" : " (or \"question\")", a_key, b_key ? " and \"" : "", b_key ? b_key : "", b_key ? "\"" : "");
        return -1;
    }
    if (!f->a[0] || (b_key && !f->b[0])) { snprintf(L->err, sizeof(L->err), "empty response"); return -1; }
    return 0;
}

static int make_row(Loader *L, TrainRow *r, const PairFields *f, int which, int n_images, int image) {
    if (f->prompt_ids)
        return row_from_ids(L, r, f->prompt_ids, f->np, which ? f->b_ids : f->a_ids, which ? f->nb : f->na, n_images, image);
    ChatTurn t = {f->prompt, which ? f->b : f->a};
    return row_from_turns(L, r, f->system, &t, 1, n_images, image);
}

// LLaVA's conversation format: [{"from": "human", "value": ...}, {"from": "gpt", "value": ...}, ...], as turns
// (*out, n / 2 of them, freed by the caller); -1 with L->err when malformed.
static int conversation_turns(Loader *L, const cJSON *conv, ChatTurn **out) {
    int n = cJSON_GetArraySize(conv);
    if (n < 2 || n % 2) { snprintf(L->err, sizeof(L->err), "\"conversations\" needs human/gpt turns in pairs (%d entries)", n); return -1; }
    ChatTurn *turns = xcalloc(n / 2, sizeof(ChatTurn));
    for (int i = 0; i < n; i++) {
        const cJSON *t = cJSON_GetArrayItem(conv, i);
        const char *from = json_str(t, "from"), *value = json_str(t, "value");
        const char *want = i % 2 ? "gpt" : "human";
        if (!from || !value || strcmp(from, want) != 0) {
            snprintf(L->err, sizeof(L->err), "conversation entry %d must be {\"from\": \"%s\", \"value\": text}", i, want);
            free(turns);
            return -1;
        }
        if (i % 2) turns[i / 2].assistant = value; else turns[i / 2].user = value;
    }
    *out = turns;
    return n / 2;
}

// A conversation's one row, with n_images images (their placeholders where its messages have them, else in front).
static int conversation_row(Loader *L, TrainRow *r, const cJSON *conv, int n_images) {
    ChatTurn *turns;
    int n = conversation_turns(L, conv, &turns);
    if (n < 0) return -1;
    int rc = row_from_turns(L, r, NULL, turns, n, n_images, 0);
    free(turns);
    return rc;
}

// The paths of an image field, a string or a list of strings (MVC, TRL's "images"), as indices into the image
// table in out (TRAIN_MAX_SIDE_IMAGES at most): how many (0 if absent), or -1 with L->err on a malformed field, too
// many images, or an image that cannot be read.
static int image_list(Loader *L, const cJSON *j, const char *key, int line, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(j, key);
    if (!v || cJSON_IsNull(v)) return 0;
    const int list = cJSON_IsArray(v), n = list ? cJSON_GetArraySize(v) : 1;
    if (n > TRAIN_MAX_SIDE_IMAGES) {
        snprintf(L->err, sizeof(L->err), "\"%s\" has %d images; at most %d per side are supported", key, n, TRAIN_MAX_SIDE_IMAGES);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const cJSON *p = list ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsString(p) || !p->valuestring[0]) {
            snprintf(L->err, sizeof(L->err), "\"%s\" must be an image path or a list of them", key);
            return -1;
        }
        if ((out[i] = image_index(L, p->valuestring, line)) < 0) return -1;
    }
    return n;
}

// The keys a recipe reads: text fields (any recipe) and its image keys. Any other key that looks like an
// image path is an error (json_stray_image_key): the image would be silently left out of training.
static const char *const text_keys[] = {"prompt", "question", "response", "chosen", "rejected", "system", "conversations",
                                        "prompt_ids", "question_ids", "response_ids", "chosen_ids", "rejected_ids",
                                        "system_prompt", "instruction_prompt", "chosen_response", "rejected_response",
                                        "instruction_prompt_ids", "chosen_response_ids", "rejected_response_ids", NULL};

static int stray_image_key(Loader *L, const cJSON *j, const char *const *image_keys, const char *reads) {
    const char *k = json_stray_image_key(j, text_keys, image_keys);
    if (!k) return 0;
    snprintf(L->err, sizeof(L->err), "\"%s\" looks like an image but %s reads the image from %s: rename it, or remove it "
             "for a text-only record", k, L->d->recipe->name, reads);
    return -1;
}

void train_example_free(TrainExample *e) {
    for (int i = 0; i < e->n_rows; i++) { free(e->rows[i].ids); free(e->rows[i].labels); }
    e->n_rows = 0;
}

// The text fields of a record as its recipe reads them: a LLaVA conversation (*conv, f unset) or the texts of
// a pair or a single response (f, freed by the caller). Returns 0, or -1 with L->err.
static int record_texts(Loader *L, const cJSON *j, PairFields *f, const cJSON **conv) {
    const Recipe *rc = L->d->recipe;
    memset(f, 0, sizeof(*f));
    *conv = NULL;
    if (rc->records == RECORDS_MVC)
        return cJSON_GetObjectItemCaseSensitive(j, "chosen_images")
                   ? pair_fields(L, j, f, "instruction_prompt", "chosen_response", "rejected_response", "system_prompt")
                   : pair_fields(L, j, f, "prompt", "chosen", "rejected", NULL);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(j, "conversations");
    if (rc->records == RECORDS_SFT && cJSON_IsArray(c)) { *conv = c; return 0; }
    return rc->records == RECORDS_SFT ? pair_fields(L, j, f, "prompt", "response", NULL, NULL)
                                      : pair_fields(L, j, f, "prompt", "chosen", "rejected", NULL);
}

// The recipe's rows of a record whose image lists e->image, e->n_image already hold (record_index): row k scores
// response rows[k].response under every image of side rows[k].image, in order, or image-free when the side is -1
// or the record has no image there; a LLaVA conversation is the example's one row (side 0's images). Tokenizes. Returns 0, or -1 with L->err and no rows.
static int record_rows(Loader *L, const cJSON *j, TrainExample *e) {
    const Recipe *rc = L->d->recipe;
    PairFields f;
    const cJSON *conv;
    if (record_texts(L, j, &f, &conv)) return -1;
    int failed = 0;
    if (conv) failed = conversation_row(L, &e->rows[e->n_rows++], conv, e->n_image[0]);
    for (int k = 0; k < rc->n_rows && !failed && !conv; k++) {
        const RowSpec *s = &rc->rows[k];
        const int n_images = s->image >= 0 ? e->n_image[s->image] : 0;
        failed = make_row(L, &e->rows[e->n_rows++], &f, s->response, n_images, n_images ? s->image : -1);
    }
    pair_fields_free(&f);
    if (failed) { train_example_free(e); return -1; }
    return 0;
}

// The load's look at a record: its keys, each side's images (named in the table: e->image, e->n_image), and that
// the fields its recipe reads are there, without tokenizing anything. mDPO's crop is named here too. Returns 0, or
// -1 with L->err (the caller reports or skips it).
static int record_index(Loader *L, const cJSON *j, TrainExample *e) {
    const int line = e->line;
    e->n_image[0] = e->n_image[1] = 0;
    const Recipe *rc = L->d->recipe;
    if (rc->records == RECORDS_MVC) {
        int mvc = cJSON_GetObjectItemCaseSensitive(j, "chosen_images") != NULL;
        static const char *const mvc_keys[] = {"chosen_images", "rejected_images", NULL}, *const wl_keys[] = {"image_w", "image_l", NULL};
        if (stray_image_key(L, j, mvc ? mvc_keys : wl_keys, mvc ? "\"chosen_images\" and \"rejected_images\"" : "\"image_w\" and \"image_l\""))
            return -1;
        e->n_image[0] = image_list(L, j, mvc ? "chosen_images" : "image_w", line, e->image[0]);
        if (e->n_image[0] < 0) return -1;
        e->n_image[1] = image_list(L, j, mvc ? "rejected_images" : "image_l", line, e->image[1]);
        if (e->n_image[1] < 0) return -1;
        if (!e->n_image[0] || !e->n_image[1]) {
            snprintf(L->err, sizeof(L->err), "an S-VCO pair needs two images (%s)", mvc ? "chosen_images, rejected_images" : "image_w, image_l");
            return -1;
        }
    } else {
        CHECK_OR_DIE(rc->records == RECORDS_SFT || rc->records == RECORDS_PAIR, "recipe %s: records the LLaVA data builder does not read", rc->name);
        static const char *const image_keys[] = {"image", "images", NULL};
        if (stray_image_key(L, j, image_keys, "\"image\" (a path or a list) or \"images\" (TRL's list of paths)")) return -1;
        if (cJSON_GetObjectItemCaseSensitive(j, "image") && cJSON_GetObjectItemCaseSensitive(j, "images")) {
            snprintf(L->err, sizeof(L->err), "both \"image\" and \"images\": give one");
            return -1;
        }
        // TRL's "images": [] is a text-only record
        const int has_images = cJSON_GetObjectItemCaseSensitive(j, "images") != NULL;
        e->n_image[0] = image_list(L, j, has_images ? "images" : "image", line, e->image[0]);
        if (e->n_image[0] < 0) return -1;
        if (rc->second_image == IMAGE2_CROP && e->n_image[0] < 1) {
            snprintf(L->err, sizeof(L->err), "%s needs an image (its corrupted images are crops of the record's), the record has none",
                     rc->name);
            return -1;
        }
    }
    PairFields f;
    const cJSON *conv;
    if (record_texts(L, j, &f, &conv)) return -1;
    pair_fields_free(&f);
    if (conv) {
        ChatTurn *turns;
        if (conversation_turns(L, conv, &turns) < 0) return -1;
        free(turns);
        return 0;
    }
    // mDPO's corrupted images: every image of the record cropped, each with its own draw (mDPO's crop_images crops
    // each image of its list with its own RandomResizedCrop; bunny/modeling_bunny_phi.py), so the corrupted row
    // keeps the record's placeholders. With fresh crops the slot-0 images, cropped per pass; with --crop fixed
    // crops drawn from (seed, example, image)
    for (int k = 0; k < rc->n_rows; k++)
        if (rc->rows[k].image == 1 && !e->n_image[1] && rc->second_image == IMAGE2_CROP) {
            for (int q = 0; q < e->n_image[0]; q++)
                e->image[1][q] = L->d->fresh_crops ? e->image[0][q] : corrupt_image(L, e->image[0][q], L->out->n, q);
            e->n_image[1] = e->n_image[0];
        }
    return 0;
}

// A record's "image" from its n shard images: the name of one, a list of several (in order), none without.
static void add_shard_images(cJSON *o, const uint32_t *imgs, uint32_t n) {
    char name[32];
    if (n == 1) {
        snprintf(name, sizeof(name), "shard:%u", imgs[0]);
        cJSON_AddStringToObject(o, "image", name);
        return;
    }
    cJSON *list = n ? cJSON_AddArrayToObject(o, "image") : NULL;
    for (uint32_t i = 0; i < n; i++) {
        snprintf(name, sizeof(name), "shard:%u", imgs[i]);
        cJSON_AddItemToArray(list, cJSON_CreateString(name));
    }
}

// The records of a shard as the JSON objects the text formats above would give, with images named
// "shard:<index>" (image_index resolves those from the shard).
static cJSON *shard_records_json(const Shard *sh, const char *path) {
    cJSON *arr = cJSON_CreateArray();
    if (!(sh->h->flags & SHARD_HAS_TEXT)) fatal("%s: the shard has no text fields to train on", path);
    for (uint64_t r = 0; r < sh->h->n_records; r++) {
        const ShardRecord *rec = &sh->records[r];
        const uint32_t *imgs = shard_record_images(sh, r);
        cJSON *o = cJSON_CreateObject();
        char name[32];
#define FIELD(k) (shard_record_field(sh, r, (k)) ? shard_record_field(sh, r, (k)) : "")
        if (rec->kind == DATA_PREF) {
            add_shard_images(o, imgs, rec->n_images);
            cJSON_AddStringToObject(o, "prompt", FIELD(0));
            cJSON_AddStringToObject(o, "chosen", FIELD(1));
            cJSON_AddStringToObject(o, "rejected", FIELD(2));
        } else if (rec->kind == DATA_MVC) {
            cJSON *cw = cJSON_AddArrayToObject(o, "chosen_images"), *cl = cJSON_AddArrayToObject(o, "rejected_images");
            for (uint32_t i = 0; i < rec->n_images; i++) {
                snprintf(name, sizeof(name), "shard:%u", imgs[i]);
                cJSON_AddItemToArray(i < rec->n_chosen_images ? cw : cl, cJSON_CreateString(name));
            }
            cJSON_AddStringToObject(o, "system_prompt", FIELD(0));
            cJSON_AddStringToObject(o, "instruction_prompt", FIELD(1));
            cJSON_AddStringToObject(o, "chosen_response", FIELD(2));
            cJSON_AddStringToObject(o, "rejected_response", FIELD(3));
        } else if (rec->kind == DATA_LLAVA) {
            add_shard_images(o, imgs, rec->n_images);
            cJSON *conv = cJSON_AddArrayToObject(o, "conversations");
            for (uint32_t k = 0; k < rec->n_fields; k++) {
                cJSON *t = cJSON_CreateObject();
                cJSON_AddStringToObject(t, "from", k % 2 ? "gpt" : "human");
                cJSON_AddStringToObject(t, "value", FIELD(k));
                cJSON_AddItemToArray(conv, t);
            }
        } else fatal("%s: record %llu is a %s record, which is not training data", path, (unsigned long long)r, data_kind_name(rec->kind));
#undef FIELD
        if (rec->kind == DATA_MVC && cJSON_GetObjectItemCaseSensitive(o, "system_prompt")->valuestring[0] == 0)
            cJSON_DeleteItemFromObject(o, "system_prompt");  // empty: the template's own system line
        cJSON_AddItemToArray(arr, o);
    }
    return arr;
}

// The bytes of a file, hashed (the data hash: what a lazily loaded data set's rows are made from).
static unsigned long long file_hash(unsigned long long h, const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) fatal("%s: cannot open: %s", path, strerror(errno));
    char *buf = xmalloc(1 << 20);
    size_t n;
    while ((n = fread(buf, 1, 1 << 20, f)) > 0) h = fnv(h, buf, n);
    free(buf);
    fclose(f);
    return h;
}

void train_data_load(TrainData *d, const Recipe *recipe, const char *path, const LlavaConfig *cfg,
                     const PreprocessConfig *pcfg, const TrainDataOptions *opt) {
    memset(d, 0, sizeof(*d));
    CHECK_OR_DIE(recipe->model == MODEL_LLAVA, "train_data_load: recipe %s does not train a LLaVA", recipe->name);
    d->recipe = recipe;
    d->image_size = cfg->vision.image_size;
    d->fresh_crops = opt->fresh_crops && recipe->second_image == IMAGE2_CROP;
    d->crop_lo = opt->crop_lo;
    d->crop_hi = opt->crop_hi;
    d->crop_seed = opt->seed;
    d->path = xstrdup(path);
    d->pcfg = *pcfg;
    d->fd = -1;
    d->cfg = *cfg;
    d->opt = *opt;  // what the loader's threads make rows with: the strings the run's options point at are copied
    d->opt.tokenizer = d->opt.images_dir = NULL;
    d->opt.template_name = opt->template_name ? xstrdup(opt->template_name) : NULL;
    d->opt.system = opt->system ? xstrdup(opt->system) : NULL;
    if (opt->template_name && chat_template_from_name(opt->template_name) < 0)  // never a format no other command renders
        fatal("%s: template '%s': expected " CHAT_TEMPLATE_NAMES, path, opt->template_name);
    if (!strcmp(path, "-")) fatal("vlm train: training data is read again batch by batch: give a file, not standard input");
    Loader L = {.d = d, .out = d, .path = path, .dir = path_dirname(path), .cfg = cfg, .pcfg = pcfg, .opt = opt};
    strmap_init(&L.image_of);
    if (opt->tokenizer) d->tok = L.tok = tokenizer_load(opt->tokenizer);
    // A packed shard (vlm data pack), a JSON array (S-VCO's mvc.json, LLaVA's conversations) or JSON Lines
    char magic[8] = {0};
    FILE *mf = fopen(path, "rb");
    if (mf) { if (fread(magic, 1, 8, mf) != 8) magic[0] = 0; fclose(mf); }
    cJSON *from_shard = NULL;
    if (!memcmp(magic, SHARD_MAGIC, 8)) {  // kept mapped: batches normalize its images as they need them
        d->shard = xmalloc(sizeof(Shard));
        shard_open_or_die(d->shard, path);
        L.shard_map = xmalloc(sizeof(int) * (d->shard->h->n_images + 1));
        for (uint64_t i = 0; i < d->shard->h->n_images; i++) L.shard_map[i] = -1;
        from_shard = shard_records_json(d->shard, path);
        L.image_hash = fnv(L.image_hash, &d->shard->h->payload_crc, sizeof(d->shard->h->payload_crc));
    }
    JsonlReader jr;
    if (from_shard) jsonl_open_array(&jr, from_shard, path);
    else jsonl_open(&jr, path);
    // JSON Lines and JSON arrays are read again by offset when a batch needs a record; a shard's records stay parsed
    if (!jr.array && (d->fd = open(path, O_RDONLY)) < 0) fatal("%s: cannot open: %s", path, strerror(errno));
    int cap_rec = 0, cap_items = 0, cap_rec_images = 0;
    d->max_example_images = 2;
    cJSON *j;
    while ((j = jsonl_next(&jr, opt->skip_bad, &d->n_bad))) {
        TrainExample e;
        memset(&e, 0, sizeof(e));
        e.line = jr.line;
        int bad = record_index(&L, j, &e);
        if (!bad && opt->skip_bad) {  // the careful load: every record's rows made (and dropped) now, to skip the bad
            bad = record_rows(&L, j, &e);
            train_example_free(&e);
        }
        if (bad) {
            if (!opt->skip_bad) fatal("%s:%d: %s", path, jr.line, L.err);
            fprintf(stderr, "vlm: warning: %s:%d: %s, skipped\n", path, jr.line, L.err);
            d->n_bad++;
            cJSON_Delete(j);
            continue;
        }
        if (d->n == cap_rec) d->rec = xrealloc(d->rec, sizeof(TrainRecord) * (cap_rec = cap_rec ? 2 * cap_rec : 256));
        if (!jr.array && jr.len > INT_MAX) fatal("%s:%d: a record of %zu bytes is too long", path, jr.line, jr.len);
        TrainRecord *r = &d->rec[d->n++];
        *r = (TrainRecord){jr.array ? d->n_items : jr.offset, (int)jr.len, jr.line, d->n_record_images, {e.n_image[0], e.n_image[1]}};
        const int n_ex_images = e.n_image[0] + e.n_image[1];
        if (d->n_record_images + n_ex_images > cap_rec_images)
            d->record_images = xrealloc(d->record_images, sizeof(int) * (cap_rec_images = 2 * cap_rec_images + n_ex_images + 256));
        for (int k = 0; k < 2; k++)  // side 0's images, then side 1's
            for (int q = 0; q < e.n_image[k]; q++) d->record_images[d->n_record_images++] = e.image[k][q];
        if (n_ex_images > d->max_example_images) d->max_example_images = n_ex_images;
        if (!jr.array) { cJSON_Delete(j); continue; }
        if (d->n_items == cap_items) d->items = xrealloc(d->items, sizeof(cJSON *) * (cap_items = cap_items ? 2 * cap_items : 256));
        d->items[d->n_items++] = j;
    }
    jsonl_close(&jr);
    if (d->n == 0) fatal("%s: no usable %s examples%s", path, recipe->name, d->n_bad ? " (all were skipped)" : "");
    if (d->n_bad) fprintf(stderr, "vlm: %s: %d records skipped\n", path, d->n_bad);
    // the hash keys the reference cache and --resume: what the rows are made from (the file's bytes, the tokenizer's,
    // the options that shape rows, which records were kept, the images each side of each sees in order) and the
    // images' sources (never their pixels: those are made when batches need them)
    unsigned long long h = 1469598103934665603ULL;
    h = fnv(h, &recipe->id, sizeof(recipe->id));
    if (d->fresh_crops) h = fnv(h, "fresh crops", 11);
    if (!d->shard) h = file_hash(h, path);  // a shard's payload checksum is in the image hash
    if (opt->tokenizer) h = file_hash(h, opt->tokenizer);
    const char *texts[2] = {d->opt.template_name ? d->opt.template_name : "", d->opt.system ? d->opt.system : ""};
    for (int k = 0; k < 2; k++) h = fnv(h, texts[k], strlen(texts[k]) + 1);
    const int shape[5] = {opt->max_len, opt->max_text_len, cfg->image_tokens, cfg->image_token_id, cfg->text.vocab};
    h = fnv(h, shape, sizeof(shape));
    for (int i = 0; i < d->n; i++) {
        h = fnv(h, &d->rec[i].line, sizeof(int));
        for (int k = 0; k < 2; k++) {  // which images each side sees, in order: a row's log-prob depends on all of them
            int n_side;
            const int *side = train_data_example_images(d, i, k, &n_side);
            h = fnv(h, &n_side, sizeof(int));
            h = fnv(h, side, sizeof(int) * n_side);
        }
    }
    h = fnv(h, &L.image_hash, sizeof(L.image_hash));
    for (int i = 0; i < d->n_images; i++) {  // which images are shard images and crops, of what, from which seed
        const TrainImage *im = &d->images[i];
        h = fnv(h, &im->kind, sizeof(im->kind));
        h = fnv(h, &im->index, sizeof(im->index));
        h = fnv(h, &im->example, sizeof(im->example));
        if (im->kind == TRAIN_IMAGE_CROP) {
            if (im->part) h = fnv(h, &im->part, sizeof(im->part));  // a later image of a list: its own draw
            h = fnv(h, &d->crop_seed, sizeof(d->crop_seed));
            h = fnv(h, &d->crop_lo, sizeof(d->crop_lo));
            h = fnv(h, &d->crop_hi, sizeof(d->crop_hi));
        }
    }
    d->hash = h;
    free(L.shard_map);
    strmap_free(&L.image_of);
    free(L.dir);
}

const TrainExample *train_data_example(const TrainData *d, int i, TrainExample *scratch) {
    if (d->ex) return &d->ex[i];
    const TrainRecord *r = &d->rec[i];
    cJSON *j;
    if (d->items) j = d->items[r->at];
    else {  // the record's text, read again from where the load found it
        char *buf = xmalloc((size_t)r->len + 1);
        size_t got = 0;
        while (got < (size_t)r->len) {
            ssize_t k = pread(d->fd, buf + got, (size_t)r->len - got, (off_t)(r->at + (long long)got));
            if (k <= 0) fatal("%s:%d: cannot read the record again: %s", d->path, r->line, k < 0 ? strerror(errno) : "the file is shorter than at load");
            got += (size_t)k;
        }
        buf[got] = 0;
        j = cJSON_ParseWithLength(buf, got);
        free(buf);
        if (!cJSON_IsObject(j)) fatal("%s:%d: the record no longer parses: the file changed since the load", d->path, r->line);
    }
    Loader L = {.d = d, .path = d->path, .cfg = &d->cfg, .pcfg = &d->pcfg, .opt = &d->opt, .tok = d->tok};
    memset(scratch, 0, sizeof(*scratch));
    scratch->line = r->line;
    for (int k = 0; k < 2; k++) {
        const int *side = train_data_example_images(d, i, k, &scratch->n_image[k]);
        memcpy(scratch->image[k], side, sizeof(int) * scratch->n_image[k]);
    }
    if (record_rows(&L, j, scratch)) fatal("%s:%d: %s", d->path, r->line, L.err);
    if (!d->items) cJSON_Delete(j);
    return scratch;
}

const int *train_data_example_images(const TrainData *d, int i, int side, int *n) {
    if (d->ex) {
        *n = d->ex[i].n_image[side];
        return d->ex[i].image[side];
    }
    const TrainRecord *r = &d->rec[i];
    *n = r->n_image[side];
    return d->record_images + r->image_at + (side ? r->n_image[0] : 0);
}

void train_data_synthetic(TrainData *d, const Recipe *recipe, int n_examples, const LlavaConfig *cfg, int prompt_len,
                          int resp_len, int long_resp_len, unsigned long long seed) {
    memset(d, 0, sizeof(*d));
    d->fd = -1;
    d->cfg = *cfg;
    d->recipe = recipe;
    d->image_size = cfg->vision.image_size;
    const int S = d->image_size, P = cfg->image_tokens, per = recipe->second_image != IMAGE2_NONE ? 2 : 1;
    AugRng rng;
    augrng_seed(&rng, seed);
    d->n_images = n_examples * per;
    d->max_example_images = 2;
    d->pixels = xmalloc(sizeof(float) * (size_t)d->n_images * 3 * S * S);
    d->images = xmalloc(sizeof(TrainImage) * d->n_images);
    for (size_t i = 0; i < (size_t)d->n_images * 3 * S * S; i++) d->pixels[i] = (float)augrng_normal(&rng);
    for (int i = 0; i < d->n_images; i++) d->images[i] = (TrainImage){TRAIN_IMAGE_MEMORY, xstrdup("(synthetic)"), i, -1, 0, i / per + 1};
    d->ex = xcalloc(n_examples, sizeof(TrainExample));
    d->n = n_examples;
    // text ids in [3, 3 + hi]: below the image token for a small vocabulary (the draws are unchanged at 32k)
    const int hi = cfg->text.vocab - 5 < 31000 ? cfg->text.vocab - 5 : 31000;
    const int rcap = long_resp_len > resp_len ? long_resp_len : resp_len;
    int *prompt = xmalloc(sizeof(int) * prompt_len), *resp[2] = {xmalloc(sizeof(int) * rcap), xmalloc(sizeof(int) * rcap)};
    for (int e = 0; e < n_examples; e++) {
        TrainExample *ex = &d->ex[e];
        const int rlen = long_resp_len > 0 && e % 7 == 6 ? long_resp_len : resp_len;
        ex->line = e + 1;
        ex->image[0][0] = e * per;
        ex->image[1][0] = e * per + 1;
        ex->n_image[0] = 1;
        ex->n_image[1] = per == 2;
        prompt[0] = 1;
        for (int t = 1; t < prompt_len; t++) prompt[t] = 3 + augrng_int(&rng, 0, hi);
        for (int k = 0; k < 2; k++) for (int t = 0; t < rlen; t++) resp[k][t] = 3 + augrng_int(&rng, 0, hi);
        const int nr = recipe->n_rows;  // the recipe's rows (train/recipes.h), every image slot filled
        for (int k = 0; k < nr; k++) {
            TrainRow *row = &ex->rows[k];
            int img = recipe->rows[k].image, np = img >= 0 ? prompt_len + P : prompt_len;
            row->n = np + rlen;
            row->ids = xmalloc(sizeof(int) * row->n);
            row->labels = xmalloc(sizeof(int) * row->n);
            int t = 0;
            row->ids[t++] = 1;
            if (img >= 0) for (int p = 0; p < P; p++) row->ids[t++] = cfg->image_token_id;
            for (int q = 1; q < prompt_len; q++) row->ids[t++] = prompt[q];
            for (int q = 0; q < np; q++) row->labels[q] = -100;
            for (int q = 0; q < rlen; q++) { row->ids[np + q] = row->labels[np + q] = resp[recipe->rows[k].response][q]; }
            row->image = img;
        }
        ex->n_rows = nr;
    }
    free(prompt); free(resp[0]); free(resp[1]);
}

void train_data_free(TrainData *d) {
    for (int i = 0; d->ex && i < d->n; i++) train_example_free(&d->ex[i]);
    for (int i = 0; i < d->n_items; i++) cJSON_Delete(d->items[i]);
    free(d->items);
    free(d->record_images);
    free(d->rec);
    if (d->rec && !d->items && d->fd >= 0) close(d->fd);
    tokenizer_free(d->tok);
    free((char *)d->opt.template_name);
    free((char *)d->opt.system);
    for (int i = 0; i < d->n_images; i++) free(d->images[i].name);
    free(d->ex);
    free(d->images);
    free(d->pixels);
    if (d->shard) { shard_close(d->shard); free(d->shard); }
    free(d->path);
    free(d->feats);
    memset(d, 0, sizeof(*d));
}

// ---------------------------------------------------------------------------------------------------
// batches

// Tokens before the first label: the prompt (with the image) that a row's response follows.
static int row_prefix(const TrainRow *r) {
    for (int t = 0; t < r->n; t++) if (r->labels[t] != -100) return t;
    return r->n;
}

static int rows_share_prefix(const TrainRow *a, const TrainRow *b) {
    int p = row_prefix(a);
    return p >= 1 && p < a->n && p == row_prefix(b) && p < b->n && a->image == b->image && !memcmp(a->ids, b->ids, sizeof(int) * p);
}

// How an example's rows become physical rows: pairs (first, second) or singles (second = -1).
static int example_plan(const TrainExample *ex, int pack, int plan[][2]) {
    int used[RECIPE_MAX_ROWS] = {0}, n = 0;
    for (int i = 0; i < ex->n_rows; i++) {
        if (used[i]) continue;
        used[i] = 1;
        plan[n][0] = i;
        plan[n][1] = -1;
        for (int j = i + 1; pack && j < ex->n_rows; j++)
            if (!used[j] && rows_share_prefix(&ex->rows[i], &ex->rows[j])) { used[j] = 1; plan[n][1] = j; break; }
        n++;
    }
    return n;
}

static int planned_length(const TrainExample *ex, const int pr[2]) {
    const TrainRow *a = &ex->rows[pr[0]];
    if (pr[1] < 0) return a->n;
    return a->n + ex->rows[pr[1]].n - row_prefix(a);
}

// The buffers of group g for max_examples examples of b->ex_rows[g] physical rows and b->ex_outs[g] outputs each,
// rows of up to len tokens (freed first: they hold nothing between batches).
static void group_alloc(TrainBatch *b, int g, int len) {
    BatchGroup *G = &b->g[g];
    free(G->ids); free(G->pos); free(G->segment); free(G->lengths); free(G->image_of_row); free(G->images_of_row);
    free(G->out_index); free(G->out_target); free(G->out_row); free(G->members);
    G->cap_rows = b->max_examples * b->ex_rows[g];
    G->cap_len = len;
    G->cap_out = b->max_examples * b->ex_outs[g];
    size_t cells = (size_t)(G->cap_rows ? G->cap_rows : 1) * G->cap_len;
    G->ids = xmalloc(sizeof(int) * cells);
    G->pos = xmalloc(sizeof(int) * cells);
    G->segment = xmalloc(sizeof(int) * cells);
    G->lengths = xmalloc(sizeof(int) * (G->cap_rows + 1));
    G->image_of_row = xmalloc(sizeof(int) * (G->cap_rows + 1));
    G->images_of_row = xmalloc(sizeof(int) * (G->cap_rows + 1));
    G->out_index = xmalloc(sizeof(int) * G->cap_out);
    G->out_target = xmalloc(sizeof(int) * G->cap_out);
    G->out_row = xmalloc(sizeof(int) * G->cap_out);
    G->members = xmalloc(sizeof(int) * (b->cap_rows + 1));
}

// What example ex puts in each group: physical rows, the longest of them, outputs (labelled tokens).
static void example_needs(const TrainExample *ex, int pack, int rows[2], int len[2], int outs[2]) {
    int plan[RECIPE_MAX_ROWS][2], np = example_plan(ex, pack, plan);
    for (int g = 0; g < 2; g++) rows[g] = len[g] = outs[g] = 0;
    for (int k = 0; k < np; k++) {
        int g = ex->rows[plan[k][0]].image < 0, n = planned_length(ex, plan[k]);
        rows[g]++;
        if (n > len[g]) len[g] = n;
    }
    for (int k = 0; k < ex->n_rows; k++) {
        const TrainRow *row = &ex->rows[k];
        for (int t = 0; t < row->n; t++) outs[row->image < 0] += row->labels[t] != -100;
    }
}

// Grows b's groups to hold examples that need rows, len and outs (example_needs) per example.
static void batch_fit(TrainBatch *b, const int rows[2], const int len[2], const int outs[2]) {
    for (int g = 0; g < 2; g++) {
        if (rows[g] <= b->ex_rows[g] && len[g] <= b->g[g].cap_len && outs[g] <= b->ex_outs[g]) continue;
        if (rows[g] > b->ex_rows[g]) b->ex_rows[g] = rows[g];
        if (outs[g] > b->ex_outs[g]) b->ex_outs[g] = outs[g];
        group_alloc(b, g, len[g] > b->g[g].cap_len ? len[g] : b->g[g].cap_len);
    }
}

void train_batch_init(TrainBatch *b, const TrainData *d, int max_examples, int pack) {
    memset(b, 0, sizeof(*b));
    const int S = d->image_size;
    b->pack = pack;
    b->max_examples = max_examples;
    b->cap_rows = max_examples * d->recipe->n_rows;
    b->cap_images = max_examples * d->max_example_images;
    b->crop_source = xmalloc(sizeof(int) * (b->cap_images + 1));
    b->crop_example = xmalloc(sizeof(int) * (b->cap_images + 1));
    b->crop_part = xmalloc(sizeof(int) * (b->cap_images + 1));
    b->example_of_row = xmalloc(sizeof(int) * b->cap_rows);
    b->kind_of_row = xmalloc(sizeof(int) * b->cap_rows);
    b->length_of_row = xmalloc(sizeof(int) * b->cap_rows);
    if (d->feats) b->feats = xmalloc(sizeof(float) * (size_t)b->cap_images * d->feat_size);
    else b->pixels = xmalloc(sizeof(float) * (size_t)b->cap_images * 3 * S * S);
    // per group: the most physical rows one example puts there, the longest such row, and the most labelled tokens
    // one example has there (each is at most one output, a logits row): over d's examples when it has them whole,
    // else grown by the batches (train_batch_build)
    int rows[2] = {0, 0}, len[2] = {1, 1}, outs[2] = {1, 1};
    for (int i = 0; d->ex && i < d->n; i++) {
        int r[2], l[2], o[2];
        example_needs(&d->ex[i], pack, r, l, o);
        for (int g = 0; g < 2; g++) {
            if (r[g] > rows[g]) rows[g] = r[g];
            if (l[g] > len[g]) len[g] = l[g];
            if (o[g] > outs[g]) outs[g] = o[g];
        }
    }
    for (int g = 0; g < 2; g++) {
        b->ex_rows[g] = rows[g];
        b->ex_outs[g] = outs[g];
        group_alloc(b, g, len[g]);
    }
}

void train_batch_free(TrainBatch *b) {
    for (int g = 0; g < 2; g++) {
        BatchGroup *G = &b->g[g];
        free(G->ids); free(G->pos); free(G->segment); free(G->lengths); free(G->image_of_row); free(G->images_of_row);
        free(G->out_index); free(G->out_target); free(G->out_row); free(G->members);
    }
    free(b->example_of_row); free(b->kind_of_row); free(b->length_of_row); free(b->pixels); free(b->feats);
    free(b->crop_source); free(b->crop_example); free(b->crop_part);
    memset(b, 0, sizeof(*b));
}

typedef struct { const TrainRow *a, *b; int ra, rb, image, n_images; } Physical;  // one physical row of a group

// The pixels of data image g into dst: from the prefetched batch when it has them, else made here.
static void batch_image_pixels(const TrainData *d, const TrainPrefetched *pre, int g, float *dst) {
    const size_t img = (size_t)3 * d->image_size * d->image_size;
    for (int i = 0; pre && i < pre->n_images; i++)
        if (pre->images[i] == g) { memcpy(dst, pre->pixels + i * img, sizeof(float) * img); return; }
    train_data_image(d, g, dst);
}

void train_batch_build(TrainBatch *b, const TrainData *d, const int *idx, int n, const TrainPrefetched *pre) {
    // the examples with their rows: prefetched (tokenized on the loader's threads), d's own, or made here
    const TrainExample **exs = xmalloc(sizeof(TrainExample *) * (n ? n : 1));
    TrainExample *made = NULL;
    if (pre && (pre->n != n || memcmp(pre->idx, idx, sizeof(int) * n))) fatal("internal: the prefetched batch is another one");
    for (int e = 0; e < n; e++) {
        if (pre && pre->ex) { exs[e] = &pre->ex[e]; continue; }
        if (!d->ex && !made) made = xcalloc((size_t)n, sizeof(TrainExample));
        exs[e] = train_data_example(d, idx[e], made ? &made[e] : NULL);
    }
    for (int e = 0; e < n; e++) {  // grow the groups for longer rows than they have held
        int rows[2], len[2], outs[2];
        example_needs(exs[e], b->pack, rows, len, outs);
        batch_fit(b, rows, len, outs);
    }
    // each image's pixels, or its features when the data has them (train_data_encode_images)
    const size_t img_floats = d->feats ? (size_t)d->feat_size : (size_t)3 * d->image_size * d->image_size;
    float *dst = d->feats ? b->feats : b->pixels;
    int *gl = xmalloc(sizeof(int) * (b->cap_images + 1));  // dataset image index of each batch image
    Physical *phys[2];
    for (int g = 0; g < 2; g++) {
        phys[g] = xmalloc(sizeof(Physical) * (b->g[g].cap_rows + 1));
        b->g[g].B = b->g[g].T = b->g[g].n_out = b->g[g].n_members = b->g[g].packed = 0;
    }
    b->B = 0;
    b->n_images = 0;
    for (int e = 0; e < n; e++) {
        const TrainExample *ex = exs[e];
        int local[2] = {-1, -1};  // each side's first batch image; its images are consecutive from there
        for (int k = 0; k < 2; k++) {
            const int n_side = ex->n_image[k];
            if (!n_side) continue;
            const int crop = k == 1 && d->fresh_crops;  // a crop is the example's own, never shared
            // an earlier run of the same images in the same order (one image: any earlier copy of it) is shared
            for (int i = 0; i + n_side <= b->n_images && !crop && local[k] < 0; i++) {
                int same = 1;
                for (int q = 0; q < n_side && same; q++) same = gl[i + q] == ex->image[k][q] && b->crop_source[i + q] < 0;
                if (same) local[k] = i;
            }
            if (local[k] >= 0) continue;
            local[k] = b->n_images;
            for (int q = 0; q < n_side; q++, b->n_images++) {
                const int g = ex->image[k][q];
                gl[b->n_images] = g;
                b->crop_source[b->n_images] = crop ? local[0] + q : -1;  // crop q's source: the example's image q
                b->crop_example[b->n_images] = crop ? idx[e] : -1;
                b->crop_part[b->n_images] = crop ? q : -1;
                float *to = dst + b->n_images * img_floats;
                if (d->feats) memcpy(to, d->feats + (size_t)g * img_floats, sizeof(float) * img_floats);
                else if (crop) memcpy(to, dst + (local[0] + q) * img_floats, sizeof(float) * img_floats);
                else batch_image_pixels(d, pre, g, to);
            }
        }
        const int first = b->B;  // logical rows of this example, in its row order
        for (int r = 0; r < ex->n_rows; r++) {
            b->example_of_row[b->B] = e;
            b->kind_of_row[b->B] = r;
            b->length_of_row[b->B] = ex->rows[r].n;
            b->B++;
        }
        int plan[RECIPE_MAX_ROWS][2], np = example_plan(ex, b->pack, plan);
        for (int k = 0; k < np; k++) {
            const TrainRow *ra = &ex->rows[plan[k][0]];
            int g = ra->image < 0;
            BatchGroup *G = &b->g[g];
            Physical *P = &phys[g][G->B++];
            *P = (Physical){ra, plan[k][1] >= 0 ? &ex->rows[plan[k][1]] : NULL, first + plan[k][0],
                            plan[k][1] >= 0 ? first + plan[k][1] : -1, ra->image >= 0 ? local[ra->image] : -1,
                            ra->image >= 0 ? ex->n_image[ra->image] : 0};
            int len = planned_length(ex, plan[k]);
            if (len > G->T) G->T = len;
            G->members[G->n_members++] = P->ra;
            if (P->b) { G->members[G->n_members++] = P->rb; G->packed = 1; }
        }
    }
    // lay out each group: tokens, positions, segments and the outputs of every logical row
    for (int g = 0; g < 2; g++) {
        BatchGroup *G = &b->g[g];
        for (int i = 0; i < G->B; i++) {
            const Physical *P = &phys[g][i];
            int *ids = G->ids + i * G->T, *pos = G->pos + i * G->T, *seg = G->segment + i * G->T;
            const int base = i * G->T, p = P->b ? row_prefix(P->a) : 0, na = P->a->n;
            for (int t = 0; t < na; t++) { ids[t] = P->a->ids[t]; pos[t] = t; seg[t] = P->b && t >= p ? 1 : 0; }
            int len = na;
            for (int t = 1; t < na; t++)  // row a: the token at t-1 predicts token t
                if (P->a->labels[t] != -100) {
                    G->out_index[G->n_out] = base + t - 1;
                    G->out_target[G->n_out] = P->a->labels[t];
                    G->out_row[G->n_out++] = P->ra;
                }
            if (P->b) {  // row b after row a's response: token t of b sits at na + t - p, position t
                for (int t = p; t < P->b->n; t++) { ids[na + t - p] = P->b->ids[t]; pos[na + t - p] = t; seg[na + t - p] = 2; }
                len = na + P->b->n - p;
                for (int t = p; t < P->b->n; t++)
                    if (P->b->labels[t] != -100) {
                        G->out_index[G->n_out] = base + (t == p ? p - 1 : na + t - 1 - p);
                        G->out_target[G->n_out] = P->b->labels[t];
                        G->out_row[G->n_out++] = P->rb;
                    }
            }
            for (int t = len; t < G->T; t++) { ids[t] = 0; pos[t] = t; seg[t] = 0; }
            G->lengths[i] = len;
            G->image_of_row[i] = P->image;
            G->images_of_row[i] = P->n_images;
        }
        free(phys[g]);
    }
    free(gl);
    for (int e = 0; made && e < n; e++) train_example_free(&made[e]);
    free(made);
    free(exs);
}

unsigned long long train_crop_stream(unsigned long long seed, int step, int micro, int pass) {
    return (seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)step) * 0xBF58476D1CE4E5B9ULL + (unsigned long long)micro * 2 + pass;
}

void train_batch_draw_crops(TrainBatch *b, const TrainData *d, unsigned long long stream) {
    if (!d->fresh_crops) return;
    CHECK_OR_DIE(b->pixels, "fresh crops need the images' pixels (no feature cache)");
    const int S = d->image_size;
    const size_t img = (size_t)3 * S * S;
    for (int i = 0; i < b->n_images; i++) {
        if (b->crop_source[i] < 0) continue;
        float *px = b->pixels + i * img;
        memcpy(px, b->pixels + (size_t)b->crop_source[i] * img, sizeof(float) * img);  // the uncropped source image
        AugRng rng;
        augrng_seed(&rng, crop_rng_seed(stream, b->crop_example[i], b->crop_part[i]));
        augment_random_resized_crop(px, 3, S, S, d->crop_lo, d->crop_hi, &rng);
    }
}

void data_order_shuffle(DataOrder *o) {
    for (int i = 0; i < o->n; i++) o->perm[i] = i;
    AugRng rng;
    augrng_seed(&rng, o->seed * 0x9E3779B97F4A7C15ULL + (unsigned long long)o->epoch);
    for (int i = o->n - 1; i > 0; i--) {  // Fisher-Yates
        int j = augrng_int(&rng, 0, i + 1);
        int t = o->perm[i];
        o->perm[i] = o->perm[j];
        o->perm[j] = t;
    }
}

void data_order_next(DataOrder *o, int *idx, int k) {
    for (int i = 0; i < k; i++) {
        if (o->cursor == o->n) { o->epoch++; o->cursor = 0; data_order_shuffle(o); }
        if (idx) idx[i] = o->perm[o->cursor];
        o->cursor++;
    }
}

// ---------------------------------------------------------------------------------------------------
// the streaming loader

typedef struct {
    TrainPrefetched b;
    TrainExample *ex;   // (batch) the examples' rows (a file's data; NULL for synthetic data, which has them)
    int *idx, *images;  // (batch), (max_example_images * batch)
    float *pixels;      // (max_example_images * batch, 3, S, S); NULL when the data has features (nothing to decode)
} StreamSlot;

struct TrainStream {
    const TrainData *d;
    int batch;
    Prefetch *ring;
    StreamSlot *slots;  // (prefetch_depth(ring))
    // guarded by the ring's lock (touched in claim only):
    DataOrder order;    // the run's order from where the stream started (perm NULL: file order)
    int next_file;      // file order: the next example
    int part, parts;    // this stream makes micro-batches part, part + parts, ... of the sequence (a rank's share)
};

// Under the ring's lock, in batch order: the next micro-batch's examples.
static int stream_claim(void *ctx, int slot, uint64_t seq) {
    (void)seq;
    TrainStream *s = ctx;
    StreamSlot *sl = &s->slots[slot];
    if (s->order.perm) {
        data_order_next(&s->order, sl->idx, s->batch);
        sl->b.n = s->batch;
        data_order_next(&s->order, NULL, (s->parts - 1) * s->batch);  // the other parts' micro-batches
        return 1;
    }
    if (s->next_file >= s->d->n) return 0;
    sl->b.n = s->d->n - s->next_file < s->batch ? s->d->n - s->next_file : s->batch;
    for (int i = 0; i < sl->b.n; i++) sl->idx[i] = s->next_file++;
    s->next_file += (s->parts - 1) * s->batch;  // the other parts' batches
    return 1;
}

// On a worker: the batch's rows (its records tokenized) and the distinct images of all its rows, each made once.
static void stream_fill(void *ctx, int slot) {
    TrainStream *s = ctx;
    StreamSlot *sl = &s->slots[slot];
    const TrainData *d = s->d;
    const size_t img = (size_t)3 * d->image_size * d->image_size;
    sl->b.n_images = 0;
    for (int e = 0; sl->ex && e < sl->b.n; e++) {  // the batch's rows: its records tokenized
        train_example_free(&sl->ex[e]);
        train_data_example(d, sl->idx[e], &sl->ex[e]);
    }
    if (!sl->pixels) return;
    for (int e = 0; e < sl->b.n; e++)
        for (int k = 0; k < 2; k++) {
            int n_side;
            const int *side = train_data_example_images(d, sl->idx[e], k, &n_side);
            for (int q = 0; q < n_side; q++) {  // every image of each side
                const int g = side[q];
                int seen = 0;
                for (int i = 0; i < sl->b.n_images && !seen; i++) seen = sl->images[i] == g;
                if (seen) continue;
                train_data_image(d, g, sl->pixels + sl->b.n_images * img);
                sl->images[sl->b.n_images++] = g;
            }
        }
}

TrainStream *train_stream_open(const TrainData *d, const DataOrder *order, int batch, int workers, int depth) {
    return train_stream_open_part(d, order, batch, workers, depth, 0, 1);
}

TrainStream *train_stream_open_part(const TrainData *d, const DataOrder *order, int batch, int workers, int depth, int part,
                                    int parts) {
    CHECK_OR_DIE(parts >= 1 && part >= 0 && part < parts, "train_stream_open_part: part %d of %d", part, parts);
    TrainStream *s = xcalloc(1, sizeof(TrainStream));
    s->d = d;
    s->batch = batch;
    s->part = part;
    s->parts = parts;
    if (order) {
        s->order = *order;
        s->order.perm = xmalloc(sizeof(int) * (order->n ? order->n : 1));
        memcpy(s->order.perm, order->perm, sizeof(int) * order->n);
        data_order_next(&s->order, NULL, part * batch);  // the micro-batches of the parts before this one
    }
    s->next_file = part * batch;
    s->ring = prefetch_open(workers, depth, s, stream_claim, stream_fill, d->path ? d->path : "training data");
    const int n_slots = prefetch_depth(s->ring);
    s->slots = xcalloc((size_t)n_slots, sizeof(StreamSlot));
    const size_t img = (size_t)3 * d->image_size * d->image_size;
    for (int i = 0; i < n_slots; i++) {
        StreamSlot *sl = &s->slots[i];
        sl->idx = xmalloc(sizeof(int) * batch);
        sl->images = xmalloc(sizeof(int) * d->max_example_images * batch);
        if (!d->ex) sl->ex = xcalloc((size_t)batch, sizeof(TrainExample));
        sl->b.ex = sl->ex;
        if (!d->feats) sl->pixels = xmalloc(sizeof(float) * d->max_example_images * batch * img);
        sl->b.idx = sl->idx;
        sl->b.images = sl->images;
        sl->b.pixels = sl->pixels;
    }
    prefetch_start(s->ring);
    return s;
}

const TrainPrefetched *train_stream_next(TrainStream *s) {
    int slot = prefetch_next(s->ring);
    return slot < 0 ? NULL : &s->slots[slot].b;
}

void train_stream_close(TrainStream *s) {
    const int n_slots = prefetch_depth(s->ring);
    prefetch_close(s->ring);
    for (int i = 0; i < n_slots; i++) {
        StreamSlot *sl = &s->slots[i];
        for (int e = 0; sl->ex && e < s->batch; e++) train_example_free(&sl->ex[e]);
        free(sl->ex); free(sl->idx); free(sl->images); free(sl->pixels);
    }
    free(s->slots);
    free(s->order.perm);
    free(s);
}

static int env_int(const char *name, int fallback, int lo, int hi) {
    const char *e = getenv(name);
    if (!e || !*e) return fallback;
    char *end;
    long v = strtol(e, &end, 10);
    if (*end || v < lo || v > hi) fatal("%s=%s: expected a whole number in [%d, %d]", name, e, lo, hi);
    return (int)v;
}

int train_stream_workers(void) { return env_int("VLM_LOADER_WORKERS", 2, 0, 64); }
int train_stream_depth(void) { return env_int("VLM_LOADER_DEPTH", 0, 0, 1024); }
