// A DINOv2 vision model (HF Dinov2Model, or Dinov2WithRegistersModel with register tokens): the tower of
// model/vit.h, forward and backward (layer scales, interpolated positions and all). Its image embedding is the class token after the final LayerNorm (pooler_output),
// the embedding whose cosine the released MVC filter thresholds (DINOv2-large similarity < 0.5).
// Weights as transformers names them: the Hub's files (encoder.layer.N.attention.attention.query, ...,
// attention.output.dense) or transformers 5's (attention.q_proj, ..., attention.o_proj), with or without the
// "dinov2." prefix of a Dinov2ForImageClassification file.
#pragma once
#include "arena.h"
#include "config.h"
#include "params.h"
#include "vit.h"

typedef struct {
    const Backend *be;
    VisionConfig cfg;  // cfg.image_size: the side the images are run at; cfg.pos_grid: the position table's grid
    ParamStore ps;
    ViT vision;
} Dinov2;

// Reads dir/config.json (dinov2 or dinov2_with_registers) and the weights in dir, for images of image_size x
// image_size pixels (0: the config's image_size). When image_size / patch_size differs from the config's grid,
// the position embeddings are interpolated as transformers does (bicubic; antialiased for the registers model).
// with_grad: allocate every parameter's gradient (dinov2_backward).
void dinov2_load(Dinov2 *m, const Backend *be, const char *dir, int image_size, int with_grad);
// The model with zeroed weights for a parsed config (cfg->image_size the run size), its position map built.
void dinov2_init(Dinov2 *m, const Backend *be, const VisionConfig *cfg, int with_grad);
void dinov2_free(Dinov2 *m);
// our canonical names -> the candidates in a file
int dinov2_name_candidates(const char *canonical, char out[][256], int max);
// The linear map transformers' interpolation of a G0 x G0 grid of patch positions to G x G is, the same for every
// channel: map (G*G, G0*G0), host fp32; positions at the new grid (G*G, C) = map @ the table's patch rows
// (G0*G0, C). registers_model picks Dinov2WithRegistersModel's antialiased interpolation.
void dinov2_position_map(int G0, int G, int registers_model, float *map);

typedef struct {
    Arena arena;
    int cap_images;
    ViTActs v;       // after a forward: v.post (B*N, C) last_hidden_state, v.pooled (B, C) pooler_output
    void *pixels;    // (B, 3, S, S)
    void *dpooled;   // (B, C) the backward pass's input
} Dinov2Acts;

void dinov2_acts_init(Dinov2Acts *a, const Dinov2 *m, int cap_images, int backward);
void dinov2_acts_free(Dinov2Acts *a);
// pixels (B, 3, S, S) host fp32, preprocessed (the folder's BitImageProcessor settings, data/preprocess.h)
void dinov2_forward(const Dinov2 *m, Dinov2Acts *a, const float *pixels, int B);
// dpooled (B, C) host fp32, the gradient of the last forward's pooler_output. Accumulates every parameter's gradient.
void dinov2_backward(const Dinov2 *m, Dinov2Acts *a, const float *dpooled, int B);
// The image embeddings (pooler_output) of n images, pixels (n, 3, S, S) -> out (n, C), host fp32.
void dinov2_embed(const Dinov2 *m, const float *pixels, int n, float *out);
