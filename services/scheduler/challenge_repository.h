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

// What the GPU verifier reads and writes of the store of record: the host passes it in, PostgreSQL
// implements it in the product (ChallengeRepository).
class ChallengeStore {
 public:
  virtual ~ChallengeStore() = default;
  // Records a new challenge of every GPU of the worker, with fresh random seeds and n by model
  // (kInt8Throughput), or `n_override` when non-zero. A RECHECK is only of an ACTIVE worker, which
  // becomes PENDING_VERIFICATION in the same transaction (FAILED_PRECONDITION otherwise).
  virtual absl::StatusOr<ChallengeState> Issue(int64_t worker_id, ChallengeReason reason, uint32_t n_override) = 0;
  virtual absl::Status RecordCommit(const ChallengeState& state) = 0;
  // A pass: the worker is verified now and, if PENDING_VERIFICATION, ACTIVE. Returns its state.
  virtual absl::StatusOr<v1::WorkerState> Pass(const ChallengeState& state, const std::string& detail) = 0;
  // A failure: the worker is QUARANTINED with a CHALLENGE_FAILED signal whose evidence is `detail`;
  // NOTIFY tessera_quarantine makes the scheduler close its stream.
  virtual absl::Status Fail(const ChallengeState& state, const std::string& detail) = 0;
  // Its stream closed first: the worker stays as it is (PENDING_VERIFICATION), to be challenged again.
  virtual absl::Status Abandon(int64_t challenge_id) = 0;
  // A new leadership term: the challenges an earlier term left open are abandoned.
  virtual absl::Status AbandonOpen() = 0;
};

class ChallengeRepository final : public ChallengeStore {
 public:
  explicit ChallengeRepository(store::Database& db) : db_(db) {}

  absl::StatusOr<ChallengeState> Issue(int64_t worker_id, ChallengeReason reason, uint32_t n_override) override;
  absl::Status RecordCommit(const ChallengeState& state) override;
  absl::StatusOr<v1::WorkerState> Pass(const ChallengeState& state, const std::string& detail) override;
  absl::Status Fail(const ChallengeState& state, const std::string& detail) override;
  absl::Status Abandon(int64_t challenge_id) override;
  absl::Status AbandonOpen() override;

 private:
  store::Database& db_;
};

// The worker's latest `limit` challenges, newest first (the admin's trust view).
std::vector<v1::GpuChallengeRecord> LatestChallenges(pqxx::work& tx, int64_t worker_id, int limit);

}  // namespace tessera::scheduler_host
