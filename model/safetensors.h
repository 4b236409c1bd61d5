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

#define ST_MAX_DIMS 8
typedef struct {
    char *name;
    DType dtype;
    int ndim;
    int64_t shape[ST_MAX_DIMS];
    size_t numel;
    const void *data;  // into the mapped file
    size_t nbytes;
    int shard;         // index of the file it lives in
} STTensor;

typedef struct {
    STTensor *tensors;
    int n;
    char **files;      // one per shard (a single entry for a plain file)
    void **maps;
    size_t *map_sizes;
    int n_files;
    char *metadata_json;  // the "__metadata__" object of the first file as JSON text, or NULL
} SafeTensors;

// Opens a .safetensors file, a model.safetensors.index.json, or a directory holding either
// (model.safetensors, else model.safetensors.index.json). Returns NULL and writes a message naming the
// file and the problem into err (truncated file, header that lies about offsets or sizes, unknown dtype,
// overlapping tensors, missing shard...). Never reads out of bounds.
SafeTensors *st_open(const char *path, char *err, size_t errlen);
SafeTensors *st_open_or_die(const char *path);
void st_close(SafeTensors *st);
const STTensor *st_find(const SafeTensors *st, const char *name);  // NULL if absent
// Converts any float dtype (F32/F16/BF16/F64) to fp32 into dst (numel floats). Dies on integer dtypes.
void st_to_f32(const STTensor *t, float *dst);

// Writer: collect tensors (data is copied), then write. metadata: NULL or pairs of strings ending in NULL.
typedef struct STWriter STWriter;
STWriter *stw_new(void);
void stw_add(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const void *data);
// Convenience: add fp32 host data stored as `dtype` (F32, F16 or BF16), converting with round-to-nearest-even.
void stw_add_f32(STWriter *w, const char *name, DType dtype, int ndim, const int64_t *shape, const float *data);
// Writes to path (via path.tmp + rename) and frees the writer. Dies naming the file on I/O errors.
void stw_write(STWriter *w, const char *path, const char **metadata);
