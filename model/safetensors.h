// safetensors files: read (mmap, F32/F16/BF16 and the integer types; sharded checkpoints through
// model.safetensors.index.json) and write (atomically: temporary name, then rename).
// Format: u64 little-endian header length N, N bytes of JSON {name: {dtype, shape, data_offsets}},
// then the data buffer; offsets are relative to the buffer start.
#pragma once
#include <stddef.h>
#include <stdint.h>

typedef enum { DT_F32, DT_F16, DT_BF16, DT_F64, DT_I64, DT_I32, DT_I16, DT_I8, DT_U8, DT_BOOL } DType;

const char *dtype_name(DType t);  // "F32", ...
size_t dtype_size(DType t);
// Parses a header dtype string ("F32", "BF16", ...) into *out; returns 0 when unknown (F8_*, U16, ...).
int dtype_from_name(const char *s, DType *out);

#define ST_MAX_DIMS 8
typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data;  // into the mapped file; NOT necessarily aligned to the dtype (read with memcpy or copy)
    size_t nbytes;
    int shard;         // index of the file it lives in
} STTensor;

typedef struct {
    STTensor *tensors; // in file order (shard, then data offset), so a pass over them reads sequentially
    int n;
    char **files;      // one per shard (a single entry for a plain file)
    void **maps;
    size_t *map_sizes;
    int n_files;
    char *metadata_json;  // the "__metadata__" object of the first file as JSON text, or NULL
    int *by_name;         // private: tensor indices sorted by name, for st_find's binary search
} SafeTensors;

// Opens a .safetensors file, a model.safetensors.index.json, or a directory holding either
// (model.safetensors, else model.safetensors.index.json). Returns NULL and writes a message naming the
// file and the problem into err (truncated file, header that lies about offsets or sizes, unknown dtype,
// overlapping tensors, missing shard...). Never reads out of bounds. A path ending in ".json" is taken as
// an index: each shard is opened once and every weight_map name must be in the shard it is mapped to
// (tensors a shard holds but the map does not name are left out). Gaps between tensors are accepted;
// numbers in the header must be exact integers below 2^53 (cJSON parses them as doubles).
SafeTensors *st_open(const char *path, char *err, size_t errlen);
SafeTensors *st_open_or_die(const char *path);
void st_close(SafeTensors *st);
const STTensor *st_find(const SafeTensors *st, const char *name);  // NULL if absent; O(log n)
const STTensor *st_get(const SafeTensors *st, const char *name);   // like st_find, but dies naming the file
// Converts any float dtype (F32/F16/BF16/F64) to fp32 into dst (numel floats). Dies on integer dtypes.
void st_to_f32(const STTensor *t, float *dst);

// Writer: collect tensors (data is copied), then write. metadata: NULL or pairs of strings ending in NULL.
typedef struct STWriter STWriter;
STWriter *stw_new(void);
void stw_add(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data);
// Like stw_add without the copy, for checkpoints too big to hold twice: data must stay valid and
// unchanged until stw_write returns.
void stw_add_nocopy(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data);
// Convenience: add fp32 host data stored as `dtype` (F32, F16 or BF16), converting with round-to-nearest-even.
void stw_add_f32(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const float *data);
// An upper bound of the bytes stw_write will write: the tensors plus a generous header (for a free-space check).
uint64_t stw_bytes_bound(const STWriter *w);
// Writes to path (via path.tmp, fsync, rename) and frees the writer. Dies naming the file on I/O errors.
// The header holds "__metadata__" {"format": "pt"} plus the pairs (a "format" pair replaces the default);
// tensors are laid out largest element size first, so each is aligned to its element size in the file.
void stw_write(STWriter *w, const char *path, const char **metadata);
