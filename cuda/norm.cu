// LayerNorm and RMSNorm, forward and backward, and the residual add fused with the RMSNorm after it
// (add_rmsnorm_forward: the RMSNorm forward kernel with ADD on); statistics in fp32. Tested against
// cpu_layernorm_*, cpu_rmsnorm_* and cpu_add_rmsnorm_forward in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_norms, cuda_add_rmsnorm, cuda_optional_outputs,
// cuda_deterministic, cuda_unaligned_slices.
//
// Layout shared by the four kernels: a row of C is split into chunks of 8 columns; a group of Tg threads
// (a multiple of 32, at most 512) owns one row at a time, thread t holding chunks t, t + Tg, ... (J of
// them, J a template constant so they live in registers). A block holds R = 256 / Tg groups for short
// rows. A row is read from memory once: its values stay in registers through the row reductions.
//
// Backward: the input gradient is accumulated into the residual stream (dinp += ...), and the weight
// (and bias) gradients are summed deterministically in two stages: each group walks a fixed run of
// rows keeping its column sums in registers, writes them as one fp32 row of a partial-sum matrix
// (P groups x C), and colsum_add_f32 adds the column sums of that matrix into dw (db) in a fixed order.
// No atomics anywhere, so results are bit-identical run to run.
#include "common.cuh"
#include "ptx.cuh"

#define MAX_GROUP 512

typedef struct {
    int J;        // chunks of 8 per thread (1, 2, 4 or 8)
    int Tg;       // threads per row
    int R;        // rows (groups) per block
    int threads;  // Tg * R
} RowPlan;

static RowPlan row_plan(int C, const char *op) {
    RowPlan p;
    int chunks = (int)ceil_div((size_t)C, 8);
    int J = (int)ceil_div((size_t)chunks, MAX_GROUP);
    if (J > 8) fatal("%s: rows of %d columns are wider than this kernel handles (%d)", op, C, 8 * 8 * MAX_GROUP);
    p.J = J <= 1 ? 1 : J <= 2 ? 2 : J <= 4 ? 4 : 8;
    p.Tg = (int)ceil_div(ceil_div((size_t)chunks, p.J), 32) * 32;
    p.R = p.Tg >= 256 ? 1 : 256 / p.Tg;
    p.threads = p.Tg * p.R;
    return p;
}

// Sum over the Tg threads of this thread's group (every thread of the block calls it, the same number of
// times). Fixed order: xor tree in the warp, then the group's warps in index order.
__device__ __forceinline__ float2 group_sum2(float2 v, int Tg) {
    v.x = warp_sum(v.x);
    v.y = warp_sum(v.y);
    if (Tg == 32) return v;  // uniform over the block: all threads take the same branch
    __shared__ float2 part[MAX_GROUP / 32];  // blocks hold at most MAX_GROUP threads
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    __syncthreads();  // earlier readers of part are done
    if (lane == 0) part[warp] = v;
    __syncthreads();
    const int w0 = (threadIdx.x / Tg) * (Tg >> 5);
    float2 s = make_float2(0.0f, 0.0f);
    for (int w = 0; w < (Tg >> 5); w++) {
        s.x += part[w0 + w].x;
        s.y += part[w0 + w].y;
    }
    return s;
}

// number of valid columns in the chunk starting at c0 (0 when past the end)
__device__ __forceinline__ int chunk_count(int c0, int C) { return c0 >= C ? 0 : (C - c0 < 8 ? C - c0 : 8); }

// ----------------------------------------------------------------------------------------------------
// layernorm

// out = (x - mean) * rstd * w + b,  mean = sum(x) / C,  rstd = 1 / sqrt(sum((x - mean)^2) / C + eps)
template <int J>
__global__ void __launch_bounds__(512) layernorm_forward_kernel(floatX *out, float *mean, float *rstd, const floatX *inp,
                                                                const floatX *w, const floatX *b, int N, int C, float eps,
                                                                int Tg, bool vec) {
    const int g = threadIdx.x / Tg, t = threadIdx.x % Tg;
    const int n = blockIdx.x * (blockDim.x / Tg) + g;
    const bool row_ok = n < N;
    const floatX *x = inp + (size_t)(row_ok ? n : 0) * C;
    float xv[J][8];
    float sum = 0.0f;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = row_ok ? chunk_count(c0, C) : 0;
        if (cnt > 0) load8(xv[j], x + c0, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (cnt <= 0) xv[j][k] = 0.0f;
            sum += xv[j][k];
        }
    }
    const float m = group_sum2(make_float2(sum, 0.0f), Tg).x / C;
    float var = 0.0f;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            const float d = xv[j][k] - m;
            if (c0 + k < C) var += d * d;
        }
    }
    var = group_sum2(make_float2(var, 0.0f), Tg).x / C;
    const float s = 1.0f / sqrtf(var + eps);
    if (!row_ok) return;
    floatX *y = out + (size_t)n * C;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        if (cnt <= 0) continue;
        float wv[8], bv[8], yv[8];
        load8(wv, w + c0, cnt, vec);
        if (b) load8(bv, b + c0, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) yv[k] = ((xv[j][k] - m) * s) * wv[k] + (b ? bv[k] : 0.0f);
        store8(y + c0, yv, cnt, vec);
    }
    if (t == 0) {
        mean[n] = m;
        rstd[n] = s;
    }
}

// dn = dout * w,  xhat = (x - mean) * rstd:
//   dinp += rstd * (dn - mean(dn) - xhat * mean(dn * xhat))
//   dw_part[group] = sum over the group's rows of dout * xhat,  db_part[group] = sum of dout
template <int J>
__global__ void __launch_bounds__(512)
    layernorm_backward_kernel(floatX *dinp, float *dw_part, float *db_part, const floatX *dout, const floatX *inp,
                              const floatX *w, const float *mean, const float *rstd, int N, int C, int Tg,
                              int rows_per_group, bool vec) {
    const int g = threadIdx.x / Tg, t = threadIdx.x % Tg;
    const int group = blockIdx.x * (blockDim.x / Tg) + g;
    float wv[J][8], dw_acc[J][8], db_acc[J][8];
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        if (cnt > 0) load8(wv[j], w + c0, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (cnt <= 0) wv[j][k] = 0.0f;
            dw_acc[j][k] = db_acc[j][k] = 0.0f;
        }
    }
    for (int r = 0; r < rows_per_group; r++) {
        const int n = group * rows_per_group + r;
        const bool row_ok = n < N;
        const floatX *x = inp + (size_t)(row_ok ? n : 0) * C, *gr = dout + (size_t)(row_ok ? n : 0) * C;
        const float m = row_ok ? mean[n] : 0.0f, s = row_ok ? rstd[n] : 0.0f;
        float xhat[J][8], gv[J][8];
        float sum_dn = 0.0f, sum_dn_xhat = 0.0f;
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int c0 = (t + j * Tg) * 8, cnt = row_ok ? chunk_count(c0, C) : 0;
            if (cnt > 0) {
                load8(xhat[j], x + c0, cnt, vec);
                load8(gv[j], gr + c0, cnt, vec);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                if (cnt <= 0) xhat[j][k] = gv[j][k] = 0.0f;
                xhat[j][k] = (xhat[j][k] - m) * s;  // padded columns: g = 0 and w = 0, so they add nothing
                const float dn = gv[j][k] * wv[j][k];
                sum_dn += dn;
                sum_dn_xhat += dn * xhat[j][k];
                dw_acc[j][k] += gv[j][k] * xhat[j][k];
                db_acc[j][k] += gv[j][k];
            }
        }
        if (!dinp) continue;  // uniform over the launch
        const float2 sums = group_sum2(make_float2(sum_dn, sum_dn_xhat), Tg);
        const float a = sums.x / C, bb = sums.y / C;
        if (!row_ok) continue;
        floatX *dx = dinp + (size_t)n * C;
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
            if (cnt <= 0) continue;
            float dv[8];
            load8(dv, dx + c0, cnt, vec);
#pragma unroll
            for (int k = 0; k < 8; k++) dv[k] += s * (gv[j][k] * wv[j][k] - a - xhat[j][k] * bb);
            store8(dx + c0, dv, cnt, vec);
        }
    }
    if (!dw_part) return;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        for (int k = 0; k < cnt; k++) {
            dw_part[(size_t)group * C + c0 + k] = dw_acc[j][k];
            db_part[(size_t)group * C + c0 + k] = db_acc[j][k];
        }
    }
}

// ----------------------------------------------------------------------------------------------------
// rmsnorm

// out = (x * rstd) * w,  rstd = 1 / sqrt(sum(x^2) / C + eps)   (HF: normalize first, then weight)
// ADD (add_rmsnorm_forward): x = inp + inp2 first, rounded to floatX as the add kernel rounds it and stored
// to sum, then normalized from the rounded values. Each thread reads its chunks of inp and inp2 before it
// writes the same chunks of sum, so sum may be inp or inp2.
template <int J, bool ADD>
__global__ void __launch_bounds__(512) rmsnorm_forward_kernel(floatX *out, float *rstd, floatX *sum, const floatX *inp,
                                                              const floatX *inp2, const floatX *w, int N, int C,
                                                              float eps, int Tg, bool vec) {
    griddep_launch_dependents();  // a skinny matmul reading out may start streaming its weights (cuda/gemv.cu)
    const int g = threadIdx.x / Tg, t = threadIdx.x % Tg;
    const int n = blockIdx.x * (blockDim.x / Tg) + g;
    const bool row_ok = n < N;
    const size_t row = (size_t)(row_ok ? n : 0) * C;
    float xv[J][8];
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = row_ok ? chunk_count(c0, C) : 0;
        if (cnt > 0) {
            load8(xv[j], inp + row + c0, cnt, vec);
            if (ADD) {
                float bv[8];
                load8(bv, inp2 + row + c0, cnt, vec);
#pragma unroll
                for (int k = 0; k < 8; k++) xv[j][k] = to_f32(to_floatX(xv[j][k] + bv[k]));  // the stored sum
                store8(sum + row + c0, xv[j], cnt, vec);
            }
        }
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (cnt <= 0) xv[j][k] = 0.0f;
            ss += xv[j][k] * xv[j][k];
        }
    }
    ss = group_sum2(make_float2(ss, 0.0f), Tg).x;
    const float s = 1.0f / sqrtf(ss / C + eps);
    if (!row_ok) return;
    floatX *y = out + (size_t)n * C;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        if (cnt <= 0) continue;
        float wv[8], yv[8];
        load8(wv, w + c0, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) yv[k] = (xv[j][k] * s) * wv[k];
        store8(y + c0, yv, cnt, vec);
    }
    if (t == 0) rstd[n] = s;
}

// y = x s w:  dinp += s dn - x s^3 mean(dn x),  dn = dout w;  dw_part[group] = sum of dout * x * s
template <int J>
__global__ void __launch_bounds__(512)
    rmsnorm_backward_kernel(floatX *dinp, float *dw_part, const floatX *dout, const floatX *inp, const floatX *w,
                            const float *rstd, int N, int C, int Tg, int rows_per_group, bool vec) {
    const int g = threadIdx.x / Tg, t = threadIdx.x % Tg;
    const int group = blockIdx.x * (blockDim.x / Tg) + g;
    float wv[J][8], dw_acc[J][8];
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        if (cnt > 0) load8(wv[j], w + c0, cnt, vec);
#pragma unroll
        for (int k = 0; k < 8; k++) {
            if (cnt <= 0) wv[j][k] = 0.0f;
            dw_acc[j][k] = 0.0f;
        }
    }
    for (int r = 0; r < rows_per_group; r++) {
        const int n = group * rows_per_group + r;
        const bool row_ok = n < N;
        const floatX *x = inp + (size_t)(row_ok ? n : 0) * C, *gr = dout + (size_t)(row_ok ? n : 0) * C;
        const float s = row_ok ? rstd[n] : 0.0f;
        float xv[J][8], gv[J][8];
        float dot = 0.0f;
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int c0 = (t + j * Tg) * 8, cnt = row_ok ? chunk_count(c0, C) : 0;
            if (cnt > 0) {
                load8(xv[j], x + c0, cnt, vec);
                load8(gv[j], gr + c0, cnt, vec);
            }
#pragma unroll
            for (int k = 0; k < 8; k++) {
                if (cnt <= 0) xv[j][k] = gv[j][k] = 0.0f;
                dot += gv[j][k] * wv[j][k] * xv[j][k];
                dw_acc[j][k] += gv[j][k] * xv[j][k] * s;
            }
        }
        if (!dinp) continue;  // uniform over the launch
        const float kk = group_sum2(make_float2(dot, 0.0f), Tg).x / C * s * s * s;
        if (!row_ok) continue;
        floatX *dx = dinp + (size_t)n * C;
#pragma unroll
        for (int j = 0; j < J; j++) {
            const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
            if (cnt <= 0) continue;
            float dv[8];
            load8(dv, dx + c0, cnt, vec);
#pragma unroll
            for (int k = 0; k < 8; k++) dv[k] += s * gv[j][k] * wv[j][k] - xv[j][k] * kk;
            store8(dx + c0, dv, cnt, vec);
        }
    }
    if (!dw_part) return;
#pragma unroll
    for (int j = 0; j < J; j++) {
        const int c0 = (t + j * Tg) * 8, cnt = chunk_count(c0, C);
        for (int k = 0; k < cnt; k++) dw_part[(size_t)group * C + c0 + k] = dw_acc[j][k];
    }
}

// ----------------------------------------------------------------------------------------------------
// host side

// 128-bit path when every row chunk is 16-byte aligned: C a multiple of 8 and aligned base pointers
static bool rows_vec(int C, const void *a, const void *b, const void *c, const void *d) {
    return C % 8 == 0 && is_aligned16(a) && is_aligned16(b) && is_aligned16(c) && is_aligned16(d);
}

// Rows per group in the backward pass: at least 8 (so the partial sums stay small next to the inputs),
// more when there are more rows than about 128K threads can take in one wave.
static int backward_rows_per_group(int N, const RowPlan *p) {
    int groups_target = 131072 / p->Tg;
    int rows = (int)ceil_div((size_t)N, (size_t)groups_target);
    return rows < 8 ? 8 : rows;
}

// kernel<J targs> for the plan's J; targs: nothing, or further template arguments as TARGS(...)
#define TARGS(...) , __VA_ARGS__
#define LAUNCH_JT(J, kernel, targs, grid, threads, ...)                                                  \
    do {                                                                                                 \
        switch (J) {                                                                                     \
        case 1: kernel<1 targs><<<grid, threads, 0, stream_main()>>>(__VA_ARGS__); break;                \
        case 2: kernel<2 targs><<<grid, threads, 0, stream_main()>>>(__VA_ARGS__); break;                \
        case 4: kernel<4 targs><<<grid, threads, 0, stream_main()>>>(__VA_ARGS__); break;                \
        default: kernel<8 targs><<<grid, threads, 0, stream_main()>>>(__VA_ARGS__); break;               \
        }                                                                                                \
        CUDA_LAUNCH_CHECK();                                                                             \
    } while (0)
#define LAUNCH_J(J, kernel, grid, threads, ...) LAUNCH_JT(J, kernel, , grid, threads, __VA_ARGS__)

extern "C" void cuda_layernorm_forward(void *out, void *mean, void *rstd, const void *inp, const void *w, const void *b,
                                       int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    RowPlan p = row_plan(C, "layernorm_forward");
    bool vec = rows_vec(C, out, inp, w, b ? b : w);
    int grid = (int)ceil_div((size_t)N, (size_t)p.R);
    LAUNCH_J(p.J, layernorm_forward_kernel, grid, p.threads, (floatX *)out, (float *)mean, (float *)rstd,
             (const floatX *)inp, (const floatX *)w, (const floatX *)b, N, C, eps, p.Tg, vec);
}

extern "C" void cuda_layernorm_backward(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                                        const void *mean, const void *rstd, int N, int C) {
    if (N <= 0 || C <= 0 || (!dinp && !dw && !db)) return;
    RowPlan p = row_plan(C, "layernorm_backward");
    bool vec = rows_vec(C, dinp ? dinp : dout, dout, inp, w);
    int rows = backward_rows_per_group(N, &p);
    int groups = (int)ceil_div((size_t)N, (size_t)rows);
    int grid = (int)ceil_div((size_t)groups, (size_t)p.R);
    size_t P = (size_t)grid * p.R;  // partial rows written (groups past the last row write zeros)
    float *dw_part = NULL, *db_part = NULL;
    if (dw || db) {
        dw_part = (float *)cuda_scratch(2 * P * C * sizeof(float));
        db_part = dw_part + P * C;
    }
    LAUNCH_J(p.J, layernorm_backward_kernel, grid, p.threads, (floatX *)dinp, dw_part, db_part, (const floatX *)dout,
             (const floatX *)inp, (const floatX *)w, (const float *)mean, (const float *)rstd, N, C, p.Tg, rows, vec);
    if (dw) colsum_add_f32((floatX *)dw, dw_part, P, (size_t)C);
    if (db) colsum_add_f32((floatX *)db, db_part, P, (size_t)C);
}

extern "C" void cuda_rmsnorm_forward(void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    RowPlan p = row_plan(C, "rmsnorm_forward");
    bool vec = rows_vec(C, out, inp, w, w);
    int grid = (int)ceil_div((size_t)N, (size_t)p.R);
    LAUNCH_JT(p.J, rmsnorm_forward_kernel, TARGS(false), grid, p.threads, (floatX *)out, (float *)rstd, (floatX *)NULL,
              (const floatX *)inp, (const floatX *)NULL, (const floatX *)w, N, C, eps, p.Tg, vec);
}

// the same kernel and plan as cuda_rmsnorm_forward, so the norm is computed exactly as there
extern "C" void cuda_add_rmsnorm_forward(void *sum, void *out, void *rstd, const void *a, const void *b, const void *w,
                                         int N, int C, float eps) {
    if (N <= 0 || C <= 0) return;
    RowPlan p = row_plan(C, "add_rmsnorm_forward");
    bool vec = rows_vec(C, out, a, w, w) && rows_vec(C, sum, b, sum, sum);
    int grid = (int)ceil_div((size_t)N, (size_t)p.R);
    LAUNCH_JT(p.J, rmsnorm_forward_kernel, TARGS(true), grid, p.threads, (floatX *)out, (float *)rstd, (floatX *)sum,
              (const floatX *)a, (const floatX *)b, (const floatX *)w, N, C, eps, p.Tg, vec);
}

extern "C" void cuda_rmsnorm_backward(void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                                      const void *rstd, int N, int C) {
    if (N <= 0 || C <= 0 || (!dinp && !dw)) return;
    RowPlan p = row_plan(C, "rmsnorm_backward");
    bool vec = rows_vec(C, dinp ? dinp : dout, dout, inp, w);
    int rows = backward_rows_per_group(N, &p);
    int groups = (int)ceil_div((size_t)N, (size_t)rows);
    int grid = (int)ceil_div((size_t)groups, (size_t)p.R);
    size_t P = (size_t)grid * p.R;
    float *dw_part = dw ? (float *)cuda_scratch(P * C * sizeof(float)) : NULL;
    LAUNCH_J(p.J, rmsnorm_backward_kernel, grid, p.threads, (floatX *)dinp, dw_part, (const floatX *)dout,
             (const floatX *)inp, (const floatX *)w, (const float *)rstd, N, C, p.Tg, rows, vec);
    if (dw) colsum_add_f32((floatX *)dw, dw_part, P, (size_t)C);
}
