// Generation kernels: appending keys and values to a KV cache (copy_rows_strided) and attention of one new
// token per row against the cache (attention_decode). Tested against cpu_copy_rows_strided and
// cpu_attention_decode in model/ops_cpu.c (tests/test_cuda.c).
//
// attention_decode is memory-bound: each row streams its cached keys and values once per layer, and at
// LLaVA-7B's B=16 x 700 positions that is the largest read of a decode step after the weights. One block
// per (row, query head) walks the cache in chunks of DEC_CHUNK positions with an online softmax (running
// max m and sum l, the accumulator rescaled by exp(m_old - m_new) as a chunk raises the max), so any cache
// length runs in a fixed amount of shared memory:
//   scores: one warp per position, lanes across the head dim, a warp reduction for the dot product;
//   weights: exp(score - m), summed over the block in a fixed order (deterministic);
//   values: one thread per head-dim element, looping over the chunk's positions (coalesced rows of v).
// With GQA the query heads of a group read the same kv head; the repeated reads hit L2.
#include <math.h>

#include "common.cuh"

#define COPY_THREADS 256
#define DEC_THREADS 128
#define DEC_CHUNK 256

// out[out_idx[m] * out_stride + c] = inp[inp_idx[m] * inp_stride + c]; negative indices skipped
__global__ void copy_rows_strided_kernel(bf16 *out, const int *out_idx, int out_stride, const bf16 *inp,
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

extern "C" void cuda_copy_rows_strided(void *out, const int *out_idx, int out_stride, const void *inp,
                                       const int *inp_idx, int inp_stride, int M, int C) {
    if (M <= 0 || C <= 0) return;
    // 128-bit accesses need every row start 16-byte aligned: aligned bases and strides in multiples of 8
    bool vec = C % 8 == 0 && out_stride % 8 == 0 && inp_stride % 8 == 0 && is_aligned16(out) && is_aligned16(inp);
    copy_rows_strided_kernel<<<grid_for((size_t)M * ceil_div(C, 8), COPY_THREADS), COPY_THREADS, 0, stream_main()>>>(
        (bf16 *)out, out_idx, out_stride, (const bf16 *)inp, inp_idx, inp_stride, M, C, vec);
    CUDA_LAUNCH_CHECK();
}

// Max over the block, returned to every thread (same pattern as block_sum in common.cuh: starts with a
// barrier so it can follow other reductions).
__device__ __forceinline__ float block_max(float v) {
    __shared__ float warp_part_max[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) warp_part_max[warp] = v;
    __syncthreads();
    float m = -INFINITY;
    for (int w = 0; w < nwarps; w++) m = fmaxf(m, warp_part_max[w]);
    return m;
}

// grid (NH, B), DEC_THREADS threads; dynamic shared memory: q (HD) | acc (HD) | p (DEC_CHUNK) floats
__global__ void attention_decode_kernel(bf16 *out, const bf16 *q, const bf16 *k, const bf16 *v, const int *len,
                                        const int *slot, int NH, int NKV, int HD, int q_stride, int cap) {
    extern __shared__ float sm[];
    float *qs = sm, *acc = sm + HD, *p = sm + 2 * HD;
    const int h = blockIdx.x, b = blockIdx.y, kvh = h / (NH / NKV);
    const int L = len[b], s = slot ? slot[b] : b;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const float scale = rsqrtf((float)HD);
    const bf16 *qh = q + (size_t)b * q_stride + (size_t)h * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        qs[d] = __bfloat162float(qh[d]) * scale;
        acc[d] = 0.0f;
    }
    __syncthreads();
    const size_t row = (size_t)NKV * HD;  // elements per cache position
    const bf16 *kb = k + (size_t)s * cap * row + (size_t)kvh * HD, *vb = v + (size_t)s * cap * row + (size_t)kvh * HD;
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 < L; j0 += DEC_CHUNK) {
        const int n = L - j0 < DEC_CHUNK ? L - j0 : DEC_CHUNK;
        for (int j = warp; j < n; j += nwarps) {
            const bf16 *kj = kb + (size_t)(j0 + j) * row;
            float dot = 0.0f;
            for (int d = lane; d < HD; d += 32) dot += qs[d] * __bfloat162float(kj[d]);
            dot = warp_sum(dot);
            if (lane == 0) p[j] = dot;
        }
        __syncthreads();
        float cm = -INFINITY;
        for (int j = threadIdx.x; j < n; j += blockDim.x) cm = fmaxf(cm, p[j]);
        const float m_new = fmaxf(m, block_max(cm));  // finite: the chunk has at least one position
        const float corr = expf(m - m_new);            // 0 on the first chunk (m = -inf)
        float ps = 0.0f;
        for (int j = threadIdx.x; j < n; j += blockDim.x) {
            const float e = expf(p[j] - m_new);
            p[j] = e;
            ps += e;
        }
        l = l * corr + block_sum(ps);  // block_sum's barriers also publish the p[j] just written
        m = m_new;
        for (int d = threadIdx.x; d < HD; d += blockDim.x) {
            float a = acc[d] * corr;
            const bf16 *vd = vb + (size_t)j0 * row + d;
#pragma unroll 8
            for (int j = 0; j < n; j++) a += p[j] * __bfloat162float(vd[(size_t)j * row]);
            acc[d] = a;
        }
        __syncthreads();  // p is rewritten by the next chunk
    }
    bf16 *o = out + (size_t)b * NH * HD + (size_t)h * HD;
    const float inv = L > 0 ? 1.0f / l : 0.0f;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) o[d] = __float2bfloat16_rn(acc[d] * inv);
}

extern "C" void cuda_attention_decode(void *out, const void *q, const void *k, const void *v, const DecodeShape *s) {
    if (s->B <= 0 || s->NH <= 0 || s->HD <= 0) return;
    if (s->NKV <= 0 || s->NH % s->NKV) fatal("attention_decode: %d query heads do not divide into %d kv heads", s->NH, s->NKV);
    const size_t smem = sizeof(float) * (2 * (size_t)s->HD + DEC_CHUNK);
    if (smem > 48 * 1024) fatal("attention_decode: head dim %d is too large", s->HD);
    dim3 grid(s->NH, s->B);
    attention_decode_kernel<<<grid, DEC_THREADS, smem, stream_main()>>>((bf16 *)out, (const bf16 *)q, (const bf16 *)k,
                                                                        (const bf16 *)v, s->len, s->slot, s->NH, s->NKV,
                                                                        s->HD, s->q_stride, s->cap);
    CUDA_LAUNCH_CHECK();
}
