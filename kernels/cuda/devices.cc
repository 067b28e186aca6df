// ListCudaDevices and ProbeCuda on the CUDA runtime (built only with CUDA).
#include <cuda_runtime.h>

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_devices.h"

namespace tessera::kernels {
namespace {

std::string UuidText(const cudaUUID_t& uuid) {
  const auto* b = reinterpret_cast<const unsigned char*>(uuid.bytes);
  char text[48];
  std::snprintf(text, sizeof text, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return text;
}

// "what: cudaErrorX (its text)", the runtime's own words for a failure.
std::string RuntimeError(const char* what, cudaError_t e) {
  return absl::StrCat(what, ": ", cudaGetErrorName(e), " (", cudaGetErrorString(e), ")");
}

// The devices 0..count-1; an error names the call that failed.
absl::StatusOr<std::vector<CudaDevice>> ReadDevices(int count) {
  std::vector<CudaDevice> devices;
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp p{};
    if (cudaError_t pe = cudaGetDeviceProperties(&p, d); pe != cudaSuccess) {
      return absl::InternalError(RuntimeError(absl::StrCat("cudaGetDeviceProperties(", d, ")").c_str(), pe));
    }
    CudaDevice& out = devices.emplace_back();
    out.ordinal = static_cast<uint32_t>(d);
    out.name = p.name;
    out.uuid = UuidText(p.uuid);
    char bus[32] = {};
    if (cudaDeviceGetPCIBusId(bus, sizeof bus, d) == cudaSuccess) out.pci_bus_id = bus;
    out.memory_mib = p.totalGlobalMem / (1024 * 1024);
    out.compute_major = p.major;
    out.compute_minor = p.minor;
    for (int peer = 0; peer < count; ++peer) {
      int can = 0;
      if (peer != d && cudaDeviceCanAccessPeer(&can, d, peer) == cudaSuccess && can) out.peers.push_back(static_cast<uint32_t>(peer));
    }
  }
  return devices;
}

}  // namespace

absl::StatusOr<std::vector<CudaDevice>> ListCudaDevices() {
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e == cudaErrorNoDevice || e == cudaErrorInsufficientDriver || e == cudaErrorInitializationError) {
    (void)cudaGetLastError();  // clear it: the machine simply has no usable GPU
    return std::vector<CudaDevice>{};
  }
  if (e != cudaSuccess) return absl::InternalError(absl::StrCat("cudaGetDeviceCount: ", cudaGetErrorString(e)));
  return ReadDevices(count);
}

CudaProbe ProbeCuda() {
  CudaProbe probe;
  int count = 0;
  const cudaError_t e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess) {
    (void)cudaGetLastError();
    probe.state = e == cudaErrorNoDevice ? CudaRuntimeState::kNoDevice : CudaRuntimeState::kStartFailed;
    probe.error = RuntimeError("cudaGetDeviceCount", e);
    return probe;
  }
  if (count == 0) {
    probe.state = CudaRuntimeState::kNoDevice;
    probe.error = "cudaGetDeviceCount: 0 devices";
    return probe;
  }
  absl::StatusOr<std::vector<CudaDevice>> devices = ReadDevices(count);
  if (!devices.ok()) {
    probe.state = CudaRuntimeState::kStartFailed;
    probe.error = std::string(devices.status().message());
    return probe;
  }
  probe.state = CudaRuntimeState::kReady;
  probe.devices = *std::move(devices);
  return probe;
}

}  // namespace tessera::kernels
