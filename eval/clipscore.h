// CLIP similarity of images and texts, for CLIP-DPO's candidate ranking (CLIPScore = 100 x cosine of the
// projected, L2-normalized embeddings, research/methods.md §2.2) and the MVC filter's image-image
// cosine (§1.3). A CLIPModel folder (e.g. one trained with `vlm train --recipe clip`) with OpenAI's BPE.
#pragma once
#include "../data/preprocess.h"
#include "../data/tokenizer_clip.h"
#include "../model/clip.h"

typedef struct {
    ClipModel m;
    ClipActs a;
    ClipTokenizer *tok;
    PreprocessConfig pcfg;
    int S, T, P, batch;    // image side, text positions, embedding width, rows per forward pass
} ClipScorer;

// dir: CLIPModel folder; tokenizer: bpe_simple_vocab_16e6.txt.gz (NULL: dir's own copy); batch: rows per pass.
void clipscore_open(ClipScorer *s, const char *dir, const char *tokenizer, const Backend *be, int batch);
void clipscore_close(ClipScorer *s);
// out (n, P): unit-length image embeddings of the image files (paths as given; errors name the file).
void clipscore_images(ClipScorer *s, const char *const *paths, int n, float *out);
// out (n, P): unit-length text embeddings (CLIP's tokenization, truncated to the text tower's context).
void clipscore_texts(ClipScorer *s, const char *const *texts, int n, float *out);
// The dot product of two unit-length embeddings of width P: their cosine.
double clipscore_cosine(const float *a, const float *b, int P);
