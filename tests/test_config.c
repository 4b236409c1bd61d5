// config.json as untrusted input: every integer field of the small LLaVA and CLIP fixture configs set to
// 0, -1, 2^31-1, 2^63 (and a few worse values) gives an error naming the file, the key and the value, or
// a valid load that builds the model, never a sanitizer report or a wrapped size. Also: trailing text
// after the JSON, NUL bytes, fractions, infinities and configs whose sizes multiply past the ceilings.
#include <cJSON.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>

#include "../model/clip.h"
#include "../model/config.h"
#include "../model/llava.h"
#include "../util/common.h"
#include "test.h"

#define SRC "cfg.json"

// Parses (and, when that succeeds and build is set, builds the model with zeroed weights on the CPU),
// catching fatal errors in process: 0 on success, 1 with the message in fatal_message.
static int try_config(int clip, const char *json, size_t len, int build) {
    jmp_buf jb;
    fatal_catch = &jb;
    if (setjmp(jb)) { fatal_catch = NULL; return 1; }
    if (clip) {
        ClipConfig c;
        clip_config_parse_len(&c, json, len, SRC);
        if (build) {
            ClipModel m;
            clip_model_init(&m, &backend_cpu, &c, 0);
            clip_model_free(&m);
        }
    } else {
        LlavaConfig c;
        llava_config_parse_len(&c, json, len, SRC);
        if (build) {
            Llava m;
            llava_init(&m, &backend_cpu, &c, (LlavaTrainable){0, 0, 0});
            llava_free(&m);
        }
    }
    fatal_catch = NULL;
    fatal_message[0] = 0;
    return 0;
}

#define MARK "@@value@@"

// Collects the integer-valued number nodes of a tree (with their keys) for the sweep.
typedef struct { cJSON *node[128]; const char *key[128]; int n; } IntFields;

static void collect_ints(cJSON *o, IntFields *f) {
    cJSON *v;
    cJSON_ArrayForEach(v, o) {
        if (cJSON_IsObject(v) || cJSON_IsArray(v)) collect_ints(v, f);
        else if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble && f->n < 128) {
            f->node[f->n] = v;
            f->key[f->n++] = v->string ? v->string : (o->string ? o->string : "?");
        }
    }
}

// The fixture config with one number replaced by the literal text `value`.
static char *with_value(cJSON *root, cJSON *node, const char *value) {
    double keep = node->valuedouble;
    node->type = cJSON_String;
    node->valuestring = (char *)MARK;
    char *text = cJSON_Print(root);
    node->type = cJSON_Number;
    node->valuestring = NULL;
    node->valuedouble = keep;
    char *at = strstr(text, "\"" MARK "\"");
    char *out = xmalloc(strlen(text) + strlen(value) + 1);
    sprintf(out, "%.*s%s%s", (int)(at - text), text, value, at + strlen(MARK) + 2);
    free(text);
    return out;
}

static void sweep(int clip, const char *fixture, int *n_ok, int *n_err) {
    char *text = read_file(fixture, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    IntFields f = {0};
    collect_ints(root, &f);
    EXPECTF(f.n >= 15, "%s: only %d integer fields found", fixture, f.n);
    // the values of the issue, then 2^64, -inf (1e999 overflows to it) and a fraction
    const char *values[] = {"0", "-1", "2147483647", "9223372036854775808", "18446744073709551616", "-1e999", "2.5"};
    const char *shown[] = {"0", "-1", "2147483647", "9.2233720368547758e+18", "1.8446744073709552e+19", "-inf", "2.5"};
    for (int i = 0; i < f.n; i++)
        for (int k = 0; k < (int)(sizeof(values) / sizeof(values[0])); k++) {
            char *json = with_value(root, f.node[i], values[k]);
            if (try_config(clip, json, strlen(json), 1) == 0) (*n_ok)++;
            else {
                (*n_err)++;
                const char *msg = fatal_message;
                EXPECTF(strstr(msg, SRC) && strstr(msg, f.key[i]), "%s = %s: the message does not name the file and key: %s",
                        f.key[i], values[k], msg);
                // range errors show the value; a few consistency errors (a divisibility) show the numbers involved
                EXPECTF(strstr(msg, shown[k]) != NULL, "%s = %s: the message does not show the value: %s", f.key[i], values[k], msg);
            }
            free(json);
        }
    cJSON_Delete(root);
}

TEST(config_sweep_every_integer_field_llava) {
    int ok = 0, err = 0;
    sweep(0, "tests/fixtures/models/llava_gqa/config.json", &ok, &err);
    // the legal ones: fields the loader does not read (bos/eos/pad ids, image_seq_length, pretraining_tp),
    // image_token_index 0, vision_feature_layer 0 and -1
    EXPECTF(err > 80 && ok > 10, "%d errors, %d loads", err, ok);
    if (getenv("VLM_TEST_VERBOSE")) fprintf(stderr, "    llava sweep: %d errors, %d loads\n", err, ok);
}

TEST(config_sweep_every_integer_field_clip) {
    int ok = 0, err = 0;
    sweep(1, "tests/fixtures/models/clip/config.json", &ok, &err);
    EXPECTF(err > 70 && ok > 5, "%d errors, %d loads", err, ok);
    if (getenv("VLM_TEST_VERBOSE")) fprintf(stderr, "    clip sweep: %d errors, %d loads\n", err, ok);
}

// One edit to the llava_gqa config (find -> replace); returns try_config's result.
static int edited(const char *find, const char *replace) {
    char *text = read_file("tests/fixtures/models/llava_gqa/config.json", NULL);
    char *at = strstr(text, find);
    EXPECTF(at != NULL, "fixture lacks %s", find);
    if (!at) { free(text); return -1; }
    char *json = xmalloc(strlen(text) + strlen(replace) + 1);
    sprintf(json, "%.*s%s%s", (int)(at - text), text, replace, at + strlen(find));
    int rc = try_config(0, json, strlen(json), 0);
    free(json);
    free(text);
    return rc;
}

TEST(config_sizes_and_text_are_checked) {
    EXPECT_INT_EQ(edited("\"num_hidden_layers\": 2,", "\"num_hidden_layers\": 2,"), 0);  // the fixture itself loads
    // the campaign's allocation until OOM: refused at once, naming the key and the value
    EXPECT_INT_EQ(edited("\"num_hidden_layers\": 2,", "\"num_hidden_layers\": 100000000,"), 1);
    EXPECTF(strstr(fatal_message, "text_config.num_hidden_layers = 100000000"), "%s", fatal_message);
    // each size within its ceiling, but a matrix past 2^31 elements
    EXPECT_INT_EQ(edited("\"intermediate_size\": 80,", "\"intermediate_size\": 262144,"), 0);
    // (keys put before the fixture's own: cJSON takes the first of duplicates)
    EXPECT_INT_EQ(edited("\"head_dim\": 12,", "\"head_dim\": 12, \"hidden_size\": 65536, \"intermediate_size\": 262144,"), 1);
    EXPECTF(strstr(fatal_message, "elements"), "%s", fatal_message);
    // every matrix fits, the whole model does not: 1024 layers of d16384 x FFN 65536
    EXPECT_INT_EQ(edited("\"head_dim\": 12,", "\"head_dim\": 4096, \"hidden_size\": 16384, \"num_hidden_layers\": 1024, "
                         "\"intermediate_size\": 65536,"), 1);
    EXPECTF(strstr(fatal_message, "parameters") && strstr(fatal_message, SRC), "%s", fatal_message);
    // an image token without an embedding row
    EXPECT_INT_EQ(edited("\"image_token_index\": 90", "\"image_token_index\": 96"), 1);
    EXPECTF(strstr(fatal_message, "image_token_index = 96"), "%s", fatal_message);
    EXPECT_INT_EQ(edited("\"num_key_value_heads\": 2", "\"num_key_value_heads\": 8"), 1);  // more KV heads than heads
    EXPECT_INT_EQ(edited("\"num_channels\": 3", "\"num_channels\": 4"), 1);  // the pixels are always RGB
    EXPECT_INT_EQ(edited("\"rms_norm_eps\": 1e-05", "\"rms_norm_eps\": 1e999"), 1);
    EXPECTF(strstr(fatal_message, "rms_norm_eps = inf"), "%s", fatal_message);
    EXPECT_INT_EQ(edited("\"vision_feature_layer\": -2", "\"vision_feature_layer\": [-5]"), 1);
    EXPECT_INT_EQ(edited("\"vision_feature_layer\": -2", "\"vision_feature_layer\": [-4]"), 0);  // the embeddings
    EXPECT_INT_EQ(edited("\"vision_feature_layer\": -2", "\"vision_feature_layer\": \"-2\""), 1);

    // text after the JSON value, and a NUL byte inside the text
    const char *good = "{\"model_type\": \"clip\"}";
    EXPECT_INT_EQ(try_config(1, good, strlen(good), 0), 0);
    const char *trailing = "{\"model_type\": \"clip\"} {\"x\": 1}";
    EXPECT_INT_EQ(try_config(1, trailing, strlen(trailing), 0), 1);
    EXPECTF(strstr(fatal_message, SRC) && strstr(fatal_message, "{\"x\": 1}"), "%s", fatal_message);
    const char *ws = "{\"model_type\": \"clip\"}\n\t \n";
    EXPECT_INT_EQ(try_config(1, ws, strlen(ws), 0), 0);
    const char nul[] = "{\"model_type\": \"clip\"}\0garbage";
    EXPECT_INT_EQ(try_config(1, nul, sizeof(nul) - 1, 0), 1);
    EXPECTF(strstr(fatal_message, "NUL"), "%s", fatal_message);
}

// The CLI: a bad config.json is an error naming the file, the key and the value, with a non-zero exit.
TEST(config_cli_error_names_file_key_value) {
    char dir[512], cmd[2048];
    snprintf(dir, sizeof(dir), "%s/badcfg", test_tmpdir());
    snprintf(cmd, sizeof(cmd), "mkdir -p %s && cp tests/fixtures/models/llava_gqa/* %s/ 2>/dev/null; "
             "sed -i 's/\"num_hidden_layers\": 2,/\"num_hidden_layers\": 100000000,/' %s/config.json", dir, dir, dir);
    EXPECT(test_shell(cmd) == 0);
    char *err = NULL;
    snprintf(cmd, sizeof(cmd), "logprobs --model %s --data tests/fixtures/models/llava_gqa/records.jsonl", dir);
    int rc = test_run_vlm(cmd, NULL, &err);
    EXPECTF(rc != 0, "exit %d", rc);
    EXPECTF(err && strstr(err, "config.json") && strstr(err, "text_config.num_hidden_layers = 100000000"), "stderr: %s", err ? err : "");
    free(err);
}
