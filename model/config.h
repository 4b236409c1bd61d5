// Model configurations, filled from Hugging Face config.json files. Fields absent from the file take the
// defaults of the transformers class (llava-1.5-7b-hf's minimal text_config relies on LlamaConfig's).
#pragma once
#include "ops.h"

typedef struct {  // CLIPVisionConfig
    int hidden, intermediate, layers, heads, channels, image_size, patch_size, projection_dim;
    float eps;
    ActKind act;
} VisionConfig;

typedef struct {  // CLIPTextConfig
    int vocab, hidden, intermediate, layers, heads, max_positions, projection_dim, eos_token_id;
    float eps;
    ActKind act;
} ClipTextConfig;

typedef struct {  // LlamaConfig
    int vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_positions;
    float eps, rope_theta;
    int attention_bias, mlp_bias, tie_embeddings;
    ActKind act;
} LlamaConfig;

typedef struct {  // LlavaConfig
    VisionConfig vision;
    LlamaConfig text;
    int image_token_id;
    int feature_layer;       // vision_feature_layer: index into hidden_states (negative counts from the end)
    int select_full;         // vision_feature_select_strategy "full" (keep CLS) vs "default" (drop it)
    ActKind projector_act;
    int projector_bias;
    int vision_layers_run;   // encoder layers actually needed for the selected hidden state
    int image_tokens;        // feature tokens per image (grid^2, +1 with "full")
} LlavaConfig;

typedef struct {  // CLIPConfig
    VisionConfig vision;
    ClipTextConfig text;
    int projection_dim;
} ClipConfig;

// Each reads path/config.json (path may also name the file itself) and dies naming the file and field on
// a wrong type, an unsupported value or inconsistent sizes.
void llava_config_load(LlavaConfig *c, const char *path);
void clip_config_load(ClipConfig *c, const char *path);
// Parses from a JSON text (for tests); `source` names it in messages.
void llava_config_parse(LlavaConfig *c, const char *json, const char *source);
void clip_config_parse(ClipConfig *c, const char *json, const char *source);
// The same for a text of len bytes (json[len] must be its NUL): a NUL byte inside the text is an error.
void llava_config_parse_len(LlavaConfig *c, const char *json, size_t len, const char *source);
void clip_config_parse_len(ClipConfig *c, const char *json, size_t len, const char *source);
// Every integer is range-checked (sizes from 1 to ceilings far above real models, ids below the
// vocabulary), each weight matrix must stay under 2^31 elements and the whole model under 1e11
// parameters; errors name the file, the key and the value.
// Named shapes for benchmarks and from-scratch runs: "llava-1.4b" (CLIP ViT-L/14-336 + LLaMA d2048 x 24,
// FFN 5632, vocab 32064), "llava-7b" (llava-1.5-7b-hf), "llava-tiny" (a few hundred thousand parameters),
// "llava-demo" (the miniature study's model: 32 px images, 64 image tokens, vocabulary 512).
// Returns 0, or -1 for an unknown name.
int llava_config_preset(LlavaConfig *c, const char *name);
// The config.json text of a preset (fresh string), for writing a model folder.
char *llava_config_preset_json(const char *name);

// 0 when a row of n tokens fits the decoder's max_position_embeddings; else -1 with a message giving both
// lengths in err (the caller names the record). Training and scoring past the positions the model was
// built for would run silently (RoPE has no table to overflow) on positions it never saw.
int llava_check_row_length(const LlavaConfig *c, int n, char *err, size_t errlen);

// The model_type of a config.json ("llava", "clip", ...), fresh string.
char *config_model_type(const char *path);
