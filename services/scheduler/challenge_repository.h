// Proof-of-GPU challenges in PostgreSQL (migration 0017): issuing one, the worker's commitment, and
// the verdict, each with the worker's state change and its audit row in the same transaction.
// GpuVerifier drives them; the protocol is in workers.proto ("Proof of GPU").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/gpu_challenge.h"
#include "services/store/database.h"
#include "tessera/v1/admin.pb.h"

namespace tessera::scheduler_host {

enum class ChallengeReason { kRegistration, kRecheck };

struct ChallengedGpuState {
  uint32_t index = 0;
  std::string model;
  kernels::ChallengeSpec spec;
  std::string root;  // 32 bytes once committed
  uint64_t elapsed_us = 0;
  std::vector<uint32_t> rows;  // picked for opening
};

// A challenge as the verifier holds it while the worker answers.
struct ChallengeState {
  int64_t challenge_id = 0;
  int64_t worker_id = 0;
  ChallengeReason reason = ChallengeReason::kRegistration;
  std::vector<ChallengedGpuState> gpus;  // in index order
  std::string commit_signature;
  int64_t observed_ms = 0;  // the server's clock, challenge sent → commitment received
};

class ChallengeRepository {
 public:
  explicit ChallengeRepository(store::Database& db) : db_(db) {}

  // Records a new challenge of every GPU of the worker, with fresh random seeds and n by model
  // (kInt8Throughput), or `n_override` when non-zero. A RECHECK is only of an ACTIVE worker, which
  // becomes PENDING_VERIFICATION in the same transaction (FAILED_PRECONDITION otherwise).
  absl::StatusOr<ChallengeState> Issue(int64_t worker_id, ChallengeReason reason, uint32_t n_override);
  absl::Status RecordCommit(const ChallengeState& state);
  // A pass: the worker is verified now and, if PENDING_VERIFICATION, ACTIVE. Returns its state.
  absl::StatusOr<v1::WorkerState> Pass(const ChallengeState& state, const std::string& detail);
  // A failure: the worker is QUARANTINED with a CHALLENGE_FAILED signal whose evidence is `detail`;
  // NOTIFY tessera_quarantine makes the scheduler close its stream.
  absl::Status Fail(const ChallengeState& state, const std::string& detail);
  // Its stream closed first: the worker stays as it is (PENDING_VERIFICATION), to be challenged again.
  absl::Status Abandon(int64_t challenge_id);
  // A new leadership term: the challenges an earlier term left open are abandoned.
  absl::Status AbandonOpen();

 private:
  store::Database& db_;
};

// The worker's latest `limit` challenges, newest first (the admin's trust view).
std::vector<v1::GpuChallengeRecord> LatestChallenges(pqxx::work& tx, int64_t worker_id, int limit);

}  // namespace tessera::scheduler_host
