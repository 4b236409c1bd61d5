// LLaVA assembly (HF LlavaForConditionalGeneration): CLIP vision tower -> hidden state of the feature
// layer (class token dropped unless "full") -> 2-layer projector linear_2(act(linear_1(f))) -> written
// into the token sequence at the image-token positions -> LLaMA decoder.
//
// Each distinct image in a batch is encoded and projected once; rows refer to images by index, so rows
// that share an image (S-VCO's four image rows use two images) share its features, and the gradients of
// those rows add up on the one copy.
#pragma once
#include "arena.h"
#include "config.h"
#include "llama.h"
#include "params.h"
#include "vit.h"

typedef struct { void *w1, *b1, *w2, *b2; } ProjectorW;

typedef struct {
    const Backend *be;
    LlavaConfig cfg;
    ParamStore ps_vision, ps_projector, ps_text;
    ViT vision;
    ProjectorW pw, pg;
    Llama lm;
} Llava;

typedef struct {
    int train_vision, train_projector, train_text;  // allocate gradients for these parts
} LlavaTrainable;

void llava_init(Llava *m, const Backend *be, const LlavaConfig *cfg, LlavaTrainable tr);
// Reads dir/config.json and the weights (either key layout of LLaVA checkpoints).
void llava_load(Llava *m, const Backend *be, const char *dir, LlavaTrainable tr);
void llava_free(Llava *m);
// Maps our canonical (transformers >= 4.52) names to the candidates in a file, old layout included.
int llava_name_candidates(const char *canonical, char out[][256], int max);

// One batch of rows. ids are full token ids with every image expanded to cfg.image_tokens copies of
// image_token_id; labels are HF labels (-100 = ignored), aligned with ids (the shift happens inside).
//
// Several images in a row (LLaVA-NeXT-Interleave's data, MVC sides with image lists): row b's images are the
// consecutive batch images image_of_row[b] .. image_of_row[b] + images_of_row[b] - 1, and its image tokens, read
// left to right, take their features in that order, cfg.image_tokens each: image-token k of the row gets feature
// row k of the concatenated images, as transformers' masked_scatter of the stacked features does.
//
// Packed rows (optional): a row may hold several sequences that share a prefix, e.g. S-VCO's
// [image + prompt][y_w][y_l]. Then `pos` restarts the positions of each later sequence after the prefix,
// `segment` gives the tree mask (0 = the shared prefix, k > 0 = sequence k, which sees the prefix and
// itself only; see AttnShape), and the outputs are listed explicitly: out_index[m] = b*T + t is the
// position whose logits predict out_target[m], counted in the log-prob of logical row out_row[m]. A
// position can appear twice (the last prefix token predicts the first token of both responses).
typedef struct {
    int B, T;
    const int *ids;           // (B, T) host
    const int *labels;        // (B, T) host, or NULL
    const int *lengths;       // (B) host: valid tokens per row (right padding); NULL = all T
    const int *image_of_row;  // (B) host: index into the images (the row's first), -1 = image-free row; NULL = no images
    const int *images_of_row; // (B) host: how many consecutive images row b has (0 for an image-free row); NULL =
                              // one for each row with an image
    int n_images;
    const float *pixels;      // (n_images, 3, S, S) host fp32, preprocessed
    const float *feats;       // or (n_images, image_tokens, vision hidden) host fp32: the frozen tower's
                              // features of each image (llava_image_features), instead of running it
    int all_logits;           // logits for every position (parity tests), not only the labelled ones
    const int *pos;           // (B, T) host positions, or NULL for 0..T-1
    const int *segment;       // (B, T) host segment ids, or NULL (plain causal rows)
    int n_out;                // > 0: explicit outputs below (labels are then ignored)
    const int *out_index, *out_target, *out_row;  // (n_out) each
    int n_logical;            // logical rows of the explicit outputs (row_logp has this many entries)
} LlavaBatch;

typedef struct {
    Arena arena;
    int cap_rows, cap_tokens, cap_images, cap_out, backward;
    ViTActs v;
    LlamaActs l;
    void *pixels;                    // (NI, 3, S, S)
    void *feats, *p1, *p1a, *p2;     // (NI*P, Cv), (NI*P, D), (NI*P, D), (NI*P, D)
    int *embed_ids, *img_dst, *img_src, *feat_sel;   // (N), (N), (N), (NI*P)
    void *dp2, *dp1, *dfeats;
    // results of the last forward, on the host
    int M;                           // rows of logits
    int n_rows;                      // entries of row_logp: batch rows, or the logical rows of packed batches
    int cap_logical;                 // allocated entries of row_logp / row_count (grown on demand)
    int use_segments;                // the last forward used a tree mask
    int *out_row, *out_pos;          // (M) (logical) row and position of each output
    int *out_target;                 // (M) the target token of each output, -1 where there is none
    double *logp;                    // (M) log-prob of each target (0 where none)
    double *row_logp;                // (n_rows) sum over the row's targets
    int *row_count;                  // (n_rows) number of targets in the row
    int n_img_tokens;                // image positions in the batch
    int B, T, N;                     // rows, their length, and the tokens the decoder ran on (B*T or fewer)
} LlavaActs;

// What the activations are laid out for: a forward pass only, or training (every activation kept, or with
// the decoder layers recomputed in the backward pass: see LlamaKeep in model/llama.h).
typedef enum { ACTS_INFERENCE, ACTS_BACKWARD, ACTS_BACKWARD_RECOMPUTE } ActsMode;

// The vision tower's features of n images, pixels (n, 3, S, S) -> out (n, image_tokens, vision hidden), host
// fp32: what llava_forward gives the projector. The tower's ops are per image (row-wise, batch-invariant
// matmuls, attention within an image), so on the CPU each image's features are bitwise those computed in any
// batch; a frozen tower's features can be computed once and passed as LlavaBatch.feats.
void llava_image_features(const Llava *m, const float *pixels, int n, float *out);
// The forward-only arena llava_image_features runs the tower in (LLAVA_FEATURE_CHUNK images at a time); the
// memory plan (train/plan.c) allocates the same one.
enum { LLAVA_FEATURE_CHUNK = 64 };
void llava_features_acts_init(LlavaActs *a, const Llava *m);

// The decoder's tokens for a batch: the valid tokens of each row, row after row, the right padding dropped
// (the layers do not compute it; the attention still sees the rows, model/llama.h). Writes the token index
// of each row's first position into first (B) and returns the number of tokens N. With LoRA, or without
// padding, the tokens are the B*T cells themselves (first[b] = b*T, N = B*T): LoRA's dropout masks are drawn
// per element of its (N, in) input, so dropping the padding would change them. VLM_KEEP_PADDING=1 keeps the
// cells always (the tests compare the two).
int llava_token_layout(const Llava *m, const LlavaBatch *bt, int *first);

// Capacity: rows, tokens per row, distinct images per batch, and positions that get logits (cap_out; 0: every
// token). The logits buffer is (cap_out, vocab): with 576 image tokens per row a training batch labels a
// small part of its positions, so a tight cap_out saves most of that buffer.
void llava_acts_init(LlavaActs *a, const Llava *m, int cap_rows, int cap_len, int cap_images, int cap_out, ActsMode mode);
void llava_acts_free(LlavaActs *a);
// Validates the batch (ids in the vocabulary, image-token counts, lengths) with errors naming the row,
// runs the model, and fills a->logp / a->row_logp. Returns 0, or dies with a clear message.
void llava_forward(const Llava *m, LlavaActs *a, const LlavaBatch *batch);
// dlogp (M) host: dL/d logp of each output row of the last forward. Accumulates gradients of every
// trainable part.
void llava_backward(const Llava *m, LlavaActs *a, const double *dlogp);
