// tessera.v1.ArtifactService on the real server (issue 18), over gRPC: uploads verified against
// their stated size and digest before anything is stored, downloads that resume from an offset,
// customers confined to their own artifacts, the quota refused before a byte, the list and delete.
#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <set>
#include <thread>

#include "services/common/sha256.h"
#include "tessera/v1/artifacts.grpc.pb.h"
#include "tests/integration/running_server.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

struct ArtifactServer {
  std::filesystem::path root;
  TestDatabase db;
  std::unique_ptr<server::TesseraServer> server;
  std::shared_ptr<grpc::Channel> admin;
  std::string acme_key, globex_key, gpuco_key;

  explicit ArtifactServer(int64_t blob_grace_ms = 3'600'000, std::set<std::string> services = {"billing", "artifacts"}) {
    char tmpl[] = "/tmp/tessera-artifact-service-XXXXXX";
    root = mkdtemp(tmpl);
    server = StartServer(db.url(), std::move(services), 60'000, [&](server::ServerOptions& o) {
      o.artifact_dir = root;
      o.artifact_limits = {.max_artifact_bytes = 8 << 20, .account_quota_bytes = 12 << 20};
      o.blob_collect_interval_ms = 50;
      o.blob_grace_ms = blob_grace_ms;
    });
    admin = ChannelTo(*server);
    CreateAccount(admin, "acme", v1::ACCOUNT_KIND_CUSTOMER);
    CreateAccount(admin, "globex", v1::ACCOUNT_KIND_CUSTOMER);
    CreateAccount(admin, "gpuco", v1::ACCOUNT_KIND_PROVIDER);
    acme_key = IssueKey(db.url(), v1::ROLE_CUSTOMER, "acme");
    globex_key = IssueKey(db.url(), v1::ROLE_CUSTOMER, "globex");
    gpuco_key = IssueKey(db.url(), v1::ROLE_PROVIDER, "gpuco");
  }
  ~ArtifactServer() {
    server.reset();
    std::filesystem::remove_all(root);
  }

  std::unique_ptr<v1::ArtifactService::Stub> As(const std::string& key) { return v1::ArtifactService::NewStub(ChannelTo(*server, key)); }

  // Sends `header` then `bytes` in chunks of `chunk` bytes.
  grpc::Status Upload(const std::string& key, const v1::UploadArtifactHeader& header, const std::string& bytes, v1::Artifact* out,
                      size_t chunk = 256 << 10, const std::string& trailing_digest = "") {
    auto stub = As(key);
    grpc::ClientContext context;
    auto writer = stub->UploadArtifact(&context, out);
    v1::UploadArtifactRequest request;
    *request.mutable_header() = header;
    if (writer->Write(request)) {
      for (size_t at = 0; at < bytes.size(); at += chunk) {
        request.set_chunk(bytes.substr(at, chunk));
        if (!writer->Write(request)) break;
      }
      if (!trailing_digest.empty()) {
        request.set_digest(trailing_digest);
        writer->Write(request);
      }
    }
    writer->WritesDone();
    return writer->Finish();
  }

  static v1::UploadArtifactHeader Header(const std::string& bytes, const std::string& name = "data.bin") {
    v1::UploadArtifactHeader h;
    h.set_size_bytes(static_cast<int64_t>(bytes.size()));
    h.set_digest(DigestOf(bytes));
    h.set_name(name);
    return h;
  }

  // The bytes from `offset` on, and the record the first message carried.
  grpc::Status Download(const std::string& key, const std::string& digest, int64_t offset, std::string* bytes, v1::Artifact* record,
                        int* messages = nullptr) {
    auto stub = As(key);
    grpc::ClientContext context;
    v1::DownloadArtifactRequest request;
    request.set_digest(digest);
    request.set_offset(offset);
    auto reader = stub->DownloadArtifact(&context, request);
    v1::DownloadArtifactResponse m;
    bytes->clear();
    int n = 0;
    while (reader->Read(&m)) {
      if (m.has_artifact()) *record = m.artifact();
      CHECK(m.offset() == offset + static_cast<int64_t>(bytes->size()));
      bytes->append(m.chunk());
      ++n;
    }
    if (messages != nullptr) *messages = n;
    return reader->Finish();
  }

  int BlobFiles() {
    int n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(root)) n += e.is_regular_file() ? 1 : 0;
    return n;
  }
};

std::string Bytes(size_t n, char seed) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(seed + (i * 131) % 251);
  return out;
}

}  // namespace

TEST_CASE("an upload is verified against its stated size and digest, and a wrong one stores nothing", "[integration][artifacts]") {
  ArtifactServer s;
  const std::string bytes = Bytes(3 << 20, 'a');
  v1::Artifact artifact;

  v1::UploadArtifactHeader wrong_digest = ArtifactServer::Header(bytes);
  wrong_digest.set_digest(DigestOf("something else"));
  grpc::Status st = s.Upload(s.acme_key, wrong_digest, bytes, &artifact);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("header.digest: the upload stated") && Catch::Contains("nothing was stored"));

  st = s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes.substr(0, bytes.size() - 1), &artifact);  // short
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("header.size_bytes"));
  st = s.Upload(s.acme_key, ArtifactServer::Header(bytes.substr(1)), bytes, &artifact);  // long
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("header.size_bytes"));
  st = s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact, (1 << 20) + 1);  // chunks over 1 MiB
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("chunk:"));
  v1::UploadArtifactHeader bad = ArtifactServer::Header(bytes);
  bad.set_digest("md5:abc");
  CHECK_THAT(s.Upload(s.acme_key, bad, bytes, &artifact).error_message(), Catch::StartsWith("header.digest"));
  bad = ArtifactServer::Header(bytes);
  bad.set_kind(v1::ARTIFACT_KIND_OUTPUTS);
  CHECK_THAT(s.Upload(s.acme_key, bad, bytes, &artifact).error_message(), Catch::StartsWith("header.kind"));
  bad = ArtifactServer::Header(bytes, "evil\x1b[2Jname");
  CHECK_THAT(s.Upload(s.acme_key, bad, bytes, &artifact).error_message(), Catch::StartsWith("header.name"));
  CHECK(s.BlobFiles() == 0);
  CHECK(s.db.Scalar("SELECT count(*) FROM artifacts") == "0");
  CHECK(s.db.Scalar("SELECT count(*) FROM blobs") == "0");

  st = s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact);
  INFO(st.error_message());
  REQUIRE(st.ok());
  CHECK(artifact.digest() == DigestOf(bytes));
  CHECK(artifact.size_bytes() == static_cast<int64_t>(bytes.size()));
  CHECK(artifact.account() == "acme");
  CHECK(artifact.kind() == v1::ARTIFACT_KIND_FILE);
  CHECK(s.BlobFiles() == 1);
  CHECK(s.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'artifact.create'") == "1");
  // The same bytes again: one blob, one record, renamed.
  v1::Artifact again;
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(bytes, "renamed.bin"), bytes, &again).ok());
  CHECK(again.name() == "renamed.bin");
  CHECK(again.created_at_ms() == artifact.created_at_ms());
  CHECK(s.BlobFiles() == 1);
}

TEST_CASE("the digest may come last, computed while sending, and is checked the same", "[integration][artifacts]") {
  ArtifactServer s;
  const std::string bytes = Bytes(3 << 20, 't');
  v1::UploadArtifactHeader header = ArtifactServer::Header(bytes);
  header.clear_digest();
  v1::Artifact artifact;
  grpc::Status st = s.Upload(s.acme_key, header, bytes, &artifact, 1 << 20, DigestOf("other bytes"));
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("digest: the upload stated") && Catch::Contains("nothing was stored"));
  st = s.Upload(s.acme_key, header, bytes, &artifact);  // no digest anywhere
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::StartsWith("digest: the upload stated no SHA-256"));
  st = s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact, 1 << 20, DigestOf(bytes));  // both
  CHECK_THAT(st.error_message(), Catch::StartsWith("digest: stated in the header already"));
  CHECK(s.BlobFiles() == 0);
  CHECK(s.db.Scalar("SELECT count(*) FROM artifacts") == "0");
  st = s.Upload(s.acme_key, header, bytes, &artifact, 1 << 20, DigestOf(bytes));
  INFO(st.error_message());
  REQUIRE(st.ok());
  CHECK(artifact.digest() == DigestOf(bytes));
  CHECK(s.BlobFiles() == 1);
}

TEST_CASE("a download resumes from an offset and carries the record first", "[integration][artifacts]") {
  ArtifactServer s;
  const std::string bytes = Bytes((2 << 20) + 12'345, 'k');
  v1::Artifact artifact;
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact).ok());
  std::string got;
  v1::Artifact record;
  int messages = 0;
  REQUIRE(s.Download(s.acme_key, artifact.digest(), 0, &got, &record, &messages).ok());
  CHECK(got == bytes);
  CHECK(messages == 3);  // 1 MiB, 1 MiB, the rest
  CHECK(record.digest() == artifact.digest());
  REQUIRE(s.Download(s.acme_key, artifact.digest(), 1'500'000, &got, &record).ok());
  CHECK(got == bytes.substr(1'500'000));
  REQUIRE(s.Download(s.acme_key, artifact.digest(), static_cast<int64_t>(bytes.size()), &got, &record, &messages).ok());
  CHECK(got.empty());
  CHECK(messages == 1);  // the record alone
  CHECK(record.size_bytes() == static_cast<int64_t>(bytes.size()));
  grpc::Status st = s.Download(s.acme_key, artifact.digest(), static_cast<int64_t>(bytes.size()) + 1, &got, &record);
  CHECK(st.error_code() == grpc::StatusCode::OUT_OF_RANGE);
  CHECK_THAT(st.error_message(), Catch::StartsWith("offset:"));
  // An empty artifact downloads as its record.
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header("", "empty"), "", &artifact).ok());
  REQUIRE(s.Download(s.acme_key, artifact.digest(), 0, &got, &record, &messages).ok());
  CHECK(got.empty());
  CHECK(messages == 1);
}

TEST_CASE("a customer reads only its own artifacts; a provider none; the quota refuses before a byte", "[integration][artifacts][auth]") {
  ArtifactServer s;
  const std::string bytes = Bytes(1 << 20, 'q');
  v1::Artifact artifact;
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact).ok());
  std::string got;
  v1::Artifact record;
  // Another customer: NOT_FOUND, exactly as for a digest nobody holds.
  grpc::Status theirs = s.Download(s.globex_key, artifact.digest(), 0, &got, &record);
  grpc::Status nobody = s.Download(s.globex_key, DigestOf("nobody has this"), 0, &got, &record);
  CHECK(theirs.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(nobody.error_code() == grpc::StatusCode::NOT_FOUND);
  v1::GetArtifactRequest get;
  get.set_digest(artifact.digest());
  CHECK(s.As(s.globex_key)->GetArtifact(Ctx().get(), get, &record).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::DeleteArtifactRequest del;
  del.set_digest(artifact.digest());
  v1::DeleteArtifactResponse deleted;
  CHECK(s.As(s.globex_key)->DeleteArtifact(Ctx().get(), del, &deleted).error_code() == grpc::StatusCode::NOT_FOUND);
  // Naming another account is refused whatever it holds.
  get.set_account("acme");
  CHECK(s.As(s.globex_key)->GetArtifact(Ctx().get(), get, &record).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // A provider key does not touch customers' artifacts (workers go through their job's lease).
  CHECK(s.As(s.gpuco_key)->GetArtifact(Ctx().get(), get, &record).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // globex uploading the same bytes holds its own record of them; one blob for both.
  REQUIRE(s.Upload(s.globex_key, ArtifactServer::Header(bytes, "mine"), bytes, &artifact).ok());
  CHECK(artifact.account() == "globex");
  CHECK(s.BlobFiles() == 1);

  // Limits: 8 MiB an artifact, 12 MiB an account; acme holds 1 MiB.
  v1::UploadArtifactHeader huge;
  huge.set_size_bytes((8 << 20) + 1);
  huge.set_digest(DigestOf("x"));
  grpc::Status st = s.Upload(s.acme_key, huge, "", &artifact);
  CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(st.error_message(), Catch::Contains("limit of 8388608 bytes"));
  const std::string seven = Bytes(7 << 20, 's');
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(seven), seven, &artifact).ok());
  const std::string five = Bytes(5 << 20, 'f');
  st = s.Upload(s.acme_key, ArtifactServer::Header(five), five, &artifact);
  CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(st.error_message(), Catch::Contains("quota of 12582912"));
  CHECK(s.db.Scalar("SELECT count(*) FROM blobs") == "2");  // nothing of the refused upload

  v1::ListArtifactsRequest list;
  v1::ListArtifactsResponse page;
  REQUIRE(s.As(s.acme_key)->ListArtifacts(Ctx().get(), list, &page).ok());
  REQUIRE(page.artifacts_size() == 2);
  CHECK(page.artifacts(0).digest() == DigestOf(seven));  // newest first
  CHECK(page.used_bytes() == (8 << 20));
  CHECK(page.quota_bytes() == (12 << 20));
  // An admin names the account; without one it is told to.
  CHECK(v1::ArtifactService::NewStub(s.admin)->ListArtifacts(Ctx().get(), list, &page).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  list.set_account("globex");
  REQUIRE(v1::ArtifactService::NewStub(s.admin)->ListArtifacts(Ctx().get(), list, &page).ok());
  CHECK(page.artifacts_size() == 1);

  // Deleted: gone for acme, audited; globex still reads the shared bytes.
  del.set_digest(DigestOf(bytes));
  REQUIRE(s.As(s.acme_key)->DeleteArtifact(Ctx().get(), del, &deleted).ok());
  CHECK(s.Download(s.acme_key, DigestOf(bytes), 0, &got, &record).error_code() == grpc::StatusCode::NOT_FOUND);
  REQUIRE(s.Download(s.globex_key, DigestOf(bytes), 0, &got, &record).ok());
  CHECK(got == bytes);
  CHECK(s.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'artifact.delete'") == "1");
}

TEST_CASE("the server collects the bytes nobody holds any more, after the grace period", "[integration][artifacts]") {
  ArtifactServer s(/*blob_grace_ms=*/200);
  const std::string bytes = Bytes(100'000, 'g');
  v1::Artifact artifact;
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(bytes), bytes, &artifact).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  CHECK(s.BlobFiles() == 1);  // held: never collected
  v1::DeleteArtifactRequest del;
  del.set_digest(artifact.digest());
  v1::DeleteArtifactResponse deleted;
  REQUIRE(s.As(s.acme_key)->DeleteArtifact(Ctx().get(), del, &deleted).ok());
  for (int i = 0; i < 100 && s.BlobFiles() > 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(s.BlobFiles() == 0);
  CHECK(s.db.Scalar("SELECT count(*) FROM blobs") == "0");
}

TEST_CASE("a worker reads a job's inputs and writes its outputs only under a live lease on that job", "[integration][artifacts][auth]") {
  ArtifactServer s(3'600'000, {"intake", "scheduler", "billing", "artifacts"});
  v1::DepositRequest deposit;
  deposit.set_account("acme");
  deposit.set_amount_utok(10'000'000);
  deposit.set_idempotency_key("d");
  v1::Transfer transfer;
  REQUIRE(v1::BillingService::NewStub(s.admin)->Deposit(Ctx().get(), deposit, &transfer).ok());
  const std::string input = Bytes(300'000, 'i'), unrelated = Bytes(1'000, 'u');
  v1::Artifact artifact;
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(input, "train.csv"), input, &artifact).ok());
  REQUIRE(s.Upload(s.acme_key, ArtifactServer::Header(unrelated, "private.csv"), unrelated, &artifact).ok());
  v1::SubmitJobRequest submit = SleepRequest("c1", 2'000'000);
  submit.mutable_spec()->clear_kind();
  v1::ContainerParams* c = submit.mutable_spec()->mutable_container();
  c->add_command("python3");
  v1::ContainerInput* in = c->add_inputs();
  in->set_artifact(DigestOf(input));
  in->set_path("train.csv");
  v1::SubmitJobResponse submitted;
  REQUIRE(v1::JobService::NewStub(s.admin)->SubmitJob(Ctx().get(), submit, &submitted).ok());
  const int64_t job = submitted.job().job_id();
  const int64_t worker = RegisterWorker(s.admin, 1'000'000, 1, "GPU-lease");
  v1::JobLease lease;
  lease.set_job_id(job);
  lease.set_attempt(1);
  lease.set_worker_id(worker);
  auto download = [&](const v1::JobLease& l, const std::string& digest, std::string* bytes) {
    auto stub = s.As(s.gpuco_key);
    grpc::ClientContext context;
    v1::DownloadArtifactRequest request;
    request.set_digest(digest);
    *request.mutable_lease() = l;
    auto reader = stub->DownloadArtifact(&context, request);
    v1::DownloadArtifactResponse m;
    bytes->clear();
    while (reader->Read(&m)) bytes->append(m.chunk());
    return reader->Finish();
  };
  auto upload_outputs = [&](const v1::JobLease& l, const std::string& bytes, v1::Artifact* out) {
    v1::UploadArtifactHeader h = ArtifactServer::Header(bytes, "outputs of job");
    h.set_kind(v1::ARTIFACT_KIND_OUTPUTS);
    *h.mutable_lease() = l;
    return s.Upload(s.gpuco_key, h, bytes, out);
  };
  std::string got;
  // No lease yet: refused.
  grpc::Status st = download(lease, DigestOf(input), &got);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), Catch::Contains("holds no live lease on job " + std::to_string(job) + " attempt 1"));
  // The lease, as the scheduler writes it.
  s.db.Scalar("UPDATE jobs SET state = 'ASSIGNED', attempt = 1, worker_id = " + std::to_string(worker) + " WHERE job_id = " +
              std::to_string(job));
  s.db.Scalar("INSERT INTO assignments (job_id, attempt, worker_id, gpu_indexes, price_utok_per_gpu_hour, state) VALUES (" +
              std::to_string(job) + ", 1, " + std::to_string(worker) + ", '{0}', 1000000, 'LIVE')");
  REQUIRE(download(lease, DigestOf(input), &got).ok());
  CHECK(got == input);
  // Only what the job names: another artifact of the same customer is refused.
  st = download(lease, DigestOf(unrelated), &got);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), Catch::Contains("names no artifact"));
  // Another attempt, another worker: refused.
  v1::JobLease wrong = lease;
  wrong.set_attempt(2);
  CHECK(download(wrong, DigestOf(input), &got).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  wrong = lease;
  wrong.set_worker_id(worker + 100);
  CHECK(download(wrong, DigestOf(input), &got).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // Outputs: recorded for the job's customer, with the job; readable by the customer.
  const std::string outputs = Bytes(50'000, 'o');
  v1::Artifact recorded;
  REQUIRE(upload_outputs(lease, outputs, &recorded).ok());
  CHECK(recorded.account() == "acme");
  CHECK(recorded.job_id() == job);
  CHECK(recorded.kind() == v1::ARTIFACT_KIND_OUTPUTS);
  v1::Artifact record;
  REQUIRE(s.Download(s.acme_key, recorded.digest(), 0, &got, &record).ok());
  CHECK(got == outputs);
  // A worker cannot upload a customer's kind of artifact, nor a customer a job's.
  v1::UploadArtifactHeader file = ArtifactServer::Header(outputs);
  *file.mutable_lease() = lease;
  CHECK_THAT(s.Upload(s.gpuco_key, file, outputs, &recorded).error_message(), Catch::StartsWith("header.kind"));
  CHECK_THAT(s.Upload(s.acme_key, file, outputs, &recorded).error_message(), Catch::StartsWith("header.lease"));
  // The lease ends: nothing more.
  s.db.Scalar("UPDATE assignments SET state = 'ENDED' WHERE job_id = " + std::to_string(job));
  CHECK(download(lease, DigestOf(input), &got).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(upload_outputs(lease, Bytes(10, 'x'), &recorded).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}

TEST_CASE("a job's checkpoints: saved under the lease (and in the grace after it), the newest two kept, read by its next attempt and its customer",
          "[integration][artifacts][checkpoints]") {
  ArtifactServer s(3'600'000, {"intake", "scheduler", "billing", "artifacts"});
  v1::DepositRequest deposit;
  deposit.set_account("acme");
  deposit.set_amount_utok(10'000'000);
  deposit.set_idempotency_key("d");
  v1::Transfer transfer;
  REQUIRE(v1::BillingService::NewStub(s.admin)->Deposit(Ctx().get(), deposit, &transfer).ok());
  v1::SubmitJobRequest submit = SleepRequest("c1", 2'000'000);
  submit.mutable_spec()->clear_kind();
  submit.mutable_spec()->mutable_container()->add_command("python3");
  v1::SubmitJobResponse submitted;
  REQUIRE(v1::JobService::NewStub(s.admin)->SubmitJob(Ctx().get(), submit, &submitted).ok());
  const int64_t job = submitted.job().job_id();
  const int64_t worker = RegisterWorker(s.admin, 1'000'000, 1, "GPU-ckpt");
  auto lease_of = [&](uint32_t attempt) {
    v1::JobLease lease;
    lease.set_job_id(job);
    lease.set_attempt(attempt);
    lease.set_worker_id(worker);
    return lease;
  };
  auto start_attempt = [&](int attempt) {
    s.db.Scalar("UPDATE jobs SET state = 'RUNNING', attempt = " + std::to_string(attempt) + ", worker_id = " + std::to_string(worker) +
                " WHERE job_id = " + std::to_string(job));
    s.db.Scalar("INSERT INTO assignments (job_id, attempt, worker_id, gpu_indexes, price_utok_per_gpu_hour, state) VALUES (" +
                std::to_string(job) + ", " + std::to_string(attempt) + ", " + std::to_string(worker) + ", '{0}', 1000000, 'LIVE')");
  };
  auto save = [&](uint32_t attempt, const std::string& bytes, v1::Artifact* out) {
    v1::UploadArtifactHeader h = ArtifactServer::Header(bytes, "checkpoint");
    h.set_kind(v1::ARTIFACT_KIND_CHECKPOINT);
    *h.mutable_lease() = lease_of(attempt);
    return s.Upload(s.gpuco_key, h, bytes, out);
  };
  auto latest = [&](const std::string& key, const v1::GetJobCheckpointRequest& request, v1::JobCheckpoint* out) {
    return v1::ArtifactService::NewStub(ChannelTo(*s.server, key))->GetJobCheckpoint(Ctx().get(), request, out);
  };
  v1::GetJobCheckpointRequest by_job;
  by_job.set_job_id(job);
  v1::JobCheckpoint checkpoint;
  v1::Artifact saved;
  CHECK(save(1, "ckpt-0", &saved).error_code() == grpc::StatusCode::PERMISSION_DENIED);  // no lease yet
  start_attempt(1);
  grpc::Status st = latest(s.acme_key, by_job, &checkpoint);
  CHECK(st.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(st.error_message(), Catch::Contains("has saved no checkpoint"));
  for (const char* bytes : {"ckpt-1", "ckpt-2", "ckpt-3"}) REQUIRE(save(1, bytes, &saved).ok());
  CHECK(saved.kind() == v1::ARTIFACT_KIND_CHECKPOINT);
  // The newest two saves are kept, the older one's artifact is gone.
  CHECK(s.db.Scalar("SELECT count(*) FROM artifacts WHERE kind = 'CHECKPOINT' AND job_id = " + std::to_string(job)) == "2");
  CHECK(s.db.Scalar("SELECT count(*) FROM job_checkpoints WHERE job_id = " + std::to_string(job)) == "2");
  CHECK(s.db.Scalar("SELECT count(*) FROM audit_log WHERE action = 'job.checkpoint' AND subject = 'job/" + std::to_string(job) + "'") == "3");
  REQUIRE(latest(s.acme_key, by_job, &checkpoint).ok());
  CHECK(checkpoint.artifact().digest() == DigestOf("ckpt-3"));
  CHECK(checkpoint.attempt() == 1);
  CHECK(latest(s.globex_key, by_job, &checkpoint).error_code() == grpc::StatusCode::NOT_FOUND);
  // The lease ended (preempted): the program's last save in its grace period still counts.
  s.db.Scalar("UPDATE assignments SET state = 'ENDED', end_reason = 'preempted', ended_at = now() WHERE job_id = " + std::to_string(job));
  REQUIRE(save(1, "ckpt-4", &saved).ok());
  // Long after, it does not; nor do outputs after the lease.
  s.db.Scalar("UPDATE assignments SET ended_at = now() - interval '10 minutes' WHERE job_id = " + std::to_string(job));
  CHECK(save(1, "ckpt-5", &saved).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // The next attempt finds the newest save by its lease and may read it; the old lease may not ask.
  start_attempt(2);
  v1::GetJobCheckpointRequest by_lease;
  *by_lease.mutable_lease() = lease_of(2);
  REQUIRE(latest(s.gpuco_key, by_lease, &checkpoint).ok());
  CHECK(checkpoint.artifact().digest() == DigestOf("ckpt-4"));
  *by_lease.mutable_lease() = lease_of(1);
  CHECK(latest(s.gpuco_key, by_lease, &checkpoint).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  auto stub = s.As(s.gpuco_key);
  grpc::ClientContext context;
  v1::DownloadArtifactRequest request;
  request.set_digest(DigestOf("ckpt-4"));
  *request.mutable_lease() = lease_of(2);
  auto reader = stub->DownloadArtifact(&context, request);
  v1::DownloadArtifactResponse m;
  std::string got;
  while (reader->Read(&m)) got += m.chunk();
  REQUIRE(reader->Finish().ok());
  CHECK(got == "ckpt-4");
}
