// A `container` job on a worker (issue 18): the customer's program in the sandbox. Its code and
// inputs are fetched under the job's lease (digest-checked) into the attempt's directory, mounted
// read-only at /job/code and /job/inputs; /job/outputs is packed and stored as an OUTPUTS artifact
// of the job's account when the program exits 0. Progress comes from JSON lines the program writes
// to $TESSERA_PROGRESS_FILE ({"progress": 0.42, "loss": 1.7}). Its stdout and stderr go, line by
// line, to the job's log on the server (JobOutput, JobLogShipper); the last lines are sent before the
// result. /job/checkpoints is saved every checkpoint_interval_s and when the program is stopped
// (CheckpointSaver: only what the program committed by a rename), and a requeued attempt starts
// with the newest save restored there ($TESSERA_RESTORED_CHECKPOINT names it). The program's own
// failure (an exit code, a signal, its memory limit) is the job's FAILED result with the last lines
// of its output.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <filesystem>
#include <optional>

#include "services/common/clock.h"
#include "services/worker/artifact_transfer.h"
#include "services/worker/job_log_shipper.h"
#include "services/worker/sandbox/sandbox.h"
#include "services/worker/threaded_workload.h"

namespace tessera::worker {

// What the agent lends every container job.
struct ContainerHost {
  Sandbox* sandbox = nullptr;      // the process sandbox: jobs without an image
  Sandbox* images = nullptr;       // the OCI runtime: jobs that name an image; null: none offered
  ArtifactTransfer* artifacts = nullptr;
  JobLogSink* logs = nullptr;      // where each attempt's output lines go; null: only the error's tail keeps them
  const Clock* clock = nullptr;    // stamps the output lines
  std::filesystem::path jobs_dir;  // each attempt's directory lives here while it runs
  uid_t uid = 65534;               // the unprivileged user jobs run as
  gid_t gid = 65534;
  int64_t worker_id = 0;
  // A job that sets no limit gets this much per GPU it holds.
  int64_t memory_mib_per_gpu = 8'192;
  int64_t cpu_millicores_per_gpu = 2'000;
  int64_t max_pids = 4'096;
  bool network_allowed = false;  // the provider lets jobs that ask for it reach the network
  int64_t max_outputs_bytes = int64_t{10} << 30;  // /job/outputs beyond it fails the job (the server's limit)
  std::chrono::milliseconds stop_grace{10'000};
};

class ContainerWorkload final : public ThreadedWorkload {
 public:
  ContainerWorkload(v1::Assignment assignment, const ContainerHost& host) : assignment_(std::move(assignment)), host_(host) {}
  ~ContainerWorkload() override { StopAndJoin(); }

 private:
  absl::StatusOr<v1::JobResult> Run() override;
  absl::Status Fetch(const std::filesystem::path& dir, const v1::JobLease& lease);
  // The job's newest checkpoint unpacked into the attempt's checkpoints directory, if it has one.
  absl::StatusOr<std::optional<v1::JobCheckpoint>> Restore(const std::filesystem::path& dir, const v1::JobLease& lease);
  SandboxSpec SpecFor(const std::filesystem::path& dir, const std::optional<v1::JobCheckpoint>& restored) const;
  void ReadProgress(const std::filesystem::path& file);

  const v1::Assignment assignment_;
  const ContainerHost host_;
};

}  // namespace tessera::worker
