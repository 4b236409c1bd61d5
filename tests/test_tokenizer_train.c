// The SentencePiece BPE trainer (data/tokenizer_train.h) and the synthetic world's tokenizer
// (data/world_tokenizer.h): ids against the `sentencepiece` package (tests/ref/check_world_tokenizer.py writes
// tests/fixtures/tokenizers/world_{corpus,sp}.jsonl), every corpus word one piece, round trips, byte fallback,
// determinism, bad input, and `vlm data synth` / `vlm data tokenizer` / `vlm tokenize` on the result.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer_sp.h"
#include "../data/tokenizer_train.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

#define WORLD_CORPUS "tests/fixtures/tokenizers/world_corpus.jsonl"
#define WORLD_SP "tests/fixtures/tokenizers/world_sp.jsonl"

// Trains on every "text" of a JSONL file (in file order, or reversed); returns the model bytes.
static uint8_t *train_file(const char *path, int reverse, int max_pieces, size_t *len, SpTrainStats *st) {
    int n;
    cJSON **rows = jsonl_read(path, &n);
    SpTrainer *tr = sptrain_new();
    for (int i = 0; i < n; i++) {
        const char *t = cJSON_GetObjectItemCaseSensitive(rows[reverse ? n - 1 - i : i], "text")->valuestring;
        sptrain_add(tr, t, strlen(t), 1);
    }
    char err[256];
    uint8_t *m = sptrain_build(tr, &(SpTrainOptions){.max_pieces = max_pieces}, len, st, err, sizeof(err));
    if (!m) fatal("%s: %s", path, err);
    sptrain_free(tr);
    jsonl_free(rows, n);
    return m;
}

static SpTokenizer *load_model(const uint8_t *m, size_t len) {
    char err[256];
    SpTokenizer *t = sptok_load_buffer(m, len, "trained.model", err, sizeof(err));
    if (!t) fatal("%s", err);
    return t;
}

// The fixture's corpus, trained here, gives the model sentencepiece was given: same size, same ids for the corpus
// and for probe texts it never saw (unseen characters, whitespace runs, special tokens).
TEST(tokenizer_train_matches_sentencepiece) {
    size_t len;
    SpTrainStats st;
    uint8_t *m = train_file(WORLD_CORPUS, 0, 0, &len, &st);
    SpTokenizer *t = load_model(m, len);
    int n;
    cJSON **rows = jsonl_read(WORLD_SP, &n);
    EXPECT(n > 100);
    EXPECTF(t->n_pieces == cJSON_GetObjectItemCaseSensitive(rows[0], "pieces")->valueint,
            "%d pieces; sentencepiece loaded %d from the fixture's model (rerun tests/ref/check_world_tokenizer.py "
            "--write-fixture if the trainer changed on purpose)", t->n_pieces,
            cJSON_GetObjectItemCaseSensitive(rows[0], "pieces")->valueint);
    for (int r = 1; r < n; r++) {
        size_t tl;
        char *text = fixture_text(rows[r], &tl);
        int *ids, k = sptok_encode(t, text, tl, 0, &ids, NULL);
        char what[160];
        snprintf(what, sizeof(what), "row %d %.60s", r, text);
        EXPECT_IDS(ids, k, cJSON_GetObjectItemCaseSensitive(rows[r], "ids"), what);
        free(ids);
        free(text);
    }
    jsonl_free(rows, n);
    sptok_free(t);
    free(m);
}

// Words as the trainer cuts them, written independently for ASCII text: a word starts at a space (which it keeps
// as "▁") or where letters / digits / other characters change, and every digit is a word.
static int ascii_words(const char *s, char words[][64], int max) {
    int n = 0;
    static const char SP[] = "\xE2\x96\x81";
    int at_space = 1;  // the dummy prefix
    for (const char *p = s; *p;) {
        if (*p == ' ') { at_space = 1; p++; if (!*p) { snprintf(words[n++], 64, "%s", SP); } continue; }
        int cls = (*p >= '0' && *p <= '9') ? 1 : ((*p | 32) >= 'a' && (*p | 32) <= 'z') ? 0 : 2;
        const char *q = p + 1;
        if (cls != 1)
            while (*q && *q != ' ' && ((*q >= '0' && *q <= '9') ? 1 : ((*q | 32) >= 'a' && (*q | 32) <= 'z') ? 0 : 2) == cls) q++;
        if (n == max) return -1;
        snprintf(words[n++], 64, "%s%.*s", at_space ? SP : "", (int)(q - p), p);
        at_space = 0;
        p = q;
    }
    return n;
}

// Every text of the corpus round-trips, every one of its words is a single piece (the encoding is exactly the
// words' pieces), no byte piece is needed, and the vocabulary is a few hundred pieces.
TEST(tokenizer_train_words_are_pieces) {
    size_t len;
    SpTrainStats st;
    uint8_t *m = train_file(WORLD_CORPUS, 0, 0, &len, &st);
    SpTokenizer *t = load_model(m, len);
    EXPECTF(t->n_pieces > 300 && t->n_pieces < 1000, "%d pieces", t->n_pieces);
    EXPECT_INT_EQ(st.n_pieces, t->n_pieces);
    EXPECT_INT_EQ(st.n_words_split, 0);
    EXPECT_INT_EQ(t->n_pieces, 259 + st.n_chars + st.n_merges);
    EXPECT_INT_EQ(t->image_id, t->n_pieces);
    EXPECT_INT_EQ(t->llava_pad_id, t->n_pieces + 1);
    EXPECT_INT_EQ(t->unk_id, 0);
    EXPECT_INT_EQ(t->bos_id, 1);
    EXPECT_INT_EQ(t->eos_id, 2);
    for (int b = 0; b < 256; b++) EXPECT_INT_EQ(t->byte_id[b], 3 + b);
    int n, checked = 0;
    cJSON **rows = jsonl_read(WORLD_CORPUS, &n);
    for (int r = 0; r < n; r++) {
        const char *text = cJSON_GetObjectItemCaseSensitive(rows[r], "text")->valuestring;
        int *ids, k = sptok_encode(t, text, strlen(text), 0, &ids, NULL);
        for (int i = 0; i < k; i++)
            EXPECTF(t->types[ids[i]] != SP_PIECE_BYTE, "'%s': token %d is a byte piece", text, i);
        if (!strchr(text, '<') && !strchr(text, '\n')) {  // plain text: decodes back exactly
            char *back = sptok_decode(t, ids, k, 1, NULL);
            EXPECTF(!strcmp(back, text), "'%s' decodes to '%s'", text, back);
            free(back);
            char words[256][64];
            int nw = ascii_words(text, words, 256);
            EXPECTF(nw == k, "'%s': %d tokens for %d words", text, k, nw);
            for (int i = 0; i < nw && i < k; i++)
                EXPECTF(sptok_piece_id(t, words[i]) == ids[i], "'%s': word %d '%s' is not token %d (%s)", text, i,
                        words[i], i, t->pieces[ids[i]]);
            checked++;
        }
        free(ids);
    }
    EXPECTF(checked > 50, "%d plain texts checked", checked);
    jsonl_free(rows, n);
    sptok_free(t);
    free(m);
}

// Characters the corpus never had go to their UTF-8 bytes and come back.
TEST(tokenizer_train_byte_fallback) {
    SpTrainer *tr = sptrain_new();
    const char *corpus[] = {"a red circle", "a blue square", "Is there a red circle?"};
    for (int i = 0; i < 3; i++) sptrain_add(tr, corpus[i], strlen(corpus[i]), 1);
    size_t len;
    SpTrainStats st;
    char err[256];
    uint8_t *m = sptrain_build(tr, NULL, &len, &st, err, sizeof(err));
    EXPECT(m != NULL);
    sptrain_free(tr);
    SpTokenizer *t = load_model(m, len);
    const char *probe = "a naïve Zebra 日本 🙂 circle";
    int *ids, k = sptok_encode(t, probe, strlen(probe), 0, &ids, NULL);
    int bytes = 0;
    for (int i = 0; i < k; i++) bytes += t->types[ids[i]] == SP_PIECE_BYTE;
    EXPECTF(bytes >= 2 + 6 + 4 + 1, "%d byte pieces", bytes);  // ï, 日本, 🙂, Z
    EXPECT_INT_EQ(ids[k - 1], sptok_piece_id(t, "\xE2\x96\x81" "circle"));
    char *back = sptok_decode(t, ids, k, 1, NULL);
    EXPECTF(!strcmp(back, probe), "decodes to '%s'", back);
    free(back);
    free(ids);
    // ill-formed UTF-8 in the corpus is left to byte fallback, never made a piece (the loader would refuse it)
    tr = sptrain_new();
    sptrain_add(tr, "ab\xFF" "cd", 5, 1);
    uint8_t *m2 = sptrain_build(tr, NULL, &len, &st, err, sizeof(err));
    EXPECT(m2 != NULL);
    SpTokenizer *t2 = load_model(m2, len);
    EXPECT(sptok_piece_id(t2, "\xE2\x96\x81" "ab") >= 0);
    EXPECT(sptok_piece_id(t2, "cd") >= 0);
    sptok_free(t2);
    sptrain_free(tr);
    free(m2);
    sptok_free(t);
    free(m);
}

// The same corpus in another order gives the same bytes; the file loads through sptok_load like LLaMA's.
TEST(tokenizer_train_deterministic) {
    size_t l1, l2;
    SpTrainStats s1, s2;
    uint8_t *a = train_file(WORLD_CORPUS, 0, 0, &l1, &s1), *b = train_file(WORLD_CORPUS, 1, 0, &l2, &s2);
    EXPECT(l1 == l2 && memcmp(a, b, l1) == 0);
    char *path = path_join(test_tmpdir(), "det.model");
    write_file_atomic(path, a, l1);
    SpTokenizer *t = sptok_load(path);
    EXPECT_INT_EQ(t->n_pieces, s1.n_pieces);
    EXPECT_INT_EQ(t->vocab_size, s1.n_pieces + 2);
    sptok_free(t);
    free(path);
    free(a);
    free(b);
}

// The cap stops the merges: exactly that many pieces, the words left in several pieces counted, still valid.
TEST(tokenizer_train_cap) {
    size_t len;
    SpTrainStats full, st;
    free(train_file(WORLD_CORPUS, 0, 0, &len, &full));
    int cap = 259 + full.n_chars + 10;
    uint8_t *m = train_file(WORLD_CORPUS, 0, cap, &len, &st);
    EXPECT_INT_EQ(st.n_pieces, cap);
    EXPECT_INT_EQ(st.n_merges, 10);
    EXPECT(st.n_words_split > 0);
    SpTokenizer *t = load_model(m, len);
    const char *s = "Is there a red circle in the image?";
    int *ids, k = sptok_encode(t, s, strlen(s), 0, &ids, NULL);
    char *back = sptok_decode(t, ids, k, 1, NULL);
    EXPECT(!strcmp(back, s));
    free(back);
    free(ids);
    sptok_free(t);
    free(m);
}

// An empty corpus (or one of special tokens only) is an error with a message, not a model.
TEST(tokenizer_train_empty_corpus) {
    const char *corpora[] = {NULL, "", "<image><s></s>"};
    for (int i = 0; i < 3; i++) {
        SpTrainer *tr = sptrain_new();
        if (corpora[i]) sptrain_add(tr, corpora[i], strlen(corpora[i]), 3);
        char err[256] = "";
        size_t len = 0;
        uint8_t *m = sptrain_build(tr, NULL, &len, NULL, err, sizeof(err));
        EXPECT(m == NULL);
        EXPECTF(strstr(err, "no text to train the tokenizer on") != NULL, "message: '%s'", err);
        sptrain_free(tr);
    }
    // a cap below the fixed pieces and the characters
    SpTrainer *tr = sptrain_new();
    sptrain_add(tr, "abc", 3, 1);
    char err[256] = "";
    size_t len;
    EXPECT(sptrain_build(tr, &(SpTrainOptions){.max_pieces = 260}, &len, NULL, err, sizeof(err)) == NULL);
    EXPECTF(strstr(err, "cap of 260") != NULL, "message: '%s'", err);
    sptrain_free(tr);
    // the command line says which file
    char *empty = test_write_tmp("empty.jsonl", "\n");
    char args[1024], *out, *e;
    snprintf(args, sizeof(args), "data tokenizer --texts %s --out %s/x.model", empty, test_tmpdir());
    EXPECT(test_run_vlm(args, NULL, &e) != 0);
    EXPECTF(strstr(e, "empty.jsonl") && strstr(e, "no text"), "stderr: %s", e);
    free(e);
    char *bare = path_join(test_tmpdir(), "no_world");  // a folder without any JSON file
    mkdir_p(bare);
    snprintf(args, sizeof(args), "data tokenizer --world %s", bare);
    free(bare);
    EXPECT(test_run_vlm(args, &out, &e) != 0);
    EXPECTF(strstr(e, "no text to train on"), "stderr: %s", e);
    free(out);
    free(e);
    free(empty);
}

// `vlm data synth` writes tokenizer.model (the same bytes for the same world) and its sizes into world.json;
// `vlm tokenize` reads it; the world's prompts in the llava_hf template need no byte piece.
TEST(tokenizer_train_synth_world) {
    const char *dir = test_tmpdir();
    char args[1024], *out, *err;
    for (int k = 0; k < 2; k++) {
        snprintf(args, sizeof(args), "data synth --out %s/tw%d --train 20 --eval 4 --pairs 6 --size 32 --quiet", dir, k);
        EXPECTF(test_run_vlm(args, NULL, &err) == 0, "%s", err);
        free(err);
    }
    char a[600], b[600];
    snprintf(a, sizeof(a), "%s/tw0/tokenizer.model", dir);
    snprintf(b, sizeof(b), "%s/tw1/tokenizer.model", dir);
    EXPECT(test_files_equal(a, b));
    SpTokenizer *t = sptok_load(a);
    EXPECTF(t->n_pieces > 300 && t->n_pieces < 1000, "%d pieces", t->n_pieces);
    snprintf(b, sizeof(b), "%s/tw0/world.json", dir);
    size_t wl;
    char *wtext = read_file(b, &wl);
    cJSON *w = cJSON_Parse(wtext);
    EXPECT_INT_EQ(cJSON_GetObjectItemCaseSensitive(w, "tokenizer_pieces")->valueint, t->n_pieces);
    EXPECT_INT_EQ(cJSON_GetObjectItemCaseSensitive(w, "image_token_index")->valueint, t->image_id);
    int vocab = cJSON_GetObjectItemCaseSensitive(w, "vocab_size")->valueint;
    EXPECT(vocab >= t->vocab_size && vocab % 64 == 0 && vocab < t->vocab_size + 64);
    EXPECT(cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(w, "seed")));  // the rest of world.json is kept
    EXPECT(cJSON_GetObjectItemCaseSensitive(w, "stats") != NULL);
    cJSON_Delete(w);
    free(wtext);
    // the training prompts and answers, as the model sees them
    snprintf(b, sizeof(b), "%s/tw0/sft.jsonl", dir);
    int n;
    cJSON **rows = jsonl_read(b, &n);
    EXPECT(n > 20);
    for (int r = 0; r < n; r++) {
        char text[1024];
        snprintf(text, sizeof(text), "USER: <image>\n%s ASSISTANT: %s ",
                 cJSON_GetObjectItemCaseSensitive(rows[r], "prompt")->valuestring,
                 cJSON_GetObjectItemCaseSensitive(rows[r], "response")->valuestring);
        int *ids, k = sptok_encode(t, text, strlen(text), SPTOK_BOS, &ids, NULL);
        int words = 1;  // the dummy prefix of the text after <image>
        for (const char *p = text; *p; p++) words += *p == ' ';
        for (int i = 0; i < k; i++) EXPECTF(t->types[ids[i]] != SP_PIECE_BYTE, "'%s': a byte piece", text);
        EXPECTF(k <= 2 * words + 6, "'%s': %d tokens", text, k);  // words plus punctuation, not characters
        free(ids);
    }
    jsonl_free(rows, n);
    sptok_free(t);
    // vlm tokenize reads it; <image> is the id after the pieces
    char *in = test_write_tmp("tok_in.jsonl", "{\"text\":\"USER: <image>\\nDescribe the image. ASSISTANT:\"}\n");
    snprintf(args, sizeof(args), "tokenize --tokenizer %s < %s", a, in);
    EXPECTF(test_run_vlm(args, &out, &err) == 0, "%s", err);
    EXPECTF(strstr(out, "\"ids\":[") != NULL, "stdout: %s", out);
    free(out);
    free(err);
    free(in);
    // retraining an existing world folder gives the same file
    snprintf(args, sizeof(args), "data tokenizer --world %s/tw1", dir);
    EXPECTF(test_run_vlm(args, &out, &err) == 0, "%s", err);
    free(out);
    free(err);
    snprintf(b, sizeof(b), "%s/tw1/tokenizer.model", dir);
    EXPECT(test_files_equal(a, b));
}
