#include "services/worker/kernel_workload.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera::worker {
namespace {

kernels::Precision PrecisionOf(const std::string& precision) {
  return precision == "bf16" ? kernels::Precision::kBf16 : kernels::Precision::kFp32;
}

}  // namespace

KernelWorkload::KernelWorkload(v1::Assignment assignment, kernels::ComputeBackend& backend, const Clock& clock,
                               CommunicatorSource& communicators)
    : assignment_(std::move(assignment)), backend_(backend), clock_(clock), communicators_(communicators) {}

absl::StatusOr<v1::JobResult> KernelWorkload::Run() {
  const v1::JobSpec& spec = assignment_.spec();
  switch (spec.workload_case()) {
    case v1::JobSpec::kSleep: return RunSleep(spec.sleep());
    case v1::JobSpec::kTrainMlp: return RunTrainMlp(spec.train_mlp());
    case v1::JobSpec::kGemmBench: return RunGemmBench(spec.gemm_bench());
    case v1::JobSpec::kAllreduceBench: return RunAllReduceBench(spec.allreduce_bench());
    case v1::JobSpec::kContainer: return absl::UnimplementedError("a container job is no built-in kernel");
    case v1::JobSpec::WORKLOAD_NOT_SET: break;
  }
  return absl::InvalidArgumentError("the spec names no workload");
}

absl::StatusOr<v1::JobResult> KernelWorkload::RunSleep(const v1::SleepParams& p) {
  const int64_t started_ms = clock_.NowMs();
  const int64_t end_ms = started_ms + p.duration_ms();
  while (!cancelled()) {
    const int64_t now_ms = clock_.NowMs();
    if (now_ms >= end_ms) return v1::JobResult();
    SetProgress({.progress_ppm = static_cast<uint32_t>((now_ms - started_ms) * 1'000'000 / std::max<int64_t>(1, p.duration_ms())),
                 .loss = std::nullopt});
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(10, end_ms - now_ms)));
  }
  return absl::CancelledError("cancelled");
}

absl::StatusOr<v1::JobResult> KernelWorkload::RunTrainMlp(const v1::TrainMlpParams& p) {
  absl::StatusOr<std::optional<kernels::Communicator>> communicator = communicators_.Join();
  if (!communicator.ok()) return communicator.status();
  const kernels::MlpConfig config{.seed = p.seed(), .input_dim = p.input_dim(), .hidden_dim = p.hidden_dim(),
                                  .output_dim = p.output_dim(), .samples = p.samples(), .batch_size = p.batch_size(),
                                  .epochs = p.epochs(), .learning_rate = static_cast<float>(p.learning_rate_micros()) / 1e6f,
                                  .precision = PrecisionOf(p.precision()), .devices = Devices(),
                                  .communicator = *std::move(communicator)};
  absl::StatusOr<kernels::TrainResult> trained = backend_.TrainMlp(
      config,
      [this](const kernels::EpochReport& epoch) {
        SetProgress({.progress_ppm = static_cast<uint32_t>(uint64_t{epoch.epoch} * 1'000'000 / epoch.epochs), .loss = epoch.loss});
      },
      &cancel_flag());
  if (!trained.ok()) return trained.status();
  v1::JobResult result;
  result.mutable_train_mlp()->set_initial_loss(trained->initial_loss);
  result.mutable_train_mlp()->set_final_loss(trained->final_loss);
  result.mutable_train_mlp()->set_weights_sha256(trained->weights_sha256);
  return result;
}

absl::StatusOr<v1::JobResult> KernelWorkload::RunGemmBench(const v1::GemmBenchParams& p) {
  absl::StatusOr<kernels::GemmBenchResult> measured = backend_.GemmBench(
      {.seed = static_cast<uint64_t>(assignment_.job_id()), .n = p.n(), .iterations = p.iterations(),
       .precision = PrecisionOf(p.precision()), .devices = Devices()},
      &cancel_flag());
  if (!measured.ok()) return measured.status();
  v1::JobResult result;
  v1::GemmBenchResult* out = result.mutable_gemm_bench();
  out->set_achieved_tflops(measured->tflops);
  out->set_timed_seconds(measured->seconds);
  out->set_checksum(measured->checksum);
  out->set_backend(std::string(backend_.Name()));
  return result;
}

absl::StatusOr<v1::JobResult> KernelWorkload::RunAllReduceBench(const v1::AllReduceBenchParams& p) {
  absl::StatusOr<kernels::AllReduceBenchResult> measured =
      backend_.AllReduceBench({.megabytes = p.megabytes(), .iterations = p.iterations(), .devices = Devices()}, &cancel_flag());
  if (!measured.ok()) return measured.status();
  v1::JobResult result;
  v1::AllReduceBenchResult* out = result.mutable_allreduce_bench();
  out->set_algorithm_gbps(measured->algorithm_gbps);
  out->set_bus_gbps(measured->bus_gbps);
  out->set_timed_seconds(measured->seconds);
  out->set_backend(std::string(backend_.Name()));
  return result;
}

std::vector<uint32_t> KernelWorkload::Devices() const {
  return {assignment_.gpu_indexes().begin(), assignment_.gpu_indexes().end()};
}

}  // namespace tessera::worker
