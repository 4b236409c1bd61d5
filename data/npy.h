// NumPy .npy files (format version 1.0/2.0), enough for pixel tensors and test fixtures:
// little-endian float32, float64 and uint8 arrays in C order.
#pragma once
#include <stddef.h>
#include <stdint.h>

#define NPY_MAX_DIMS 8

typedef enum { NPY_F32, NPY_F64, NPY_U8 } NpyDtype;

typedef struct {
    NpyDtype dtype;
    int ndim;
    long shape[NPY_MAX_DIMS];
    size_t count;  // product of shape
    void *data;    // count elements of dtype
} NpyArray;

// The bytes of a version-1.0 .npy file holding a float32 array of the given shape; *len gets the size.
uint8_t *npy_encode_f32(const float *data, const long *shape, int ndim, size_t *len);
// Writes a float32 array atomically (temporary file + rename). Dies naming the file on error.
void npy_save_f32(const char *path, const float *data, const long *shape, int ndim);
// Reads a .npy file; returns 0, or -1 with a message naming the file in err.
int npy_load(const char *path, NpyArray *out, char *err, size_t errlen);
void npy_free(NpyArray *a);
