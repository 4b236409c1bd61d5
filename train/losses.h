// Losses computed on the host from small per-row quantities (embeddings, summed log-probs), each with its
// gradient. The model side (forward/backward of the towers) stays on the backend.
#pragma once

typedef struct {
    double loss;
    double *img_normed, *txt_normed;  // (B, P) L2-normalized embeddings
    double *logits_per_image;         // (B, B) exp(logit_scale) * img . txt
    double dlogit_scale;              // dL/d logit_scale
    double acc_i2t, acc_t2i;          // retrieval accuracy of the matching pairs
} ClipLossOut;

// CLIP's symmetric InfoNCE (transformers CLIPModel with return_loss): image i matches text i;
// L = (CE(logits_per_text, arange) + CE(logits_per_image, arange)) / 2 with the logits scaled by
// exp(logit_scale). img, txt (B, P) are the projected, unnormalized embeddings; dimg, dtxt (B, P) receive
// the gradients (either may be NULL).
void clip_contrastive_loss(const float *img, const float *txt, int B, int P, float logit_scale, ClipLossOut *out,
                           float *dimg, float *dtxt);
void clip_loss_out_free(ClipLossOut *out);
