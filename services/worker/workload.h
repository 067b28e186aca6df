// What a job runs on a worker, behind one interface whatever it is (a built-in kernel today; a
// customer's container next), so that JobRunner around it does only metering, limits and reporting:
//
//   absl::StatusOr<std::unique_ptr<Workload>> w = MakeWorkload(assignment, environment);  // workload_factory.h
//   (*w)->Start();
//   while (!(*w)->Wait(1s)) Report((*w)->Progress());   // Cancel() from any thread stops it
//   absl::StatusOr<v1::JobResult> outputs = (*w)->Outputs();
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>

#include "absl/status/statusor.h"
#include "tessera/v1/jobs.pb.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// How far a workload is: parts per million of its work, and its latest training loss when it has one.
struct WorkloadProgress {
  uint32_t progress_ppm = 0;
  std::optional<float> loss;
  // What its processes have used on the host so far (a container job's cgroup; 0 for a kernel).
  int64_t cpu_ms = 0;
  int64_t peak_memory_mib = 0;
  bool operator==(const WorkloadProgress&) const = default;
};

class Workload {
 public:
  virtual ~Workload() = default;  // an implementation stops its work and waits for it
  // Begins the work and returns at once.
  virtual void Start() = 0;
  // Asks the work to stop; from any thread, any number of times, before or after Start. Wait returns
  // true soon after (a kernel stops within one step).
  virtual void Cancel() = 0;
  // Waits up to `timeout` for the work to end; true once it has.
  virtual bool Wait(std::chrono::milliseconds timeout) = 0;
  virtual WorkloadProgress Progress() const = 0;
  // Once Wait returned true: what the work produced (JobResult.outputs), or why it failed (its
  // error, CANCELLED when it was cancelled).
  virtual absl::StatusOr<v1::JobResult> Outputs() = 0;
};

}  // namespace tessera::worker
