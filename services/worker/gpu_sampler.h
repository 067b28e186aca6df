// What a GPU is doing, sampled while a job holds it: utilization, memory in use, power and energy.
// On NVIDIA machines NVML does it, loaded at run time (dlopen "libnvidia-ml.so.1") so that the
// agent needs no NVIDIA library to build or start; tests give the runner a fake.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

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
  // The device at this CUDA ordinal; nullopt if it cannot be read.
  virtual std::optional<GpuSample> Sample(uint32_t index) = 0;
};

// NVML, or null when the library or a driver is missing (the CPU devices have no sampler).
std::unique_ptr<GpuSampler> MakeNvmlSampler();

}  // namespace tessera::worker
