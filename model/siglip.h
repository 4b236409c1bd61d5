// A SigLIP vision model on its own (HF SiglipVisionModel, or the vision tower of a SiglipModel): the tower of
// model/vit.h with its post-LayerNorm and, with vision_use_head, the attention-pooling head whose output
// (pooler_output) is SigLIP's image embedding. Weights named as transformers names them: vision_model.* (the
// Hub's files and transformers 4) or without the prefix (transformers 5's saves of a SiglipVisionModel).
#pragma once
#include "arena.h"
#include "config.h"
#include "params.h"
#include "vit.h"

typedef struct {
    const Backend *be;
    VisionConfig cfg;
    ParamStore ps;
    ViT vision;
} SiglipVision;

void siglip_vision_init(SiglipVision *m, const Backend *be, const VisionConfig *cfg, int with_grad);
// Reads dir/config.json (siglip_vision_model, or siglip with a vision_config) and the weights in dir.
void siglip_vision_load(SiglipVision *m, const Backend *be, const char *dir, int with_grad);
void siglip_vision_free(SiglipVision *m);
// vision_model.X (our names) -> the candidates in a file
int siglip_name_candidates(const char *canonical, char out[][256], int max);

typedef struct {
    Arena arena;
    int cap_images;
    ViTActs v;       // after a forward: v.post (B*N, C) last_hidden_state, v.pooled (B, C) pooler_output (with the head)
    void *pixels;    // (B, 3, S, S)
    void *dpooled, *dhidden;  // (B, C), (B*N, C) backward inputs
} SiglipVisionActs;

void siglip_vision_acts_init(SiglipVisionActs *a, const SiglipVision *m, int cap_images, int backward);
void siglip_vision_acts_free(SiglipVisionActs *a);
// pixels (B, 3, S, S) host fp32, preprocessed (data/preprocess.h, SiglipImageProcessor's settings)
void siglip_vision_forward(const SiglipVision *m, SiglipVisionActs *a, const float *pixels, int B);
// dpooled (B, C) and dhidden (B*N, C) host fp32 gradients of the last forward's outputs, either NULL.
// Accumulates every parameter's gradient.
void siglip_vision_backward(const SiglipVision *m, SiglipVisionActs *a, const float *dpooled, const float *dhidden, int B);
// The image embeddings (pooler_output) of n images, pixels (n, 3, S, S) -> out (n, C), host fp32. Needs the head.
void siglip_vision_embed(const SiglipVision *m, const float *pixels, int n, float *out);
