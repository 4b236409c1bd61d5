// Linear layers on cuBLASLt: bf16 operands, fp32 accumulation, bf16 results (fp32 throughout in the fp32
// build); tested against cpu_matmul_forward / cpu_matmul_backward in model/ops_cpu.c.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_matmul, cuda_optional_outputs, cuda_unaligned_slices.
//
// Row-major <-> column-major. cuBLAS is column-major; a row-major (R, K) matrix is the column-major
// (K, R) matrix with leading dimension K, i.e. its transpose. With Wc = w^T (C x OC, ld C),
// Xc = inp^T (C x N, ld C), Gc = dout^T (OC x N, ld OC):
//   forward   out (N, OC) = inp w^T + b   <=>  out^T (OC x N, ld OC) = Wc^T Xc    (A = Wc transposed, B = Xc)
//   dinp      dinp (N, C) = dout w        <=>  dinp^T (C x N, ld C)  = Wc Gc      (no transposes)
//   dweight   dw (OC, C) += dout^T inp    <=>  dw^T (C x OC, ld C)  += Xc Gc^T    (B = Gc transposed, beta 1)
// The bias is a per-row vector of the column-major result (length OC), which is what the BIAS epilogue
// adds. The bias gradient is a column sum of dout done by our own kernel (colsum_add_act): cuBLASLt's
// BGRADB epilogue overwrites rather than accumulates and needs the dw matmul to run; ours accumulates
// in fp32 in a fixed order and adds into db with one rounding, also when dw is not wanted.
//
// cuBLASLt runs when every pointer is 16-byte aligned and the leading dimensions (C, OC) are multiples
// of 16 bytes, 8 bf16 or 4 floats (what the model's shapes are). Anything else (odd sizes, unaligned slices), or a shape for
// which the heuristic finds no algorithm, goes to cublasGemmEx, which takes any size, followed by a
// bias kernel. Descriptors and the chosen algorithm are cached per shape.
#include <cublasLt.h>
#include <cublas_v2.h>
#include <string.h>

#include "common.cuh"

#define WORKSPACE_BYTES ((size_t)32 << 20)

// cuBLAS's name for the act type. In the fp32 build the GEMMs are true fp32 (CUBLAS_COMPUTE_32F never
// rounds operands to TF32; that takes CUBLAS_COMPUTE_32F_FAST_TF32), so they match the CPU reference to
// rounding order.
#ifdef VLM_CUDA_FP32
#define CUDA_R_ACT CUDA_R_32F
#else
#define CUDA_R_ACT CUDA_R_16BF
#endif
// elements per 16 bytes: the leading-dimension multiple that keeps every column 16-byte aligned
#define ACT_PER_16B ((int)(16 / sizeof(floatX)))

static cublasLtHandle_t lt_handle;
static cublasHandle_t blas_handle;
static void *workspace;

static void matmul_init(void) {
    if (lt_handle) return;
    CUBLAS_CHECK(cublasLtCreate(&lt_handle));
    CUBLAS_CHECK(cublasCreate(&blas_handle));
    CUBLAS_CHECK(cublasSetStream(blas_handle, stream_main()));
    CUDA_CHECK(cudaMalloc(&workspace, WORKSPACE_BYTES));
    CUBLAS_CHECK(cublasSetWorkspace(blas_handle, workspace, WORKSPACE_BYTES));
}

// One cached cuBLASLt plan: the shape key, descriptors and the algorithm the heuristic chose.
typedef struct {
    int used;
    int m, n, k, transa, transb, bias, accumulate;  // key
    int lt_ok;                                      // 0: no cuBLASLt algorithm, use cublasGemmEx
    cublasLtMatmulDesc_t desc;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} GemmPlan;

#define PLAN_SLOTS 256
#define PLAN_PROBES 8
static GemmPlan plans[PLAN_SLOTS];

static void plan_destroy(GemmPlan *p) {
    if (!p->used) return;
    cublasLtMatrixLayoutDestroy(p->la);
    cublasLtMatrixLayoutDestroy(p->lb);
    cublasLtMatrixLayoutDestroy(p->ld);
    cublasLtMatmulDescDestroy(p->desc);
    memset(p, 0, sizeof(*p));
}

// Column-major D (m x n) = op(A) op(B); A stored k x m when transa else m x k; B stored n x k when
// transb else k x n. All leading dimensions are the stored row counts (the matrices are dense).
static GemmPlan *plan_get(int m, int n, int k, int transa, int transb, const void *bias, int accumulate) {
    int has_bias = bias != NULL;
    uint64_t h = (uint64_t)m * 0x9E3779B97F4A7C15ull ^ (uint64_t)n * 0xC2B2AE3D27D4EB4Full ^
                 (uint64_t)k * 0x165667B19E3779F9ull ^ (uint64_t)(transa | transb << 1 | has_bias << 2 | accumulate << 3);
    h ^= h >> 29;
    GemmPlan *slot = NULL;
    for (int i = 0; i < PLAN_PROBES; i++) {
        GemmPlan *p = &plans[(h + i) % PLAN_SLOTS];
        if (!p->used) {
            if (!slot) slot = p;
            continue;
        }
        if (p->m == m && p->n == n && p->k == k && p->transa == transa && p->transb == transb &&
            p->bias == has_bias && p->accumulate == accumulate)
            return p;
    }
    if (!slot) {  // the neighbourhood is full: evict the home slot
        slot = &plans[h % PLAN_SLOTS];
        plan_destroy(slot);
    }
    GemmPlan *p = slot;
    p->used = 1;
    p->m = m, p->n = n, p->k = k, p->transa = transa, p->transb = transb, p->bias = has_bias;
    p->accumulate = accumulate;

    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = transa ? CUBLAS_OP_T : CUBLAS_OP_N, tb = transb ? CUBLAS_OP_T : CUBLAS_OP_N;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof(ta)));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof(tb)));
    cublasLtEpilogue_t epi = has_bias ? CUBLASLT_EPILOGUE_BIAS : CUBLASLT_EPILOGUE_DEFAULT;
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof(epi)));
    if (has_bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));

    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_ACT, transa ? k : m, transa ? m : k, transa ? k : m));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_ACT, transb ? n : k, transb ? k : n, transb ? n : k));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_ACT, m, n, m));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    uint64_t ws = WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    uint32_t align = 16;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &align, sizeof(align)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &align, sizeof(align)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align, sizeof(align)));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align, sizeof(align)));
    cublasLtMatmulHeuristicResult_t res;
    int nres = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(lt_handle, p->desc, p->la, p->lb, p->ld, p->ld, pref, 1, &res, &nres);
    cublasLtMatmulPreferenceDestroy(pref);
    p->lt_ok = st == CUBLAS_STATUS_SUCCESS && nres > 0 && res.state == CUBLAS_STATUS_SUCCESS;
    if (p->lt_ok) p->algo = res.algo;
    return p;
}

// Column-major D (m x n, ld m) = op(A) op(B) (+ D when accumulate) (+ bias[row] when bias != NULL).
static void gemm(floatX *D, const floatX *A, const floatX *B, int m, int n, int k, int transa, int transb,
                 const floatX *bias, int accumulate) {
    matmul_init();
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    // leading dimensions are m or k (A), k or n (B), m (D): each must be a multiple of 16 bytes
    int aligned = (transa ? k : m) % ACT_PER_16B == 0 && (transb ? n : k) % ACT_PER_16B == 0 && m % ACT_PER_16B == 0;
    aligned = aligned && is_aligned16(A) && is_aligned16(B) && is_aligned16(D) && (!bias || is_aligned16(bias));
    if (aligned) {
        GemmPlan *p = plan_get(m, n, k, transa, transb, bias, accumulate);
        if (p->lt_ok) {
            if (bias)
                CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->desc, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &bias, sizeof(bias)));
            cublasStatus_t st = cublasLtMatmul(lt_handle, p->desc, &alpha, A, p->la, B, p->lb, &beta, D, p->ld, D, p->ld,
                                               &p->algo, workspace, WORKSPACE_BYTES, stream_main());
            if (st == CUBLAS_STATUS_SUCCESS) return;
            if (st != CUBLAS_STATUS_NOT_SUPPORTED) CUBLAS_CHECK(st);
            p->lt_ok = 0;  // refused at run time: remember and take the general path from now on
        }
    }
    // D is row-major (n, m) seen from our side. With a bias (m) its rows start as the bias and the GEMM adds
    // onto them (beta 1), so the sum is rounded into the act type once, as the fused epilogue does; adding
    // the bias after would round twice (a relative error of 2e-2 where the product and the bias cancel).
    float beta_general = beta;
    if (bias && !accumulate) {
        CUDA_CHECK(cudaMemsetAsync(D, 0, (size_t)n * m * sizeof(floatX), stream_main()));
        cuda_add_broadcast_forward(D, bias, n, (size_t)m);
        beta_general = 1.0f;
    }
    CUBLAS_CHECK(cublasGemmEx(blas_handle, transa ? CUBLAS_OP_T : CUBLAS_OP_N, transb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n,
                              k, &alpha, A, CUDA_R_ACT, transa ? k : m, B, CUDA_R_ACT, transb ? n : k, &beta_general,
                              D, CUDA_R_ACT, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    if (bias && accumulate) cuda_add_broadcast_forward(D, bias, n, (size_t)m);
}

// out (N, OC) = inp (N, C) @ w (OC, C)^T + b (OC)
extern "C" void cuda_matmul_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC) {
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) fatal("matmul_forward: C = %d", C);
    if (cuda_gemv_forward(out, inp, w, b, N, C, OC)) return;  // a few rows (decode): bandwidth-bound
    gemm((floatX *)out, (const floatX *)w, (const floatX *)inp, OC, N, C, 1, 0, (const floatX *)b, 0);
}

// out (N, F) = swiglu(inp @ w (2F, C)^T + b): one skinny kernel for a decode step's few rows, else the matmul into
// the workspace gu (N, 2F) and swiglu_forward
extern "C" void cuda_matmul_swiglu_forward(void *out, void *gu, const void *inp, const void *w, const void *b, int N,
                                           int C, int F) {
    if (N <= 0 || F <= 0) return;
    if (cuda_gemv_swiglu_forward(out, inp, w, b, N, C, F)) return;
    cuda_matmul_forward(gu, inp, w, b, N, C, 2 * F);
    cuda_swiglu_forward(out, gu, N, F);
}

// dinp (N, C) = dout @ w (overwritten);  dw (OC, C) += dout^T @ inp;  db (OC) += column sums of dout
extern "C" void cuda_matmul_backward(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                                     int N, int C, int OC) {
    if (N <= 0 || C <= 0 || OC <= 0) return;
    if (dinp) gemm((floatX *)dinp, (const floatX *)w, (const floatX *)dout, C, N, OC, 0, 0, NULL, 0);
    if (dw) gemm((floatX *)dw, (const floatX *)inp, (const floatX *)dout, C, OC, N, 0, 1, NULL, 1);
    if (db) colsum_add_act((floatX *)db, (const floatX *)dout, (size_t)N, (size_t)OC);
}
