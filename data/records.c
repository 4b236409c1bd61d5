#include "records.h"

#include <cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"
#include "../util/jsonl.h"
#include "tokenizer.h"

int records_count_image_tokens(const int *ids, int n, const LlavaConfig *cfg) {
    int count = 0;
    for (int i = 0; i < n; i++) count += ids[i] == cfg->image_token_id;
    return count;
}

int *records_expand_image_tokens(const int *ids, int n, int n_images, const LlavaConfig *cfg, int *n_out,
                                 char *err, size_t errlen) {
    const int P = cfg->image_tokens, img = cfg->image_token_id;
    int count = 0;
    for (int i = 0; i < n; i++) count += ids[i] == img;
    if (!n_images && count > 0) {
        snprintf(err, errlen, "%d image tokens (id %d) but no \"image\"", count, img);
        return NULL;
    }
    if (n_images && count != n_images && count != n_images * P) {
        if (n_images == 1) snprintf(err, errlen, "%d image tokens (id %d): expected one (expanded here) or exactly %d", count, img, P);
        else snprintf(err, errlen, "%d image tokens (id %d) for %d images: expected %d (one per image, expanded here) or "
                      "exactly %d", count, img, n_images, n_images, n_images * P);
        return NULL;
    }
    const int expand = n_images && count == n_images && P != 1;  // each image token given once
    const int total = expand ? n + count * (P - 1) : n;
    int *out = xmalloc(sizeof(int) * (total ? total : 1)), k = 0;
    for (int i = 0; i < n; i++) {
        if (expand && ids[i] == img) for (int p = 0; p < P; p++) out[k++] = img;
        else out[k++] = ids[i];
    }
    *n_out = total;
    return out;
}

// A record's images ("image", a path or a list, or TRL's "images": [paths]; at most max): the paths resolved against
// dir into out, their count returned. Dies naming the file and line on a malformed one, or on another key that
// looks like an image (it would be silently dropped); used lists the record's other keys.
static int record_images(const cJSON *j, const char *dir, const char *path, int line, const char *const *used, int max,
                         char **out) {
    static const char *const image_keys[] = {"image", "images", NULL};
    const char *rel[RECORDS_MAX_IMAGES], *key;
    char err[256];
    int n;
    if (json_record_images(j, rel, max, &n, &key, err, sizeof(err))) fatal("%s:%d: %s", path, line, err);
    const char *stray = json_stray_image_key(j, image_keys, used);
    if (stray)
        fatal("%s:%d: \"%s\" looks like an image but is not read: the image goes in \"image\" (a path) or \"images\" "
              "(a list of paths)", path, line, stray);
    for (int i = 0; i < n; i++) out[i] = path_join(dir, rel[i]);
    return n;
}

// A record's one image (`vlm sample`: a prompt to continue has one at most), or NULL when it has none.
static char *record_image(const cJSON *j, const char *dir, const char *path, int line, const char *const *used) {
    char *one = NULL;
    return record_images(j, dir, path, line, used, 1, &one) ? one : NULL;
}

// The image root: --images DIR, else the JSONL's folder.
static char *records_dir(const char *path, const char *images_dir) {
    if (images_dir) return xstrdup(images_dir);
    return strcmp(path, "-") ? path_dirname(path) : xstrdup(".");
}

// "<image>\n" where the chat templates put the image, for a text prompt that has none: after the first
// "USER: " (vicuna_v1 and llava_hf render "USER: <image>\n{question}"), else in front of the prompt.
char *records_place_image(const char *prompt) {
    const char *user = strstr(prompt, "USER: ");
    size_t at = user ? (size_t)(user - prompt) + 6 : 0, n = strlen(prompt);
    char *out = xmalloc(n + 9);
    memcpy(out, prompt, at);
    memcpy(out + at, "<image>\n", 8);
    memcpy(out + at + 8, prompt + at, n - at + 1);
    return out;
}

static int read_ids(const cJSON *arr, int **ids, int *n) {
    if (!cJSON_IsArray(arr)) return 0;
    int len = cJSON_GetArraySize(arr);
    *ids = xmalloc(sizeof(int) * (len ? len : 1));
    *n = len;
    int i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        long long x;  // range before the cast: (int) of 2^63 is undefined
        if (json_int(v, INT_MIN, INT_MAX, &x)) { free(*ids); return 0; }
        (*ids)[i++] = (int)x;
    }
    return 1;
}

void records_read_logprobs(RecordSet *rs, const char *path, const LlavaConfig *cfg, const char *model_dir,
                           const char *tok_path, const char *images_dir) {
    static const char *const used[] = {"input_ids", "n_response", "prompt", "question", "response", NULL};
    static const char *const prompt_keys[] = {"prompt", "question", NULL};
    memset(rs, 0, sizeof(*rs));
    rs->path = path;
    char *dir = records_dir(path, images_dir);
    int placed = 0;  // text records whose image was placed here (reported once)
    JsonlReader jr;
    jsonl_open(&jr, path);
    int cap = 0;
    cJSON *j;
    Tokenizer *tok = NULL;  // loaded on the first text record
    while ((j = jsonl_next(&jr, 0, NULL))) {
        LogprobRecord r;
        memset(&r, 0, sizeof(r));
        r.index = rs->n;
        r.line = jr.line;
        char *paths[RECORDS_MAX_IMAGES];
        r.n_images = record_images(j, dir, path, jr.line, used, RECORDS_MAX_IMAGES, paths);
        r.images = r.n_images ? xmalloc(sizeof(char *) * r.n_images) : NULL;
        if (r.n_images) memcpy(r.images, paths, sizeof(char *) * r.n_images);
        const cJSON *input_ids = cJSON_GetObjectItemCaseSensitive(j, "input_ids");
        const char *prompt_text, *prompt_key;
        char terr[256];
        if (json_record_text(j, prompt_keys, &prompt_text, &prompt_key, terr, sizeof(terr))) fatal("%s:%d: %s", path, jr.line, terr);
        int *raw = NULL, n_raw = 0;
        if (input_ids) {
            if (!read_ids(input_ids, &raw, &n_raw)) fatal("%s:%d: \"input_ids\" must be an array of integers", path, jr.line);
            const cJSON *nr = cJSON_GetObjectItemCaseSensitive(j, "n_response");
            long long nresp;
            if (json_int(nr, INT_MIN, INT_MAX, &nresp))
                fatal("%s:%d: \"n_response\" (an integer) is required with \"input_ids\"", path, jr.line);
            r.n_response = (int)nresp;
        } else if (prompt_text) {
            // HF semantics: the prompt with BOS (<image> is an added token: one id), the response on its own
            // (with the dummy prefix, as tokenizer(response, add_special_tokens=False)) and then EOS
            const cJSON *response = cJSON_GetObjectItemCaseSensitive(j, "response");
            if (!cJSON_IsString(response) || !response->valuestring[0])
                fatal("%s:%d: \"%s\" and \"response\" must be strings (the response non-empty)", path, jr.line, prompt_key);
            if (!r.n_images && strstr(prompt_text, "<image>"))
                fatal("%s:%d: the %s has \"<image>\" but the record has no \"image\"", path, jr.line, prompt_key);
            int in_text = 0;
            for (const char *q = strstr(prompt_text, "<image>"); q; q = strstr(q + 7, "<image>")) in_text++;
            if (in_text && in_text != r.n_images)
                fatal("%s:%d: the %s has %d \"<image>\" for %d images: write one per image, or none to put them in front",
                      path, jr.line, prompt_key, in_text, r.n_images);
            char *text = xstrdup(prompt_text);
            for (int i = 0; i < r.n_images && !in_text; i++) {  // each image's placeholder where the templates put one
                char *placed_text = records_place_image(text);
                free(text);
                text = placed_text;
            }
            if (r.n_images && !in_text && !placed++)
                fprintf(stderr, "vlm: %s:%d: the %s has no \"<image>\": placed as the chat templates do (after the first "
                        "\"USER: \", else first); write \"<image>\" in the %s to put it elsewhere\n", path, jr.line, prompt_key, prompt_key);
            if (!tok) {
                char *tp = tok_path ? xstrdup(tok_path) : tokenizer_find(model_dir);
                if (!tp) fatal("%s:%d: text records need a tokenizer: no tokenizer.model or tokenizer.json in %s (give --tokenizer)", path, jr.line, model_dir);
                if (!file_exists(tp)) fatal("%s:%d: text records need a tokenizer: %s not found (give --tokenizer)", path, jr.line, tp);
                tok = tokenizer_load(tp);
                free(tp);
            }
            int *p_ids = NULL, *r_ids = NULL;
            int np = tokenizer_encode(tok, text, strlen(text), TOK_BOS, &p_ids, NULL);
            free(text);
            int nr = tokenizer_encode(tok, response->valuestring, strlen(response->valuestring), TOK_EOS, &r_ids, NULL);
            n_raw = np + nr;
            raw = xmalloc(sizeof(int) * n_raw);
            for (int i = 0; i < np; i++) raw[i] = p_ids[i] == tok->image_id ? cfg->image_token_id : p_ids[i];
            memcpy(raw + np, r_ids, sizeof(int) * nr);
            r.n_response = nr;
            free(p_ids);
            free(r_ids);
        } else fatal("%s:%d: a record needs \"input_ids\" + \"n_response\" or \"prompt\" (or \"question\") + \"response\"", path, jr.line);
        for (int i = 0; i < n_raw; i++)
            if (raw[i] < 0 || raw[i] >= cfg->text.vocab)
                fatal("%s:%d: token id %d at position %d is outside the vocabulary (%d)", path, jr.line, raw[i], i, cfg->text.vocab);
        if (r.n_response < 1 || r.n_response >= n_raw)
            fatal("%s:%d: n_response %d must be between 1 and the number of ids minus one (%d)", path, jr.line, r.n_response, n_raw - 1);
        for (int i = n_raw - r.n_response; i < n_raw; i++)
            if (raw[i] == cfg->image_token_id) fatal("%s:%d: the response contains the image token (id %d)", path, jr.line, raw[i]);
        char err[256];
        r.ids = records_expand_image_tokens(raw, n_raw, r.n_images, cfg, &r.n, err, sizeof(err));
        if (!r.ids && input_ids && r.n_images && !records_count_image_tokens(raw, n_raw, cfg))
            fatal("%s:%d: the record has an \"image\" but its input_ids have no image token: write %d once where the image goes "
                  "(LLaVA-1.5: right after the ids of \"USER:\"), or %d copies as HF processors do; or drop \"image\" for an "
                  "image-free row", path, jr.line, cfg->image_token_id, cfg->image_tokens);
        if (!r.ids) fatal("%s:%d: %s", path, jr.line, err);
        if (llava_check_row_length(cfg, r.n, err, sizeof(err))) fatal("%s:%d: record %d: %s", path, jr.line, r.index, err);
        free(raw);
        cJSON_Delete(j);
        if (rs->n == cap) rs->r = xrealloc(rs->r, sizeof(LogprobRecord) * (cap = cap ? 2 * cap : 64));
        rs->r[rs->n++] = r;
    }
    jsonl_close(&jr);
    free(dir);
    tokenizer_free(tok);
    if (rs->n == 0) fatal("%s: no records", path);
}

void records_free(RecordSet *rs) {
    for (int i = 0; i < rs->n; i++) {
        free(rs->r[i].ids);
        for (int k = 0; k < rs->r[i].n_images; k++) free(rs->r[i].images[k]);
        free(rs->r[i].images);
    }
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}

PreprocessConfig records_tower_preprocess_config(const char *model_dir, const VisionConfig *tower) {
    char *p = path_join(model_dir, "preprocessor_config.json");
    PreprocessConfig cfg;
    const int siglip = tower->kind == VISION_SIGLIP;
    if (file_exists(p)) cfg = preprocess_config_load(p);
    else {
        fprintf(stderr, "vlm: %s not found; using %s preprocessing at %d px\n", p, siglip ? "SigLIP" : "CLIP", tower->image_size);
        cfg = siglip ? preprocess_config_siglip(tower->image_size) : preprocess_config_clip(tower->image_size);
    }
    free(p);
    return cfg;
}

// ----------------------------------------------------------------------------------------------------
// `vlm sample` records

static void check_ids(const char *path, int line, const int *ids, int n, const LlavaConfig *cfg) {
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= cfg->text.vocab)
            fatal("%s:%d: token id %d at position %d is outside the vocabulary (%d)", path, line, ids[i], i, cfg->text.vocab);
}

void records_read_sample(SampleRecordSet *rs, const char *path, const LlavaConfig *cfg, const Tokenizer *tok,
                         const SampleReadOptions *opt) {
    static const char *const used[] = {"input_ids", "prompt", "question", "text", "query", "system", "question_id", NULL};
    // "text": POPE's released files; "query": AMBER's (data/query/query_*.json)
    static const char *const prompt_keys[] = {"prompt", "question", "text", "query", NULL};
    memset(rs, 0, sizeof(*rs));
    rs->path = path;
    char *dir = records_dir(path, opt->images_dir);
    JsonlReader jr;
    jsonl_open(&jr, path);
    int cap = 0;
    cJSON *j;
    while ((j = jsonl_next(&jr, 0, NULL))) {
        SampleRecord r;
        memset(&r, 0, sizeof(r));
        r.index = rs->n;
        r.line = jr.line;
        r.image = record_image(j, dir, path, jr.line, used);
        if (r.image && !file_exists(r.image))
            fatal("%s:%d: image %s not found%s", path, jr.line, r.image, opt->images_dir ? "" : " (give --images DIR for image names relative to another folder)");
        const cJSON *qid = cJSON_GetObjectItemCaseSensitive(j, "question_id");
        if (qid) r.question_id = cJSON_PrintUnformatted(qid);
        const cJSON *input_ids = cJSON_GetObjectItemCaseSensitive(j, "input_ids");
        const char *prompt, *prompt_key;
        char terr[256];
        // CV-Bench's records carry the bare "question" and the "prompt" made of it and the lettered choices:
        // a prompt that begins with the question is the one meant
        const cJSON *pj = cJSON_GetObjectItemCaseSensitive(j, "prompt"), *qj = cJSON_GetObjectItemCaseSensitive(j, "question");
        if (cJSON_IsString(pj) && cJSON_IsString(qj) && !cJSON_GetObjectItemCaseSensitive(j, "text") &&
            !cJSON_GetObjectItemCaseSensitive(j, "query") && !strncmp(pj->valuestring, qj->valuestring, strlen(qj->valuestring))) {
            prompt = pj->valuestring;
            prompt_key = "prompt";
        } else if (json_record_text(j, prompt_keys, &prompt, &prompt_key, terr, sizeof(terr))) {
            fatal("%s:%d: %s", path, jr.line, terr);
        }
        int *raw = NULL, n_raw = 0;
        if (input_ids && prompt) fatal("%s:%d: give either \"%s\" or \"input_ids\", not both", path, jr.line, prompt_key);
        if (input_ids) {
            if (!read_ids(input_ids, &raw, &n_raw)) fatal("%s:%d: \"input_ids\" must be an array of integers", path, jr.line);
            if (n_raw == 0) fatal("%s:%d: \"input_ids\" is empty", path, jr.line);
            check_ids(path, jr.line, raw, n_raw, cfg);
        } else if (prompt) {
            // the template would silently drop the placeholder (its image-free variant): a missing "image" is a mistake
            if (!r.image && strstr(prompt, "<image>"))
                fatal("%s:%d: the %s has \"<image>\" but the record has no \"image\"", path, jr.line, prompt_key);
            if (!tok) fatal("%s:%d: text records need a tokenizer (tokenizer.model or tokenizer.json in the model folder, or --tokenizer)", path, jr.line);
            const cJSON *system = cJSON_GetObjectItemCaseSensitive(j, "system");
            if (system && !cJSON_IsString(system)) fatal("%s:%d: \"system\" must be a string", path, jr.line);
            ChatOptions copt = {.tmpl = opt->tmpl, .system = system ? system->valuestring : opt->system, .image = r.image != NULL,
                                .n_image_tokens = 1};
            char *text = xmalloc(strlen(prompt) + (opt->prompt_suffix ? strlen(opt->prompt_suffix) : 0) + 1);
            strcpy(text, prompt);
            if (opt->prompt_suffix) strcat(text, opt->prompt_suffix);
            ChatTurn turn = {text, NULL};
            ChatTokens ct;
            char err[512];
            if (chat_build(tok, &copt, &turn, 1, &ct, err, sizeof(err))) fatal("%s:%d: %s", path, jr.line, err);
            free(text);
            raw = xmalloc(sizeof(int) * ct.n);
            n_raw = ct.n;
            for (int i = 0; i < ct.n; i++) raw[i] = ct.ids[i] == tok->image_id ? cfg->image_token_id : ct.ids[i];
            chat_tokens_free(&ct);
            check_ids(path, jr.line, raw, n_raw, cfg);
        } else fatal("%s:%d: a record needs \"prompt\" (or \"question\", POPE's \"text\", AMBER's \"query\") or \"input_ids\"", path, jr.line);
        char err[256];
        r.ids = records_expand_image_tokens(raw, n_raw, r.image != NULL, cfg, &r.n, err, sizeof(err));
        if (!r.ids && input_ids && r.image && !records_count_image_tokens(raw, n_raw, cfg))
            fatal("%s:%d: the record has an \"image\" but its input_ids have no image token: write %d once where the image goes "
                  "(LLaVA-1.5: right after the ids of \"USER:\"), or give a text \"prompt\", which gets it from the chat template",
                  path, jr.line, cfg->image_token_id);
        if (!r.ids) fatal("%s:%d: %s", path, jr.line, err);
        if (llava_check_row_length(cfg, r.n, err, sizeof(err))) fatal("%s:%d: record %d: %s", path, jr.line, r.index, err);
        free(raw);
        cJSON_Delete(j);
        if (r.n > rs->max_len) rs->max_len = r.n;
        if (rs->n == cap) rs->r = xrealloc(rs->r, sizeof(SampleRecord) * (cap = cap ? 2 * cap : 64));
        rs->r[rs->n++] = r;
    }
    jsonl_close(&jr);
    free(dir);
    if (rs->n == 0) fatal("%s: no records", path);
}

void records_free_sample(SampleRecordSet *rs) {
    for (int i = 0; i < rs->n; i++) { free(rs->r[i].ids); free(rs->r[i].image); free(rs->r[i].question_id); }
    free(rs->r);
    memset(rs, 0, sizeof(*rs));
}
