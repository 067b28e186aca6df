// What a worker attests, signed: the canonical encodings of usage reports, job results and
// proof-of-GPU answers (specified in workers.proto next to their `signature` fields) and Ed25519 over them (libsodium).
// The agent signs with its machine's secret key; the scheduler verifies with the public key the
// machine registered. The worker id is part of every encoding, so a signature never transfers to
// another worker's report.
//
//   WorkerKeyPair key = WorkerKeyPair::Generate();
//   SignUsage(key, worker_id, &report);
//   bool genuine = VerifyUsage(registered_public_key, worker_id, report);
#pragma once

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tessera/v1/workers.pb.h"

namespace tessera {

inline constexpr size_t kPublicKeyBytes = 32;
inline constexpr size_t kSignatureBytes = 64;

struct WorkerKeyPair {
  std::string public_key;  // 32 bytes
  std::string secret_key;  // 64 bytes (libsodium: seed then public key)

  static WorkerKeyPair Generate();
  // Deterministic from a 32-byte seed: tests and simulations.
  static WorkerKeyPair FromSeed(absl::string_view seed);
  // The key pair of a 64-byte secret key; INVALID_ARGUMENT for anything else.
  static absl::StatusOr<WorkerKeyPair> FromSecretKey(absl::string_view secret_key);
};

std::string CanonicalUsage(int64_t worker_id, const v1::UsageReport& report);
std::string CanonicalFinished(int64_t worker_id, const v1::JobFinished& finished);
std::string CanonicalChallengeCommit(int64_t worker_id, const v1::ChallengeCommit& commit);
std::string CanonicalChallengeOpening(int64_t worker_id, const v1::ChallengeOpening& opening);

void SignUsage(const WorkerKeyPair& key, int64_t worker_id, v1::UsageReport* report);
void SignFinished(const WorkerKeyPair& key, int64_t worker_id, v1::JobFinished* finished);
void SignChallengeCommit(const WorkerKeyPair& key, int64_t worker_id, v1::ChallengeCommit* commit);
void SignChallengeOpening(const WorkerKeyPair& key, int64_t worker_id, v1::ChallengeOpening* opening);
// False for a wrong, missing or malformed signature or public key.
bool VerifyUsage(absl::string_view public_key, int64_t worker_id, const v1::UsageReport& report);
bool VerifyFinished(absl::string_view public_key, int64_t worker_id, const v1::JobFinished& finished);
bool VerifyChallengeCommit(absl::string_view public_key, int64_t worker_id, const v1::ChallengeCommit& commit);
bool VerifyChallengeOpening(absl::string_view public_key, int64_t worker_id, const v1::ChallengeOpening& opening);

}  // namespace tessera
