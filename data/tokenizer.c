// A model folder's text tokenizer, SentencePiece or tokenizer.json (see tokenizer.h).
#include "tokenizer.h"

#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"

char *tokenizer_find(const char *dir) {
    static const char *const names[] = {"tokenizer.model", "tokenizer.json"};
    for (int i = 0; i < 2; i++) {
        char *p = path_join(dir, names[i]);
        if (file_exists(p)) return p;
        free(p);
    }
    return NULL;
}

// A tokenizer.json: the name says so, or the file opens a JSON object (the library writes '{' first; a SentencePiece
// model starts with a protobuf tag, 0x0A).
static int is_json(const char *path) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return 1;
    FILE *f = fopen(path, "rb");
    if (!f) return 0;  // the loader reports it
    int c = fgetc(f);
    fclose(f);
    return c == '{';
}

// bos_token / eos_token of tokenizer_config.json: a string, {"content": string} (transformers' AddedToken form) or
// null. -1 when absent or null; dies naming the file when the token is not one the tokenizer has.
static int config_token(const cJSON *cfg, const char *key, const HfTokenizer *hf, const char *cfg_path) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg, key);
    if (cJSON_IsObject(v)) v = cJSON_GetObjectItemCaseSensitive(v, "content");
    if (!v || cJSON_IsNull(v)) return -1;
    if (!cJSON_IsString(v)) fatal("%s: %s must be a string, {\"content\": string} or null", cfg_path, key);
    int id = hftok_token_id(hf, v->valuestring);
    if (id < 0) fatal("%s: %s '%.80s' is not a token of %s", cfg_path, key, v->valuestring, hf->source);
    return id;
}

Tokenizer *tokenizer_load(const char *path) {
    if (!file_exists(path)) fatal("%s: no such tokenizer file", path);
    Tokenizer *t = xcalloc(1, sizeof(Tokenizer));
    t->path = xstrdup(path);
    t->bos_id = t->eos_id = t->image_id = -1;
    if (!is_json(path)) {
        t->sp = sptok_load(path);
        t->vocab_size = t->sp->vocab_size;
        t->bos_id = t->sp->bos_id;
        t->eos_id = t->sp->eos_id;
        t->image_id = t->sp->image_id;
        return t;
    }
    t->hf = hftok_load(path);
    t->vocab_size = t->hf->vocab_size;
    t->image_id = hftok_token_id(t->hf, "<image>");
    char *dir = path_dirname(path), *cfg_path = path_join(dir, "tokenizer_config.json");
    if (file_exists(cfg_path)) {
        size_t len;
        char *text = read_file(cfg_path, &len), err[512];
        cJSON *cfg = json_parse_document(text, len, cfg_path, err, sizeof(err));
        if (!cfg) fatal("%s", err);
        if (!cJSON_IsObject(cfg)) fatal("%s: not a JSON object", cfg_path);
        t->bos_id = config_token(cfg, "bos_token", t->hf, cfg_path);
        t->eos_id = config_token(cfg, "eos_token", t->hf, cfg_path);
        cJSON_Delete(cfg);
        free(text);
    }
    free(cfg_path);
    free(dir);
    return t;
}

void tokenizer_free(Tokenizer *t) {
    if (!t) return;
    sptok_free(t->sp);
    hftok_free(t->hf);
    free(t->path);
    free(t);
}

int tokenizer_encode(const Tokenizer *t, const char *text, size_t len, int flags, int **ids, int **spans) {
    if (t->sp) return sptok_encode(t->sp, text, len, flags, ids, spans);
    if (flags & TOK_RAW) fatal("%s: raw encoding (no special tokens) is for SentencePiece tokenizers", t->path);
    if ((flags & TOK_EOS) && t->eos_id < 0)
        fatal("%s: the tokenizer has no end token (eos_token in a tokenizer_config.json beside it)", t->path);
    int n = hftok_encode(t->hf, text, len, (flags & TOK_BOS) != 0, ids, spans);
    if (flags & TOK_EOS) {
        *ids = xrealloc(*ids, sizeof(int) * (size_t)(n + 1));
        (*ids)[n] = t->eos_id;
        if (spans) {
            *spans = xrealloc(*spans, sizeof(int) * 2 * (size_t)(n + 1));
            (*spans)[2 * n] = (*spans)[2 * n + 1] = (int)len;
        }
        n++;
    }
    return n;
}

char *tokenizer_decode(const Tokenizer *t, const int *ids, int n, int skip_special, size_t *out_len) {
    return t->sp ? sptok_decode(t->sp, ids, n, skip_special, out_len) : hftok_decode(t->hf, ids, n, skip_special, out_len);
}

int tokenizer_token_id(const Tokenizer *t, const char *token) {
    return t->sp ? sptok_piece_id(t->sp, token) : hftok_token_id(t->hf, token);
}
