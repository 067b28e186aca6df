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

int RunServer(ServerOptions options, const std::string& services, const std::string& port_file) {
  options.services.clear();
  for (absl::string_view s : absl::StrSplit(services, ',', absl::SkipEmpty())) options.services.insert(std::string(s));
  const sigset_t signals = BlockShutdownSignals();
  absl::StatusOr<std::unique_ptr<TesseraServer>> server = TesseraServer::Start(options);
  if (!server.ok()) {
    std::cerr << "error: " << server.status().message() << "\n";
    return 1;
  }
  if (!port_file.empty()) {
    std::ofstream(port_file + ".tmp") << (*server)->port() << "\n";
    std::rename((port_file + ".tmp").c_str(), port_file.c_str());
  }
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
  auto services = std::make_shared<std::string>("intake,scheduler,billing");
  auto port_file = std::make_shared<std::string>();
  auto data_dir = std::make_shared<std::string>("tessera-data");
  auto* server = app.add_subcommand("server", "Run the Tessera server (all services and an embedded PostgreSQL by default)");
  server->add_option("--listen", options->listen_address, "Address to serve gRPC on (port 0 picks one)");
  server->add_option("--services", *services, "Comma-separated subset of intake,scheduler,billing");
  server->add_option("--database-url", options->database_url, "PostgreSQL connection string; empty: embedded cluster");
  server->add_option("--data-dir", *data_dir, "Where the embedded PostgreSQL keeps its cluster");
  server->add_option("--fee-bps", options->fee_bps, "Platform fee in basis points")->check(CLI::Range(0, 10'000));
  server->add_option("--lease-timeout-ms", options->scheduler.lease_timeout_ms, "Worker silence that ends its leases")
      ->check(CLI::Range(int64_t{200}, int64_t{3'600'000}));
  server->add_option("--tick-interval-ms", options->scheduler.tick_interval_ms,
                     "Full scheduling pass (reservations, preemption, wait reasons) this often")
      ->check(CLI::Range(int64_t{10}, int64_t{60'000}));
  server->add_option("--reserve-after-ms", options->scheduler.market.reserve_after_ms,
                     "A gang job waiting this long reserves a worker (bounded backfill)")
      ->check(CLI::Range(int64_t{0}, int64_t{86'400'000}));
  server->add_option("--db-pool", options->db_pool_size, "PostgreSQL connections")->check(CLI::Range(2, 200));
  server->add_option("--port-file", *port_file, "Write the bound port here once serving");
  auto admin_key_file = std::make_shared<std::string>();
  server->add_option("--admin-key-file", *admin_key_file,
                     "Where the first admin API key goes when the database has none (default <data-dir>/admin.key)");
  server->add_option("--submit-rate-per-key", options->submit_rate_per_key, "SubmitJob calls per second per API key; 0: unlimited")
      ->check(CLI::NonNegativeNumber);
  server->add_option("--submit-burst-per-key", options->submit_burst_per_key, "SubmitJob burst per API key")->check(CLI::PositiveNumber);
  server->add_option("--max-streams-per-provider", options->max_streams_per_provider, "Worker streams a provider may hold open")
      ->check(CLI::Range(1, 1'000'000));
  server->add_flag("--no-fsync", [options](int64_t) { options->durable_embedded_database = false; },
                   "Embedded database without fsync (tests and benchmarks of CPU cost only)");
  server->callback([&ctx, options, services, port_file, data_dir, admin_key_file] {
    options->data_dir = *data_dir;
    options->admin_key_file = *admin_key_file;
    ctx.exit_code = RunServer(*options, *services, *port_file);
  });

  auto url = std::make_shared<std::string>();
  auto* migrate = app.add_subcommand("migrate", "Apply pending database migrations and exit");
  migrate->add_option("--database-url", *url, "PostgreSQL connection string; empty: the embedded cluster");
  migrate->add_option("--data-dir", *data_dir, "The embedded cluster's data directory");
  migrate->callback([&ctx, url, data_dir] { ctx.exit_code = RunMigrate(*url, *data_dir); });
}

}  // namespace tessera::server
