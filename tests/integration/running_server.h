// The real server in-process on a test database, called over gRPC on a loopback port: helpers
// shared by the integration tests that drive it.
#pragma once

#include <catch2/catch.hpp>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>

#include <condition_variable>
#include <functional>
#include <optional>
#include <map>
#include <mutex>
#include <set>

#include "services/auth/api_key_repository.h"
#include "services/auth/client_channel.h"
#include "services/common/worker_signing.h"
#include "services/server/tessera_server.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/billing.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tessera/v1/workers.grpc.pb.h"
#include "tests/support/test_database.h"

namespace tessera::testing {

inline std::unique_ptr<grpc::ClientContext> Ctx() {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  return c;
}

// Calls a unary RPC by its full name ("/pkg.Service/Method") with a serialized request, as any
// client of the API could; returns the status and fills `response`.
inline grpc::Status CallUnary(const std::shared_ptr<grpc::Channel>& channel, const std::string& method, const std::string& request,
                              std::string* response = nullptr) {
  grpc::Slice slice(request.data(), request.size());
  grpc::ByteBuffer request_bytes(&slice, 1), response_bytes;
  grpc::GenericStub generic(channel);
  auto ctx = Ctx();
  std::mutex mu;
  std::condition_variable cv;
  std::optional<grpc::Status> status;
  generic.UnaryCall(ctx.get(), method, grpc::StubOptions(), &request_bytes, &response_bytes, [&](grpc::Status st) {
    std::lock_guard lock(mu);
    status = st;
    cv.notify_one();
  });
  std::unique_lock lock(mu);
  cv.wait(lock, [&] { return status.has_value(); });
  if (response != nullptr && status->ok()) {
    std::vector<grpc::Slice> slices;
    (void)response_bytes.Dump(&slices);
    response->clear();
    for (const grpc::Slice& s : slices) response->append(reinterpret_cast<const char*>(s.begin()), s.size());
  }
  return *status;
}

// An API key issued straight into the test database, as an operator with database access would.
inline std::string IssueKey(const std::string& database_url, v1::Role role, const std::string& account = "") {
  auto db = store::Database::Open(database_url, 1);
  REQUIRE(db.ok());
  auth::ApiKeyRepository keys(**db);
  v1::CreateApiKeyRequest request;
  request.set_role(role);
  request.set_account(account);
  request.set_label("test");
  absl::StatusOr<v1::CreateApiKeyResponse> key = keys.Create(request, "");
  INFO(key.status().ToString());
  REQUIRE(key.ok());
  return key->secret_key();
}

// The admin key of each test database, and of each server's port, for ChannelTo.
struct AdminKeys {
  std::mutex mu;
  std::map<std::string, std::string> by_url;
  std::map<int, std::string> by_port;
  static AdminKeys& Get() {
    static AdminKeys keys;
    return keys;
  }
};

inline std::string AdminKeyFor(const std::string& database_url) {
  AdminKeys& keys = AdminKeys::Get();
  std::lock_guard lock(keys.mu);
  auto [it, added] = keys.by_url.try_emplace(database_url);
  if (added) it->second = IssueKey(database_url, v1::ROLE_ADMIN);
  return it->second;
}

// The server on a test database; the database gets an admin key first (so the server issues none).
inline std::unique_ptr<server::TesseraServer> StartServer(
    const std::string& database_url, std::set<std::string> services = {"intake", "scheduler", "billing"},
    int64_t lease_timeout_ms = 2'000, const std::function<void(server::ServerOptions&)>& customize = {}) {
  const std::string admin_key = AdminKeyFor(database_url);
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.database_url = database_url;
  options.services = std::move(services);
  options.scheduler.lease_timeout_ms = lease_timeout_ms;
  // The fixtures' workers claim H100s they are not: proof of GPU is on only where a test turns it
  // on (challenge_test), and the end-to-end tests run real agents against the default (on).
  options.scheduler.verifier.enabled = false;
  if (customize) customize(options);
  auto started = server::TesseraServer::Start(options);
  INFO(started.status().ToString());
  REQUIRE(started.ok());
  AdminKeys& keys = AdminKeys::Get();
  std::lock_guard lock(keys.mu);
  keys.by_port[(*started)->port()] = admin_key;
  return *std::move(started);
}

// A channel to the server that calls with `api_key`, by default its database's admin key.
inline std::shared_ptr<grpc::Channel> ChannelTo(const server::TesseraServer& server, std::optional<std::string> api_key = {}) {
  if (!api_key) {
    AdminKeys& keys = AdminKeys::Get();
    std::lock_guard lock(keys.mu);
    api_key = keys.by_port.at(server.port());
  }
  return auth::AuthenticatedChannel("127.0.0.1:" + std::to_string(server.port()), *api_key);
}

inline void CreateAccount(const std::shared_ptr<grpc::Channel>& channel, const std::string& name, v1::AccountKind kind) {
  v1::CreateAccountRequest r;
  r.set_name(name);
  r.set_kind(kind);
  v1::Account a;
  REQUIRE(v1::AdminService::NewStub(channel)->CreateAccount(Ctx().get(), r, &a).ok());
}

// The customer `acme`, funded with 10 tokens, and the provider `gpuco`.
inline void CreateFundedMarket(const std::shared_ptr<grpc::Channel>& channel) {
  CreateAccount(channel, "acme", v1::ACCOUNT_KIND_CUSTOMER);
  CreateAccount(channel, "gpuco", v1::ACCOUNT_KIND_PROVIDER);
  v1::DepositRequest deposit;
  deposit.set_account("acme");
  deposit.set_amount_utok(10'000'000);
  deposit.set_idempotency_key("d");
  v1::Transfer transfer;
  REQUIRE(v1::BillingService::NewStub(channel)->Deposit(Ctx().get(), deposit, &transfer).ok());
}

// The key every test worker registers and signs with (tests need no secrecy; each worker's id is
// in what it signs, so a signature still never fits another worker's report).
inline const WorkerKeyPair& TestWorkerKey() {
  static const WorkerKeyPair key = WorkerKeyPair::FromSeed("tessera test worker key");
  return key;
}

// `m` as worker `worker_id` sends it: usage and results signed.
inline v1::WorkerMessage Signed(v1::WorkerMessage m, int64_t worker_id) {
  if (m.has_usage()) SignUsage(TestWorkerKey(), worker_id, m.mutable_usage());
  if (m.has_finished()) SignFinished(TestWorkerKey(), worker_id, m.mutable_finished());
  return m;
}

// A worker of `gpuco` with `gpus` H100s, registered with TestWorkerKey; returns its id.
inline int64_t RegisterWorker(const std::shared_ptr<grpc::Channel>& channel, int64_t ask, uint32_t gpus,
                              const std::string& uuid_prefix,
                              const std::function<void(v1::RegisterWorkerRequest&)>& customize = {}) {
  v1::RegisterWorkerRequest reg;
  reg.set_provider_account("gpuco");
  reg.set_name("w1");
  reg.set_region("test");
  reg.set_ask_utok_per_gpu_hour(ask);
  reg.set_public_key(TestWorkerKey().public_key);
  for (uint32_t i = 0; i < gpus; ++i) {
    v1::Gpu* gpu = reg.add_gpus();
    gpu->set_index(i);
    gpu->set_model("H100");
    gpu->set_memory_mib(80'000);
    gpu->set_compute_capability("9.0");
    gpu->set_uuid(uuid_prefix + "-" + std::to_string(i));
  }
  if (customize) customize(reg);
  v1::RegisterWorkerResponse registered;
  REQUIRE(v1::WorkerService::NewStub(channel)->RegisterWorker(Ctx().get(), reg, &registered).ok());
  return registered.worker_id();
}

struct RunningServer {
  explicit RunningServer(const std::function<void(server::ServerOptions&)>& customize = {})
      : server(StartServer(db.url(), {"intake", "scheduler", "billing"}, 2'000, customize)),
        channel(ChannelTo(*server)),
        jobs(v1::JobService::NewStub(channel)),
        workers(v1::WorkerService::NewStub(channel)),
        billing(v1::BillingService::NewStub(channel)) {}
  grpc::Status Submit(const v1::SubmitJobRequest& r, v1::SubmitJobResponse* out) { return jobs->SubmitJob(Ctx().get(), r, out); }

  TestDatabase db;
  std::unique_ptr<server::TesseraServer> server;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::JobService::Stub> jobs;
  std::unique_ptr<v1::WorkerService::Stub> workers;
  std::unique_ptr<v1::BillingService::Stub> billing;
};

inline v1::SubmitJobRequest SleepRequest(const std::string& request_id, int64_t bid) {
  v1::SubmitJobRequest r;
  r.set_account("acme");
  r.set_request_id(request_id);
  r.mutable_spec()->set_kind("sleep");
  r.mutable_spec()->set_gpu_count(1);
  r.mutable_spec()->set_bid_utok_per_gpu_hour(bid);
  r.mutable_spec()->set_max_duration_ms(60'000);
  r.mutable_spec()->mutable_sleep()->set_duration_ms(10);
  return r;
}


// Says hello for `worker_id` on a new stream and expects the server to end it at once; returns the
// status it ended with.
inline grpc::Status RefusedHello(const std::shared_ptr<grpc::Channel>& channel, int64_t worker_id) {
  grpc::ClientContext ctx;
  auto stream = v1::WorkerService::NewStub(channel)->Connect(&ctx);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage in;
  CHECK_FALSE(stream->Read(&in));
  return stream->Finish();
}

// A worker's Connect stream that has said hello and read its welcome.
struct WorkerConnection {
  WorkerConnection(const std::shared_ptr<grpc::Channel>& channel, int64_t worker_id,
                   const std::function<void(v1::Hello&)>& customize = {})
      : stub(v1::WorkerService::NewStub(channel)), stream(stub->Connect(&context)), worker_id(worker_id) {
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_id);
    if (customize) customize(*hello.mutable_hello());
    REQUIRE(stream->Write(hello));
    v1::ServerMessage welcome;
    REQUIRE(stream->Read(&welcome));
    REQUIRE(welcome.has_welcome());
  }
  ~WorkerConnection() { context.TryCancel(); }

  // The next message for which `wanted` holds (others are skipped); fails the test on stream end.
  v1::ServerMessage ReadUntil(const std::function<bool(const v1::ServerMessage&)>& wanted) {
    v1::ServerMessage in;
    while (stream->Read(&in)) {
      if (wanted(in)) return in;
    }
    FAIL("the stream ended first");
    return in;
  }
  // Sends `m` signed with the test worker key.
  void Send(const v1::WorkerMessage& m) { REQUIRE(stream->Write(Signed(m, worker_id))); }

  grpc::ClientContext context;
  std::unique_ptr<v1::WorkerService::Stub> stub;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>> stream;
  int64_t worker_id;
};

}  // namespace tessera::testing
