// `vlm logprobs` end to end: values equal to transformers' (images preprocessed by both sides from the
// same PNG files), batch invariance, atomic --out, and clear errors with a non-zero exit on bad input.
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../model/safetensors.h"
#include "../util/common.h"
#include "test.h"

#define GQA "tests/fixtures/models/llava_gqa"

// Parses lines {"index": i, "logprob": x, "n_response": k} into arrays; returns the count.
static int parse_results(const char *text, int *index, double *logprob, int *n_resp, int max) {
    int n = 0;
    const char *p = text;
    while (n < max && (p = strstr(p, "{\"index\": "))) {
        if (sscanf(p, "{\"index\": %d, \"logprob\": %lf, \"n_response\": %d}", &index[n], &logprob[n], &n_resp[n]) != 3) break;
        n++;
        p++;
    }
    return n;
}

// out against dir/expected (transformers' results on the fixture's records, 5 of them)
static void check_against_file(const char *dir, const char *expected, const char *out) {
    char *path = path_join(dir, expected);
    char *want = read_file(path, NULL);
    free(path);
    int wi[16], gi[16], wk[16], gk[16];
    double wl[16], gl[16];
    int nw = parse_results(want, wi, wl, wk, 16), ng = parse_results(out, gi, gl, gk, 16);
    EXPECT_INT_EQ(ng, nw);
    EXPECT(nw == 5);
    for (int i = 0; i < nw && i < ng; i++) {
        EXPECT_INT_EQ(gi[i], wi[i]);
        EXPECT_INT_EQ(gk[i], wk[i]);
        EXPECT_NEAR(gl[i], wl[i], 1e-4);
    }
    free(want);
}

static void check_against_model(const char *dir, const char *out) { check_against_file(dir, "logprobs_expected.jsonl", out); }

static void check_against_expected(const char *out) { check_against_model(GQA, out); }

TEST(cli_logprobs_matches_transformers) {
    char *out, *err;
    int rc = test_run_vlm("logprobs --model " GQA " --data " GQA "/records.jsonl --device cpu", &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    check_against_expected(out);
    free(out); free(err);
}

// Records with image lists (two images in a prompt, ids once per image or expanded, a list two records share, one
// image, none), against transformers on the same PNG files; in batches of 5 (the shared list decoded once) and 2.
TEST(cli_logprobs_multi_image_matches_transformers) {
    static const char *const models[2] = {GQA, "tests/fixtures/models/llava_siglip_qwen2"};
    for (int k = 0; k < 2; k++)
        for (int batch = 2; batch <= 5; batch += 3) {
            char args[700], *out, *err;
            snprintf(args, sizeof(args), "logprobs --model %s --data %s/multi_image_records.jsonl --device cpu --batch %d",
                     models[k], models[k], batch);
            int rc = test_run_vlm(args, &out, &err);
            EXPECTF(rc == 0, "exit %d: %s", rc, err);
            check_against_file(models[k], "multi_image_logprobs_expected.jsonl", out);
            free(out); free(err);
        }
}

// A SigLIP tower (SiglipImageProcessor's preprocessing of the same PNGs, squashed to the square) and a Qwen2 decoder
#define SIGLIP_QWEN2 "tests/fixtures/models/llava_siglip_qwen2"
TEST(cli_logprobs_siglip_qwen2_matches_transformers) {
    char *out, *err;
    int rc = test_run_vlm("logprobs --model " SIGLIP_QWEN2 " --data " SIGLIP_QWEN2 "/records.jsonl --device cpu --batch 2", &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    check_against_model(SIGLIP_QWEN2, out);
    free(out); free(err);
}

TEST(cli_logprobs_batch_invariant_and_out_file) {
    char args[512], *out, *err;
    for (int bs = 1; bs <= 3; bs += 2) {
        snprintf(args, sizeof(args), "logprobs --model " GQA " --data " GQA "/records.jsonl --device cpu --batch %d --out %s/lp.jsonl",
                 bs, test_tmpdir());
        int rc = test_run_vlm(args, &out, &err);
        EXPECTF(rc == 0, "exit %d: %s", rc, err);
        EXPECTF(strlen(out) == 0, "stdout should be empty with --out, got %s", out);
        char *path = path_join(test_tmpdir(), "lp.jsonl");
        char *written = read_file(path, NULL);
        check_against_expected(written);
        free(written); free(path); free(out); free(err);
    }
}

// Writes `text` as records.jsonl in a fresh folder next to a copy of the fixture images; returns the path.
static char *records_file(const char *name, const char *text) {
    char *dir = path_join(test_tmpdir(), name);
    char cmd[1024];
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp -r " GQA "/images %s/", dir, dir);
    if (test_shell(cmd) != 0) fatal("cannot prepare %s", dir);
    char *path = path_join(dir, "records.jsonl");
    write_file_atomic(path, text, strlen(text));
    free(dir);
    return path;
}

// Runs logprobs on the records and expects a failure whose message contains `needle`.
static void expect_record_error(const char *name, const char *records, const char *needle) {
    char *path = records_file(name, records), args[1024], *out, *err;
    snprintf(args, sizeof(args), "logprobs --model " GQA " --data %s --device cpu", path);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc != 0, "%s: expected a failure, got exit 0", name);
    EXPECTF(strstr(err, needle) != NULL, "%s: message should contain '%s', got: %s", name, needle, err);
    EXPECTF(strstr(err, "vlm: error:") != NULL, "%s: no error line: %s", name, err);
    free(path); free(out); free(err);
}

TEST(cli_logprobs_bad_records) {
    const char *good = "{\"input_ids\": [1, 5, 6, 7, 2], \"n_response\": 2}\n";
    char buf[2048];
    snprintf(buf, sizeof(buf), "%s{\"input_ids\": [1, 5, \n", good);
    expect_record_error("malformed", buf, "records.jsonl:2: malformed JSON");
    expect_record_error("oov", "{\"input_ids\": [1, 5, 96, 2], \"n_response\": 1}\n", "outside the vocabulary");
    expect_record_error("negative", "{\"input_ids\": [1, -3, 4, 2], \"n_response\": 1}\n", "outside the vocabulary");
    expect_record_error("nresp", "{\"input_ids\": [1, 5, 6, 2], \"n_response\": 4}\n", "n_response 4");
    expect_record_error("nresp_missing", "{\"input_ids\": [1, 5, 6, 2]}\n", "\"n_response\"");
    expect_record_error("ids_type", "{\"input_ids\": [1, \"x\"], \"n_response\": 1}\n", "array of integers");
    expect_record_error("no_image_tokens", "{\"image\": \"images/a.png\", \"input_ids\": [1, 5, 6, 2], \"n_response\": 1}\n",
                        "input_ids have no image token: write 90 once where the image goes");  // says what to write
    expect_record_error("tokens_no_image", "{\"input_ids\": [1, 90, 6, 2], \"n_response\": 1}\n", "no \"image\"");
    expect_record_error("three_image_tokens", "{\"image\": \"images/a.png\", \"input_ids\": [1, 90, 90, 90, 6, 2], \"n_response\": 1}\n",
                        "expected one (expanded here) or exactly 16");
    expect_record_error("two_images_one_token", "{\"image\": [\"images/a.png\", \"images/b.png\"], \"input_ids\": [1, 90, 6, 2], "
                        "\"n_response\": 1}\n", "records.jsonl:1: 1 image tokens (id 90) for 2 images: expected 2 (one per image, "
                        "expanded here) or exactly 32");
    expect_record_error("nine_images", "{\"image\": [\"a\", \"a\", \"a\", \"a\", \"a\", \"a\", \"a\", \"a\", \"a\"], \"input_ids\": "
                        "[1, 90, 6, 2], \"n_response\": 1}\n", "\"image\" has 9 images; at most 8 per record are supported");
    expect_record_error("image_in_response", "{\"image\": \"images/a.png\", \"input_ids\": [1, 90, 6, 90], \"n_response\": 1}\n",
                        "response contains the image token");
    expect_record_error("missing_image", "{\"image\": \"images/nope.png\", \"input_ids\": [1, 90, 6, 2], \"n_response\": 1}\n",
                        "nope.png");
    char trunc[1024];
    snprintf(trunc, sizeof(trunc), "{\"image\": \"%s/images/truncated.jpg\", \"input_ids\": [1, 90, 6, 2], \"n_response\": 1}\n",
             test_shared_data());
    if (trunc[10] != '/') {  // make the shared path absolute so it does not resolve against the JSONL folder
        char cwd[512];
        if (!getcwd(cwd, sizeof(cwd))) fatal("getcwd failed");
        snprintf(trunc, sizeof(trunc), "{\"image\": \"%s/%s/images/truncated.jpg\", \"input_ids\": [1, 90, 6, 2], \"n_response\": 1}\n",
                 cwd, test_shared_data());
    }
    expect_record_error("truncated_image", trunc, "truncated.jpg");
    // numbers past int: refused before any cast (casting 2^63 to int is undefined behaviour)
    expect_record_error("huge_id", "{\"input_ids\": [1, 9223372036854775808, 2], \"n_response\": 1}\n", "must be an array of integers");
    expect_record_error("inf_n_response", "{\"input_ids\": [1, 5, 2], \"n_response\": -1e999}\n", "\"n_response\" (an integer)");
    expect_record_error("empty", "\n\n", "no records");
    expect_record_error("neither", "{\"text\": \"hello\"}\n", "a record needs");
}

// A copy of the fixture model with one file replaced, for the model-loading error tests.
static char *model_copy(const char *name) {
    char *dir = path_join(test_tmpdir(), name), cmd[1024];
    snprintf(cmd, sizeof(cmd), "rm -rf %s && mkdir -p %s && cp " GQA "/config.json " GQA "/model.safetensors " GQA "/preprocessor_config.json %s/",
             dir, dir, dir);
    if (test_shell(cmd) != 0) fatal("cannot copy the fixture model to %s", dir);
    return dir;
}

static void expect_model_error(const char *dir, const char *needle) {
    char args[1024], *out, *err;
    snprintf(args, sizeof(args), "logprobs --model %s --data " GQA "/records.jsonl --device cpu", dir);
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc != 0, "%s: expected a failure", dir);
    EXPECTF(strstr(err, needle) != NULL, "%s: message should contain '%s', got: %s", dir, needle, err);
    free(out); free(err);
}

static void replace_in_config(const char *dir, const char *from, const char *to) {
    char *path = path_join(dir, "config.json");
    char *cfg = read_file(path, NULL), *at = strstr(cfg, from);
    if (!at) fatal("test setup: '%s' not in %s", from, path);
    size_t n = strlen(cfg) + strlen(to) + 1;
    char *out = xmalloc(n);
    snprintf(out, n, "%.*s%s%s", (int)(at - cfg), cfg, to, at + strlen(from));
    write_file_atomic(path, out, strlen(out));
    free(cfg); free(out); free(path);
}

TEST(cli_logprobs_bad_models) {
    char *d;
    d = model_copy("m_trunc");  // truncated weights
    char *st = path_join(d, "model.safetensors");
    if (truncate(st, 5000) != 0) fatal("truncate failed");
    expect_model_error(d, "model.safetensors");
    free(st); free(d);

    d = model_copy("m_shape");  // config and weights disagree on a size
    replace_in_config(d, "\"intermediate_size\": 80", "\"intermediate_size\": 81");
    expect_model_error(d, "but the config implies");
    free(d);

    d = model_copy("m_type");
    replace_in_config(d, "\"num_hidden_layers\": 2", "\"num_hidden_layers\": \"two\"");
    expect_model_error(d, "text_config.num_hidden_layers = a string");
    free(d);

    d = model_copy("m_heads");
    replace_in_config(d, "\"num_key_value_heads\": 2", "\"num_key_value_heads\": 3");
    expect_model_error(d, "not a multiple of num_key_value_heads");
    free(d);

    d = model_copy("m_json");
    replace_in_config(d, "\"model_type\": \"llava\"", "\"model_type\": \"llava\",,");
    expect_model_error(d, "invalid JSON");
    free(d);

    d = model_copy("m_missing");  // a tensor missing from the weights
    {
        char *path = path_join(d, "model.safetensors");
        SafeTensors *src = st_open_or_die(GQA "/model.safetensors");
        STWriter *w = stw_new();
        for (int i = 0; i < src->n; i++) {
            const STTensor *t = &src->tensors[i];
            if (strstr(t->name, "layers.1.mlp.down_proj.weight") && strstr(t->name, "language_model")) continue;
            stw_add(w, t->name, t->dtype, t->ndim, t->shape, t->data);
        }
        stw_write(w, path, NULL);
        st_close(src);
        free(path);
    }
    expect_model_error(d, "missing tensor 'model.language_model.layers.1.mlp.down_proj.weight'");
    free(d);

    expect_model_error("/nonexistent/model", "/nonexistent/model/config.json");
}

TEST(cli_logprobs_usage_errors) {
    char *out, *err;
    EXPECT(test_run_vlm("logprobs --model " GQA, &out, &err) != 0);
    EXPECT(strstr(err, "--data") != NULL);
    free(out); free(err);
    EXPECT(test_run_vlm("logprobs --model " GQA " --data x --bogus 1", &out, &err) != 0);
    EXPECT(strstr(err, "unknown argument '--bogus'") != NULL);
    free(out); free(err);
    EXPECT(test_run_vlm("logprobs --help", &out, &err) == 0);
    EXPECT(strstr(out, "usage: vlm logprobs") != NULL);
    free(out); free(err);
}

// Text records: the prompt and response tokenized here with the real LLaMA-2 tokenizer (the model has the
// real 32064-id vocabulary at a tiny width), against transformers with the llava-hf tokenizer.
TEST(cli_logprobs_text_records) {
    char args[1024], *out, *err;
    snprintf(args, sizeof(args), "logprobs --model tests/fixtures/models/llava_tok --data tests/fixtures/models/llava_tok/records.jsonl"
             " --device cpu --tokenizer %s/tokenizers/llama2_tokenizer.model", test_shared_data());
    int rc = test_run_vlm(args, &out, &err);
    EXPECTF(rc == 0, "exit %d: %s", rc, err);
    char *want = read_file("tests/fixtures/models/llava_tok/logprobs_expected.jsonl", NULL);
    int wi[8], gi[8], wk[8], gk[8];
    double wl[8], gl[8];
    int nw = parse_results(want, wi, wl, wk, 8), ng = parse_results(out, gi, gl, gk, 8);
    EXPECT_INT_EQ(nw, 3);
    EXPECT_INT_EQ(ng, nw);
    for (int i = 0; i < nw && i < ng; i++) {
        EXPECT_INT_EQ(gk[i], wk[i]);  // same number of response tokens: the tokenization agrees
        EXPECT_NEAR(gl[i], wl[i], 1e-4);
    }
    free(out); free(err); free(want);
    // without a tokenizer the text records are an error that says what is missing
    rc = test_run_vlm("logprobs --model tests/fixtures/models/llava_tok --data tests/fixtures/models/llava_tok/records.jsonl --device cpu",
                      &out, &err);
    EXPECT(rc != 0);
    EXPECT(strstr(err, "text records need a tokenizer") != NULL);
    free(out); free(err);
}
