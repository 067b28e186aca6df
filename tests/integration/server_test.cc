// The real server in-process on a test database, called over gRPC on a loopback port.
#include <catch2/catch.hpp>
#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <google/protobuf/descriptor_database.h>
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "tests/integration/running_server.h"

using namespace tessera;
using namespace tessera::testing;

TEST_CASE("the server answers health checks and rejects bad input with precise statuses", "[integration][server]") {
  RunningServer s;
  CreateAccount(s.channel, "acme", v1::ACCOUNT_KIND_CUSTOMER);
  // The standard grpc.health.v1 service answers SERVING for the whole server, without a key (it
  // is what load balancers and Kubernetes probes call).
  std::string health;
  CHECK(CallUnary(ChannelTo(*s.server, ""), "/grpc.health.v1.Health/Check", "", &health).ok());
  CHECK(health == std::string("\x08\x01", 2));  // HealthCheckResponse{status: SERVING}: field 1, varint 1
  v1::SubmitJobResponse out;
  auto request = SleepRequest("r1", 1'000);
  request.mutable_spec()->set_gpu_count(0);
  grpc::Status st = s.Submit(request, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("spec.gpu_count"));

  request = SleepRequest("r1", -1);
  st = s.Submit(request, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("spec.bid_utok_per_gpu_hour"));

  request = SleepRequest("r1", 1'000);
  request.mutable_spec()->set_kind("render");
  st = s.Submit(request, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("unknown job kind 'render'"));

  request = SleepRequest("r1", 1'000);
  for (int i = 0; i < 1'200; ++i) request.mutable_spec()->add_gpu_models(std::string(60, 'm'));
  st = s.Submit(request, &out);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("the limit is 65536"));

  st = s.Submit(SleepRequest("r1", 1'000'000'000), &out);
  CHECK(st.error_code() == grpc::StatusCode::FAILED_PRECONDITION);

  v1::GetJobRequest get;
  get.set_job_id(999);
  v1::Job job;
  CHECK(s.jobs->GetJob(Ctx().get(), get, &job).error_code() == grpc::StatusCode::NOT_FOUND);

  // ExtendJob: each field checked at the edge, an unknown job not found.
  struct BadExtension { int64_t job_id, ms; const char* request_id; grpc::StatusCode code; const char* says; };
  for (const BadExtension& bad : {BadExtension{0, 1'000, "x", grpc::StatusCode::INVALID_ARGUMENT, "job_id must be positive"},
                                   {1, 0, "x", grpc::StatusCode::INVALID_ARGUMENT, "additional_duration_ms must be between 1"},
                                   {1, -5, "x", grpc::StatusCode::INVALID_ARGUMENT, "additional_duration_ms must be between 1"},
                                   {1, 31LL * 24 * 3'600'000, "x", grpc::StatusCode::INVALID_ARGUMENT, "additional_duration_ms"},
                                   {1, 1'000, "", grpc::StatusCode::INVALID_ARGUMENT, "request_id must be 1..128"},
                                   {999, 1'000, "x", grpc::StatusCode::NOT_FOUND, "job 999 not found"}}) {
    v1::ExtendJobRequest extend;
    extend.set_job_id(bad.job_id);
    extend.set_additional_duration_ms(bad.ms);
    extend.set_request_id(bad.request_id);
    st = s.jobs->ExtendJob(Ctx().get(), extend, &job);
    CHECK(st.error_code() == bad.code);
    CHECK_THAT(st.error_message(), Catch::Contains(bad.says));
  }

  // Money calls: zero and negative amounts, a rejection without a reason, an unknown account.
  v1::RequestPayoutRequest payout;
  payout.set_account("acme");
  payout.set_idempotency_key("k");
  v1::Payout paid;
  for (int64_t amount : {0LL, -5LL}) {
    payout.set_amount_utok(amount);
    st = s.billing->RequestPayout(Ctx().get(), payout, &paid);
    CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(st.error_message(), Catch::Contains("amount_utok must be positive"));
  }
  v1::DecidePayoutRequest decide;
  decide.set_payout_id(1);
  st = s.billing->RejectPayout(Ctx().get(), decide, &paid);
  CHECK(st.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK_THAT(st.error_message(), Catch::Contains("reason"));
  payout.set_account("ghost");
  payout.set_amount_utok(1);
  CHECK(s.billing->RequestPayout(Ctx().get(), payout, &paid).error_code() == grpc::StatusCode::NOT_FOUND);
  v1::DepositRequest deposit;
  deposit.set_account("acme");
  deposit.set_amount_utok(0);
  deposit.set_idempotency_key("d");
  v1::Transfer transfer;
  CHECK(s.billing->Deposit(Ctx().get(), deposit, &transfer).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(s.db.Scalar("SELECT count(*) FROM jobs") == "0");
}

// grpc.health.v1.HealthCheckRequest{service}, by hand (field 1, length-delimited; the names here
// are short): Debian ships no health.proto to generate a stub from.
std::string HealthRequest(const std::string& service) {
  REQUIRE(service.size() < 128);
  return service.empty() ? "" : std::string(1, '\x0a') + static_cast<char>(service.size()) + service;
}

TEST_CASE("health answers for every hosted service and reflection v1 describes them", "[integration][server][conventions]") {
  RunningServer s;
  // Probes and reflection clients come without a key, as a load balancer or grpcurl does.
  const auto anonymous = ChannelTo(*s.server, "");
  for (const std::string service : {"", "tessera.v1.JobService", "tessera.v1.BillingService", "tessera.v1.AdminService",
                                    "tessera.v1.WorkerService"}) {
    INFO("service '" << service << "'");
    std::string health;
    REQUIRE(CallUnary(anonymous, "/grpc.health.v1.Health/Check", HealthRequest(service), &health).ok());
    CHECK(health == std::string("\x08\x01", 2));  // HealthCheckResponse{status: SERVING}
  }
  CHECK(CallUnary(anonymous, "/grpc.health.v1.Health/Check", HealthRequest("tessera.v1.Nope")).error_code() ==
        grpc::StatusCode::NOT_FOUND);

  namespace reflection = grpc::reflection::v1;
  auto stub = reflection::ServerReflection::NewStub(anonymous);
  auto context = Ctx();
  auto stream = stub->ServerReflectionInfo(context.get());
  auto ask = [&](const reflection::ServerReflectionRequest& request) {
    REQUIRE(stream->Write(request));
    reflection::ServerReflectionResponse response;
    REQUIRE(stream->Read(&response));
    return response;
  };
  reflection::ServerReflectionRequest request;
  request.set_list_services("");
  const reflection::ServerReflectionResponse services = ask(request);
  std::set<std::string> listed;
  for (const auto& service : services.list_services_response().service()) listed.insert(service.name());
  for (const char* hosted : {"tessera.v1.JobService", "tessera.v1.BillingService", "tessera.v1.AdminService",
                             "tessera.v1.WorkerService", "grpc.health.v1.Health", "grpc.reflection.v1.ServerReflection",
                             "grpc.reflection.v1alpha.ServerReflection"}) {
    CHECK(listed.contains(hosted));
  }

  // The file comes first, its imports after it, transitively: enough for a client to build the
  // service's descriptor from this answer alone.
  request.set_file_containing_symbol("tessera.v1.JobService");
  const reflection::ServerReflectionResponse file = ask(request);
  REQUIRE(file.file_descriptor_response().file_descriptor_proto_size() >= 2);
  google::protobuf::SimpleDescriptorDatabase received;
  for (const std::string& bytes : file.file_descriptor_response().file_descriptor_proto()) {
    google::protobuf::FileDescriptorProto proto;
    REQUIRE(proto.ParseFromString(bytes));
    REQUIRE(received.Add(proto));
  }
  google::protobuf::FileDescriptorProto first;
  REQUIRE(first.ParseFromString(file.file_descriptor_response().file_descriptor_proto(0)));
  CHECK(first.name() == "tessera/v1/jobs.proto");
  google::protobuf::DescriptorPool client_pool(&received);
  const google::protobuf::ServiceDescriptor* jobs = client_pool.FindServiceByName("tessera.v1.JobService");
  REQUIRE(jobs != nullptr);
  CHECK(jobs->FindMethodByName("SubmitJob") != nullptr);

  // An unknown name is an answer on the same stream, not a broken stream.
  request.set_file_containing_symbol("tessera.v1.Nope");
  const reflection::ServerReflectionResponse unknown = ask(request);
  CHECK(unknown.error_response().error_code() == static_cast<int>(grpc::StatusCode::NOT_FOUND));
  CHECK_THAT(unknown.error_response().error_message(), Catch::Contains("tessera.v1.Nope"));
  request.set_file_by_filename("tessera/v1/nope.proto");
  CHECK(ask(request).error_response().error_code() == static_cast<int>(grpc::StatusCode::NOT_FOUND));
  request.set_file_by_filename("tessera/v1/jobs.proto");
  CHECK(ask(request).file_descriptor_response().file_descriptor_proto_size() >= 2);
  REQUIRE(stream->WritesDone());
  CHECK(stream->Finish().ok());
}

// A grpc.health.v1 Watch through the generic stub (a server stream is a stream like any other on
// the wire): the statuses it hears, in order.
class HealthWatch final : public grpc::ClientBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  HealthWatch(const std::shared_ptr<grpc::Channel>& channel, const std::string& service) : stub_(channel) {
    const std::string request = HealthRequest(service);
    grpc::Slice slice(request.data(), request.size());
    request_ = grpc::ByteBuffer(&slice, 1);
    stub_.PrepareBidiStreamingCall(&context_, "/grpc.health.v1.Health/Watch", grpc::StubOptions(), this);
    StartWriteLast(&request_, grpc::WriteOptions());
    StartRead(&response_);
    StartCall();
  }
  ~HealthWatch() override {
    context_.TryCancel();
    std::unique_lock lock(mu_);
    cv_.wait(lock, [&] { return done_; });
  }
  // The next HealthCheckResponse.status heard (1 SERVING, 2 NOT_SERVING); -1 if the stream ends or
  // 10 s pass first.
  int Next() {
    std::unique_lock lock(mu_);
    cv_.wait_for(lock, std::chrono::seconds(10), [&] { return !statuses_.empty() || done_; });
    if (statuses_.empty()) return -1;
    const int status = statuses_.front();
    statuses_.erase(statuses_.begin());
    return status;
  }
  void OnReadDone(bool ok) override {
    if (!ok) return;
    std::vector<grpc::Slice> slices;
    (void)response_.Dump(&slices);
    std::string bytes;
    for (const grpc::Slice& s : slices) bytes.append(reinterpret_cast<const char*>(s.begin()), s.size());
    std::lock_guard lock(mu_);
    statuses_.push_back(bytes.size() == 2 && bytes[0] == '\x08' ? bytes[1] : 0);  // field 1, varint
    cv_.notify_all();
    StartRead(&response_);
  }
  void OnDone(const grpc::Status&) override {
    std::lock_guard lock(mu_);
    done_ = true;
    cv_.notify_all();
  }

 private:
  grpc::GenericStub stub_;
  grpc::ClientContext context_;
  grpc::ByteBuffer request_, response_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<int> statuses_;
  bool done_ = false;
};

TEST_CASE("at shutdown every service's health turns NOT_SERVING before the port closes", "[integration][server][conventions]") {
  RunningServer s;
  auto jobs = std::make_unique<HealthWatch>(ChannelTo(*s.server, ""), "tessera.v1.JobService");
  auto workers = std::make_unique<HealthWatch>(ChannelTo(*s.server, ""), "tessera.v1.WorkerService");
  REQUIRE(jobs->Next() == 1);  // SERVING
  REQUIRE(workers->Next() == 1);
  std::thread shutdown([&] { s.server->Shutdown(); });
  CHECK(jobs->Next() == 2);  // NOT_SERVING
  CHECK(workers->Next() == 2);
  // Having heard it, the watchers hang up, as a load balancer would; the drain need not wait for them.
  jobs.reset();
  workers.reset();
  shutdown.join();
}

TEST_CASE("a bid below every ask stays queued and GetJob says why", "[integration][server]") {
  // A lease that outlives a slow machine: this stream sends no heartbeats, and the wait reason
  // alone takes a market tick after the job is a second old.
  RunningServer s{[](server::ServerOptions& o) { o.scheduler.lease_timeout_ms = 60'000; }};
  CreateFundedMarket(s.channel);
  const int64_t worker_id = RegisterWorker(s.channel, 5'000'000, 1, "GPU-ask");

  grpc::ClientContext stream_context;
  auto stream = s.workers->Connect(&stream_context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage welcome;
  REQUIRE(stream->Read(&welcome));
  CHECK(welcome.has_welcome());

  v1::SubmitJobResponse submitted;
  REQUIRE(s.Submit(SleepRequest("cheap", 1'000'000), &submitted).ok());
  v1::GetJobRequest get;
  get.set_job_id(submitted.job().job_id());
  v1::Job job;
  for (int i = 0; i < 100 && job.wait_reason().empty(); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    REQUIRE(s.jobs->GetJob(Ctx().get(), get, &job).ok());
  }
  CHECK(job.state() == v1::JOB_STATE_QUEUED);
  CHECK(job.wait_reason() == "bid 1000000 below the lowest ask 5000000 of 1 matching GPUs");

  // A bid at the ask is assigned and pushed down the stream.
  v1::SubmitJobResponse second;
  REQUIRE(s.Submit(SleepRequest("fair", 5'000'000), &second).ok());
  v1::ServerMessage assignment;
  REQUIRE(stream->Read(&assignment));
  REQUIRE(assignment.has_assignment());
  CHECK(assignment.assignment().job_id() == second.job().job_id());
  CHECK(assignment.assignment().price_utok_per_gpu_hour() == 5'000'000);

  // An implausible report is refused at the edge; the stream stays usable for honest ones.
  v1::WorkerMessage report;
  report.mutable_usage()->set_job_id(second.job().job_id());
  report.mutable_usage()->set_attempt(1);
  report.mutable_usage()->set_seq(1);
  report.mutable_usage()->set_gpu_ms(-5);
  REQUIRE(stream->Write(Signed(report, worker_id)));
  v1::ServerMessage ack;
  REQUIRE(stream->Read(&ack));
  REQUIRE(ack.has_usage_ack());
  CHECK_FALSE(ack.usage_ack().accepted());
  report.mutable_usage()->set_gpu_ms(1'000);
  REQUIRE(stream->Write(Signed(report, worker_id)));
  REQUIRE(stream->Read(&ack));
  REQUIRE(ack.has_usage_ack());
  CHECK(ack.usage_ack().accepted());
  CHECK(ack.usage_ack().through_seq() == 1);
  CHECK(s.db.Scalar("SELECT gpu_ms FROM usage_reports") == "1000");
  stream_context.TryCancel();
}

TEST_CASE("services split across processes share one database", "[integration][server]") {
  testing::TestDatabase db;
  auto front = StartServer(db.url(), {"intake", "billing"});
  auto scheduler = StartServer(db.url(), {"scheduler"}, 60'000);  // the stream below sends no heartbeats
  auto front_channel = ChannelTo(*front);
  auto scheduler_channel = ChannelTo(*scheduler);

  // The front does not host WorkerService, the scheduler does not host JobService.
  v1::ListWorkersResponse none;
  CHECK(v1::WorkerService::NewStub(front_channel)->ListWorkers(Ctx().get(), {}, &none).error_code() ==
        grpc::StatusCode::UNIMPLEMENTED);

  CreateFundedMarket(front_channel);
  auto workers = v1::WorkerService::NewStub(scheduler_channel);
  const int64_t worker_id = RegisterWorker(scheduler_channel, 1'000'000, 1, "GPU-split");
  grpc::ClientContext stream_context;
  auto stream = workers->Connect(&stream_context);
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage in;
  REQUIRE(stream->Read(&in));
  REQUIRE(in.has_welcome());

  // Submitted on the front, assigned by the scheduler (woken by NOTIFY), settled by the front.
  v1::SubmitJobResponse submitted;
  auto jobs = v1::JobService::NewStub(front_channel);
  REQUIRE(jobs->SubmitJob(Ctx().get(), SleepRequest("split", 2'000'000), &submitted).ok());
  REQUIRE(stream->Read(&in));
  REQUIRE(in.has_assignment());
  const int64_t job_id = in.assignment().job_id();
  CHECK(job_id == submitted.job().job_id());
  v1::WorkerMessage m;
  m.mutable_usage()->set_job_id(job_id);
  m.mutable_usage()->set_attempt(1);
  m.mutable_usage()->set_seq(1);
  m.mutable_usage()->set_gpu_ms(36'000);
  // 36 s of GPU time needs a lease at least that old: the server refuses over-claims.
  db.Scalar("UPDATE assignments SET created_at = now() - interval '1 minute' WHERE job_id = " + std::to_string(job_id));
  REQUIRE(stream->Write(Signed(m, worker_id)));
  m.Clear();
  m.mutable_finished()->set_job_id(job_id);
  m.mutable_finished()->set_attempt(1);
  m.mutable_finished()->set_succeeded(true);
  REQUIRE(stream->Write(Signed(m, worker_id)));
  bool usage_acked = false, finish_acked = false;
  while ((!usage_acked || !finish_acked) && stream->Read(&in)) {
    usage_acked |= in.has_usage_ack() && in.usage_ack().accepted();
    finish_acked |= in.has_finished_ack();
  }
  CHECK(usage_acked);
  CHECK(finish_acked);
  v1::GetJobInvoiceRequest invoice_request;
  invoice_request.set_job_id(job_id);
  v1::Invoice invoice;
  auto billing = v1::BillingService::NewStub(front_channel);
  for (int i = 0; i < 100 && !invoice.final(); ++i) {
    REQUIRE(billing->GetJobInvoice(Ctx().get(), invoice_request, &invoice).ok());
    if (!invoice.final()) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(invoice.final());
  CHECK(invoice.charged_utok() == 10'000);  // 36 s at 1 token per GPU-hour
  CHECK(db.Scalar("SELECT sum(balance_utok) FROM ledger_accounts") == "0");
  stream_context.TryCancel();
}

TEST_CASE("a scheduler restart mid-load recovers queued and running jobs from PostgreSQL", "[integration][server][recovery]") {
  testing::TestDatabase db;
  const std::set<std::string> all = {"intake", "scheduler", "billing"};
  // A lease that outlives a slow machine: these streams send no heartbeats, and nothing here is
  // meant to expire.
  auto first = StartServer(db.url(), all, 60'000);
  auto channel = ChannelTo(*first);
  CreateFundedMarket(channel);
  const int64_t worker_id = RegisterWorker(channel, 1'000'000, 2, "GPU-recovery");

  // The worker holds two running jobs; a third is queued behind them.
  auto stream_context = std::make_unique<grpc::ClientContext>();
  auto stream = v1::WorkerService::NewStub(channel)->Connect(stream_context.get());
  v1::WorkerMessage hello;
  hello.mutable_hello()->set_worker_id(worker_id);
  REQUIRE(stream->Write(hello));
  v1::ServerMessage in;
  REQUIRE(stream->Read(&in));
  auto jobs = v1::JobService::NewStub(channel);
  std::vector<int64_t> running;
  for (const char* id : {"a", "b", "c"}) {
    v1::SubmitJobResponse submitted;
    REQUIRE(jobs->SubmitJob(Ctx().get(), SleepRequest(id, 2'000'000), &submitted).ok());
  }
  while (running.size() < 2 && stream->Read(&in)) {
    if (!in.has_assignment()) continue;
    running.push_back(in.assignment().job_id());
    v1::WorkerMessage started;
    started.mutable_started()->set_job_id(in.assignment().job_id());
    started.mutable_started()->set_attempt(in.assignment().attempt());
    REQUIRE(stream->Write(started));
  }
  REQUIRE(running.size() == 2);
  // Both starts are stored before the restart: one still in the old scheduler's inbound queue is
  // dropped by its Stop, and the job would stay ASSIGNED (no worker message restarts it).
  const auto settled_by = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (db.Scalar("SELECT count(*) FROM jobs WHERE state = 'RUNNING'") != "2" && std::chrono::steady_clock::now() < settled_by) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(db.Scalar("SELECT count(*) FROM jobs WHERE state = 'RUNNING'") == "2");
  stream_context->TryCancel();
  stream->Finish();

  // A new scheduler process on the same database: the worker reconnects still running both jobs.
  first.reset();
  auto second = StartServer(db.url(), all, 60'000);
  auto channel2 = ChannelTo(*second);
  grpc::ClientContext context2;
  auto stream2 = v1::WorkerService::NewStub(channel2)->Connect(&context2);
  hello.mutable_hello()->clear_running();
  for (int64_t job : running) {
    v1::RunningJob* r = hello.mutable_hello()->add_running();
    r->set_job_id(job);
    r->set_attempt(1);
  }
  REQUIRE(stream2->Write(hello));
  REQUIRE(stream2->Read(&in));
  REQUIRE(in.has_welcome());
  CHECK(db.Scalar("SELECT count(*) FROM jobs WHERE state = 'RUNNING' AND attempt = 1") == "2");  // nothing restarted
  CHECK(db.Scalar("SELECT count(*) FROM jobs WHERE state = 'QUEUED'") == "1");

  // Finishing one frees a GPU, and the recovered queue's job takes it.
  v1::WorkerMessage finished;
  finished.mutable_finished()->set_job_id(running[0]);
  finished.mutable_finished()->set_attempt(1);
  finished.mutable_finished()->set_succeeded(true);
  REQUIRE(stream2->Write(Signed(finished, worker_id)));
  bool assigned = false;
  while (!assigned && stream2->Read(&in)) {
    CHECK_FALSE(in.has_cancel());  // the surviving running job is never cancelled
    assigned = in.has_assignment();
  }
  REQUIRE(assigned);
  CHECK(std::find(running.begin(), running.end(), in.assignment().job_id()) == running.end());
  CHECK(db.Scalar("SELECT state FROM jobs WHERE job_id = " + std::to_string(running[1])) == "RUNNING");
  context2.TryCancel();
}

TEST_CASE("a spec names its workload; kind is filled in, and results stored before JobResult.outputs read back in it",
          "[integration][server][workloads]") {
  RunningServer s;
  CreateFundedMarket(s.channel);
  v1::SubmitJobRequest modern = SleepRequest("no-kind", 1'000'000);
  modern.mutable_spec()->clear_kind();
  v1::SubmitJobResponse first;
  REQUIRE(s.Submit(modern, &first).ok());
  CHECK(first.job().spec().kind() == "sleep");
  CHECK(s.db.Scalar("SELECT kind FROM jobs WHERE job_id = " + std::to_string(first.job().job_id())) == "sleep");
  // An older client's retry of the same request (it always sends kind) is the same spec, not a new job.
  v1::SubmitJobResponse retry;
  REQUIRE(s.Submit(SleepRequest("no-kind", 1'000'000), &retry).ok());
  CHECK(retry.deduplicated());
  CHECK(retry.job().job_id() == first.job().job_id());

  // A train_mlp job's result as it was stored before `outputs`: initial_loss, final_loss,
  // weights_sha256 as fields 1..3 (doubles 1.5 and 0.25, a 64-character hash).
  v1::SubmitJobRequest train = SleepRequest("train", 1'000'000);
  v1::TrainMlpParams* p = train.mutable_spec()->mutable_train_mlp();  // replaces the sleep: a oneof
  p->set_seed(1);
  p->set_input_dim(4);
  p->set_hidden_dim(8);
  p->set_output_dim(1);
  p->set_samples(64);
  p->set_batch_size(16);
  p->set_epochs(2);
  p->set_learning_rate_micros(50'000);
  train.mutable_spec()->clear_kind();
  v1::SubmitJobResponse trained;
  REQUIRE(s.Submit(train, &trained).ok());
  CHECK(trained.job().spec().kind() == "train_mlp");
  const std::string id = std::to_string(trained.job().job_id());
  const std::string legacy = "\\x09" "000000000000f83f" "11" "000000000000d03f" "1a40" + std::string(128, '6') /* 'f' × 64 */;
  s.db.Scalar("UPDATE jobs SET result = '" + legacy + "'::bytea WHERE job_id = " + id + " RETURNING 1");
  v1::GetJobRequest get;
  get.set_job_id(trained.job().job_id());
  v1::Job job;
  REQUIRE(s.jobs->GetJob(Ctx().get(), get, &job).ok());
  REQUIRE(job.result().has_train_mlp());
  CHECK(job.result().train_mlp().initial_loss() == 1.5);
  CHECK(job.result().train_mlp().final_loss() == 0.25);
  CHECK(job.result().train_mlp().weights_sha256() == std::string(64, 'f'));
  // Nothing but the new layout goes out.
  v1::JobResult expected;
  *expected.mutable_train_mlp() = job.result().train_mlp();
  CHECK(job.result().SerializeAsString() == expected.SerializeAsString());
}
