// Training examples for the LLaVA recipes, turned into batch rows; nothing of the data set's size is made at load
// but an index: each record's place in its file and the images it names. Its text is tokenized and its images are
// made when a batch needs them, by the streaming loader's threads (TrainStream, below), so the time to the first
// step does not grow with the data set (notes/perf.md, streaming).
//
// Load checks each record's JSON and structure (its keys, its image fields, the fields its recipe reads) and that
// its image files exist (stat). What needs the tokenizer or the pixels (a prompt longer than --max-text-len, a
// token outside the vocabulary, an image that does not decode) is found when a batch reaches the record, and
// stops the run there naming the file, the line and the problem. --skip-bad instead tokenizes every record and
// decodes every image at load (the slow, careful load): the bad ones are skipped and counted before step 1, so
// that the run that follows meets none.
//
// Each example becomes the rows its recipe lists (train/recipes.h: RowSpec), in the order the recipe's loss
// reads them: sft 1 row, dpo 2 (chosen, rejected), svco and vco 6 (SVCO_*), mdpo 3 (MDPO_*, the third under a
// random-resized crop m' of the image: drawn anew in every forward pass, TrainData.fresh_crops, or with --crop
// fixed the same crop for an example every time, from (seed, example), made with the batch).
//
// Input files (JSON Lines, or a JSON array for S-VCO's released mvc.json); text fields go through the
// chat template, *_ids fields are taken as token ids (the image token once, where the image goes). The
// recipe's record kind says which keys are read:
//   RECORDS_SFT   {"image"?, "prompt", "response"}            or {"image"?, "prompt_ids", "response_ids"}
//                 or LLaVA's {"image"?, "conversations": [{"from": "human"|"gpt", "value"}, ...]}
//   RECORDS_PAIR  {"image"?, "prompt", "chosen", "rejected"}  or {"image"?, "prompt_ids", "chosen_ids", "rejected_ids"}
//   ("image" may be a list of paths, or TRL's "images": [paths] ([] for a text-only record): several images go
//   in order where the conversation's "<image>" placeholders are, one per image, or in front of the first user
//   message when it has none (data/chat.h; *_ids rows: the image token once per image, or expanded);
//   "prompt" may be "question"; any other key
//   that looks like an image is an error naming it: the image would silently be left out of training;
//   mdpo needs an image, to crop)
//   RECORDS_MVC   {"chosen_images": [..], "rejected_images": [..], "instruction_prompt", "system_prompt"?,
//                  "chosen_response", "rejected_response"}
//                 or {"image_w", "image_l", "prompt_ids", "chosen_ids", "rejected_ids"} (each a path or a list)
//                 each side a list of up to TRAIN_MAX_SIDE_IMAGES images, which its rows see in order
// Image paths are relative to the data file's folder (or --images DIR).
#pragma once
#include <cJSON.h>

#include "../data/augment.h"
#include "../data/preprocess.h"
#include "../data/shard.h"
#include "../data/tokenizer.h"
#include "../model/config.h"
#include "recipes.h"

typedef struct {
    int *ids;       // (n) image tokens expanded
    int *labels;    // (n) HF labels: the id on response tokens, -100 elsewhere
    int n;
    int image;      // which image side of the example this row sees (0 or 1; all its images), -1 for an image-free row
} TrainRow;

// The most images one side of an example may have (LLaVA-NeXT-Interleave's rows have a few).
enum { TRAIN_MAX_SIDE_IMAGES = 8 };

typedef struct {
    int line;          // line (or array index + 1) in the input file
    int image[2][TRAIN_MAX_SIDE_IMAGES];  // each side's images in prompt order, indices into TrainData.images
    int n_image[2];    // images of each side, 0 if unused
    TrainRow rows[RECIPE_MAX_ROWS];  // (n_rows) in the recipe's row order
    int n_rows;
} TrainExample;

typedef struct {
    const char *tokenizer;   // tokenizer.model or tokenizer.json for text fields (NULL: ids only)
    const char *template_name;  // one of CHAT_TEMPLATE_NAMES (data/chat.h), "vicuna_v1" by default; others die
    const char *system;      // system prompt for every row, a record's own included (NULL: the record's, else the
                             // template's)
    const char *images_dir;  // root for image paths (NULL: the data file's folder)
    int max_len;             // 0: no limit; longer rows are truncated in their response or rejected
    int max_text_len;        // 0: no limit; the same with the image counted as one token (S-VCO's 128, data/chat.h)
    int skip_bad;            // count and skip malformed records (and missing or unreadable images) instead of stopping
    unsigned long long seed; // for mDPO's corrupted crops drawn once per example (--crop fixed)
    double crop_lo, crop_hi; // mDPO crop scale range (--crop-scale)
    int fresh_crops;         // mDPO's crop drawn in every forward pass (train_batch_draw_crops), not at load
} TrainDataOptions;

// Where an image of the data comes from. Its pixels are made when a batch needs them (train_data_image), on
// the prefetching loader's threads (TrainStream): nothing holds the data set's pixels, so memory is bounded by the
// batch and the prefetch depth whatever the number of images.
typedef enum {
    TRAIN_IMAGE_FILE,    // decoded and preprocessed from a file
    TRAIN_IMAGE_SHARD,   // normalized from a packed shard's uint8 pixels
    TRAIN_IMAGE_CROP,    // mDPO's corrupted image with --crop fixed: a crop of another image, drawn from (seed, example,
                         // part)
    TRAIN_IMAGE_MEMORY,  // a row of TrainData.pixels (synthetic data)
} TrainImageKind;

typedef struct {
    int kind;       // TrainImageKind
    char *name;     // FILE: the path; otherwise a description, for messages
    long index;     // SHARD: the shard's image index; CROP: the source image (ours); MEMORY: the row of TrainData.pixels
    int example;    // CROP: the example whose seed draws the crop
    int part;       // CROP: which of the example's images it crops (each image of a list draws its own crop)
    int line;       // the record that first named the image, for messages
} TrainImage;

// Where a record of lazily loaded data is, and the images it names (found at load). Its image lists live in one
// array shared by all records (TrainData.record_images): a record costs the same whatever its sides' image counts.
typedef struct {
    long long at;   // JSON Lines or a JSON array: the byte offset of its text; a shard: its index in TrainData.items
    int len;        // JSON Lines or a JSON array: its text's length in bytes
    int line;       // line (or array index + 1) in the input file
    int image_at;   // its images in TrainData.record_images: side 0's n_image[0], then side 1's n_image[1]
    int n_image[2]; // images of each side, 0 if unused (as TrainExample.n_image)
} TrainRecord;

typedef struct {
    const Recipe *recipe;
    TrainExample *ex;        // (n) examples made whole at load (synthetic data); NULL for a file's data (rec)
    TrainRecord *rec;        // (n) a file's records, tokenized when a batch needs them (train_data_example)
    int *record_images;      // (n_record_images) the records' image lists (TrainRecord.image_at), indices into images
    int n_record_images;
    int n;
    int n_images, image_size;
    TrainImage *images;      // (n_images) where each image's pixels come from, each distinct source once
    float *pixels;           // (n_memory_images, 3, S, S) the pixels of TRAIN_IMAGE_MEMORY images (synthetic data), or NULL
    float *feats;            // (n_images, feat_size) the frozen tower's features (train_data_encode_images), or NULL
    int feat_size;           // image_tokens * vision hidden
    int max_example_images;  // the most images one example names (both sides), at least 2: a batch's room per example
    int n_bad;               // records skipped with skip_bad
    unsigned long long hash; // of what the rows are made from (the file's bytes, the tokenizer's, the options that
                             // shape rows), each record's image lists in order and the images' sources: keys the
                             // reference log-prob cache and --resume
    int fresh_crops;         // image slot 1 of every example crops its slot-0 images (each its own), drawn anew for every
                             // forward pass by train_batch_draw_crops (mDPO's code crops inside forward); the
                             // pixels stay (no feature cache: each crop goes through the tower)
    double crop_lo, crop_hi; // the crops' scale range
    unsigned long long crop_seed;  // --crop fixed: the run's seed the crops are drawn from
    char *path;              // the data file, for messages
    PreprocessConfig pcfg;   // how file images become pixels
    Shard *shard;            // the packed shard the data came from (kept mapped), or NULL
    // what train_data_example makes rows with (a file's data):
    int fd;                  // JSON Lines: the file, open (its lines are read again by offset); -1 otherwise
    cJSON **items;            // (n_items) a shard's records, kept parsed (files are reread by offset)
    int n_items;
    Tokenizer *tok;          // NULL: ids only
    LlavaConfig cfg;
    TrainDataOptions opt;    // template_name and system copied (owned); tokenizer NULL
} TrainData;

void train_data_load(TrainData *d, const Recipe *recipe, const char *path, const LlavaConfig *cfg,
                     const PreprocessConfig *pcfg, const TrainDataOptions *opt);
void train_data_free(TrainData *d);
// Example i with its rows: d's own (synthetic data), or its record tokenized into *scratch (freed with
// train_example_free). Thread-safe. A record whose rows cannot be made dies naming the file, the line and the problem.
const TrainExample *train_data_example(const TrainData *d, int i, TrainExample *scratch);
void train_example_free(TrainExample *e);
// The images of side (0 or 1) of example i, in prompt order: *n of them (0 if unused), TrainData.images indices.
const int *train_data_example_images(const TrainData *d, int i, int side, int *n);
// The pixels of image i, (3, S, S) into out: decoded and preprocessed (or normalized, or cropped) now. Thread-safe.
// An image that can no longer be read dies naming the file, the record and the problem.
void train_data_image(const TrainData *d, int i, float *out);
// Random examples for benchmarks: each has [BOS, image tokens, prompt_len - 1 text tokens] as its prompt
// (image-free rows drop the image tokens) and random responses of resp_len tokens, except every seventh
// example (e % 7 == 6) when long_resp_len > 0: responses of long_resp_len tokens (the demo's SFT data has a
// caption among each scene's six questions); random pixels.
void train_data_synthetic(TrainData *d, const Recipe *recipe, int n_examples, const LlavaConfig *cfg, int prompt_len,
                          int resp_len, int long_resp_len, unsigned long long seed);

// The order examples are visited in: a seeded permutation per epoch; the position (epoch, cursor) is
// what checkpoints save, so a resumed run continues with the same next example.
typedef struct {
    int n, epoch, cursor;
    unsigned long long seed;
    int *perm;  // (n) this epoch's order
} DataOrder;

void data_order_shuffle(DataOrder *o);                 // the permutation of o->epoch
void data_order_next(DataOrder *o, int *idx, int k);   // the next k examples (crossing epochs as needed); idx NULL: skips them

// A micro-batch of examples laid out as model rows: distinct images once, each row pointing at its side's images
// (consecutive batch images; a side with several images shares them with another row only as the same list).
//
// Rows with an image and image-free rows go into separate groups, each padded to its own longest row:
// S-VCO's image-free rows are ~600 tokens shorter than its image rows, and padding them to the image
// rows' length would more than double their cost. Each group runs as its own forward pass.
//
// With packing, two rows of an example that share their image and prompt (DPO's chosen and rejected;
// S-VCO's (I, y_w) and (I, y_l)) become one row [prefix][response a][response b] with a tree mask:
// response b sees the prefix and itself, its positions restart after the prefix. Exact for causal
// attention, and the ~600-token image prefix is computed once instead of twice (DESIGN.md §1).
// The batch rows of the examples ("logical rows", b = 0..B-1) keep their order either way; every
// output names its logical row.
typedef struct {
    int B, T;                                     // physical rows (packed or single) and their length
    int *ids, *lengths, *image_of_row;            // (B*T), (B), (B) as LlavaBatch wants them
    int *images_of_row;                           // (B) the row's images, consecutive from image_of_row (0: none)
    int *pos, *segment;                           // (B*T) positions and tree-mask segments
    int packed;                                   // some row holds two sequences: segments are needed
    int n_out, *out_index, *out_target, *out_row; // explicit outputs, out_row = logical batch row
    int n_members, *members;                      // logical rows computed in this group
    int cap_rows, cap_len, cap_out;
} BatchGroup;

typedef struct {
    int B, n_images;                  // logical rows in all groups; distinct images
    int *crop_source, *crop_example;  // (n_images) with fresh crops: the batch image (uncropped) a batch image is a
                                      // crop of and the example it belongs to; -1 for an image that is not a crop
    int *crop_part;                   // (n_images) with fresh crops: which of the example's images it crops
    float *pixels;                    // (n_images, 3, S, S), read by the image group; or, when the data has
    float *feats;                     // features, (n_images, feat_size) and pixels NULL
    int *example_of_row, *kind_of_row, *length_of_row;  // (B) per logical row
    BatchGroup g[2];                  // 0: rows with an image, 1: image-free rows
    int cap_rows, cap_images, pack;
    int max_examples;
    int ex_rows[2], ex_outs[2];       // the most physical rows and outputs one example has put in each group so far

} TrainBatch;

// ---------------------------------------------------------------------------------------------------
// the streaming loader

// A micro-batch made ahead by a TrainStream: its examples and the pixels of their distinct images.
typedef struct {
    int n, *idx;             // (n) examples, in batch order
    const TrainExample *ex;  // (n) their rows (tokenized on the loader's threads)
    int n_images, *images;   // (n_images) data image indices, distinct
    float *pixels;           // (n_images, 3, S, S)
} TrainPrefetched;

// Micro-batches of a TrainData produced by background threads (data/prefetch.h), in order: the run's example order
// from a position (the same as DataOrder's, so a resumed run streams the same batches), or every example in file
// order once (the reference pre-pass, the feature cache). Memory: depth slots of a micro-batch's images.
typedef struct TrainStream TrainStream;

// order: the position to start from (copied; the stream walks its own copy), endless; NULL: examples 0..n-1 in
// batches of `batch`, the last one short, then the end. workers: decode threads (0: on the calling thread);
// depth: ring slots (0: 2 * workers + 1).
TrainStream *train_stream_open(const TrainData *d, const DataOrder *order, int batch, int workers, int depth);
// Data parallel: only micro-batches part, part + parts, ... of that sequence (rank part of parts makes its own
// share, tokenizes and decodes nothing of the others'); train_stream_open is part 0 of 1.
TrainStream *train_stream_open_part(const TrainData *d, const DataOrder *order, int batch, int workers, int depth, int part,
                                    int parts);
// The next micro-batch (valid until the next call), or NULL after the last one of a file-order stream.
const TrainPrefetched *train_stream_next(TrainStream *s);
void train_stream_close(TrainStream *s);
// The loader's threads: VLM_LOADER_WORKERS, or 2 by default; the depth VLM_LOADER_DEPTH, or 0 (the default).
int train_stream_workers(void);
int train_stream_depth(void);

// pack: merge rows that share image and prompt (see above). The groups' capacities (rows, row length, outputs)
// are those of d's examples when it has them whole (synthetic data); for a file's data, whose rows are made
// batch by batch, they start empty and grow with the batches (train_batch_build): the activations grow with
// them (batch_forward), to the longest batch met so far.
void train_batch_init(TrainBatch *b, const TrainData *d, int max_examples, int pack);
void train_batch_free(TrainBatch *b);
// Fills b with the rows of examples idx[0..n). With fresh crops each example's crop is a batch image of its own,
// uncropped until train_batch_draw_crops. pre: the batch's images made ahead by a TrainStream (NULL, or an image
// it lacks: made here).
void train_batch_build(TrainBatch *b, const TrainData *d, const int *idx, int n, const TrainPrefetched *pre);
// Fresh crops: draws every crop image of the batch again from its source image, example e's from the random
// stream (stream, e), so that each forward pass (the policy's, the reference's) gets crops of its own, the same
// ones for the same stream. Nothing to do without fresh crops.
void train_batch_draw_crops(TrainBatch *b, const TrainData *d, unsigned long long stream);
// The stream of a forward pass: the run's seed, the optimizer step and micro-batch (or evaluation batch), and
// which pass (0: the policy, 1: the reference).
unsigned long long train_crop_stream(unsigned long long seed, int step, int micro, int pass);
