// tessera.v1.LogService on the real server (issue 18), over gRPC: a worker's lines stored once and
// in order under its lease (a resend after a broken connection is no duplicate), a customer reading
// only its own jobs' logs, the per-job bound cutting the oldest lines with a marker, and a follower
// that ends once the job's output is complete.
#include <catch2/catch.hpp>
#include <stdlib.h>

#include <filesystem>
#include <thread>

#include "tessera/v1/logs.grpc.pb.h"
#include "tests/integration/running_server.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

struct LogServer {
  TestDatabase db;
  std::filesystem::path root;
  std::unique_ptr<server::TesseraServer> server;
  std::shared_ptr<grpc::Channel> admin;
  std::string acme_key, globex_key, gpuco_key;
  int64_t job = 0, worker = 0;

  explicit LogServer(int64_t max_job_log_bytes = int64_t{16} << 20) {
    char tmpl[] = "/tmp/tessera-log-service-XXXXXX";
    root = mkdtemp(tmpl);
    server = StartServer(db.url(), {"intake", "scheduler", "billing", "artifacts"}, 60'000, [&](server::ServerOptions& o) {
      o.artifact_dir = root;
      o.log_limits.max_job_log_bytes = max_job_log_bytes;
    });
    admin = ChannelTo(*server);
    CreateAccount(admin, "acme", v1::ACCOUNT_KIND_CUSTOMER);
    CreateAccount(admin, "globex", v1::ACCOUNT_KIND_CUSTOMER);
    CreateAccount(admin, "gpuco", v1::ACCOUNT_KIND_PROVIDER);
    acme_key = IssueKey(db.url(), v1::ROLE_CUSTOMER, "acme");
    globex_key = IssueKey(db.url(), v1::ROLE_CUSTOMER, "globex");
    gpuco_key = IssueKey(db.url(), v1::ROLE_PROVIDER, "gpuco");
    v1::DepositRequest deposit;
    deposit.set_account("acme");
    deposit.set_amount_utok(10'000'000);
    deposit.set_idempotency_key("d");
    v1::Transfer transfer;
    REQUIRE(v1::BillingService::NewStub(admin)->Deposit(Ctx().get(), deposit, &transfer).ok());
    v1::SubmitJobResponse submitted;
    REQUIRE(v1::JobService::NewStub(admin)->SubmitJob(Ctx().get(), SleepRequest("log-1", 2'000'000), &submitted).ok());
    job = submitted.job().job_id();
    worker = RegisterWorker(admin, 1'000'000, 1, "GPU-log");
  }
  ~LogServer() {
    server.reset();
    std::filesystem::remove_all(root);
  }

  // The lease of attempt 1, as the scheduler writes it.
  void Lease() {
    db.Scalar("UPDATE jobs SET state = 'RUNNING', attempt = 1, worker_id = " + std::to_string(worker) + " WHERE job_id = " + std::to_string(job));
    db.Scalar("INSERT INTO assignments (job_id, attempt, worker_id, gpu_indexes, price_utok_per_gpu_hour, state) VALUES (" +
              std::to_string(job) + ", 1, " + std::to_string(worker) + ", '{0}', 1000000, 'LIVE')");
  }

  v1::JobLease JobLease() const {
    v1::JobLease lease;
    lease.set_job_id(job);
    lease.set_attempt(1);
    lease.set_worker_id(worker);
    return lease;
  }

  // Lines "<prefix>0", "<prefix>1", … numbered from first_seq.
  grpc::Status Append(uint64_t first_seq, int count, const std::string& prefix, uint64_t* next, bool final = false,
                      const std::string& key = "") {
    v1::AppendJobLogRequest request;
    *request.mutable_lease() = JobLease();
    request.set_first_seq(first_seq);
    request.set_final(final);
    for (int i = 0; i < count; ++i) {
      v1::LogLine* line = request.add_lines();
      line->set_time_ms(1'700'000'000'000 + static_cast<int64_t>(first_seq) + i);
      line->set_stream(i % 2 == 0 ? v1::LOG_STREAM_STDOUT : v1::LOG_STREAM_STDERR);
      line->set_text(prefix + std::to_string(first_seq + static_cast<uint64_t>(i)));
    }
    v1::AppendJobLogResponse response;
    grpc::Status s = v1::LogService::NewStub(ChannelTo(*server, key.empty() ? gpuco_key : key))->AppendJobLog(Ctx().get(), request, &response);
    if (next != nullptr) *next = response.next_seq();
    if (!s.ok()) UNSCOPED_INFO("AppendJobLog: " << s.error_message());
    return s;
  }

  grpc::Status Read(const std::string& key, v1::ReadJobLogRequest request, std::vector<v1::LogLine>* lines) {
    if (request.job_id() == 0) request.set_job_id(job);
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
    auto reader = v1::LogService::NewStub(ChannelTo(*server, key))->ReadJobLog(&context, request);
    v1::ReadJobLogResponse response;
    lines->clear();
    while (reader->Read(&response)) lines->insert(lines->end(), response.lines().begin(), response.lines().end());
    return reader->Finish();
  }
};

std::vector<std::string> Texts(const std::vector<v1::LogLine>& lines) {
  std::vector<std::string> texts;
  for (const v1::LogLine& l : lines) texts.push_back(l.text());
  return texts;
}

}  // namespace

TEST_CASE("a worker's log lines are stored once and in order under its lease; a customer reads its own job's", "[integration][logs]") {
  LogServer s;
  uint64_t next = 0;
  // No lease yet: refused.
  grpc::Status st = s.Append(0, 3, "line ", &next);
  CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK_THAT(st.error_message(), Catch::Contains("holds no live lease on job " + std::to_string(s.job) + " attempt 1"));
  s.Lease();
  REQUIRE(s.Append(0, 3, "line ", &next).ok());
  CHECK(next == 3);
  // The connection broke before the reply: the worker sends lines 0..3 again; 0..2 are not stored twice.
  REQUIRE(s.Append(0, 4, "line ", &next).ok());
  CHECK(next == 4);
  // A gap is refused, naming what the server expects.
  st = s.Append(10, 1, "line ", &next);
  CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(st.error_message(), Catch::Contains("first_seq: 10") && Catch::Contains("expects is 4"));
  // A customer's key appends nothing; a bad line is named.
  CHECK(s.Append(4, 1, "x", &next, false, s.acme_key).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  {
    v1::AppendJobLogRequest bad;
    *bad.mutable_lease() = s.JobLease();
    bad.set_first_seq(4);
    bad.add_lines()->set_text("no stream");
    v1::AppendJobLogResponse r;
    st = v1::LogService::NewStub(ChannelTo(*s.server, s.gpuco_key))->AppendJobLog(Ctx().get(), bad, &r);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::Contains("lines[0].stream"));
  }

  std::vector<v1::LogLine> lines;
  REQUIRE(s.Read(s.acme_key, {}, &lines).ok());
  CHECK(Texts(lines) == std::vector<std::string>{"line 0", "line 1", "line 2", "line 3"});
  REQUIRE(lines.size() == 4);
  for (uint64_t i = 0; i < 4; ++i) {
    CHECK(lines[i].seq() == i);
    CHECK(lines[i].attempt() == 1);
    CHECK(lines[i].time_ms() == 1'700'000'000'000 + static_cast<int64_t>(i));
  }
  CHECK(lines[1].stream() == v1::LOG_STREAM_STDERR);
  // Another customer does not learn the job exists; the admin reads it.
  CHECK(s.Read(s.globex_key, {}, &lines).error_code() == grpc::StatusCode::NOT_FOUND);
  REQUIRE(s.Read(IssueKey(s.db.url(), v1::ROLE_ADMIN), {}, &lines).ok());
  CHECK(lines.size() == 4);
  // The last two; from a position; another attempt's (none).
  v1::ReadJobLogRequest tail;
  tail.set_tail_lines(2);
  REQUIRE(s.Read(s.acme_key, tail, &lines).ok());
  CHECK(Texts(lines) == std::vector<std::string>{"line 2", "line 3"});
  v1::ReadJobLogRequest resume;
  v1::LogPosition* at = resume.add_after();
  at->set_attempt(1);
  at->set_next_seq(3);
  REQUIRE(s.Read(s.acme_key, resume, &lines).ok());
  CHECK(Texts(lines) == std::vector<std::string>{"line 3"});
  v1::ReadJobLogRequest other;
  other.set_attempt(2);
  REQUIRE(s.Read(s.acme_key, other, &lines).ok());
  CHECK(lines.empty());
  v1::ReadJobLogRequest no_job;
  no_job.set_job_id(-1);
  CHECK(s.Read(s.acme_key, no_job, &lines).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
}

TEST_CASE("past a job's log limit its oldest lines are cut, and a reader is told how many", "[integration][logs]") {
  LogServer s(2'000);
  s.Lease();
  uint64_t next = 0;
  // 20 appends of 10 lines of ~20 bytes: about 4,000 bytes against a limit of 2,000.
  for (int i = 0; i < 20; ++i) REQUIRE(s.Append(next, 10, "a line of text no. ", &next).ok());
  CHECK(next == 200);
  const int64_t stored = std::stoll(s.db.Scalar("SELECT stored_bytes FROM job_logs WHERE job_id = " + std::to_string(s.job)));
  CHECK(stored <= 2'000);
  CHECK(stored == std::stoll(s.db.Scalar("SELECT sum(bytes) FROM job_log_chunks WHERE job_id = " + std::to_string(s.job))));
  std::vector<v1::LogLine> lines;
  REQUIRE(s.Read(s.acme_key, {}, &lines).ok());
  REQUIRE(lines.size() > 2);
  CHECK(lines[0].stream() == v1::LOG_STREAM_SYSTEM);
  const uint64_t first_kept = lines[1].seq();
  CHECK(first_kept > 0);
  CHECK(lines[0].seq() == first_kept - 1);
  CHECK_THAT(lines[0].text(), Catch::Contains(std::to_string(first_kept) + " earlier lines cut"));
  // What is kept is contiguous up to the last line.
  for (size_t i = 1; i < lines.size(); ++i) CHECK(lines[i].seq() == first_kept + i - 1);
  CHECK(lines.back().text() == "a line of text no. 199");
  // A reader that had passed the cut is not told again.
  v1::ReadJobLogRequest resume;
  v1::LogPosition* at = resume.add_after();
  at->set_attempt(1);
  at->set_next_seq(first_kept);
  REQUIRE(s.Read(s.acme_key, resume, &lines).ok());
  REQUIRE_FALSE(lines.empty());
  CHECK(lines[0].stream() != v1::LOG_STREAM_SYSTEM);
  // Empty lines count against the limit too: what is stored stays bounded.
  for (int i = 0; i < 20; ++i) {
    v1::AppendJobLogRequest empty;
    *empty.mutable_lease() = s.JobLease();
    empty.set_first_seq(next);
    for (int j = 0; j < 1'000; ++j) empty.add_lines()->set_stream(v1::LOG_STREAM_STDOUT);
    v1::AppendJobLogResponse r;
    REQUIRE(v1::LogService::NewStub(ChannelTo(*s.server, s.gpuco_key))->AppendJobLog(Ctx().get(), empty, &r).ok());
    next = r.next_seq();
  }
  CHECK(std::stoll(s.db.Scalar("SELECT coalesce(sum(length(lines)), 0) FROM job_log_chunks WHERE job_id = " + std::to_string(s.job))) <= 2'000);
}

TEST_CASE("a follower gets lines as they come and stops once the job's output is complete", "[integration][logs]") {
  LogServer s;
  s.Lease();
  uint64_t next = 0;
  REQUIRE(s.Append(0, 2, "early ", &next).ok());
  std::vector<v1::LogLine> followed;
  grpc::Status follow_status;
  std::thread follower([&] {
    v1::ReadJobLogRequest request;
    request.set_follow(true);
    follow_status = s.Read(s.acme_key, request, &followed);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  REQUIRE(s.Append(2, 2, "late ", &next).ok());
  // The job ends (cancelled): its lease ends with it, and the program's last lines still come, for the grace.
  s.db.Scalar("UPDATE assignments SET state = 'ENDED', end_reason = 'cancelled', ended_at = now() WHERE job_id = " + std::to_string(s.job));
  s.db.Scalar("UPDATE jobs SET state = 'CANCELLED' WHERE job_id = " + std::to_string(s.job));
  std::this_thread::sleep_for(std::chrono::milliseconds(600));
  REQUIRE(s.Append(4, 1, "last ", &next, true).ok());
  follower.join();
  REQUIRE(follow_status.ok());
  CHECK(Texts(followed) == std::vector<std::string>{"early 0", "early 1", "late 2", "late 3", "last 4"});
  // Long after the lease ended, nothing more is taken.
  s.db.Scalar("UPDATE assignments SET ended_at = now() - interval '10 minutes' WHERE job_id = " + std::to_string(s.job));
  CHECK(s.Append(5, 1, "stale ", &next).error_code() == grpc::StatusCode::PERMISSION_DENIED);
}
