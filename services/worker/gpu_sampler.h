// What a GPU is doing, sampled while a job holds it: utilization, memory in use, power and energy.
// On NVIDIA machines NVML does it, loaded at run time (dlopen "libnvidia-ml.so.1") so that the
// agent needs no NVIDIA library to build or start; tests give the runner a fake.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tessera::worker {

struct GpuSample {
  uint32_t utilization_pct = 0;  // of the last sample period, 0..100
  uint64_t memory_used_mib = 0;
  uint64_t power_mw = 0;
  // Energy since the driver loaded, mJ; nullopt where the device has no counter (pre-Volta).
  std::optional<uint64_t> energy_mj;
};

class GpuSampler {
 public:
  virtual ~GpuSampler() = default;
  virtual std::string_view Name() const = 0;
  // The device at this CUDA ordinal; nullopt if it cannot be read. May be called from several threads.
  virtual std::optional<GpuSample> Sample(uint32_t index) = 0;
};

// The UUID to ask NVML for (nvmlDeviceGetHandleByUUID) to read the GPU at a CUDA ordinal, from the
// UUIDs the CUDA runtime reports by ordinal (kernels::CudaDevice::uuid, "GPU-" then 36 characters).
// CUDA ordinals follow CUDA_VISIBLE_DEVICES and CUDA_DEVICE_ORDER, NVML's indexes never do: only the
// UUID names the same GPU in both. nullopt for an ordinal without a well-formed UUID, so that the
// sampler reads nothing rather than another GPU.
std::optional<std::string> NvmlUuidForOrdinal(const std::vector<std::string>& uuid_by_ordinal, uint32_t ordinal);

// NVML, or null when the library or a driver is missing (the CPU devices have no sampler).
// `uuid_by_ordinal`: each CUDA ordinal's UUID, as the worker's inventory lists them.
std::unique_ptr<GpuSampler> MakeNvmlSampler(std::vector<std::string> uuid_by_ordinal);
// The same, with the UUIDs asked of the CUDA runtime (kernels::ListCudaDevices).
std::unique_ptr<GpuSampler> MakeNvmlSampler();

}  // namespace tessera::worker
