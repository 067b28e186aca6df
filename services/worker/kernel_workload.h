// The built-in workloads (sleep, train_mlp, gemm_bench, allreduce_bench): the compute backend's
// kernels, run in-process on a thread of their own. A cancel stops a kernel within one step (a
// mini-batch, a product); a wait for a spread job's communicator ends when its CommunicatorSource is
// cancelled (JobRunner cancels both). A kernel's error or exception fails the job with its text and
// never the agent.
#pragma once

#include "kernels/compute_backend.h"
#include "services/common/clock.h"
#include "services/worker/rendezvous.h"
#include "services/worker/threaded_workload.h"

namespace tessera::worker {

class KernelWorkload final : public ThreadedWorkload {
 public:
  KernelWorkload(v1::Assignment assignment, kernels::ComputeBackend& backend, const Clock& clock, CommunicatorSource& communicators);
  ~KernelWorkload() override { StopAndJoin(); }

 private:
  absl::StatusOr<v1::JobResult> Run() override;
  absl::StatusOr<v1::JobResult> RunSleep(const v1::SleepParams& p);
  absl::StatusOr<v1::JobResult> RunTrainMlp(const v1::TrainMlpParams& p);
  absl::StatusOr<v1::JobResult> RunGemmBench(const v1::GemmBenchParams& p);
  absl::StatusOr<v1::JobResult> RunAllReduceBench(const v1::AllReduceBenchParams& p);
  std::vector<uint32_t> Devices() const;  // the assignment's GPU indexes

  const v1::Assignment assignment_;
  kernels::ComputeBackend& backend_;
  const Clock& clock_;
  CommunicatorSource& communicators_;
};

}  // namespace tessera::worker
