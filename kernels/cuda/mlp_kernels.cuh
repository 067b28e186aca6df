// The device kernels of train_mlp and the benchmarks: what no library does (the synthetic dataset
// generated on the device from the job's seed, bias + tanh, the residual and loss, bias gradients,
// the SGD update) and two reductions the benchmarks share (a sum, an fp32 → bf16 copy). Every
// matrix product is cuBLAS's (mlp_trainer.cu, cuda_backend.cu).
#pragma once

#include <cuda_bf16.h>

#include <cstdint>

namespace tessera::kernels::gpu {

inline constexpr uint32_t kTeacherHidden = 16;  // as MakeTeacherDataset

// Element `first + i` of the SplitMix64 stream seeded with `state0`, scaled: the same numbers, in
// the same order, as SplitMix64::NextSymmetric on the host.
// The scales multiply in the host's order, so the rounding is the same too.
__global__ void FillSymmetric(float* out, uint64_t n, uint64_t state0, uint64_t first, float scale, float factor);

// Targets of the teacher network: y = tanh(x·w1)·w2, one thread per sample.
__global__ void TeacherTargets(const float* x, const float* w1, const float* w2, float* y, uint32_t samples,
                               uint32_t input_dim, uint32_t output_dim);

// h = tanh(z + b) in place over [rows × cols]; also writes the bf16 copy the next GEMM reads.
__global__ void BiasTanh(float* z, const float* b, __nv_bfloat16* z_bf16, uint64_t n, uint32_t cols);

// out += b; d = scale·(out − y), the gradient of the mean squared error; its bf16 copy too.
__global__ void BiasResidual(float* out, const float* b, const float* y, float* d, __nv_bfloat16* d_bf16, uint64_t n,
                             uint32_t cols, float scale);

// Σ (out + b − y)² over [rows × cols], accumulated in double.
__global__ void SquaredError(const float* out, const float* b, const float* y, uint64_t n, uint32_t cols, double* sum);

// dz = dh ⊙ (1 − h²), the tanh derivative; its bf16 copy too.
__global__ void TanhBackward(float* dh, const float* h, __nv_bfloat16* dz_bf16, uint64_t n);

// db[c] = Σ_r d[r][c]: one thread per column (the bias gradients are tiny next to the GEMMs).
__global__ void ColumnSums(const float* d, float* db, uint32_t rows, uint32_t cols);

// w −= lr·g over every parameter at once (they live in one buffer, as do their gradients).
__global__ void SgdUpdate(float* w, const float* g, __nv_bfloat16* w_bf16, uint64_t n, float learning_rate);

// Σ x over n elements, accumulated in double.
__global__ void Sum(const float* x, uint64_t n, double* sum);

__global__ void ToBf16(const float* in, __nv_bfloat16* out, uint64_t n);

}  // namespace tessera::kernels::gpu
