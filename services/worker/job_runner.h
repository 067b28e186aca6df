// Runs one assignment on a worker: the kernel on its own thread, metering on another. Usage is
// reported every `usage_interval_ms` as GPU-milliseconds held since the previous report (wall time
// × GPUs held), with per-attempt sequence numbers from 1; then one final report and the result.
// With a GpuSampler each report also carries the GPUs' mean utilization, peak memory and the
// energy they drew (NVML's counter, or power × time where a device has none).
// A cancel stops the kernel within one mini-batch; a job past max_duration (as extended) is stopped
// and billed to its limit; a kernel error fails the job with its text and never crashes the agent.
#pragma once

#include <atomic>
#include <condition_variable>
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
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// Where a runner's messages go (the agent's stream and outbox).
class JobReporter {
 public:
  virtual ~JobReporter() = default;
  virtual void Send(v1::WorkerMessage message) = 0;
};

struct RunnerOptions {
  int64_t usage_interval_ms = 1'000;
  // Reads the job's GPUs once per usage interval (utilization, memory, energy); null: not metered
  // beyond GPU-ms (CPU devices, no NVML).
  GpuSampler* sampler = nullptr;
  // How long a node of a multi-worker job waits for node rank 0's communicator id.
  int64_t rendezvous_timeout_ms = 60'000;
};

// The job kinds (JobSpec.kind) a runner on `backend` can run: what the agent's hello offers, so
// that the scheduler never leases this machine a job it would fail.
std::vector<std::string> JobKindsOn(const kernels::ComputeBackend& backend);

class JobRunner {
 public:
  JobRunner(v1::Assignment assignment, JobReporter& reporter, kernels::ComputeBackend& backend, const Clock& clock,
            RunnerOptions options);
  ~JobRunner();

  void Cancel(const std::string& reason);
  // The customer extended the job (ExtendJob): it may run until `max_duration_ms` after its start.
  void Extend(int64_t max_duration_ms) { max_duration_ms_ = max_duration_ms; }
  // The communicator id of a job over several workers arrived from the scheduler (node rank > 0).
  void OnRendezvous(const v1::Rendezvous& rendezvous);
  bool finished() const { return finished_.load(); }
  bool cancelled() const { return cancel_.load(); }
  const v1::Assignment& assignment() const { return assignment_; }

 private:
  void Meter();
  void Work();
  void RunSleep();
  void RunTrainMlp();
  void RunGemmBench();
  void RunAllReduceBench();
  // A job over several workers: node rank 0 creates and offers the communicator id, the others
  // wait for it (until cancelled or `rendezvous_timeout_ms`). Null for a job on one worker.
  absl::StatusOr<std::optional<kernels::Communicator>> JoinCommunicator();
  std::vector<uint32_t> Devices() const;  // the assignment's GPU indexes
  // The kernel's outcome (mu_ held): its error, or success and the result to fill in.
  v1::JobResult* RecordOutcome(const absl::Status& status);
  static kernels::Precision PrecisionOf(const std::string& precision);
  void ReportUsage(int64_t now_ms);
  void SampleGpus(int64_t now_ms);

  const v1::Assignment assignment_;
  JobReporter& reporter_;
  kernels::ComputeBackend& backend_;
  const Clock& clock_;
  const RunnerOptions options_;

  std::atomic<bool> cancel_{false};
  std::atomic<int64_t> max_duration_ms_;
  std::atomic<bool> finished_{false};
  std::mutex mu_;
  std::condition_variable work_done_;
  bool work_done_flag_ = false;
  std::string cancel_reason_;
  v1::JobFinished outcome_;
  std::optional<v1::Rendezvous> rendezvous_;  // guarded by mu_, signalled on work_done_

  int64_t started_ms_ = 0;
  int64_t metered_until_ms_ = 0;  // meter thread only
  uint64_t seq_ = 0;              // meter thread only
  // What the sampler saw since the last report (meter thread only).
  struct Metering {
    uint64_t utilization_sum_pct = 0, samples = 0;
    uint64_t peak_memory_mib = 0;
    uint64_t energy_mj = 0;
    std::vector<std::optional<uint64_t>> last_energy_mj;  // per GPU: the counter at the last sample
    int64_t last_sample_ms = 0;
  } metering_;
  std::thread meter_thread_;
};

}  // namespace tessera::worker
