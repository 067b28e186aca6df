// What the CUDA backend's sources share: CUDA and cuBLAS failures as Status values with their text,
// and RAII owners of device memory, streams and events that release them on the device that made
// them (a buffer freed while another device is current is freed in the wrong context), whatever
// path leaves the scope.
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"

namespace tessera::kernels::gpu {

inline absl::Status CudaStatus(cudaError_t e, const char* what) {
  if (e == cudaSuccess) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("CUDA error in ", what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")"));
}

inline absl::Status BlasStatus(cublasStatus_t e, const char* what) {
  if (e == CUBLAS_STATUS_SUCCESS) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("cuBLAS error in ", what, ": ", cublasGetStatusName(e), " (", cublasGetStatusString(e), ")"));
}

#define TESSERA_CUDA_TRY(expr)                         \
  do {                                                 \
    if (absl::Status s_ = (expr); !s_.ok()) return s_; \
  } while (false)

inline constexpr int kThreads = 256;

// Draw `index` (1-based) of the SplitMix64 stream seeded with `state0`, the host's SplitMix64
// (kernels/synthetic_data.cc) computed at any position: each device thread takes its own element.
__device__ inline uint64_t SplitMix64At(uint64_t state0, uint64_t index) {
  uint64_t z = state0 + index * 0x9E3779B97F4A7C15ULL;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
  return z ^ (z >> 31);
}

// Blocks of kThreads for a grid-stride loop over n elements (at most 65,535).
inline unsigned Blocks(uint64_t n) { return static_cast<unsigned>(std::min<uint64_t>((n + kThreads - 1) / kThreads, 65'535)); }

// Makes `device` current for its scope and restores the previous one after.
class ScopedDevice {
 public:
  explicit ScopedDevice(int device) {
    if (cudaGetDevice(&previous_) == cudaSuccess && previous_ != device) changed_ = cudaSetDevice(device) == cudaSuccess;
  }
  ScopedDevice(const ScopedDevice&) = delete;
  ScopedDevice& operator=(const ScopedDevice&) = delete;
  ~ScopedDevice() {
    if (changed_) (void)cudaSetDevice(previous_);
  }

 private:
  int previous_ = 0;
  bool changed_ = false;
};

// The current device, or 0 when the runtime cannot say.
inline int CurrentDevice() {
  int device = 0;
  return cudaGetDevice(&device) == cudaSuccess ? device : 0;
}

// A device allocation of T on the device current at Allocate, freed there with its owner.
template <typename T>
class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_ == nullptr) return;
    ScopedDevice on(device_);
    (void)cudaFree(ptr_);
  }
  absl::Status Allocate(size_t count) {
    count_ = count;
    device_ = CurrentDevice();
    return CudaStatus(cudaMalloc(reinterpret_cast<void**>(&ptr_), std::max<size_t>(1, count) * sizeof(T)), "cudaMalloc");
  }
  T* get() const { return ptr_; }
  size_t count() const { return count_; }

 private:
  T* ptr_ = nullptr;
  size_t count_ = 0;
  int device_ = 0;
};

// A stream on the device current at Create, destroyed there with its owner.
class DeviceStream {
 public:
  DeviceStream() = default;
  DeviceStream(const DeviceStream&) = delete;
  DeviceStream& operator=(const DeviceStream&) = delete;
  ~DeviceStream() {
    if (stream_ == nullptr) return;
    ScopedDevice on(device_);
    (void)cudaStreamDestroy(stream_);
  }
  absl::Status Create() {
    device_ = CurrentDevice();
    return CudaStatus(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
  }
  cudaStream_t get() const { return stream_; }

 private:
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

// Times the device work queued on `stream` between Start() and Stop() with CUDA events (on the
// current device); ElapsedMs() waits for Stop's event.
class EventTimer {
 public:
  EventTimer() = default;
  EventTimer(const EventTimer&) = delete;
  EventTimer& operator=(const EventTimer&) = delete;
  ~EventTimer() {
    ScopedDevice on(device_);
    if (start_ != nullptr) (void)cudaEventDestroy(start_);
    if (stop_ != nullptr) (void)cudaEventDestroy(stop_);
  }
  absl::Status Start(cudaStream_t stream = nullptr) {
    device_ = CurrentDevice();
    stream_ = stream;
    TESSERA_CUDA_TRY(CudaStatus(cudaEventCreate(&start_), "cudaEventCreate"));
    TESSERA_CUDA_TRY(CudaStatus(cudaEventCreate(&stop_), "cudaEventCreate"));
    return CudaStatus(cudaEventRecord(start_, stream_), "cudaEventRecord");
  }
  absl::Status Stop() { return CudaStatus(cudaEventRecord(stop_, stream_), "cudaEventRecord"); }
  absl::StatusOr<float> ElapsedMs() {
    TESSERA_CUDA_TRY(CudaStatus(cudaEventSynchronize(stop_), "cudaEventSynchronize"));
    float ms = 0;
    TESSERA_CUDA_TRY(CudaStatus(cudaEventElapsedTime(&ms, start_, stop_), "cudaEventElapsedTime"));
    return ms;
  }

 private:
  cudaEvent_t start_ = nullptr;
  cudaEvent_t stop_ = nullptr;
  cudaStream_t stream_ = nullptr;
  int device_ = 0;
};

}  // namespace tessera::kernels::gpu
