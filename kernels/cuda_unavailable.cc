// This build has no CUDA toolkit: the worker offers and runs CPU devices only.
#include "kernels/cuda_devices.h"
#include "kernels/compute_backend.h"

namespace tessera::kernels {

std::unique_ptr<ComputeBackend> MakeCudaBackend() { return nullptr; }

absl::StatusOr<std::vector<CudaDevice>> ListCudaDevices() { return std::vector<CudaDevice>{}; }

CudaProbe ProbeCuda() { return CudaProbe{.state = CudaRuntimeState::kNotBuilt, .error = "this build has no CUDA", .devices = {}}; }

}  // namespace tessera::kernels
