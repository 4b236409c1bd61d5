// Hugging Face tokenizer.json (data/tokenizer_hf.c) against the `tokenizers` library's ids
// (tests/ref/make_hf_tokenizer_fixtures.py): the shared Qwen2 file, a variant of it (Llama-3's digits, merges as
// "a b" strings, no ignore_merges, a template post-processor, added tokens with every flag), a tiny file; spans, speed,
// malformed and corrupted files, `vlm tokenize`.
#include <cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"
#include "../data/unicode.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

#define HF_FIXTURES "tests/fixtures/tokenizers/qwen2.jsonl"
#define TINY_JSON "tests/fixtures/tokenizers/tiny_tokenizer.json"

static char *qwen2_path(void) { return path_join(test_shared_data(), "tokenizers/qwen2/tokenizer.json"); }

// The Qwen2 file takes about a second to read: the tests of this file share one copy.
static const HfTokenizer *qwen2(void) {
    static HfTokenizer *t;
    if (!t) {
        char *p = qwen2_path();
        t = hftok_load(p);
        free(p);
    }
    return t;
}

static const cJSON *field(const cJSON *row, const char *key) { return cJSON_GetObjectItemCaseSensitive(row, key); }

static int is_tokenizer(const cJSON *row, const char *name) {
    const cJSON *k = field(row, "tokenizer");
    return cJSON_IsString(k) && !strcmp(k->valuestring, name);
}

// Checks one fixture row: ids (with add_special off, and on where the row has "ids_special"), both decodes, and
// that every span lies inside the text in order.
static int check_row(const HfTokenizer *t, const cJSON *row, int r) {
    size_t len;
    char *text = fixture_text(row, &len);
    char what[160];
    snprintf(what, sizeof(what), "row %d '%.40s'", r, text);
    int *ids, *spans;
    int n = hftok_encode(t, text, len, 0, &ids, &spans);
    int ok = EXPECT_IDS(ids, n, field(row, "ids"), what);
    for (int i = 0; i < n; i++) {
        int a = spans[2 * i], b = spans[2 * i + 1];
        EXPECTF(a >= 0 && a <= b && b <= (int)len && (i == 0 || a >= spans[2 * i - 2]), "%s: token %d spans [%d, %d)", what, i, a, b);
    }
    free(spans);
    if (field(row, "ids_special")) {
        int *ids2;
        int n2 = hftok_encode(t, text, len, 1, &ids2, NULL);
        ok &= EXPECT_IDS(ids2, n2, field(row, "ids_special"), what);
        free(ids2);
    }
    size_t dl;
    char *d = hftok_decode(t, ids, n, 0, &dl);
    const cJSON *hex = field(row, "decoded_hex");
    if (cJSON_IsString(hex)) {
        char *want = xmalloc(strlen(hex->valuestring) / 2 + 1);
        size_t wl = 0;
        for (const char *h = hex->valuestring; h[0] && h[1]; h += 2) { unsigned v; sscanf(h, "%2x", &v); want[wl++] = (char)v; }
        EXPECTF(dl == wl && !memcmp(d, want, wl), "%s: decoded bytes differ", what);
        free(want);
    } else EXPECTF(!strcmp(d, field(row, "decoded")->valuestring), "%s: decoded '%s', expected '%s'", what, d, field(row, "decoded")->valuestring);
    free(d);
    free(ids);
    // decode_skip is of the ids with the post-processor's tokens where the row has them
    n = hftok_encode(t, text, len, field(row, "ids_special") != NULL, &ids, NULL);
    d = hftok_decode(t, ids, n, 1, NULL);
    EXPECTF(!strcmp(d, field(row, "decoded_skip")->valuestring), "%s: decoded (skip special) '%s', expected '%s'", what, d,
            field(row, "decoded_skip")->valuestring);
    free(d);
    free(ids);
    free(text);
    return ok;
}

TEST(tokenizer_hf_load) {
    const HfTokenizer *t = qwen2();
    EXPECT_INT_EQ(t->n_vocab, 151643);
    EXPECT_INT_EQ(t->vocab_size, 151647);
    EXPECT_INT_EQ(t->n_merges, 151387 + 142779);  // the file's merges: every rank-ordered pair of the tiktoken ranks
    EXPECT_INT_EQ(t->n_added, 4);
    EXPECT_INT_EQ(t->nfc, 1);
    EXPECT_INT_EQ(t->max_digits, 1);
    EXPECT_INT_EQ(t->ignore_merges, 1);
    EXPECT_INT_EQ(hftok_token_id(t, "<|endoftext|>"), 151643);
    EXPECT_INT_EQ(hftok_token_id(t, "<|im_start|>"), 151644);
    EXPECT_INT_EQ(hftok_token_id(t, "<|im_end|>"), 151645);
    EXPECT_INT_EQ(hftok_token_id(t, "<image>"), 151646);
    EXPECT_INT_EQ(hftok_token_id(t, "\xC4\xA0the"), 279);  // "Ġthe", as the vocabulary spells " the"
    EXPECT_INT_EQ(hftok_token_id(t, "no such token"), -1);
    for (int b = 0; b < 256; b++) EXPECTF(t->byte_id[b] >= 0, "byte %d has no token", b);
    EXPECT(t->is_special[151646] && !t->is_special[9707]);
    int *ids;
    int n = hftok_encode(t, "Hello world", 11, 0, &ids, NULL);  // the shared data README's check
    EXPECT(n == 2 && ids[0] == 9707 && ids[1] == 1879);
    free(ids);
}

// Every fixture string of the shared file, id for id, and HF's decode.
TEST(tokenizer_hf_fixtures) {
    const HfTokenizer *t = qwen2();
    int n, checked = 0, failed = 0;
    cJSON **rows = jsonl_read(HF_FIXTURES, &n);
    for (int r = 0; r < n; r++) {
        if (!is_tokenizer(rows[r], "qwen2")) continue;
        if (!check_row(t, rows[r], r) && ++failed <= 3) fprintf(stderr, "      text: %s\n", field(rows[r], "text")->valuestring);
        checked++;
    }
    EXPECTF(checked >= 400, "only %d fixture strings", checked);
    jsonl_free(rows, n);
}

// The variant of the shared file the fixture describes, built here the same way the fixture script built it.
TEST(tokenizer_hf_variant) {
    int n;
    cJSON **rows = jsonl_read(HF_FIXTURES, &n);
    const cJSON *fields = NULL;
    for (int r = 0; r < n && !fields; r++) fields = field(rows[r], "variant_fields");
    EXPECT(fields != NULL);
    if (!fields) { jsonl_free(rows, n); return; }
    char *p = qwen2_path();
    size_t len;
    char *text = read_file(p, &len);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    static const char *keys[] = {"pre_tokenizer", "post_processor", "added_tokens"};
    for (int k = 0; k < 3; k++)
        cJSON_ReplaceItemInObjectCaseSensitive(root, keys[k], cJSON_Duplicate(field(fields, keys[k]), 1));
    cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    cJSON_ReplaceItemInObjectCaseSensitive(model, "ignore_merges", cJSON_CreateBool(cJSON_IsTrue(field(fields, "model.ignore_merges"))));
    cJSON *strs = cJSON_CreateArray(), *m;  // the shared file writes [a, b] pairs; the variant "a b" strings
    cJSON_ArrayForEach(m, cJSON_GetObjectItemCaseSensitive(model, "merges")) {
        char buf[512];
        snprintf(buf, sizeof(buf), "%s %s", m->child->valuestring, m->child->next->valuestring);
        cJSON_AddItemToArray(strs, cJSON_CreateString(buf));
    }
    cJSON_ReplaceItemInObjectCaseSensitive(model, "merges", strs);
    char err[1024] = "";
    HfTokenizer *t = hftok_load_json(root, "variant.json", err, sizeof(err));
    cJSON_Delete(root);
    EXPECTF(t != NULL, "the variant does not load: %s", err);
    if (t) {
        EXPECT_INT_EQ(t->max_digits, 3);
        EXPECT_INT_EQ(t->ignore_merges, 0);
        EXPECT(t->n_prefix == 1 && t->prefix[0] == 151644 && t->n_suffix == 1 && t->suffix[0] == 151643);
        int checked = 0;
        for (int r = 0; r < n; r++)
            if (is_tokenizer(rows[r], "variant")) { check_row(t, rows[r], r); checked++; }
        EXPECT(checked >= 35);
        hftok_free(t);
    }
    free(p);
    jsonl_free(rows, n);
}

TEST(tokenizer_hf_tiny) {
    HfTokenizer *t = hftok_load(TINY_JSON);
    EXPECT_INT_EQ(t->vocab_size, 268);
    int n, checked = 0;
    cJSON **rows = jsonl_read(HF_FIXTURES, &n);
    for (int r = 0; r < n; r++)
        if (is_tokenizer(rows[r], "tiny")) { check_row(t, rows[r], r); checked++; }
    EXPECT(checked >= 10);
    jsonl_free(rows, n);
    hftok_free(t);
}

// Spans: what each token covers in the input, exactly where NFC leaves the text alone; a token holding part of a
// character (an emoji's bytes) spans the character; where NFC composed, inside the composed stretch.
TEST(tokenizer_hf_spans) {
    const HfTokenizer *t = qwen2();
    const char *s = "Hi <image>\nthere 😀!";
    int *ids, *sp;
    int n = hftok_encode(t, s, strlen(s), 0, &ids, &sp);
    size_t at = 0;
    for (int i = 0; i < n; i++) {  // the spans tile the text, each one the bytes its token decodes to
        EXPECT_INT_EQ(sp[2 * i], (int)at);
        size_t dl;
        char *d = hftok_decode(t, &ids[i], 1, 0, &dl);
        int whole = !strstr(d, "\xEF\xBF\xBD");  // a lone part of the emoji decodes to U+FFFD
        if (whole) EXPECTF((size_t)(sp[2 * i + 1] - sp[2 * i]) == dl && !memcmp(s + sp[2 * i], d, dl), "token %d: '%s'", i, d);
        else EXPECT(sp[2 * i + 1] - sp[2 * i] == 4);
        if (i + 1 == n || sp[2 * i + 2] != sp[2 * i]) at = (size_t)sp[2 * i + 1];
        free(d);
    }
    EXPECT_INT_EQ((int)at, (int)strlen(s));
    free(ids);
    free(sp);
    s = "x cafe\xCC\x81!";  // "cafe" + U+0301: NFC makes "café"
    n = hftok_encode(t, s, strlen(s), 0, &ids, &sp);
    EXPECT(n >= 2);
    EXPECT_INT_EQ(sp[2 * (n - 1) + 1], (int)strlen(s));
    for (int i = 1; i < n; i++) EXPECT(sp[2 * i] >= 1 && sp[2 * i + 1] <= (int)strlen(s));
    free(ids);
    free(sp);
}

// A few MB of text per second (the priority-queue merge, whole words looked up first); decoding gives it back.
TEST(tokenizer_hf_speed) {
    const HfTokenizer *t = qwen2();
    static const char *const words[] = {"the ", "image ", "shows ", "a ", "red ", "circle ", "left ", "of ", "blue ",
                                  "squares, ", "and ", "3 ", "stars. ", "日本語 ", "😀 ", "\n", "  ", "xyzzyq ",
                                  "don't ", "Qwen2-VL ", "12.5% ", "naïve "};
    size_t len;
    char *text = test_word_text(words, (int)(sizeof(words) / sizeof(words[0])), 2 << 20, &len);
    int *ids;
    hftok_encode(t, text, 4096, 0, &ids, NULL);  // a first call: the allocator settles after loading, not in the timing
    free(ids);
    double t0 = now_seconds();
    int n = hftok_encode(t, text, len, 0, &ids, NULL);
    double dt = now_seconds() - t0;
    EXPECT(n > 300000);
    EXPECTF(dt < 2.0, "2 MB of text took %.3f s", dt);  // about 0.3 s on an idle 2-core machine
    fprintf(stderr, "      2 MB in %.3f s: %.1f MB/s, %d tokens\n", dt, len / 1e6 / dt, n);
    size_t dl;
    char *back = hftok_decode(t, ids, n, 0, &dl);
    EXPECT(dl == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    // one long word without spaces: the merge loop's worst case
    for (size_t i = 0; i < 100000; i++) text[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    t0 = now_seconds();
    n = hftok_encode(t, text, 100000, 0, &ids, NULL);
    dt = now_seconds() - t0;
    EXPECTF(dt < 1.0, "a 100 KB word took %.3f s", dt);
    back = hftok_decode(t, ids, n, 0, &dl);
    EXPECT(dl == 100000 && memcmp(back, text, dl) == 0);
    free(back);
    free(ids);
    free(text);
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed files: each is the tiny file with one thing broken; the message names the file and the field.

static cJSON *tiny_tree(void) {
    size_t len;
    char *text = read_file(TINY_JSON, &len);
    cJSON *root = cJSON_ParseWithLength(text, len);
    free(text);
    return root;
}

// Loads the printed tree as a file named "bad.json"; expects a refusal whose message has `want`.
static void expect_refused(cJSON *root, const char *want, const char *what) {
    char *s = cJSON_PrintUnformatted(root);
    char err[1024] = "";
    HfTokenizer *t = hftok_load_buffer(s, strlen(s), "bad.json", err, sizeof(err));
    EXPECTF(t == NULL, "%s: loaded", what);
    EXPECTF(strstr(err, "bad.json") && strstr(err, want), "%s: message '%s' lacks '%s'", what, err, want);
    hftok_free(t);
    cJSON_free(s);
    cJSON_Delete(root);
}

static cJSON *obj(cJSON *o, const char *path) {  // "model.vocab" -> the item
    char buf[128];
    snprintf(buf, sizeof(buf), "%s", path);
    for (char *k = strtok(buf, "."); k && o; k = strtok(NULL, ".")) o = cJSON_GetObjectItemCaseSensitive(o, k);
    return o;
}

static void set(cJSON *root, const char *parent, const char *key, cJSON *v) {
    cJSON *p = parent ? obj(root, parent) : root;
    if (cJSON_GetObjectItemCaseSensitive(p, key)) cJSON_ReplaceItemInObjectCaseSensitive(p, key, v);
    else cJSON_AddItemToObject(p, key, v);
}

static void set_json(cJSON *root, const char *parent, const char *key, const char *json) {
    set(root, parent, key, cJSON_Parse(json));
}

TEST(tokenizer_hf_bad_files) {
    cJSON *r;
    // the tiny file itself loads
    r = tiny_tree();
    char *s = cJSON_PrintUnformatted(r), err[1024] = "";
    HfTokenizer *ok = hftok_load_buffer(s, strlen(s), "tiny.json", err, sizeof(err));
    EXPECTF(ok != NULL, "tiny: %s", err);
    hftok_free(ok);
    cJSON_free(s);
    cJSON_Delete(r);
    // not JSON, not an object, not UTF-8, text after the document
    const char *texts[][2] = {{"{\"model\": ", "invalid JSON"}, {"[1, 2]", "not a tokenizer.json"}, {"", "invalid JSON"},
                              {"{} x", "invalid JSON"}, {"{\"model\": \"\xff\"}", "not valid UTF-8"}};
    for (int i = 0; i < 5; i++) {
        HfTokenizer *t = hftok_load_buffer(texts[i][0], strlen(texts[i][0]), "bad.json", err, sizeof(err));
        EXPECTF(t == NULL && strstr(err, "bad.json") && strstr(err, texts[i][1]), "text %d: '%s'", i, err);
        hftok_free(t);
    }
    r = tiny_tree(); cJSON_DeleteItemFromObject(r, "model"); expect_refused(r, "model is missing", "no model");
    r = tiny_tree(); set_json(r, "model", "type", "\"WordPiece\""); expect_refused(r, "model.type", "WordPiece");
    r = tiny_tree(); cJSON_DeleteItemFromObject(obj(r, "model"), "vocab"); expect_refused(r, "model.vocab", "no vocab");
    r = tiny_tree(); set_json(r, "model", "vocab", "{}"); expect_refused(r, "model.vocab is empty", "empty vocab");
    r = tiny_tree(); set_json(r, "model.vocab", "zz", "-1"); expect_refused(r, "model.vocab: the id of 'zz'", "negative id");
    r = tiny_tree(); set_json(r, "model.vocab", "zz", "1e12"); expect_refused(r, "not an integer", "huge id");
    r = tiny_tree(); set_json(r, "model.vocab", "zz", "2.5"); expect_refused(r, "not an integer", "fractional id");
    r = tiny_tree(); set_json(r, "model.vocab", "zz", "\"7\""); expect_refused(r, "not an integer", "string id");
    r = tiny_tree(); set_json(r, "model.vocab", "zz", "7"); expect_refused(r, "id 7 is given to both", "duplicate id");
    r = tiny_tree(); set_json(r, "model", "merges", "{}"); expect_refused(r, "model.merges is not an array", "merges object");
    r = tiny_tree(); set_json(r, "model", "merges", "[\"\xC4\xA0t\"]"); expect_refused(r, "model.merges[0]", "merge without space");
    r = tiny_tree(); set_json(r, "model", "merges", "[\"h e r\"]"); expect_refused(r, "model.merges[0]", "three parts");
    r = tiny_tree(); set_json(r, "model", "merges", "[\"h \"]"); expect_refused(r, "model.merges[0]", "empty half");
    r = tiny_tree(); set_json(r, "model", "merges", "[\"h e\", \"zz q\"]"); expect_refused(r, "model.merges[1]: 'zz' is not in model.vocab", "unknown token");
    r = tiny_tree(); set_json(r, "model", "merges", "[\"h t\"]"); expect_refused(r, "makes 'ht', which is not in model.vocab", "merged token missing");
    r = tiny_tree(); set_json(r, "model", "merges", "[[1, 2]]"); expect_refused(r, "model.merges[0] is neither", "numbers");
    r = tiny_tree(); set_json(r, "model", "merges", "[[\"h\"]]"); expect_refused(r, "model.merges[0] is neither", "one-element pair");
    r = tiny_tree(); set_json(r, "model", "dropout", "0.1"); expect_refused(r, "model.dropout", "dropout");
    r = tiny_tree(); set_json(r, "model", "byte_fallback", "true"); expect_refused(r, "model.byte_fallback", "byte fallback");
    r = tiny_tree(); set_json(r, "model", "end_of_word_suffix", "\"</w>\""); expect_refused(r, "model.end_of_word_suffix", "suffix");
    r = tiny_tree(); set_json(r, "model", "unk_token", "\"<unk>\""); expect_refused(r, "model.unk_token '<unk>'", "unk missing");
    r = tiny_tree(); set_json(r, "model", "ignore_merges", "\"yes\""); expect_refused(r, "model.ignore_merges", "bool");
    r = tiny_tree(); set_json(r, NULL, "normalizer", "{\"type\": \"NFKC\"}"); expect_refused(r, "normalizer: type 'NFKC'", "NFKC");
    r = tiny_tree(); set_json(r, NULL, "pre_tokenizer", "null"); expect_refused(r, "pre_tokenizer must be", "no pre-tokenizer");
    r = tiny_tree();
    set_json(r, NULL, "pre_tokenizer", "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"use_regex\": true}");
    expect_refused(r, "pre_tokenizer must be", "GPT-2 ByteLevel");
    r = tiny_tree();
    cJSON_ReplaceItemInArray(obj(r, "pre_tokenizer.pretokenizers"), 0,
                             cJSON_Parse("{\"type\": \"Split\", \"pattern\": {\"Regex\": \"\\\\s+\"}, \"behavior\": \"Isolated\", \"invert\": false}"));
    expect_refused(r, "pre_tokenizer: the Split regex '\\s+'", "other regex");
    r = tiny_tree(); set_json(r, NULL, "pre_tokenizer", "{\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Whitespace\"}, {\"type\": \"ByteLevel\"}]}");
    expect_refused(r, "pre_tokenizer must be", "Whitespace");
    r = tiny_tree(); set_json(cJSON_GetArrayItem(obj(r, "pre_tokenizer.pretokenizers"), 0), NULL, "behavior", "\"Removed\"");
    expect_refused(r, "Split behavior", "Removed");
    r = tiny_tree(); set_json(cJSON_GetArrayItem(obj(r, "pre_tokenizer.pretokenizers"), 1), NULL, "add_prefix_space", "true");
    expect_refused(r, "add_prefix_space", "prefix space");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 99999999, \"content\": \"<x>\"}]"); expect_refused(r, "added_tokens[0].id", "added id");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 5, \"content\": \"\"}]"); expect_refused(r, "added_tokens[0].content", "empty content");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 5, \"content\": \"<x>\", \"special\": \"yes\"}]"); expect_refused(r, "added_tokens[0].special", "bool flag");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 266, \"content\": \"<x>\"}, {\"id\": 266, \"content\": \"<y>\"}]"); expect_refused(r, "added_tokens[1]: id 266", "same id");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 266, \"content\": \"<x>\"}, {\"id\": 267, \"content\": \"<x>\"}]"); expect_refused(r, "added_tokens[1]: '<x>'", "same content");
    // ids the library would not give (it numbers added tokens itself: a vocabulary entry's id, else the next one)
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 300, \"content\": \"<x>\"}]"); expect_refused(r, "has id 300, but the tokenizers library gives it 266", "gap");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "[{\"id\": 266, \"content\": \"he\"}]"); expect_refused(r, "gives it 257 (the id of the same string", "vocabulary string");
    r = tiny_tree(); set_json(r, NULL, "added_tokens", "{}"); expect_refused(r, "added_tokens is not an array", "added object");
    r = tiny_tree(); set_json(r, NULL, "decoder", "{\"type\": \"WordPiece\"}"); expect_refused(r, "decoder: type 'WordPiece'", "decoder");
    r = tiny_tree(); set_json(r, NULL, "decoder", "null"); expect_refused(r, "decoder", "no decoder");
    r = tiny_tree(); set_json(r, NULL, "post_processor", "{\"type\": \"BertProcessing\"}"); expect_refused(r, "post_processor: type 'BertProcessing'", "bert");
    r = tiny_tree();
    set_json(r, NULL, "post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}, "
             "{\"Sequence\": {\"id\": \"A\"}}], \"special_tokens\": {\"<s>\": {\"ids\": [5000]}}}");
    expect_refused(r, "post_processor: an id of special token '<s>'", "template id out of range");
    r = tiny_tree();
    set_json(r, NULL, "post_processor", "{\"type\": \"TemplateProcessing\", \"single\": [{\"SpecialToken\": {\"id\": \"<s>\"}}], "
             "\"special_tokens\": {\"<s>\": {\"ids\": [1]}}}");
    expect_refused(r, "has no $A", "template without $A");
    r = tiny_tree(); set_json(r, NULL, "truncation", "{\"max_length\": 8}"); expect_refused(r, "truncation", "truncation");
    r = tiny_tree(); set_json(r, NULL, "padding", "{\"strategy\": \"BatchLongest\"}"); expect_refused(r, "padding", "padding");
}

// Random byte corruption of the tiny file: a refusal naming the file, or a tokenizer that encodes and decodes text
// with every id in range.
TEST(tokenizer_hf_corrupt_files) {
    size_t len;
    char *data = read_file(TINY_JSON, &len), *copy = xmalloc(len + 1);
    uint32_t rng = 424242u;
    int loaded = 0, refused = 0;
    for (int trial = 0; trial < 300; trial++) {
        memcpy(copy, data, len + 1);
        for (int k = 0; k < 1 + trial % 3; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t at = (rng >> 4) % len;
            rng = rng * 1664525u + 1013904223u;
            static const char pick[] = "\"{}[],: 0123456789abtehnul\\\xC4\xA0";
            copy[at] = (trial & 1) ? pick[(rng >> 20) % (sizeof(pick) - 1)] : (char)(rng >> 24);
        }
        char err[1024] = "";
        HfTokenizer *t = hftok_load_buffer(copy, len, "corrupt.json", err, sizeof(err));
        if (!t) {
            refused++;
            EXPECTF(strstr(err, "corrupt.json") != NULL, "trial %d: message '%s'", trial, err);
            continue;
        }
        loaded++;
        static const char text[] = "the cat <image> sings\n\n  in 2024 \xF0\x9F\x98\x80 cafe\xCC\x81<|endoftext|>";
        int *ids;
        int n = hftok_encode(t, text, sizeof(text) - 1, 1, &ids, NULL);
        for (int i = 0; i < n; i++) EXPECT(ids[i] >= 0 && ids[i] < t->vocab_size);
        free(hftok_decode(t, ids, n, 0, NULL));
        free(ids);
        hftok_free(t);
    }
    EXPECTF(loaded > 0 && refused > 0, "loaded %d, refused %d: both paths should be exercised", loaded, refused);
    free(copy);
    free(data);
}

// `vlm tokenize` on a tokenizer.json: the fixture's ids, --decode back, and a bad file's message and exit status.
TEST(tokenizer_hf_cli) {
    char *p = qwen2_path();
    char *in = test_write_tmp("hf_in.jsonl", "{\"text\": \"Hello world\"}\n{\"text\": \"<|im_start|>user\\n<image>\\nHi 😀<|im_end|>\"}\n");
    char cmd[1024], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s < %s", p, in);
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d: %s", rc, errs);
    EXPECTF(out && !strcmp(out, "{\"ids\":[9707,1879]}\n{\"ids\":[151644,872,198,151646,198,13048,90316,151645]}\n"), "stdout: %s", out);
    free(errs);
    char *ids = test_write_tmp("hf_ids.jsonl", out);
    free(out);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --decode --keep-special < %s", p, ids);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0 && out && strstr(out, "{\"text\":\"Hello world\"}\n") && strstr(out, "<|im_start|>user\\n<image>\\nHi 😀<|im_end|>"),
            "decode: rc %d, stdout %s, stderr %s", rc, out, errs);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --decode < %s", p, ids);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0 && out && strstr(out, "{\"text\":\"user\\n\\nHi 😀\"}"), "decode skipping specials: %s", out);
    free(out); free(errs);
    char *bad = test_write_tmp("broken_tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": [\"a b\"]}}");
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s < %s", bad, in);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECT(rc != 0);
    EXPECTF(strstr(errs, "broken_tokenizer.json: model.merges[0]: 'b' is not in model.vocab"), "stderr: %s", errs);
    free(out); free(errs);
    free(bad); free(ids); free(in); free(p);
}

// A model folder with a tokenizer.json and no tokenizer.model: the loaders find it (data/tokenizer.h), with the end
// token of the tokenizer_config.json beside it. `vlm logprobs` on the llava_tok fixture model with the tiny file as
// its tokenizer counts each response in the tiny file's tokens; a folder with both files keeps tokenizer.model.
TEST(tokenizer_hf_model_folder) {
    char dir[512], cmd[2048];
    snprintf(dir, sizeof(dir), "%s/hf_model", test_tmpdir());
    char *cwd = realpath(".", NULL);
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && for f in config.json model.safetensors preprocessor_config.json; do "
             "ln -s %s/tests/fixtures/models/llava_tok/$f %s/$f; done", dir, cwd, dir);
    EXPECT(test_shell(cmd) == 0);
    EXPECT(tokenizer_find(dir) == NULL);
    snprintf(cmd, sizeof(cmd), "cp " TINY_JSON " %s/tokenizer.json", dir);
    EXPECT(test_shell(cmd) == 0);
    char *found = tokenizer_find(dir);
    EXPECT(found && strstr(found, "/tokenizer.json"));
    free(found);
    // without tokenizer_config.json there is no end token: a response's EOS is an error that says so
    snprintf(cmd, sizeof(cmd), "logprobs --model %s --data tests/fixtures/models/llava_tok/records.jsonl --device cpu", dir);
    char *out, *errs;
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc != 0 && strstr(errs, "tokenizer.json: the tokenizer has no end token"), "rc %d, stderr %s", rc, errs);
    free(out); free(errs);
    char cfg[600];
    snprintf(cfg, sizeof(cfg), "%s/tokenizer_config.json", dir);
    const char *cfg_text = "{\"bos_token\": null, \"eos_token\": {\"content\": \"<|endoftext|>\"}}";
    write_file_atomic(cfg, cfg_text, strlen(cfg_text));
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d: %s", rc, errs);
    // the response lengths are the tiny file's: encode(response) + EOS
    char *tp = path_join(dir, "tokenizer.json");
    Tokenizer *tok = tokenizer_load(tp);
    EXPECT_INT_EQ(tok->eos_id, 266);
    EXPECT_INT_EQ(tok->bos_id, -1);
    EXPECT_INT_EQ(tok->image_id, 267);
    static const char *responses[] = {"It is red.", "No, there is no dog.", " Two squares, one star (yellow) and 3 circles!"};
    const char *p = out;
    for (int i = 0; i < 3; i++) {
        int *ids, n = tokenizer_encode(tok, responses[i], strlen(responses[i]), TOK_EOS, &ids, NULL), got = -1;
        EXPECT_INT_EQ(ids[n - 1], 266);
        p = p ? strstr(p, "\"n_response\": ") : NULL;
        if (p) { got = atoi(p + 14); p++; }
        EXPECTF(got == n, "record %d: n_response %d, the tiny tokenizer gives %d", i, got, n);
        free(ids);
    }
    free(out); free(errs);
    tokenizer_free(tok);
    // both files: tokenizer.model wins
    char *shared = realpath(test_shared_data(), NULL);
    snprintf(cmd, sizeof(cmd), "ln -s %s/tokenizers/llama2_tokenizer.model %s/tokenizer.model", shared, dir);
    free(shared);
    EXPECT(test_shell(cmd) == 0);
    found = tokenizer_find(dir);
    EXPECT(found && strstr(found, "/tokenizer.model"));
    free(found);
    free(tp);
    free(cwd);
}
