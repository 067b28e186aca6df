// train_mlp on NVIDIA GPUs (mlp_trainer.cu): one GPU, or data parallel over the job's GPUs and
// workers with NCCL. The CUDA backend's TrainMlp.
#pragma once

#include <atomic>
#include <functional>

#include "absl/status/statusor.h"
#include "kernels/compute_backend.h"

namespace tessera::kernels {

// INVALID_ARGUMENT for a batch size outside 1..samples; CANCELLED when `cancel` is set; the CUDA,
// cuBLAS or NCCL error otherwise.
absl::StatusOr<TrainResult> TrainMlpOnCuda(const MlpConfig& config, const std::function<void(const EpochReport&)>& on_epoch,
                                           const std::atomic<bool>* cancel);

}  // namespace tessera::kernels
