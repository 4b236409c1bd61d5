#include "config.h"

#include <cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

static char *config_path(const char *path) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return xstrdup(path);
    return path_join(path, "config.json");
}

static cJSON *parse_json(const char *json, const char *source) {
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        fatal("%s: invalid JSON near '%.30s'", source, at ? at : "?");
    }
    if (!cJSON_IsObject(root)) fatal("%s: expected a JSON object", source);
    return root;
}

// Typed field readers: absent or null -> default; present with the wrong type -> error.
static int get_int(const cJSON *o, const char *key, int def, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble))
        fatal("%s: field '%s' must be an integer", src, key);
    return (int)v->valuedouble;
}

static double get_num(const cJSON *o, const char *key, double def, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v)) fatal("%s: field '%s' must be a number", src, key);
    return v->valuedouble;
}

static int get_bool(const cJSON *o, const char *key, int def, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsBool(v)) fatal("%s: field '%s' must be true or false", src, key);
    return cJSON_IsTrue(v);
}

static const char *get_str(const cJSON *o, const char *key, const char *def, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsString(v)) fatal("%s: field '%s' must be a string", src, key);
    return v->valuestring;
}

static const cJSON *get_obj(const cJSON *o, const char *key, const char *src) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) return NULL;
    if (!cJSON_IsObject(v)) fatal("%s: field '%s' must be an object", src, key);
    return v;
}

static ActKind parse_act(const char *name, const char *field, const char *src) {
    if (!strcmp(name, "gelu")) return ACT_GELU;
    if (!strcmp(name, "quick_gelu")) return ACT_QUICK_GELU;
    if (!strcmp(name, "silu") || !strcmp(name, "swish")) return ACT_SILU;
    if (!strcmp(name, "gelu_pytorch_tanh") || !strcmp(name, "gelu_new")) return ACT_GELU_TANH;
    fatal("%s: %s '%s' is not supported (gelu, quick_gelu, silu, gelu_pytorch_tanh)", src, field, name);
}

static void require_positive(int v, const char *field, const char *src) {
    if (v <= 0) fatal("%s: %s must be positive, got %d", src, field, v);
}

// CLIPVisionConfig; `d` holds the defaults (the class's own, or LlavaConfig's when vision_config is absent)
static void vision_parse(VisionConfig *c, const cJSON *o, VisionConfig d, const char *src) {
    const char *mt = get_str(o, "model_type", "clip_vision_model", src);
    if (strcmp(mt, "clip_vision_model") != 0)
        fatal("%s: vision_config model_type '%s' is not supported (clip_vision_model)", src, mt);
    c->hidden = get_int(o, "hidden_size", d.hidden, src);
    c->intermediate = get_int(o, "intermediate_size", d.intermediate, src);
    c->layers = get_int(o, "num_hidden_layers", d.layers, src);
    c->heads = get_int(o, "num_attention_heads", d.heads, src);
    c->channels = get_int(o, "num_channels", d.channels, src);
    c->image_size = get_int(o, "image_size", d.image_size, src);
    c->patch_size = get_int(o, "patch_size", d.patch_size, src);
    c->projection_dim = get_int(o, "projection_dim", d.projection_dim, src);
    c->eps = (float)get_num(o, "layer_norm_eps", d.eps, src);
    c->act = parse_act(get_str(o, "hidden_act", "quick_gelu", src), "vision hidden_act", src);
    require_positive(c->hidden, "vision hidden_size", src);
    require_positive(c->layers, "vision num_hidden_layers", src);
    require_positive(c->heads, "vision num_attention_heads", src);
    require_positive(c->patch_size, "vision patch_size", src);
    if (c->hidden % c->heads) fatal("%s: vision hidden_size %d is not divisible by num_attention_heads %d", src, c->hidden, c->heads);
    if (c->image_size % c->patch_size)
        fatal("%s: vision image_size %d is not a multiple of patch_size %d", src, c->image_size, c->patch_size);
}

static const VisionConfig clip_vision_defaults = {768, 3072, 12, 12, 3, 224, 32, 512, 1e-5f, ACT_QUICK_GELU};

static void text_llama_parse(LlamaConfig *c, const cJSON *o, const char *src) {
    const char *mt = get_str(o, "model_type", "llama", src);
    if (strcmp(mt, "llama") != 0) fatal("%s: text_config model_type '%s' is not supported (llama)", src, mt);
    c->vocab = get_int(o, "vocab_size", 32000, src);
    c->hidden = get_int(o, "hidden_size", 4096, src);
    c->intermediate = get_int(o, "intermediate_size", 11008, src);
    c->layers = get_int(o, "num_hidden_layers", 32, src);
    c->heads = get_int(o, "num_attention_heads", 32, src);
    c->kv_heads = get_int(o, "num_key_value_heads", c->heads, src);
    require_positive(c->heads, "num_attention_heads", src);
    c->head_dim = get_int(o, "head_dim", c->hidden / c->heads, src);
    c->max_positions = get_int(o, "max_position_embeddings", 2048, src);
    c->eps = (float)get_num(o, "rms_norm_eps", 1e-6, src);
    c->attention_bias = get_bool(o, "attention_bias", 0, src);
    c->mlp_bias = get_bool(o, "mlp_bias", 0, src);
    c->tie_embeddings = get_bool(o, "tie_word_embeddings", 0, src);
    c->act = parse_act(get_str(o, "hidden_act", "silu", src), "text hidden_act", src);
    // rope: transformers 5 writes rope_parameters {rope_type, rope_theta}; older files rope_theta + rope_scaling
    c->rope_theta = (float)get_num(o, "rope_theta", 10000.0, src);
    const cJSON *rp = get_obj(o, "rope_parameters", src);
    if (rp) c->rope_theta = (float)get_num(rp, "rope_theta", c->rope_theta, src);
    const cJSON *rs = get_obj(o, "rope_scaling", src);
    const char *rope_type = get_str(rp ? rp : rs, "rope_type", NULL, src);
    if (!rope_type) rope_type = get_str(rs, "type", "default", src);
    if (strcmp(rope_type, "default") != 0) fatal("%s: rope type '%s' is not supported (default)", src, rope_type);
    require_positive(c->vocab, "vocab_size", src);
    require_positive(c->hidden, "hidden_size", src);
    require_positive(c->layers, "num_hidden_layers", src);
    require_positive(c->kv_heads, "num_key_value_heads", src);
    require_positive(c->head_dim, "head_dim", src);
    if (c->heads % c->kv_heads)
        fatal("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src, c->heads, c->kv_heads);
    if (c->head_dim % 2) fatal("%s: head_dim %d must be even for rotary embeddings", src, c->head_dim);
}

void llava_config_parse(LlavaConfig *c, const char *json, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, src);
    const char *mt = get_str(root, "model_type", "llava", src);
    if (strcmp(mt, "llava") != 0) fatal("%s: model_type '%s' is not a LLaVA model (llava)", src, mt);
    // LlavaConfig builds CLIPVisionConfig(1024, 4096, 24 layers, 16 heads, 336 px, patch 14) when the
    // vision_config is absent, and the class defaults (ViT-B/32) for fields missing from a given one.
    const cJSON *vc = get_obj(root, "vision_config", src);
    VisionConfig llava_vision_defaults = {1024, 4096, 24, 16, 3, 336, 14, 768, 1e-5f, ACT_QUICK_GELU};
    vision_parse(&c->vision, vc, vc ? clip_vision_defaults : llava_vision_defaults, src);
    text_llama_parse(&c->text, get_obj(root, "text_config", src), src);
    c->image_token_id = get_int(root, "image_token_index", 32000, src);
    c->image_token_id = get_int(root, "image_token_id", c->image_token_id, src);
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_layer");
    if (fl && cJSON_IsArray(fl)) {
        if (cJSON_GetArraySize(fl) != 1)
            fatal("%s: vision_feature_layer as a list of several layers is not supported (one layer)", src);
        fl = cJSON_GetArrayItem(fl, 0);
    }
    if (fl && !cJSON_IsNumber(fl)) fatal("%s: vision_feature_layer must be an integer", src);
    c->feature_layer = fl ? (int)fl->valuedouble : -2;
    const char *strategy = get_str(root, "vision_feature_select_strategy", "default", src);
    if (!strcmp(strategy, "full")) c->select_full = 1;
    else if (strcmp(strategy, "default") != 0)
        fatal("%s: vision_feature_select_strategy '%s' is not supported (default, full)", src, strategy);
    c->projector_act = parse_act(get_str(root, "projector_hidden_act", "gelu", src), "projector_hidden_act", src);
    c->projector_bias = get_bool(root, "multimodal_projector_bias", 1, src);
    // hidden_states has layers + 1 entries (0 = embeddings after pre-LN); only the layers up to the chosen
    // entry are ever computed
    int nh = c->vision.layers + 1, idx = c->feature_layer < 0 ? nh + c->feature_layer : c->feature_layer;
    if (idx < 0 || idx >= nh)
        fatal("%s: vision_feature_layer %d is out of range for %d vision layers", src, c->feature_layer, c->vision.layers);
    c->vision_layers_run = idx;
    int grid = c->vision.image_size / c->vision.patch_size;
    c->image_tokens = grid * grid + (c->select_full ? 1 : 0);
    if (c->image_token_id < 0) fatal("%s: image_token_index %d must be non-negative", src, c->image_token_id);
    cJSON_Delete(root);
}

void clip_config_parse(ClipConfig *c, const char *json, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, src);
    const char *mt = get_str(root, "model_type", "clip", src);
    if (strcmp(mt, "clip") != 0) fatal("%s: model_type '%s' is not a CLIP model (clip)", src, mt);
    vision_parse(&c->vision, get_obj(root, "vision_config", src), clip_vision_defaults, src);
    const cJSON *t = get_obj(root, "text_config", src);
    ClipTextConfig *tc = &c->text;
    tc->vocab = get_int(t, "vocab_size", 49408, src);
    tc->hidden = get_int(t, "hidden_size", 512, src);
    tc->intermediate = get_int(t, "intermediate_size", 2048, src);
    tc->layers = get_int(t, "num_hidden_layers", 12, src);
    tc->heads = get_int(t, "num_attention_heads", 8, src);
    tc->max_positions = get_int(t, "max_position_embeddings", 77, src);
    tc->projection_dim = get_int(t, "projection_dim", 512, src);
    tc->eos_token_id = get_int(t, "eos_token_id", 49407, src);
    tc->eps = (float)get_num(t, "layer_norm_eps", 1e-5, src);
    tc->act = parse_act(get_str(t, "hidden_act", "quick_gelu", src), "text hidden_act", src);
    require_positive(tc->heads, "text num_attention_heads", src);
    require_positive(tc->layers, "text num_hidden_layers", src);
    if (tc->hidden % tc->heads) fatal("%s: text hidden_size %d is not divisible by num_attention_heads %d", src, tc->hidden, tc->heads);
    c->projection_dim = get_int(root, "projection_dim", 512, src);
    require_positive(c->projection_dim, "projection_dim", src);
    cJSON_Delete(root);
}

void llava_config_load(LlavaConfig *c, const char *path) {
    char *p = config_path(path);
    char *json = read_file(p, NULL);
    llava_config_parse(c, json, p);
    free(json);
    free(p);
}

void clip_config_load(ClipConfig *c, const char *path) {
    char *p = config_path(path);
    char *json = read_file(p, NULL);
    clip_config_parse(c, json, p);
    free(json);
    free(p);
}

char *config_model_type(const char *path) {
    char *p = config_path(path);
    char *json = read_file(p, NULL);
    cJSON *root = parse_json(json, p);
    char *mt = xstrdup(get_str(root, "model_type", "", p));
    cJSON_Delete(root);
    free(json);
    free(p);
    return mt;
}

char *llava_config_preset_json(const char *name) {
    const char *vit_l = "\"vision_config\": {\"model_type\": \"clip_vision_model\", \"hidden_size\": 1024, "
                        "\"intermediate_size\": 4096, \"num_hidden_layers\": 24, \"num_attention_heads\": 16, "
                        "\"image_size\": 336, \"patch_size\": 14, \"projection_dim\": 768}";
    char buf[2048];
    if (!strcmp(name, "llava-1.4b"))
        snprintf(buf, sizeof(buf), "{\"model_type\": \"llava\", %s, \"text_config\": {\"model_type\": \"llama\", "
                 "\"vocab_size\": 32064, \"hidden_size\": 2048, \"intermediate_size\": 5632, \"num_hidden_layers\": 24, "
                 "\"num_attention_heads\": 16, \"num_key_value_heads\": 16, \"rms_norm_eps\": 1e-05, "
                 "\"max_position_embeddings\": 4096}, \"image_token_index\": 32000}", vit_l);
    else if (!strcmp(name, "llava-7b"))
        snprintf(buf, sizeof(buf), "{\"model_type\": \"llava\", %s, \"text_config\": {\"model_type\": \"llama\", "
                 "\"vocab_size\": 32064, \"rms_norm_eps\": 1e-05, \"max_position_embeddings\": 4096}, "
                 "\"image_token_index\": 32000}", vit_l);
    else if (!strcmp(name, "llava-tiny"))
        snprintf(buf, sizeof(buf), "{\"model_type\": \"llava\", \"vision_config\": {\"model_type\": \"clip_vision_model\", "
                 "\"hidden_size\": 64, \"intermediate_size\": 128, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
                 "\"image_size\": 56, \"patch_size\": 14}, \"text_config\": {\"model_type\": \"llama\", "
                 "\"vocab_size\": 32064, \"hidden_size\": 64, \"intermediate_size\": 160, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4, \"num_key_value_heads\": 2, \"rms_norm_eps\": 1e-05}, \"image_token_index\": 32000}");
    else if (!strcmp(name, "llava-demo"))  // the miniature study's default model (issue 12): world-sized vocabulary
        snprintf(buf, sizeof(buf), "{\"model_type\": \"llava\", \"vision_config\": {\"model_type\": \"clip_vision_model\", "
                 "\"hidden_size\": 96, \"intermediate_size\": 384, \"num_hidden_layers\": 3, \"num_attention_heads\": 4, "
                 "\"image_size\": 48, \"patch_size\": 16}, \"text_config\": {\"model_type\": \"llama\", "
                 "\"vocab_size\": 576, \"hidden_size\": 128, \"intermediate_size\": 344, \"num_hidden_layers\": 2, "
                 "\"num_attention_heads\": 4, \"num_key_value_heads\": 4, \"rms_norm_eps\": 1e-05}, "
                 "\"vision_feature_layer\": -2, \"vision_feature_select_strategy\": \"default\", \"image_token_index\": 575}");
    else return NULL;
    return xstrdup(buf);
}

int llava_config_preset(LlavaConfig *c, const char *name) {
    char *json = llava_config_preset_json(name);
    if (!json) return -1;
    llava_config_parse(c, json, name);
    free(json);
    return 0;
}
