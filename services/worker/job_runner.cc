#include "services/worker/job_runner.h"

#include <algorithm>
#include <chrono>

#include "absl/strings/str_cat.h"

namespace tessera::worker {

JobRunner::JobRunner(v1::Assignment assignment, JobReporter& reporter, kernels::ComputeBackend& backend, const Clock& clock,
                     RunnerOptions options)
    : assignment_(std::move(assignment)),
      reporter_(reporter),
      clock_(clock),
      options_(options),
      rendezvous_(assignment_, reporter_, backend, options_.rendezvous_timeout_ms),
      max_duration_ms_(assignment_.spec().max_duration_ms()) {
  absl::StatusOr<std::unique_ptr<Workload>> workload =
      MakeWorkload(assignment_, {.backend = backend, .clock = clock_, .communicators = rendezvous_, .containers = options_.containers});
  if (workload.ok()) {
    workload_ = *std::move(workload);
  } else {
    workload_error_ = workload.status();
  }
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
  rendezvous_.Cancel();
  if (workload_) workload_->Cancel();
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
  if (workload_) {
    // The host's share: CPU time since the last report, and the attempt's peak memory so far.
    const WorkloadProgress used = workload_->Progress();
    usage->set_cpu_ms(std::max<int64_t>(0, used.cpu_ms - metering_.reported_cpu_ms));
    usage->set_peak_memory_mib(static_cast<uint64_t>(std::max<int64_t>(0, used.peak_memory_mib)));
    metering_.reported_cpu_ms = std::max(metering_.reported_cpu_ms, used.cpu_ms);
  }
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

void JobRunner::ReportProgress() {
  const WorkloadProgress progress = workload_->Progress();
  if (progress == reported_progress_) return;
  reported_progress_ = progress;
  v1::WorkerMessage m;
  m.mutable_progress()->set_job_id(assignment_.job_id());
  m.mutable_progress()->set_attempt(assignment_.attempt());
  m.mutable_progress()->set_progress_ppm(progress.progress_ppm);
  if (progress.loss) m.mutable_progress()->set_loss(*progress.loss);
  reporter_.Send(std::move(m));
}

void JobRunner::Meter() {
  v1::WorkerMessage started;
  started.mutable_started()->set_job_id(assignment_.job_id());
  started.mutable_started()->set_attempt(assignment_.attempt());
  reporter_.Send(std::move(started));
  if (!workload_) {
    ReportUsage(clock_.NowMs());  // every run ends with a final report, however short
    reporter_.Send(Finished(workload_error_, false));
    finished_ = true;
    return;
  }

  workload_->Start();
  const auto deadline_ms = [this] { return started_ms_ + max_duration_ms_.load(); };
  bool timed_out = false;
  while (!workload_->Wait(std::chrono::milliseconds(options_.usage_interval_ms))) {
    const int64_t now_ms = clock_.NowMs();
    if (now_ms >= deadline_ms() && !timed_out) {
      timed_out = true;  // stop the workload; usage is billed up to the limit only
      cancel_ = true;
      rendezvous_.Cancel();
      workload_->Cancel();
    }
    SampleGpus(now_ms);
    ReportUsage(std::min(now_ms, deadline_ms()));
    ReportProgress();
  }
  ReportProgress();  // where it ended: the last epoch's loss
  const int64_t end_ms = clock_.NowMs();
  SampleGpus(end_ms);
  ReportUsage(std::min(end_ms, deadline_ms()));
  reporter_.Send(Finished(workload_->Outputs(), timed_out));
  finished_ = true;
}

v1::WorkerMessage JobRunner::Finished(const absl::StatusOr<v1::JobResult>& outputs, bool timed_out) {
  v1::WorkerMessage m;
  v1::JobFinished* finished = m.mutable_finished();
  finished->set_job_id(assignment_.job_id());
  finished->set_attempt(assignment_.attempt());
  finished->set_last_usage_seq(seq_);
  if (timed_out) {
    finished->mutable_result()->set_error(absl::StrCat("stopped: the escrow is exhausted at max_duration_ms ", max_duration_ms_.load(),
                                                       " (ExtendJob before the limit keeps a job running)"));
    return m;
  }
  if (outputs.ok()) {
    finished->set_succeeded(true);
    *finished->mutable_result() = *outputs;
    return m;
  }
  std::lock_guard lock(mu_);
  finished->mutable_result()->set_error(cancel_ && !cancel_reason_.empty() ? "cancelled: " + cancel_reason_
                                                                           : std::string(outputs.status().message()));
  return m;
}

}  // namespace tessera::worker
