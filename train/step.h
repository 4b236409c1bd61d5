// A batch's forward and backward through the model: one pass per row group of a TrainBatch (rows with
// an image, image-free rows), log-probs gathered per logical row, gradients scattered back per token.
#pragma once
#include "../model/llava.h"
#include "data.h"

typedef struct {
    LlavaActs a[2];
    int has[2];
    double *row_logp, *dlogp[2];  // (B) per logical row; (M) per output of each group
    int *row_count;
} BatchActs;

void batch_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, int backward);
void batch_acts_free(BatchActs *ba);
// Runs every group; ba->row_logp[b], ba->row_count[b] are the summed response log-probs of each logical row.
void batch_forward(const Llava *m, BatchActs *ba, const TrainBatch *tb);
// drow (B): dL/d(row log-prob); every labelled token of a row gets its row's gradient times scale.
void batch_backward(const Llava *m, BatchActs *ba, const TrainBatch *tb, const double *drow, double scale);
