// Load generator for the whole submit → match → run → report → settle path.
//
// Starts the real server in-process on an embedded PostgreSQL (a temp dir), connects K simulated
// workers over the real Connect protocol (each with G devices, completing `sleep` jobs of 0 ms at
// once: started, one usage report, finished), submits N jobs from C concurrent clients (one
// customer account per client, as many customers would), and prints the submit rate, the
// submit→complete throughput and latency percentiles, and where the time goes.
//
//   build/bench/tessera_loadgen --jobs 10000 --workers 100 --clients 16
#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sys/resource.h>
#include <unistd.h>
#include <map>
#include <mutex>
#include <thread>
#include <pqxx/pqxx>

#include "services/auth/client_channel.h"
#include "services/common/grpc_status.h"
#include "services/common/worker_signing.h"
#include "services/server/tessera_server.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/billing.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tessera/v1/workers.grpc.pb.h"

using namespace tessera;
using SteadyClock = std::chrono::steady_clock;

namespace {

// CPU seconds used by the whole machine (all processes) and by this process, so that a run can
// say how much went to PostgreSQL (everything else on an otherwise idle machine).
double MachineCpuSeconds() {
  std::ifstream stat("/proc/stat");
  std::string cpu;
  uint64_t user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0, steal = 0;
  stat >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal;
  return static_cast<double>(user + nice + system + irq + softirq + steal) / static_cast<double>(sysconf(_SC_CLK_TCK));
}

double ProcessCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

double Ms(SteadyClock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

struct Timeline {
  std::mutex mu;
  std::map<int64_t, SteadyClock::time_point> submitted, submit_returned, assigned, completed;
  void Mark(std::map<int64_t, SteadyClock::time_point>& which, int64_t job, SteadyClock::time_point t) {
    std::lock_guard lock(mu);
    which.emplace(job, t);
  }
};

std::unique_ptr<grpc::ClientContext> Ctx(int seconds = 30) {
  auto c = std::make_unique<grpc::ClientContext>();
  c->set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(seconds));
  return c;
}

class SimulatedWorker {
 public:
  SimulatedWorker(std::shared_ptr<grpc::Channel> channel, int64_t worker_id, WorkerKeyPair key, Timeline& timeline,
                  std::atomic<int64_t>& done)
      : stub_(v1::WorkerService::NewStub(channel)), worker_id_(worker_id), key_(std::move(key)), timeline_(timeline), done_(done) {
    thread_ = std::thread([this] { Run(); });
  }
  ~SimulatedWorker() {
    context_.TryCancel();
    thread_.join();
  }

 private:
  void Run() {
    auto stream = stub_->Connect(&context_);
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_id_);
    stream->Write(hello);
    v1::ServerMessage in;
    while (stream->Read(&in)) {
      if (in.has_assignment()) {
        const auto& a = in.assignment();
        timeline_.Mark(timeline_.assigned, a.job_id(), SteadyClock::now());
        v1::WorkerMessage m;
        m.mutable_started()->set_job_id(a.job_id());
        m.mutable_started()->set_attempt(a.attempt());
        stream->Write(m);
        m.Clear();
        v1::UsageReport* u = m.mutable_usage();
        u->set_job_id(a.job_id());
        u->set_attempt(a.attempt());
        u->set_seq(1);
        u->set_gpu_ms(0);
        SignUsage(key_, worker_id_, u);  // as a real agent does: the server verifies every report
        stream->Write(m);
        m.Clear();
        v1::JobFinished* f = m.mutable_finished();
        f->set_job_id(a.job_id());
        f->set_attempt(a.attempt());
        f->set_succeeded(true);
        f->set_last_usage_seq(1);
        SignFinished(key_, worker_id_, f);
        stream->Write(m);
      } else if (in.has_finished_ack()) {
        timeline_.Mark(timeline_.completed, in.finished_ack().job_id(), SteadyClock::now());
        done_++;
      }
    }
    stream->Finish();
  }

  std::unique_ptr<v1::WorkerService::Stub> stub_;
  const int64_t worker_id_;
  const WorkerKeyPair key_;
  Timeline& timeline_;
  std::atomic<int64_t>& done_;
  grpc::ClientContext context_;
  std::thread thread_;
};

void PrintPercentiles(const char* what, std::vector<double> v) {
  if (v.empty()) return;
  std::sort(v.begin(), v.end());
  auto p = [&](double q) { return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))]; };
  std::printf("  %-34s p50 %8.1f ms  p90 %8.1f ms  p99 %8.1f ms  max %8.1f ms\n", what, p(0.5), p(0.9), p(0.99), v.back());
}

std::vector<double> Between(const std::map<int64_t, SteadyClock::time_point>& from, const std::map<int64_t, SteadyClock::time_point>& to) {
  std::vector<double> out;
  for (const auto& [job, t] : to) {
    auto it = from.find(job);
    if (it != from.end()) out.push_back(Ms(t - it->second));
  }
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  int jobs = 10'000, workers = 100, clients = 16, gpus_per_worker = 4, warmup = 1'000;
  bool durable = true, statements = false;
  CLI::App app{"Tessera load generator"};
  app.add_option("--jobs", jobs);
  app.add_option("--workers", workers);
  app.add_option("--clients", clients);
  app.add_option("--warmup", warmup, "Jobs run before the measured ones, not counted");
  app.add_option("--gpus-per-worker", gpus_per_worker);
  app.add_flag("!--no-fsync", durable, "Run the embedded PostgreSQL without fsync");
  app.add_flag("--statements", statements, "Load pg_stat_statements and print where PostgreSQL spent its time");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  char tmpl[] = "/tmp/tessera-loadgen-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::filesystem::permissions(dir, std::filesystem::perms(0755));
  server::ServerOptions options;
  options.listen_address = "127.0.0.1:0";
  options.data_dir = dir;
  options.durable_embedded_database = durable;
  if (statements) options.embedded_database_settings =
        "shared_preload_libraries = 'pg_stat_statements'\npg_stat_statements.track_planning = on";
  options.scheduler.lease_timeout_ms = 120'000;
  // The simulated H100s cannot prove hardware they do not have; this measures scheduling, and the
  // challenge happens once per machine, not per job.
  options.scheduler.verifier.enabled = false;
  options.db_pool_size = 32;
  auto server = server::TesseraServer::Start(options);
  if (!server.ok()) {
    std::fprintf(stderr, "cannot start the server: %s\n", server.status().ToString().c_str());
    return 1;
  }
  const std::string address = "127.0.0.1:" + std::to_string((*server)->port());
  absl::StatusOr<std::string> admin_key = auth::ReadApiKeyFile((*server)->issued_admin_key_file());
  if (!admin_key.ok()) {
    std::fprintf(stderr, "%s\n", admin_key.status().ToString().c_str());
    return 1;
  }
  auto admin_channel = auth::AuthenticatedChannel(address, *admin_key);
  auto admin = v1::AdminService::NewStub(admin_channel);
  auto billing = v1::BillingService::NewStub(admin_channel);
  // Every party calls with its own API key, as in production: the customers' submits are
  // authenticated, scoped and rate limited per key.
  auto key_for = [&](v1::Role role, const std::string& account) {
    v1::CreateApiKeyRequest request;
    request.set_role(role);
    request.set_account(account);
    v1::CreateApiKeyResponse key;
    (void)admin->CreateApiKey(Ctx().get(), request, &key);
    return key.secret_key();
  };

  // Setup: one provider, K workers; C customers, each funded.
  v1::CreateAccountRequest account;
  v1::Account created;
  account.set_name("provider");
  account.set_kind(v1::ACCOUNT_KIND_PROVIDER);
  admin->CreateAccount(Ctx().get(), account, &created);
  auto channel = auth::AuthenticatedChannel(address, key_for(v1::ROLE_PROVIDER, "provider"));
  auto worker_stub = v1::WorkerService::NewStub(channel);
  std::vector<std::string> customer_keys;
  for (int c = 0; c < clients; ++c) {
    account.set_name("customer" + std::to_string(c));
    account.set_kind(v1::ACCOUNT_KIND_CUSTOMER);
    admin->CreateAccount(Ctx().get(), account, &created);
    v1::DepositRequest deposit;
    deposit.set_account(account.name());
    deposit.set_amount_utok(1'000'000'000'000);
    deposit.set_idempotency_key("fund-" + std::to_string(c));
    v1::Transfer t;
    billing->Deposit(Ctx().get(), deposit, &t);
    customer_keys.push_back(key_for(v1::ROLE_CUSTOMER, account.name()));
  }
  Timeline timeline;
  std::atomic<int64_t> done{0};
  std::vector<std::unique_ptr<SimulatedWorker>> sims;
  for (int w = 0; w < workers; ++w) {
    v1::RegisterWorkerRequest reg;
    reg.set_provider_account("provider");
    reg.set_name("sim" + std::to_string(w));
    reg.set_region("bench");
    reg.set_ask_utok_per_gpu_hour(1'000'000);
    WorkerKeyPair key = WorkerKeyPair::Generate();
    reg.set_public_key(key.public_key);
    for (int g = 0; g < gpus_per_worker; ++g) {
      v1::Gpu* gpu = reg.add_gpus();
      gpu->set_index(g);
      gpu->set_model("H100");
      gpu->set_memory_mib(81'559);
      gpu->set_compute_capability("9.0");
      gpu->set_uuid("GPU-sim-" + std::to_string(w) + "-" + std::to_string(g));
    }
    v1::RegisterWorkerResponse r;
    if (!worker_stub->RegisterWorker(Ctx().get(), reg, &r).ok()) return 1;
    sims.push_back(std::make_unique<SimulatedWorker>(channel, r.worker_id(), std::move(key), timeline, done));
  }
  std::this_thread::sleep_for(std::chrono::seconds(1));

  // Load: C clients submit `count` jobs between them as fast as they are answered.
  std::atomic<int> failed{0};
  auto submit_all = [&](const std::string& prefix, int count) {
    std::atomic<int> next{0};
    std::vector<std::thread> submitters;
    for (int c = 0; c < clients; ++c) {
      submitters.emplace_back([&, c] {
        auto stub = v1::JobService::NewStub(auth::AuthenticatedChannel(address, customer_keys[c]));
        for (int i = next++; i < count; i = next++) {
          v1::SubmitJobRequest request;
          request.set_account("customer" + std::to_string(c));
          request.set_request_id(prefix + std::to_string(i));
          v1::JobSpec* spec = request.mutable_spec();
          spec->set_kind("sleep");
          spec->set_gpu_count(1);
          spec->set_bid_utok_per_gpu_hour(2'000'000);
          spec->set_max_duration_ms(60'000);
          spec->mutable_sleep()->set_duration_ms(0);
          v1::SubmitJobResponse response;
          const auto t0 = SteadyClock::now();
          grpc::Status s = stub->SubmitJob(Ctx().get(), request, &response);
          // Over the per-key rate limit: back off as the server says, as a well-behaved client does.
          for (int retry = 0; retry < 100 && s.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED; ++retry) {
            std::this_thread::sleep_for(std::chrono::milliseconds(RetryDelayMs(s).value_or(10)));
            s = stub->SubmitJob(Ctx().get(), request, &response);
          }
          if (!s.ok()) {
            if (failed++ == 0) std::fprintf(stderr, "submit failed: %s\n", s.error_message().c_str());
            continue;
          }
          timeline.Mark(timeline.submitted, response.job().job_id(), t0);
          timeline.Mark(timeline.submit_returned, response.job().job_id(), SteadyClock::now());
        }
      });
    }
    for (auto& t : submitters) t.join();
  };
  // Warm-up, not measured: every connection, prepared statement and stream has been used once, as
  // on a server that has been up for a while (cold, the first ~50 ms of jobs wait up to ~100 ms).
  submit_all("warmup-", warmup);
  while (done < warmup - failed) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  {
    std::lock_guard lock(timeline.mu);
    timeline.submitted.clear();
    timeline.submit_returned.clear();
    timeline.assigned.clear();
    timeline.completed.clear();
  }
  done = 0;
  failed = 0;

  const auto start = SteadyClock::now();
  const double machine_cpu_start = MachineCpuSeconds(), process_cpu_start = ProcessCpuSeconds();
  submit_all("job-", jobs);
  const auto submitted_at = SteadyClock::now();
  while (done < jobs - failed && SteadyClock::now() - start < std::chrono::minutes(10)) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  const auto completed_at = SteadyClock::now();
  const double machine_cpu = MachineCpuSeconds() - machine_cpu_start, process_cpu = ProcessCpuSeconds() - process_cpu_start;

  // Settlement catches up: every job's escrow released.
  auto settled_at = completed_at;
  {
    pqxx::connection conn("host=" + dir + "/run port=5432 user=postgres dbname=tessera");
    for (;;) {
      pqxx::nontransaction tx(conn);
      if (tx.exec("SELECT count(*) FROM jobs WHERE hold_state = 'PENDING'")[0][0].as<int64_t>() == 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    settled_at = SteadyClock::now();
    pqxx::nontransaction tx(conn);
    const auto sum = tx.exec("SELECT sum(balance_utok) FROM ledger_accounts")[0][0].as<int64_t>();
    std::printf("ledger sum after the run: %lld (must be 0)\n", static_cast<long long>(sum));
    if (statements) {
      tx.exec0("CREATE EXTENSION IF NOT EXISTS pg_stat_statements");
      const pqxx::row totals = tx.exec1(
          "SELECT round(sum(total_plan_time))::bigint, round(sum(total_exec_time))::bigint, sum(calls)::bigint"
          " FROM pg_stat_statements");
      std::printf("PostgreSQL, whole run: %lld statements, planning %lld ms, executing %lld ms (includes lock waits)\n",
                  static_cast<long long>(totals[2].as<int64_t>()), static_cast<long long>(totals[0].as<int64_t>()),
                  static_cast<long long>(totals[1].as<int64_t>()));
      std::printf("by statement (top 12 by execution time):\n");
      for (const auto& row : tx.exec("SELECT round(total_exec_time)::bigint, round(total_plan_time)::bigint, calls,"
                                     " left(regexp_replace(query, '\\s+', ' ', 'g'), 80)"
                                     " FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 12")) {
        std::printf("  exec %6lld ms  plan %5lld ms  %7lld calls  %s\n", static_cast<long long>(row[0].as<int64_t>()),
                    static_cast<long long>(row[1].as<int64_t>()), static_cast<long long>(row[2].as<int64_t>()),
                    row[3].c_str());
      }
    }
  }

  const double submit_s = Ms(submitted_at - start) / 1000, complete_s = Ms(completed_at - start) / 1000;
  std::printf("N=%d jobs, K=%d workers x %d GPUs, C=%d clients, %s PostgreSQL\n", jobs, workers, gpus_per_worker, clients,
              durable ? "durable (fsync on)" : "fsync off");
  std::printf("  submit rate                 %8.0f jobs/s  (%d failed)\n", (jobs - failed) / submit_s, failed.load());
  std::printf("  submit->complete throughput %8.0f jobs/s  (%lld completed in %.2f s)\n", done.load() / complete_s,
              static_cast<long long>(done.load()), complete_s);
  std::printf("  settled (escrow released)   %8.2f s after the first submit\n", Ms(settled_at - start) / 1000);
  std::printf("  CPU until complete: %.1f s of %.1f s available (%ld cores): this process (server, clients, simulated\n"
              "  workers) %.1f s, the rest of the machine (PostgreSQL) %.1f s\n",
              machine_cpu, complete_s * static_cast<double>(sysconf(_SC_NPROCESSORS_ONLN)), sysconf(_SC_NPROCESSORS_ONLN),
              process_cpu, machine_cpu - process_cpu);
  std::lock_guard lock(timeline.mu);
  PrintPercentiles("submit RPC", Between(timeline.submitted, timeline.submit_returned));
  PrintPercentiles("submit -> assignment received", Between(timeline.submitted, timeline.assigned));
  PrintPercentiles("assignment -> result durable (ack)", Between(timeline.assigned, timeline.completed));
  PrintPercentiles("submit -> complete", Between(timeline.submitted, timeline.completed));
  sims.clear();
  (*server)->Shutdown();
  std::filesystem::remove_all(dir);
  return 0;
}
