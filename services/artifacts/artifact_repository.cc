#include "services/artifacts/artifact_repository.h"

#include "absl/strings/str_cat.h"
#include "services/common/enum_names.h"
#include "services/common/pagination.h"
#include "services/lifecycle/lease_holder.h"

namespace tessera::artifacts {
namespace {

constexpr const char* kArtifactColumns =
    "a.digest, a.size_bytes, c.name, a.name, a.kind, COALESCE(a.job_id, 0), (extract(epoch FROM a.created_at) * 1000)::bigint,"
    " a.artifact_id";

v1::Artifact ArtifactFromRow(const pqxx::row& r) {
  v1::Artifact a;
  a.set_digest(r[0].as<std::string>());
  a.set_size_bytes(r[1].as<int64_t>());
  a.set_account(r[2].as<std::string>());
  a.set_name(r[3].as<std::string>());
  a.set_kind(ParseStoredName<v1::ArtifactKind>(r[4].as<std::string>()).value_or(v1::ARTIFACT_KIND_UNSPECIFIED));
  a.set_job_id(r[5].as<int64_t>());
  a.set_created_at_ms(r[6].as<int64_t>());
  return a;
}

// The customer account's id; NOT_FOUND for a name that is no customer's.
absl::StatusOr<int64_t> CustomerId(pqxx::work& tx, const std::string& account) {
  const pqxx::result r = tx.exec_params("SELECT account_id FROM accounts WHERE name = $1 AND kind = 'customer'", account);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("account '", account, "' not found"));
  return r[0][0].as<int64_t>();
}

absl::StatusOr<v1::Artifact> LoadArtifact(pqxx::work& tx, int64_t account_id, const std::string& digest) {
  const pqxx::result r = tx.exec_params(absl::StrCat("SELECT ", kArtifactColumns, " FROM artifacts a JOIN accounts c USING (account_id)"
                                                     " WHERE a.account_id = $1 AND a.digest = $2"),
                                        account_id, digest);
  if (r.empty()) return absl::NotFoundError(absl::StrCat("artifact ", digest, " not found"));
  return ArtifactFromRow(r[0]);
}

int64_t UsedBytesOf(pqxx::work& tx, int64_t account_id) {
  return tx.exec_params1("SELECT COALESCE(sum(size_bytes), 0)::bigint FROM artifacts WHERE account_id = $1", account_id)[0].as<int64_t>();
}

// Serialises the quota checks and records of one account's uploads.
void LockAccountArtifacts(pqxx::work& tx, int64_t account_id) {
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('artifacts of account ' || $1::text, 0))", account_id);
}

// Serialises putting a blob in place and recording it with collecting it (0020_artifacts.sql).
void LockDigest(pqxx::work& tx, const std::string& digest) {
  tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('blob ' || $1, 0))", digest);
}

// A job's checkpoint saved. The newest is the latest attempt's last (a stopped attempt's final save
// may arrive after its successor's first); the job keeps only its newest kKeptCheckpoints, and an
// older save's artifact goes unless a kept save (of any of the account's jobs) has the same bytes.
void RecordCheckpoint(pqxx::work& tx, int64_t account_id, const NewArtifact& artifact, const std::string& digest,
                      const std::string& actor_key_id) {
  tx.exec_params("INSERT INTO job_checkpoints (job_id, attempt, digest, size_bytes) VALUES ($1, $2, $3, $4)", artifact.job_id,
                 static_cast<int64_t>(artifact.attempt), digest, artifact.size_bytes);
  tx.exec_params("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'job.checkpoint', $2, $3)",
                 actor_key_id, absl::StrCat("job/", artifact.job_id),
                 absl::StrCat("attempt ", artifact.attempt, " saved ", digest, " (", artifact.size_bytes, " bytes)"));
  const pqxx::result old = tx.exec_params(
      "DELETE FROM job_checkpoints WHERE job_id = $1 AND checkpoint_id NOT IN"
      "   (SELECT checkpoint_id FROM job_checkpoints WHERE job_id = $1 ORDER BY attempt DESC, checkpoint_id DESC LIMIT $2) RETURNING digest",
      artifact.job_id, kKeptCheckpoints);
  for (const pqxx::row& gone : old) {
    // The artifact goes with its last save: another job of the account may have saved the same bytes.
    tx.exec_params(
        "DELETE FROM artifacts WHERE account_id = $1 AND digest = $2 AND kind = 'CHECKPOINT'"
        "   AND NOT EXISTS (SELECT 1 FROM job_checkpoints k JOIN jobs j USING (job_id) WHERE j.account_id = $1 AND k.digest = $2)",
        account_id, gone[0].as<std::string>());
  }
}

}  // namespace

absl::StatusOr<JobCheckpoint> ArtifactRepository::LatestCheckpoint(int64_t job_id) {
  return db_.Transact("latest checkpoint", [&](pqxx::work& tx) -> absl::StatusOr<JobCheckpoint> {
    const pqxx::result job = tx.exec_params("SELECT c.name FROM jobs j JOIN accounts c USING (account_id) WHERE j.job_id = $1", job_id);
    if (job.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    JobCheckpoint out;
    out.account = job[0][0].as<std::string>();
    const pqxx::result k = tx.exec_params(
        "SELECT k.digest, k.attempt, (extract(epoch FROM k.created_at) * 1000)::bigint, a.account_id FROM job_checkpoints k"
        " JOIN jobs j USING (job_id) JOIN artifacts a ON a.account_id = j.account_id AND a.digest = k.digest"
        " WHERE k.job_id = $1 ORDER BY k.attempt DESC, k.checkpoint_id DESC LIMIT 1",
        job_id);
    if (k.empty()) return out;
    absl::StatusOr<v1::Artifact> artifact = LoadArtifact(tx, k[0][3].as<int64_t>(), k[0][0].as<std::string>());
    if (!artifact.ok()) return artifact.status();
    v1::JobCheckpoint& checkpoint = out.checkpoint.emplace();
    *checkpoint.mutable_artifact() = *std::move(artifact);
    checkpoint.set_attempt(k[0][1].as<uint32_t>());
    checkpoint.set_saved_at_ms(k[0][2].as<int64_t>());
    return out;
  });
}

absl::StatusOr<std::string> ArtifactRepository::Validate(const NewArtifact& artifact) const {
  absl::StatusOr<std::string> digest = ParseDigest(artifact.digest);
  if (!digest.ok()) return digest.status();
  if (artifact.size_bytes < 0) return absl::InvalidArgumentError("size_bytes: must be 0 or more");
  if (artifact.name.size() > 256) return absl::InvalidArgumentError("name: at most 256 characters");
  if (artifact.kind == v1::ARTIFACT_KIND_UNSPECIFIED) return absl::InvalidArgumentError("kind: must be set");
  if (artifact.size_bytes > limits_.max_artifact_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat("size_bytes: ", artifact.size_bytes, " bytes is over the server's limit of ",
                                                     limits_.max_artifact_bytes, " bytes per artifact"));
  }
  return digest;
}

absl::Status ArtifactRepository::Admit(const NewArtifact& artifact) {
  // A digest still to come (in the stream's last message) is checked when it comes.
  const bool digest_known = !artifact.digest.empty();
  NewArtifact checked = artifact;
  if (!digest_known) checked.digest = DigestOf("");
  absl::StatusOr<std::string> digest = Validate(checked);
  if (!digest.ok()) return digest.status();
  return db_.Transact("admit artifact", [&](pqxx::work& tx) -> absl::Status {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, artifact.account);
    if (!account_id.ok()) return account_id.status();
    // Held already: nothing more is stored. (Bytes whose digest comes last count as new.)
    if (digest_known && LoadArtifact(tx, *account_id, *digest).ok()) return absl::OkStatus();
    const int64_t used = UsedBytesOf(tx, *account_id);
    if (used + artifact.size_bytes > limits_.account_quota_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("account '", artifact.account, "' stores ", used, " bytes of its quota of ",
                                                       limits_.account_quota_bytes, "; ", artifact.size_bytes,
                                                       " more do not fit (delete artifacts it no longer needs)"));
    }
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::Artifact> ArtifactRepository::Record(const NewArtifact& artifact, BlobWriter& writer, const std::string& actor_key_id) {
  // The fields and the size limit; the quota is checked below, under the account's lock.
  absl::StatusOr<std::string> valid = Validate(artifact);
  if (!valid.ok()) return valid.status();
  const std::string& digest = *valid;
  bool committed = false;  // a retried transaction does not commit the bytes twice
  absl::StatusOr<v1::Artifact> recorded = db_.Transact("record artifact", [&](pqxx::work& tx) -> absl::StatusOr<v1::Artifact> {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, artifact.account);
    if (!account_id.ok()) return account_id.status();
    LockAccountArtifacts(tx, *account_id);
    const bool held = LoadArtifact(tx, *account_id, digest).ok();
    if (!held && UsedBytesOf(tx, *account_id) + artifact.size_bytes > limits_.account_quota_bytes) {
      return absl::ResourceExhaustedError(absl::StrCat("account '", artifact.account, "' would exceed its quota of ",
                                                       limits_.account_quota_bytes, " bytes"));
    }
    LockDigest(tx, digest);
    if (!committed) {
      if (absl::Status s = writer.Commit(static_cast<uint64_t>(artifact.size_bytes), digest); !s.ok()) return s;
      committed = true;
    }
    // The file is in place: the blob is live (a doomed mark from the collector is lifted).
    tx.exec_params("INSERT INTO blobs (digest, size_bytes) VALUES ($1, $2) ON CONFLICT (digest) DO UPDATE SET doomed_at = NULL", digest,
                   artifact.size_bytes);
    const std::string kind = StoredName(artifact.kind);
    if (held) {
      if (!artifact.name.empty()) {
        tx.exec_params("UPDATE artifacts SET name = $3 WHERE account_id = $1 AND digest = $2", *account_id, digest, artifact.name);
      }
    } else {
      tx.exec_params(
          "INSERT INTO artifacts (account_id, digest, size_bytes, name, kind, job_id) VALUES ($1, $2, $3, $4, $5, NULLIF($6, 0))",
          *account_id, digest, artifact.size_bytes, artifact.name, kind, artifact.job_id);
      tx.exec_params("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'artifact.create', $2, $3)",
                     actor_key_id, absl::StrCat("artifact/", artifact.account, "/", digest),
                     absl::StrCat(kind, " ", artifact.size_bytes, " bytes", artifact.name.empty() ? "" : " name=", artifact.name,
                                  artifact.job_id == 0 ? "" : absl::StrCat(" job=", artifact.job_id)));
    }
    if (artifact.kind == v1::ARTIFACT_KIND_CHECKPOINT) RecordCheckpoint(tx, *account_id, artifact, digest, actor_key_id);
    return LoadArtifact(tx, *account_id, digest);
  });
  if (!recorded.ok() && committed) {
    // The bytes are in place but the record's transaction failed: a blob row, doomed, lets the
    // collector find the file (unless an upload holds it by then).
    (void)db_.Transact("doom unrecorded blob", [&](pqxx::work& tx) -> absl::Status {
      tx.exec_params("INSERT INTO blobs (digest, size_bytes, doomed_at) VALUES ($1, $2, now()) ON CONFLICT (digest) DO NOTHING", digest,
                     artifact.size_bytes);
      return absl::OkStatus();
    });
  }
  return recorded;
}

absl::StatusOr<v1::Artifact> ArtifactRepository::Get(const std::string& account, std::string_view digest) {
  absl::StatusOr<std::string> canonical = ParseDigest(digest);
  if (!canonical.ok()) return canonical.status();
  return db_.Transact("get artifact", [&](pqxx::work& tx) -> absl::StatusOr<v1::Artifact> {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, account);
    if (!account_id.ok()) return account_id.status();
    return LoadArtifact(tx, *account_id, *canonical);
  });
}

absl::StatusOr<ArtifactPage> ArtifactRepository::List(const std::string& account, std::string_view page_token, uint32_t page_size) {
  const PageQuery query{.list = "artifacts", .filters = account};
  absl::StatusOr<Page> page = ParsePage(query, page_token, page_size);
  if (!page.ok()) return page.status();
  return db_.Transact("list artifacts", [&](pqxx::work& tx) -> absl::StatusOr<ArtifactPage> {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, account);
    if (!account_id.ok()) return account_id.status();
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kArtifactColumns, " FROM artifacts a JOIN accounts c USING (account_id)"
                     " WHERE a.account_id = $1 AND a.artifact_id < $2 ORDER BY a.artifact_id DESC LIMIT $3"),
        *account_id, page->before_id(), static_cast<int64_t>(page->size) + 1);
    ArtifactPage out;
    for (size_t i = 0; i < rows.size() && i < page->size; ++i) out.artifacts.push_back(ArtifactFromRow(rows[i]));
    if (rows.size() > page->size) out.next_page_token = NextPageToken(query, rows[page->size - 1][7].as<int64_t>());
    return out;
  });
}

absl::Status ArtifactRepository::Delete(const std::string& account, std::string_view digest, const std::string& actor_key_id) {
  absl::StatusOr<std::string> canonical = ParseDigest(digest);
  if (!canonical.ok()) return canonical.status();
  return db_.Transact("delete artifact", [&](pqxx::work& tx) -> absl::Status {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, account);
    if (!account_id.ok()) return account_id.status();
    const pqxx::result gone =
        tx.exec_params("DELETE FROM artifacts WHERE account_id = $1 AND digest = $2 RETURNING size_bytes", *account_id, *canonical);
    if (gone.empty()) return absl::NotFoundError(absl::StrCat("artifact ", *canonical, " not found"));
    tx.exec_params("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'artifact.delete', $2, $3)",
                   actor_key_id, absl::StrCat("artifact/", account, "/", *canonical), absl::StrCat(gone[0][0].as<int64_t>(), " bytes"));
    return absl::OkStatus();
  });
}

absl::StatusOr<int> ArtifactRepository::CollectGarbage(int64_t grace_ms) {
  // First pass: mark what nobody refers to now.
  absl::Status marked = db_.Transact("doom unreferenced blobs", [&](pqxx::work& tx) -> absl::Status {
    tx.exec("UPDATE blobs b SET doomed_at = now() WHERE doomed_at IS NULL"
            " AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.digest = b.digest)");
    return absl::OkStatus();
  });
  if (!marked.ok()) return marked;
  absl::StatusOr<std::vector<std::string>> due = db_.Transact("blobs due", [&](pqxx::work& tx) -> absl::StatusOr<std::vector<std::string>> {
    std::vector<std::string> digests;
    for (const pqxx::row& r : tx.exec_params("SELECT digest FROM blobs WHERE doomed_at <= now() - make_interval(secs => $1::float8 / 1000)"
                                             " ORDER BY digest LIMIT 1000",
                                             grace_ms)) {
      digests.push_back(r[0].as<std::string>());
    }
    return digests;
  });
  if (!due.ok()) return due.status();
  int removed = 0;
  for (const std::string& digest : *due) {
    // Second pass, one blob per transaction under its lock: the row and the file go together. If
    // the commit fails after the unlink, the row stays doomed and unreferenced and goes next time;
    // an upload of these bytes meanwhile puts its own file back and lifts the mark.
    absl::StatusOr<bool> gone = db_.Transact("collect blob", [&](pqxx::work& tx) -> absl::StatusOr<bool> {
      LockDigest(tx, digest);
      const pqxx::result r = tx.exec_params(
          "DELETE FROM blobs b WHERE digest = $1 AND doomed_at IS NOT NULL"
          " AND NOT EXISTS (SELECT 1 FROM artifacts a WHERE a.digest = b.digest) RETURNING digest",
          digest);
      if (r.empty()) return false;
      if (absl::Status s = blobs_.Remove(digest); !s.ok()) return s;
      return true;
    });
    if (!gone.ok()) return gone.status();
    removed += *gone ? 1 : 0;
  }
  return removed;
}

absl::StatusOr<int64_t> ArtifactRepository::UsedBytes(const std::string& account) {
  return db_.Transact("artifact bytes used", [&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, account);
    if (!account_id.ok()) return account_id.status();
    return UsedBytesOf(tx, *account_id);
  });
}

absl::StatusOr<LeasedJob> ArtifactRepository::LeasedBy(int64_t provider_account_id, const v1::JobLease& lease,
                                                      std::chrono::seconds ended_within) {
  return db_.Transact("leased job", [&](pqxx::work& tx) -> absl::StatusOr<LeasedJob> {
    return lifecycle::LeaseHeldBy(tx, provider_account_id, lease, ended_within);
  });
}

absl::StatusOr<bool> ArtifactRepository::JobMayRead(const std::string& account, int64_t job_id, const v1::JobSpec& spec,
                                                    std::string_view digest) {
  absl::StatusOr<std::string> wanted = ParseDigest(digest);
  if (!wanted.ok()) return wanted.status();
  auto same = [&](const std::string& named) {
    absl::StatusOr<std::string> d = ParseDigest(named);
    return d.ok() && *d == *wanted;
  };
  if (spec.has_container()) {
    if (!spec.container().code().empty() && same(spec.container().code())) return true;
    for (const v1::ContainerInput& in : spec.container().inputs()) {
      if (same(in.artifact())) return true;
    }
  }
  return db_.Transact("job checkpoint", [&](pqxx::work& tx) -> absl::StatusOr<bool> {
    absl::StatusOr<int64_t> account_id = CustomerId(tx, account);
    if (!account_id.ok()) return account_id.status();
    // One of the job's saves that the account still holds.
    return !tx.exec_params("SELECT 1 FROM job_checkpoints k JOIN artifacts a ON a.digest = k.digest AND a.account_id = $1"
                           " WHERE k.job_id = $2 AND k.digest = $3",
                           *account_id, job_id, *wanted)
                .empty();
  });
}

}  // namespace tessera::artifacts
