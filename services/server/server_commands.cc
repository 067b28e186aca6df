#include "services/server/server_commands.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/str_split.h"
#include "services/server/tessera_server.h"
#include "services/store/embedded_postgres.h"
#include "services/store/migrations.h"

namespace tessera::server {
namespace {

// Blocks SIGINT/SIGTERM in every thread and waits for them on one, so shutdown is orderly.
sigset_t BlockShutdownSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGINT);
  sigaddset(&set, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  return set;
}

// Paths given as flags (CLI11 binds strings; ServerOptions holds paths).
struct PathFlags {
  std::string port_file, worker_port_file, admin_key_file, tls_cert, tls_key, worker_ca, artifact_dir;
};

void WritePortFile(const std::string& path, int port) {
  if (path.empty()) return;
  std::ofstream(path + ".tmp") << port << "\n";
  std::rename((path + ".tmp").c_str(), path.c_str());
}

int RunServer(ServerOptions options, const std::string& services, const PathFlags& paths) {
  options.services.clear();
  for (absl::string_view s : absl::StrSplit(services, ',', absl::SkipEmpty())) options.services.insert(std::string(s));
  const sigset_t signals = BlockShutdownSignals();
  absl::StatusOr<std::unique_ptr<TesseraServer>> server = TesseraServer::Start(options);
  if (!server.ok()) {
    std::cerr << "error: " << server.status().message() << "\n";
    return 1;
  }
  // The worker port first: whoever waits for the main port file finds both.
  WritePortFile(paths.worker_port_file, (*server)->worker_port());
  WritePortFile(paths.port_file, (*server)->port());
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: shutting down", sig);
    (*server)->Shutdown();
  });
  (*server)->Wait();
  waiter.join();
  return 0;
}

int RunMigrate(const std::string& database_url, const std::string& data_dir) {
  std::unique_ptr<store::EmbeddedPostgres> embedded;
  std::string url = database_url;
  if (url.empty()) {
    store::EmbeddedPostgresOptions options;
    options.data_dir = data_dir;
    auto pg = store::EmbeddedPostgres::Start(options);
    if (!pg.ok()) {
      std::cerr << "error: " << pg.status().message() << "\n";
      return 1;
    }
    embedded = *std::move(pg);
    url = embedded->url();
  }
  auto db = store::Database::Open(url, 1);
  if (!db.ok()) {
    std::cerr << "error: " << db.status().message() << "\n";
    return 1;
  }
  auto applied = store::ApplyMigrations(**db, store::EmbeddedMigrations());
  if (!applied.ok()) {
    std::cerr << "error: " << applied.status().message() << "\n";
    return 1;
  }
  for (const std::string& name : *applied) std::cout << "applied " << name << "\n";
  std::cout << (applied->empty() ? "schema is up to date\n" : "done\n");
  return 0;
}

}  // namespace

void AddServerCommands(CLI::App& app, cli::CliContext& ctx) {
  auto options = std::make_shared<ServerOptions>();
  auto services = std::make_shared<std::string>("intake,scheduler,billing,artifacts");
  auto paths = std::make_shared<PathFlags>();
  auto data_dir = std::make_shared<std::string>("tessera-data");
  auto* server = app.add_subcommand("server", "Run the Tessera server (all services and an embedded PostgreSQL by default)");
  server->add_option("--listen", options->listen_address, "Address to serve gRPC on (port 0 picks one)");
  server->add_option("--services", *services, "Comma-separated subset of intake,scheduler,billing,artifacts");
  server->add_option("--database-url", options->database_url, "PostgreSQL connection string; empty: embedded cluster");
  server->add_option("--data-dir", *data_dir, "Where the embedded PostgreSQL keeps its cluster");
  server->add_option("--fee-bps", options->fee_bps, "Platform fee in basis points")->check(CLI::Range(0, 10'000));
  server->add_option("--queue-timeout-ms", options->default_queue_timeout_ms,
                     "How long a job whose spec sets no queue_timeout_ms may wait to start before it is cancelled and its escrow "
                     "released (default 1 day)")
      ->check(CLI::Range(int64_t{1}, intake::kMaxQueueTimeoutMs));
  server->add_option("--lease-timeout-ms", options->scheduler.lease_timeout_ms, "Worker silence that ends its leases")
      ->check(CLI::Range(int64_t{200}, int64_t{3'600'000}));
  server->add_option("--tick-interval-ms", options->scheduler.tick_interval_ms,
                     "Full scheduling pass (reservations, preemption, wait reasons) this often")
      ->check(CLI::Range(int64_t{10}, int64_t{60'000}));
  server->add_option("--reserve-after-ms", options->scheduler.market.reserve_after_ms,
                     "A gang job waiting this long reserves a worker (bounded backfill)")
      ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}));
  server->add_option("--db-pool", options->db_pool_size, "PostgreSQL connections")->check(CLI::Range(2, 200));
  server->add_option("--max-rpc-threads", options->max_rpc_threads,
                     "Calls served at once (worker streams aside); more are refused RESOURCE_EXHAUSTED, never queued")
      ->check(CLI::Range(4, 100'000));
  server->add_option("--max-watch-streams", options->max_watch_streams,
                     "WatchJob streams open at once, and as many ReadJobLog followers (each holds a call thread); more are refused RESOURCE_EXHAUSTED")
      ->check(CLI::Range(0, 100'000));
  server->add_option("--metrics-listen", options->metrics_listen,
                     "Serve Prometheus metrics on this HOST:PORT at /metrics (e.g. 127.0.0.1:9464); default: off");
  server->add_option("--artifact-dir", paths->artifact_dir,
                     "Where the artifact service keeps blobs (servers hosting it must share it; default <data-dir>/artifacts)");
  server->add_option("--max-artifact-bytes", options->artifact_limits.max_artifact_bytes, "Largest artifact accepted, in bytes")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 50));
  server->add_option("--artifact-quota-bytes", options->artifact_limits.account_quota_bytes,
                     "Bytes each customer account's artifacts may hold")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 55));
  server->add_option("--max-job-log-bytes", options->log_limits.max_job_log_bytes,
                     "Log bytes kept per job (all attempts); past it its oldest lines are cut")
      ->check(CLI::Range(int64_t{1} << 10, int64_t{1} << 40));
  server->add_option("--blob-grace-ms", options->blob_grace_ms,
                     "How long unreferenced artifact bytes are kept before they are deleted")
      ->check(CLI::Range(int64_t{0}, int64_t{30LL * 86'400'000}));
  server->add_option("--port-file", paths->port_file, "Write the bound port here once serving");
  server->add_option("--tls-cert", paths->tls_cert, "PEM certificate (chain) of the server: TLS on every port");
  server->add_option("--tls-key", paths->tls_key, "PEM private key of --tls-cert");
  server->add_option("--worker-listen", options->worker_listen_address,
                     "A separate address for worker agents (WorkerService moves there from --listen)");
  server->add_option("--worker-ca", paths->worker_ca,
                     "PEM CA of worker client certificates: the worker port becomes mutual TLS (needs --tls-cert)");
  server->add_option("--worker-port-file", paths->worker_port_file, "Write the bound worker port here once serving");
  server->add_option("--admin-key-file", paths->admin_key_file,
                     "Where the first admin API key goes when the database has none (default <data-dir>/admin.key)");
  server->add_option("--submit-rate-per-key", options->submit_rate_per_key, "SubmitJob calls per second per API key; 0: unlimited")
      ->check(CLI::NonNegativeNumber);
  server->add_option("--submit-burst-per-key", options->submit_burst_per_key, "SubmitJob burst per API key")->check(CLI::PositiveNumber);
  server->add_option("--max-workers-per-subnet", options->scheduler.trust.max_workers_per_subnet,
                     "More workers than this behind one /24 (IPv6 /64) are all flagged (SUBNET_CROWD)")
      ->check(CLI::Range(1, 1'000'000));
  server->add_option("--max-workers-per-provider", options->scheduler.trust.max_workers_per_provider,
                     "More workers than this under one provider are all flagged (PROVIDER_FLEET)")
      ->check(CLI::Range(1, 10'000'000));
  server->add_option("--reputation-interval-ms", options->scheduler.reputation_interval_ms, "Recompute reputations this often")
      ->check(CLI::Range(int64_t{100}, int64_t{3'600'000}));
  server->add_option("--max-streams-per-provider", options->max_streams_per_provider, "Worker streams a provider may hold open")
      ->check(CLI::Range(1, 1'000'000));
  server->add_flag("--verify-gpus,!--no-verify-gpus", options->scheduler.verifier.enabled,
                   "Hold new workers PENDING_VERIFICATION until they pass a proof-of-GPU challenge (default on; off trusts every "
                   "machine, as a private fleet may)");
  server->add_option("--challenge-n", options->scheduler.verifier.challenge_n,
                     "Matrix size of every GPU challenge; 0: by GPU model (services/common/gpu_challenge_proof.h)")
      ->check(CLI::Range(0u, 16'384u));
  server->add_option("--challenge-rows", options->scheduler.verifier.rows_per_gpu, "Rows of each challenged GPU's product to open")
      ->check(CLI::Range(1u, 64u));
  server->add_option("--challenge-overhead-ms", options->scheduler.verifier.overhead_ms,
                     "Time a challenge allows beyond the slowest compute of the claimed GPUs (operands, hashing, network)")
      ->check(CLI::Range(int64_t{100}, int64_t{600'000}));
  server->add_option("--recheck-mean-interval-ms", options->scheduler.verifier.recheck_mean_interval_ms,
                     "Mean time between random re-challenges of an idle worker; 0: never")
      ->check(CLI::Range(int64_t{0}, int64_t{30LL * 86'400'000}));
  server->add_flag("--no-fsync", [options](int64_t) { options->durable_embedded_database = false; },
                   "Embedded database without fsync (tests and benchmarks of CPU cost only)");
  server->callback([&ctx, options, services, paths, data_dir] {
    options->data_dir = *data_dir;
    options->admin_key_file = paths->admin_key_file;
    options->tls_cert_file = paths->tls_cert;
    options->tls_key_file = paths->tls_key;
    options->worker_ca_file = paths->worker_ca;
    options->artifact_dir = paths->artifact_dir;
    ctx.exit_code = RunServer(*options, *services, *paths);
  });

  auto url = std::make_shared<std::string>();
  auto* migrate = app.add_subcommand("migrate", "Apply pending database migrations and exit");
  migrate->add_option("--database-url", *url, "PostgreSQL connection string; empty: the embedded cluster");
  migrate->add_option("--data-dir", *data_dir, "The embedded cluster's data directory");
  migrate->callback([&ctx, url, data_dir] { ctx.exit_code = RunMigrate(*url, *data_dir); });
}

}  // namespace tessera::server
