#include "kernels/cuda/challenge_cuda.h"

#include <atomic>
#include <string>
#include <thread>

#include "kernels/cuda/cuda_support.cuh"
#include "kernels/gpu_challenge_plan.h"

namespace tessera::kernels {
namespace {

using gpu::BlasStatus;
using gpu::Blocks;
using gpu::CudaStatus;
using gpu::DeviceBuffer;
using gpu::DeviceStream;
using gpu::EventTimer;
using gpu::kThreads;
using gpu::ScopedDevice;

// How long the gate may hold a stream: queuing a batch takes milliseconds; past this the timing
// would include the host's dispatch, and the run fails instead.
constexpr uint64_t kGateTimeoutNs = 1'000'000'000;

// Element `i` of the challenge's stream (A's n² elements, then B's) is the low byte of SplitMix64 draw
// i + 1 from `state0`, as ChallengeOperands draws them on the host. Element `first + i` goes to
// out[i], or to its transposed place when `transpose` (B is stored as Bᵀ, gpu_challenge_plan.h).
__global__ void FillChallengeOperand(int8_t* out, uint32_t n, uint64_t state0, uint64_t first, bool transpose) {
  const uint64_t count = static_cast<uint64_t>(n) * n;
  for (uint64_t i = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; i < count;
       i += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t z = gpu::SplitMix64At(state0, first + i + 1);
    out[transpose ? TransposedIndex(i, n) : i] = static_cast<int8_t>(static_cast<uint8_t>(z));
  }
}

// C = A·B in int32 for the sizes cuBLAS's int8 kernels refuse, from A and Bᵀ: one thread per element,
// exact integer arithmetic (the bits do not depend on the order of the sum).
__global__ void Int8ProductFallback(const int8_t* a, const int8_t* b_t, int32_t* c, uint32_t n) {
  const uint64_t elements = static_cast<uint64_t>(n) * n;
  for (uint64_t e = blockIdx.x * static_cast<uint64_t>(blockDim.x) + threadIdx.x; e < elements;
       e += static_cast<uint64_t>(gridDim.x) * blockDim.x) {
    const uint64_t i = e / n, j = e % n;
    uint32_t acc = 0;
    for (uint32_t k = 0; k < n; ++k) {
      acc += static_cast<uint32_t>(static_cast<int32_t>(a[i * n + k]) * static_cast<int32_t>(b_t[j * n + k]));
    }
    c[e] = static_cast<int32_t>(acc);
  }
}

__device__ uint64_t GlobalTimerNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Spins until the host sets flags[0], or sets flags[1] and returns after `timeout_ns`.
__global__ void HoldStream(volatile int32_t* flags, uint64_t timeout_ns) {
  const uint64_t start = GlobalTimerNs();
  while (flags[0] == 0) {
    if (GlobalTimerNs() - start > timeout_ns) {
      flags[1] = 1;
      return;
    }
  }
}

// Holds a stream until Release(), so that the whole timed batch is queued behind it before the clock
// starts: the host's dispatch stays out of the measured window (nvbench's blocking kernel).
class StreamGate {
 public:
  StreamGate() = default;
  StreamGate(const StreamGate&) = delete;
  StreamGate& operator=(const StreamGate&) = delete;
  ~StreamGate() {
    if (flags_ == nullptr) return;
    Release();  // on every path out: a held stream would spin until its timeout
    ScopedDevice on(device_);
    (void)cudaStreamSynchronize(stream_);  // the kernel reads the flags until it returns
    (void)cudaFreeHost(const_cast<int32_t*>(flags_));
  }
  absl::Status Hold(cudaStream_t stream) {
    stream_ = stream;
    device_ = gpu::CurrentDevice();
    void* host = nullptr;
    TESSERA_CUDA_TRY(CudaStatus(cudaHostAlloc(&host, 2 * sizeof(int32_t), cudaHostAllocMapped | cudaHostAllocPortable), "cudaHostAlloc"));
    flags_ = static_cast<volatile int32_t*>(host);
    flags_[0] = 0;
    flags_[1] = 0;
    void* device_flags = nullptr;
    TESSERA_CUDA_TRY(CudaStatus(cudaHostGetDevicePointer(&device_flags, host, 0), "cudaHostGetDevicePointer"));
    HoldStream<<<1, 1, 0, stream_>>>(static_cast<volatile int32_t*>(device_flags), kGateTimeoutNs);
    return CudaStatus(cudaGetLastError(), "HoldStream");
  }
  void Release() {
    std::atomic_thread_fence(std::memory_order_seq_cst);
    flags_[0] = 1;
  }
  // Meaningful once the stream has passed the gate.
  bool timed_out() const { return flags_ != nullptr && flags_[1] != 0; }

 private:
  volatile int32_t* flags_ = nullptr;  // pinned, mapped: [0] release, [1] timed out
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

// The operands of a challenge on the device, and its product.
struct Operands {
  DeviceBuffer<int8_t> a, b_t;
  DeviceBuffer<int32_t> c;
};

absl::Status MakeOperands(const ChallengeSpec& spec, cudaStream_t stream, Operands& o) {
  const uint64_t elements = static_cast<uint64_t>(spec.n) * spec.n;
  TESSERA_CUDA_TRY(o.a.Allocate(elements));
  TESSERA_CUDA_TRY(o.b_t.Allocate(elements));
  TESSERA_CUDA_TRY(o.c.Allocate(elements));
  const uint64_t state0 = spec.seed ^ kChallengeSeedMix;
  FillChallengeOperand<<<Blocks(elements), kThreads, 0, stream>>>(o.a.get(), spec.n, state0, 0, false);
  FillChallengeOperand<<<Blocks(elements), kThreads, 0, stream>>>(o.b_t.get(), spec.n, state0, elements, true);
  return CudaStatus(cudaGetLastError(), "challenge operands");
}

// One product on `path`. cuBLAS's refusal comes back as UNIMPLEMENTED (the caller may fall back).
absl::Status Product(cublasHandle_t blas, cudaStream_t stream, ChallengePath path, uint32_t n, const Operands& o) {
  if (path == ChallengePath::kFallbackKernel) {
    Int8ProductFallback<<<Blocks(static_cast<uint64_t>(n) * n), kThreads, 0, stream>>>(o.a.get(), o.b_t.get(), o.c.get(), n);
    return CudaStatus(cudaGetLastError(), "int8 product (fallback kernel)");
  }
  const Int8GemmLayout l = ChallengeGemmLayout(n);
  auto buffer = [&](ChallengeBuffer b) -> const int8_t* { return b == ChallengeBuffer::kA ? o.a.get() : o.b_t.get(); };
  const int32_t alpha = 1, beta = 0;
  const cublasStatus_t s = cublasGemmEx(blas, l.transpose_first ? CUBLAS_OP_T : CUBLAS_OP_N, l.transpose_second ? CUBLAS_OP_T : CUBLAS_OP_N,
                                        static_cast<int>(l.m), static_cast<int>(l.n), static_cast<int>(l.k), &alpha, buffer(l.first),
                                        CUDA_R_8I, static_cast<int>(l.ld_first), buffer(l.second), CUDA_R_8I, static_cast<int>(l.ld_second),
                                        &beta, o.c.get(), CUDA_R_32I, static_cast<int>(l.ld_c), CUBLAS_COMPUTE_32I, CUBLAS_GEMM_DEFAULT);
  if (s == CUBLAS_STATUS_NOT_SUPPORTED) return absl::UnimplementedError("cuBLAS int8 GEMM: CUBLAS_STATUS_NOT_SUPPORTED");
  return BlasStatus(s, "cublasGemmEx (int8)");
}

}  // namespace

struct CudaChallenges::Device {
  explicit Device(uint32_t ordinal) : ordinal(static_cast<int>(ordinal)) {}
  Device(const Device&) = delete;
  Device& operator=(const Device&) = delete;
  ~Device() {
    if (blas == nullptr) return;
    ScopedDevice on(ordinal);
    (void)cublasDestroy(blas);
  }
  // The context (cudaFree(0) creates it), the stream and the cuBLAS handle bound to it.
  absl::Status Init() {
    TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(ordinal), "cudaSetDevice"));
    TESSERA_CUDA_TRY(CudaStatus(cudaFree(nullptr), "context creation"));
    TESSERA_CUDA_TRY(stream.Create());
    TESSERA_CUDA_TRY(BlasStatus(cublasCreate(&blas), "cublasCreate"));
    return BlasStatus(cublasSetStream(blas, stream.get()), "cublasSetStream");
  }
  absl::Status Ready() {
    std::call_once(once, [this] { (void)(ready = Init()); });
    return ready;
  }

  const int ordinal;
  std::once_flag once;
  absl::Status ready;  // written once, inside `once`
  DeviceStream stream;
  cublasHandle_t blas = nullptr;
  std::mutex run_mu;  // held by the device's running challenge
};

CudaChallenges::CudaChallenges() = default;
CudaChallenges::~CudaChallenges() = default;

CudaChallenges::Device& CudaChallenges::DeviceAt(uint32_t ordinal) {
  std::lock_guard lock(mu_);
  std::unique_ptr<Device>& d = devices_[ordinal];
  if (d == nullptr) d = std::make_unique<Device>(ordinal);
  return *d;
}

void CudaChallenges::WarmUp(const std::vector<uint32_t>& devices) {
  std::vector<uint32_t> ordinals = devices;
  if (ordinals.empty()) {
    int count = 0;
    if (cudaGetDeviceCount(&count) != cudaSuccess) {
      (void)cudaGetLastError();
      return;  // no usable GPU: the challenges will say so
    }
    for (int d = 0; d < count; ++d) ordinals.push_back(static_cast<uint32_t>(d));
  }
  std::vector<std::thread> threads;
  for (uint32_t d : ordinals) threads.emplace_back([this, d] { (void)DeviceAt(d).Ready(); });
  for (std::thread& t : threads) t.join();
}

absl::StatusOr<ChallengeRun> CudaChallenges::Run(const ChallengeSpec& spec, uint32_t device) {
  TESSERA_CUDA_TRY(ValidateChallengeSize(spec.n));
  int count = 0;
  TESSERA_CUDA_TRY(CudaStatus(cudaGetDeviceCount(&count), "cudaGetDeviceCount"));
  if (device >= static_cast<uint32_t>(count)) {
    return absl::InvalidArgumentError(absl::StrCat("no CUDA device ", device, ": this machine has ", count));  // keeps devices_ bounded
  }
  Device& d = DeviceAt(device);
  ScopedDevice on(d.ordinal);  // the caller's current device is its own business
  TESSERA_CUDA_TRY(d.Ready());
  std::lock_guard lock(d.run_mu);
  const cudaStream_t stream = d.stream.get();
  Operands o;
  TESSERA_CUDA_TRY(MakeOperands(spec, stream, o));
  ChallengePath path = ChallengePath::kCublasInt8;
  if (!CublasInt8Accepts(spec.n)) {
    TESSERA_CUDA_TRY(CheckFallbackAllowed(spec.n, "n is not a multiple of 4"));
    path = ChallengePath::kFallbackKernel;
  }
  // The untimed warm-up: cuBLAS picks and loads its kernel; a refusal shows here, never later.
  if (absl::Status warm = Product(d.blas, stream, path, spec.n, o); absl::IsUnimplemented(warm)) {
    TESSERA_CUDA_TRY(CheckFallbackAllowed(spec.n, warm.message()));
    path = ChallengePath::kFallbackKernel;
    TESSERA_CUDA_TRY(Product(d.blas, stream, path, spec.n, o));
  } else if (!warm.ok()) {
    return warm;
  }
  TESSERA_CUDA_TRY(CudaStatus(cudaStreamSynchronize(stream), "challenge warm-up"));

  const uint32_t products = ChallengeProductsToTime(spec.n);
  StreamGate gate;
  EventTimer timer;
  TESSERA_CUDA_TRY(gate.Hold(stream));
  TESSERA_CUDA_TRY(timer.Start(stream));
  for (uint32_t i = 0; i < products; ++i) TESSERA_CUDA_TRY(Product(d.blas, stream, path, spec.n, o));
  TESSERA_CUDA_TRY(timer.Stop());
  gate.Release();
  absl::StatusOr<float> ms = timer.ElapsedMs();
  if (!ms.ok()) return ms.status();
  if (gate.timed_out()) {
    return absl::DeadlineExceededError(absl::StrCat("queuing ", products, " challenge products took over ", kGateTimeoutNs / 1'000'000,
                                                    " ms: the timing would include the host's dispatch"));
  }
  ChallengeRun run{.product = std::vector<int32_t>(static_cast<size_t>(spec.n) * spec.n),
                   .elapsed_us = ChallengePerProductUs(*ms, products),
                   .path = path,
                   .products_timed = products};
  const size_t bytes = run.product.size() * sizeof(int32_t);
  TESSERA_CUDA_TRY(CudaStatus(cudaMemcpyAsync(run.product.data(), o.c.get(), bytes, cudaMemcpyDeviceToHost, stream), "product"));
  TESSERA_CUDA_TRY(CudaStatus(cudaStreamSynchronize(stream), "product"));
  return run;
}

}  // namespace tessera::kernels
