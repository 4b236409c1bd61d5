// The op contract: every computation the models do goes through one of these functions.
//
// The model graph (vit.c, llama.c, ...) is written once against this table; a backend fills it in.
// model/ops_cpu.c is the readable reference (fp32, OpenMP; also built in fp64 for gradient checks),
// cuda/ is the same contract as kernels (bf16 activations, fp32 statistics; fp32 activations in the
// VLM_CUDA_FP32 build).
//
// Conventions
// - Pointers are backend memory. "act" buffers (activations, parameters, parameter gradients) hold the
//   backend's act type (float on CPU, bf16 on CUDA or float in its fp32 build, double on the fp64 CPU
//   backend); "acc" buffers (norm statistics, log-sum-exp, log-probs, optimizer state) hold its
//   accumulator type (float on CPU and CUDA, double on fp64). Index buffers are int32.
// - Shapes in comments: (N, C) is row-major with C contiguous. N = number of tokens (B*T flattened).
// - Linear weights are stored as in PyTorch: (OC, C), y = x W^T + b.
// - Gradients: parameter gradients ACCUMULATE (+=) so micro-batches add up. Activation gradients are
//   OVERWRITTEN (=), except where a comment says the op accumulates into the residual stream (norms).
//   Any NULL gradient pointer means "not needed" and is skipped.
#pragma once
#include <stddef.h>

typedef enum { ACT_GELU, ACT_QUICK_GELU, ACT_SILU, ACT_GELU_TANH } ActKind;

// Which keys a query may attend to. A key j is visible from query i (same row b) when
//   j < kv_len[b]                       (key padding; kv_len NULL means all T keys)
//   and, if causal, j <= i
//   and, if segment != NULL, segment[b,j] == 0 || segment[b,j] == segment[b,i]
// Segments express the tree mask of packed rows: segment 0 is a shared prefix every token sees,
// tokens of segment k > 0 see the prefix and their own segment only.
typedef struct {
    int B, T;          // rows, tokens per row
    int NH, NKV, HD;   // query heads, key/value heads (NH % NKV == 0; query head h uses kv head h / (NH/NKV)), head dim
    int q_stride;      // elements between consecutive tokens in q (and dq, out, dout: out uses NH*HD)
    int kv_stride;     // elements between consecutive tokens in k and v (and dk, dv)
    int causal;
    const int *kv_len;   // (B) backend memory or NULL
    const int *segment;  // (B, T) backend memory or NULL
    // Optional: the query tokens (b*T + i, backend memory) whose outputs are read, n_q_rows of them; NULL
    // means all. A backend may skip the others: their outputs and lse are then 0, and the backward treats
    // their dout as zero (the caller's dout must be zero there), so it equals the full computation.
    const int *q_rows;
    int n_q_rows;
} AttnShape;

// Attention of one new token per row against a KV cache (generation). Row b's query sees the first len[b]
// positions of cache slot slot[b] (its own key and value already appended there), no other mask: a cache
// holds one sequence per slot, so padding and causality are expressed by len alone.
typedef struct {
    int B;               // query rows, one new token each
    int NH, NKV, HD;     // query heads, key/value heads (query head h uses kv head h / (NH/NKV)), head dim
    int q_stride;        // elements between consecutive rows of q (out is packed: NH*HD per row)
    int cap;             // positions per cache slot
    const int *len;      // (B) backend memory: positions row b attends to, 0..cap (0: the output is zero)
    const int *slot;     // (B) backend memory: cache slot of row b; NULL means slot b
} DecodeShape;

typedef struct Backend {
    const char *name;
    int act_bytes;   // bytes per act element
    int acc_bytes;   // bytes per acc element

    // ---- memory ----
    void *(*malloc)(size_t bytes);  // zero-filled
    void (*free)(void *p);
    void (*zero)(void *p, size_t bytes);
    void (*copy)(void *dst, const void *src, size_t bytes);            // backend -> backend
    void (*to_device)(void *dst, const void *host, size_t bytes);      // raw bytes (ids, indices)
    void (*to_host)(void *host, const void *src, size_t bytes);
    void (*upload_act)(void *dst, const float *host, size_t n);        // host fp32 -> act type
    void (*download_act)(float *host, const void *src, size_t n);      // act type -> host fp32
    void (*upload_acc)(void *dst, const double *host, size_t n);       // host fp64 -> acc type
    void (*download_acc)(double *host, const void *src, size_t n);     // acc type -> host fp64
    void (*synchronize)(void);
    // Runs fn(arg), a sequence of ops that repeats with the same shapes and buffers (a decode step), through
    // a cache the backend keeps in *slot (NULL at first; replay_free releases it). The CUDA backend records
    // the ops into a CUDA graph on the second call and launches the graph after: one launch instead of
    // hundreds of small ones. NULL where there is nothing to gain: be_replay then calls fn directly.
    void (*replay)(void **slot, void (*fn)(void *), void *arg);
    void (*replay_free)(void *slot);

    // ---- linear layers ----
    // out (N, OC) = inp (N, C) @ w (OC, C)^T + b (OC); b may be NULL
    void (*matmul_forward)(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC);
    // dinp (N, C) = dout @ w;  dw (OC, C) += dout^T @ inp;  db (OC) += column sums of dout
    void (*matmul_backward)(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                            int N, int C, int OC);

    // ---- normalization (statistics in the acc type, as HF computes them in fp32) ----
    // out (N, C) = (inp - mean) * rstd * w + b;  mean, rstd (N) saved for backward
    void (*layernorm_forward)(void *out, void *mean, void *rstd, const void *inp, const void *w, const void *b,
                              int N, int C, float eps);
    // dinp += ... (accumulates into the residual stream), dw += ..., db += ...
    void (*layernorm_backward)(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                               const void *mean, const void *rstd, int N, int C);
    // out (N, C) = inp * rstd * w, rstd = 1/sqrt(mean(inp^2) + eps);  rstd (N) saved
    void (*rmsnorm_forward)(void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps);
    // The residual add and the norm that reads it, in one pass (twice per decoder layer):
    //   sum (N, C) = a + b, rounded to the act type exactly as `add` rounds it;
    //   out (N, C) = rmsnorm(sum) * w and rstd (N) exactly as rmsnorm_forward computes them from that sum.
    // sum may alias a or b (the residual stream updated in place); out aliases none of the others.
    void (*add_rmsnorm_forward)(void *sum, void *out, void *rstd, const void *a, const void *b, const void *w,
                                int N, int C, float eps);
    // dinp += ... (accumulates into the residual stream), dw += ...
    void (*rmsnorm_backward)(void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                             const void *rstd, int N, int C);

    // ---- elementwise ----
    // out (n) = act(inp); out may alias inp
    void (*act_forward)(ActKind kind, void *out, const void *inp, size_t n);
    // dinp (n) = dout * act'(inp); dinp may alias dout
    void (*act_backward)(ActKind kind, void *dinp, const void *dout, const void *inp, size_t n);
    // out (N, F) = silu(inp[:, :F]) * inp[:, F:]  with inp (N, 2F): gate and up projections side by side
    void (*swiglu_forward)(void *out, const void *inp, int N, int F);
    // dinp (N, 2F) = d(gate), d(up)
    void (*swiglu_backward)(void *dinp, const void *dout, const void *inp, int N, int F);
    // out (N, F) = swiglu_forward(matmul_forward(inp, w, b)): inp (N, C), w (2F, C) the gate rows then the up
    // rows, b (2F) or NULL. gu (N, 2F) is workspace for the pre-activation; whether it is written is up to the
    // backend (CUDA's skinny kernel for a decode step's few rows keeps it in registers). Inference only.
    void (*matmul_swiglu_forward)(void *out, void *gu, const void *inp, const void *w, const void *b, int N, int C,
                                  int F);
    // out (n) = a + b; out may alias a or b
    void (*add)(void *out, const void *a, const void *b, size_t n);
    // x (n) *= s
    void (*scale)(void *x, float s, size_t n);
    // out (N, C) = inp * s (C) per channel: DINOv2's layer scale on a residual branch. out may alias inp (the
    // backward then needs the input kept elsewhere).
    void (*channel_scale_forward)(void *out, const void *inp, const void *s, int N, int C);
    // dinp (N, C) = dout * s (dinp may alias dout);  ds (C) += column sums of dout * inp
    void (*channel_scale_backward)(void *dinp, void *ds, const void *dout, const void *inp, const void *s, int N, int C);

    // ---- rotary embedding, HF half-rotation convention, in place ----
    // x (N, heads, HD) at row stride `stride`; token n has position pos[n];
    // x[i] <- x[i] cos(p f_i) - x[i+HD/2] sin(p f_i),  x[i+HD/2] <- x[i+HD/2] cos + x[i] sin,  f_i = theta^(-2i/HD)
    void (*rope_forward)(void *x, const int *pos, int N, int heads, int HD, int stride, float theta);
    // the inverse rotation (the transpose), applied in place to the gradient
    void (*rope_backward)(void *dx, const int *pos, int N, int heads, int HD, int stride, float theta);

    // ---- attention, flash style: softmax(q k^T / sqrt(HD) + mask) v, log-sum-exp saved ----
    // out (B, T, NH, HD);  lse (B, NH, T) acc
    void (*attention_forward)(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s);
    // dq, dk, dv overwritten (at the strides of q, k, v); out and lse from the forward pass
    void (*attention_backward)(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                               const void *q, const void *k, const void *v, const AttnShape *s);

    // ---- classifier: log-softmax, pick the label, never storing probabilities ----
    // logp (N) acc = log_softmax(logits[n])[target[n]] (0 where target < 0);  lse (N) acc saved
    void (*logprob_forward)(void *logp, void *lse, const void *logits, const int *targets, int N, int V);
    // dlogits (N, V) = dlogp[n] * (onehot(target[n]) - softmax(logits[n])), rows with target < 0 zeroed;
    // dlogits may alias logits (in place). dlogp (N) acc.
    void (*logprob_backward)(void *dlogits, const void *logits, const void *lse, const int *targets,
                             const void *dlogp, int N, int V);

    // ---- embeddings and row movement ----
    // out (N, C) = table[ids[n]]; rows with ids[n] < 0 are set to zero
    void (*embedding_forward)(void *out, const int *ids, const void *table, int N, int C);
    // dtable (V, C) += dout rows at ids (ids < 0 skipped)
    void (*embedding_backward)(void *dtable, const void *dout, const int *ids, int N, int C);
    // out[out_idx[m]] = inp[inp_idx[m]] for m < M, rows of C; a NULL index means the identity; a row whose
    // index is negative is skipped
    void (*copy_rows)(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C);
    // out[out_idx[m]] += inp[inp_idx[m]]; repeated out_idx allowed (summed in order of m)
    void (*add_rows)(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C);
    // x (B, M) += y (M) broadcast over rows (position embeddings)
    void (*add_broadcast_forward)(void *x, const void *y, int B, size_t M);
    // dy (M) += sum over b of dx (B, M)
    void (*add_broadcast_backward)(void *dy, const void *dx, int B, size_t M);
    // pixels (B, Cin, H, W) -> patches (B * (H/P) * (W/P), Cin*P*P), each row ordered (c, ky, kx) like a
    // PyTorch conv weight, patches row-major over the grid: the patch convolution becomes one matmul
    void (*im2col)(void *patches, const void *pixels, int B, int Cin, int H, int W, int P);

    // ---- optimizer ----
    // Sum of squares of x (n) into *out (host double); used for the global gradient norm.
    void (*sumsq)(double *out, const void *x, size_t n);
    // AdamW with decoupled weight decay and bias correction (torch.optim.AdamW) on n parameters:
    //   g = grad * grad_scale;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2
    //   p -= lr * (wd * p + (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps))
    // master (acc, n) is the full-precision copy of the parameters when the act type is narrower (NULL
    // otherwise); params is rewritten from it. m, v (acc, n).
    void (*adamw_update)(void *params, void *master, const void *grad, void *m, void *v, size_t n,
                         float lr, float b1, float b2, float eps, float wd, int t, float grad_scale);

    // ---- generation (inference only: no backward) ----
    // out[out_idx[m] * out_stride + c] = inp[inp_idx[m] * inp_stride + c] for m < M, c < C: rows of C elements
    // at any row strides (elements). A NULL index means the identity; a row whose out or inp index is negative
    // is skipped. Writes keys and values, read straight out of the fused qkv rows, into a KV cache.
    void (*copy_rows_strided)(void *out, const int *out_idx, int out_stride, const void *inp, const int *inp_idx,
                              int inp_stride, int M, int C);
    // out (B, NH*HD) = softmax_j(q . k_j / sqrt(HD)) v_j over j < len[b] of cache slot slot[b];
    // q (B, NH*HD) at row stride q_stride; k, v (slots, cap, NKV, HD). Softmax statistics in fp32 (acc).
    void (*attention_decode)(void *out, const void *q, const void *k, const void *v, const DecodeShape *s);
    // The rotary embedding of fused qkv rows and the append of their keys and values to a KV cache, in one
    // pass: qkv (N rows at stride qkv_stride, each q (NH*HD) | k (NKV*HD) | v (NKV*HD)). Exactly
    //   rope_forward(qkv, pos, N, NH + NKV, HD, qkv_stride, theta)       q and k rotated in place
    //   copy_rows_strided(kcache, dst, NKV*HD, k, NULL, qkv_stride, N, NKV*HD)   rotated k to row dst[n]
    //   copy_rows_strided(vcache, dst, NKV*HD, v, NULL, qkv_stride, N, NKV*HD)   v to row dst[n]
    // with cache rows of NKV*HD contiguous elements (HD even); a row with dst[n] < 0 is rotated but not
    // appended, and a NULL dst means row n.
    void (*rope_kv_append)(void *qkv, const int *pos, void *kcache, void *vcache, const int *dst, int N, int NH,
                           int NKV, int HD, int qkv_stride, float theta);

    // ---- LoRA ----
    // out (N rows at out_stride) += s * inp (N rows of C at inp_stride): a low-rank update added into the
    // column slice of a fused projection's output that belongs to one module (and its gradient read back).
    void (*add_strided)(void *out, int out_stride, const void *inp, int inp_stride, int N, int C, float s);
    // out (n) = inp * keep_i / (1 - p), keep_i = [u(seed, i) >= p] with u a hash of (seed, i) in [0, 1):
    // dropout whose mask is recomputed from the seed instead of stored. The same call is its own backward
    // (the gradient of a fixed mask-multiply is that mask-multiply). out may alias inp.
    void (*dropout)(void *out, const void *inp, size_t n, float p, unsigned long long seed);
} Backend;

// The keep decision of dropout element i: one definition for the CPU backend and the CUDA kernel (where it
// compiles for the device too), so both draw the same mask bits.
#ifdef __CUDACC__
#define VLM_HOST_DEVICE __host__ __device__
#else
#define VLM_HOST_DEVICE
#endif
static inline VLM_HOST_DEVICE int dropout_keep(unsigned long long seed, size_t i, float p) {
    unsigned long long z = seed + 0x9E3779B97F4A7C15ULL * (unsigned long long)(i + 1);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    z ^= z >> 31;
    return (float)((double)(z >> 40) / 16777216.0) >= p;
}

extern const Backend backend_cpu;    // fp32 reference
extern const Backend backend_cpu64;  // fp64, for finite-difference gradient checks

// What the CPU backends hold through their malloc now, and the most they have held since the last reset, in
// bytes asked for: what a run really allocates, which tests/test_plan.c holds the memory plan (train/plan.h)
// to. cpu_memory_count is model/ops_cpu.c's hook (delta: + on malloc, - on free), compiled once for both.
size_t cpu_memory_in_use(void);
size_t cpu_memory_peak(void);
void cpu_memory_reset_peak(void);
void cpu_memory_count(long long delta);

// Picks a backend by name: "cpu", "cpu64", "cuda", or "auto" (CUDA if a GPU is usable, else CPU with a
// one-line notice). Dies with a clear message when the requested one is not available.
const Backend *backend_select(const char *name);
// --attention flash|cudnn for the CUDA backend (no effect on the CPU). cuDNN is the faster and the default
// where built; its backward sums dQ with atomics, so only flash is bit-reproducible run to run (what a
// bit-exact resume on the GPU needs). Dies on an unknown name.
void backend_set_attention(const char *impl);

// Byte offset helpers for slicing backend buffers without knowing the element type.
static inline void *act_at(const Backend *be, const void *p, size_t elems) {
    return p ? (char *)p + elems * (size_t)be->act_bytes : NULL;
}
static inline void *acc_at(const Backend *be, const void *p, size_t elems) {
    return p ? (char *)p + elems * (size_t)be->acc_bytes : NULL;
}

// fn(arg) through the backend's replay cache (see Backend.replay), or directly where it has none
static inline void be_replay(const Backend *be, void **slot, void (*fn)(void *), void *arg) {
    if (be->replay) be->replay(slot, fn, arg);
    else fn(arg);
}
