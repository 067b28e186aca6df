// The interface every compute backend implements (the CPU reference, CUDA): the job kinds
// `train_mlp` and `gemm_bench`. The CPU backend is the reference;
// the CUDA backend (cuBLAS GEMMs) plugs in behind the same interface and must reach the same loss
// curve: within 1e-3 relative per epoch in fp32 (tests/gpu), 5e-2 in bf16.
//
//   std::unique_ptr<ComputeBackend> backend = MakeCpuBackend();
//   absl::StatusOr<TrainResult> r = backend->TrainMlp(config, on_epoch, &cancelled);
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/gpu_challenge.h"
#include "kernels/gpu_challenge_plan.h"

namespace tessera::kernels {

// The GEMMs' input precision. Accumulation and the master weights are always fp32. The CPU reference
// computes in fp32 whatever is asked; bf16 on the GPU tracks its loss curve more loosely.
enum class Precision { kFp32, kBf16 };

// A job over several workers: the collective communicator it joins (NCCL's id, from node rank 0
// through the scheduler), this worker's first global rank and the world size.
struct Communicator {
  std::string unique_id;
  uint32_t first_rank = 0;
  uint32_t world_size = 1;
};

struct MlpConfig {
  uint64_t seed = 1;
  uint32_t input_dim = 16;
  uint32_t hidden_dim = 32;
  uint32_t output_dim = 1;
  uint32_t samples = 1024;
  uint32_t batch_size = 32;
  uint32_t epochs = 10;
  float learning_rate = 0.05f;
  Precision precision = Precision::kFp32;
  // The job's devices (its assignment's GPU indexes): a GPU backend uses these and no others. The
  // CPU backend ignores them.
  std::vector<uint32_t> devices = {};
  // Set for a job over several workers. The CPU backend trains each node's replica on its own.
  std::optional<Communicator> communicator = std::nullopt;
};

struct EpochReport {
  uint32_t epoch = 0;  // 1-based, of `epochs`
  uint32_t epochs = 0;
  float loss = 0;  // mean squared error over the dataset after this epoch
};

struct TrainResult {
  float initial_loss = 0;
  float final_loss = 0;
  std::vector<float> loss_per_epoch;
  // Hex SHA-256 of the final weights: W1, b1, W2, b2 as little-endian float32.
  std::string weights_sha256;
};

// gemm_bench: C = A·B for n×n matrices, `iterations` times, after one untimed warm-up.
struct GemmBenchConfig {
  uint64_t seed = 1;
  uint32_t n = 1'024;
  uint32_t iterations = 10;
  Precision precision = Precision::kFp32;
  std::vector<uint32_t> devices = {};
};

struct GemmBenchResult {
  double tflops = 0;          // 2·n³·iterations / timed seconds / 10¹²
  double seconds = 0;         // timed
  double checksum = 0;        // Σ C of the last product (backends agree to rounding)
};

// The result of `iterations` products taking `seconds`, with the last product's checksum.
GemmBenchResult GemmBenchSummary(const GemmBenchConfig& config, double seconds, const std::vector<float>& last_product);

// allreduce_bench: ncclAllReduce (sum, in place) of `megabytes` of fp32 over the given GPUs,
// `iterations` times after a warm-up.
struct AllReduceBenchConfig {
  uint32_t megabytes = 256;
  uint32_t iterations = 20;
  std::vector<uint32_t> devices = {};
};

struct AllReduceBenchResult {
  double algorithm_gbps = 0;  // bytes / time
  double bus_gbps = 0;        // × 2(n−1)/n: what each link carried, comparable across GPU counts
  double seconds = 0;
};

// Proof of GPU: the challenge's product (gpu_challenge.h) and how long the multiplication alone took
// on the device, in µs (not deriving the operands, nor copying the product back): on a GPU the mean
// over `products_timed` products run back to back and timed as one batch (gpu_challenge_plan.h).
struct ChallengeRun {
  std::vector<int32_t> product;
  double elapsed_us = 0;
  ChallengePath path = ChallengePath::kHost;  // which code computed it: only kCublasInt8 is a GPU's full speed
  uint32_t products_timed = 1;
};

class ComputeBackend {
 public:
  virtual ~ComputeBackend() = default;
  virtual std::string_view Name() const = 0;
  // Whether AllReduceBench and multi-GPU collectives run here (NCCL), so the worker offers them.
  virtual bool HasCollectives() const { return false; }
  // Trains to completion. `on_epoch` is called after every epoch. Setting `*cancel` stops the run
  // within one mini-batch and returns CANCELLED.
  virtual absl::StatusOr<TrainResult> TrainMlp(const MlpConfig& config,
                                               const std::function<void(const EpochReport&)>& on_epoch,
                                               const std::atomic<bool>* cancel) = 0;
  // A fresh id for a communicator this worker's node rank 0 creates for a job over several workers
  // (ncclGetUniqueId on CUDA; unguessable bytes on the CPU, which has no collective).
  virtual std::string NewCommunicatorId() = 0;
  // Measures the interconnect between the job's GPUs (NCCL); UNIMPLEMENTED on the CPU.
  virtual absl::StatusOr<AllReduceBenchResult> AllReduceBench(const AllReduceBenchConfig& config,
                                                              const std::atomic<bool>* cancel) = 0;
  // Measures what the device really delivers on the GEMM at the heart of training.
  virtual absl::StatusOr<GemmBenchResult> GemmBench(const GemmBenchConfig& config, const std::atomic<bool>* cancel) = 0;
  // The challenge C = A·B on `device` (a GPU index; the CPU backend ignores it), bit-identical to
  // ChallengeProduct: int8 tensor cores with int32 accumulation on a GPU. Safe to call for different
  // devices from different threads at once (a worker answers for all its GPUs in parallel).
  virtual absl::StatusOr<ChallengeRun> RunChallenge(const ChallengeSpec& spec, uint32_t device) = 0;
  // Sets up now what the first challenge on these devices (every visible one when empty) would
  // otherwise set up inside its deadline: a GPU's context and libraries. Blocks until done; a
  // failure waits for the challenge to report it. Nothing to do on the CPU.
  virtual void WarmUp(const std::vector<uint32_t>& devices) { (void)devices; }
};

std::unique_ptr<ComputeBackend> MakeCpuBackend();

// The CUDA backend (cuBLAS GEMMs, device-side data and updates); null when this build has no CUDA.
// Running it where no GPU is usable fails the job with the CUDA error, never the process.
std::unique_ptr<ComputeBackend> MakeCudaBackend();

}  // namespace tessera::kernels
