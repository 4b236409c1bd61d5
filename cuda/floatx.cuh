// The "act" type of the CUDA backend (model/ops.h: activations, parameters and their gradients), named
// floatX as in llm.c: bf16 by default; fp32 when built with -DVLM_CUDA_FP32 (`make test-cuda-fp32`), a
// build for exact comparisons with the CPU reference and transformers (DESIGN.md section 4), not for
// speed. "acc" buffers are float in both. Kernels convert through to_f32 / to_floatX so that one source
// serves both builds; in the bf16 build they are exactly the intrinsics they replace.
// (Its own header: cuda/common.cuh and cuda/attention.cu, which keeps apart from common.cuh, both need it.)
#pragma once
#include <cuda_bf16.h>

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
