#include "kernels/cuda/mlp_kernels.cuh"

#include "kernels/cuda/cuda_support.cuh"

namespace tessera::kernels::gpu {

// A mixed SplitMix64 draw as a float in [-1, 1), as SplitMix64::NextSymmetric on the host.
__device__ static float Symmetric(uint64_t z) {
  const auto bits = static_cast<int32_t>(z >> 40);
  return static_cast<float>(bits - (1 << 23)) / static_cast<float>(1 << 23);
}

__global__ void FillSymmetric(float* out, uint64_t n, uint64_t state0, uint64_t first, float scale, float factor) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    out[i] = Symmetric(gpu::SplitMix64At(state0, first + i + 1)) * scale * factor;
  }
}

__global__ void TeacherTargets(const float* x, const float* w1, const float* w2, float* y, uint32_t samples,
                               uint32_t input_dim, uint32_t output_dim) {
  const uint32_t s = blockIdx.x * blockDim.x + threadIdx.x;
  if (s >= samples) return;
  float hidden[kTeacherHidden];
  for (uint32_t h = 0; h < kTeacherHidden; ++h) {
    float acc = 0;
    for (uint32_t i = 0; i < input_dim; ++i) acc += x[static_cast<size_t>(s) * input_dim + i] * w1[static_cast<size_t>(i) * kTeacherHidden + h];
    hidden[h] = tanhf(acc);
  }
  for (uint32_t o = 0; o < output_dim; ++o) {
    float acc = 0;
    for (uint32_t h = 0; h < kTeacherHidden; ++h) acc += hidden[h] * w2[static_cast<size_t>(h) * output_dim + o];
    y[static_cast<size_t>(s) * output_dim + o] = acc;
  }
}

__global__ void BiasTanh(float* z, const float* b, __nv_bfloat16* z_bf16, uint64_t n, uint32_t cols) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float h = tanhf(z[i] + b[i % cols]);
    z[i] = h;
    if (z_bf16 != nullptr) z_bf16[i] = __float2bfloat16(h);
  }
}

__global__ void BiasResidual(float* out, const float* b, const float* y, float* d, __nv_bfloat16* d_bf16, uint64_t n,
                             uint32_t cols, float scale) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float o = out[i] + b[i % cols];
    out[i] = o;
    const float g = scale * (o - y[i]);
    d[i] = g;
    if (d_bf16 != nullptr) d_bf16[i] = __float2bfloat16(g);
  }
}

// Adds the block's threads' `acc` to `*sum` (a shared-memory tree, then one atomic per block).
__device__ static void AddBlockSum(double acc, double* sum) {
  __shared__ double partial[kThreads];
  partial[threadIdx.x] = acc;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride /= 2) {
    if (threadIdx.x < stride) partial[threadIdx.x] += partial[threadIdx.x + stride];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(sum, partial[0]);
}

__global__ void SquaredError(const float* out, const float* b, const float* y, uint64_t n, uint32_t cols, double* sum) {
  double acc = 0;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const double e = static_cast<double>(out[i] + b[i % cols]) - y[i];
    acc += e * e;
  }
  AddBlockSum(acc, sum);
}

__global__ void TanhBackward(float* dh, const float* h, __nv_bfloat16* dz_bf16, uint64_t n) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float dz = dh[i] * (1.0f - h[i] * h[i]);
    dh[i] = dz;
    if (dz_bf16 != nullptr) dz_bf16[i] = __float2bfloat16(dz);
  }
}

__global__ void ColumnSums(const float* d, float* db, uint32_t rows, uint32_t cols) {
  const uint32_t c = blockIdx.x * blockDim.x + threadIdx.x;
  if (c >= cols) return;
  float acc = 0;
  for (uint32_t r = 0; r < rows; ++r) acc += d[static_cast<size_t>(r) * cols + c];
  db[c] = acc;
}

__global__ void SgdUpdate(float* w, const float* g, __nv_bfloat16* w_bf16, uint64_t n, float learning_rate) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const float v = w[i] - learning_rate * g[i];
    w[i] = v;
    if (w_bf16 != nullptr) w_bf16[i] = __float2bfloat16(v);
  }
}

__global__ void Sum(const float* x, uint64_t n, double* sum) {
  double acc = 0;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    acc += x[i];
  }
  AddBlockSum(acc, sum);
}

__global__ void ToBf16(const float* in, __nv_bfloat16* out, uint64_t n) {
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < n; i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    out[i] = __float2bfloat16(in[i]);
  }
}

}  // namespace tessera::kernels::gpu
