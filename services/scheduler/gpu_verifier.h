// Proof of GPU on the server (protocol: workers.proto, "Proof of GPU"): issues challenges down
// worker streams, checks the signed commitments and openings, and records the verdict
// (ChallengeRepository). Its own thread does the checking — recomputing the opened rows costs
// O(k·n²) per GPU — so the ingest thread only hands messages over.
//
// Timing is held to the claimed model two ways. The time the worker reports for each product must
// fit the model's range (kInt8Throughput): too slow is not that GPU, too fast is impossible. And the
// server's own clock bounds what a worker could have done: the commitment must arrive within
// `overhead_ms` plus the slowest the claimed GPUs may take, and no GPU may report more compute
// time than the whole round trip took.
//
//   GpuVerifier verifier(challenges, clock, random, options, [](int64_t worker, v1::WorkerState s) { … open it … });
//   verifier.Start();
//   verifier.Challenge(session, ChallengeReason::kRegistration);   // after the Welcome
//   verifier.OnCommit(session, message.challenge_commit());         // from the ingest thread
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "services/common/clock.h"
#include "services/common/random_source.h"
#include "services/scheduler/challenge_repository.h"
#include "services/scheduler/worker_session.h"

namespace tessera::scheduler_host {

struct VerifierOptions {
  // Off: workers are ACTIVE from their first hello, as on a private fleet that trusts its machines.
  bool enabled = true;
  // 0: each model's size (kInt8Throughput); otherwise this n for every GPU.
  uint32_t challenge_n = 0;
  uint32_t rows_per_gpu = 8;
  // Beyond the slowest compute the claimed GPUs may take: deriving the operands, hashing, the network.
  int64_t overhead_ms = 5'000;
  // Mean time between random re-checks of an idle ACTIVE worker (exponentially distributed); 0: never.
  int64_t recheck_mean_interval_ms = 6 * 3'600'000;
};

class GpuVerifier {
 public:
  // `on_pass` runs on the verifier's thread after a pass is stored, with the worker's new state.
  // `random` picks the rows a worker must open: the CSPRNG in production, so it cannot guess them.
  GpuVerifier(ChallengeStore& challenges, const Clock& clock, RandomSource& random, VerifierOptions options,
              std::function<void(int64_t worker_id, v1::WorkerState state)> on_pass);
  ~GpuVerifier();

  // A new leadership term: challenges an earlier term left open are abandoned.
  absl::Status Start();
  void Stop();
  const VerifierOptions& options() const { return options_; }

  void Challenge(std::shared_ptr<WorkerSession> session, ChallengeReason reason);
  void OnCommit(std::shared_ptr<WorkerSession> session, v1::ChallengeCommit commit);
  void OnOpening(std::shared_ptr<WorkerSession> session, v1::ChallengeOpening opening);
  void OnClosed(std::shared_ptr<WorkerSession> session);

 private:
  struct Open {
    std::shared_ptr<WorkerSession> session;
    ChallengeState state;
    bool committed = false;
    int64_t sent_at_ms = 0;
    int64_t deadline_ms = 0;
    size_t opened_gpus = 0;
    std::vector<bool> opened;  // per entry of state.gpus
  };

  void Post(std::function<void()> task);
  void Loop();
  // The tasks, on the loop thread.
  void Issue(const std::shared_ptr<WorkerSession>& session, ChallengeReason reason);
  void Commit(const std::shared_ptr<WorkerSession>& session, const v1::ChallengeCommit& commit);
  void Opening(const std::shared_ptr<WorkerSession>& session, const v1::ChallengeOpening& opening);
  void Closed(const std::shared_ptr<WorkerSession>& session);
  void ExpireDeadlines();
  // The worker's open challenge answered by `session` with `challenge_id`; null otherwise.
  Open* Find(const std::shared_ptr<WorkerSession>& session, int64_t challenge_id);
  void FailChallenge(Open& open, const std::string& detail);
  void PassChallenge(Open& open);

  ChallengeStore& repo_;
  const Clock& clock_;
  RandomSource& random_;
  const VerifierOptions options_;
  const std::function<void(int64_t, v1::WorkerState)> on_pass_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;

  std::map<int64_t, Open> open_;  // by worker id; loop thread only
};

}  // namespace tessera::scheduler_host
