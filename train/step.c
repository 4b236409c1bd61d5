#include "step.h"

#include <stdlib.h>
#include <string.h>

#include "../util/common.h"

void batch_acts_init(BatchActs *ba, const Llava *m, const TrainBatch *tb, int backward) {
    memset(ba, 0, sizeof(*ba));
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->cap_rows == 0) continue;
        llava_acts_init(&ba->a[g], m, G->cap_rows, G->cap_len, g == 0 ? tb->cap_images : 0, backward);
        if (ba->a[g].cap_out < G->cap_out) fatal("internal: batch outputs exceed the activation layout");
        ba->dlogp[g] = xmalloc(sizeof(double) * ba->a[g].cap_tokens);
        ba->has[g] = 1;
    }
    ba->row_logp = xmalloc(sizeof(double) * (tb->cap_rows + 1));
    ba->row_count = xmalloc(sizeof(int) * (tb->cap_rows + 1));
}

void batch_acts_free(BatchActs *ba) {
    for (int g = 0; g < 2; g++) if (ba->has[g]) { llava_acts_free(&ba->a[g]); free(ba->dlogp[g]); }
    free(ba->row_logp);
    free(ba->row_count);
}

// Runs every group; ba->row_logp[b], ba->row_count[b] are the summed response log-probs of each logical row.
void batch_forward(const Llava *m, BatchActs *ba, const TrainBatch *tb) {
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->B == 0) continue;
        LlavaBatch lb = {.B = G->B, .T = G->T, .ids = G->ids, .lengths = G->lengths, .image_of_row = G->image_of_row,
                         .n_images = g == 0 ? tb->n_images : 0, .pixels = tb->pixels, .pos = G->pos,
                         .segment = G->packed ? G->segment : NULL, .n_out = G->n_out, .out_index = G->out_index,
                         .out_target = G->out_target, .out_row = G->out_row, .n_logical = tb->B};
        llava_forward(m, &ba->a[g], &lb);
        for (int i = 0; i < G->n_members; i++) {
            int r = G->members[i];
            ba->row_logp[r] = ba->a[g].row_logp[r];
            ba->row_count[r] = ba->a[g].row_count[r];
        }
    }
}

// drow (B): dL/d(row log-prob); every labelled token of a row gets its row's gradient times scale.
void batch_backward(const Llava *m, BatchActs *ba, const TrainBatch *tb, const double *drow, double scale) {
    for (int g = 0; g < 2; g++) {
        const BatchGroup *G = &tb->g[g];
        if (G->B == 0) continue;
        LlavaActs *a = &ba->a[g];
        for (int i = 0; i < a->M; i++) ba->dlogp[g][i] = drow[a->out_row[i]] * scale;
        llava_backward(m, a, ba->dlogp[g]);
    }
}

