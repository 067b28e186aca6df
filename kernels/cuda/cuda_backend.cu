// The CUDA backend: `train_mlp` (mlp_trainer.cu), `gemm_bench` (cublasGemmEx, timed with CUDA
// events), `allreduce_bench` (an in-place NCCL all-reduce over the job's GPUs) and proof of GPU's
// product (challenge_cuda.cu); the helpers they share are in cuda_support.cuh.
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <nccl.h>

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/compute_backend.h"
#include "kernels/cuda/challenge_cuda.h"
#include "kernels/cuda/cuda_support.cuh"
#include "kernels/cuda/mlp_kernels.cuh"
#include "kernels/cuda/mlp_trainer.cuh"
#include "kernels/cuda/nccl_comm.cuh"
#include "kernels/gpu_challenge.h"
#include "kernels/synthetic_data.h"

namespace tessera::kernels::gpu {
namespace {


class CudaBackend final : public ComputeBackend {
 public:
  std::string_view Name() const override { return "cuda"; }
  bool HasCollectives() const override { return true; }

  absl::StatusOr<TrainResult> TrainMlp(const MlpConfig& config, const std::function<void(const EpochReport&)>& on_epoch,
                                       const std::atomic<bool>* cancel) override {
    return TrainMlpOnCuda(config, on_epoch, cancel);
  }

  absl::StatusOr<AllReduceBenchResult> AllReduceBench(const AllReduceBenchConfig& config, const std::atomic<bool>* cancel) override {
    const std::vector<uint32_t> devices = config.devices.empty() ? std::vector<uint32_t>{0} : config.devices;
    const size_t count = static_cast<size_t>(config.megabytes) * 1024 * 1024 / sizeof(float);
    std::vector<int> ordinals(devices.begin(), devices.end());
    // Every buffer and stream first, then the communicator (no allocation once collectives may
    // run). Declared before it, they are released after it is aborted, on every path out.
    std::vector<std::unique_ptr<DeviceBuffer<float>>> buffers;
    std::vector<std::unique_ptr<DeviceStream>> streams;
    for (int ordinal : ordinals) {
      TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(ordinal), "cudaSetDevice"));
      buffers.push_back(std::make_unique<DeviceBuffer<float>>());
      TESSERA_CUDA_TRY(buffers.back()->Allocate(count));
      TESSERA_CUDA_TRY(CudaStatus(cudaMemset(buffers.back()->get(), 0, count * sizeof(float)), "cudaMemset"));
      streams.push_back(std::make_unique<DeviceStream>());
      TESSERA_CUDA_TRY(streams.back()->Create());
    }
    for (int ordinal : ordinals) {
      TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(ordinal), "cudaSetDevice"));
      TESSERA_CUDA_TRY(CudaStatus(cudaDeviceSynchronize(), "cudaMemset"));
    }
    std::vector<ncclComm_t> comms(devices.size(), nullptr);
    // One process drives every local GPU: ncclCommInitAll makes the communicator, a stream per GPU.
    TESSERA_CUDA_TRY(NcclStatus(ncclCommInitAll(comms.data(), static_cast<int>(comms.size()), ordinals.data()), "ncclCommInitAll"));
    struct Teardown {
      std::vector<ncclComm_t>& comms;
      ~Teardown() {
        for (ncclComm_t c : comms) (void)ncclCommAbort(c);  // never blocks
      }
    } teardown{comms};
    auto all_reduce = [&]() -> absl::Status {
      TESSERA_CUDA_TRY(NcclStatus(ncclGroupStart(), "ncclGroupStart"));
      for (size_t i = 0; i < devices.size(); ++i) {
        const ncclResult_t queued =
            ncclAllReduce(buffers[i]->get(), buffers[i]->get(), count, ncclFloat, ncclSum, comms[i], streams[i]->get());
        if (queued != ncclSuccess) {
          (void)ncclGroupEnd();  // the group is closed on every path
          return NcclStatus(queued, "ncclAllReduce");
        }
      }
      TESSERA_CUDA_TRY(NcclStatus(ncclGroupEnd(), "ncclGroupEnd"));
      for (size_t i = 0; i < devices.size(); ++i) {
        TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(ordinals[i]), "cudaSetDevice"));
        TESSERA_CUDA_TRY(CudaStatus(cudaStreamSynchronize(streams[i]->get()), "cudaStreamSynchronize"));
      }
      return absl::OkStatus();
    };
    TESSERA_CUDA_TRY(all_reduce());  // warm-up: NCCL sets up its channels
    const auto start = std::chrono::steady_clock::now();
    for (uint32_t it = 0; it < config.iterations; ++it) {
      if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("allreduce_bench cancelled");
      TESSERA_CUDA_TRY(all_reduce());
    }
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const double n = static_cast<double>(devices.size());
    AllReduceBenchResult r;
    r.seconds = seconds;
    r.algorithm_gbps = seconds > 0 ? static_cast<double>(count * sizeof(float)) * config.iterations / seconds / 1e9 : 0;
    r.bus_gbps = r.algorithm_gbps * 2 * (n - 1) / n;
    return r;
  }

  std::string NewCommunicatorId() override {
    ncclUniqueId id;
    if (ncclGetUniqueId(&id) != ncclSuccess) return {};
    return std::string(id.internal, sizeof id.internal);
  }

  absl::StatusOr<GemmBenchResult> GemmBench(const GemmBenchConfig& config, const std::atomic<bool>* cancel) override {
    const int device = config.devices.empty() ? 0 : static_cast<int>(config.devices.front());
    TESSERA_CUDA_TRY(CudaStatus(cudaSetDevice(device), "cudaSetDevice"));
    const bool bf16 = config.precision == Precision::kBf16;
    const uint64_t n = config.n, elements = n * n;
    DeviceBuffer<float> a, b, c;
    DeviceBuffer<__nv_bfloat16> a16, b16;
    DeviceBuffer<double> sum;
    TESSERA_CUDA_TRY(a.Allocate(elements));
    TESSERA_CUDA_TRY(b.Allocate(elements));
    TESSERA_CUDA_TRY(c.Allocate(elements));
    TESSERA_CUDA_TRY(sum.Allocate(1));
    // The operands of GemmOperands: one stream, A then B.
    const uint64_t state0 = config.seed ^ kGemmSeedMix;
    FillSymmetric<<<Blocks(elements), kThreads>>>(a.get(), elements, state0, 0, 1.0f, 1.0f);
    FillSymmetric<<<Blocks(elements), kThreads>>>(b.get(), elements, state0, elements, 1.0f, 1.0f);
    if (bf16) {
      TESSERA_CUDA_TRY(a16.Allocate(elements));
      TESSERA_CUDA_TRY(b16.Allocate(elements));
      ToBf16<<<Blocks(elements), kThreads>>>(a.get(), a16.get(), elements);
      ToBf16<<<Blocks(elements), kThreads>>>(b.get(), b16.get(), elements);
    }
    TESSERA_CUDA_TRY(CudaStatus(cudaGetLastError(), "gemm operands"));
    cublasHandle_t blas = nullptr;
    TESSERA_CUDA_TRY(BlasStatus(cublasCreate(&blas), "cublasCreate"));
    struct BlasGuard {
      cublasHandle_t h;
      ~BlasGuard() { cublasDestroy(h); }
    } guard{blas};
    const void* pa = bf16 ? static_cast<const void*>(a16.get()) : a.get();
    const void* pb = bf16 ? static_cast<const void*>(b16.get()) : b.get();
    const cudaDataType type = bf16 ? CUDA_R_16BF : CUDA_R_32F;
    const float alpha = 1.0f, beta = 0.0f;
    const int dim = static_cast<int>(n);
    // Row-major C = A·B is column-major Cᵀ = Bᵀ·Aᵀ: the operands swap.
    auto gemm = [&] {
      return BlasStatus(cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, dim, dim, dim, &alpha, pb, type, dim, pa, type, dim, &beta,
                                     c.get(), CUDA_R_32F, dim, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                        "cublasGemmEx");
    };
    TESSERA_CUDA_TRY(gemm());  // warm-up: cuBLAS picks and loads its kernel
    TESSERA_CUDA_TRY(CudaStatus(cudaDeviceSynchronize(), "warm-up"));
    // Small products are queued in runs (a sync per product would be what we measure); big ones
    // one at a time, so that a cancel waits for one product, never for a long queue.
    const uint32_t per_sync = n >= 4'096 ? 1 : 64;
    EventTimer timer;
    TESSERA_CUDA_TRY(timer.Start());
    for (uint32_t it = 0; it < config.iterations; ++it) {
      TESSERA_CUDA_TRY(gemm());
      if ((it + 1) % per_sync == 0) {
        TESSERA_CUDA_TRY(CudaStatus(cudaDeviceSynchronize(), "gemm"));
        if (cancel != nullptr && cancel->load(std::memory_order_relaxed)) return absl::CancelledError("gemm_bench cancelled");
      }
    }
    TESSERA_CUDA_TRY(timer.Stop());
    absl::StatusOr<float> ms = timer.ElapsedMs();
    if (!ms.ok()) return ms.status();
    TESSERA_CUDA_TRY(CudaStatus(cudaMemset(sum.get(), 0, sizeof(double)), "cudaMemset"));
    Sum<<<std::min<unsigned>(Blocks(elements), 1'024), kThreads>>>(c.get(), elements, sum.get());
    GemmBenchResult r = GemmBenchSummary(config, *ms / 1e3, {});
    TESSERA_CUDA_TRY(CudaStatus(cudaMemcpy(&r.checksum, sum.get(), sizeof(double), cudaMemcpyDeviceToHost), "checksum"));
    return r;
  }

  // challenge_cuda.h: cuBLAS's int8 GEMM, timed as a batch; each device keeps its context.
  absl::StatusOr<ChallengeRun> RunChallenge(const ChallengeSpec& spec, uint32_t device) override { return challenges_.Run(spec, device); }

  void WarmUp(const std::vector<uint32_t>& devices) override { challenges_.WarmUp(devices); }

 private:
  CudaChallenges challenges_;
};

}  // namespace
}  // namespace tessera::kernels::gpu

namespace tessera::kernels {

std::unique_ptr<ComputeBackend> MakeCudaBackend() { return std::make_unique<gpu::CudaBackend>(); }

}  // namespace tessera::kernels
