// The NVIDIA GPUs this machine has, from the CUDA runtime: what a worker offers at registration.
// A build without CUDA, or a machine without a usable driver, has none.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::kernels {

struct CudaDevice {
  uint32_t ordinal = 0;
  std::string name;        // as the driver says, e.g. "NVIDIA H100 80GB HBM3"
  std::string uuid;        // "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"
  std::string pci_bus_id;  // "0000:1B:00.0"
  uint64_t memory_mib = 0;
  int compute_major = 0, compute_minor = 0;
  std::vector<uint32_t> peers;  // ordinals it can access directly (NVLink or PCIe P2P)
};

// Every visible device; empty without CUDA. An error only when the runtime fails for a reason
// other than "no device" or "no driver" (those mean: this machine has no usable GPU).
absl::StatusOr<std::vector<CudaDevice>> ListCudaDevices();

// What the CUDA runtime says about this machine, telling apart "there is no NVIDIA device" from "the
// runtime could not start" (no driver, a driver too old for this CUDA, a broken installation): a
// worker may treat both as "no GPU", but a GPU test machine must not pass having checked nothing.
enum class CudaRuntimeState {
  kNotBuilt,     // this build has no CUDA
  kNoDevice,     // the runtime started and found no device (cudaErrorNoDevice)
  kStartFailed,  // the runtime could not start, or could not read a device
  kReady,        // at least one device, all readable
};
std::string_view CudaRuntimeStateName(CudaRuntimeState state);

struct CudaProbe {
  CudaRuntimeState state = CudaRuntimeState::kNotBuilt;
  // The runtime's own words when it did not reach kReady, e.g. "cudaGetDeviceCount:
  // cudaErrorInsufficientDriver (CUDA driver version is insufficient for CUDA runtime version)".
  std::string error;
  std::vector<CudaDevice> devices;  // kReady only
};
CudaProbe ProbeCuda();

// The market's model name of a device: "NVIDIA H100 80GB HBM3" → "H100", "NVIDIA A100-SXM4-80GB"
// → "A100", "NVIDIA GeForce RTX 4090" → "RTX 4090", "NVIDIA L40S" → "L40S".
std::string MarketModelName(std::string_view device_name);

}  // namespace tessera::kernels
