// The fp32 matrix product behind the CPU backend's matmul_forward and matmul_backward (model/ops_cpu.c).
// See model/gemm_cpu.c for the blocking and for why the result is deterministic and batch invariant.
#pragma once

// c (M, Ncol) = [c +] a (M, K) @ b (K, Ncol) [+ bias (Ncol)], all fp32, with any strides:
//   a(i, k) = a[i * rsa + k * csa],  b(k, j) = b[k * rsb + j * csb],  c(i, j) = c[i * ldc + j]
// accumulate: start each sum from c's value instead of 0 (parameter gradients add up). bias: added once after
// the sum (NULL: none). Every c(i, j) is one chain of fused multiply-adds over k = 0, 1, ..., K-1 in that
// order, whatever M, the thread count or the instruction set: bitwise the same from run to run, for a row
// computed alone or in a batch, with 1 or 16 threads.
void gemm_f32(int M, int Ncol, int K, const float *a, long rsa, long csa, const float *b, long rsb, long csb,
              float *c, long ldc, int accumulate, const float *bias);

// 1 when the AVX-512 kernel is in use (the CPU has it and VLM_CPU_GEMM is not 0), else the plain C kernel.
int gemm_f32_avx512(void);
// Forgets the kernel choice so that the next call reads VLM_CPU_GEMM again (for tests).
void gemm_f32_reset_for_tests(void);
