// Host entry points of the CUDA kernels. Each has exactly the signature and semantics of the op of the
// same name in model/ops.h (read that file: shapes, accumulate-vs-overwrite rules, aliasing), with
// "act" buffers in floatX (cuda/common.cuh: bf16, or fp32 when built with VLM_CUDA_FP32) and "acc"
// buffers in fp32. cuda/backend.cu assembles them into `backend_cuda`. All launches go to the one stream
// returned by cuda_stream().
#pragma once
#include <stddef.h>

#include "../model/ops.h"

#ifdef __cplusplus
extern "C" {
#endif

// device and stream
int cuda_device_usable(char *why, size_t whylen);  // 1 if a GPU can be used; else 0 and a reason
void *cuda_stream(void);                           // the cudaStream_t everything runs on
size_t cuda_memory_used(void);                     // bytes of device memory in use (total - free)
// CUDA graphs of repeated op sequences (cuda/graph.cu; Backend.replay in model/ops.h)
void cuda_replay(void **slot, void (*fn)(void *), void *arg);
void cuda_replay_free(void *slot);

// matmul (cuBLASLt)
void cuda_matmul_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC);
// skinny matmuls for matmul_forward with at most GEMV_MAX_N rows (cuda/gemv.cu): 1 when taken, 0 when the
// shape or alignment does not fit (the caller then runs cuBLASLt); the SwiGLU form writes
// swiglu(inp @ w^T + b) for w (2F, C), as matmul_swiglu_forward defines it
#define GEMV_MAX_N 16
int cuda_gemv_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int OC);
int cuda_gemv_swiglu_forward(void *out, const void *inp, const void *w, const void *b, int N, int C, int F);
void cuda_matmul_backward(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                          int N, int C, int OC);
// normalization
void cuda_layernorm_forward(void *out, void *mean, void *rstd, const void *inp, const void *w, const void *b,
                            int N, int C, float eps);
void cuda_layernorm_backward(void *dinp, void *dw, void *db, const void *dout, const void *inp, const void *w,
                             const void *mean, const void *rstd, int N, int C);
void cuda_rmsnorm_forward(void *out, void *rstd, const void *inp, const void *w, int N, int C, float eps);
void cuda_add_rmsnorm_forward(void *sum, void *out, void *rstd, const void *a, const void *b, const void *w, int N, int C,
                              float eps);
void cuda_rmsnorm_backward(void *dinp, void *dw, const void *dout, const void *inp, const void *w,
                           const void *rstd, int N, int C);
// elementwise
void cuda_act_forward(ActKind kind, void *out, const void *inp, size_t n);
void cuda_act_backward(ActKind kind, void *dinp, const void *dout, const void *inp, size_t n);
void cuda_swiglu_forward(void *out, const void *inp, int N, int F);
void cuda_swiglu_backward(void *dinp, const void *dout, const void *inp, int N, int F);
void cuda_matmul_swiglu_forward(void *out, void *gu, const void *inp, const void *w, const void *b, int N, int C, int F);
void cuda_add(void *out, const void *a, const void *b, size_t n);
void cuda_scale(void *x, float s, size_t n);
void cuda_channel_scale_forward(void *out, const void *inp, const void *s, int N, int C);
void cuda_channel_scale_backward(void *dinp, void *ds, const void *dout, const void *inp, const void *s, int N, int C);
void cuda_rope_forward(void *x, const int *pos, int N, int heads, int HD, int stride, float theta);
void cuda_rope_backward(void *dx, const int *pos, int N, int heads, int HD, int stride, float theta);
// attention: our flash-attention kernels (cuda/attention.cu) and cuDNN's (cuda/attention_cudnn.cu)
void cuda_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s);
void cuda_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                             const void *q, const void *k, const void *v, const AttnShape *s);
// which attention implementation cuda_attention_* dispatches to: "flash" (ours) or "cudnn"
void cuda_attention_select(const char *impl);
const char *cuda_attention_selected(void);
int cudnn_attention_supported(const AttnShape *s);  // 0 when built without cuDNN or the shape is not covered
void cudnn_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s);
void cudnn_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                              const void *q, const void *k, const void *v, const AttnShape *s);
void flash_attention_forward(void *out, void *lse, const void *q, const void *k, const void *v, const AttnShape *s);
void flash_attention_backward(void *dq, void *dk, void *dv, const void *dout, const void *out, const void *lse,
                              const void *q, const void *k, const void *v, const AttnShape *s);
// Enforces the contract's padding semantics after a kernel that may leave padded rows unspecified
// (cuDNN): keys j >= kv_len[b] get dk = dv = 0; rows with kv_len[b] <= 0 (no visible key anywhere)
// get out = 0, lse = 0 and dq = 0. Any pointer may be NULL (skipped). Launched only when kv_len != NULL.
void attn_fixup_padding(void *out, float *lse, void *dq, void *dk, void *dv, const AttnShape *s);
// Testing hook: 1 forces the generic (non-tensor-core) flash kernels for every shape, 0 restores the normal
// choice. Without a call, the environment variable VLM_ATTN_GENERIC=1 does the same.
void flash_attention_force_generic(int on);
// classifier
void cuda_logprob_forward(void *logp, void *lse, const void *logits, const int *targets, int N, int V);
void cuda_logprob_backward(void *dlogits, const void *logits, const void *lse, const int *targets,
                           const void *dlogp, int N, int V);
// embeddings and rows
void cuda_embedding_forward(void *out, const int *ids, const void *table, int N, int C);
void cuda_embedding_backward(void *dtable, const void *dout, const int *ids, int N, int C);
void cuda_copy_rows(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C);
void cuda_add_rows(void *out, const int *out_idx, const void *inp, const int *inp_idx, int M, int C);
void cuda_add_broadcast_forward(void *x, const void *y, int B, size_t M);
void cuda_add_broadcast_backward(void *dy, const void *dx, int B, size_t M);
void cuda_im2col(void *patches, const void *pixels, int B, int Cin, int H, int W, int P);
// optimizer
void cuda_sumsq(double *out, const void *x, size_t n);
void cuda_adamw_update(void *params, void *master, const void *grad, void *m, void *v, size_t n, float lr,
                       float b1, float b2, float eps, float wd, int t, float grad_scale);
// generation: the strided row copy (cuda/rows.cu); the rotary embedding fused with the append to a KV cache,
// and attention over the cache (cuda/decode.cu)
void cuda_copy_rows_strided(void *out, const int *out_idx, int out_stride, const void *inp, const int *inp_idx,
                            int inp_stride, int M, int C);
void cuda_attention_decode(void *out, const void *q, const void *k, const void *v, const DecodeShape *s);
void cuda_rope_kv_append(void *qkv, const int *pos, void *kcache, void *vcache, const int *dst, int N, int NH, int NKV,
                         int HD, int qkv_stride, float theta);
// LoRA (cuda/lora.cu)
void cuda_add_strided(void *out, int out_stride, const void *inp, int inp_stride, int N, int C, float s);
void cuda_dropout(void *out, const void *inp, size_t n, float p, unsigned long long seed);

#ifdef __cplusplus
}
#endif
