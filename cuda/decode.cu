// The KV cache of generation: the rotary embedding of the fused qkv rows with the append of their keys and
// values to the cache (rope_kv_append), and attention of one new token per row against the cache
// (attention_decode). Tested against cpu_rope_kv_append and cpu_attention_decode in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_rope_kv_append, cuda_attention_decode,
// cuda_generate_matches_cpu.
//
// rope_kv_append is rope_forward on the q and k heads of each row and two copy_rows_strided of its k and v
// into cache row dst[n], in one kernel: one block per row computes the row's HD/2 angles once into shared
// memory (rope_sincos, the same math as rope_kernel), then each thread takes a chunk of 8 pairs
// (x[i..i+7], x[i+HD/2..]) of one head, 16-byte loads and stores, rotated with rope_rotate and written back
// (and for a k head to the cache too), or a chunk of 8 elements of v to copy. LLaVA-7B: 64 heads x 8 pair
// chunks + 512 v chunks, 1024 threads a row.
//
// attention_decode is memory-bound: each row streams its cached keys and values once per layer (LLaVA-7B,
// B=16, ~700 positions: 180 MB per layer, the largest read of a decode step after the weights), so the
// kernels are written to keep many loads in flight. Blocks of DEC_THREADS threads, one per (query head, row,
// split); each walks its share of the cache in chunks of DEC_CHUNK positions with an online softmax (running
// max m and sum l; the accumulator is rescaled by exp(m_old - m_new) when a chunk raises the max), so any
// length runs in fixed shared memory:
//   scores   the head dim is split over G = HD/8 lanes holding 8 elements each (one 16-byte load per key
//            row), a warp scores 32/G keys at a time and U of those groups back to back, then reduces
//            each dot product over its G lanes with shuffles;
//   weights  exp(score - m), summed over the block in a fixed order (deterministic);
//   values   thread (key group, lane) accumulates 8 dims over every (DEC_THREADS/G)-th position with
//            16-byte loads, the key groups are then summed through shared memory.
// Split-K: when rows x heads give too few blocks to fill the GPU (B=1), each row's positions are cut into
// `splits` spans whose partial (m, l, acc) go to a workspace and a second kernel combines them:
//   out = sum_s exp(m_s - M) acc_s / sum_s exp(m_s - M) l_s,  M = max_s m_s.
// Head dims that are not 8 x a power of two (or unaligned buffers) take a generic kernel: one warp per key
// with lanes across the head dim, one thread per head-dim element for the values, no split.
// With GQA the query heads of a group read the same kv head; the repeated reads hit L2.
// The fp32 build (VLM_CUDA_FP32) runs the same kernels: its 8-element loads are two 16-byte loads (x128).
#include <math.h>

#include "common.cuh"
#include "ptx.cuh"

// ----------------------------------------------------------------------------------------------------
// rope_kv_append: grid (N), one block per row; dynamic shared memory: (HD/2) float2 (cos, sin)

__global__ void __launch_bounds__(1024) rope_kv_append_kernel(floatX *qkv, const int *pos, floatX *kcache, floatX *vcache,
                                                              const int *dst, int NH, int NKV, int HD, int stride,
                                                              float theta, bool vec) {
    extern __shared__ float2 cs[];
    const int n = blockIdx.x, half = HD / 2, d = dst ? dst[n] : n, kvdim = NKV * HD;
    for (int i = threadIdx.x; i < half; i += blockDim.x) {
        float s, c;
        rope_sincos(pos[n], i, HD, theta, &s, &c);
        cs[i] = make_float2(c, s);
    }
    // items: chunks of 8 pairs (x[i0..], x[i0 + HD/2..]) of the q heads then the k heads, then chunks of 8
    // elements of v; a thread's first item is loaded before the barrier, its latency hidden by the angles'
    const int pcs = (half + 7) / 8, rot_items = (NH + NKV) * pcs, items = rot_items + (kvdim + 7) / 8;
    floatX *row = qkv + (size_t)n * stride;
    for (int base = 0; base < items; base += blockDim.x) {  // uniform over the block
        const int it = base + threadIdx.x;
        const bool rot = it < rot_items, copy = !rot && it < items && d >= 0;
        const int h = rot ? it / pcs : 0, i0 = rot ? (it % pcs) * 8 : 0, c0 = copy ? (it - rot_items) * 8 : 0;
        const int cnt = rot ? min(8, half - i0) : copy ? min(8, kvdim - c0) : 0;
        floatX *x = rot ? row + (size_t)h * HD + i0 : row + (size_t)(NH + NKV) * HD + c0;
        float lo[8], hi[8];
        if (cnt > 0) load8(lo, x, cnt, vec);
        if (rot) load8(hi, x + half, cnt, vec);
        if (base == 0) __syncthreads();  // the angles are in shared memory
        if (rot) {
#pragma unroll
            for (int k = 0; k < 8; k++)
                if (k < cnt) rope_rotate(&lo[k], &hi[k], cs[i0 + k].x, cs[i0 + k].y);
            store8(x, lo, cnt, vec);
            store8(x + half, hi, cnt, vec);
            if (h >= NH && d >= 0) {  // a k head: to the cache too
                floatX *kc = kcache + (size_t)d * kvdim + (size_t)(h - NH) * HD + i0;
                store8(kc, lo, cnt, vec);
                store8(kc + half, hi, cnt, vec);
            }
        } else if (copy) {
            store8(vcache + (size_t)d * kvdim + c0, lo, cnt, vec);
        }
    }
}

extern "C" void cuda_rope_kv_append(void *qkv, const int *pos, void *kcache, void *vcache, const int *dst, int N, int NH,
                                    int NKV, int HD, int qkv_stride, float theta) {
    if (N <= 0 || NH + NKV <= 0 || HD <= 0) return;
    // the pairs (i, i + HD/2) cover a head only when HD is even; the cache would miss the last element
    if (HD % 2) fatal("rope_kv_append: head dim %d is odd", HD);
    const size_t smem = sizeof(float2) * (HD / 2);
    if (smem > 48 * 1024) fatal("rope_kv_append: head dim %d is too large", HD);
    // 16-byte accesses: whole chunks of 8 pairs (HD/2 a multiple of 8) at aligned row and head starts
    const bool vec = HD % 16 == 0 && qkv_stride % 8 == 0 && is_aligned16(qkv) && is_aligned16(kcache) &&
                     is_aligned16(vcache);
    const int items = (NH + NKV) * ((HD / 2 + 7) / 8) + (NKV * HD + 7) / 8;
    const int threads = items >= 1024 ? 1024 : (items + 31) / 32 * 32;
    rope_kv_append_kernel<<<N, threads, smem, stream_main()>>>((floatX *)qkv, pos, (floatX *)kcache, (floatX *)vcache, dst,
                                                               NH, NKV, HD, qkv_stride, theta, vec);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------------------------------
// attention_decode

#define DEC_THREADS 128
#define DEC_CHUNK 256
#define DEC_UNROLL 4      // key groups per lane in flight in the score pass
#define DEC_MAX_SPLITS 16

// The generic kernel, any head dim: grid (NH, B), DEC_THREADS threads; dynamic shared memory:
// q (HD) | acc (HD) | p (DEC_CHUNK) floats
__global__ void attention_decode_kernel(floatX *out, const floatX *q, const floatX *k, const floatX *v, const int *len,
                                        const int *slot, int NH, int NKV, int HD, int q_stride, int cap) {
    extern __shared__ float sm[];
    float *qs = sm, *acc = sm + HD, *p = sm + 2 * HD;
    const int h = blockIdx.x, b = blockIdx.y, kvh = h / (NH / NKV);
    const int L = len[b], s = slot ? slot[b] : b;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    const float scale = rsqrtf((float)HD);
    const floatX *qh = q + (size_t)b * q_stride + (size_t)h * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        qs[d] = to_f32(qh[d]) * scale;
        acc[d] = 0.0f;
    }
    __syncthreads();
    const size_t row = (size_t)NKV * HD;  // elements per cache position
    const floatX *kb = k + (size_t)s * cap * row + (size_t)kvh * HD, *vb = v + (size_t)s * cap * row + (size_t)kvh * HD;
    float m = -INFINITY, l = 0.0f;
    for (int j0 = 0; j0 < L; j0 += DEC_CHUNK) {
        const int n = L - j0 < DEC_CHUNK ? L - j0 : DEC_CHUNK;
        for (int j = warp; j < n; j += nwarps) {
            const floatX *kj = kb + (size_t)(j0 + j) * row;
            float dot = 0.0f;
            for (int d = lane; d < HD; d += 32) dot += qs[d] * to_f32(kj[d]);
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
            const floatX *vd = vb + (size_t)j0 * row + d;
#pragma unroll 8
            for (int j = 0; j < n; j++) a += p[j] * to_f32(vd[(size_t)j * row]);
            acc[d] = a;
        }
        __syncthreads();  // p is rewritten by the next chunk
    }
    floatX *o = out + (size_t)b * NH * HD + (size_t)h * HD;
    const float inv = L > 0 ? 1.0f / l : 0.0f;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) o[d] = to_floatX(acc[d] * inv);
}

// The vectorized kernel for HD = 8 G, G a power of two <= 32 (HD 8 ... 256), 16-byte aligned q, k, v and
// q_stride a multiple of 8. grid (NH, B, splits). With splits == 1 it writes out; otherwise its partial
// (acc[HD], m, l) to ws[((b * NH + h) * splits + split) * (HD + 2)].
template <int G>
__global__ void __launch_bounds__(DEC_THREADS) attention_decode_vec_kernel(
    floatX *out, float *ws, const floatX *q, const floatX *k, const floatX *v, const int *len, const int *slot, int NH,
    int NKV, int q_stride, int cap, int splits) {
    constexpr int HD = 8 * G, KPW = 32 / G, KG = DEC_THREADS / G, NWARPS = DEC_THREADS / 32;
    griddep_launch_dependents();  // as in the combine kernel, when this one writes out
    __shared__ float p[DEC_CHUNK];
    __shared__ float acc[HD];
    __shared__ float red[KG * HD];  // the value pass's per-key-group sums (DEC_THREADS * 8 floats)
    const int h = blockIdx.x, b = blockIdx.y, split = blockIdx.z, kvh = h / (NH / NKV);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int gl = threadIdx.x % G, grp = lane / G;  // lane within its key group (its 8 dims), group in the warp
    const int L = len[b], s = slot ? slot[b] : b;
    const int span = (L + splits - 1) / splits;
    const int j_begin = min(L, split * span), j_end = min(L, j_begin + span);
    float qv[8];
    {
        const x128 x = load128(q + (size_t)b * q_stride + (size_t)h * HD + 8 * gl);
        const float scale = rsqrtf((float)HD);
#pragma unroll
        for (int i = 0; i < 8; i++) qv[i] = to_f32(x.v[i]) * scale;
    }
    for (int d = threadIdx.x; d < HD; d += DEC_THREADS) acc[d] = 0.0f;
    const size_t row = (size_t)NKV * HD;  // elements per cache position
    const floatX *kb = k + (size_t)s * cap * row + (size_t)kvh * HD + 8 * gl;
    const floatX *vb = v + (size_t)s * cap * row + (size_t)kvh * HD + 8 * gl;
    float m = -INFINITY, l = 0.0f;
    __syncthreads();
    for (int j0 = j_begin; j0 < j_end; j0 += DEC_CHUNK) {
        const int n = min(DEC_CHUNK, j_end - j0);
        // scores: key j = base + u * KPW + grp for u < DEC_UNROLL, all loads issued before any reduction
        for (int base = warp * KPW * DEC_UNROLL; base < n; base += NWARPS * KPW * DEC_UNROLL) {
            x128 kx[DEC_UNROLL];
#pragma unroll
            for (int u = 0; u < DEC_UNROLL; u++) {
                const int j = base + u * KPW + grp;
                if (j < n) kx[u] = load128(kb + (size_t)(j0 + j) * row);
                else {
#pragma unroll
                    for (int i = 0; i < 8; i++) kx[u].v[i] = to_floatX(0.0f);
                }
            }
#pragma unroll
            for (int u = 0; u < DEC_UNROLL; u++) {
                float dot = 0.0f;
#pragma unroll
                for (int i = 0; i < 8; i++) dot += qv[i] * to_f32(kx[u].v[i]);
#pragma unroll
                for (int o = G / 2; o > 0; o >>= 1) dot += __shfl_xor_sync(0xffffffffu, dot, o);  // within the group
                const int j = base + u * KPW + grp;
                if (gl == 0 && j < n) p[j] = dot;
            }
        }
        __syncthreads();
        float cm = -INFINITY;
        for (int j = threadIdx.x; j < n; j += DEC_THREADS) cm = fmaxf(cm, p[j]);
        const float m_new = fmaxf(m, block_max(cm));  // finite: the chunk has at least one position
        const float corr = expf(m - m_new);            // 0 on the first chunk (m = -inf)
        float ps = 0.0f;
        for (int j = threadIdx.x; j < n; j += DEC_THREADS) {
            const float e = expf(p[j] - m_new);
            p[j] = e;
            ps += e;
        }
        l = l * corr + block_sum(ps);  // block_sum's barriers also publish the p[j] just written
        m = m_new;
        // values: this thread's 8 dims over positions kg, kg + KG, ... of the chunk
        {
            const int kg = threadIdx.x / G;
            float a8[8];
#pragma unroll
            for (int i = 0; i < 8; i++) a8[i] = 0.0f;
            int j = kg;
            for (; j + 3 * KG < n; j += 4 * KG) {
                x128 vx[4];
#pragma unroll
                for (int u = 0; u < 4; u++) vx[u] = load128(vb + (size_t)(j0 + j + u * KG) * row);
#pragma unroll
                for (int u = 0; u < 4; u++) {
                    const float pj = p[j + u * KG];
#pragma unroll
                    for (int i = 0; i < 8; i++) a8[i] += pj * to_f32(vx[u].v[i]);
                }
            }
            for (; j < n; j += KG) {
                const x128 vx = load128(vb + (size_t)(j0 + j) * row);
                const float pj = p[j];
#pragma unroll
                for (int i = 0; i < 8; i++) a8[i] += pj * to_f32(vx.v[i]);
            }
#pragma unroll
            for (int i = 0; i < 8; i++) red[kg * HD + 8 * gl + i] = a8[i];
        }
        __syncthreads();
        for (int d = threadIdx.x; d < HD; d += DEC_THREADS) {
            float sum = 0.0f;
            for (int g = 0; g < KG; g++) sum += red[g * HD + d];
            acc[d] = acc[d] * corr + sum;
        }
        __syncthreads();  // p and red are rewritten by the next chunk
    }
    if (splits == 1) {
        floatX *o = out + (size_t)b * NH * HD + (size_t)h * HD;
        const float inv = L > 0 ? 1.0f / l : 0.0f;
        for (int d = threadIdx.x; d < HD; d += DEC_THREADS) o[d] = to_floatX(acc[d] * inv);
    } else {
        float *w = ws + (((size_t)b * NH + h) * splits + split) * (HD + 2);
        for (int d = threadIdx.x; d < HD; d += DEC_THREADS) w[d] = acc[d];
        if (threadIdx.x == 0) { w[HD] = m; w[HD + 1] = l; }  // m = -inf, l = 0 for an empty span
    }
}

// grid (NH, B): the splits' partial results of one (row, head) into out
__global__ void attention_decode_combine_kernel(floatX *out, const float *ws, int NH, int HD, int splits) {
    griddep_launch_dependents();  // the o projection (a skinny matmul) may start streaming its weights
    const int h = blockIdx.x, b = blockIdx.y;
    const float *w = ws + ((size_t)b * NH + h) * splits * (HD + 2);
    float M = -INFINITY, den = 0.0f;
    for (int s = 0; s < splits; s++) M = fmaxf(M, w[s * (HD + 2) + HD]);
    for (int s = 0; s < splits; s++) {
        const float ms = w[s * (HD + 2) + HD];
        if (ms > -INFINITY) den += expf(ms - M) * w[s * (HD + 2) + HD + 1];
    }
    floatX *o = out + (size_t)b * NH * HD + (size_t)h * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float num = 0.0f;
        for (int s = 0; s < splits; s++) {
            const float ms = w[s * (HD + 2) + HD];
            if (ms > -INFINITY) num += expf(ms - M) * w[s * (HD + 2) + d];
        }
        o[d] = to_floatX(den > 0.0f ? num / den : 0.0f);  // den 0: the row attends to nothing
    }
}

static int sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        CUDA_CHECK(cudaGetDevice(&dev));
        CUDA_CHECK(cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev));
    }
    return n;
}

template <int G>
static void launch_decode_vec(floatX *out, const DecodeShape *s, const floatX *q, const floatX *k, const floatX *v) {
    // enough blocks for two per SM; a split keeps at least 128 positions of a full cache. (Splitting LLaVA-7B
    // B=1 finer, 16 spans of 44 positions for four blocks per SM, measured no faster: 17.1 against 16.5 us
    // in the kernel lab, where this kernel reaches 23% of the copy ceiling, most of it launch and latency.)
    const int blocks = s->NH * s->B, want = 2 * sm_count();
    int splits = 1;
    if (blocks < want) {
        splits = (want + blocks - 1) / blocks;
        const int by_len = s->cap / 128 > 1 ? s->cap / 128 : 1;
        if (splits > by_len) splits = by_len;
        if (splits > DEC_MAX_SPLITS) splits = DEC_MAX_SPLITS;
    }
    float *ws = splits > 1 ? (float *)cuda_scratch(sizeof(float) * (size_t)blocks * splits * (8 * G + 2)) : NULL;
    dim3 grid(s->NH, s->B, splits);
    attention_decode_vec_kernel<G><<<grid, DEC_THREADS, 0, stream_main()>>>(out, ws, q, k, v, s->len, s->slot, s->NH,
                                                                             s->NKV, s->q_stride, s->cap, splits);
    CUDA_LAUNCH_CHECK();
    if (splits > 1) {
        attention_decode_combine_kernel<<<dim3(s->NH, s->B), DEC_THREADS, 0, stream_main()>>>(out, ws, s->NH, 8 * G, splits);
        CUDA_LAUNCH_CHECK();
    }
}

extern "C" void cuda_attention_decode(void *out, const void *q, const void *k, const void *v, const DecodeShape *s) {
    if (s->B <= 0 || s->NH <= 0 || s->HD <= 0) return;
    if (s->NKV <= 0 || s->NH % s->NKV) fatal("attention_decode: %d query heads do not divide into %d kv heads", s->NH, s->NKV);
    const bool aligned = s->q_stride % 8 == 0 && is_aligned16(q) && is_aligned16(k) && is_aligned16(v);
    floatX *o = (floatX *)out;
    const floatX *qb = (const floatX *)q, *kb = (const floatX *)k, *vb = (const floatX *)v;
    if (aligned) {
        switch (s->HD) {
        case 8: launch_decode_vec<1>(o, s, qb, kb, vb); return;
        case 16: launch_decode_vec<2>(o, s, qb, kb, vb); return;
        case 32: launch_decode_vec<4>(o, s, qb, kb, vb); return;
        case 64: launch_decode_vec<8>(o, s, qb, kb, vb); return;
        case 128: launch_decode_vec<16>(o, s, qb, kb, vb); return;
        case 256: launch_decode_vec<32>(o, s, qb, kb, vb); return;
        default: break;
        }
    }
    const size_t smem = sizeof(float) * (2 * (size_t)s->HD + DEC_CHUNK);
    if (smem > 48 * 1024) fatal("attention_decode: head dim %d is too large", s->HD);
    dim3 grid(s->NH, s->B);
    attention_decode_kernel<<<grid, DEC_THREADS, smem, stream_main()>>>(o, qb, kb, vb, s->len, s->slot, s->NH, s->NKV,
                                                                        s->HD, s->q_stride, s->cap);
    CUDA_LAUNCH_CHECK();
}
