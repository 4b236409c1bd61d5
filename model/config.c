#include "config.h"

#include <cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../util/common.h"
#include "../util/json_check.h"

static char *config_path(const char *path) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".json")) return xstrdup(path);
    return path_join(path, "config.json");
}

// The text of path/config.json (or of path itself when it names a .json file) and that file's name for messages.
typedef struct { char *path, *json; size_t len; } ConfigText;

static ConfigText config_text(const char *path) {
    ConfigText t;
    t.path = config_path(path);
    if (!file_exists(t.path)) {
        // a training run's --out: the model folders are its checkpoints, `latest` names the newest
        char *latest = path_join(path, "latest"), *name = try_read_file(latest, NULL);
        if (name) {
            name[strcspn(name, "\r\n")] = 0;
            fatal("%s is a training run's output folder, not a model folder: give its checkpoint %s/%s (the one "
                  "`latest` names)", path, path, name[0] ? name : "checkpoint-N");
        }
        free(latest);
    }
    t.json = read_file(t.path, &t.len);
    return t;
}

static void config_text_free(ConfigText *t) {
    free(t->json);
    free(t->path);
}

static cJSON *parse_json(const char *json, size_t len, const char *source) {
    char err[512];
    cJSON *root = json_parse_document(json, len, source, err, sizeof(err));
    if (!root) fatal("%s", err);
    if (!cJSON_IsObject(root)) fatal("%s: expected a JSON object", source);
    return root;
}

// Ceilings on the sizes a config may ask for: far above any model this code is meant for (llava-1.5-7b:
// hidden 4096, FFN 11008, 32 layers, vocabulary 32064; LLaMA-3-405B: 16384, 53248, 126, 128256) and
// low enough that every product of two of them fits 64 bits, so the size arithmetic below cannot wrap.
#define MAX_HIDDEN (1 << 16)
#define MAX_FFN (1 << 18)
#define MAX_LAYERS 1024
#define MAX_HEADS 1024
#define MAX_HEAD_DIM 4096
#define MAX_VOCAB (1 << 24)
#define MAX_POSITIONS (1 << 24)     // a LLaMA's positions only bound RoPE; CLIP's are a table, bounded by MAX_TENSOR
#define MAX_IMAGE_SIZE 4096         // vision tower input side in pixels
#define MAX_IMAGE_TOKENS (1 << 16)  // patches per image
// No single weight matrix past 2^31 - 1 elements: kernels index a matrix with 32-bit ints.
#define MAX_TENSOR 2147483647LL
// 1e11 parameters is 400 GB in fp32, beyond the memory of any machine this runs on: a config past it
// is a typo or an attack, and failing here beats allocating until the kernel kills the process.
#define MAX_PARAMS 100000000000LL

// Typed field readers: absent or null -> default (which must lie in the range too); present with the wrong type or
// out of range -> error naming the file, the key (with its section, "text_config.hidden_size") and the value.
static int get_int(const cJSON *o, const char *sec, const char *key, int def, long long lo, long long hi, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) {
        // a range may depend on other fields (patch_size up to image_size), which the default cannot know
        if (def < lo || def > hi)
            fatal("%s: %s%s is not given and its default, %d, is outside %lld to %lld: give it", src, sec, key, def, lo, hi);
        return def;
    }
    long long x;
    if (json_int(v, lo, hi, &x)) {
        char val[96];
        json_value_text(v, val, sizeof(val));
        fatal("%s: %s%s = %s: expected an integer from %lld to %lld", src, sec, key, val, lo, hi);
    }
    return (int)x;
}

// An integer parameter the config derives (a default from other fields, or one checked against another
// field's value): the same message shape for the range error.
static void check_range(long long v, long long lo, long long hi, const char *sec, const char *key, const char *src) {
    if (v < lo || v > hi) fatal("%s: %s%s = %lld: expected an integer from %lld to %lld", src, sec, key, v, lo, hi);
}

// a * b and a + b in 64 bits; the operands are non-negative and bounded by the ceilings, so these
// never wrap in practice, but a saturating result keeps the totals honest if that ever changes
static long long mul64(long long a, long long b) {
    long long r;
    return __builtin_mul_overflow(a, b, &r) ? LLONG_MAX : r;
}
static long long add64(long long a, long long b) {
    long long r;
    return __builtin_add_overflow(a, b, &r) ? LLONG_MAX : r;
}

static void check_tensor(long long rows, long long cols, const char *what, const char *src) {
    long long n = mul64(rows, cols);
    if (n > MAX_TENSOR)
        fatal("%s: %s would be %lld x %lld = %lld elements, past the %lld elements a weight matrix may hold", src, what, rows,
              cols, n, MAX_TENSOR);
}

static void check_params(long long n, const char *src) {
    if (n > MAX_PARAMS)
        fatal("%s: the config describes %lld parameters (%.1f GB in fp32), past the ceiling of %lld: check the sizes", src, n,
              (double)n * 4 / 1e9, MAX_PARAMS);
}

// A real number in [lo, hi] (never inf: JSON has no literal for it, but 1e999 parses to it).
static double get_num(const cJSON *o, const char *sec, const char *key, double def, double lo, double hi, const char *src) {
    const cJSON *v = o ? cJSON_GetObjectItemCaseSensitive(o, key) : NULL;
    if (!v || cJSON_IsNull(v)) return def;
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= lo && v->valuedouble <= hi)) {
        char val[96];
        json_value_text(v, val, sizeof(val));
        fatal("%s: %s%s = %s: expected a number from %g to %g", src, sec, key, val, lo, hi);
    }
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

// The class defaults of each tower's config (transformers' CLIPVisionConfig, SiglipVisionConfig).
static const VisionConfig clip_vision_defaults = {768, 3072, 12, 12, 3, 224, 32, 512, 1e-5f, ACT_QUICK_GELU, VISION_CLIP, 0, 0, 0, 0};
static const VisionConfig siglip_vision_defaults = {768, 3072, 12, 12, 3, 224, 16, 0, 1e-6f, ACT_GELU_TANH, VISION_SIGLIP, 1, 0, 0, 0};

int vision_config_tokens(const VisionConfig *c) {
    const int grid = c->image_size / c->patch_size;
    return grid * grid + (c->kind == VISION_CLIP ? 1 : c->kind == VISION_DINOV2 ? 1 + c->n_registers : 0);
}

// A vision tower's config object `o` (NULL: absent). Its model_type picks the kind and the class defaults;
// `d` replaces CLIP's defaults (LlavaConfig builds a ViT-L/14-336 when the vision_config is absent), and
// `allow_siglip` says whether the caller takes a SigLIP tower (a CLIPModel does not). Returns the tower's
// parameter count (all layers, post-LayerNorm and head: a checkpoint holds them all).
static long long vision_parse(VisionConfig *c, const cJSON *o, VisionConfig d, int allow_siglip, const char *src) {
    const char *S = "vision_config.";
    const char *mt = get_str(o, "model_type", d.kind == VISION_SIGLIP ? "siglip_vision_model" : "clip_vision_model", src);
    if (allow_siglip && !strcmp(mt, "siglip_vision_model")) {
        if (d.kind != VISION_SIGLIP) d = siglip_vision_defaults;
    } else if (!strcmp(mt, "clip_vision_model")) {
        if (d.kind != VISION_CLIP) d = clip_vision_defaults;
    } else
        fatal("%s: vision_config model_type '%s' is not supported (%s)", src, mt,
              allow_siglip ? "clip_vision_model, siglip_vision_model" : "clip_vision_model");
    const int siglip = d.kind == VISION_SIGLIP;
    c->kind = d.kind;
    c->hidden = get_int(o, S, "hidden_size", d.hidden, 1, MAX_HIDDEN, src);
    c->intermediate = get_int(o, S, "intermediate_size", d.intermediate, 1, MAX_FFN, src);
    c->layers = get_int(o, S, "num_hidden_layers", d.layers, 1, MAX_LAYERS, src);
    c->heads = get_int(o, S, "num_attention_heads", d.heads, 1, MAX_HEADS, src);
    // the preprocessor always gives RGB and the pixel buffers hold 3 planes
    c->channels = get_int(o, S, "num_channels", d.channels, 3, 3, src);
    c->image_size = get_int(o, S, "image_size", d.image_size, 1, MAX_IMAGE_SIZE, src);
    c->patch_size = get_int(o, S, "patch_size", d.patch_size, 1, c->image_size, src);
    c->projection_dim = siglip ? 0 : get_int(o, S, "projection_dim", d.projection_dim, 1, MAX_HIDDEN, src);
    c->eps = (float)get_num(o, S, "layer_norm_eps", d.eps, 0, 1, src);
    c->act = parse_act(get_str(o, "hidden_act", siglip ? "gelu_pytorch_tanh" : "quick_gelu", src), "vision hidden_act", src);
    c->use_head = siglip ? get_bool(o, "vision_use_head", d.use_head, src) : 0;
    if (c->hidden % c->heads) fatal("%s: vision hidden_size %d is not divisible by num_attention_heads %d", src, c->hidden, c->heads);
    // SigLIP's patch convolution drops the pixels past the last whole patch (so400m: 384 px, patch 14, a 27 x 27 grid)
    if (!siglip && c->image_size % c->patch_size)
        fatal("%s: vision image_size %d is not a multiple of patch_size %d", src, c->image_size, c->patch_size);
    const long long C = c->hidden, F = c->intermediate, grid = c->image_size / c->patch_size, patches = grid * grid;
    if (patches + 1 > MAX_IMAGE_TOKENS)
        fatal("%s: vision image_size %d with patch_size %d gives %lld patches, past the ceiling of %d", src, c->image_size,
              c->patch_size, patches, MAX_IMAGE_TOKENS - 1);
    const long long patch_dim = 3LL * c->patch_size * c->patch_size;
    check_tensor(C, patch_dim, "the vision patch embedding (hidden_size x 3 * patch_size^2)", src);
    check_tensor(F, C, "a vision MLP matrix (intermediate_size x hidden_size)", src);
    check_tensor(C, C, "a vision attention matrix (hidden_size^2)", src);
    // per layer: q, k, v, o (C x C + C), fc1, fc2 (F x C + F, C x F + C), two LayerNorms
    long long layer = add64(add64(mul64(4, mul64(C, C) + C), mul64(2, mul64(C, F)) + F + C), 4 * C);
    long long n;
    if (siglip) {  // patch (+ bias), positions, post-LN; the head: probe, in/out projections, LayerNorm, MLP
        n = add64(add64(mul64(C, patch_dim) + C, mul64(patches, C)), 2 * C);
        if (c->use_head) n = add64(n, add64(add64(mul64(4, mul64(C, C)) + 4 * C, mul64(2, mul64(C, F)) + F + C), 3 * C));
    } else {  // patch, positions, class, pre/post LN
        n = add64(add64(mul64(C, patch_dim), mul64(patches + 1, C)), C + 4 * C);
    }
    return add64(n, mul64(c->layers, layer));
}

// The set of attention layers a Qwen2 config describes must all be full attention: sliding-window layers are
// not implemented, and running them as full attention would be silently wrong past the window.
static void qwen2_check_full_attention(const cJSON *o, int layers, const char *src) {
    const cJSON *lt = o ? cJSON_GetObjectItemCaseSensitive(o, "layer_types") : NULL;
    if (lt && !cJSON_IsNull(lt)) {
        if (!cJSON_IsArray(lt) || cJSON_GetArraySize(lt) != layers)
            fatal("%s: text_config.layer_types must be a list of %d strings (one per layer)", src, layers);
        int i = 0;
        for (const cJSON *e = lt->child; e; e = e->next, i++) {
            if (!cJSON_IsString(e)) fatal("%s: text_config.layer_types[%d] must be a string", src, i);
            if (strcmp(e->valuestring, "full_attention") != 0)
                fatal("%s: text_config.layer_types[%d] = '%s': only full_attention layers are supported (sliding-window "
                      "attention is not implemented)", src, i, e->valuestring);
        }
        return;
    }
    // transformers derives layer_types from these: layers from max_window_layers on slide when enabled
    const int sliding = get_bool(o, "use_sliding_window", 0, src);
    const cJSON *w = o ? cJSON_GetObjectItemCaseSensitive(o, "sliding_window") : NULL;
    const int window_layers = get_int(o, "text_config.", "max_window_layers", 28, 0, MAX_LAYERS, src);
    if (sliding && w && !cJSON_IsNull(w) && window_layers < layers)
        fatal("%s: text_config.use_sliding_window is true (layers %d to %d would use sliding-window attention, which is "
              "not implemented)", src, window_layers, layers - 1);
}

// LlamaConfig or Qwen2Config (text_config.model_type "llama" or "qwen2"), with each class's defaults. Returns
// the decoder's parameter count.
static long long text_decoder_parse(LlamaConfig *c, const cJSON *o, const char *src) {
    const char *S = "text_config.";
    const char *mt = get_str(o, "model_type", "llama", src);
    const int qwen2 = !strcmp(mt, "qwen2");
    if (!qwen2 && strcmp(mt, "llama") != 0) fatal("%s: text_config model_type '%s' is not supported (llama, qwen2)", src, mt);
    c->vocab = get_int(o, S, "vocab_size", qwen2 ? 151936 : 32000, 1, MAX_VOCAB, src);
    c->hidden = get_int(o, S, "hidden_size", 4096, 1, MAX_HIDDEN, src);
    c->intermediate = get_int(o, S, "intermediate_size", qwen2 ? 22016 : 11008, 1, MAX_FFN, src);
    c->layers = get_int(o, S, "num_hidden_layers", 32, 1, MAX_LAYERS, src);
    c->heads = get_int(o, S, "num_attention_heads", 32, 1, MAX_HEADS, src);
    c->kv_heads = get_int(o, S, "num_key_value_heads", c->heads, 1, c->heads, src);
    c->head_dim = get_int(o, S, "head_dim", c->hidden / c->heads, 1, MAX_HEAD_DIM, src);
    check_range(c->head_dim, 1, MAX_HEAD_DIM, S, "head_dim (hidden_size / num_attention_heads)", src);
    c->max_positions = get_int(o, S, "max_position_embeddings", qwen2 ? 32768 : 2048, 1, MAX_POSITIONS, src);
    c->eps = (float)get_num(o, S, "rms_norm_eps", 1e-6, 0, 1, src);
    if (qwen2) {  // Qwen2Attention: q, k, v with biases, o without; the MLP without (the class has no switches)
        c->qkv_bias = 1;
        c->o_bias = 0;
        c->mlp_bias = 0;
        qwen2_check_full_attention(o, c->layers, src);
    } else {
        c->qkv_bias = c->o_bias = get_bool(o, "attention_bias", 0, src);
        c->mlp_bias = get_bool(o, "mlp_bias", 0, src);
    }
    c->tie_embeddings = get_bool(o, "tie_word_embeddings", 0, src);
    c->act = parse_act(get_str(o, "hidden_act", "silu", src), "text hidden_act", src);
    // rope: transformers 5 writes rope_parameters {rope_type, rope_theta}; older files rope_theta + rope_scaling
    c->rope_theta = (float)get_num(o, S, "rope_theta", 10000.0, 1e-6, 1e12, src);
    const cJSON *rp = get_obj(o, "rope_parameters", src);
    if (rp) c->rope_theta = (float)get_num(rp, "text_config.rope_parameters.", "rope_theta", c->rope_theta, 1e-6, 1e12, src);
    const cJSON *rs = get_obj(o, "rope_scaling", src);
    const char *rope_type = get_str(rp ? rp : rs, "rope_type", NULL, src);
    if (!rope_type) rope_type = get_str(rs, "type", "default", src);
    if (strcmp(rope_type, "default") != 0) fatal("%s: rope type '%s' is not supported (default)", src, rope_type);
    if (c->heads % c->kv_heads)
        fatal("%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", src, c->heads, c->kv_heads);
    if (c->head_dim % 2) fatal("%s: head_dim %d must be even for rotary embeddings", src, c->head_dim);
    const long long D = c->hidden, F = c->intermediate, Q = (long long)c->heads * c->head_dim, KV = (long long)c->kv_heads * c->head_dim;
    check_tensor(c->vocab, D, "the token embedding (vocab_size x hidden_size)", src);
    check_tensor(Q, D, "the query projection (num_attention_heads * head_dim x hidden_size)", src);
    check_tensor(F, D, "an MLP matrix (intermediate_size x hidden_size)", src);
    // per layer: q, k, v, o, gate, up, down (+ biases), two RMSNorms
    long long layer = add64(add64(mul64(2, mul64(Q, D)), mul64(2, mul64(KV, D))), mul64(3, mul64(F, D)));
    layer = add64(layer, 2 * D + (c->qkv_bias ? Q + 2 * KV : 0) + (c->o_bias ? D : 0) + (c->mlp_bias ? 2 * F + D : 0));
    long long n = mul64(c->tie_embeddings ? 1 : 2, mul64(c->vocab, D)) + D;
    return add64(n, mul64(c->layers, layer));
}

void llava_config_parse(LlavaConfig *c, const char *json, const char *src) {
    llava_config_parse_len(c, json, strlen(json), src);
}

void llava_config_parse_len(LlavaConfig *c, const char *json, size_t len, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, len, src);
    const char *mt = get_str(root, "model_type", "llava", src);
    if (strcmp(mt, "llava") != 0) fatal("%s: model_type '%s' is not a LLaVA model (llava)", src, mt);
    // LlavaConfig builds CLIPVisionConfig(1024, 4096, 24 layers, 16 heads, 336 px, patch 14) when the
    // vision_config is absent, and the class defaults (ViT-B/32) for fields missing from a given one.
    const cJSON *vc = get_obj(root, "vision_config", src);
    VisionConfig llava_vision_defaults = {1024, 4096, 24, 16, 3, 336, 14, 768, 1e-5f, ACT_QUICK_GELU, VISION_CLIP, 0, 0, 0, 0};
    long long n = vision_parse(&c->vision, vc, vc ? clip_vision_defaults : llava_vision_defaults, 1, src);
    const cJSON *tc = get_obj(root, "text_config", src);
    const int tie_text = get_bool(tc, "tie_word_embeddings", 0, src);  // (before the decoder's count uses it)
    n = add64(n, text_decoder_parse(&c->text, tc, src));
    // LlavaConfig ties the head to the embeddings when either level asks (its own tie_word_embeddings, or the
    // text_config's, which older files carry): the parameter count is then one table smaller
    if (get_bool(root, "tie_word_embeddings", 0, src) && !tie_text) {
        c->text.tie_embeddings = 1;
        n -= (long long)c->text.vocab * c->text.hidden;
    }
    // the image token must have an embedding row: it is looked up like any other id before the features replace it
    c->image_token_id = get_int(root, "", "image_token_index", 32000, 0, c->text.vocab - 1, src);
    c->image_token_id = get_int(root, "", "image_token_id", c->image_token_id, 0, c->text.vocab - 1, src);
    check_range(c->image_token_id, 0, c->text.vocab - 1, "", "image_token_index (default 32000, below text_config.vocab_size)", src);
    const cJSON *fl = cJSON_GetObjectItemCaseSensitive(root, "vision_feature_layer");
    if (fl && cJSON_IsArray(fl)) {
        if (cJSON_GetArraySize(fl) != 1)
            fatal("%s: vision_feature_layer as a list of several layers is not supported (one layer)", src);
        fl = cJSON_GetArrayItem(fl, 0);
    }
    // hidden_states has layers + 1 entries (0 = embeddings after pre-LN); negative indices count from the end
    const int nh = c->vision.layers + 1;
    long long flv = -2;
    if (fl && !cJSON_IsNull(fl) && json_int(fl, -nh, nh - 1, &flv)) {
        char val[96];
        json_value_text(fl, val, sizeof(val));
        fatal("%s: vision_feature_layer = %s: expected an integer from %d to %d for %d vision layers", src, val, -nh, nh - 1,
              c->vision.layers);
    }
    c->feature_layer = (int)flv;
    const char *strategy = get_str(root, "vision_feature_select_strategy", "default", src);
    if (!strcmp(strategy, "full")) c->select_full = 1;
    else if (strcmp(strategy, "default") != 0)
        fatal("%s: vision_feature_select_strategy '%s' is not supported (default, full)", src, strategy);
    c->projector_act = parse_act(get_str(root, "projector_hidden_act", "gelu", src), "projector_hidden_act", src);
    c->projector_bias = get_bool(root, "multimodal_projector_bias", 1, src);
    // only the layers up to the chosen hidden state are ever computed
    c->vision_layers_run = c->feature_layer < 0 ? nh + c->feature_layer : c->feature_layer;
    // "default" drops the first token of each image (CLIP's class token; with SigLIP a patch, as transformers does)
    c->image_tokens = vision_config_tokens(&c->vision) - (c->select_full ? 0 : 1);
    if (c->image_tokens < 1)
        fatal("%s: vision_feature_select_strategy 'default' drops the only token of a %dx%d image with patch_size %d", src,
              c->vision.image_size, c->vision.image_size, c->vision.patch_size);
    // projector: linear_1 (D x Cv + D), linear_2 (D x D + D)
    const long long Cv = c->vision.hidden, D = c->text.hidden;
    check_tensor(D, Cv, "the projector's linear_1 (text hidden_size x vision hidden_size)", src);
    n = add64(n, add64(mul64(D, Cv), mul64(D, D)) + 2 * D);
    check_params(n, src);
    cJSON_Delete(root);
}

void clip_config_parse(ClipConfig *c, const char *json, const char *src) {
    clip_config_parse_len(c, json, strlen(json), src);
}

void clip_config_parse_len(ClipConfig *c, const char *json, size_t len, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, len, src);
    const char *mt = get_str(root, "model_type", "clip", src);
    if (strcmp(mt, "clip") != 0) fatal("%s: model_type '%s' is not a CLIP model (clip)", src, mt);
    long long n = vision_parse(&c->vision, get_obj(root, "vision_config", src), clip_vision_defaults, 0, src);
    const cJSON *t = get_obj(root, "text_config", src);
    ClipTextConfig *tc = &c->text;
    const char *S = "text_config.";
    tc->vocab = get_int(t, S, "vocab_size", 49408, 1, MAX_VOCAB, src);
    tc->hidden = get_int(t, S, "hidden_size", 512, 1, MAX_HIDDEN, src);
    tc->intermediate = get_int(t, S, "intermediate_size", 2048, 1, MAX_FFN, src);
    tc->layers = get_int(t, S, "num_hidden_layers", 12, 1, MAX_LAYERS, src);
    tc->heads = get_int(t, S, "num_attention_heads", 8, 1, MAX_HEADS, src);
    tc->max_positions = get_int(t, S, "max_position_embeddings", 77, 1, MAX_POSITIONS, src);
    tc->projection_dim = get_int(t, S, "projection_dim", 512, 1, MAX_HIDDEN, src);
    // pooling looks for this id in the text, so it must be one the tokenizer can produce
    tc->eos_token_id = get_int(t, S, "eos_token_id", 49407, 0, tc->vocab - 1, src);
    check_range(tc->eos_token_id, 0, tc->vocab - 1, S, "eos_token_id (default 49407, below vocab_size)", src);
    tc->eps = (float)get_num(t, S, "layer_norm_eps", 1e-5, 0, 1, src);
    tc->act = parse_act(get_str(t, "hidden_act", "quick_gelu", src), "text hidden_act", src);
    if (tc->hidden % tc->heads) fatal("%s: text hidden_size %d is not divisible by num_attention_heads %d", src, tc->hidden, tc->heads);
    c->projection_dim = get_int(root, "", "projection_dim", 512, 1, MAX_HIDDEN, src);
    const long long C = tc->hidden, F = tc->intermediate;
    check_tensor(tc->vocab, C, "the text token embedding (vocab_size x hidden_size)", src);
    check_tensor(tc->max_positions, C, "the text position embedding (max_position_embeddings x hidden_size)", src);
    check_tensor(F, C, "a text MLP matrix (intermediate_size x hidden_size)", src);
    check_tensor(c->projection_dim, c->vision.hidden > C ? c->vision.hidden : C, "a projection (projection_dim x hidden_size)", src);
    long long layer = add64(add64(mul64(4, mul64(C, C) + C), mul64(2, mul64(C, F)) + F + C), 4 * C);
    n = add64(n, add64(mul64(add64(tc->vocab, tc->max_positions), C), mul64(tc->layers, layer)) + 2 * C);
    n = add64(n, mul64(c->projection_dim, add64(c->vision.hidden, C)) + 1);  // projections, logit_scale
    check_params(n, src);
    cJSON_Delete(root);
}

void siglip_vision_config_parse_len(VisionConfig *c, const char *json, size_t len, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, len, src);
    const char *mt = get_str(root, "model_type", "siglip_vision_model", src);
    const cJSON *vc = root;
    if (!strcmp(mt, "siglip")) vc = get_obj(root, "vision_config", src);  // a SiglipModel's tower (absent: the defaults)
    else if (strcmp(mt, "siglip_vision_model") != 0)
        fatal("%s: model_type '%s' is not a SigLIP vision model (siglip_vision_model, siglip)", src, mt);
    const char *vmt = get_str(vc, "model_type", "siglip_vision_model", src);
    if (strcmp(vmt, "siglip_vision_model") != 0) fatal("%s: vision model_type '%s' is not siglip_vision_model", src, vmt);
    long long n = vision_parse(c, vc, siglip_vision_defaults, 1, src);
    check_params(n, src);
    cJSON_Delete(root);
}

void siglip_vision_config_load(VisionConfig *c, const char *path) {
    ConfigText t = config_text(path);
    siglip_vision_config_parse_len(c, t.json, t.len, t.path);
    config_text_free(&t);
}

void llava_config_load(LlavaConfig *c, const char *path) {
    ConfigText t = config_text(path);
    llava_config_parse_len(c, t.json, t.len, t.path);
    config_text_free(&t);
}

void clip_config_load(ClipConfig *c, const char *path) {
    ConfigText t = config_text(path);
    clip_config_parse_len(c, t.json, t.len, t.path);
    config_text_free(&t);
}

int llava_check_row_length(const LlavaConfig *c, int n, char *err, size_t errlen) {
    if (n <= c->text.max_positions) return 0;
    snprintf(err, errlen, "the row has %d tokens (image tokens included), past the model's %d positions (max_position_embeddings)",
             n, c->text.max_positions);
    return -1;
}

char *config_model_type(const char *path) {
    ConfigText t = config_text(path);
    cJSON *root = parse_json(t.json, t.len, t.path);
    char *mt = xstrdup(get_str(root, "model_type", "", t.path));
    cJSON_Delete(root);
    config_text_free(&t);
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

// Dinov2Config / Dinov2WithRegistersConfig (transformers' class defaults: ViT-B/14 at 224 px, mlp_ratio 4, GELU,
// eps 1e-6; registers: 4 tokens, patch 16)
void dinov2_config_parse_len(VisionConfig *c, const char *json, size_t len, const char *src) {
    memset(c, 0, sizeof(*c));
    cJSON *root = parse_json(json, len, src);
    const char *mt = get_str(root, "model_type", "dinov2", src);
    const int reg = !strcmp(mt, "dinov2_with_registers");
    if (!reg && strcmp(mt, "dinov2") != 0)
        fatal("%s: model_type '%s' is not a DINOv2 model (dinov2, dinov2_with_registers)", src, mt);
    const char *S = "";
    c->kind = VISION_DINOV2;
    c->hidden = get_int(root, S, "hidden_size", 768, 1, MAX_HIDDEN, src);
    c->layers = get_int(root, S, "num_hidden_layers", 12, 1, MAX_LAYERS, src);
    c->heads = get_int(root, S, "num_attention_heads", 12, 1, MAX_HEADS, src);
    // transformers sizes the MLP as int(hidden_size * mlp_ratio)
    const double ratio = get_num(root, S, "mlp_ratio", 4, 1e-6, MAX_FFN, src);
    const double F = floor(c->hidden * ratio);
    if (F < 1 || F > MAX_FFN)
        fatal("%s: hidden_size %d x mlp_ratio %g = %.0f: the MLP width must be from 1 to %d", src, c->hidden, ratio, F, MAX_FFN);
    c->intermediate = (int)F;
    c->channels = get_int(root, S, "num_channels", 3, 3, 3, src);
    const cJSON *is = cJSON_GetObjectItemCaseSensitive(root, "image_size"), *ps = cJSON_GetObjectItemCaseSensitive(root, "patch_size");
    if ((is && cJSON_IsArray(is)) || (ps && cJSON_IsArray(ps)))
        fatal("%s: image_size and patch_size must be integers (rectangular grids are not supported)", src);
    c->image_size = get_int(root, S, "image_size", 224, 1, MAX_IMAGE_SIZE, src);
    c->patch_size = get_int(root, S, "patch_size", reg ? 16 : 14, 1, c->image_size, src);
    c->pos_grid = c->image_size / c->patch_size;
    c->pos_antialias = reg;
    c->n_registers = reg ? get_int(root, S, "num_register_tokens", 4, 0, MAX_IMAGE_TOKENS, src) : 0;
    c->eps = (float)get_num(root, S, "layer_norm_eps", 1e-6, 0, 1, src);
    c->act = parse_act(get_str(root, "hidden_act", "gelu", src), "hidden_act", src);
    if (get_bool(root, "use_swiglu_ffn", 0, src))
        fatal("%s: use_swiglu_ffn is true (the SwiGLU MLP of ViT-g): not supported (the GELU MLP of ViT-S/B/L)", src);
    if (!get_bool(root, "qkv_bias", 1, src)) fatal("%s: qkv_bias is false: not supported (DINOv2's q, k, v have biases)", src);
    if (c->hidden % c->heads) fatal("%s: hidden_size %d is not divisible by num_attention_heads %d", src, c->hidden, c->heads);
    const long long C = c->hidden, Fl = c->intermediate, positions = (long long)c->pos_grid * c->pos_grid + 1;
    if (positions + c->n_registers > MAX_IMAGE_TOKENS)
        fatal("%s: image_size %d with patch_size %d and %d registers gives %lld tokens, past the ceiling of %d", src,
              c->image_size, c->patch_size, c->n_registers, positions + c->n_registers, MAX_IMAGE_TOKENS);
    const long long patch_dim = 3LL * c->patch_size * c->patch_size;
    check_tensor(C, patch_dim, "the patch embedding (hidden_size x 3 * patch_size^2)", src);
    check_tensor(Fl, C, "an MLP matrix (hidden_size * mlp_ratio x hidden_size)", src);
    check_tensor(positions, C, "the position embeddings", src);
    // per layer: q, k, v, o, fc1, fc2 with biases, two LayerNorms, two layer scales
    long long layer = add64(add64(mul64(4, mul64(C, C) + C), mul64(2, mul64(C, Fl)) + Fl + C), 6 * C);
    long long n = add64(add64(mul64(C, patch_dim) + C, mul64(positions + 1 + c->n_registers, C)), 3 * C);
    check_params(add64(n, mul64(c->layers, layer)), src);
    cJSON_Delete(root);
}

void dinov2_config_load(VisionConfig *c, const char *path) {
    ConfigText t = config_text(path);
    dinov2_config_parse_len(c, t.json, t.len, t.path);
    config_text_free(&t);
}
