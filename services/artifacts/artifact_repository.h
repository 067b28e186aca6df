// Who holds which artifact (issue 18): an artifact is a customer account's claim on a blob, written
// in one transaction with its audit event, within the account's quota; the blob's bytes are put in
// place under the digest's advisory lock in that same transaction, which the garbage collector of
// unreferenced blobs also takes (migrations/0020_artifacts.sql).
//
//   ArtifactRepository repo(db, blobs, limits);
//   repo.Admit(upload);                                   // before the first byte: limits, quota
//   … writer->Append(chunk) …
//   absl::StatusOr<v1::Artifact> a = repo.Record(upload, *writer, actor_key_id);
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/artifacts/blob_store.h"
#include "services/lifecycle/lease_holder.h"
#include "services/store/database.h"
#include "tessera/v1/artifacts.pb.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::artifacts {

struct ArtifactLimits {
  int64_t max_artifact_bytes = int64_t{10} << 30;   // one artifact, 10 GiB
  int64_t account_quota_bytes = int64_t{100} << 30; // all of an account's artifacts, 100 GiB
};

// An upload as its client states it (or a worker's outputs, with their job).
struct NewArtifact {
  std::string account;
  std::string digest;  // "sha256:…"
  int64_t size_bytes = 0;
  std::string name;
  v1::ArtifactKind kind = v1::ARTIFACT_KIND_FILE;
  int64_t job_id = 0;
  uint32_t attempt = 0;  // a checkpoint's: the attempt that saved it
};

// A job's newest checkpoint, if it has one, and whose job it is.
struct JobCheckpoint {
  std::string account;
  std::optional<v1::JobCheckpoint> checkpoint;
};

// How many saves of its checkpoints a job keeps (the newest).
inline constexpr int kKeptCheckpoints = 2;

// A job as the worker holding its lease may use it: whose artifacts, and what its spec names.
// The job a worker's lease names: its customer, and its spec with its secrets (only for the
// checks here).
using LeasedJob = lifecycle::HeldLease;

struct ArtifactPage {
  std::vector<v1::Artifact> artifacts;  // newest first
  std::string next_page_token;          // empty on the last page
};

class ArtifactRepository {
 public:
  ArtifactRepository(store::Database& db, BlobStore& blobs, ArtifactLimits limits) : db_(db), blobs_(blobs), limits_(limits) {}

  // Before an upload's bytes arrive: its fields are valid (INVALID_ARGUMENT naming the field), the
  // account is a customer's (NOT_FOUND), and the size fits the size limit and what is left of the
  // account's quota (RESOURCE_EXHAUSTED naming the limit). Bytes the account already holds pass.
  absl::Status Admit(const NewArtifact& artifact);
  // The upload's bytes are all in `writer`: verified against the stated size and digest and put
  // in place, and the artifact recorded with its audit event, in one transaction (the quota checked
  // again under the account's lock). Idempotent per account and digest: the same bytes again
  // return the artifact already recorded, renamed when a new name is given.
  absl::StatusOr<v1::Artifact> Record(const NewArtifact& artifact, BlobWriter& writer, const std::string& actor_key_id);
  // The account's artifact of that digest; NOT_FOUND when it holds none (also when another does).
  absl::StatusOr<v1::Artifact> Get(const std::string& account, std::string_view digest);
  // The account's artifacts, newest first (pagination.h).
  absl::StatusOr<ArtifactPage> List(const std::string& account, std::string_view page_token, uint32_t page_size);
  // The account no longer holds it (audited); its bytes are collected once nobody does.
  absl::Status Delete(const std::string& account, std::string_view digest, const std::string& actor_key_id);
  // One pass of the collector: blobs no artifact refers to are marked doomed; those marked at least
  // `grace_ms` ago (and still unreferenced) are deleted with their files. Returns how many.
  absl::StatusOr<int> CollectGarbage(int64_t grace_ms);
  // The job of `lease` if a worker of provider `provider_account_id` holds that lease live (or held
  // it until less than `ended_within` ago); PERMISSION_DENIED otherwise (no such lease, ended, or
  // another provider's worker).
  absl::StatusOr<LeasedJob> LeasedBy(int64_t provider_account_id, const v1::JobLease& lease,
                                     std::chrono::seconds ended_within = std::chrono::seconds(0));
  // The job's newest checkpoint (none: nullopt); NOT_FOUND for no such job.
  absl::StatusOr<JobCheckpoint> LatestCheckpoint(int64_t job_id);
  // Whether `job_id` of `account` may read `digest`: its spec names it (an input or the code), or
  // it is one of the job's own checkpoints.
  absl::StatusOr<bool> JobMayRead(const std::string& account, int64_t job_id, const v1::JobSpec& spec, std::string_view digest);
  // Bytes the account's artifacts hold.
  absl::StatusOr<int64_t> UsedBytes(const std::string& account);
  const ArtifactLimits& limits() const { return limits_; }

 private:
  // The fields (INVALID_ARGUMENT naming one) and the size limit; returns the canonical digest.
  absl::StatusOr<std::string> Validate(const NewArtifact& artifact) const;

  store::Database& db_;
  BlobStore& blobs_;
  const ArtifactLimits limits_;
};

}  // namespace tessera::artifacts
