// CLIP text tower: token + learned position embeddings, the causal encoder, the final LayerNorm, and
// pooling at the first end-of-text token (for OpenAI checkpoints, the first 49407 = argmax of the ids).
// The final LayerNorm is applied to the pooled rows only: that is all CLIPModel reads.
#pragma once
#include "clip_encoder.h"
#include "config.h"

typedef struct { void *tok, *pos, *fin_w, *fin_b; } ClipTextW;

typedef struct {
    ClipTextConfig cfg;
    ClipEncoder enc;
    ClipTextW w, g;
} ClipText;

void clip_text_init(ClipText *m, const Backend *be, const ClipTextConfig *cfg);
void clip_text_free(ClipText *m);
void clip_text_bind(ClipText *m, ParamStore *ps, void *base, int grads, const char *prefix);  // prefix "text_model"

// The encoder runs on each row's tokens up to its first end-of-text token, row after row: with causal
// attention and pooling there, the tokens after it (padding to the batch's longest caption, or text past
// the end) change nothing, and the demo's captions are 12 tokens on average in batches padded to 32.
typedef struct {
    int cap_rows, cap_len, N;                 // N: the tokens of the last forward
    ClipEncoderActs enc;
    int *ids, *pos, *idx_eos;                 // (N) token ids, (N) their positions, (B) token of each pooled row
    void *sel, *pooled, *fin_mean, *fin_rstd; // (B, C), (B, C), (B), (B)
    void *dsel;
} ClipTextActs;

void clip_text_acts_layout(ClipTextActs *a, const ClipText *m, int cap_rows, int cap_len, int backward, Arena *ar);
void clip_text_acts_free(ClipTextActs *a);
// ids (B, T) host; pooled at the first eos_token_id of each row (dies naming the row if there is none).
// VLM_KEEP_PADDING=1 runs every position of the B rows (the tests compare the two).
void clip_text_forward(const ClipText *m, ClipTextActs *a, const int *ids, int B, int T);
// dpooled (B, C) backend memory; accumulates weight gradients
void clip_text_backward(const ClipText *m, ClipTextActs *a, const void *dpooled, int B, int T);
