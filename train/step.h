// A batch's forward and backward through the model: one pass per row group of a TrainBatch (rows with
// an image, image-free rows), log-probs gathered per logical row, gradients scattered back per token.
#pragma once
#include <stdio.h>

#include "../model/llava.h"
#include "data.h"
#include "optim.h"

typedef struct {
    LlavaActs a[2];
    int has[2];
    double *row_logp, *dlogp[2];  // (B) per logical row; (M) per output of each group
    int *row_count;
    ActsMode mode;
    int cap_rows[2], cap_len[2], cap_out[2];  // the TrainBatch group capacities the arenas were made for
} BatchActs;

// A frozen vision tower gives each image the same features at every step: they are computed once here, the
// images streaming through the loader, and batches then carry features (llava_forward skips the tower), when
// they take no more memory than the pixels (the demo: 9 x 96 floats against 3 x 48 x 48). The same numbers as running
// the tower in each batch (llava_image_features). Returns 1 if it did; a trained tower keeps the pixels.
// Not when the features of all the images would pass VLM_FEATURE_CACHE_MB (1024 by default): memory stays
// bounded by the batch, not the data set. VLM_CACHE_FEATURES=0 turns it off (the tower runs in every batch, as the tests compare), and so do fresh crops
// (mDPO's crops are new in every pass: each goes through the tower, and the pixels stay to draw them from).
int train_data_encode_images(TrainData *d, const Llava *m);
// Whether train_data_encode_images would replace images of image_size pixels by features (the memory plan asks).
int train_caches_features(const Llava *m, int image_size, int fresh_crops);

void batch_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, ActsMode mode);
void batch_acts_free(BatchActs *ba);
// Runs every group; ba->row_logp[b], ba->row_count[b] are the summed response log-probs of each logical row.
// A group whose TrainBatch capacities grew (a file's data: longer rows than before) gets arenas made anew first.
void batch_forward(const Llava *m, BatchActs *ba, const TrainBatch *tb);
// drow (B): dL/d(row log-prob); every labelled token of a row gets its row's gradient times scale.
void batch_backward(const Llava *m, BatchActs *ba, const TrainBatch *tb, const double *drow, double scale);

// Prints where the memory of a training run goes, planned before the first step: weights, gradients and
// optimizer state per store, and the activation arenas by section (policy, and the reference model's
// forward-only arenas when `ref` is not NULL; `ref_weights` when the reference is a second copy). The
// accounting is train/plan.h's, which `vlm train --plan` computes without allocating.
void memory_report(FILE *f, const Llava *m, const Optimizer *o, const BatchActs *ba, const BatchActs *ref,
                   const Llava *ref_weights);
// Model FLOPs of one training step on this batch (research/llava.md §9): the vision tower's forward (3x
// when it is trained), 3x the projector and the decoder over the batch's physical rows, and the head on
// the labelled positions only. Recomputation and the reference model are not counted (MFU convention).
double batch_step_flops(const Llava *m, const TrainBatch *tb);
