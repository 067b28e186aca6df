// GpuSampler on NVML, resolved with dlopen/dlsym: the agent runs where there is no NVIDIA driver.
// The few NVML declarations needed are restated here (ABI of nvml.h, stable since CUDA 10). A GPU
// is found by its UUID, never by NVML's index, which ignores CUDA_VISIBLE_DEVICES and CUDA's order.
#include <dlfcn.h>
#include <spdlog/spdlog.h>

#include <map>
#include <mutex>

#include "absl/base/thread_annotations.h"
#include "kernels/cuda_devices.h"
#include "services/worker/gpu_sampler.h"

namespace tessera::worker {
namespace {

using nvmlReturn_t = int;
using nvmlDevice_t = struct nvmlDevice_st*;
constexpr nvmlReturn_t kNvmlSuccess = 0;
struct NvmlUtilization {
  unsigned int gpu;
  unsigned int memory;
};
struct NvmlMemory {
  unsigned long long total, free, used;
};

class NvmlSampler final : public GpuSampler {
 public:
  static std::unique_ptr<NvmlSampler> Open(std::vector<std::string> uuid_by_ordinal) {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return nullptr;
    auto sampler = std::unique_ptr<NvmlSampler>(new NvmlSampler(lib, std::move(uuid_by_ordinal)));
    if (!sampler->Resolve() || sampler->init_() != kNvmlSuccess) {
      spdlog::info("NVML present but unusable: GPU utilization, memory and energy are not metered");
      return nullptr;
    }
    sampler->initialized_ = true;
    return sampler;
  }
  ~NvmlSampler() override {
    if (initialized_) shutdown_();
    dlclose(lib_);
  }

  std::string_view Name() const override { return "nvml"; }

  std::optional<GpuSample> Sample(uint32_t index) override {
    const nvmlDevice_t device = Handle(index);
    if (device == nullptr) return std::nullopt;
    GpuSample s;
    NvmlUtilization util{};
    if (utilization_(device, &util) == kNvmlSuccess) s.utilization_pct = util.gpu;
    NvmlMemory memory{};
    if (memory_(device, &memory) == kNvmlSuccess) s.memory_used_mib = memory.used / (1024 * 1024);
    unsigned int power = 0;
    if (power_(device, &power) == kNvmlSuccess) s.power_mw = power;
    unsigned long long energy = 0;
    if (energy_ != nullptr && energy_(device, &energy) == kNvmlSuccess) s.energy_mj = energy;
    return s;
  }

 private:
  NvmlSampler(void* lib, std::vector<std::string> uuid_by_ordinal) : lib_(lib), uuid_by_ordinal_(std::move(uuid_by_ordinal)) {}

  // The handle of the GPU at a CUDA ordinal, looked up once by UUID (the lookup may initialize
  // other GPUs as NVML searches: not something to repeat every sample).
  nvmlDevice_t Handle(uint32_t ordinal) {
    std::lock_guard lock(mu_);
    if (auto it = handles_.find(ordinal); it != handles_.end()) return it->second;
    const std::optional<std::string> uuid = NvmlUuidForOrdinal(uuid_by_ordinal_, ordinal);
    nvmlDevice_t device = nullptr;
    if (!uuid || handle_by_uuid_(uuid->c_str(), &device) != kNvmlSuccess) {
      spdlog::warn("NVML: no GPU with the UUID of CUDA device {} ('{}'): it is not metered", ordinal, uuid.value_or(""));
      device = nullptr;
    }
    handles_[ordinal] = device;  // a miss is remembered too: one warning, not one per sample
    return device;
  }

  template <typename Fn>
  bool Bind(Fn*& fn, const char* name) {
    fn = reinterpret_cast<Fn*>(dlsym(lib_, name));
    return fn != nullptr;
  }
  bool Resolve() {
    Bind(energy_, "nvmlDeviceGetTotalEnergyConsumption");  // optional
    return Bind(init_, "nvmlInit_v2") && Bind(shutdown_, "nvmlShutdown") &&
           Bind(handle_by_uuid_, "nvmlDeviceGetHandleByUUID") && Bind(utilization_, "nvmlDeviceGetUtilizationRates") &&
           Bind(memory_, "nvmlDeviceGetMemoryInfo") && Bind(power_, "nvmlDeviceGetPowerUsage");
  }

  void* lib_;
  const std::vector<std::string> uuid_by_ordinal_;
  std::mutex mu_;
  std::map<uint32_t, nvmlDevice_t> handles_ ABSL_GUARDED_BY(mu_);  // by CUDA ordinal; null: not found
  bool initialized_ = false;
  nvmlReturn_t (*init_)() = nullptr;
  nvmlReturn_t (*shutdown_)() = nullptr;
  nvmlReturn_t (*handle_by_uuid_)(const char*, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*utilization_)(nvmlDevice_t, NvmlUtilization*) = nullptr;
  nvmlReturn_t (*memory_)(nvmlDevice_t, NvmlMemory*) = nullptr;
  nvmlReturn_t (*power_)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*energy_)(nvmlDevice_t, unsigned long long*) = nullptr;
};

}  // namespace

std::optional<std::string> NvmlUuidForOrdinal(const std::vector<std::string>& uuid_by_ordinal, uint32_t ordinal) {
  if (ordinal >= uuid_by_ordinal.size()) return std::nullopt;
  const std::string& uuid = uuid_by_ordinal[ordinal];
  // "GPU-" and the 36 characters of a UUID with its four dashes (as NVML and nvidia-smi print it).
  constexpr size_t kUuidChars = 4 + 36;
  if (uuid.size() != kUuidChars || !uuid.starts_with("GPU-")) return std::nullopt;
  for (size_t i = 4; i < uuid.size(); ++i) {
    const bool dash = i == 12 || i == 17 || i == 22 || i == 27;
    const char c = uuid[i];
    const bool hex = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
    if (dash ? c != '-' : !hex) return std::nullopt;
  }
  return uuid;
}

std::unique_ptr<GpuSampler> MakeNvmlSampler(std::vector<std::string> uuid_by_ordinal) {
  return NvmlSampler::Open(std::move(uuid_by_ordinal));
}

std::unique_ptr<GpuSampler> MakeNvmlSampler() {
  absl::StatusOr<std::vector<kernels::CudaDevice>> devices = kernels::ListCudaDevices();
  std::vector<std::string> uuids;
  if (devices.ok()) {
    for (const kernels::CudaDevice& d : *devices) {
      if (uuids.size() <= d.ordinal) uuids.resize(d.ordinal + 1);
      uuids[d.ordinal] = d.uuid;
    }
  }
  return NvmlSampler::Open(std::move(uuids));
}

}  // namespace tessera::worker
