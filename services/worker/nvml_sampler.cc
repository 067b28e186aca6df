// GpuSampler on NVML, resolved with dlopen/dlsym: the agent runs where there is no NVIDIA driver.
// The few NVML declarations needed are restated here (ABI of nvml.h, stable since CUDA 10).
#include <dlfcn.h>
#include <spdlog/spdlog.h>

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
  static std::unique_ptr<NvmlSampler> Open() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
    if (lib == nullptr) return nullptr;
    auto sampler = std::unique_ptr<NvmlSampler>(new NvmlSampler(lib));
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
    nvmlDevice_t device = nullptr;
    if (handle_by_index_(index, &device) != kNvmlSuccess) return std::nullopt;
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
  explicit NvmlSampler(void* lib) : lib_(lib) {}

  template <typename Fn>
  bool Bind(Fn*& fn, const char* name) {
    fn = reinterpret_cast<Fn*>(dlsym(lib_, name));
    return fn != nullptr;
  }
  bool Resolve() {
    Bind(energy_, "nvmlDeviceGetTotalEnergyConsumption");  // optional
    return Bind(init_, "nvmlInit_v2") && Bind(shutdown_, "nvmlShutdown") &&
           Bind(handle_by_index_, "nvmlDeviceGetHandleByIndex_v2") && Bind(utilization_, "nvmlDeviceGetUtilizationRates") &&
           Bind(memory_, "nvmlDeviceGetMemoryInfo") && Bind(power_, "nvmlDeviceGetPowerUsage");
  }

  void* lib_;
  bool initialized_ = false;
  nvmlReturn_t (*init_)() = nullptr;
  nvmlReturn_t (*shutdown_)() = nullptr;
  nvmlReturn_t (*handle_by_index_)(unsigned int, nvmlDevice_t*) = nullptr;
  nvmlReturn_t (*utilization_)(nvmlDevice_t, NvmlUtilization*) = nullptr;
  nvmlReturn_t (*memory_)(nvmlDevice_t, NvmlMemory*) = nullptr;
  nvmlReturn_t (*power_)(nvmlDevice_t, unsigned int*) = nullptr;
  nvmlReturn_t (*energy_)(nvmlDevice_t, unsigned long long*) = nullptr;
};

}  // namespace

std::unique_ptr<GpuSampler> MakeNvmlSampler() { return NvmlSampler::Open(); }

}  // namespace tessera::worker
