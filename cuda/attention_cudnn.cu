// Attention through cuDNN's fused SDPA ("flash") engines, built with the backend graph C API
// (cudnn_graph.h): no cudnn-frontend, no C++ dependency beyond this file.
// Checked by: tests/test_cuda.c (make test-cuda): cuda_attention_cudnn; build/bench_attention test.
//
// cuDNN recognizes scaled-dot-product attention as a pattern of primitive operations and runs it as
// one fused kernel. The graphs below are the ones cudnn-frontend (1.x, CompositeSDPANode and
// CompositeSDPABackwardNode) emits for bf16 SDPA with a padding mask and a top-left causal mask, written
// out operation by operation:
//
//   forward:   S = Q K^T (matmul, fp32; M,N overridden by seq_q, seq_kv; padding value 0)
//              S = S * scale
//              padding:  S = select(S, -inf, gen_index(S, 2) < seq_q  &&  gen_index(S, 3) < seq_kv)
//              causal:   S = select(S, -inf, gen_index(S, 2) >= gen_index(S, 3))
//              M = rowmax(S), E = exp(S - M), Z = rowsum(E), Stats = M + log(Z), P = E / Z (bf16)
//              O = P V (matmul; M,K overridden)
//   backward:  Dsum = rowsum(dO * O) * 1          (fp32, a real tensor in our workspace)
//              S = Q K^T * scale, masks as above,  P = exp(S - Stats)
//              dV = P^T dO  (GQA: per query head, then a reduction over the group)
//              dS = P * (dO V^T - Dsum) * scale
//              dK = dS^T Q  (GQA: as dV),  dQacc = dS K (fp32, workspace),  dQ = identity(dQacc)
//
// Stats convention: cuDNN's softmax stats are M + log(Z) with the natural log of the scaled scores,
// i.e. exactly our lse (B, NH, T) in nats: checked against cpu_attention_forward by
// `bench_attention test` on an H100 with cuDNN 9.14 and 9.19 (lse within 2e-2 of the fp32 reference,
// within 1.5e-6 of our flash kernel). So a flash forward can feed a cuDNN backward and vice versa.
// Determinism: cuDNN accumulates dQ across key blocks in an fp32 workspace (atomics), so its backward
// is not bit-reproducible run to run; the flash backward is.
//
// Layout: q, k, v are read in place from the fused QKV buffer through strides: Q as (B, NH, T, HD) with
// strides (T*q_stride, HD, q_stride, 1), K^T as (B, NKV, HD, T) with (T*kv_stride, HD, 1, kv_stride).
// GQA: K, V carry NKV heads; the matmuls broadcast them over each group of NH/NKV query heads.
// The padding mask is always on (seq_q = T, seq_kv = kv_len or T, both clamped to [0, T] in a device
// buffer), so one graph serves padded and unpadded batches of the same shape. After cuDNN runs,
// attn_fixup_padding() enforces our contract on padded rows (dk = dv = 0 for keys >= kv_len; out, lse,
// dq = 0 for rows with kv_len = 0), which cuDNN leaves unspecified.
//
// Supported (else the caller uses our flash kernels): the bf16 build only (cuDNN's SDPA has no fp32
// engine; VLM_CUDA_FP32 builds run flash), no segments (a tree mask is not expressible with
// these primitives), HD a multiple of 8 up to 128, strides multiples of 8 elements (16-byte rows),
// T >= 2, and 16-byte aligned pointers (checked at the call; misaligned calls run flash).
// Execution plans are built once per (direction, B, T, NH, NKV, HD, strides, causal) and cached; a
// shape whose graph cuDNN rejects is remembered and runs flash, with one notice on stderr.
#include <string.h>

#include "common.cuh"

#ifdef VLM_CUDNN
#include <cudnn.h>

#include <vector>

namespace {

// ----------------------------------------------------------------------------------------------------
// a tiny builder over the backend descriptor API: records the first failure and skips the rest

struct Builder {
    std::vector<cudnnBackendDescriptor_t> owned;  // every descriptor created, destroyed with the plan
    std::vector<cudnnBackendDescriptor_t> ops;    // finalized operations, in order
    int64_t next_uid = 1000;                      // uids of virtual tensors
    cudnnStatus_t err = CUDNN_STATUS_SUCCESS;
    const char *where = "";

    bool ok() const { return err == CUDNN_STATUS_SUCCESS; }
    void check(cudnnStatus_t st, const char *w) {
        if (ok() && st != CUDNN_STATUS_SUCCESS) { err = st; where = w; }
    }
    cudnnBackendDescriptor_t create(cudnnBackendDescriptorType_t type, const char *w) {
        cudnnBackendDescriptor_t d = nullptr;
        if (!ok()) return nullptr;
        check(cudnnBackendCreateDescriptor(type, &d), w);
        if (d) owned.push_back(d);
        return d;
    }
    void set(cudnnBackendDescriptor_t d, cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type,
             int64_t n, const void *v, const char *w) {
        if (ok()) check(cudnnBackendSetAttribute(d, name, type, n, v), w);
    }
    void finalize(cudnnBackendDescriptor_t d, const char *w) {
        if (ok()) check(cudnnBackendFinalize(d), w);
    }
    void destroy_all() {
        for (size_t i = 0; i < owned.size(); i++) cudnnBackendDestroyDescriptor(owned[i]);
        owned.clear();
        ops.clear();
    }

    // 4-d tensor; uid < 0 allocates a virtual uid
    cudnnBackendDescriptor_t tensor(int64_t uid, cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4],
                                    bool is_virtual, bool by_value = false) {
        cudnnBackendDescriptor_t d = create(CUDNN_BACKEND_TENSOR_DESCRIPTOR, "tensor");
        if (uid < 0) uid = next_uid++;
        const int64_t align = 16;
        set(d, CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &dt, "tensor type");
        set(d, CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dim, "tensor dims");
        set(d, CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, str, "tensor strides");
        set(d, CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid, "tensor uid");
        set(d, CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &align, "tensor alignment");
        if (is_virtual) { bool t = true; set(d, CUDNN_ATTR_TENSOR_IS_VIRTUAL, CUDNN_TYPE_BOOLEAN, 1, &t, "tensor virtual"); }
        if (by_value) { bool t = true; set(d, CUDNN_ATTR_TENSOR_IS_BY_VALUE, CUDNN_TYPE_BOOLEAN, 1, &t, "tensor by value"); }
        finalize(d, "tensor finalize");
        return d;
    }
    cudnnBackendDescriptor_t virt(cudnnDataType_t dt, const int64_t dim[4], const int64_t str[4]) {
        return tensor(-1, dt, dim, str, true);
    }
    cudnnBackendDescriptor_t scalar(int64_t uid, cudnnDataType_t dt) {
        const int64_t one[4] = {1, 1, 1, 1};
        return tensor(uid, dt, one, one, false, true);
    }

    // y = mode(x[, b[, t]]); axis only for GEN_INDEX
    void pointwise(cudnnPointwiseMode_t mode, cudnnDataType_t prec, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t b,
                   cudnnBackendDescriptor_t t, cudnnBackendDescriptor_t y, int64_t axis = -1) {
        cudnnBackendDescriptor_t pw = create(CUDNN_BACKEND_POINTWISE_DESCRIPTOR, "pointwise");
        set(pw, CUDNN_ATTR_POINTWISE_MODE, CUDNN_TYPE_POINTWISE_MODE, 1, &mode, "pointwise mode");
        set(pw, CUDNN_ATTR_POINTWISE_MATH_PREC, CUDNN_TYPE_DATA_TYPE, 1, &prec, "pointwise prec");
        if (mode == CUDNN_POINTWISE_GEN_INDEX) set(pw, CUDNN_ATTR_POINTWISE_AXIS, CUDNN_TYPE_INT64, 1, &axis, "pointwise axis");
        finalize(pw, "pointwise finalize");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_POINTWISE_DESCRIPTOR, "pointwise op");
        set(op, CUDNN_ATTR_OPERATION_POINTWISE_PW_DESCRIPTOR, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &pw, "pw desc");
        set(op, CUDNN_ATTR_OPERATION_POINTWISE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "pw x");
        if (b) set(op, CUDNN_ATTR_OPERATION_POINTWISE_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "pw b");
        if (t) set(op, CUDNN_ATTR_OPERATION_POINTWISE_TDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &t, "pw t");
        set(op, CUDNN_ATTR_OPERATION_POINTWISE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "pw y");
        const float one = 1.f;
        set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA1, CUDNN_TYPE_FLOAT, 1, &one, "pw alpha1");
        set(op, CUDNN_ATTR_OPERATION_POINTWISE_ALPHA2, CUDNN_TYPE_FLOAT, 1, &one, "pw alpha2");
        finalize(op, "pointwise op finalize");
        if (ok()) ops.push_back(op);
    }
    void reduction(cudnnReduceTensorOp_t mode, cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
        cudnnBackendDescriptor_t rd = create(CUDNN_BACKEND_REDUCTION_DESCRIPTOR, "reduction");
        const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
        set(rd, CUDNN_ATTR_REDUCTION_OPERATOR, CUDNN_TYPE_REDUCTION_OPERATOR_TYPE, 1, &mode, "reduction mode");
        set(rd, CUDNN_ATTR_REDUCTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec, "reduction prec");
        finalize(rd, "reduction finalize");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_REDUCTION_DESCRIPTOR, "reduction op");
        set(op, CUDNN_ATTR_OPERATION_REDUCTION_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &rd, "red desc");
        set(op, CUDNN_ATTR_OPERATION_REDUCTION_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "red x");
        set(op, CUDNN_ATTR_OPERATION_REDUCTION_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "red y");
        finalize(op, "reduction op finalize");
        if (ok()) ops.push_back(op);
    }
    // c = a b (batched over the first two dims, broadcasting kv heads); overrides may be NULL
    void matmul(cudnnBackendDescriptor_t a, cudnnBackendDescriptor_t b, cudnnBackendDescriptor_t c,
                cudnnBackendDescriptor_t m_ovr, cudnnBackendDescriptor_t n_ovr, cudnnBackendDescriptor_t k_ovr,
                bool padding_zero) {
        cudnnBackendDescriptor_t mm = create(CUDNN_BACKEND_MATMUL_DESCRIPTOR, "matmul");
        const cudnnDataType_t prec = CUDNN_DATA_FLOAT;
        set(mm, CUDNN_ATTR_MATMUL_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &prec, "matmul prec");
        if (padding_zero) { const double zero = 0.0; set(mm, CUDNN_ATTR_MATMUL_PADDING_VALUE, CUDNN_TYPE_DOUBLE, 1, &zero, "matmul padding"); }
        finalize(mm, "matmul finalize");
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_MATMUL_DESCRIPTOR, "matmul op");
        set(op, CUDNN_ATTR_OPERATION_MATMUL_ADESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &a, "mm a");
        set(op, CUDNN_ATTR_OPERATION_MATMUL_BDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &b, "mm b");
        set(op, CUDNN_ATTR_OPERATION_MATMUL_CDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c, "mm c");
        set(op, CUDNN_ATTR_OPERATION_MATMUL_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &mm, "mm desc");
        if (m_ovr) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_M_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &m_ovr, "mm m");
        if (n_ovr) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_N_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n_ovr, "mm n");
        if (k_ovr) set(op, CUDNN_ATTR_OPERATION_MATMUL_GEMM_K_OVERRIDE_DESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &k_ovr, "mm k");
        finalize(op, "matmul op finalize");
        if (ok()) ops.push_back(op);
    }
    void reshape(cudnnBackendDescriptor_t x, cudnnBackendDescriptor_t y) {
        cudnnBackendDescriptor_t op = create(CUDNN_BACKEND_OPERATION_RESHAPE_DESCRIPTOR, "reshape op");
        set(op, CUDNN_ATTR_OPERATION_RESHAPE_XDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &x, "reshape x");
        set(op, CUDNN_ATTR_OPERATION_RESHAPE_YDESC, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &y, "reshape y");
        finalize(op, "reshape finalize");
        if (ok()) ops.push_back(op);
    }
};

// uids of the real (non-virtual) tensors
enum {
    UID_Q = 1, UID_K, UID_V, UID_O, UID_STATS, UID_SEQ_Q, UID_SEQ_KV, UID_SCALE, UID_NEG_INF,
    UID_DO, UID_DQ, UID_DK, UID_DV, UID_ONE, UID_DSUM, UID_DQ_ACC,
};

struct Plan {
    int bwd, B, T, NH, NKV, HD, q_stride, kv_stride, causal;
    int failed;                      // cuDNN rejected the graph: run flash for this shape
    cudnnBackendDescriptor_t plan;   // execution plan
    int64_t workspace;               // bytes the plan needs
    std::vector<cudnnBackendDescriptor_t> owned;
};

cudnnHandle_t g_handle;
std::vector<Plan *> g_plans;
size_t g_cudnn_version;

void handle_init(void) {
    if (g_handle) return;
    cudnnStatus_t st = cudnnCreate(&g_handle);
    if (st != CUDNN_STATUS_SUCCESS) fatal("cudnnCreate failed: %s", cudnnGetErrorString(st));
    g_cudnn_version = cudnnGetVersion();
}

// The graph's fp32 masks: the padding mask then the causal mask, each a select(x, -inf, keep).
cudnnBackendDescriptor_t add_masks(Builder &gb, cudnnBackendDescriptor_t s, const int64_t sdim[4], const int64_t sstr[4],
                                   cudnnBackendDescriptor_t seq_q, cudnnBackendDescriptor_t seq_kv,
                                   cudnnBackendDescriptor_t neg_inf, int causal) {
    // padding: keep row < seq_q && col < seq_kv
    cudnnBackendDescriptor_t row = gb.virt(CUDNN_DATA_INT32, sdim, sstr), col = gb.virt(CUDNN_DATA_INT32, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, nullptr, nullptr, row, 2);
    gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_INT32, s, nullptr, nullptr, col, 3);
    cudnnBackendDescriptor_t rm = gb.virt(CUDNN_DATA_BOOLEAN, sdim, sstr), cm = gb.virt(CUDNN_DATA_BOOLEAN, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, row, seq_q, nullptr, rm);
    gb.pointwise(CUDNN_POINTWISE_CMP_LT, CUDNN_DATA_BOOLEAN, col, seq_kv, nullptr, cm);
    cudnnBackendDescriptor_t keep = gb.virt(CUDNN_DATA_BOOLEAN, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_LOGICAL_AND, CUDNN_DATA_BOOLEAN, rm, cm, nullptr, keep);
    cudnnBackendDescriptor_t sp = gb.virt(CUDNN_DATA_FLOAT, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, s, neg_inf, keep, sp);
    if (!causal) return sp;
    // causal, top-left diagonal: keep row >= col (the frontend's index generation runs at fp32 math here)
    cudnnBackendDescriptor_t row2 = gb.virt(CUDNN_DATA_INT32, sdim, sstr), col2 = gb.virt(CUDNN_DATA_INT32, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, sp, nullptr, nullptr, row2, 2);
    gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, sp, nullptr, nullptr, col2, 3);
    cudnnBackendDescriptor_t ge = gb.virt(CUDNN_DATA_BOOLEAN, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row2, col2, nullptr, ge);
    cudnnBackendDescriptor_t sc = gb.virt(CUDNN_DATA_FLOAT, sdim, sstr);
    gb.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, sp, neg_inf, ge, sc);
    return sc;
}

void build_forward(Builder &gb, const Plan &p) {
    const int64_t B = p.B, T = p.T, NH = p.NH, NKV = p.NKV, HD = p.HD, qs = p.q_stride, ks = p.kv_stride;
    const int64_t qd[4] = {B, NH, T, HD}, qst[4] = {T * qs, HD, qs, 1};
    const int64_t ktd[4] = {B, NKV, HD, T}, ktst[4] = {T * ks, HD, 1, ks};
    const int64_t vd[4] = {B, NKV, T, HD}, vst[4] = {T * ks, HD, ks, 1};
    const int64_t od[4] = {B, NH, T, HD}, ost[4] = {T * NH * HD, HD, NH * HD, 1};
    const int64_t sd[4] = {B, NH, T, T}, sst[4] = {NH * T * T, T * T, T, 1};
    const int64_t rd[4] = {B, NH, T, 1}, rst[4] = {NH * T, T, 1, 1};
    const int64_t ld[4] = {B, 1, 1, 1}, lst[4] = {1, 1, 1, 1};

    cudnnBackendDescriptor_t Q = gb.tensor(UID_Q, CUDNN_DATA_BFLOAT16, qd, qst, false);
    cudnnBackendDescriptor_t KT = gb.tensor(UID_K, CUDNN_DATA_BFLOAT16, ktd, ktst, false);
    cudnnBackendDescriptor_t V = gb.tensor(UID_V, CUDNN_DATA_BFLOAT16, vd, vst, false);
    cudnnBackendDescriptor_t O = gb.tensor(UID_O, CUDNN_DATA_BFLOAT16, od, ost, false);
    cudnnBackendDescriptor_t ST = gb.tensor(UID_STATS, CUDNN_DATA_FLOAT, rd, rst, false);
    cudnnBackendDescriptor_t SQ = gb.tensor(UID_SEQ_Q, CUDNN_DATA_INT32, ld, lst, false);
    cudnnBackendDescriptor_t SKV = gb.tensor(UID_SEQ_KV, CUDNN_DATA_INT32, ld, lst, false);
    cudnnBackendDescriptor_t SCALE = gb.scalar(UID_SCALE, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t NINF = gb.scalar(UID_NEG_INF, CUDNN_DATA_FLOAT);

    cudnnBackendDescriptor_t S = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.matmul(Q, KT, S, SQ, SKV, nullptr, true);
    cudnnBackendDescriptor_t S1 = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, S, SCALE, nullptr, S1);
    cudnnBackendDescriptor_t S2 = add_masks(gb, S1, sd, sst, SQ, SKV, NINF, p.causal);
    // softmax with stats (natural log)
    cudnnBackendDescriptor_t M = gb.virt(CUDNN_DATA_FLOAT, rd, rst);
    gb.reduction(CUDNN_REDUCE_TENSOR_MAX, S2, M);
    cudnnBackendDescriptor_t Z = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, S2, M, nullptr, Z);
    cudnnBackendDescriptor_t E = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, Z, nullptr, nullptr, E);
    cudnnBackendDescriptor_t SUM = gb.virt(CUDNN_DATA_FLOAT, rd, rst);
    gb.reduction(CUDNN_REDUCE_TENSOR_ADD, E, SUM);
    cudnnBackendDescriptor_t LOGS = gb.virt(CUDNN_DATA_FLOAT, rd, rst);
    gb.pointwise(CUDNN_POINTWISE_LOG, CUDNN_DATA_FLOAT, SUM, nullptr, nullptr, LOGS);
    gb.pointwise(CUDNN_POINTWISE_ADD, CUDNN_DATA_FLOAT, M, LOGS, nullptr, ST);
    cudnnBackendDescriptor_t P = gb.virt(CUDNN_DATA_BFLOAT16, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_DIV, CUDNN_DATA_FLOAT, E, SUM, nullptr, P);
    gb.matmul(P, V, O, SQ, nullptr, SKV, false);
}

void build_backward(Builder &gb, const Plan &p) {
    const int64_t B = p.B, T = p.T, NH = p.NH, NKV = p.NKV, HD = p.HD, qs = p.q_stride, ks = p.kv_stride;
    const int64_t qd[4] = {B, NH, T, HD}, qst[4] = {T * qs, HD, qs, 1};
    const int64_t ktd[4] = {B, NKV, HD, T}, ktst[4] = {T * ks, HD, 1, ks};  // K^T and V^T
    const int64_t kd[4] = {B, NKV, T, HD}, kst[4] = {T * ks, HD, ks, 1};    // K, dK, dV
    const int64_t od[4] = {B, NH, T, HD}, ost[4] = {T * NH * HD, HD, NH * HD, 1};
    const int64_t sd[4] = {B, NH, T, T}, sst[4] = {NH * T * T, T * T, T, 1};
    const int64_t std_[4] = {B, NH, T, T}, stst[4] = {NH * T * T, T * T, 1, T};  // transposed views
    const int64_t rd[4] = {B, NH, T, 1}, rst[4] = {NH * T, T, 1, 1};
    const int64_t ld[4] = {B, 1, 1, 1}, lst[4] = {1, 1, 1, 1};
    const int64_t fd[4] = {B, NH, T, HD}, fst[4] = {NH * T * HD, T * HD, HD, 1};  // full-head dK/dV, dQ acc
    const int64_t pod[4] = {B, NH, T, HD}, post[4] = {NH * T * HD, T * HD, NH * HD, 1};  // as the frontend
    const bool gqa = NH != NKV;

    cudnnBackendDescriptor_t Q = gb.tensor(UID_Q, CUDNN_DATA_BFLOAT16, qd, qst, false);
    cudnnBackendDescriptor_t KT = gb.tensor(UID_K, CUDNN_DATA_BFLOAT16, ktd, ktst, false);
    cudnnBackendDescriptor_t VT = gb.tensor(UID_V, CUDNN_DATA_BFLOAT16, ktd, ktst, false);
    cudnnBackendDescriptor_t O = gb.tensor(UID_O, CUDNN_DATA_BFLOAT16, od, ost, false);
    cudnnBackendDescriptor_t dO = gb.tensor(UID_DO, CUDNN_DATA_BFLOAT16, od, ost, false);
    cudnnBackendDescriptor_t ST = gb.tensor(UID_STATS, CUDNN_DATA_FLOAT, rd, rst, false);
    cudnnBackendDescriptor_t dQ = gb.tensor(UID_DQ, CUDNN_DATA_BFLOAT16, qd, qst, false);
    cudnnBackendDescriptor_t dK = gb.tensor(UID_DK, CUDNN_DATA_BFLOAT16, kd, kst, false);
    cudnnBackendDescriptor_t dV = gb.tensor(UID_DV, CUDNN_DATA_BFLOAT16, kd, kst, false);
    cudnnBackendDescriptor_t SQ = gb.tensor(UID_SEQ_Q, CUDNN_DATA_INT32, ld, lst, false);
    cudnnBackendDescriptor_t SKV = gb.tensor(UID_SEQ_KV, CUDNN_DATA_INT32, ld, lst, false);
    cudnnBackendDescriptor_t SCALE = gb.scalar(UID_SCALE, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t NINF = gb.scalar(UID_NEG_INF, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t ONE = gb.scalar(UID_ONE, CUDNN_DATA_FLOAT);
    cudnnBackendDescriptor_t DSUM = gb.tensor(UID_DSUM, CUDNN_DATA_FLOAT, rd, rst, false);
    cudnnBackendDescriptor_t DQACC = gb.tensor(UID_DQ_ACC, CUDNN_DATA_FLOAT, fd, fst, false);

    // Dsum = rowsum(dO * O) * 1
    cudnnBackendDescriptor_t dOO = gb.virt(CUDNN_DATA_FLOAT, pod, post);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dO, O, nullptr, dOO);
    cudnnBackendDescriptor_t RED = gb.virt(CUDNN_DATA_FLOAT, rd, rst);
    gb.reduction(CUDNN_REDUCE_TENSOR_ADD, dOO, RED);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, RED, ONE, nullptr, DSUM);
    // P = exp(Q K^T * scale (masked) - Stats)
    cudnnBackendDescriptor_t S = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.matmul(Q, KT, S, SQ, SKV, nullptr, false);
    cudnnBackendDescriptor_t S1 = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, S, SCALE, nullptr, S1);
    // the padding mask before the stats, the causal mask after (the frontend's order)
    cudnnBackendDescriptor_t S2 = add_masks(gb, S1, sd, sst, SQ, SKV, NINF, 0);
    cudnnBackendDescriptor_t Z = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, S2, ST, nullptr, Z);
    if (g_cudnn_version >= 90000 && g_cudnn_version < 91000) {
        // cuDNN 9.0-9.9 needs the padding applied again after the stats (a frontend workaround)
        Z = add_masks(gb, Z, sd, sst, SQ, SKV, NINF, 0);
    }
    if (p.causal) {
        cudnnBackendDescriptor_t row = gb.virt(CUDNN_DATA_INT32, sd, sst), col = gb.virt(CUDNN_DATA_INT32, sd, sst);
        gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, Z, nullptr, nullptr, row, 2);
        gb.pointwise(CUDNN_POINTWISE_GEN_INDEX, CUDNN_DATA_FLOAT, Z, nullptr, nullptr, col, 3);
        cudnnBackendDescriptor_t ge = gb.virt(CUDNN_DATA_BOOLEAN, sd, sst);
        gb.pointwise(CUDNN_POINTWISE_CMP_GE, CUDNN_DATA_BOOLEAN, row, col, nullptr, ge);
        cudnnBackendDescriptor_t Zc = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
        gb.pointwise(CUDNN_POINTWISE_BINARY_SELECT, CUDNN_DATA_FLOAT, Z, NINF, ge, Zc);
        Z = Zc;
    }
    cudnnBackendDescriptor_t E = gb.virt(CUDNN_DATA_FLOAT, sd, sst);  // P
    gb.pointwise(CUDNN_POINTWISE_EXP, CUDNN_DATA_FLOAT, Z, nullptr, nullptr, E);
    // dV = P^T dO
    cudnnBackendDescriptor_t PT = gb.virt(CUDNN_DATA_BFLOAT16, std_, stst);
    gb.reshape(E, PT);
    if (!gqa) {
        gb.matmul(PT, dO, dV, SKV, nullptr, SQ, false);
    } else {
        cudnnBackendDescriptor_t dVf = gb.virt(CUDNN_DATA_BFLOAT16, fd, fst);
        gb.matmul(PT, dO, dVf, SKV, nullptr, SQ, false);
        gb.reduction(CUDNN_REDUCE_TENSOR_ADD, dVf, dV);
    }
    // dS = P (dO V^T - Dsum) * scale
    cudnnBackendDescriptor_t dP = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.matmul(dO, VT, dP, SQ, SKV, nullptr, false);
    cudnnBackendDescriptor_t dP1 = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_SUB, CUDNN_DATA_FLOAT, dP, DSUM, nullptr, dP1);
    cudnnBackendDescriptor_t dS = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dP1, E, nullptr, dS);
    cudnnBackendDescriptor_t dS1 = gb.virt(CUDNN_DATA_FLOAT, sd, sst);
    gb.pointwise(CUDNN_POINTWISE_MUL, CUDNN_DATA_FLOAT, dS, SCALE, nullptr, dS1);
    // dK = dS^T Q
    cudnnBackendDescriptor_t dST = gb.virt(CUDNN_DATA_BFLOAT16, std_, stst);
    gb.reshape(dS1, dST);
    if (!gqa) {
        gb.matmul(dST, Q, dK, SKV, nullptr, SQ, false);
    } else {
        cudnnBackendDescriptor_t dKf = gb.virt(CUDNN_DATA_BFLOAT16, fd, fst);
        gb.matmul(dST, Q, dKf, SKV, nullptr, SQ, false);
        gb.reduction(CUDNN_REDUCE_TENSOR_ADD, dKf, dK);
    }
    // dQ = dS K through an fp32 accumulator in the workspace
    cudnnBackendDescriptor_t Kr = gb.virt(CUDNN_DATA_FLOAT, kd, kst);
    gb.reshape(KT, Kr);
    gb.matmul(dS1, Kr, DQACC, SQ, nullptr, SKV, false);
    gb.pointwise(CUDNN_POINTWISE_IDENTITY, CUDNN_DATA_FLOAT, DQACC, nullptr, nullptr, dQ);
}

// Builds the operation graph and the first execution plan cuDNN's heuristics offer that finalizes.
void build_plan(Plan *p) {
    Builder gb;
    if (p->bwd) build_backward(gb, *p); else build_forward(gb, *p);
    cudnnBackendDescriptor_t og = gb.create(CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR, "operation graph");
    if (gb.ok()) gb.set(og, CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, (int64_t)gb.ops.size(), gb.ops.data(), "graph ops");
    gb.set(og, CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &g_handle, "graph handle");
    gb.finalize(og, "operation graph finalize");

    cudnnBackendDescriptor_t heur = gb.create(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR, "heuristics");
    const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
    gb.set(heur, CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &og, "heur graph");
    gb.set(heur, CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode, "heur mode");
    gb.finalize(heur, "heuristics finalize");
    int64_t count = 0;
    if (gb.ok())
        gb.check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
                 "heuristics count");
    p->plan = nullptr;
    if (gb.ok() && count > 0) {
        std::vector<cudnnBackendDescriptor_t> cfgs((size_t)count);
        for (int64_t i = 0; i < count; i++) cfgs[i] = gb.create(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR, "engine config");
        int64_t got = 0;
        if (gb.ok())
            gb.check(cudnnBackendGetAttribute(heur, CUDNN_ATTR_ENGINEHEUR_RESULTS, CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &got,
                                              cfgs.data()), "heuristics results");
        for (int64_t i = 0; gb.ok() && i < got && !p->plan; i++) {
            cudnnBackendDescriptor_t plan = nullptr;
            if (cudnnBackendCreateDescriptor(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR, &plan) != CUDNN_STATUS_SUCCESS) continue;
            if (cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1, &g_handle) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendSetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &cfgs[i]) == CUDNN_STATUS_SUCCESS &&
                cudnnBackendFinalize(plan) == CUDNN_STATUS_SUCCESS) {
                int64_t ws = 0, n = 0;
                if (cudnnBackendGetAttribute(plan, CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE, CUDNN_TYPE_INT64, 1, &n, &ws) ==
                    CUDNN_STATUS_SUCCESS) {
                    p->plan = plan;
                    p->workspace = ws;
                    gb.owned.push_back(plan);
                    break;
                }
            }
            cudnnBackendDestroyDescriptor(plan);
        }
    }
    if (!p->plan) {
        char msg[512] = "";
        cudnnGetLastErrorString(msg, sizeof(msg));
        fprintf(stderr, "vlm: notice: cuDNN attention %s B=%d T=%d NH=%d NKV=%d HD=%d causal=%d: no plan (%s%s%s) %s; "
                        "using the flash kernels for this shape\n",
                p->bwd ? "backward" : "forward", p->B, p->T, p->NH, p->NKV, p->HD, p->causal,
                gb.ok() ? "no engine config finalized" : gb.where, gb.ok() ? "" : ": ",
                gb.ok() ? "" : cudnnGetErrorString(gb.err), msg);
        p->failed = 1;
        gb.destroy_all();
        return;
    }
    p->owned.swap(gb.owned);
}

Plan *get_plan(int bwd, const AttnShape *s) {
    handle_init();
    for (size_t i = 0; i < g_plans.size(); i++) {
        Plan *p = g_plans[i];
        if (p->bwd == bwd && p->B == s->B && p->T == s->T && p->NH == s->NH && p->NKV == s->NKV && p->HD == s->HD &&
            p->q_stride == s->q_stride && p->kv_stride == s->kv_stride && p->causal == (s->causal != 0))
            return p;
    }
    Plan *p = new Plan();
    p->bwd = bwd; p->B = s->B; p->T = s->T; p->NH = s->NH; p->NKV = s->NKV; p->HD = s->HD;
    p->q_stride = s->q_stride; p->kv_stride = s->kv_stride; p->causal = s->causal != 0;
    p->failed = 0; p->plan = nullptr; p->workspace = 0;
    build_plan(p);
    g_plans.push_back(p);
    return p;
}

// seq_q = T, seq_kv = clamp(kv_len[b], 0, T) or T
__global__ void seq_len_kernel(int *seq_q, int *seq_kv, const int *kv_len, int B, int T) {
    const int b = blockIdx.x * blockDim.x + threadIdx.x;
    if (b >= B) return;
    seq_q[b] = T;
    int n = kv_len ? kv_len[b] : T;
    seq_kv[b] = n < 0 ? 0 : (n > T ? T : n);
}

size_t align256(size_t x) { return (x + 255) & ~(size_t)255; }

void execute(Plan *p, const int64_t *uids, void *const *ptrs, int n, void *workspace) {
    cudnnBackendDescriptor_t vp = nullptr;
    cudnnStatus_t st = cudnnBackendCreateDescriptor(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR, &vp);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, n, uids);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, n, ptrs);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendSetAttribute(vp, CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendFinalize(vp);
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnSetStream(g_handle, stream_main());
    if (st == CUDNN_STATUS_SUCCESS) st = cudnnBackendExecute(g_handle, p->plan, vp);
    if (vp) cudnnBackendDestroyDescriptor(vp);
    if (st != CUDNN_STATUS_SUCCESS) {
        char msg[512] = "";
        cudnnGetLastErrorString(msg, sizeof(msg));
        fatal("cuDNN attention %s B=%d T=%d NH=%d HD=%d failed: %s %s", p->bwd ? "backward" : "forward", p->B, p->T, p->NH,
              p->HD, cudnnGetErrorString(st), msg);
    }
}

}  // namespace

int cudnn_attention_supported(const AttnShape *s) {
#ifdef VLM_CUDA_FP32
    (void)s;
    return 0;                                            // the graphs take bf16 tensors: the fp32 build runs flash
#else
    if (s->segment) return 0;                            // tree masks: flash only
    if (s->HD % 8 != 0 || s->HD > 128) return 0;
    if (s->q_stride % 8 != 0 || s->kv_stride % 8 != 0) return 0;
    if (s->T < 2 || s->B < 1 || s->NH % s->NKV != 0) return 0;
    const char *env = getenv("VLM_CUDNN_DISABLE");       // testing: pretend cuDNN covers nothing
    if (env && env[0] == '1') return 0;
    return 1;
#endif
}

void cudnn_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s) {
    if (!cudnn_attention_supported(s) || !is_aligned16(out) || !is_aligned16(q) || !is_aligned16(k) ||
        !is_aligned16(v) || !is_aligned16(lse)) {
        flash_attention_forward(out, lse, q, k, v, s);
        return;
    }
    Plan *p = get_plan(0, s);
    if (p->failed) { flash_attention_forward(out, lse, q, k, v, s); return; }
    const size_t ws = align256((size_t)p->workspace), seq = align256(sizeof(int) * (size_t)s->B);
    char *base = (char *)cuda_scratch(ws + 2 * seq);
    int *seq_q = (int *)(base + ws), *seq_kv = (int *)(base + ws + seq);
    seq_len_kernel<<<(s->B + 127) / 128, 128, 0, stream_main()>>>(seq_q, seq_kv, s->kv_len, s->B, s->T);
    CUDA_LAUNCH_CHECK();
    float scale = (float)(1.0 / sqrt((double)s->HD)), neg_inf = -INFINITY;
    const int64_t uids[9] = {UID_Q, UID_K, UID_V, UID_O, UID_STATS, UID_SEQ_Q, UID_SEQ_KV, UID_SCALE, UID_NEG_INF};
    void *ptrs[9] = {(void *)q, (void *)k, (void *)v, out, lse, seq_q, seq_kv, &scale, &neg_inf};
    execute(p, uids, ptrs, 9, p->workspace ? base : nullptr);
    attn_fixup_padding(out, (float *)lse, nullptr, nullptr, nullptr, s);
}

void cudnn_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                              const void *q, const void *k, const void *v, const AttnShape *s) {
    if (!cudnn_attention_supported(s) || !dq || !dk || !dv || !is_aligned16(dq) || !is_aligned16(dk) ||
        !is_aligned16(dv) || !is_aligned16(dout) || !is_aligned16(out) || !is_aligned16(lse) || !is_aligned16(q) ||
        !is_aligned16(k) || !is_aligned16(v)) {
        flash_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s);
        return;
    }
    Plan *p = get_plan(1, s);
    if (p->failed) { flash_attention_backward(dq, dk, dv, dout, out, lse, q, k, v, s); return; }
    // workspace: [plan workspace | Dsum (B,NH,T) fp32 | dQ accumulator (B,NH,T,HD) fp32 | seq_q | seq_kv]
    const size_t ws = align256((size_t)p->workspace);
    const size_t dsum = align256(sizeof(float) * (size_t)s->B * s->NH * s->T);
    const size_t dqacc = align256(sizeof(float) * (size_t)s->B * s->NH * s->T * s->HD);
    const size_t seq = align256(sizeof(int) * (size_t)s->B);
    char *base = (char *)cuda_scratch(ws + dsum + dqacc + 2 * seq);
    void *Dsum = base + ws, *dQacc = base + ws + dsum;
    int *seq_q = (int *)(base + ws + dsum + dqacc), *seq_kv = (int *)(base + ws + dsum + dqacc + seq);
    seq_len_kernel<<<(s->B + 127) / 128, 128, 0, stream_main()>>>(seq_q, seq_kv, s->kv_len, s->B, s->T);
    CUDA_LAUNCH_CHECK();
    // cuDNN < 9.6 expects the dQ accumulator zeroed by the caller; later versions zero it themselves
    if (g_cudnn_version < 90600) CUDA_CHECK(cudaMemsetAsync(dQacc, 0, dqacc, stream_main()));
    float scale = (float)(1.0 / sqrt((double)s->HD)), neg_inf = -INFINITY, one = 1.f;
    const int64_t uids[16] = {UID_Q,  UID_K,  UID_V,      UID_O,      UID_DO,    UID_STATS, UID_DQ,   UID_DK,
                              UID_DV, UID_SEQ_Q, UID_SEQ_KV, UID_SCALE, UID_NEG_INF, UID_ONE, UID_DSUM, UID_DQ_ACC};
    void *ptrs[16] = {(void *)q, (void *)k, (void *)v, (void *)out, (void *)dout, (void *)lse, dq, dk,
                      dv, seq_q, seq_kv, &scale, &neg_inf, &one, Dsum, dQacc};
    execute(p, uids, ptrs, 16, p->workspace ? base : nullptr);
    attn_fixup_padding(nullptr, nullptr, dq, dk, dv, s);
}

#else  // built without cuDNN

int cudnn_attention_supported(const AttnShape *s) { (void)s; return 0; }

void cudnn_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s) {
    fatal("cudnn_attention_forward: this binary was built without cuDNN (cudnn.h was not found at build time)");
}

void cudnn_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                              const void *q, const void *k, const void *v, const AttnShape *s) {
    fatal("cudnn_attention_backward: this binary was built without cuDNN (cudnn.h was not found at build time)");
}

#endif
