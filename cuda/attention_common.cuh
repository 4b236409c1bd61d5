// Shared by cuda/attention.cu (our flash-attention kernels) and cuda/attention_cudnn.cu (cuDNN SDPA):
// an error-check macro, the scratch buffer, and the small kernels both paths use.
// (Kept apart from cuda/common.cuh, which another part of the backend owns, so the two never collide.)
#pragma once
#include <cuda_runtime.h>
#include <cuda_bf16.h>
#include <stddef.h>

#include "../model/ops.h"

extern "C" {
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));  // util/common.c
void *cuda_stream(void);                                                            // the one stream
}

#define ATTN_CUDA_CHECK(call) do { cudaError_t e_ = (call); if (e_ != cudaSuccess) \
    fatal("%s:%d: CUDA error %s: %s", __FILE__, __LINE__, cudaGetErrorName(e_), cudaGetErrorString(e_)); } while (0)
// after a launch: catches bad configurations at once (asynchronous faults surface at the next sync)
#define ATTN_LAUNCH_CHECK() ATTN_CUDA_CHECK(cudaGetLastError())

static inline cudaStream_t attn_stream(void) { return (cudaStream_t)cuda_stream(); }

// Device scratch shared by the attention paths (fp32 D = rowsum(dO*O) of the backward, cuDNN's
// workspace, seq-len tensors). Grows on demand and is never shrunk; every use is on the one stream, so
// reusing it between calls is safe. A grow frees the old block (cudaFree waits for the device).
// slot: 0 = flash backward, 1 = cuDNN workspace, 2 = cuDNN seq-len/misc
void *attn_scratch(int slot, size_t bytes);

// Enforces the contract's padding semantics after a kernel that may leave padded rows unspecified
// (cuDNN): keys j >= kv_len[b] get dk = dv = 0; rows with kv_len[b] <= 0 (no visible key anywhere)
// get out = 0, lse = 0 and dq = 0. Any pointer may be NULL (skipped). Launched only when kv_len != NULL.
void attn_fixup_padding(void *out, float *lse, void *dq, void *dk, void *dv, const AttnShape *s);

// Testing hook: 1 forces the generic (non-tensor-core) kernels for every shape, 0 restores the normal
// choice. Without a call, the environment variable VLM_ATTN_GENERIC=1 does the same.
void flash_attention_force_generic(int on);
