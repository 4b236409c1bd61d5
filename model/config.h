// Model configurations, filled from Hugging Face config.json files. Fields absent from the file take the
// defaults of the transformers class (llava-1.5-7b-hf's minimal text_config relies on LlamaConfig's).
#pragma once
#include "ops.h"

// The vision towers: CLIP's (class token, pre-LayerNorm, patch convolution without bias), SigLIP's (no class
// token, no pre-LayerNorm, patch bias, post-LayerNorm of every token, the optional attention-pooling head) and
// DINOv2's (class token and optional register tokens, patch bias, no pre-LayerNorm, layer scale, position embeddings
// interpolated to the input's grid, the final LayerNorm of every token; its embedding is the class token's).
typedef enum { VISION_CLIP, VISION_SIGLIP, VISION_DINOV2 } VisionKind;

typedef struct {  // CLIPVisionConfig or SiglipVisionConfig
    int hidden, intermediate, layers, heads, channels, image_size, patch_size, projection_dim;
    float eps;
    ActKind act;
    VisionKind kind;
    int use_head;  // SigLIP's vision_use_head: the attention-pooling head (pooler_output); 0 for CLIP
    // DINOv2: image_size is the side of the images the tower runs on (the processor's crop), pos_grid the side of
    // the position-embedding grid it was trained with (config image_size / patch_size), n_registers its register
    // tokens (dinov2_with_registers), pos_antialias whether its position interpolation is antialiased (transformers'
    // dinov2_with_registers; plain dinov2's is not). 0 for the others.
    int pos_grid, n_registers, pos_antialias;
} VisionConfig;

typedef struct {  // CLIPTextConfig
    int vocab, hidden, intermediate, layers, heads, max_positions, projection_dim, eos_token_id;
    float eps;
    ActKind act;
} ClipTextConfig;

typedef struct {  // LlamaConfig or Qwen2Config: the same decoder, Qwen2 with q/k/v biases and no others
    int vocab, hidden, intermediate, layers, heads, kv_heads, head_dim, max_positions;
    float eps, rope_theta;
    int qkv_bias, o_bias, mlp_bias, tie_embeddings;  // LLaMA: attention_bias sets qkv and o; Qwen2: qkv only
    ActKind act;
} LlamaConfig;

typedef struct {  // LlavaConfig
    VisionConfig vision;
    LlamaConfig text;
    int image_token_id;
    int feature_layer;       // vision_feature_layer: index into hidden_states (negative counts from the end)
    int select_full;         // vision_feature_select_strategy "full" (every token) vs "default" (drops the first:
                             // CLIP's class token; SigLIP, which has none, loses its first patch, as in transformers)
    ActKind projector_act;
    int projector_bias;
    int vision_layers_run;   // encoder layers actually needed for the selected hidden state
    int image_tokens;        // feature tokens per image: the tower's tokens (grid^2, +1 for CLIP's class token),
                             // -1 with "default"
} LlavaConfig;

typedef struct {  // CLIPConfig
    VisionConfig vision;
    ClipTextConfig text;
    int projection_dim;
} ClipConfig;

// A vision tower's tokens: grid^2 patches, + the class token for CLIP, + class and register tokens for DINOv2.
int vision_config_tokens(const VisionConfig *c);

// Each reads path/config.json (path may also name the file itself) and dies naming the file and field on
// a wrong type, an unsupported value or inconsistent sizes.
void llava_config_load(LlavaConfig *c, const char *path);
void clip_config_load(ClipConfig *c, const char *path);
// A SigLIP vision tower's config: a SiglipVisionModel's (model_type siglip_vision_model) or the vision_config of
// a SiglipModel (model_type siglip).
void siglip_vision_config_load(VisionConfig *c, const char *path);
void siglip_vision_config_parse_len(VisionConfig *c, const char *json, size_t len, const char *source);
// A Dinov2Model's or Dinov2WithRegistersModel's config (model_type dinov2, dinov2_with_registers). image_size is
// left at the config's (the pretraining size); the caller sets the size it runs at (dinov2_load: the processor's
// crop). SwiGLU MLPs (use_swiglu_ffn, ViT-g) and qkv_bias false are refused by name.
void dinov2_config_load(VisionConfig *c, const char *path);
void dinov2_config_parse_len(VisionConfig *c, const char *json, size_t len, const char *source);
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
