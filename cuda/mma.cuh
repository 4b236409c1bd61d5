// The tensor-core instruction the hand-written kernels use (cuda/attention.cu, cuda/gemv.cu): mma.sync
// m16n8k16 with bf16 operands and fp32 accumulators, sm_80 and later.
#pragma once
#include <stdint.h>

// c (16x8 fp32) += a (16x16 bf16, row) * b (16x8 bf16, col). Fragment layout, g = lane/4, t = lane%4:
//   a0 = A[g][2t..2t+1], a1 = A[g+8][2t..], a2 = A[g][2t+8..], a3 = A[g+8][2t+8..]
//   b0 = B[2t..2t+1][g], b1 = B[2t+8..2t+9][g]
//   c0,c1 = C[g][2t..2t+1], c2,c3 = C[g+8][2t..2t+1]
// So an accumulator tile pair (n-tiles 2k, 2k+1 of a 16-wide k step) repacks directly into an A fragment.
__device__ __forceinline__ void mma16816(float c[4], const uint32_t a[4], uint32_t b0, uint32_t b1) {
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
