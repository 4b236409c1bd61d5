// CLIP similarity of images and texts, for CLIP-DPO's candidate ranking (CLIPScore = 100 x cosine of the
// projected, L2-normalized embeddings, research/methods.md §2.2) and the MVC filter's image-image
// cosine (§1.3). A CLIPModel folder (e.g. one trained with `vlm train --recipe clip`) with OpenAI's BPE.
#pragma once
#include "../data/preprocess.h"
#include "../data/tokenizer_clip.h"
#include "../model/clip.h"
#include "../model/dinov2.h"
#include "../model/siglip.h"

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

// Image embeddings from any of the three encoders, for image-image cosines (the released MVC filter: SigLIP
// similarity > 0.7 and DINOv2 similarity < 0.5, s-vco/s-vco README.md line 35). The folder's config.json picks it:
//   clip                                 CLIPModel: the projected image embedding (as ClipScorer; no tokenizer needed)
//   siglip, siglip_vision_model          SigLIP's pooler_output (the attention-pooling head; dies without it)
//   dinov2, dinov2_with_registers        DINOv2's pooler_output (the class token after the final LayerNorm)
// Images go through the folder's preprocessor_config.json (SiglipImageProcessor, dinov2's BitImageProcessor, ...;
// without one, the tower's own defaults).
typedef enum { IMAGE_ENCODER_CLIP, IMAGE_ENCODER_SIGLIP, IMAGE_ENCODER_DINOV2 } ImageEncoderKind;

typedef struct {
    ImageEncoderKind kind;
    const char *name;      // "CLIP", "SigLIP", "DINOv2" for messages
    ClipScorer clip;
    SiglipVision siglip;
    Dinov2 dino;
    PreprocessConfig pcfg;
    int S, P, batch;       // image side, embedding width, images per forward pass
} ImageEncoder;

void image_encoder_open(ImageEncoder *e, const char *dir, const Backend *be, int batch);
void image_encoder_close(ImageEncoder *e);
// out (n, P): unit-length image embeddings of the image files (errors name the file).
void image_encoder_images(ImageEncoder *e, const char *const *paths, int n, float *out);
