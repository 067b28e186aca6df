// The agent's side of proof of GPU (workers.proto, "Proof of GPU"): computes each challenged GPU's
// product on the compute backend (all GPUs in parallel, their contexts made at start), commits to
// it with a signed Merkle root and the measured time, then opens the rows the server picks. It works
// on its own thread, so that the stream goes on reading and heartbeating while the products are
// computed; a reconnect drops what it holds (the server abandons a challenge whose stream closed
// and issues a new one).
//
//   ChallengeResponder responder(backend, key, worker_id, [&](const v1::WorkerMessage& m) { write(m); });
//   responder.OnChallenge(message.challenge());   // then OnOpenRows(message.open_rows())
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "kernels/compute_backend.h"
#include "services/common/gpu_challenge_proof.h"
#include "services/common/worker_signing.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

class ChallengeResponder {
 public:
  using Sender = std::function<void(const v1::WorkerMessage&)>;
  // `devices`: the GPU indexes this worker offers, warmed at once (not the machine's other GPUs).
  ChallengeResponder(kernels::ComputeBackend& backend, const WorkerKeyPair& key, int64_t worker_id, std::vector<uint32_t> devices,
                     Sender send);
  ~ChallengeResponder();

  void OnChallenge(const v1::Challenge& challenge);
  void OnOpenRows(const v1::OpenRows& open);
  // The stream closed: the challenge in hand is void.
  void Reset();

 private:
  void Loop();
  std::vector<absl::StatusOr<kernels::ChallengeRun>> RunAll(const v1::Challenge& challenge);
  void Answer(const v1::Challenge& challenge, uint64_t generation);
  void Open(const v1::OpenRows& open, uint64_t generation);

  kernels::ComputeBackend& backend_;
  const WorkerKeyPair& key_;
  const int64_t worker_id_;
  const Sender send_;

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_ ABSL_GUARDED_BY(mu_);
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  std::atomic<uint64_t> generation_{0};  // bumped by Reset: tasks of an older stream send nothing
  std::thread thread_;

  // Loop thread only: the committed products of the challenge in hand.
  int64_t challenge_id_ = 0;
  std::map<uint32_t, CommittedProduct> committed_;
};

}  // namespace tessera::worker
