// Elementwise ops: activations, SwiGLU, add, scale, rotary embedding, broadcast add, im2col, and the
// deterministic column sum used by every bias/weight gradient. Math in fp32 on floatX storage; tested
// against the cpu_* functions of the same names in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_elementwise, cuda_rope, cuda_embeddings_and_rows
// (broadcast add, im2col), cuda_matmul (the bias sums), cuda_unaligned_slices, cuda_deterministic.
//
// Flat kernels walk chunks of 8 elements (grid-stride, size_t indices): a chunk takes 128-bit accesses
// (one in bf16, two in the fp32 build) when the host found every base pointer 16-byte aligned and the
// chunk is whole, else scalar accesses up to the end. So any size and any slice offset works, and the
// common case is vectorized.
#include <math.h>

#include "common.cuh"

#define THREADS 256

// ----------------------------------------------------------------------------------------------------
// activations

__device__ __forceinline__ float act_value(ActKind kind, float x) {
    switch (kind) {
    case ACT_GELU: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));  // exact, erf
    case ACT_QUICK_GELU: return x * sigmoidf_(1.702f * x);
    case ACT_SILU: return x * sigmoidf_(x);
    case ACT_GELU_TANH: {
        const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);  // sqrt(2/pi)
        return 0.5f * x * (1.0f + tanhf(u));
    }
    }
    return 0.0f;
}

__device__ __forceinline__ float act_derivative(ActKind kind, float x) {
    switch (kind) {
    case ACT_GELU: {  // d/dx x Phi(x) = Phi(x) + x phi(x)
        const float cdf = 0.5f * (1.0f + erff(x * 0.70710678118654752f));
        const float pdf = expf(-0.5f * x * x) * 0.3989422804014327f;
        return cdf + x * pdf;
    }
    case ACT_QUICK_GELU: {
        const float s = sigmoidf_(1.702f * x);
        return s + x * 1.702f * s * (1.0f - s);
    }
    case ACT_SILU: {
        const float s = sigmoidf_(x);
        return s * (1.0f + x * (1.0f - s));
    }
    case ACT_GELU_TANH: {
        const float k = 0.7978845608028654f;
        const float t = tanhf(k * (x + 0.044715f * x * x * x));
        return 0.5f * (1.0f + t) + 0.5f * x * (1.0f - t * t) * k * (1.0f + 3.0f * 0.044715f * x * x);
    }
    }
    return 0.0f;
}

// out = act(inp)  (out may alias inp)
__global__ void act_forward_kernel(ActKind kind, floatX *out, const floatX *inp, size_t n, bool aligned) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        const bool vec = aligned && cnt == 8;
        float x[8];
        load8(x, inp + i, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] = act_value(kind, x[k]);
        store8(out + i, x, cnt, vec);
    }
}

// dinp = dout * act'(inp)  (dinp may alias dout)
__global__ void act_backward_kernel(ActKind kind, floatX *dinp, const floatX *dout, const floatX *inp, size_t n,
                                    bool aligned) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        const bool vec = aligned && cnt == 8;
        float x[8], g[8];
        load8(x, inp + i, cnt, vec);
        load8(g, dout + i, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) g[k] *= act_derivative(kind, x[k]);
        store8(dinp + i, g, cnt, vec);
    }
}

extern "C" void cuda_act_forward(ActKind kind, void *out, const void *inp, size_t n) {
    if (!n) return;
    bool aligned = is_aligned16(out) && is_aligned16(inp);
    act_forward_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>(kind, (floatX *)out,
                                                                                        (const floatX *)inp, n, aligned);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_act_backward(ActKind kind, void *dinp, const void *dout, const void *inp, size_t n) {
    if (!n) return;
    bool aligned = is_aligned16(dinp) && is_aligned16(dout) && is_aligned16(inp);
    act_backward_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>(
        kind, (floatX *)dinp, (const floatX *)dout, (const floatX *)inp, n, aligned);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------------------------------
// SwiGLU: inp (N, 2F) = [gate | up],  out (N, F) = silu(gate) * up

__global__ void swiglu_forward_kernel(floatX *out, const floatX *inp, int N, int F, bool vec_rows) {
    const size_t per_row = ceil_div(F, 8), total = (size_t)N * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t n = idx / per_row;
        const int f0 = (int)(idx % per_row) * 8, cnt = F - f0 < 8 ? F - f0 : 8;
        const floatX *gate = inp + n * 2 * F + f0, *up = gate + F;
        float gv[8], uv[8];
        load8(gv, gate, cnt, vec_rows);
        load8(uv, up, cnt, vec_rows);
#pragma unroll
        for (int k = 0; k < 8; k++) gv[k] = gv[k] * sigmoidf_(gv[k]) * uv[k];
        store8(out + n * F + f0, gv, cnt, vec_rows);
    }
}

// d(up) = dout * silu(gate),  d(gate) = dout * up * s * (1 + gate * (1 - s)),  s = sigmoid(gate)
// (each chunk reads gate, up and dout before writing, so dinp may even be inp)
__global__ void swiglu_backward_kernel(floatX *dinp, const floatX *dout, const floatX *inp, int N, int F, bool vec_rows) {
    const size_t per_row = ceil_div(F, 8), total = (size_t)N * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t n = idx / per_row;
        const int f0 = (int)(idx % per_row) * 8, cnt = F - f0 < 8 ? F - f0 : 8;
        const floatX *gate = inp + n * 2 * F + f0, *up = gate + F;
        float gv[8], uv[8], dv[8], dgate[8], dup[8];
        load8(gv, gate, cnt, vec_rows);
        load8(uv, up, cnt, vec_rows);
        load8(dv, dout + n * F + f0, cnt, vec_rows);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float s = sigmoidf_(gv[k]);
            dup[k] = dv[k] * gv[k] * s;
            dgate[k] = dv[k] * uv[k] * s * (1.0f + gv[k] * (1.0f - s));
        }
        floatX *dg = dinp + n * 2 * F + f0;
        store8(dg, dgate, cnt, vec_rows);
        store8(dg + F, dup, cnt, vec_rows);
    }
}

extern "C" void cuda_swiglu_forward(void *out, const void *inp, int N, int F) {
    if (N <= 0 || F <= 0) return;
    bool vec = F % 8 == 0 && is_aligned16(out) && is_aligned16(inp);
    swiglu_forward_kernel<<<grid_for((size_t)N * ceil_div(F, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)out, (const floatX *)inp, N, F, vec);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_swiglu_backward(void *dinp, const void *dout, const void *inp, int N, int F) {
    if (N <= 0 || F <= 0) return;
    bool vec = F % 8 == 0 && is_aligned16(dinp) && is_aligned16(dout) && is_aligned16(inp);
    swiglu_backward_kernel<<<grid_for((size_t)N * ceil_div(F, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)dinp, (const floatX *)dout, (const floatX *)inp, N, F, vec);
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------------------------------
// add, scale

// out = a + b  (out may alias a or b: each chunk is read whole before it is written)
__global__ void add_kernel(floatX *out, const floatX *a, const floatX *b, size_t n, bool aligned) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        const bool vec = aligned && cnt == 8;
        float x[8], y[8];
        load8(x, a + i, cnt, vec);
        load8(y, b + i, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] += y[k];
        store8(out + i, x, cnt, vec);
    }
}

// x *= s
__global__ void scale_kernel(floatX *x, float s, size_t n, bool aligned) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        const bool vec = aligned && cnt == 8;
        float v[8];
        load8(v, x + i, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) v[k] *= s;
        store8(x + i, v, cnt, vec);
    }
}

extern "C" void cuda_add(void *out, const void *a, const void *b, size_t n) {
    if (!n) return;
    bool aligned = is_aligned16(out) && is_aligned16(a) && is_aligned16(b);
    add_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>((floatX *)out, (const floatX *)a,
                                                                                 (const floatX *)b, n, aligned);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_scale(void *x, float s, size_t n) {
    if (!n) return;
    scale_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>((floatX *)x, s, n, is_aligned16(x));
    CUDA_LAUNCH_CHECK();
}

// ----------------------------------------------------------------------------------------------------
// channel scale (DINOv2's layer scale): out (N, C) = inp * s (C). 8 elements a thread; with C % 8 == 0 and
// aligned buffers the 8 share a row and are 128-bit accesses, else each element finds its channel.

__global__ void channel_scale_kernel(floatX *out, const floatX *inp, const floatX *s, size_t n, int C, bool vec) {
    for (size_t i = ((size_t)blockIdx.x * blockDim.x + threadIdx.x) * 8; i < n; i += (size_t)gridDim.x * blockDim.x * 8) {
        const int cnt = n - i < 8 ? (int)(n - i) : 8;
        float x[8], g[8];
        load8(x, inp + i, cnt, vec);
        if (vec) load8(g, s + i % C, 8, true);
        else
            for (int k = 0; k < cnt; k++) g[k] = to_f32(s[(i + k) % C]);
#pragma unroll
        for (int k = 0; k < 8; k++) x[k] *= g[k];
        store8(out + i, x, cnt, vec);
    }
}

extern "C" void cuda_channel_scale_forward(void *out, const void *inp, const void *s, int N, int C) {
    if (N <= 0 || C <= 0) return;
    const size_t n = (size_t)N * C;
    const bool vec = C % 8 == 0 && is_aligned16(out) && is_aligned16(inp) && is_aligned16(s);
    channel_scale_kernel<<<grid_for(ceil_div(n, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)out, (const floatX *)inp, (const floatX *)s, n, C, vec);
    CUDA_LAUNCH_CHECK();
}

// ds (C) += column sums of dout * inp (colsum_add's fixed order), then dinp = dout * s: in that order, as dinp
// may alias dout
extern "C" void cuda_channel_scale_backward(void *dinp, void *ds, const void *dout, const void *inp, const void *s, int N,
                                            int C) {
    if (N <= 0 || C <= 0) return;
    if (ds) colsum_mul_add_act((floatX *)ds, (const floatX *)dout, (const floatX *)inp, (size_t)N, (size_t)C);
    if (dinp) cuda_channel_scale_forward(dinp, dout, s, N, C);
}

// ----------------------------------------------------------------------------------------------------
// rotary embedding, HF half rotation, in place. One thread per (token, frequency i), looping over heads:
//   f_i = 1 / theta^(2i / HD) (fp32, as the CPU reference and HF compute it),  angle = pos[n] * f_i
//   x[i] <- x[i] cos - x[i + HD/2] sin,  x[i + HD/2] <- x[i + HD/2] cos + x[i] sin   (sin negated for backward)
// (rope_sincos and rope_rotate in common.cuh; rope_kv_append in cuda/decode.cu uses them too)

__global__ void rope_kernel(floatX *x, const int *pos, int N, int heads, int HD, int stride, float theta, float sign) {
    const int half = HD / 2;
    const size_t total = (size_t)N * half;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t n = idx / half;
        const int i = (int)(idx % half);
        float s, c;
        rope_sincos(pos[n], i, HD, theta, &s, &c);
        s *= sign;
        floatX *row = x + n * (size_t)stride;
        for (int h = 0; h < heads; h++) {
            floatX *xh = row + (size_t)h * HD;
            float a = to_f32(xh[i]), b = to_f32(xh[i + half]);
            rope_rotate(&a, &b, c, s);
            xh[i] = to_floatX(a);
            xh[i + half] = to_floatX(b);
        }
    }
}

static void rope_launch(void *x, const int *pos, int N, int heads, int HD, int stride, float theta, float sign) {
    if (N <= 0 || heads <= 0 || HD < 2) return;
    rope_kernel<<<grid_for((size_t)N * (HD / 2), THREADS), THREADS, 0, stream_main()>>>((floatX *)x, pos, N, heads, HD,
                                                                                        stride, theta, sign);
    CUDA_LAUNCH_CHECK();
}

extern "C" void cuda_rope_forward(void *x, const int *pos, int N, int heads, int HD, int stride, float theta) {
    rope_launch(x, pos, N, heads, HD, stride, theta, 1.0f);
}

// the rotation is orthogonal: the gradient is rotated back by the same angle
extern "C" void cuda_rope_backward(void *dx, const int *pos, int N, int heads, int HD, int stride, float theta) {
    rope_launch(dx, pos, N, heads, HD, stride, theta, -1.0f);
}

// ----------------------------------------------------------------------------------------------------
// broadcast add over rows, its gradient, and the column sum behind every bias gradient

// x (B, M) += y (M)
__global__ void add_broadcast_kernel(floatX *x, const floatX *y, int B, size_t M, bool vec_rows) {
    const size_t per_row = ceil_div(M, 8), total = (size_t)B * per_row;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t b = idx / per_row, c0 = (idx % per_row) * 8;
        const int cnt = M - c0 < 8 ? (int)(M - c0) : 8;
        float xv[8], yv[8];
        load8(xv, x + b * M + c0, cnt, vec_rows);
        load8(yv, y + c0, cnt, vec_rows);
#pragma unroll
        for (int k = 0; k < 8; k++) xv[k] += yv[k];
        store8(x + b * M + c0, xv, cnt, vec_rows);
    }
}

extern "C" void cuda_add_broadcast_forward(void *x, const void *y, int B, size_t M) {
    if (B <= 0 || !M) return;
    bool vec = M % 8 == 0 && is_aligned16(x) && is_aligned16(y);
    add_broadcast_kernel<<<grid_for((size_t)B * ceil_div(M, 8), THREADS), THREADS, 0, stream_main()>>>(
        (floatX *)x, (const floatX *)y, B, M, vec);
    CUDA_LAUNCH_CHECK();
}

// out (M) += sum over r of in (R, M). Block (32 columns x 32 row lanes): lane y sums rows y, y + 32, ...
// in order, then the 32 lane sums are added in lane order: a fixed tree, so deterministic, all in fp32,
// with a single rounding into the act type. Tested against cpu_add_broadcast_backward and the bias sums.
// With mul (R, M) non-NULL the sums are of in * mul, each product rounded to fp32 (the channel scale's gradient).
template <typename T>
__global__ void colsum_add_kernel(floatX *out, const T *in, const floatX *mul, size_t R, size_t M) {
    __shared__ float part[32][33];
    const size_t c = (size_t)blockIdx.x * 32 + threadIdx.x;
    float s = 0.0f;
    if (c < M)
        for (size_t r = threadIdx.y; r < R; r += 32) {
            const float x = to_f32(in[r * M + c]);
            s += mul ? x * to_f32(mul[r * M + c]) : x;
        }
    part[threadIdx.y][threadIdx.x] = s;
    __syncthreads();
    if (threadIdx.y == 0 && c < M) {
        float total = 0.0f;
        for (int y = 0; y < 32; y++) total += part[y][threadIdx.x];
        out[c] = to_floatX(to_f32(out[c]) + total);
    }
}

void colsum_add_act(floatX *out, const floatX *in, size_t R, size_t M) {
    if (!R || !M) return;
    colsum_add_kernel<floatX><<<(unsigned)ceil_div(M, 32), dim3(32, 32), 0, stream_main()>>>(out, in, NULL, R, M);
    CUDA_LAUNCH_CHECK();
}

void colsum_mul_add_act(floatX *out, const floatX *in, const floatX *mul, size_t R, size_t M) {
    if (!R || !M) return;
    colsum_add_kernel<floatX><<<(unsigned)ceil_div(M, 32), dim3(32, 32), 0, stream_main()>>>(out, in, mul, R, M);
    CUDA_LAUNCH_CHECK();
}

void colsum_add_f32(floatX *out, const float *in, size_t R, size_t M) {
    if (!R || !M) return;
    colsum_add_kernel<float><<<(unsigned)ceil_div(M, 32), dim3(32, 32), 0, stream_main()>>>(out, in, NULL, R, M);
    CUDA_LAUNCH_CHECK();
}

// dy (M) += sum over b of dx (B, M)
extern "C" void cuda_add_broadcast_backward(void *dy, const void *dx, int B, size_t M) {
    if (B <= 0) return;
    colsum_add_act((floatX *)dy, (const floatX *)dx, (size_t)B, M);
}

// ----------------------------------------------------------------------------------------------------
// im2col: pixels (B, Cin, H, W) -> patches (B * gh * gw, Cin * P * P), row (c, ky, kx), grid row-major.
// One thread per patch element: consecutive threads write consecutive elements and read runs of P.

__global__ void im2col_kernel(floatX *patches, const floatX *pixels, int B, int Cin, int H, int W, int P) {
    const int gh = H / P, gw = W / P, K = Cin * P * P;
    const size_t total = (size_t)B * gh * gw * K;
    for (size_t idx = (size_t)blockIdx.x * blockDim.x + threadIdx.x; idx < total; idx += (size_t)gridDim.x * blockDim.x) {
        const size_t r = idx / K;
        const int k = (int)(idx % K);
        const int c = k / (P * P), ky = (k / P) % P, kx = k % P;
        const size_t b = r / ((size_t)gh * gw);
        const int py = (int)((r / gw) % gh), px = (int)(r % gw);
        patches[idx] = pixels[(((b * Cin + c) * H) + (size_t)py * P + ky) * W + (size_t)px * P + kx];
    }
}

extern "C" void cuda_im2col(void *patches, const void *pixels, int B, int Cin, int H, int W, int P) {
    if (B <= 0 || Cin <= 0 || P <= 0 || H < P || W < P) return;
    size_t total = (size_t)B * (H / P) * (W / P) * Cin * P * P;
    im2col_kernel<<<grid_for(total, THREADS), THREADS, 0, stream_main()>>>((floatX *)patches, (const floatX *)pixels,
                                                                           B, Cin, H, W, P);
    CUDA_LAUNCH_CHECK();
}
