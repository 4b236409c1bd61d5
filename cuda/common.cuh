// Shared by every cuda/*.cu file: error checks that name the file and line, the act type floatX, 128-bit
// vector loads and stores, warp and block reductions, the one stream and the one reusable scratch buffer.
#pragma once
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include <cuda_bf16.h>
#include <cuda_runtime.h>

extern "C" {
#include "../util/common.h"
}
#include "cuda_backend.h"

// ----------------------------------------------------------------------------------------------------
// The "act" type of the CUDA backend (model/ops.h: activations, parameters and their gradients), named
// floatX as in llm.c: bf16 by default; fp32 when built with -DVLM_CUDA_FP32 (`make test-cuda-fp32`), a
// build for exact comparisons with the CPU reference and transformers (DESIGN.md section 4), not for
// speed. "acc" buffers are float in both. Kernels convert through to_f32 / to_floatX so that one source
// serves both builds; in the bf16 build they are exactly the intrinsics they replace.

#ifdef VLM_CUDA_FP32
typedef float floatX;
#else
typedef __nv_bfloat16 floatX;
#endif

__host__ __device__ __forceinline__ float to_f32(float x) { return x; }
__host__ __device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }

// float -> act type: round to nearest even into bf16; exact in the fp32 build
__host__ __device__ __forceinline__ floatX to_floatX(float x) {
#ifdef VLM_CUDA_FP32
    return x;
#else
    return __float2bfloat16_rn(x);
#endif
}

// ----------------------------------------------------------------------------------------------------
// errors: every CUDA call and every launch is checked, and a failure names the place

#define CUDA_CHECK(call)                                                                                \
    do {                                                                                                \
        cudaError_t err_ = (call);                                                                      \
        if (err_ != cudaSuccess)                                                                        \
            fatal("%s:%d: CUDA error %s: %s (in %s)", __FILE__, __LINE__, cudaGetErrorName(err_),       \
                  cudaGetErrorString(err_), #call);                                                     \
    } while (0)

// after every kernel launch: catches bad launch configurations at once (and earlier asynchronous faults)
#define CUDA_LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

// cuBLAS and cuBLASLt share the status type; cublasGetStatusString names both
#define CUBLAS_CHECK(call)                                                                              \
    do {                                                                                                \
        cublasStatus_t st_ = (call);                                                                    \
        if (st_ != CUBLAS_STATUS_SUCCESS)                                                               \
            fatal("%s:%d: cuBLAS error %d: %s (in %s)", __FILE__, __LINE__, (int)st_,                   \
                  cublasGetStatusString(st_), #call);                                                   \
    } while (0)

// ----------------------------------------------------------------------------------------------------
// host helpers

__host__ __device__ static inline size_t ceil_div(size_t a, size_t b) { return (a + b - 1) / b; }
static inline int is_aligned16(const void *p) { return ((uintptr_t)p & 15) == 0; }

// A switch of the environment for timing what a part of the backend is worth (README): on unless the
// variable is "0". Read once per call site: `static int on = -1; if (on < 0) on = env_switch_on("NAME");`
static inline int env_switch_on(const char *name) {
    const char *env = getenv(name);
    return !(env && env[0] == '0');
}

// The one stream every kernel, copy and library call of the backend runs on (cuda/backend.cu).
static inline cudaStream_t stream_main(void) { return (cudaStream_t)cuda_stream(); }

// A device buffer of at least `bytes`, reused by every op (cuda/backend.cu). Valid until the next call:
// an op takes it, queues its kernels and is done with it; ops run in stream order, so the next op may
// take it again at once. Growing it waits for the stream first.
void *cuda_scratch(size_t bytes);
// Counts the scratch buffer's reallocations: a CUDA graph that recorded the old address is stale.
unsigned cuda_scratch_generation(void);

// out (M) += column sums of in (R, M): fp32 sums in a fixed order, then one rounding into the act type.
// Used by the bias gradient, add_broadcast_backward (in: act) and the norms' weight gradients (in: fp32
// partial sums) (cuda/elementwise.cu).
void colsum_add_act(floatX *out, const floatX *in, size_t R, size_t M);
void colsum_mul_add_act(floatX *out, const floatX *in, const floatX *mul, size_t R, size_t M);  // sums of in * mul
void colsum_add_f32(floatX *out, const float *in, size_t R, size_t M);

// ----------------------------------------------------------------------------------------------------
// device helpers

// 8 act elements: one 128-bit access in bf16 (llm.c's x128); 32 bytes in the fp32 build, moved as two
// 128-bit accesses. Either way p must be 16-byte aligned, which is what the callers' is_aligned16 and
// "multiple of 8 elements" checks guarantee for every chunk of 8.
struct alignas(16) x128 {
    floatX v[8];
};

#ifdef VLM_CUDA_FP32
__device__ __forceinline__ x128 load128(const floatX *p) {
    const float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
    x128 x;
    x.v[0] = a.x, x.v[1] = a.y, x.v[2] = a.z, x.v[3] = a.w, x.v[4] = b.x, x.v[5] = b.y, x.v[6] = b.z, x.v[7] = b.w;
    return x;
}
__device__ __forceinline__ void store128(floatX *p, x128 x) {
    reinterpret_cast<float4 *>(p)[0] = make_float4(x.v[0], x.v[1], x.v[2], x.v[3]);
    reinterpret_cast<float4 *>(p)[1] = make_float4(x.v[4], x.v[5], x.v[6], x.v[7]);
}
#else
__device__ __forceinline__ x128 load128(const floatX *p) { return *reinterpret_cast<const x128 *>(p); }
__device__ __forceinline__ void store128(floatX *p, x128 x) { *reinterpret_cast<x128 *>(p) = x; }
#endif

// Up to 8 consecutive act elements as floats. `vec`: all 8 are in bounds and p is 16-byte aligned, so
// vector loads (load128); otherwise `count` (<= 8) scalar loads and zeros after them. Every kernel that
// walks rows in chunks of 8 goes through these two, so odd sizes and unaligned slices take the scalar path.
__device__ __forceinline__ void load8(float out[8], const floatX *p, int count, bool vec) {
    if (vec) {
        x128 x = load128(p);
#pragma unroll
        for (int k = 0; k < 8; k++) out[k] = to_f32(x.v[k]);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) out[k] = k < count ? to_f32(p[k]) : 0.0f;
    }
}
__device__ __forceinline__ void store8(floatX *p, const float in[8], int count, bool vec) {
    if (vec) {
        x128 x;
#pragma unroll
        for (int k = 0; k < 8; k++) x.v[k] = to_floatX(in[k]);
        store128(p, x);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < count) p[k] = to_floatX(in[k]);
    }
}

// The same for 8 consecutive floats (vec: in bounds and 16-byte aligned, two 128-bit accesses).
__device__ __forceinline__ void load8f(float out[8], const float *p, int count, bool vec) {
    if (vec) {
        float4 a = reinterpret_cast<const float4 *>(p)[0], b = reinterpret_cast<const float4 *>(p)[1];
        out[0] = a.x, out[1] = a.y, out[2] = a.z, out[3] = a.w, out[4] = b.x, out[5] = b.y, out[6] = b.z, out[7] = b.w;
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++) out[k] = k < count ? p[k] : 0.0f;
    }
}
__device__ __forceinline__ void store8f(float *p, const float in[8], int count, bool vec) {
    if (vec) {
        reinterpret_cast<float4 *>(p)[0] = make_float4(in[0], in[1], in[2], in[3]);
        reinterpret_cast<float4 *>(p)[1] = make_float4(in[4], in[5], in[6], in[7]);
    } else {
#pragma unroll
        for (int k = 0; k < 8; k++)
            if (k < count) p[k] = in[k];
    }
}

// Rotary embedding (model/ops.h rope_forward), the math of rope_kernel (cuda/elementwise.cu) and
// rope_kv_append_kernel (cuda/decode.cu) in one place, so that both round identically.
// The angle of frequency i at position pos: f_i = 1 / theta^(2i / HD) (fp32, as the CPU reference and HF
// compute it), angle = pos * f_i; its sine and cosine.
__device__ __forceinline__ void rope_sincos(int pos, int i, int HD, float theta, float *s, float *c) {
#ifdef VLM_CUDA_FP32
    // as cpu_rope_forward computes it: pow in double, rounded once. powf is off by a few ulp, which times
    // positions in the hundreds moves the angle by ~1e-4 rad, the whole tolerance of the fp32 build.
    const float inv_freq = 1.0f / (float)pow((double)theta, (double)((float)(2 * i) / (float)HD));
#else
    const float inv_freq = 1.0f / powf(theta, (float)(2 * i) / (float)HD);
#endif
    sincosf((float)pos * inv_freq, s, c);
}
// The pair (a, b) = (x[i], x[i + HD/2]) rotated: a cos - b sin, b cos + a sin (sin negated: the inverse).
__device__ __forceinline__ void rope_rotate(float *a, float *b, float c, float s) {
    const float a0 = *a, b0 = *b;
    *a = a0 * c - b0 * s;
    *b = b0 * c + a0 * s;
}

// Grid for a loop over `work` items, `per_block` per block, capped (the kernels loop grid-stride).
static inline unsigned grid_for(size_t work, size_t per_block) {
    size_t g = ceil_div(work, per_block);
    return (unsigned)(g < 1 ? 1 : g > ((size_t)1 << 20) ? ((size_t)1 << 20) : g);
}

// the logistic function as SiLU and SwiGLU use it (cuda/elementwise.cu, the fused SwiGLU of cuda/gemv.cu)
__device__ __forceinline__ float sigmoidf_(float x) { return 1.0f / (1.0f + expf(-x)); }

// ----------------------------------------------------------------------------------------------------
// reductions over a warp and over a block, in a fixed order (lanes by xor tree, then warps in index order),
// so that a result is the same bits on every run. `op` combines two partial results (SumOp, MaxOp, or a
// kernel's own, like the classifier's (max, sum of exp) pairs); T is float, double or float2.

struct SumOp {
    template <typename T>
    __device__ __forceinline__ T operator()(T a, T b) const { return a + b; }
};
struct MaxOp {
    __device__ __forceinline__ float operator()(float a, float b) const { return fmaxf(a, b); }
};

__device__ __forceinline__ float shfl_xor(float v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ double shfl_xor(double v, int o) { return __shfl_xor_sync(0xffffffffu, v, o); }
__device__ __forceinline__ float2 shfl_xor(float2 v, int o) { return make_float2(shfl_xor(v.x, o), shfl_xor(v.y, o)); }

// op over the 32 lanes of the warp, returned to every lane
template <typename T, typename Op>
__device__ __forceinline__ T warp_reduce(T v, Op op) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = op(v, shfl_xor(v, o));
    return v;
}
__device__ __forceinline__ float warp_sum(float v) { return warp_reduce(v, SumOp()); }
__device__ __forceinline__ float warp_max(float v) { return warp_reduce(v, MaxOp()); }

// op over the whole block (blockDim.x a multiple of 32, at most 1024), returned to every thread; `identity`
// is op's neutral element. Starts with a barrier so that it can be called several times in a row, and its
// barriers also publish the shared-memory writes made before it.
template <typename T, typename Op>
__device__ __forceinline__ T block_reduce(T v, T identity, Op op) {
    __shared__ T warp_part[32];  // one array per (T, Op) instantiation
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    v = warp_reduce(v, op);
    __syncthreads();
    if (lane == 0) warp_part[warp] = v;
    __syncthreads();
    T s = identity;
    for (int w = 0; w < nwarps; w++) s = op(s, warp_part[w]);
    return s;
}
__device__ __forceinline__ float block_sum(float v) { return block_reduce(v, 0.0f, SumOp()); }
__device__ __forceinline__ double block_sum(double v) { return block_reduce(v, 0.0, SumOp()); }
__device__ __forceinline__ float block_max(float v) { return block_reduce(v, -INFINITY, MaxOp()); }
