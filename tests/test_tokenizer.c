// Tokenizers against reference ids from Python (tests/ref/make_tokenizer_fixtures.py): the LLaMA SentencePiece
// tokenizer (sentencepiece + llava-hf's HF tokenizer), the CLIP BPE (openai/CLIP's algorithm), `vlm tokenize`.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer_clip.h"
#include "../data/tokenizer_sp.h"
#include "../data/unicode.h"
#include "../util/common.h"
#include "test.h"
#include "test_jsonl.h"

#define SP_FIXTURES "tests/fixtures/tokenizers/sp.jsonl"
#define CLIP_FIXTURES "tests/fixtures/tokenizers/clip.jsonl"

static char *sp_model_path(void) { return path_join(test_shared_data(), "tokenizers/llama2_tokenizer.model"); }
static char *clip_vocab_path(void) { return path_join(test_shared_data(), "tokenizers/clip_bpe_simple_vocab_16e6.txt.gz"); }

static SpTokenizer *load_sp(void) {
    char *p = sp_model_path();
    SpTokenizer *t = sptok_load(p);
    free(p);
    return t;
}

static ClipTokenizer *load_clip(void) {
    char *p = clip_vocab_path();
    ClipTokenizer *t = cliptok_load(p);
    free(p);
    return t;
}

static int encode_str(const SpTokenizer *t, const char *s, int flags, int **ids) {
    return sptok_encode(t, s, strlen(s), flags, ids, NULL);
}

// ---------------------------------------------------------------------------------------------------------------
// SentencePiece

TEST(tokenizer_sp_load) {
    SpTokenizer *t = load_sp();
    EXPECT_INT_EQ(t->n_pieces, 32000);
    EXPECT_INT_EQ(t->vocab_size, 32002);
    EXPECT_INT_EQ(t->unk_id, 0);
    EXPECT_INT_EQ(t->bos_id, 1);
    EXPECT_INT_EQ(t->eos_id, 2);
    EXPECT_INT_EQ(t->pad_id, -1);
    EXPECT_INT_EQ(t->image_id, 32000);
    EXPECT_INT_EQ(t->llava_pad_id, 32001);
    EXPECT_INT_EQ(t->add_dummy_prefix, 1);
    EXPECT_INT_EQ(t->remove_extra_whitespaces, 0);
    EXPECT_INT_EQ(t->byte_id['\n'], 13);
    EXPECT_INT_EQ(t->byte_id[0], 3);
    EXPECT_INT_EQ(t->byte_id[255], 258);
    EXPECT_INT_EQ(sptok_piece_id(t, "\xE2\x96\x81"), 29871);  // "▁"
    EXPECT_INT_EQ(sptok_piece_id(t, "<image>"), 32000);
    EXPECT_INT_EQ(t->types[1], SP_PIECE_CONTROL);
    EXPECT_INT_EQ(t->types[259], SP_PIECE_NORMAL);
    sptok_free(t);
}

// Every fixture string: sentencepiece's encode() (SPTOK_RAW), llava-hf's tokenizer (default), with BOS.
TEST(tokenizer_sp_fixtures) {
    SpTokenizer *t = load_sp();
    int n;
    cJSON **rows = jsonl_read(SP_FIXTURES, &n);
    EXPECT(n > 300);
    int checked = 0;
    for (int r = 0; r < n; r++) {
        if (cJSON_GetObjectItemCaseSensitive(rows[r], "decode_only")) continue;
        size_t len;
        char *text = fixture_text(rows[r], &len);
        int *ids, k;
        char what[160];
        snprintf(what, sizeof(what), "row %d %.40s", r, text);
        k = sptok_encode(t, text, len, SPTOK_RAW, &ids, NULL);
        EXPECT_IDS(ids, k, cJSON_GetObjectItemCaseSensitive(rows[r], "sp"), what);
        free(ids);
        k = sptok_encode(t, text, len, 0, &ids, NULL);
        EXPECT_IDS(ids, k, cJSON_GetObjectItemCaseSensitive(rows[r], "hf"), what);
        free(ids);
        k = sptok_encode(t, text, len, SPTOK_BOS, &ids, NULL);
        EXPECT_IDS(ids, k, cJSON_GetObjectItemCaseSensitive(rows[r], "hf_bos"), what);
        free(ids);
        free(text);
        checked++;
    }
    EXPECT(checked > 300);
    jsonl_free(rows, n);
    sptok_free(t);
}

// Decoding: HF's decode (skip_special_tokens True and False) of every fixture, plus id lists that are no
// text's encoding (broken UTF-8 byte runs); plain text round-trips exactly.
TEST(tokenizer_sp_decode) {
    SpTokenizer *t = load_sp();
    int n;
    cJSON **rows = jsonl_read(SP_FIXTURES, &n);
    int roundtrips = 0;
    for (int r = 0; r < n; r++) {
        int k;
        int *ids = json_ints(cJSON_GetObjectItemCaseSensitive(rows[r], "hf_bos"), &k);
        char *d = sptok_decode(t, ids, k, 1, NULL);
        const char *want = cJSON_GetObjectItemCaseSensitive(rows[r], "decoded")->valuestring;
        EXPECTF(!strcmp(d, want), "row %d: decoded '%s', expected '%s'", r, d, want);
        free(d);
        d = sptok_decode(t, ids, k, 0, NULL);
        want = cJSON_GetObjectItemCaseSensitive(rows[r], "decoded_special")->valuestring;
        EXPECTF(!strcmp(d, want), "row %d: decoded with specials '%s', expected '%s'", r, d, want);
        free(d);
        free(ids);
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(rows[r], "text");
        if (text && !strchr(text->valuestring, '<') && !strstr(text->valuestring, "\xE2\x96\x81") &&
            !cJSON_GetObjectItemCaseSensitive(rows[r], "text_hex")) {
            ids = json_ints(cJSON_GetObjectItemCaseSensitive(rows[r], "sp"), &k);
            d = sptok_decode(t, ids, k, 1, NULL);
            EXPECTF(!strcmp(d, text->valuestring), "row %d: round trip gave '%s'", r, d);
            free(d);
            free(ids);
            roundtrips++;
        }
    }
    EXPECT(roundtrips > 250);
    jsonl_free(rows, n);
    sptok_free(t);
}

// The LLaVA prompt in the HF style, frozen: transformers tests/models/llava/test_processor_llava.py expects these
// ids, and vLLM's LLaVA docstring shows the second list (llava.md §3.4: "▁" after <image> comes from the legacy
// per-segment dummy prefix).
TEST(tokenizer_sp_llava_prompt) {
    SpTokenizer *t = load_sp();
    static const int want1[] = {1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 338, 4318, 297, 445, 1967,
                                29973, 319, 1799, 9047, 13566, 29901};
    static const int want2[] = {1, 3148, 1001, 29901, 29871, 32000, 29871, 13, 5618, 29915, 29879, 278, 2793, 310,
                                278, 1967, 29973, 13, 22933, 9047, 13566, 29901};
    int *ids;
    int n = encode_str(t, "USER: <image>\nWhat is shown in this image? ASSISTANT:", SPTOK_BOS, &ids);
    EXPECT_INT_EQ(n, (int)(sizeof(want1) / sizeof(int)));
    for (int i = 0; i < n && i < (int)(sizeof(want1) / sizeof(int)); i++) EXPECT_INT_EQ(ids[i], want1[i]);
    free(ids);
    n = encode_str(t, "USER: <image>\nWhat's the content of the image?\nASSISTANT:", SPTOK_BOS, &ids);
    EXPECT_INT_EQ(n, (int)(sizeof(want2) / sizeof(int)));
    for (int i = 0; i < n && i < (int)(sizeof(want2) / sizeof(int)); i++) EXPECT_INT_EQ(ids[i], want2[i]);
    free(ids);
    // Without special-token parsing "<image>" is ordinary text: < image >
    n = encode_str(t, "<image>", SPTOK_RAW, &ids);
    EXPECT_INT_EQ(n, 3);
    EXPECT_INT_EQ(ids[0], 529);
    free(ids);
    sptok_free(t);
}

TEST(tokenizer_sp_special_tokens) {
    SpTokenizer *t = load_sp();
    int *ids;
    int n = encode_str(t, "a</s>b <s> c", SPTOK_BOS, &ids);  // HF: [1, 263, 2, 289, 29871, 1, 29871, 274]
    static const int want[] = {1, 263, 2, 289, 29871, 1, 29871, 274};
    EXPECT_INT_EQ(n, 8);
    for (int i = 0; i < n && i < 8; i++) EXPECT_INT_EQ(ids[i], want[i]);
    free(ids);
    n = encode_str(t, "<image><pad><unk>", 0, &ids);
    EXPECT_INT_EQ(n, 3);
    if (n == 3) { EXPECT_INT_EQ(ids[0], 32000); EXPECT_INT_EQ(ids[1], 32001); EXPECT_INT_EQ(ids[2], 0); }
    free(ids);
    n = encode_str(t, "", SPTOK_BOS | SPTOK_EOS, &ids);
    EXPECT_INT_EQ(n, 2);
    if (n == 2) { EXPECT_INT_EQ(ids[0], 1); EXPECT_INT_EQ(ids[1], 2); }
    free(ids);
    n = encode_str(t, "", 0, &ids);
    EXPECT_INT_EQ(n, 0);
    free(ids);
    sptok_free(t);
}

// Source spans: what each token covers in the text (the chat masks are built from them).
TEST(tokenizer_sp_spans) {
    SpTokenizer *t = load_sp();
    const char *s = "Hi <image>\nok";
    int *ids, *sp;
    int n = sptok_encode(t, s, strlen(s), SPTOK_BOS, &ids, &sp);
    // <s> ▁Hi ▁ <image> ▁ \n ok
    EXPECT_INT_EQ(n, 7);
    if (n == 7) {
        EXPECT_INT_EQ(ids[3], 32000);
        EXPECT_INT_EQ(sp[0], 0); EXPECT_INT_EQ(sp[1], 0);   // BOS: empty
        EXPECT_INT_EQ(sp[2], 0); EXPECT_INT_EQ(sp[3], 2);   // "▁Hi" <- "Hi" (its ▁ is the dummy prefix)
        EXPECT_INT_EQ(sp[4], 2); EXPECT_INT_EQ(sp[5], 3);   // "▁" <- " "
        EXPECT_INT_EQ(sp[6], 3); EXPECT_INT_EQ(sp[7], 10);  // <image>
        EXPECT_INT_EQ(sp[8], 10); EXPECT_INT_EQ(sp[9], 10); // dummy prefix of the next segment: empty
        EXPECT_INT_EQ(sp[10], 10); EXPECT_INT_EQ(sp[11], 11);
        EXPECT_INT_EQ(sp[12], 11); EXPECT_INT_EQ(sp[13], 13);
    }
    free(ids);
    free(sp);
    // Byte fallback: every byte token of a character spans that character.
    s = "a\xF0\x9F\x98\x80";  // "a😀"
    n = sptok_encode(t, s, strlen(s), 0, &ids, &sp);
    EXPECT(n >= 5);
    for (int i = n - 4; i < n && i >= 0; i++) { EXPECT_INT_EQ(sp[2 * i], 1); EXPECT_INT_EQ(sp[2 * i + 1], 5); }
    free(ids);
    free(sp);
    sptok_free(t);
}

// 100 KB of text must tokenize well under a second (the merge loop is a priority queue, O(n log n)).
TEST(tokenizer_sp_speed) {
    SpTokenizer *t = load_sp();
    static const char *const words[] = {"the ", "image ", "shows ", "a ", "red ", "circle ", "left ", "of ", "blue ",
                                  "squares, ", "and ", "3 ", "stars. ", "日本語 ", "😀 ", "\n", "  ", "xyzzyq "};
    size_t len;
    char *text = test_word_text(words, (int)(sizeof(words) / sizeof(words[0])), 100 * 1024, &len);
    // One long word too: no spaces at all, the worst case for a quadratic merge loop.
    char *word = xmalloc(100 * 1024 + 1);
    for (int i = 0; i < 100 * 1024; i++) word[i] = "abcdefghij"[(i * 7 + i / 13) % 10];
    double t0 = now_seconds();
    int *ids;
    int n = sptok_encode(t, text, len, SPTOK_BOS, &ids, NULL);
    double dt = now_seconds() - t0;
    EXPECT(n > 10000);
    EXPECTF(dt < 1.0, "100 KB of text took %.3f s", dt);
    char *back = sptok_decode(t, ids, n, 1, NULL);
    EXPECT(strlen(back) == len && memcmp(back, text, len) == 0);
    free(back);
    free(ids);
    t0 = now_seconds();
    n = sptok_encode(t, word, 100 * 1024, 0, &ids, NULL);
    dt = now_seconds() - t0;
    EXPECTF(dt < 1.0, "a 100 KB word took %.3f s", dt);
    free(ids);
    free(word);
    free(text);
    sptok_free(t);
}

// Malformed .model files give a message that names the file, never a crash.
TEST(tokenizer_sp_bad_model) {
    char *p = sp_model_path();
    size_t len;
    char *data = read_file(p, &len);
    char err[512];
    // truncated at several places (inside a varint, inside a piece, inside the trainer spec)
    size_t cuts[] = {1, 2, 7, 1000, 100000, len / 2, len - 3};
    for (size_t i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++) {
        SpTokenizer *t = sptok_load_buffer((const uint8_t *)data, cuts[i], "bad.model", err, sizeof(err));
        EXPECTF(t == NULL, "a file cut to %zu bytes loaded", cuts[i]);
        sptok_free(t);
        EXPECTF(strstr(err, "bad.model") != NULL, "message does not name the file: %s", err);
    }
    const char *garbage[] = {"", "hello world, this is not a protobuf", "\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff",
                             "\x0a\x05\x0a\x03\x61\x62\x63"};  // one piece "abc" and nothing else
    for (size_t i = 0; i < sizeof(garbage) / sizeof(garbage[0]); i++) {
        SpTokenizer *t = sptok_load_buffer((const uint8_t *)garbage[i], strlen(garbage[i]), "bad.model", err, sizeof(err));
        EXPECTF(t == NULL, "garbage %zu loaded", i);
        sptok_free(t);
        EXPECTF(strstr(err, "bad.model: not a valid SentencePiece model") != NULL, "message: %s", err);
    }
    // The CLI: non-zero exit and a message naming the file.
    char *bad = path_join(test_tmpdir(), "truncated.model");
    write_file_atomic(bad, data, 5000);
    char cmd[600], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --kind sp </dev/null", bad);
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECT(rc != 0);
    EXPECTF(strstr(errs, "truncated.model") && strstr(errs, "not a valid SentencePiece model"), "stderr: %s", errs);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s/missing.model </dev/null", test_tmpdir());
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECT(rc != 0);
    EXPECTF(strstr(errs, "missing.model") != NULL, "stderr: %s", errs);
    free(out); free(errs);
    free(bad);
    free(data);
    free(p);
}

// Random byte corruption: either a model that still encodes and decodes without memory errors, or a message.
TEST(tokenizer_sp_corrupt_model) {
    char *p = sp_model_path();
    size_t len;
    char *data = read_file(p, &len);
    uint8_t *copy = xmalloc(len);
    uint32_t rng = 987654321u;
    int loaded = 0, rejected = 0;
    for (int trial = 0; trial < 40; trial++) {
        memcpy(copy, data, len);
        for (int k = 0; k < 1 + trial % 5; k++) {
            rng = rng * 1664525u + 1013904223u;
            size_t at = (rng >> 4) % (trial < 20 ? 4096 : len);  // the first pieces and the header, then anywhere
            rng = rng * 1664525u + 1013904223u;
            copy[at] = (uint8_t)(rng >> 24);
        }
        char err[512] = "";
        SpTokenizer *t = sptok_load_buffer(copy, len, "corrupt.model", err, sizeof(err));
        if (!t) {
            rejected++;
            EXPECTF(strstr(err, "corrupt.model: not a valid SentencePiece model") != NULL, "message: %s", err);
            continue;
        }
        loaded++;
        const char *s = "USER: <image>\nWhat is shown in this image? 日本語 😀 ASSISTANT: A cat.</s>";
        int *ids;
        int n = sptok_encode(t, s, strlen(s), SPTOK_BOS, &ids, NULL);
        for (int i = 0; i < n; i++) EXPECT(ids[i] >= 0 && ids[i] < t->vocab_size);
        free(sptok_decode(t, ids, n, 0, NULL));
        free(ids);
        sptok_free(t);
    }
    EXPECT(loaded + rejected == 40);
    EXPECTF(loaded > 0 && rejected > 0, "loaded %d, rejected %d: both paths should be exercised", loaded, rejected);
    free(copy);
    free(data);
    free(p);
}

// ---------------------------------------------------------------------------------------------------------------
// CLIP

TEST(tokenizer_clip_fixtures) {
    ClipTokenizer *t = load_clip();
    int n;
    cJSON **rows = jsonl_read(CLIP_FIXTURES, &n);
    EXPECT(n > 300);
    for (int r = 0; r < n; r++) {
        const char *text = cJSON_GetObjectItemCaseSensitive(rows[r], "text")->valuestring;
        char what[160];
        snprintf(what, sizeof(what), "row %d '%.40s' (cleaned '%.40s')", r, text, "");
        int *ids;
        int k = cliptok_encode(t, text, strlen(text), &ids);
        if (!EXPECT_IDS(ids, k, cJSON_GetObjectItemCaseSensitive(rows[r], "ids"), what)) {
            char *c = cliptok_clean(text, strlen(text));
            fprintf(stderr, "      cleaned: '%s'\n", c);
            free(c);
        }
        char *d = cliptok_decode(t, ids, k, 0, NULL);
        const char *want = cJSON_GetObjectItemCaseSensitive(rows[r], "decoded")->valuestring;
        EXPECTF(!strcmp(d, want), "row %d: decoded '%s', expected '%s'", r, d, want);
        free(d);
        free(ids);
        int ctx[CLIP_CONTEXT];
        cliptok_tokenize(t, text, strlen(text), CLIP_CONTEXT, 0, ctx);
        EXPECT_IDS(ctx, CLIP_CONTEXT, cJSON_GetObjectItemCaseSensitive(rows[r], "ctx77"), what);
    }
    jsonl_free(rows, n);
    cliptok_free(t);
}

TEST(tokenizer_clip_basics) {
    ClipTokenizer *t = load_clip();
    EXPECT_INT_EQ(t->vocab_size, 49408);
    EXPECT(!strcmp(t->tokens[CLIP_SOT], "<|startoftext|>"));
    EXPECT(!strcmp(t->tokens[CLIP_EOT], "<|endoftext|>"));
    EXPECT(!strcmp(t->tokens[0], "!"));           // the printable bytes come first
    EXPECT(!strcmp(t->tokens[256], "!</w>"));
    EXPECT(!strcmp(t->tokens[512], "in"));        // first merge "i n"
    EXPECT_INT_EQ(t->byte_id['!'], 0);
    int *ids;
    int n = cliptok_encode(t, "a photo of a cat", 16, &ids);
    // "a</w>" "photo</w>" "of</w>" "a</w>" "cat</w>"
    EXPECT_INT_EQ(n, 5);
    if (n == 5) { EXPECT_INT_EQ(ids[0], 320); EXPECT_INT_EQ(ids[1], 1125); EXPECT_INT_EQ(ids[4], 2368); }
    free(ids);
    n = cliptok_encode(t, "<|startoftext|>hi<|endoftext|>", 30, &ids);
    EXPECT(n == 3 && ids[0] == CLIP_SOT && ids[2] == CLIP_EOT);
    free(ids);
    // Context: short text is padded, long text cut with the last id forced to <|endoftext|>.
    int ctx[CLIP_CONTEXT];
    int used = cliptok_tokenize(t, "a cat", 5, CLIP_CONTEXT, 0, ctx);
    EXPECT_INT_EQ(used, 4);
    EXPECT(ctx[0] == CLIP_SOT && ctx[3] == CLIP_EOT && ctx[4] == 0 && ctx[76] == 0);
    cliptok_tokenize(t, "a cat", 5, CLIP_CONTEXT, CLIP_EOT, ctx);
    EXPECT(ctx[4] == CLIP_EOT && ctx[76] == CLIP_EOT);
    char longtext[2000] = "";
    for (int i = 0; i < 100; i++) strcat(longtext, "dog ");
    used = cliptok_tokenize(t, longtext, strlen(longtext), CLIP_CONTEXT, 0, ctx);
    EXPECT_INT_EQ(used, CLIP_CONTEXT);
    EXPECT(ctx[0] == CLIP_SOT && ctx[75] != CLIP_EOT && ctx[76] == CLIP_EOT);
    // Cleaning
    char *c = cliptok_clean("  Fish &amp; CHIPS\n\tÉTÉ  ", 27);
    EXPECTF(!strcmp(c, "fish & chips été"), "cleaned '%s'", c);
    free(c);
    c = cliptok_clean("ΣΊΣΥΦΟΣ", strlen("ΣΊΣΥΦΟΣ"));
    EXPECTF(!strcmp(c, "σίσυφος"), "cleaned '%s'", c);
    free(c);
    cliptok_free(t);
}

TEST(tokenizer_clip_bad_file) {
    char *bad = path_join(test_tmpdir(), "notclip.txt.gz");
    write_file_atomic(bad, "#version: 0.2\ni n\n", 18);
    char cmd[600], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --kind clip </dev/null", bad);
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECT(rc != 0);
    EXPECTF(strstr(errs, "notclip.txt.gz") && strstr(errs, "merge lines"), "stderr: %s", errs);
    free(out); free(errs); free(bad);
}

TEST(tokenizer_utf8) {
    // Python's errors="replace": one U+FFFD per maximal ill-formed subpart.
    StrBuf b = {0};
    utf8_sanitize(&b, "a\xF0\x9F\x98" "b\xC3\x28\xED\xA0\x80z", 11);
    EXPECTF(!strcmp(b.data, "a\xEF\xBF\xBD" "b\xEF\xBF\xBD(\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBDz"), "got '%s'", b.data);
    strbuf_free(&b);
    EXPECT(utf8_valid("\xEF\xBF\xBD ok", 6));
    EXPECT(!utf8_valid("\xC0\x80", 2));
    EXPECT(uni_is_letter(0x65E5) && uni_is_letter(0x00E9) && !uni_is_letter('1') && uni_is_number(0x0663));
    EXPECT(uni_lower1(0x0410) == 0x0430 && uni_lower1(0x212A) == 'k' && uni_lower1('A') == 'a');
    EXPECT(uni_compose('e', 0x300) == 0xE8 && uni_compose(0x1100, 0x1161) == 0xAC00);
}

// ---------------------------------------------------------------------------------------------------------------
// vlm tokenize

TEST(tokenizer_cli_encode) {
    char *model = sp_model_path();
    char *in = test_write_tmp("tok_in.jsonl", "{\"text\": \"Hello world\"}\n\n{\"text\": \"USER: <image>\\nHi\"}\n"
                                         "{\"text\": \"\"}\n");
    char cmd[800], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --bos < %s", model, in);
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d, stderr: %s", rc, errs);
    EXPECTF(!strcmp(out, "{\"ids\":[1,15043,3186]}\n{\"ids\":[1,3148,1001,29901,29871,32000,29871,13,18567]}\n"
                         "{\"ids\":[1]}\n"), "stdout: %s", out);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --raw --eos < %s", model, in);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d, stderr: %s", rc, errs);
    EXPECTF(!strncmp(out, "{\"ids\":[15043,3186,2]}\n{\"ids\":[3148,1001,29901,529,3027,29958", 60), "stdout: %s", out);
    free(out); free(errs);
    // decode
    char *din = test_write_tmp("tok_dec.jsonl", "{\"ids\": [1, 15043, 3186]}\n{\"ids\": [3148, 1001, 29901, 29871, 32000, 29871, 13]}\n");
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --decode < %s", model, din);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d, stderr: %s", rc, errs);
    EXPECTF(!strcmp(out, "{\"text\":\"Hello world\"}\n{\"text\":\"USER:  \\n\"}\n"), "stdout: %s", out);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --decode --keep-special < %s", model, din);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(!strcmp(out, "{\"text\":\"<s> Hello world\"}\n{\"text\":\"USER: <image> \\n\"}\n"), "stdout: %s", out);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --help");
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECT(rc == 0 && strstr(out, "--tokenizer FILE"));
    free(out); free(errs);
    free(din); free(in); free(model);
}

TEST(tokenizer_cli_clip) {
    char *vocab = clip_vocab_path();
    char *in = test_write_tmp("clip_in.jsonl", "{\"text\": \"A photo of a cat\"}\n");
    char cmd[800], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --bos --eos < %s", vocab, in);
    int rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0, "rc %d, stderr: %s", rc, errs);
    EXPECTF(!strcmp(out, "{\"ids\":[49406,320,1125,539,320,2368,49407]}\n"), "stdout: %s", out);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --context 8 --pad-id 49407 < %s", vocab, in);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(!strcmp(out, "{\"ids\":[49406,320,1125,539,320,2368,49407,49407]}\n"), "stdout: %s", out);
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --context 4 < %s", vocab, in);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(!strcmp(out, "{\"ids\":[49406,320,1125,49407]}\n"), "stdout: %s", out);
    free(out); free(errs);
    char *din = test_write_tmp("clip_dec.jsonl", "{\"ids\": [49406, 320, 1125, 539, 320, 2368, 49407]}\n");
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --decode < %s", vocab, din);
    rc = test_run_vlm(cmd, &out, &errs);
    EXPECTF(rc == 0 && !strcmp(out, "{\"text\":\"a photo of a cat \"}\n"), "stdout: %s", out);
    free(out); free(errs);
    free(din); free(in); free(vocab);
}

// Bad input lines: a clear error naming the line, non-zero exit.
TEST(tokenizer_cli_malformed) {
    char *model = sp_model_path();
    struct { const char *input, *want; const char *flags; } cases[] = {
        {"{\"text\": \"ok\"}\n{\"text\": \"broken\"\n", "line 2: not a JSON object", ""},
        {"{\"text\": \"ok\"}\n\n[1, 2]\n", "line 3: not a JSON object", ""},
        {"{\"txt\": \"ok\"}\n", "line 1: no \"text\" string", ""},
        {"{\"text\": 5}\n", "line 1: no \"text\" string", ""},
        {"{\"ids\": [1, 2, 40000]}\n", "line 1: ids[2] is not a token id in 0..32001", "--decode"},
        {"{\"ids\": [1, -1]}\n", "line 1: ids[1] is not a token id", "--decode"},
        {"{\"ids\": [1.5]}\n", "line 1: ids[0] is not a token id", "--decode"},
        {"{\"ids\": \"1 2\"}\n", "line 1: no \"ids\" array", "--decode"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char *in = test_write_tmp("bad_in.jsonl", cases[i].input);
        char cmd[800], *out, *errs;
        snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s %s < %s", model, cases[i].flags, in);
        int rc = test_run_vlm(cmd, &out, &errs);
        EXPECTF(rc != 0, "case %zu: rc 0", i);
        EXPECTF(strstr(errs, cases[i].want) != NULL, "case %zu: stderr '%s', expected '%s'", i, errs, cases[i].want);
        free(out); free(errs); free(in);
    }
    char cmd[800], *out, *errs;
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --bogus </dev/null", model);
    EXPECT(test_run_vlm(cmd, &out, &errs) != 0 && strstr(errs, "--bogus"));
    free(out); free(errs);
    snprintf(cmd, sizeof(cmd), "tokenize --tokenizer %s --context 77 </dev/null", model);
    EXPECT(test_run_vlm(cmd, &out, &errs) != 0 && strstr(errs, "CLIP"));
    free(out); free(errs);
    EXPECT(test_run_vlm("tokenize </dev/null", &out, &errs) != 0 && strstr(errs, "--tokenizer"));
    free(out); free(errs);
    free(model);
}
