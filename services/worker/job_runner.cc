#include "services/worker/job_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace tessera::worker {

std::vector<std::string> JobKindsOn(const kernels::ComputeBackend& backend) {
  std::vector<std::string> kinds = {"sleep", "train_mlp", "gemm_bench"};
  if (backend.HasCollectives()) kinds.push_back("allreduce_bench");
  return kinds;
}

JobRunner::JobRunner(v1::Assignment assignment, JobReporter& reporter, kernels::ComputeBackend& backend, const Clock& clock,
                     RunnerOptions options)
    : assignment_(std::move(assignment)),
      reporter_(reporter),
      backend_(backend),
      clock_(clock),
      options_(options),
      max_duration_ms_(assignment_.spec().max_duration_ms()) {
  started_ms_ = metered_until_ms_ = clock_.NowMs();
  SampleGpus(started_ms_);  // the energy counters' starting point
  meter_thread_ = std::thread([this] { Meter(); });
}

JobRunner::~JobRunner() {
  Cancel("agent shutting down");
  meter_thread_.join();
}

void JobRunner::Cancel(const std::string& reason) {
  {
    std::lock_guard lock(mu_);
    if (cancel_reason_.empty()) cancel_reason_ = reason;
  }
  cancel_ = true;
}

void JobRunner::ReportUsage(int64_t until_ms) {
  if (until_ms < metered_until_ms_) return;
  v1::WorkerMessage m;
  v1::UsageReport* usage = m.mutable_usage();
  usage->set_job_id(assignment_.job_id());
  usage->set_attempt(assignment_.attempt());
  usage->set_seq(++seq_);
  usage->set_gpu_ms((until_ms - metered_until_ms_) * assignment_.gpu_indexes_size());
  usage->set_measured_at_ms(until_ms);
  if (metering_.samples > 0) {
    usage->set_avg_gpu_utilization_ppm(static_cast<uint32_t>(metering_.utilization_sum_pct * 10'000 / metering_.samples));
    usage->set_peak_gpu_memory_mib(metering_.peak_memory_mib);
    usage->set_energy_mj(metering_.energy_mj);
  }
  metering_.utilization_sum_pct = metering_.samples = metering_.peak_memory_mib = metering_.energy_mj = 0;
  metered_until_ms_ = until_ms;
  reporter_.Send(std::move(m));
}

void JobRunner::SampleGpus(int64_t now_ms) {
  if (options_.sampler == nullptr) return;
  const auto& gpus = assignment_.gpu_indexes();
  metering_.last_energy_mj.resize(static_cast<size_t>(gpus.size()));
  const int64_t elapsed_ms = metering_.last_sample_ms == 0 ? 0 : now_ms - metering_.last_sample_ms;
  metering_.last_sample_ms = now_ms;
  for (int i = 0; i < gpus.size(); ++i) {
    std::optional<GpuSample> s = options_.sampler->Sample(gpus[i]);
    if (!s) continue;
    metering_.utilization_sum_pct += s->utilization_pct;
    metering_.samples += 1;
    metering_.peak_memory_mib = std::max(metering_.peak_memory_mib, s->memory_used_mib);
    std::optional<uint64_t>& last = metering_.last_energy_mj[static_cast<size_t>(i)];
    if (s->energy_mj && last && *s->energy_mj >= *last) {
      metering_.energy_mj += *s->energy_mj - *last;
    } else if (!s->energy_mj && elapsed_ms > 0) {
      metering_.energy_mj += s->power_mw * static_cast<uint64_t>(elapsed_ms) / 1'000;  // mW × ms = µJ
    }
    last = s->energy_mj;
  }
}

void JobRunner::Meter() {
  v1::WorkerMessage started;
  started.mutable_started()->set_job_id(assignment_.job_id());
  started.mutable_started()->set_attempt(assignment_.attempt());
  reporter_.Send(std::move(started));

  std::thread work([this] {
    Work();
    {
      std::lock_guard lock(mu_);
      work_done_flag_ = true;
    }
    work_done_.notify_all();
  });
  const auto deadline_ms = [this] { return started_ms_ + max_duration_ms_.load(); };
  bool timed_out = false;
  while (true) {
    bool done;
    {
      std::unique_lock lock(mu_);
      work_done_.wait_for(lock, std::chrono::milliseconds(options_.usage_interval_ms), [&] { return work_done_flag_; });
      done = work_done_flag_;
    }
    const int64_t now_ms = clock_.NowMs();
    if (!done && now_ms >= deadline_ms() && !timed_out) {
      timed_out = true;  // stop the kernel; usage is billed up to the limit only
      cancel_ = true;
    }
    if (done) break;
    SampleGpus(now_ms);
    ReportUsage(std::min(now_ms, deadline_ms()));
  }
  work.join();
  const int64_t end_ms = clock_.NowMs();
  SampleGpus(end_ms);
  ReportUsage(std::min(end_ms, deadline_ms()));

  v1::WorkerMessage finished;
  {
    std::lock_guard lock(mu_);
    *finished.mutable_finished() = outcome_;
    if (timed_out) {
      finished.mutable_finished()->set_succeeded(false);
      finished.mutable_finished()->mutable_result()->set_error(
          absl::StrCat("stopped: the escrow is exhausted at max_duration_ms ", max_duration_ms_.load(),
                       " (ExtendJob before the limit keeps a job running)"));
    } else if (cancel_ && !cancel_reason_.empty() && !outcome_.succeeded()) {
      finished.mutable_finished()->mutable_result()->set_error("cancelled: " + cancel_reason_);
    }
  }
  finished.mutable_finished()->set_job_id(assignment_.job_id());
  finished.mutable_finished()->set_attempt(assignment_.attempt());
  finished.mutable_finished()->set_last_usage_seq(seq_);
  reporter_.Send(std::move(finished));
  finished_ = true;
}

void JobRunner::Work() {
  try {
    if (assignment_.spec().kind() == "sleep") {
      RunSleep();
    } else if (assignment_.spec().kind() == "train_mlp") {
      RunTrainMlp();
    } else if (assignment_.spec().kind() == "gemm_bench") {
      RunGemmBench();
    } else if (assignment_.spec().kind() == "allreduce_bench") {
      RunAllReduceBench();
    } else {
      std::lock_guard lock(mu_);
      outcome_.mutable_result()->set_error("unknown job kind '" + assignment_.spec().kind() + "'");
    }
  } catch (const std::exception& e) {
    std::lock_guard lock(mu_);
    outcome_.set_succeeded(false);
    outcome_.mutable_result()->set_error(std::string("kernel error: ") + e.what());
  }
}

void JobRunner::RunSleep() {
  const int64_t duration_ms = assignment_.spec().sleep().duration_ms();
  const int64_t end_ms = started_ms_ + duration_ms;
  int64_t last_progress_ms = started_ms_;
  while (!cancel_) {
    const int64_t now_ms = clock_.NowMs();
    if (now_ms >= end_ms) break;
    if (now_ms - last_progress_ms >= options_.usage_interval_ms) {
      last_progress_ms = now_ms;
      v1::WorkerMessage m;
      m.mutable_progress()->set_job_id(assignment_.job_id());
      m.mutable_progress()->set_attempt(assignment_.attempt());
      m.mutable_progress()->set_progress_ppm(static_cast<uint32_t>((now_ms - started_ms_) * 1'000'000 / std::max<int64_t>(1, duration_ms)));
      reporter_.Send(std::move(m));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(std::min<int64_t>(10, end_ms - now_ms)));
  }
  std::lock_guard lock(mu_);
  outcome_.set_succeeded(!cancel_);
}

void JobRunner::OnRendezvous(const v1::Rendezvous& rendezvous) {
  {
    std::lock_guard lock(mu_);
    rendezvous_ = rendezvous;
  }
  work_done_.notify_all();
}

absl::StatusOr<std::optional<kernels::Communicator>> JobRunner::JoinCommunicator() {
  if (assignment_.node_worker_ids_size() <= 1) return std::nullopt;
  if (assignment_.node_rank() == 0) {
    const std::string id = backend_.NewCommunicatorId();
    if (id.empty()) return absl::InternalError("could not create a communicator id");
    v1::WorkerMessage offer;
    offer.mutable_rendezvous_offer()->set_job_id(assignment_.job_id());
    offer.mutable_rendezvous_offer()->set_attempt(assignment_.attempt());
    offer.mutable_rendezvous_offer()->set_unique_id(id);
    reporter_.Send(std::move(offer));
    return kernels::Communicator{.unique_id = id, .first_rank = 0, .world_size = assignment_.spec().gpu_count()};
  }
  std::unique_lock lock(mu_);
  const bool arrived = work_done_.wait_for(lock, std::chrono::milliseconds(options_.rendezvous_timeout_ms),
                                           [&] { return rendezvous_.has_value() || cancel_.load(); });
  if (cancel_) return absl::CancelledError("cancelled while waiting for the rendezvous");
  if (!arrived) {
    return absl::DeadlineExceededError(absl::StrCat("no rendezvous from node rank 0 within ", options_.rendezvous_timeout_ms, " ms"));
  }
  kernels::Communicator c{.unique_id = rendezvous_->unique_id(), .first_rank = 0, .world_size = 0};
  for (int node = 0; node < rendezvous_->node_gpu_counts_size(); ++node) {
    if (node < static_cast<int>(assignment_.node_rank())) c.first_rank += rendezvous_->node_gpu_counts(node);
    c.world_size += rendezvous_->node_gpu_counts(node);
  }
  return c;
}

void JobRunner::RunTrainMlp() {
  absl::StatusOr<std::optional<kernels::Communicator>> communicator = JoinCommunicator();
  if (!communicator.ok()) {
    std::lock_guard lock(mu_);
    RecordOutcome(communicator.status());
    return;
  }
  const v1::TrainMlpParams& p = assignment_.spec().train_mlp();
  const kernels::MlpConfig config{.seed = p.seed(), .input_dim = p.input_dim(), .hidden_dim = p.hidden_dim(),
                                  .output_dim = p.output_dim(), .samples = p.samples(), .batch_size = p.batch_size(),
                                  .epochs = p.epochs(), .learning_rate = static_cast<float>(p.learning_rate_micros()) / 1e6f,
                                  .precision = PrecisionOf(p.precision()), .devices = Devices(),
                                  .communicator = *std::move(communicator)};
  absl::StatusOr<kernels::TrainResult> result = backend_.TrainMlp(
      config,
      [this](const kernels::EpochReport& epoch) {
        v1::WorkerMessage m;
        m.mutable_progress()->set_job_id(assignment_.job_id());
        m.mutable_progress()->set_attempt(assignment_.attempt());
        m.mutable_progress()->set_progress_ppm(static_cast<uint32_t>(uint64_t{epoch.epoch} * 1'000'000 / epoch.epochs));
        m.mutable_progress()->set_loss(epoch.loss);
        reporter_.Send(std::move(m));
      },
      &cancel_);
  std::lock_guard lock(mu_);
  v1::JobResult* out = RecordOutcome(result.status());
  if (out == nullptr) return;
  out->set_initial_loss(result->initial_loss);
  out->set_final_loss(result->final_loss);
  out->set_weights_sha256(result->weights_sha256);
}

void JobRunner::RunGemmBench() {
  const v1::GemmBenchParams& p = assignment_.spec().gemm_bench();
  absl::StatusOr<kernels::GemmBenchResult> result = backend_.GemmBench(
      {.seed = static_cast<uint64_t>(assignment_.job_id()), .n = p.n(), .iterations = p.iterations(), .precision = PrecisionOf(p.precision()),
       .devices = Devices()},
      &cancel_);
  std::lock_guard lock(mu_);
  v1::JobResult* out = RecordOutcome(result.status());
  if (out == nullptr) return;
  out->set_achieved_tflops(result->tflops);
  out->set_timed_seconds(result->seconds);
  out->set_checksum(result->checksum);
  out->set_backend(std::string(backend_.Name()));
}

void JobRunner::RunAllReduceBench() {
  const v1::AllReduceBenchParams& p = assignment_.spec().allreduce_bench();
  absl::StatusOr<kernels::AllReduceBenchResult> result =
      backend_.AllReduceBench({.megabytes = p.megabytes(), .iterations = p.iterations(), .devices = Devices()}, &cancel_);
  std::lock_guard lock(mu_);
  v1::JobResult* out = RecordOutcome(result.status());
  if (out == nullptr) return;
  out->set_algorithm_gbps(result->algorithm_gbps);
  out->set_bus_gbps(result->bus_gbps);
  out->set_timed_seconds(result->seconds);
  out->set_backend(std::string(backend_.Name()));
}

v1::JobResult* JobRunner::RecordOutcome(const absl::Status& status) {
  outcome_.set_succeeded(status.ok());
  if (!status.ok()) {
    outcome_.mutable_result()->set_error(std::string(status.message()));
    return nullptr;
  }
  return outcome_.mutable_result();
}

std::vector<uint32_t> JobRunner::Devices() const {
  return {assignment_.gpu_indexes().begin(), assignment_.gpu_indexes().end()};
}

kernels::Precision JobRunner::PrecisionOf(const std::string& precision) {
  return precision == "bf16" ? kernels::Precision::kBf16 : kernels::Precision::kFp32;
}

}  // namespace tessera::worker
