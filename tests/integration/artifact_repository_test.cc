// Who holds which artifact (issue 18), on a real PostgreSQL and a real blob directory: quota and
// size limit before any byte, one record per account and digest with its audit event, another
// account's artifact not found, deletion and the collection of bytes nobody holds.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <string>

#include "services/artifacts/artifact_repository.h"
#include "services/artifacts/file_blob_store.h"
#include "tests/support/test_database.h"

using namespace tessera;
using namespace tessera::artifacts;

namespace {

struct Artifacts {
  testing::TestDatabase db;
  std::filesystem::path root;
  std::unique_ptr<FileBlobStore> blobs;
  std::unique_ptr<ArtifactRepository> repo;

  explicit Artifacts(ArtifactLimits limits = {.max_artifact_bytes = 1'000, .account_quota_bytes = 2'000}) {
    char tmpl[] = "/tmp/tessera-artifacts-XXXXXX";
    root = mkdtemp(tmpl);
    blobs = std::move(FileBlobStore::Open(root).value());
    repo = std::make_unique<ArtifactRepository>(db.store(), *blobs, limits);
    db.Scalar("INSERT INTO accounts (name, kind) VALUES ('acme', 'customer'), ('globex', 'customer'), ('gpuco', 'provider')");
  }
  ~Artifacts() { std::filesystem::remove_all(root); }

  static NewArtifact Upload(const std::string& account, const std::string& bytes, const std::string& name = "") {
    return {.account = account, .digest = DigestOf(bytes), .size_bytes = static_cast<int64_t>(bytes.size()), .name = name,
            .kind = v1::ARTIFACT_KIND_FILE, .job_id = 0};
  }

  absl::StatusOr<v1::Artifact> Put(const std::string& account, const std::string& bytes, const std::string& name = "") {
    const NewArtifact upload = Upload(account, bytes, name);
    if (absl::Status s = repo->Admit(upload); !s.ok()) return s;
    auto writer = blobs->Create();
    REQUIRE(writer.ok());
    REQUIRE((*writer)->Append(bytes).ok());
    return repo->Record(upload, **writer, "");
  }
};

}  // namespace

TEST_CASE("an upload is recorded once per account and digest, audited, and seen only by its account", "[integration][artifacts]") {
  Artifacts a;
  const std::string bytes(600, 'x');
  auto first = a.Put("acme", bytes, "train.csv");
  REQUIRE(first.ok());
  CHECK(first->digest() == DigestOf(bytes));
  CHECK(first->size_bytes() == 600);
  CHECK(first->account() == "acme");
  CHECK(first->name() == "train.csv");
  CHECK(first->kind() == v1::ARTIFACT_KIND_FILE);
  CHECK(first->created_at_ms() > 0);
  CHECK(std::filesystem::exists(a.blobs->PathOf(first->digest())));

  // The same bytes again: the same artifact (renamed), no second row, no second audit entry.
  auto again = a.Put("acme", bytes, "train-v2.csv");
  REQUIRE(again.ok());
  CHECK(again->name() == "train-v2.csv");
  CHECK(again->created_at_ms() == first->created_at_ms());
  CHECK(a.db.Scalar("SELECT count(*) FROM artifacts") == "1");
  CHECK(a.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'artifact.create'") == "1");
  CHECK(a.repo->UsedBytes("acme").value() == 600);

  // Another account uploading the same bytes gets its own artifact on the one blob.
  REQUIRE(a.Put("globex", bytes).ok());
  CHECK(a.db.Scalar("SELECT count(*) FROM blobs") == "1");
  CHECK(a.db.Scalar("SELECT count(*) FROM artifacts") == "2");

  CHECK(a.repo->Get("acme", first->digest()).ok());
  CHECK(a.repo->Get("acme", DigestOf("other")).status().code() == absl::StatusCode::kNotFound);
  CHECK(a.repo->Get("nobody", first->digest()).status().code() == absl::StatusCode::kNotFound);
  CHECK(a.repo->Get("gpuco", first->digest()).status().code() == absl::StatusCode::kNotFound);  // a provider holds none
  CHECK(a.repo->Get("acme", "sha256:zz").status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("the size limit and the account's quota refuse an upload before its bytes, and again at its record",
          "[integration][artifacts]") {
  Artifacts a;
  const absl::Status too_big = a.repo->Admit(Artifacts::Upload("acme", std::string(1'001, 'b')));
  CHECK(too_big.code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(too_big.message()), Catch::StartsWith("size_bytes:") && Catch::Contains("1000 bytes per artifact"));

  REQUIRE(a.Put("acme", std::string(900, '1')).ok());
  REQUIRE(a.Put("acme", std::string(900, '2')).ok());
  const absl::Status over = a.repo->Admit(Artifacts::Upload("acme", std::string(300, '3')));
  CHECK(over.code() == absl::StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(over.message()), Catch::Contains("stores 1800 bytes of its quota of 2000"));
  // Bytes it already holds pass (nothing more is stored); another account has its own quota.
  CHECK(a.repo->Admit(Artifacts::Upload("acme", std::string(900, '1'))).ok());
  CHECK(a.Put("globex", std::string(300, '3')).ok());

  // Two uploads admitted together cannot both be recorded past the quota.
  const NewArtifact u4 = Artifacts::Upload("acme", std::string(150, '4'));
  const NewArtifact u5 = Artifacts::Upload("acme", std::string(150, '5'));
  REQUIRE(a.repo->Admit(u4).ok());
  REQUIRE(a.repo->Admit(u5).ok());
  auto w4 = a.blobs->Create();
  auto w5 = a.blobs->Create();
  REQUIRE((*w4)->Append(std::string(150, '4')).ok());
  REQUIRE((*w5)->Append(std::string(150, '5')).ok());
  CHECK(a.repo->Record(u4, **w4, "").ok());
  CHECK(a.repo->Record(u5, **w5, "").status().code() == absl::StatusCode::kResourceExhausted);
  CHECK(a.repo->UsedBytes("acme").value() == 1'950);
  CHECK_FALSE(a.blobs->Exists(u5.digest).value());  // refused before its bytes were put in place
}

TEST_CASE("bytes that are not what the upload stated are neither stored nor recorded", "[integration][artifacts]") {
  Artifacts a;
  NewArtifact upload = Artifacts::Upload("acme", "the stated bytes");
  auto writer = a.blobs->Create();
  REQUIRE((*writer)->Append("other bytes").ok());
  upload.size_bytes = static_cast<int64_t>(std::string("other bytes").size());
  const absl::StatusOr<v1::Artifact> recorded = a.repo->Record(upload, **writer, "");
  CHECK(recorded.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(recorded.status().message()), Catch::StartsWith("digest:"));
  CHECK(a.db.Scalar("SELECT count(*) FROM artifacts") == "0");
  CHECK(a.db.Scalar("SELECT count(*) FROM blobs") == "0");
  CHECK_FALSE(a.blobs->Exists(upload.digest).value());
}

TEST_CASE("artifacts list newest first in pages; a deleted one's bytes are collected once nobody holds them",
          "[integration][artifacts]") {
  Artifacts a({.max_artifact_bytes = 1'000, .account_quota_bytes = 100'000});
  std::vector<std::string> digests;
  for (int i = 0; i < 5; ++i) digests.push_back(a.Put("acme", "file " + std::to_string(i)).value().digest());
  auto first = a.repo->List("acme", "", 2);
  REQUIRE(first.ok());
  REQUIRE(first->artifacts.size() == 2);
  CHECK(first->artifacts[0].digest() == digests[4]);
  CHECK(first->artifacts[1].digest() == digests[3]);
  auto second = a.repo->List("acme", first->next_page_token, 2);
  REQUIRE(second.ok());
  CHECK(second->artifacts[0].digest() == digests[2]);
  CHECK(a.repo->List("globex", first->next_page_token, 2).status().code() == absl::StatusCode::kInvalidArgument);  // not its token

  // digests[0] is held by globex too; digests[1] only by acme.
  REQUIRE(a.Put("globex", "file 0").ok());
  REQUIRE(a.repo->Delete("acme", digests[0], "").ok());
  REQUIRE(a.repo->Delete("acme", digests[1], "").ok());
  CHECK(a.repo->Delete("acme", digests[1], "").code() == absl::StatusCode::kNotFound);
  CHECK(a.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'artifact.delete'") == "2");

  // The first pass only marks; the bytes go once the grace has passed.
  CHECK(a.repo->CollectGarbage(60'000).value() == 0);
  CHECK(a.db.Scalar("SELECT count(*) FROM blobs WHERE doomed_at IS NOT NULL") == "1");
  CHECK(a.blobs->Exists(digests[1]).value());
  CHECK(a.repo->CollectGarbage(0).value() == 1);
  CHECK_FALSE(a.blobs->Exists(digests[1]).value());
  CHECK(a.blobs->Exists(digests[0]).value());  // globex still holds it
  CHECK(a.db.Scalar("SELECT count(*) FROM blobs") == "4");

  // A doomed blob uploaded again before it is collected lives on, with its file.
  REQUIRE(a.repo->Delete("acme", digests[2], "").ok());
  CHECK(a.repo->CollectGarbage(60'000).value() == 0);
  REQUIRE(a.Put("acme", "file 2").ok());
  CHECK(a.repo->CollectGarbage(0).value() == 0);
  CHECK(a.blobs->Exists(digests[2]).value());
  CHECK(a.db.Scalar("SELECT count(*) FROM blobs WHERE doomed_at IS NOT NULL") == "0");
}
