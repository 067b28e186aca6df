// Identity and access over the real server: the authorization matrix over every RPC of the API and
// every role, then each way a call is scoped to its caller's own account, revocation, the audit
// log, the per-key submit rate limit, the per-provider stream cap and the request size limit.
#include <google/protobuf/descriptor.h>

#include <map>
#include <optional>
#include <set>
#include <thread>

#include "services/common/grpc_status.h"
#include "services/server/thread_cap_retry_interceptor.h"
#include "tests/integration/running_server.h"

namespace tessera {
namespace {

using testing::CallUnary;
using testing::ChannelTo;
using testing::Ctx;
using testing::IssueKey;
using testing::RunningServer;

// Who besides an admin may call each RPC: the matrix of the issue, written out here independently
// of services/auth/access_policy.cc. An RPC missing from this table fails the test.
const std::map<std::string, std::set<v1::Role>> kMayCall = {
    {"tessera.v1.JobService/SubmitJob", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.JobService/GetJob", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.JobService/ListJobs", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.JobService/CancelJob", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.JobService/WatchJob", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.JobService/ExtendJob", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.WorkerService/RegisterWorker", {v1::ROLE_PROVIDER}},
    {"tessera.v1.WorkerService/Connect", {v1::ROLE_PROVIDER}},
    {"tessera.v1.WorkerService/ListWorkers", {v1::ROLE_PROVIDER}},
    {"tessera.v1.WorkerService/RetireWorker", {v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/Deposit", {}},
    {"tessera.v1.BillingService/GetBalance", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/ListTransfers", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/GetStatement", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/GetJobInvoice", {v1::ROLE_CUSTOMER}},
    {"tessera.v1.BillingService/GetUsageProof", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/RequestPayout", {v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/ListPayouts", {v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/ApprovePayout", {}},
    {"tessera.v1.BillingService/RejectPayout", {}},
    {"tessera.v1.BillingService/GetUsageReport", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.BillingService/ExportUsage", {}},
    {"tessera.v1.BillingService/GetRevenue", {}},
    {"tessera.v1.BillingService/ListSettlementBatches", {v1::ROLE_CUSTOMER, v1::ROLE_PROVIDER}},
    {"tessera.v1.AdminService/CreateAccount", {}},
    {"tessera.v1.AdminService/ListAccounts", {}},
    {"tessera.v1.AdminService/CreateApiKey", {}},
    {"tessera.v1.AdminService/ListApiKeys", {}},
    {"tessera.v1.AdminService/RevokeApiKey", {}},
    {"tessera.v1.AdminService/ListFraudSignals", {}},
    {"tessera.v1.AdminService/GetWorkerTrust", {}},
    {"tessera.v1.AdminService/QuarantineWorker", {}},
    {"tessera.v1.AdminService/ReleaseWorker", {}},
};

// Calls `method` with an empty request; streaming RPCs through their typed stubs.
grpc::Status CallEmpty(const std::shared_ptr<grpc::Channel>& channel, const google::protobuf::MethodDescriptor& method) {
  const std::string name = method.service()->full_name() + "/" + method.name();
  if (name == "tessera.v1.JobService/WatchJob") {
    auto ctx = Ctx();
    auto reader = v1::JobService::NewStub(channel)->WatchJob(ctx.get(), {});
    v1::JobUpdate update;
    while (reader->Read(&update)) {
    }
    return reader->Finish();
  }
  if (name == "tessera.v1.BillingService/ExportUsage") {
    auto ctx = Ctx();
    auto reader = v1::BillingService::NewStub(channel)->ExportUsage(ctx.get(), {});
    v1::ExportChunk chunk;
    while (reader->Read(&chunk)) {
    }
    return reader->Finish();
  }
  if (name == "tessera.v1.WorkerService/Connect") {
    auto ctx = Ctx();
    auto stream = v1::WorkerService::NewStub(channel)->Connect(ctx.get());
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(0);  // refused as INVALID_ARGUMENT once past authorization
    stream->Write(hello);
    stream->WritesDone();
    v1::ServerMessage in;
    while (stream->Read(&in)) {
    }
    return stream->Finish();
  }
  REQUIRE_FALSE(method.client_streaming());
  REQUIRE_FALSE(method.server_streaming());
  return CallUnary(channel, "/" + name, "");
}

std::vector<const google::protobuf::MethodDescriptor*> EveryRpc() {
  std::vector<const google::protobuf::MethodDescriptor*> methods;
  for (const char* service : {v1::JobService::service_full_name(), v1::WorkerService::service_full_name(),
                              v1::BillingService::service_full_name(), v1::AdminService::service_full_name()}) {
    const auto* descriptor = google::protobuf::DescriptorPool::generated_pool()->FindServiceByName(service);
    REQUIRE(descriptor != nullptr);
    for (int i = 0; i < descriptor->method_count(); ++i) methods.push_back(descriptor->method(i));
  }
  return methods;
}

TEST_CASE("every RPC authenticates its caller and admits exactly the roles of the matrix", "[integration][auth]") {
  RunningServer s;
  testing::CreateFundedMarket(s.channel);
  const std::map<v1::Role, std::string> keys = {{v1::ROLE_CUSTOMER, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "acme")},
                                                {v1::ROLE_PROVIDER, IssueKey(s.db.url(), v1::ROLE_PROVIDER, "gpuco")},
                                                {v1::ROLE_ADMIN, IssueKey(s.db.url(), v1::ROLE_ADMIN)}};
  const std::string& customer_key = keys.at(v1::ROLE_CUSTOMER);
  const std::string unknown_key = "tsk_0123456789abcdef_" + std::string(64, 'a');
  const std::string wrong_secret = customer_key.substr(0, 21) + std::string(64, '0');
  const std::map<std::string, std::string> bad_keys = {
      {"", "missing API key"}, {"tsk_short", "malformed API key"}, {unknown_key, "invalid or revoked API key"},
      {wrong_secret, "invalid or revoked API key"}};

  const auto methods = EveryRpc();
  CHECK(methods.size() == kMayCall.size());
  for (const google::protobuf::MethodDescriptor* method : methods) {
    const std::string name = method->service()->full_name() + "/" + method->name();
    INFO(name);
    REQUIRE(kMayCall.contains(name));
    for (const auto& [key, why] : bad_keys) {
      const grpc::Status st = CallEmpty(ChannelTo(*s.server, key), *method);
      CHECK(st.error_code() == grpc::StatusCode::UNAUTHENTICATED);
      CHECK_THAT(st.error_message(), Catch::Contains(why));
    }
    for (const auto& [role, key] : keys) {
      INFO("role " << v1::Role_Name(role));
      const grpc::Status st = CallEmpty(ChannelTo(*s.server, key), *method);
      const bool may = role == v1::ROLE_ADMIN || kMayCall.at(name).contains(role);
      CHECK(st.error_code() != grpc::StatusCode::UNAUTHENTICATED);
      if (may) {
        // Past authorization, an empty request fails validation or finds nothing, never the role.
        CHECK_THAT(st.error_message(), !Catch::Contains("may not call"));
      } else {
        CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
        CHECK_THAT(st.error_message(), Catch::Contains("key may not call " + name));
      }
    }
  }
}

struct TwoOfEach {
  TwoOfEach() {
    testing::CreateFundedMarket(s.channel);  // acme (funded) and gpuco
    testing::CreateAccount(s.channel, "globex", v1::ACCOUNT_KIND_CUSTOMER);
    testing::CreateAccount(s.channel, "rivalco", v1::ACCOUNT_KIND_PROVIDER);
    acme = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "acme"));
    globex = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "globex"));
    gpuco = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_PROVIDER, "gpuco"));
    rivalco = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_PROVIDER, "rivalco"));
  }
  RunningServer s{[](server::ServerOptions& o) { o.key_cache_ttl_ms = 0; }};
  std::shared_ptr<grpc::Channel> acme, globex, gpuco, rivalco;
};

TEST_CASE("a customer reads and cancels only its own jobs and billing, and learns nothing of others'", "[integration][auth]") {
  TwoOfEach m;
  v1::SubmitJobResponse submitted;
  REQUIRE(v1::JobService::NewStub(m.acme)->SubmitJob(Ctx().get(), testing::SleepRequest("mine", 2'000'000), &submitted).ok());
  const int64_t job = submitted.job().job_id();
  auto jobs_of = [](const std::shared_ptr<grpc::Channel>& c) { return v1::JobService::NewStub(c); };

  v1::GetJobRequest get;
  get.set_job_id(job);
  v1::Job seen;
  CHECK(jobs_of(m.acme)->GetJob(Ctx().get(), get, &seen).ok());
  // To globex, acme's job looks exactly like a job that was never submitted.
  const grpc::Status other = jobs_of(m.globex)->GetJob(Ctx().get(), get, &seen);
  get.set_job_id(job + 1'000);
  const grpc::Status none = jobs_of(m.globex)->GetJob(Ctx().get(), get, &seen);
  CHECK(other.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(none.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(other.error_message() == "job " + std::to_string(job) + " not found");
  CHECK(none.error_message() == "job " + std::to_string(job + 1'000) + " not found");

  v1::CancelJobRequest cancel;
  cancel.set_job_id(job);
  CHECK(jobs_of(m.globex)->CancelJob(Ctx().get(), cancel, &seen).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::ExtendJobRequest extend;
  extend.set_job_id(job);
  extend.set_additional_duration_ms(1'000);
  extend.set_request_id("x");
  CHECK(jobs_of(m.globex)->ExtendJob(Ctx().get(), extend, &seen).error_code() == grpc::StatusCode::NOT_FOUND);
  {
    v1::WatchJobRequest watch;
    watch.set_job_id(job);
    auto ctx = Ctx();
    auto reader = jobs_of(m.globex)->WatchJob(ctx.get(), watch);
    v1::JobUpdate update;
    CHECK_FALSE(reader->Read(&update));
    CHECK(reader->Finish().error_code() == grpc::StatusCode::NOT_FOUND);
  }
  v1::GetJobInvoiceRequest invoice;
  invoice.set_job_id(job);
  v1::Invoice inv;
  CHECK(v1::BillingService::NewStub(m.globex)->GetJobInvoice(Ctx().get(), invoice, &inv).error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK(v1::BillingService::NewStub(m.acme)->GetJobInvoice(Ctx().get(), invoice, &inv).ok());
  invoice.set_account("acme");
  CHECK(v1::BillingService::NewStub(m.acme)->GetJobInvoice(Ctx().get(), invoice, &inv).ok());
  // Naming another account, real or made up, is refused as in every other call (it used to be
  // ignored: any name returned the caller's own invoice).
  for (const char* name : {"globex", "nosuchco"}) {
    invoice.set_account(name);
    const grpc::Status named = v1::BillingService::NewStub(m.acme)->GetJobInvoice(Ctx().get(), invoice, &inv);
    CHECK(named.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(named.error_message() == std::string("this API key acts for account 'acme', not for account '") + name + "'");
  }

  // Naming another account is refused, in the same words whether or not that account exists.
  v1::ListJobsRequest list;
  list.set_account("acme");
  v1::ListJobsResponse listed;
  CHECK(jobs_of(m.globex)->ListJobs(Ctx().get(), list, &listed).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  v1::SubmitJobResponse stolen;
  CHECK(jobs_of(m.globex)->SubmitJob(Ctx().get(), testing::SleepRequest("on-acme", 2'000'000), &stolen).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(m.s.db.Scalar("SELECT count(*) FROM jobs") == "1");
  auto billing = v1::BillingService::NewStub(m.globex);
  v1::Balance balance;
  v1::GetBalanceRequest of;
  of.set_account("acme");
  const grpc::Status real = billing->GetBalance(Ctx().get(), of, &balance);
  of.set_account("nosuchco");
  const grpc::Status made_up = billing->GetBalance(Ctx().get(), of, &balance);
  CHECK(real.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(made_up.error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(real.error_message() == "this API key acts for account 'globex', not for account 'acme'");
  v1::ListTransfersRequest transfers;
  transfers.set_account("acme");
  v1::ListTransfersResponse t;
  CHECK(billing->ListTransfers(Ctx().get(), transfers, &t).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  v1::GetStatementRequest statement;
  statement.set_account("acme");
  statement.set_month("2026-12");
  v1::Statement st;
  CHECK(billing->GetStatement(Ctx().get(), statement, &st).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  // A provider does not read a customer's money either; the customer reads its own.
  of.set_account("acme");
  CHECK(v1::BillingService::NewStub(m.gpuco)->GetBalance(Ctx().get(), of, &balance).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  REQUIRE(v1::BillingService::NewStub(m.acme)->GetBalance(Ctx().get(), of, &balance).ok());
  CHECK(balance.available_utok() + balance.escrow_utok() == 10'000'000);

  // The customer's own cancel works.
  CHECK(jobs_of(m.acme)->CancelJob(Ctx().get(), cancel, &seen).ok());
}

TEST_CASE("a provider registers and runs only its own workers and sees only its own earnings", "[integration][auth]") {
  TwoOfEach m;
  const int64_t gpuco_worker = testing::RegisterWorker(m.gpuco, 1'000'000, 1, "GPU-own");
  // rivalco may not register a machine in gpuco's name…
  v1::RegisterWorkerRequest reg;
  reg.set_provider_account("gpuco");
  reg.set_name("imposter");
  reg.set_region("test");
  reg.set_ask_utok_per_gpu_hour(1);
  reg.set_public_key(testing::TestWorkerKey().public_key);
  v1::Gpu* gpu = reg.add_gpus();
  gpu->set_model("H100");
  gpu->set_uuid("GPU-imposter");
  gpu->set_compute_capability("9.0");
  v1::RegisterWorkerResponse registered;
  CHECK(v1::WorkerService::NewStub(m.rivalco)->RegisterWorker(Ctx().get(), reg, &registered).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  // …nor speak for gpuco's worker on a stream; an id that does not exist reads the same.
  for (int64_t id : {gpuco_worker, gpuco_worker + 100}) {
    const grpc::Status st = testing::RefusedHello(m.rivalco, id);
    CHECK(st.error_code() == grpc::StatusCode::PERMISSION_DENIED);
    CHECK(st.error_message() == "worker " + std::to_string(id) + " is not a worker of this API key's provider account");
  }
  CHECK(m.s.db.Scalar("SELECT state FROM workers WHERE worker_id = " + std::to_string(gpuco_worker)) != "ACTIVE");
  // gpuco's own stream is welcomed.
  testing::WorkerConnection own(m.gpuco, gpuco_worker);

  // Listing is scoped: rivalco sees none of gpuco's workers and may not ask for them.
  const int64_t rival_worker = testing::RegisterWorker(m.rivalco, 1'000'000, 1, "GPU-rival", [](v1::RegisterWorkerRequest& r) {
    r.set_provider_account("rivalco");
  });
  v1::ListWorkersResponse workers;
  REQUIRE(v1::WorkerService::NewStub(m.rivalco)->ListWorkers(Ctx().get(), {}, &workers).ok());
  REQUIRE(workers.workers_size() == 1);
  CHECK(workers.workers(0).worker_id() == rival_worker);
  v1::ListWorkersRequest theirs;
  theirs.set_provider_account("gpuco");
  CHECK(v1::WorkerService::NewStub(m.rivalco)->ListWorkers(Ctx().get(), theirs, &workers).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);

  // Earnings and payouts: rivalco cannot ask for gpuco's, and its listings hold only its own.
  v1::RequestPayoutRequest payout;
  payout.set_account("gpuco");
  payout.set_amount_utok(1);
  payout.set_idempotency_key("p");
  v1::Payout p;
  CHECK(v1::BillingService::NewStub(m.rivalco)->RequestPayout(Ctx().get(), payout, &p).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  v1::ListPayoutsRequest everyone;
  v1::ListPayoutsResponse payouts;
  REQUIRE(v1::BillingService::NewStub(m.rivalco)->ListPayouts(Ctx().get(), everyone, &payouts).ok());
  CHECK(payouts.payouts_size() == 0);
  v1::GetUsageReportRequest usage;
  usage.set_group_by(v1::USAGE_GROUP_WORKER);
  usage.set_account("gpuco");
  v1::UsageReportSummary summary;
  CHECK(v1::BillingService::NewStub(m.rivalco)->GetUsageReport(Ctx().get(), usage, &summary).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  usage.clear_account();  // unfiltered means "my own" for a provider
  CHECK(v1::BillingService::NewStub(m.rivalco)->GetUsageReport(Ctx().get(), usage, &summary).ok());
}

TEST_CASE("API keys: issued once as a hash, refused for the wrong account kind, revoked for good, audited", "[integration][auth]") {
  TwoOfEach m;
  auto admin = v1::AdminService::NewStub(m.s.channel);
  v1::CreateApiKeyRequest request;
  request.set_role(v1::ROLE_CUSTOMER);
  request.set_account("gpuco");
  v1::CreateApiKeyResponse key;
  CHECK(admin->CreateApiKey(Ctx().get(), request, &key).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  request.set_account("nosuchco");
  CHECK(admin->CreateApiKey(Ctx().get(), request, &key).error_code() == grpc::StatusCode::NOT_FOUND);
  request.set_role(v1::ROLE_ADMIN);
  CHECK(admin->CreateApiKey(Ctx().get(), request, &key).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  request.set_role(v1::ROLE_UNSPECIFIED);
  CHECK(admin->CreateApiKey(Ctx().get(), request, &key).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  request.set_role(v1::ROLE_CUSTOMER);
  request.set_account("globex");
  request.set_label("laptop");
  REQUIRE(admin->CreateApiKey(Ctx().get(), request, &key).ok());
  CHECK(key.secret_key().rfind("tsk_" + key.key().key_id() + "_", 0) == 0);
  // The store keeps the SHA-256 of the secret and nothing from which the secret follows.
  const std::string secret = key.secret_key().substr(21);
  CHECK(m.s.db.Scalar("SELECT count(*) FROM api_keys WHERE secret_sha256 = sha256('" + secret + "'::bytea)") == "1");
  CHECK(m.s.db.Scalar("SELECT count(*) FROM api_keys k WHERE k::text LIKE '%" + secret + "%'") == "0");

  auto channel = ChannelTo(*m.s.server, key.secret_key());
  v1::GetBalanceRequest own;
  own.set_account("globex");
  v1::Balance balance;
  REQUIRE(v1::BillingService::NewStub(channel)->GetBalance(Ctx().get(), own, &balance).ok());

  v1::ListApiKeysRequest list;
  list.set_account("globex");
  v1::ListApiKeysResponse keys;
  REQUIRE(admin->ListApiKeys(Ctx().get(), list, &keys).ok());
  CHECK(keys.keys_size() == 2);  // the fixture's and this one

  v1::RevokeApiKeyRequest revoke;
  revoke.set_key_id(key.key().key_id());
  v1::ApiKey revoked;
  REQUIRE(admin->RevokeApiKey(Ctx().get(), revoke, &revoked).ok());
  CHECK(revoked.revoked_at_ms() > 0);
  REQUIRE(admin->RevokeApiKey(Ctx().get(), revoke, &revoked).ok());  // again: unchanged
  const grpc::Status after = v1::BillingService::NewStub(channel)->GetBalance(Ctx().get(), own, &balance);
  CHECK(after.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(after.error_message() == "invalid or revoked API key");
  revoke.set_key_id("0000000000000000");
  CHECK(admin->RevokeApiKey(Ctx().get(), revoke, &revoked).error_code() == grpc::StatusCode::NOT_FOUND);
  revoke.set_key_id("not-a-key");
  CHECK(admin->RevokeApiKey(Ctx().get(), revoke, &revoked).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(admin->ListApiKeys(Ctx().get(), list, &keys).ok());
  CHECK(keys.keys_size() == 1);  // revoked keys are listed only on request
  list.set_include_revoked(true);
  REQUIRE(admin->ListApiKeys(Ctx().get(), list, &keys).ok());
  CHECK(keys.keys_size() == 2);

  // Each issue and the one effective revoke left its audit row, naming the admin key that acted.
  const std::string subject = "'api_key/" + key.key().key_id() + "'";
  CHECK(m.s.db.Scalar("SELECT string_agg(action, ',' ORDER BY audit_id) FROM audit_log WHERE subject = " + subject) ==
        "api_key.create,api_key.revoke");
  CHECK(m.s.db.Scalar("SELECT count(*) FROM audit_log WHERE subject = " + subject + " AND actor_key_id IS NULL") == "0");
}

TEST_CASE("SubmitJob is rate limited per API key, with the delay to retry after", "[integration][auth][limits]") {
  RunningServer s([](server::ServerOptions& o) {
    o.submit_rate_per_key = 0.5;  // a token every 2 s: the burst is spent long before one comes back
    o.submit_burst_per_key = 3;
  });
  testing::CreateFundedMarket(s.channel);
  auto first = v1::JobService::NewStub(ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "acme")));
  auto second = v1::JobService::NewStub(ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "acme")));
  v1::SubmitJobResponse out;
  for (int i = 0; i < 3; ++i) REQUIRE(first->SubmitJob(Ctx().get(), testing::SleepRequest("b" + std::to_string(i), 2'000'000), &out).ok());
  const grpc::Status limited = first->SubmitJob(Ctx().get(), testing::SleepRequest("b3", 2'000'000), &out);
  CHECK(limited.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(limited.error_message(), Catch::Contains("SubmitJob rate limit of 0.5/s (burst 3) exceeded for this API key"));
  const std::optional<int64_t> retry_ms = RetryDelayMs(limited);
  REQUIRE(retry_ms.has_value());
  CHECK(*retry_ms > 0);
  CHECK(*retry_ms <= 2'000);
  CHECK(s.db.Scalar("SELECT count(*) FROM jobs") == "3");  // the refused submit wrote nothing
  // Another key has its own bucket; the first key's refills after the delay.
  CHECK(second->SubmitJob(Ctx().get(), testing::SleepRequest("c0", 2'000'000), &out).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(*retry_ms + 20));
  CHECK(first->SubmitJob(Ctx().get(), testing::SleepRequest("b3", 2'000'000), &out).ok());
}

TEST_CASE("a call beyond --max-rpc-threads is refused at once with the delay to retry after", "[integration][auth][limits]") {
  // gRPC's sync server refuses such a call itself, before any service code runs; the refusal used
  // to carry no RetryInfo. Each WatchJob stream holds a call thread while it watches, so a few
  // open watches fill a small pool.
  constexpr int kThreads = 4;
  RunningServer s([](server::ServerOptions& o) {
    o.max_rpc_threads = kThreads;
    o.max_watch_streams = 64;  // the thread cap, not the watch cap, is what refuses here
  });
  testing::CreateFundedMarket(s.channel);
  auto acme = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_CUSTOMER, "acme"));
  auto jobs = v1::JobService::NewStub(acme);
  v1::SubmitJobResponse submitted;
  REQUIRE(jobs->SubmitJob(Ctx().get(), testing::SleepRequest("watched", 2'000'000), &submitted).ok());
  v1::WatchJobRequest watch;
  watch.set_job_id(submitted.job().job_id());

  struct Watch {
    std::unique_ptr<grpc::ClientContext> ctx = Ctx();
    std::unique_ptr<grpc::ClientReader<v1::JobUpdate>> reader;
  };
  std::vector<Watch> held;
  std::optional<grpc::Status> refused;
  for (int i = 0; i <= kThreads && !refused; ++i) {
    Watch& w = held.emplace_back();
    w.reader = jobs->WatchJob(w.ctx.get(), watch);
    v1::JobUpdate first;
    if (!w.reader->Read(&first)) refused = w.reader->Finish();  // the watch is served once its first update comes
  }
  REQUIRE(refused.has_value());
  CHECK(held.size() <= static_cast<size_t>(kThreads));  // one thread always stays to poll (and refuse)
  CHECK(refused->error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK_THAT(refused->error_message(), Catch::Contains("all 4 RPC threads of this server are busy (--max-rpc-threads)"));
  CHECK(RetryDelayMs(*refused) == server::kThreadCapRetryAfterMs);
  // A unary call meets the same refusal, with the same delay, while the watches hold the threads.
  v1::GetJobRequest get;
  get.set_job_id(submitted.job().job_id());
  v1::Job seen;
  const grpc::Status unary = jobs->GetJob(Ctx().get(), get, &seen);
  CHECK(unary.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  CHECK(RetryDelayMs(unary) == server::kThreadCapRetryAfterMs);
  // Once the watches end, calls are served again.
  for (Watch& w : held) w.ctx->TryCancel();
  grpc::Status after;
  for (int i = 0; i < 100; ++i) {
    after = jobs->GetJob(Ctx().get(), get, &seen);
    if (after.ok()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(RetryDelayMs(after).value_or(1'000) / 10));
  }
  CHECK(after.ok());
}

TEST_CASE("a provider holds at most --max-streams-per-provider worker streams", "[integration][auth][limits]") {
  RunningServer s([](server::ServerOptions& o) { o.max_streams_per_provider = 1; });
  testing::CreateFundedMarket(s.channel);
  auto gpuco = ChannelTo(*s.server, IssueKey(s.db.url(), v1::ROLE_PROVIDER, "gpuco"));
  const int64_t a = testing::RegisterWorker(gpuco, 1'000'000, 1, "GPU-a");
  const int64_t b = testing::RegisterWorker(gpuco, 1'000'000, 1, "GPU-b");
  {
    testing::WorkerConnection open(gpuco, a);
    grpc::ClientContext ctx;
    auto stream = v1::WorkerService::NewStub(gpuco)->Connect(&ctx);
    v1::ServerMessage in;
    CHECK_FALSE(stream->Read(&in));
    const grpc::Status st = stream->Finish();
    CHECK(st.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK_THAT(st.error_message(), Catch::Contains("already has 1 worker streams open"));
  }
  // The first stream's end frees its slot.
  for (int i = 0; i < 50; ++i) {
    grpc::ClientContext ctx;
    auto stream = v1::WorkerService::NewStub(gpuco)->Connect(&ctx);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(b);
    stream->Write(hello);
    v1::ServerMessage in;
    if (stream->Read(&in) && in.has_welcome()) {
      ctx.TryCancel();
      SUCCEED("a new stream is welcomed once the first has ended");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  FAIL("the slot of the closed stream was never freed");
}

TEST_CASE("oversized requests and fields are refused before they reach the store", "[integration][auth][limits]") {
  RunningServer s;
  testing::CreateFundedMarket(s.channel);
  v1::SubmitJobResponse out;
  auto request = testing::SleepRequest(std::string(5 * 1024 * 1024, 'x'), 2'000'000);  // over the 4 MiB message limit
  CHECK(s.Submit(request, &out).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
  request.set_request_id(std::string(129, 'x'));
  const grpc::Status long_field = s.Submit(request, &out);
  CHECK(long_field.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(long_field.error_message(), Catch::Contains("request_id must be 1..128"));
  CHECK(s.db.Scalar("SELECT count(*) FROM jobs") == "0");
}

}  // namespace
}  // namespace tessera
