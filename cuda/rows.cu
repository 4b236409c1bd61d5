// Row movement: embedding lookup and its gradient, copy_rows (and its strided form, which can append keys
// and values to a KV cache; generation uses rope_kv_append in cuda/decode.cu), add_rows. Tested against
// cpu_embedding_*, cpu_copy_rows, cpu_copy_rows_strided and cpu_add_rows in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_embeddings_and_rows, cuda_copy_rows_strided,
// cuda_deterministic, cuda_unaligned_slices.
//
// Scatter-adds where several rows may land on the same output row (embedding backward, add_rows) are
// deterministic without atomics: the destination indices are sorted on the device together with their
// positions m (CUB's radix sort is stable, so equal destinations keep ascending m), and the first
// thread of each run of equal destinations sums the run's source rows in that order in fp32 and adds
// the total into the destination once. Negative destinations (ids < 0) are skipped.
#include <cub/device/device_radix_sort.cuh>

#include "common.cuh"

#define THREADS 256

// out (N, C) = table[ids[n]], zero rows where ids[n] < 0
__global__ void embedding_forward_kernel(floatX *out, const int *ids, const floatX *table, int N, int C, bool vec_rows) {
    const size_t per_row = ceil_div(C, 8), total = (size_t)N * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t n = idx / per_row;
        const int c0 = (int)(idx % per_row) * 8, cnt = C - c0 < 8 ? C - c0 : 8;
        const int id = ids[n];
        float v[8];
        if (id >= 0) load8(v, table + (size_t)id * C + c0, cnt, vec_rows);
        else
            for (int k = 0; k < 8; k++) v[k] = 0.0f;
        store8(out + n * C + c0, v, cnt, vec_rows);
    }
}

// out[out_idx[m] * out_stride + c] = inp[inp_idx[m] * inp_stride + c]; negative indices skipped
__global__ void copy_rows_strided_kernel(floatX *out, const int *out_idx, int out_stride, const floatX *inp,
                                         const int *inp_idx, int inp_stride, int M, int C, bool vec) {
    const size_t per_row = ceil_div(C, 8), total = (size_t)M * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const int m = (int)(idx / per_row);
        const int c0 = (int)(idx % per_row) * 8, cnt = C - c0 < 8 ? C - c0 : 8;
        const int o = out_idx ? out_idx[m] : m, i = inp_idx ? inp_idx[m] : m;
        if (o < 0 || i < 0) continue;
        float v[8];
        load8(v, inp + (size_t)i * inp_stride + c0, cnt, vec);
        store8(out + (size_t)o * out_stride + c0, v, cnt, vec);
    }
}

// out[m] += inp[inp_idx[m]]: the destinations are distinct, no ordering question
__global__ void add_rows_identity_kernel(floatX *out, const floatX *inp, const int *inp_idx, int M, int C,
                                         bool vec_rows) {
    const size_t per_row = ceil_div(C, 8), total = (size_t)M * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const int m = (int)(idx / per_row);
        const int c0 = (int)(idx % per_row) * 8, cnt = C - c0 < 8 ? C - c0 : 8;
        const int i = inp_idx ? inp_idx[m] : m;
        if (i < 0) continue;
        float a[8], b[8];
        load8(a, out + (size_t)m * C + c0, cnt, vec_rows);
        load8(b, inp + (size_t)i * C + c0, cnt, vec_rows);
#pragma unroll
        for (int k = 0; k < 8; k++) a[k] += b[k];
        store8(out + (size_t)m * C + c0, a, cnt, vec_rows);
    }
}

__global__ void iota_kernel(int *x, int M) {
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < M; i += gridDim.x * blockDim.x) x[i] = i;
}

// keys (M) sorted destinations, order (M) their positions m (ascending within equal keys).
// Thread (j, chunk): if j starts a run of equal keys, out[key] += sum over the run of inp[src(m)].
__global__ void scatter_add_sorted_kernel(floatX *out, const int *keys, const int *order, const floatX *inp,
                                          const int *inp_idx, int M, int C, bool vec_rows) {
    const size_t per_row = ceil_div(C, 8), total = (size_t)M * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(idx / per_row);
        const int key = keys[j];
        if (key < 0 || (j > 0 && keys[j - 1] == key)) continue;
        const int c0 = (int)(idx % per_row) * 8, cnt = C - c0 < 8 ? C - c0 : 8;
        float acc[8];
#pragma unroll
        for (int k = 0; k < 8; k++) acc[k] = 0.0f;
        for (int jj = j; jj < M && keys[jj] == key; jj++) {
            const int m = order[jj], src = inp_idx ? inp_idx[m] : m;
            float v[8];
            load8(v, inp + (size_t)src * C + c0, cnt, vec_rows);
#pragma unroll
            for (int k = 0; k < 8; k++) acc[k] += v[k];
        }
        float o[8];
        floatX *dst = out + (size_t)key * C + c0;
        load8(o, dst, cnt, vec_rows);
#pragma unroll
        for (int k = 0; k < 8; k++) o[k] += acc[k];
        store8(dst, o, cnt, vec_rows);
    }
}

static size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

// out[out_idx[m]] += inp[inp_idx ? inp_idx[m] : m] for m < M, deterministic (see the top of the file)
static void scatter_add_rows(floatX *out, const int *out_idx, const floatX *inp, const int *inp_idx, int M, int C) {
    if (M <= 0 || C <= 0) return;
    cudaStream_t st = stream_main();
    size_t temp_bytes = 0;
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(NULL, temp_bytes, (const int *)NULL, (int *)NULL, (const int *)NULL,
                                               (int *)NULL, M, 0, 32, st));
    size_t ints = align256((size_t)M * sizeof(int));
    char *scratch = (char *)cuda_scratch(3 * ints + align256(temp_bytes));
    int *keys = (int *)scratch, *positions = (int *)(scratch + ints), *order = (int *)(scratch + 2 * ints);
    void *temp = scratch + 3 * ints;
    iota_kernel<<<grid_for((size_t)M, THREADS), THREADS, 0, st>>>(positions, M);
    CUDA_LAUNCH_CHECK();
    CUDA_CHECK(cub::DeviceRadixSort::SortPairs(temp, temp_bytes, out_idx, keys, positions, order, M, 0, 32, st));
    bool vec = C % 8 == 0 && is_aligned16(out) && is_aligned16(inp);
    scatter_add_sorted_kernel<<<grid_for((size_t)M * ceil_div(C, 8), THREADS), THREADS, 0, st>>>(
        out, keys, order, inp, inp_idx, M, C, vec);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_embedding_forward(void *out, const int *ids, const void *table, int N, int C) {
    if (N <= 0 || C <= 0) return;
    bool vec = C % 8 == 0 && is_aligned16(out) && is_aligned16(table);
    embedding_forward_kernel<<<grid_for((size_t)N * ceil_div(C, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)out, ids, (const floatX *)table, N, C, vec);
    CUDA_LAUNCH_CHECK();
}

// dtable (V, C) += dout rows at ids (ids < 0 skipped), repeated ids summed in order of n
extern "C" void cuda_embedding_backward(void *dtable, const void *dout, const int *ids, int N, int C) {
    scatter_add_rows((floatX *)dtable, ids, (const floatX *)dout, NULL, N, C);
}

extern "C" void cuda_copy_rows_strided(void *out, const int *out_idx, int out_stride, const void *inp,
                                       const int *inp_idx, int inp_stride, int M, int C) {
    if (M <= 0 || C <= 0) return;
    // 128-bit accesses need every row start 16-byte aligned: aligned bases and strides in multiples of 8
    bool vec = C % 8 == 0 && out_stride % 8 == 0 && inp_stride % 8 == 0 && is_aligned16(out) && is_aligned16(inp);
    copy_rows_strided_kernel<<<grid_for((size_t)M * ceil_div(C, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)out, out_idx, out_stride, (const floatX *)inp, inp_idx, inp_stride, M, C, vec);
    CUDA_LAUNCH_CHECK();
}

// copy_rows is the strided copy of whole rows
extern "C" void cuda_copy_rows(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C) {
    cuda_copy_rows_strided(out, out_idx, C, inp, inp_idx, C, M, C);
}

// out[out_idx[m]] += inp[inp_idx[m]]; repeated out_idx summed in order of m
extern "C" void cuda_add_rows(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C) {
    if (M <= 0 || C <= 0) return;
    if (out_idx) {
        scatter_add_rows((floatX *)out, out_idx, (const floatX *)inp, inp_idx, M, C);
        return;
    }
    bool vec = C % 8 == 0 && is_aligned16(out) && is_aligned16(inp);
    add_rows_identity_kernel<<<grid_for((size_t)M * ceil_div(C, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)out, (const floatX *)inp, inp_idx, M, C, vec);
    CUDA_LAUNCH_CHECK();
}
