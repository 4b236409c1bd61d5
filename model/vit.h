// CLIP vision tower: patch embedding (a conv with stride = kernel, done as im2col + matmul), class token,
// learned positions, pre-LayerNorm ("pre_layrnorm" in HF names), the encoder, and the post-LayerNorm of
// the pooled class token (CLIPModel only; LLaVA reads an intermediate hidden state instead).
#pragma once
#include "clip_encoder.h"
#include "config.h"

typedef struct { void *patch_w, *cls, *pos, *pre_w, *pre_b, *post_w, *post_b; } ViTW;

typedef struct {
    VisionConfig cfg;
    ClipEncoder enc;    // enc.layers = layers registered (LLaVA: only those up to the feature layer)
    int with_post_ln;
    int grid, n_patches, n_tokens, patch_dim;  // grid^2 patches, +1 class token, 3*P*P
    ViTW w, g;
} ViT;

// Sets up the module (no memory): registers `layers` encoder layers under prefix ("vision_model" or
// "model.vision_tower.vision_model").
void vit_init(ViT *m, const Backend *be, const VisionConfig *cfg, int layers, int with_post_ln);
void vit_free(ViT *m);
// Registers or binds the tensors (see params.h); grads bind with base = ps->grad.
void vit_bind(ViT *m, ParamStore *ps, void *base, int grads, const char *prefix);

typedef struct {
    int cap_images;
    ClipEncoderActs enc;
    void *patches, *pe, *emb, *pre_mean, *pre_rstd;   // (B*NP, K), (B*NP, C), (B*N, C), (B*N), (B*N)
    void *cls_rows, *pooled, *post_mean, *post_rstd;  // (B, C), (B, C), (B), (B)
    void *dpe, *demb, *dcls;                          // backward scratch
    int *idx_patch, *idx_cls, *idx_zero;              // (B*NP) patch rows, (B) class rows, (B) zeros
} ViTActs;

void vit_acts_layout(ViTActs *a, const ViT *m, int cap_images, int keep, int backward, Arena *ar);
void vit_acts_free(ViTActs *a);
// pixels (B, 3, H, W) act -> a->enc.res[n_layers] (B*N, C); with post_ln also a->pooled (B, C)
void vit_forward(const ViT *m, ViTActs *a, const void *pixels, int B, int n_layers);
// Precondition: a->enc.dres holds dL/d res[n_layers] (zero it if only the pooled output has a gradient).
// dpooled (B, C) or NULL. Accumulates all weight gradients.
void vit_backward(const ViT *m, ViTActs *a, const void *dpooled, int B, int n_layers);
