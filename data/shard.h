// Packed binary shards: a dataset with its images already decoded, padded, resized and cropped,
// so training reads uint8 pixels from a memory map and only normalizes them (llm.c's lesson: decode
// offline, keep the training loop's data path to a copy and a normalize).
//
// File layout (little-endian; every section starts at a multiple of 64 bytes, gaps are zero):
//
//   [0, 256)     ShardHeader: magic "VLMSHARD", version, counts, image size S, flags, CRC32s,
//                section offsets, the normalization the loader applies
//   off_pixels   uint8  [n_images][S][S][3]   RGB after pad/resize/crop (HWC, as decoded)
//   off_records  ShardRecord [n_records]      per-record metadata (below)
//   off_refs     uint32 [n_refs]              image indices; record r uses refs[image_first ..+ n_images)
//   off_seqs     uint32 [n_seqs]              lengths of the id sequences of each record
//   off_ids      int32  [n_tokens]            token ids, all records back to back
//   off_mask     uint8  [n_tokens]            1 where the token is a response (loss) token
//   off_text     char   [text_bytes]          NUL-terminated UTF-8 strings, all records back to back
//
// Text or ids: tokenization is a separate step, so a record carries its text fields as strings
// (flag SHARD_HAS_TEXT), token ids (SHARD_HAS_IDS), or both; a shard packed by `vlm data pack`
// today has text only. The same fields appear in the same order either way:
//
//   kind    images                                   text fields            ids (once tokenized)
//   llava   0 or 1                                   the turns: human, gpt, human, gpt, ...
//                                                                           1 sequence, mask on gpt turns
//   pref    0 or 1                                   prompt, chosen, rejected
//                                                                           2 sequences: prompt+chosen,
//                                                                           prompt+rejected
//   mvc     chosen images, then rejected images      system_prompt, instruction_prompt,
//           (n_chosen_images says where they split)  chosen_response, rejected_response
//                                                                           2 sequences, as pref
//   pope    1                                        text (the question); label 1 = yes, 0 = no;
//                                                    source_index = question_id
//
// Integrity: the header says how long the file is (a shorter file is reported as truncated), has
// its own CRC32, and carries the CRC32 of everything after it; shard_open checks the sizes and
// offsets of every section, every record's ranges, and (unless told not to) the payload CRC.
//
// The loader (ShardLoader) produces batches of normalized float pixels and record indices in a seeded
// shuffled order on background threads. Its position is a ShardPos {seed, epoch, index}: a run that
// saves the `next` position of the last batch it consumed and reopens the loader there continues with
// exactly the batch it would have seen.
#pragma once
#include <stddef.h>
#include <stdint.h>

#include "preprocess.h"

#define SHARD_MAGIC "VLMSHARD"
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 256
#define SHARD_ALIGN 64

enum {
    SHARD_HAS_TEXT = 1,  // records carry text fields (off_text)
    SHARD_HAS_IDS = 2,   // records carry token ids and a loss mask (off_ids, off_mask, off_seqs)
};

typedef struct {
    char magic[8];            // "VLMSHARD"
    uint32_t version;         // SHARD_VERSION
    uint32_t header_bytes;    // SHARD_HEADER_BYTES
    uint32_t flags;           // SHARD_HAS_TEXT | SHARD_HAS_IDS
    uint32_t image_size;      // S: each image is S x S x 3 uint8
    uint64_t file_bytes;      // the whole file; a shorter one is truncated
    uint64_t n_records, n_images, n_refs, n_seqs, n_tokens, text_bytes;
    uint64_t off_pixels, off_records, off_refs, off_seqs, off_ids, off_mask, off_text;
    // Normalization applied at load time, from the preprocessor config the shard was packed with:
    // x = (float)(u * rescale_factor) (when do_rescale), then (x - mean[c]) / std[c] (when do_normalize).
    double rescale_factor, image_mean[3], image_std[3];
    uint32_t do_rescale, do_normalize;
    uint64_t tokenizer_hash;  // identifies the tokenizer of the ids (0: none / text only)
    uint32_t payload_crc;     // CRC32 (zlib) of bytes [header_bytes, file_bytes)
    uint32_t header_crc;      // CRC32 of these 256 bytes with header_crc = 0
    uint8_t reserved[40];     // zero
} ShardHeader;

typedef struct {
    uint32_t kind;            // DataKind of the source record (datasets.h)
    uint32_t label;           // POPE: 1 = yes, 0 = no; 0 otherwise
    uint32_t n_images;        // images this record uses: 0, 1 or several
    uint32_t n_chosen_images; // MVC: the first n_chosen_images of them are the chosen side; 0 otherwise
    uint64_t image_first;     // into refs
    uint64_t ids_first;       // into ids and mask
    uint64_t seq_first;       // into seqs
    uint64_t text_first;      // byte offset into text
    uint32_t n_ids;           // ids of all its sequences (0 without SHARD_HAS_IDS)
    uint32_t n_seqs;          // sequences; their lengths sum to n_ids
    uint32_t n_fields;        // text fields (0 without SHARD_HAS_TEXT)
    uint32_t text_bytes;      // bytes its fields take, NULs included
    int64_t source_index;     // index of the record in its source file (POPE: question_id)
} ShardRecord;

// ---- writing ---------------------------------------------------------------------------------------

typedef struct {
    int image_size;                 // S
    uint32_t flags;                 // SHARD_HAS_TEXT and/or SHARD_HAS_IDS
    const PreprocessConfig *norm;   // rescale/normalize settings stored for the loader (NULL: CLIP's)
    uint64_t tokenizer_hash;
} ShardSpec;

// One record to append; image indices are those shard_writer_add_image returned.
typedef struct {
    uint32_t kind, label, n_chosen_images;
    int64_t source_index;
    const uint32_t *images; int n_images;
    const char *const *fields; int n_fields;            // SHARD_HAS_TEXT
    const int32_t *ids; const uint8_t *mask; int n_ids;  // SHARD_HAS_IDS; mask may be NULL (all 0)
    const uint32_t *seq_lens; int n_seqs;               // NULL: one sequence of n_ids
} ShardRecordIn;

typedef struct ShardWriter ShardWriter;

// Starts path + ".tmp"; pixels stream to it as images are added, the rest is kept in memory until close.
ShardWriter *shard_writer_open(const char *path, const ShardSpec *spec);
// Appends one image, (S, S, 3) uint8 RGB; returns its index.
uint32_t shard_writer_add_image(ShardWriter *w, const uint8_t *hwc);
void shard_writer_add_record(ShardWriter *w, const ShardRecordIn *r);
// Writes the sections and the header, fsyncs, renames path.tmp to path and frees w.
void shard_writer_close(ShardWriter *w);
// Gives up: removes path.tmp and frees w.
void shard_writer_abort(ShardWriter *w);

// ---- reading ---------------------------------------------------------------------------------------

typedef struct {
    char *path;
    const uint8_t *map;        // the whole file, read-only
    size_t size;
    const ShardHeader *h;
    const uint8_t *pixels;     // (n_images, S, S, 3)
    const ShardRecord *records;
    const uint32_t *refs, *seqs;
    const int32_t *ids;
    const uint8_t *mask;
    const char *text;
    int max_record_images;     // the most images any record uses
} Shard;

// Maps and validates a shard. verify_checksum: also check the payload CRC32 (reads the whole file).
// Returns 0, or -1 with a message naming the file and the problem in err.
int shard_open(Shard *s, const char *path, int verify_checksum, char *err, size_t errlen);
// shard_open with the checksum verified; dies with the message.
void shard_open_or_die(Shard *s, const char *path);
void shard_close(Shard *s);

static inline const uint8_t *shard_image(const Shard *s, uint64_t i) {  // (S, S, 3)
    size_t S = s->h->image_size;
    return s->pixels + i * S * S * 3;
}
static inline const uint32_t *shard_record_images(const Shard *s, uint64_t r) {
    return s->refs + s->records[r].image_first;
}
// Text field f of record r (NUL-terminated), or NULL when f is out of range.
const char *shard_record_field(const Shard *s, uint64_t r, int f);

// uint8 -> normalized float for each channel and value, computed exactly as preprocess_normalize does
// (float64 rescale cast to float32, then float32 (x - mean) / std), so a lookup is bit-exact.
typedef struct { float v[3][256]; } ShardLut;
void shard_lut_init(ShardLut *lut, const ShardHeader *h);
// One image (S, S, 3) uint8 HWC -> (3, S, S) float CHW through the table.
void shard_normalize(const ShardLut *lut, const uint8_t *hwc, int S, float *chw);

// ---- loading batches ------------------------------------------------------------------------------

typedef struct {
    uint64_t seed;   // shuffle seed
    uint64_t epoch;  // passes completed over the shard
    uint64_t index;  // next position in this epoch's order
} ShardPos;

typedef struct {
    int batch_size;  // records per batch
    int shuffle;     // 0: file order every epoch
    int n_workers;   // prefetch threads; 0 fills each batch on the calling thread (no threads)
    int depth;       // ring slots: the consumer's batch + those prepared ahead (0: 2 * n_workers + 1; min 2)
} ShardLoaderConfig;

typedef struct {
    uint64_t seq;                // batch number since the loader opened
    int n;                       // records
    const uint32_t *records;     // (n) shard record indices, in stream order
    int n_images;                // distinct images of these records, each normalized once
    const uint32_t *images;      // (n_images) shard image index of each slot
    const float *pixels;         // (n_images, 3, S, S) normalized pixel values
    const uint32_t *slot_first;  // (n + 1) record j's k-th image is slot record_slots[slot_first[j] + k]
    const uint32_t *record_slots;
    ShardPos pos;                // position of the first record
    ShardPos next;               // position after the last: save this to resume after this batch
} ShardBatch;

typedef struct ShardLoader ShardLoader;

// The stream is endless: epoch e's order (a seeded Fisher-Yates permutation of the records, or file
// order) is followed by epoch e + 1's, and a batch may span two epochs.
ShardLoader *shard_loader_open(const Shard *s, const ShardLoaderConfig *cfg, ShardPos start);
// The next batch, in order. It stays valid until the next call or shard_loader_close.
const ShardBatch *shard_loader_next(ShardLoader *l);
void shard_loader_close(ShardLoader *l);
// The record at stream position pos (what the loader will produce there), and pos advanced by n.
uint32_t shard_order_at(const Shard *s, int shuffle, ShardPos pos);
ShardPos shard_pos_advance(const Shard *s, ShardPos pos, uint64_t n);
