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
#include "../model/dinov2.h"
#include "../model/llava.h"
#include "../model/siglip.h"
#include "../util/common.h"
#include "test.h"

#define SRC "cfg.json"

// Parses (and, when that succeeds and build is set, builds the model with zeroed weights on the CPU),
// catching fatal errors in process: 0 on success, 1 with the message in fatal_message.
enum { KIND_LLAVA, KIND_CLIP, KIND_SIGLIP, KIND_DINOV2 };

static int try_config(int kind, const char *json, size_t len, int build) {
    jmp_buf jb;
    fatal_catch = &jb;
    if (setjmp(jb)) { fatal_catch = NULL; return 1; }
    if (kind == KIND_DINOV2) {
        VisionConfig c;
        dinov2_config_parse_len(&c, json, len, SRC);
        if (build) {
            Dinov2 m;
            dinov2_init(&m, &backend_cpu, &c, 0);
            dinov2_free(&m);
        }
    } else if (kind == KIND_SIGLIP) {
        VisionConfig c;
        siglip_vision_config_parse_len(&c, json, len, SRC);
        if (build) {
            SiglipVision m;
            siglip_vision_init(&m, &backend_cpu, &c, 0);
            siglip_vision_free(&m);
        }
    } else if (kind == KIND_CLIP) {
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

static void sweep(int kind, const char *fixture, int *n_ok, int *n_err) {
    char *text = read_file(fixture, NULL);
    cJSON *root = cJSON_Parse(text);
    free(text);
    IntFields f = {0};
    collect_ints(root, &f);
    EXPECTF(f.n >= (kind == KIND_SIGLIP || kind == KIND_DINOV2 ? 7 : 15), "%s: only %d integer fields found", fixture, f.n);
    // the values of the issue, then 2^64, -inf (1e999 overflows to it) and a fraction
    const char *values[] = {"0", "-1", "2147483647", "9223372036854775808", "18446744073709551616", "-1e999", "2.5"};
    const char *shown[] = {"0", "-1", "2147483647", "9.2233720368547758e+18", "1.8446744073709552e+19", "-inf", "2.5"};
    for (int i = 0; i < f.n; i++)
        for (int k = 0; k < (int)(sizeof(values) / sizeof(values[0])); k++) {
            char *json = with_value(root, f.node[i], values[k]);
            if (try_config(kind, json, strlen(json), 1) == 0) (*n_ok)++;
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
    sweep(KIND_LLAVA, "tests/fixtures/models/llava_gqa/config.json", &ok, &err);
    // the legal ones: fields the loader does not read (bos/eos/pad ids, image_seq_length, pretraining_tp),
    // image_token_index 0, vision_feature_layer 0 and -1
    EXPECTF(err > 80 && ok > 10, "%d errors, %d loads", err, ok);
    if (getenv("VLM_TEST_VERBOSE")) fprintf(stderr, "    llava sweep: %d errors, %d loads\n", err, ok);
}

TEST(config_sweep_every_integer_field_clip) {
    int ok = 0, err = 0;
    sweep(KIND_CLIP, "tests/fixtures/models/clip/config.json", &ok, &err);
    EXPECTF(err > 70 && ok > 5, "%d errors, %d loads", err, ok);
    if (getenv("VLM_TEST_VERBOSE")) fprintf(stderr, "    clip sweep: %d errors, %d loads\n", err, ok);
}

// A SigLIP tower with a Qwen2 decoder (Qwen2's layer_types, max_window_layers, ...), and a SiglipVisionModel
TEST(config_sweep_every_integer_field_siglip_qwen2) {
    int ok = 0, err = 0;
    sweep(KIND_LLAVA, "tests/fixtures/models/llava_siglip_qwen2_tied/config.json", &ok, &err);
    EXPECTF(err > 80 && ok > 10, "llava: %d errors, %d loads", err, ok);
    ok = err = 0;
    sweep(KIND_SIGLIP, "tests/fixtures/models/siglip_vision/config.json", &ok, &err);
    EXPECTF(err > 40, "siglip: %d errors, %d loads", err, ok);
}

// One edit to the llava_gqa config (find -> replace); returns try_config's result.
static int edited(const char *find, const char *replace) {
    char *text = read_file("tests/fixtures/models/llava_gqa/config.json", NULL);
    char *at = strstr(text, find);
    EXPECTF(at != NULL, "fixture lacks %s", find);
    if (!at) { free(text); return -1; }
    char *json = xmalloc(strlen(text) + strlen(replace) + 1);
    sprintf(json, "%.*s%s%s", (int)(at - text), text, replace, at + strlen(find));
    int rc = try_config(KIND_LLAVA, json, strlen(json), 0);
    free(json);
    free(text);
    return rc;
}

// A LLaVA config of a SigLIP tower and a Qwen2 decoder with `vision` and `text` spliced into their sections and
// `top` at the top level; parsed into *c. Returns try_config's result.
static int siglip_qwen2(LlavaConfig *c, const char *vision, const char *text, const char *top) {
    char json[2048];
    snprintf(json, sizeof(json), "{\"model_type\": \"llava\", %s \"image_token_index\": 90, \"vision_config\": {%s "
             "\"model_type\": \"siglip_vision_model\", \"hidden_size\": 32, \"intermediate_size\": 64, \"num_hidden_layers\": 3, "
             "\"num_attention_heads\": 4, \"image_size\": 28, \"patch_size\": 7}, \"text_config\": {%s \"model_type\": \"qwen2\", "
             "\"vocab_size\": 96, \"hidden_size\": 48, \"intermediate_size\": 80, \"num_hidden_layers\": 2, "
             "\"num_attention_heads\": 4, \"num_key_value_heads\": 2}}", top, vision, text);
    int rc = try_config(KIND_LLAVA, json, strlen(json), 0);
    if (rc == 0) llava_config_parse(c, json, SRC);
    return rc;
}

// What the SigLIP and Qwen2 configs mean, and what they refuse
TEST(config_siglip_qwen2_fields) {
    LlavaConfig c;
    // class defaults: SigLIP (gelu_pytorch_tanh, eps 1e-6, the head), Qwen2 (q/k/v biases only, eps 1e-6, 32768
    // positions), LLaVA's "default" strategy dropping the first patch (SigLIP has no class token)
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "", ""), 0);
    EXPECT(c.vision.kind == VISION_SIGLIP && c.vision.act == ACT_GELU_TANH && c.vision.use_head == 1);
    EXPECT_NEAR(c.vision.eps, 1e-6, 1e-7);  // (relative; a float)
    EXPECT(c.text.qkv_bias == 1 && c.text.o_bias == 0 && c.text.mlp_bias == 0 && c.text.tie_embeddings == 0);
    EXPECT(c.text.max_positions == 32768 && c.text.head_dim == 12);
    EXPECT_NEAR(c.text.eps, 1e-6, 1e-7);
    EXPECT_INT_EQ(c.image_tokens, 15);  // 16 patches, the first dropped
    EXPECT_INT_EQ(c.vision_layers_run, 2);  // feature layer -2
    EXPECT_INT_EQ(siglip_qwen2(&c, "\"vision_use_head\": false,", "\"rms_norm_eps\": 1e-5, \"rope_theta\": 1000000.0,",
                               "\"vision_feature_select_strategy\": \"full\", \"vision_feature_layer\": -1,"), 0);
    EXPECT(c.image_tokens == 16 && c.vision_layers_run == 3 && c.vision.use_head == 0);
    EXPECT_NEAR(c.text.rope_theta, 1e6, 1e-3);
    // either level of tie_word_embeddings ties the head (LlavaConfig's rule)
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "", "\"tie_word_embeddings\": true,"), 0);
    EXPECT_INT_EQ(c.text.tie_embeddings, 1);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"tie_word_embeddings\": true,", ""), 0);
    EXPECT_INT_EQ(c.text.tie_embeddings, 1);
    // Qwen2's defaults where the text_config says almost nothing: its vocabulary and width
    const char *bare = "{\"model_type\": \"llava\", \"image_token_index\": 151646, \"text_config\": {\"model_type\": \"qwen2\"}}";
    EXPECT_INT_EQ(try_config(KIND_LLAVA, bare, strlen(bare), 0), 0);
    llava_config_parse(&c, bare, SRC);
    EXPECT(c.text.vocab == 151936 && c.text.hidden == 4096 && c.text.intermediate == 22016 && c.text.kv_heads == 32);
    // sliding-window attention is not implemented: refused, naming the field
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"use_sliding_window\": true, \"sliding_window\": 4096, \"max_window_layers\": 1,", ""), 1);
    EXPECTF(strstr(fatal_message, SRC) && strstr(fatal_message, "use_sliding_window") && strstr(fatal_message, "sliding-window"), "%s",
            fatal_message);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"use_sliding_window\": true, \"sliding_window\": 4096, \"max_window_layers\": 2,", ""), 0);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"layer_types\": [\"full_attention\", \"sliding_attention\"],", ""), 1);
    EXPECTF(strstr(fatal_message, "layer_types[1] = 'sliding_attention'"), "%s", fatal_message);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"layer_types\": [\"full_attention\"],", ""), 1);
    EXPECTF(strstr(fatal_message, "layer_types must be a list of 2"), "%s", fatal_message);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"layer_types\": [\"full_attention\", 3],", ""), 1);
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"use_sliding_window\": \"yes\",", ""), 1);
    EXPECTF(strstr(fatal_message, "use_sliding_window"), "%s", fatal_message);
    // other model types, in either section, and a SigLIP tower where a CLIPModel needs CLIP's
    EXPECT_INT_EQ(siglip_qwen2(&c, "", "\"model_type\": \"qwen3\",", ""), 1);
    EXPECTF(strstr(fatal_message, "'qwen3'") && strstr(fatal_message, "llama, qwen2"), "%s", fatal_message);
    EXPECT_INT_EQ(siglip_qwen2(&c, "\"model_type\": \"dinov2\",", "", ""), 1);
    EXPECTF(strstr(fatal_message, "'dinov2'") && strstr(fatal_message, "siglip_vision_model"), "%s", fatal_message);
    EXPECT_INT_EQ(siglip_qwen2(&c, "\"vision_use_head\": 1,", "", ""), 1);
    EXPECTF(strstr(fatal_message, "vision_use_head"), "%s", fatal_message);
    const char *clip_siglip = "{\"model_type\": \"clip\", \"vision_config\": {\"model_type\": \"siglip_vision_model\"}}";
    EXPECT_INT_EQ(try_config(KIND_CLIP, clip_siglip, strlen(clip_siglip), 0), 1);
    EXPECTF(strstr(fatal_message, "'siglip_vision_model'") && strstr(fatal_message, "(clip_vision_model)"), "%s", fatal_message);
    // "default" with a one-patch SigLIP tower leaves no token
    EXPECT_INT_EQ(siglip_qwen2(&c, "\"image_size\": 7,", "", ""), 1);
    EXPECTF(strstr(fatal_message, "drops the only token"), "%s", fatal_message);
}

// A SigLIP vision model's config: SiglipVisionModel's, or the vision_config of a SiglipModel
TEST(config_siglip_vision_model) {
    const char *dual = "{\"model_type\": \"siglip\", \"text_config\": {\"vocab_size\": 50}, \"vision_config\": {"
                       "\"model_type\": \"siglip_vision_model\", \"hidden_size\": 1152, \"intermediate_size\": 4304, "
                       "\"num_hidden_layers\": 27, \"num_attention_heads\": 16, \"image_size\": 384, \"patch_size\": 14}}";
    EXPECT_INT_EQ(try_config(KIND_SIGLIP, dual, strlen(dual), 0), 0);
    VisionConfig v;
    siglip_vision_config_parse_len(&v, dual, strlen(dual), SRC);
    EXPECT(v.kind == VISION_SIGLIP && v.hidden == 1152 && v.layers == 27 && v.use_head == 1 && vision_config_tokens(&v) == 729);
    const char *bare = "{\"model_type\": \"siglip\"}";  // the class defaults: ViT-B/16 at 224
    siglip_vision_config_parse_len(&v, bare, strlen(bare), SRC);
    EXPECT(v.hidden == 768 && v.patch_size == 16 && v.image_size == 224 && vision_config_tokens(&v) == 196);
    const char *bad[][2] = {{"{\"model_type\": \"clip\"}", "not a SigLIP vision model"},
                            {"{\"model_type\": \"siglip\", \"vision_config\": {\"model_type\": \"clip_vision_model\"}}",
                             "'clip_vision_model' is not siglip_vision_model"},
                            {"{\"model_type\": \"siglip_vision_model\", \"patch_size\": 300}", "patch_size = 300"},
                            // a default past a range that another field sets (patch_size 16 on a 15-px image; found by
                            // make fuzz): an error naming it, not a config the model cannot use
                            {"{\"model_type\": \"siglip_vision_model\", \"image_size\": 15}",
                             "patch_size is not given and its default, 16, is outside 1 to 15"},
                            {"{\"model_type\": \"siglip_vision_model\", \"hidden_act\": \"relu\"}", "'relu'"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECTF(try_config(KIND_SIGLIP, bad[i][0], strlen(bad[i][0]), 0) == 1, "accepted %s", bad[i][0]);
        EXPECTF(strstr(fatal_message, SRC) && strstr(fatal_message, bad[i][1]), "for %s: %s", bad[i][0], fatal_message);
    }
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
    EXPECT_INT_EQ(try_config(KIND_CLIP, good, strlen(good), 0), 0);
    const char *trailing = "{\"model_type\": \"clip\"} {\"x\": 1}";
    EXPECT_INT_EQ(try_config(KIND_CLIP, trailing, strlen(trailing), 0), 1);
    EXPECTF(strstr(fatal_message, SRC) && strstr(fatal_message, "{\"x\": 1}"), "%s", fatal_message);
    const char *ws = "{\"model_type\": \"clip\"}\n\t \n";
    EXPECT_INT_EQ(try_config(KIND_CLIP, ws, strlen(ws), 0), 0);
    const char nul[] = "{\"model_type\": \"clip\"}\0garbage";
    EXPECT_INT_EQ(try_config(KIND_CLIP, nul, sizeof(nul) - 1, 0), 1);
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

// DINOv2's config (dinov2, dinov2_with_registers): every integer field swept, the class defaults, and what is refused
TEST(config_dinov2) {
    int ok = 0, err = 0;
    sweep(KIND_DINOV2, "tests/fixtures/models/dinov2/config.json", &ok, &err);
    EXPECTF(err > 30, "dinov2: %d errors, %d loads", err, ok);
    ok = err = 0;
    sweep(KIND_DINOV2, "tests/fixtures/models/dinov2_reg/config.json", &ok, &err);
    EXPECTF(err > 30, "dinov2_with_registers: %d errors, %d loads", err, ok);
    VisionConfig v;
    const char *large = "{\"model_type\": \"dinov2\", \"hidden_size\": 1024, \"num_hidden_layers\": 24, "
                        "\"num_attention_heads\": 16, \"image_size\": 518, \"patch_size\": 14, \"mlp_ratio\": 4}";
    dinov2_config_parse_len(&v, large, strlen(large), SRC);  // facebook/dinov2-large
    EXPECT(v.kind == VISION_DINOV2 && v.intermediate == 4096 && v.pos_grid == 37 && v.n_registers == 0 && !v.pos_antialias);
    const char *reg = "{\"model_type\": \"dinov2_with_registers\"}";
    dinov2_config_parse_len(&v, reg, strlen(reg), SRC);
    EXPECT(v.n_registers == 4 && v.patch_size == 16 && v.pos_antialias && vision_config_tokens(&v) == 14 * 14 + 5);
    const char *bad[][2] = {{"{\"model_type\": \"siglip\"}", "not a DINOv2 model"},
                            {"{\"model_type\": \"dinov2\", \"use_swiglu_ffn\": true}", "use_swiglu_ffn"},
                            {"{\"model_type\": \"dinov2\", \"qkv_bias\": false}", "qkv_bias"},
                            {"{\"model_type\": \"dinov2\", \"mlp_ratio\": 0}", "mlp_ratio"},
                            {"{\"model_type\": \"dinov2\", \"mlp_ratio\": 0.0001}", "mlp_ratio"},
                            {"{\"model_type\": \"dinov2\", \"patch_size\": [14, 14]}", "patch_size"},
                            {"{\"model_type\": \"dinov2\", \"hidden_size\": 100}", "num_attention_heads"},
                            {"{\"model_type\": \"dinov2_with_registers\", \"num_register_tokens\": -1}", "num_register_tokens"},
                            {"{\"model_type\": \"dinov2\", \"hidden_act\": \"relu\"}", "'relu'"}};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        EXPECTF(try_config(KIND_DINOV2, bad[i][0], strlen(bad[i][0]), 0) == 1, "accepted %s", bad[i][0]);
        EXPECTF(strstr(fatal_message, SRC) && strstr(fatal_message, bad[i][1]), "for %s: %s", bad[i][0], fatal_message);
    }
}
