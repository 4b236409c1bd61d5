// CLIPModel: vision tower + text tower + the two projections + logit scale. Used to train the tiny CLIP
// of the miniature study and to score image-text and image-image similarity (CLIP-DPO, the MVC filter).
// Names follow transformers' CLIPModel: vision_model.*, text_model.*, visual_projection.weight,
// text_projection.weight, logit_scale.
#pragma once
#include "arena.h"
#include "clip_text.h"
#include "config.h"
#include "params.h"
#include "vit.h"

typedef struct { void *vproj, *tproj, *logit_scale; } ClipHeadW;

typedef struct {
    const Backend *be;
    ClipConfig cfg;
    ParamStore ps;
    ViT vision;
    ClipText text;
    ClipHeadW w, g;
} ClipModel;

// Builds the module and allocates its parameters (zeros); with_grad allocates gradients too.
void clip_model_init(ClipModel *m, const Backend *be, const ClipConfig *cfg, int with_grad);
// Reads dir/config.json and the safetensors weights in dir.
void clip_model_load(ClipModel *m, const Backend *be, const char *dir, int with_grad);
void clip_model_free(ClipModel *m);

typedef struct {
    Arena arena;
    int cap_images, cap_texts, cap_len;
    ViTActs v;
    ClipTextActs t;
    void *pixels;                 // (Bi, 3, S, S)
    void *img_emb, *txt_emb;      // (Bi, P), (Bt, P): projected, not yet normalized
    void *dimg_emb, *dtxt_emb, *dvpooled, *dtpooled;
} ClipActs;

void clip_acts_init(ClipActs *a, const ClipModel *m, int cap_images, int cap_texts, int cap_len, int backward);
void clip_acts_free(ClipActs *a);
// pixels (Bi, 3, S, S) host fp32; ids (Bt, T) host. Either count may be 0.
void clip_model_forward(const ClipModel *m, ClipActs *a, const float *pixels, int Bi, const int *ids, int Bt, int T);
// dimg (Bi, P), dtxt (Bt, P) host fp32 gradients of the projected embeddings; dlogit_scale host scalar.
void clip_model_backward(const ClipModel *m, ClipActs *a, const float *dimg, int Bi, const float *dtxt, int Bt, int T,
                         float dlogit_scale);
float clip_model_logit_scale(const ClipModel *m);
