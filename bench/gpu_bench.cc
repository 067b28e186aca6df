// GPU benchmarks of the CUDA backend (issue 5), to compare with bench/torch_compare.py on the same
// card, in the same session:
//   - train_mlp epoch time: the model of mlp_cpu.h at a size that loads an H100 (input, hidden and
//     output 4096; batch 4096; bf16 GEMM inputs), an epoch being its SGD steps plus the full-dataset
//     loss; the median epoch over a run.
//   - gemm_bench bf16 8192³ (cublasGemmEx): achieved TFLOP/s.
// Without a GPU it says so and exits 0.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <string>

#include "kernels/compute_backend.h"
#include "kernels/cuda_devices.h"

using namespace tessera::kernels;

int main(int argc, char** argv) {
  uint32_t dim = 4'096, batch = 4'096, steps = 20, epochs = 5, gemm_n = 8'192, gemm_iterations = 50;
  CLI::App app{"Tessera GPU benchmarks (CUDA backend)"};
  app.add_option("--dim", dim, "input, hidden and output width of the MLP");
  app.add_option("--batch", batch);
  app.add_option("--steps", steps, "SGD steps per epoch");
  // The first epoch includes start-up and is left out of the median: at least one more is needed.
  app.add_option("--epochs", epochs, "epochs (at least 2)")->check(CLI::Range(2u, 1'000u));
  app.add_option("--gemm-n", gemm_n);
  app.add_option("--gemm-iterations", gemm_iterations);
  CLI11_PARSE(app, argc, argv);

  const CudaProbe probe = ProbeCuda();
  std::unique_ptr<ComputeBackend> cuda = MakeCudaBackend();
  if (probe.state != CudaRuntimeState::kReady || cuda == nullptr) {
    std::printf("%s: GPU benchmarks skipped (%s)\n", std::string(CudaRuntimeStateName(probe.state)).c_str(), probe.error.c_str());
    return 0;
  }
  const CudaDevice& device = probe.devices.front();
  std::printf("device 0: %s, %llu MiB, compute %d.%d\n", device.name.c_str(), static_cast<unsigned long long>(device.memory_mib),
              device.compute_major, device.compute_minor);

  const MlpConfig config{.seed = 1, .input_dim = dim, .hidden_dim = dim, .output_dim = dim, .samples = batch * steps,
                         .batch_size = batch, .epochs = epochs, .learning_rate = 0.01f, .precision = Precision::kBf16,
                         .devices = {0}, .communicator = std::nullopt};
  std::vector<double> epoch_ms;
  auto last = std::chrono::steady_clock::now();
  auto trained = cuda->TrainMlp(
      config,
      [&](const EpochReport&) {
        const auto now = std::chrono::steady_clock::now();
        epoch_ms.push_back(std::chrono::duration<double, std::milli>(now - last).count());
        last = now;
      },
      nullptr);
  if (!trained.ok()) {
    std::fprintf(stderr, "train_mlp: %s\n", std::string(trained.status().message()).c_str());
    return 1;
  }
  if (epoch_ms.size() < 2) {
    std::fprintf(stderr, "train_mlp reported %zu epochs: no epoch without start-up to time\n", epoch_ms.size());
    return 1;
  }
  epoch_ms.erase(epoch_ms.begin());  // the first epoch includes start-up (cuBLAS, allocations)
  std::sort(epoch_ms.begin(), epoch_ms.end());
  const double median = epoch_ms[epoch_ms.size() / 2];
  std::printf("train_mlp dim %u, batch %u, bf16: median epoch %.2f ms (%u steps + full-dataset loss), %.3f ms/step-equivalent;"
              " loss %.5f -> %.5f\n",
              dim, batch, median, steps, median / steps, trained->initial_loss, trained->final_loss);

  auto gemm = cuda->GemmBench({.seed = 1, .n = gemm_n, .iterations = gemm_iterations, .precision = Precision::kBf16, .devices = {0}},
                              nullptr);
  if (!gemm.ok()) {
    std::fprintf(stderr, "gemm_bench: %s\n", std::string(gemm.status().message()).c_str());
    return 1;
  }
  std::printf("gemm_bench bf16 %u^3 x %u: %.1f TFLOP/s (%.3f s)\n", gemm_n, gemm_iterations, gemm->tflops, gemm->seconds);
  return 0;
}
