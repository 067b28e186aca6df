// Runs one assignment on a worker: its workload (workload.h) on the workload's own terms, and
// around it what every job gets whatever it runs — metering, the time limit, and reporting.
// Usage is reported every `usage_interval_ms` as GPU-milliseconds held since the previous report
// (wall time × GPUs held), with per-attempt sequence numbers from 1; then one final report and the
// result. With a GpuSampler each report also carries the GPUs' mean utilization, peak memory and the
// energy they drew (NVML's counter, or power × time where a device has none). The workload's
// progress goes out with each report when it moved, and once more where it ended (several epochs
// within one interval are one progress message: the latest).
// A cancel stops the workload; a job past max_duration (as extended) is stopped and billed to its
// limit; a workload's failure fails the job with its text and never crashes the agent.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "kernels/compute_backend.h"
#include "services/common/clock.h"
#include "services/worker/gpu_sampler.h"
#include "services/worker/job_reporter.h"
#include "services/worker/rendezvous.h"
#include "services/worker/workload_factory.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

struct RunnerOptions {
  int64_t usage_interval_ms = 1'000;
  // Reads the job's GPUs once per usage interval (utilization, memory, energy); null: not metered
  // beyond GPU-ms (CPU devices, no NVML).
  GpuSampler* sampler = nullptr;
  // How long a node of a multi-worker job waits for node rank 0's communicator id.
  int64_t rendezvous_timeout_ms = 60'000;
  // What container jobs get (the agent's sandbox); null: the agent runs none.
  const ContainerHost* containers = nullptr;
};

class JobRunner {
 public:
  JobRunner(v1::Assignment assignment, JobReporter& reporter, kernels::ComputeBackend& backend, const Clock& clock,
            RunnerOptions options);
  ~JobRunner();

  void Cancel(const std::string& reason);
  // The customer extended the job (ExtendJob): it may run until `max_duration_ms` after its start.
  void Extend(int64_t max_duration_ms) { max_duration_ms_ = max_duration_ms; }
  // The communicator id of a job over several workers arrived from the scheduler (node rank > 0).
  void OnRendezvous(const v1::Rendezvous& rendezvous) { rendezvous_.Deliver(rendezvous); }
  bool finished() const { return finished_.load(); }
  bool cancelled() const { return cancel_.load(); }
  const v1::Assignment& assignment() const { return assignment_; }

 private:
  void Meter();
  // The JobFinished message for what the workload returned.
  v1::WorkerMessage Finished(const absl::StatusOr<v1::JobResult>& outputs, bool timed_out);
  void ReportUsage(int64_t until_ms);
  void ReportProgress();
  void SampleGpus(int64_t now_ms);

  const v1::Assignment assignment_;
  JobReporter& reporter_;
  const Clock& clock_;
  const RunnerOptions options_;
  JobRendezvous rendezvous_;
  // Null when the assignment names no workload this agent runs (`workload_error_` says why).
  std::unique_ptr<Workload> workload_;
  absl::Status workload_error_;

  std::atomic<bool> cancel_{false};
  std::atomic<int64_t> max_duration_ms_;
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  std::string cancel_reason_;  // guarded by mu_

  int64_t started_ms_ = 0;
  int64_t metered_until_ms_ = 0;  // meter thread only
  uint64_t seq_ = 0;              // meter thread only
  WorkloadProgress reported_progress_;  // meter thread only
  // What the sampler saw since the last report (meter thread only).
  struct Metering {
    uint64_t utilization_sum_pct = 0, samples = 0;
    uint64_t peak_memory_mib = 0;
    uint64_t energy_mj = 0;
    std::vector<std::optional<uint64_t>> last_energy_mj;  // per GPU: the counter at the last sample
    int64_t last_sample_ms = 0;
    int64_t reported_cpu_ms = 0;  // the workload's CPU time already in a report
  } metering_;
  std::thread meter_thread_;
};

}  // namespace tessera::worker
