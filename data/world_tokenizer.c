// The synthetic world's tokenizer (see world_tokenizer.h).
#include "world_tokenizer.h"

#include <cJSON.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "chat.h"
#include "tokenizer_sp.h"
#include "tokenizer_train.h"

// Keys whose strings are text the model reads (prompts) or writes (answers). Prompts are also rendered in the
// chat templates. Everything else (image paths, ids, types, contrast names) is bookkeeping the model never sees.
static const char *const PROMPT_KEYS[] = {"prompt", "instruction_prompt", "question", "text", "system_prompt"};
static const char *const ANSWER_KEYS[] = {"response", "answer", "caption", "chosen_response", "rejected_response",
                                          "chosen", "rejected", "label"};

static int key_in(const char *key, const char *const *keys, size_t n) {
    for (size_t i = 0; key && i < n; i++)
        if (!strcmp(key, keys[i])) return 1;
    return 0;
}

// Adds a prompt: as written (image-free rows, logprobs prompts), and as each template's generation prompt with
// the image first, where the segment after "<image>" starts with "\n" and the prompt's first word has no "▁".
static void add_prompt(SpTrainer *tr, const char *text) {
    sptrain_add(tr, text, strlen(text), 1);
    for (int tmpl = CHAT_VICUNA_V1; tmpl <= CHAT_LLAVA_HF_IMAGE_LAST; tmpl++) {
        ChatOptions opt = {.tmpl = (ChatTemplate)tmpl, .image = 1, .n_image_tokens = 1};
        ChatTurn turn = {text, NULL};
        char err[256];
        char *r = chat_render(&opt, &turn, 1, err, sizeof(err));
        if (!r) fatal("world tokenizer: cannot render a prompt in %s: %s", chat_template_name((ChatTemplate)tmpl), err);
        sptrain_add(tr, r, strlen(r), 1);
        free(r);
    }
}

static void walk(SpTrainer *tr, const cJSON *j, long *n_texts) {
    for (const cJSON *c = j->child; c; c = c->next) {
        if (cJSON_IsString(c) && c->valuestring[0]) {
            if (key_in(c->string, PROMPT_KEYS, sizeof(PROMPT_KEYS) / sizeof(PROMPT_KEYS[0]))) {
                add_prompt(tr, c->valuestring);
                (*n_texts)++;
            } else if (key_in(c->string, ANSWER_KEYS, sizeof(ANSWER_KEYS) / sizeof(ANSWER_KEYS[0]))) {
                sptrain_add(tr, c->valuestring, strlen(c->valuestring), 1);
                (*n_texts)++;
            }
        } else if (cJSON_IsArray(c) || cJSON_IsObject(c)) walk(tr, c, n_texts);
    }
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && !strcmp(s + n - k, suffix);
}

static int cmp_names(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

// Reads the text of every *.json / *.jsonl file in dir (in name order) into tr; returns the number of texts.
static long read_corpus(SpTrainer *tr, const char *dir) {
    DIR *d = opendir(dir);
    if (!d) fatal("world tokenizer: cannot open the folder %s", dir);
    char **names = NULL;
    int n = 0, cap = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!ends_with(e->d_name, ".json") && !ends_with(e->d_name, ".jsonl")) continue;
        if (n == cap) names = xrealloc(names, sizeof(char *) * (size_t)(cap = cap ? 2 * cap : 32));
        names[n++] = xstrdup(e->d_name);
    }
    closedir(d);
    if (n > 1) qsort(names, (size_t)n, sizeof(char *), cmp_names);  // names is NULL when the folder has none
    long n_texts = 0;
    for (int i = 0; i < n; i++) {
        char *path = path_join(dir, names[i]);
        size_t len;
        char *data = read_file(path, &len);
        if (ends_with(names[i], ".jsonl")) {
            int line = 0;
            for (char *p = data, *end = data + len; p < end; line++) {
                char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t k = nl ? (size_t)(nl - p) : (size_t)(end - p);
                int blank = 1;
                for (size_t q = 0; q < k && blank; q++) blank = p[q] == ' ' || p[q] == '\t' || p[q] == '\r';
                if (!blank) {
                    cJSON *j = cJSON_ParseWithLength(p, k);
                    if (!j) fatal("%s:%d: not a JSON value", path, line + 1);
                    walk(tr, j, &n_texts);
                    cJSON_Delete(j);
                }
                p += k + 1;
            }
        } else {
            cJSON *j = cJSON_ParseWithLength(data, len);
            if (!j) fatal("%s: not a JSON document", path);
            walk(tr, j, &n_texts);
            cJSON_Delete(j);
        }
        free(data);
        free(path);
        free(names[i]);
    }
    free(names);
    return n_texts;
}

// Sets key to a number in obj, replacing an earlier value (re-running the tokenizer step stays idempotent).
static void set_number(cJSON *obj, const char *key, double v) {
    cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
    cJSON_AddNumberToObject(obj, key, v);
}

void world_tokenizer_write(const char *dir, int quiet) {
    double t0 = now_seconds();
    SpTrainer *tr = sptrain_new();
    long n_texts = read_corpus(tr, dir);
    if (n_texts == 0)
        fatal("world tokenizer: %s has no text to train on (no prompt, response, caption, ... in its *.json and "
              "*.jsonl files)", dir);
    // What every conversation has whatever the world says: the templates' fixed text in the training form of
    // two turns (vicuna's "</s>USER:", llava_hf's answer followed by a space), and what answers are made of.
    for (int tmpl = CHAT_VICUNA_V1; tmpl <= CHAT_LLAVA_HF_IMAGE_LAST; tmpl++) {
        ChatOptions opt = {.tmpl = (ChatTemplate)tmpl, .image = 1, .n_image_tokens = 1};
        ChatTurn turns[2] = {{"Describe the image.", "yes"}, {"Describe the image.", "no"}};
        char *r = chat_render(&opt, turns, 2, NULL, 0);
        sptrain_add(tr, r, strlen(r), 1);
        free(r);
    }
    add_prompt(tr, "Describe the image.");
    static const char *const extra[] = {"0 1 2 3 4 5 6 7 8 9", "(a)", "(b)", "yes", "no"};
    for (size_t i = 0; i < sizeof(extra) / sizeof(extra[0]); i++) sptrain_add(tr, extra[i], strlen(extra[i]), 1);

    SpTrainStats st;
    char err[512];
    size_t len;
    uint8_t *model = sptrain_build(tr, &(SpTrainOptions){.max_pieces = 8000}, &len, &st, err, sizeof(err));
    if (!model) fatal("world tokenizer: %s: %s", dir, err);
    sptrain_free(tr);
    char *path = path_join(dir, "tokenizer.model");
    // Read back through the loader every model goes through, so a file it would refuse is never left behind.
    SpTokenizer *tok = sptok_load_buffer(model, len, path, err, sizeof(err));
    if (!tok) fatal("world tokenizer: the trained model does not load: %s", err);
    write_file_atomic(path, model, len);
    free(model);
    int vocab = (tok->vocab_size + 63) / 64 * 64;

    char *wpath = path_join(dir, "world.json");
    size_t wlen;
    char *wtext = read_file(wpath, &wlen);
    cJSON *w = cJSON_ParseWithLength(wtext, wlen);
    if (!w || !cJSON_IsObject(w)) fatal("%s: not a JSON object", wpath);
    free(wtext);
    cJSON_DeleteItemFromObjectCaseSensitive(w, "tokenizer");
    cJSON_AddStringToObject(w, "tokenizer", "tokenizer.model");
    set_number(w, "tokenizer_pieces", tok->n_pieces);
    set_number(w, "image_token_index", tok->image_id);
    set_number(w, "vocab_size", vocab);
    char *s = cJSON_Print(w);
    size_t sl = strlen(s);
    s = xrealloc(s, sl + 2);
    s[sl] = '\n';
    write_file_atomic(wpath, s, sl + 1);
    free(s);
    cJSON_Delete(w);
    if (st.n_words_split > 0)
        fprintf(stderr, "world tokenizer: warning: %s: the cap of 8000 pieces left %d of %d words in several pieces\n",
                path, st.n_words_split, st.n_words);
    if (!quiet)
        printf("world tokenizer: %s: %d pieces (%d characters, %d merges; %d words%s) from %ld texts in %.1fs; "
               "LLaVA: image_token_index %d, vocab_size %d\n",
               path, st.n_pieces, st.n_chars, st.n_merges, st.n_words, st.n_words_split ? "" : ", each one piece",
               n_texts, now_seconds() - t0, tok->image_id, vocab);
    sptok_free(tok);
    free(wpath);
    free(path);
}
