// The vision towers, CLIP's and SigLIP's, around one encoder (model/clip_encoder.h):
//   CLIP    patch embedding (a conv with stride = kernel, done as im2col + matmul, no bias), class token, learned
//           positions, pre-LayerNorm ("pre_layrnorm" in HF names), the encoder, and the post-LayerNorm of the
//           class token (the pooled output: CLIPModel only; LLaVA reads an intermediate hidden state instead).
//   SigLIP  patch embedding with a bias, learned positions, no class token and no pre-LayerNorm, the encoder, the
//           post-LayerNorm of every token (last_hidden_state) and, with vision_use_head, the attention-pooling
//           head (pooler_output): a learned probe query attends over the tokens (nn.MultiheadAttention), then
//           a LayerNorm and an MLP on a residual. LLaVA reads an encoder hidden state here too.
//   DINOv2  patch embedding with a bias, the class token, the register tokens (dinov2_with_registers) after it,
//           learned positions for the class token and the patches (interpolated in the forward pass to the grid
//           the images give), no pre-LayerNorm, the encoder with layer scale, the final LayerNorm of every token
//           (last_hidden_state) and the class token's row of it (pooler_output, the image embedding). The encoder
//           layer is CLIP's with its layer scales (clip_encoder.h, layer_scale); forward and backward, every
//           parameter with its gradient, the position interpolation included (through pos_map).
#pragma once
#include "clip_encoder.h"
#include "config.h"

// SiglipMultiheadAttentionPoolingHead. in_w holds the q, k and v projections back to back (PyTorch's
// in_proj_weight), so k and v are one (2C, C) matmul from its second third.
typedef struct {
    void *probe;             // (C)
    void *in_w, *in_b;       // (3C, C), (3C)
    void *out_w, *out_b;     // (C, C), (C)
    void *ln_w, *ln_b;       // (C), (C)
    void *fc1_w, *fc1_b, *fc2_w, *fc2_b;  // (F, C), (F), (C, F), (C)
} ViTHeadW;

typedef struct {
    void *patch_w, *patch_b;  // (C, 3, P, P), SigLIP's and DINOv2's (C)
    void *cls, *pos;          // CLIP's and DINOv2's (C); (n_tokens, C), DINOv2's (1 + pos_grid^2, C)
    void *registers;          // DINOv2 with registers: (n_registers, C)
    void *pre_w, *pre_b;      // CLIP's (C), (C)
    void *post_w, *post_b;    // (C), (C)
    ViTHeadW head;            // SigLIP with vision_use_head
} ViTW;

typedef struct {
    VisionConfig cfg;
    ClipEncoder enc;    // enc.layers = layers registered (LLaVA: only those up to the feature layer)
    int with_post_ln;   // the tower's own outputs: CLIP's pooled class token; SigLIP's post-LN hidden states and head
    int has_head;       // SigLIP's attention-pooling head (with_post_ln and vision_use_head)
    int first_patch;    // token row of each image's first patch: 1 (CLIP), 0 (SigLIP), 1 + registers (DINOv2)
    int grid, n_patches, n_tokens, patch_dim;  // grid^2 patches, +1 class token (CLIP), 3*P*P
    ViTW w, g;
    // DINOv2 at a grid other than its table's (pos_grid): (grid^2, pos_grid^2) the bicubic map from the table's patch
    // positions to this grid's, a linear map transformers' interpolation equals (not a parameter: model/dinov2.c
    // builds it); NULL at the table's own grid
    void *pos_map;
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
    void *cls_rows, *pooled, *post_mean, *post_rstd;  // (B, C), (B, C), (B or SigLIP B*N), (B or B*N)
    void *tok, *dtok;   // DINOv2: (N, C) every image's tokens before its patch embeddings are added (class token + its
                        // position, the registers, the patch positions at this grid), and its gradient
    void *dpe, *demb, *dcls;                          // backward scratch
    int *idx_patch, *idx_cls, *idx_zero;              // (B*NP) patch rows, (B) first token of each image, (B) zeros
    // SigLIP's outputs: the post-LayerNorm of every token, and the head on them
    void *post;                       // (B*N, C) last_hidden_state (SigLIP and DINOv2)
    void *hprobe, *hq, *hqg, *hkv;    // (B, C) probe rows, (B, C) their queries, (B*N, C) query grid, (B*N, 2C) keys|values
    void *hatt, *hlse, *hatt_rows;    // (B*N, C) attention grid, (B, NH, N) acc, (B, C) the probe rows of it
    void *hres, *hln, *hln_mean, *hln_rstd, *hfc1, *hfc1a, *hfc2;  // (B, C), (B, C), (B), (B), (B, F), (B, F), (B, C)
    void *dpost, *dhfc, *dhln, *dhres, *dhatt, *dhq, *dhkv;        // backward: (B*N, C), (B, F), (B, C), (B, C),
                                                                    // (B*N, C), (B*N, C), (B*N, 2C)
} ViTActs;

void vit_acts_layout(ViTActs *a, const ViT *m, int cap_images, int keep, int backward, Arena *ar);
void vit_acts_free(ViTActs *a);
// pixels (B, 3, H, W) act -> a->enc.res[n_layers] (B*N, C); with post_ln also a->pooled (B, C) (CLIP and DINOv2: the
// class token's post-LayerNorm; SigLIP: the head's output, when it has one) and, for SigLIP and DINOv2, a->post (B*N, C)
void vit_forward(const ViT *m, ViTActs *a, const void *pixels, int B, int n_layers);
// Precondition: a->enc.dres holds dL/d res[n_layers] (zero it if only the tower's outputs have gradients).
// dpooled (B, C) or NULL; dhidden (B*N, C), SigLIP's dL/d a->post, or NULL (DINOv2: NULL, its pooled output
// only). Accumulates all weight gradients.
void vit_backward(const ViT *m, ViTActs *a, const void *dpooled, const void *dhidden, int B, int n_layers);
