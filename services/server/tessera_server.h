// The `tessera server` process: hosts any subset of intake, scheduler and billing over one gRPC
// port, with the standard health service and reflection. With no database URL it runs the
// embedded PostgreSQL under its data directory (the embedded default) and applies migrations.
//
//   absl::StatusOr<std::unique_ptr<TesseraServer>> server = TesseraServer::Start(options);
//   (*server)->Wait();   // until Shutdown() from a signal handler thread
#pragma once

#include <filesystem>
#include <memory>
#include <set>
#include <string>

#include "absl/status/statusor.h"
#include "services/artifacts/artifact_repository.h"
#include "services/logs/job_log_repository.h"
#include "services/intake/job_spec_validator.h"
#include "services/scheduler/scheduler_host.h"

namespace tessera::server {

struct ServerOptions {
  std::string listen_address = "127.0.0.1:7070";
  // TLS for every port (PEM files); empty: plaintext.
  std::filesystem::path tls_cert_file;
  std::filesystem::path tls_key_file;
  // A separate port for the worker agents (WorkerService only, which then leaves the main port).
  // With worker_ca_file it is mutual TLS: a worker must present a certificate that CA signed.
  std::string worker_listen_address;
  std::filesystem::path worker_ca_file;
  std::set<std::string> services = {"intake", "scheduler", "billing", "artifacts"};
  std::string database_url;  // empty: embedded PostgreSQL under data_dir
  std::filesystem::path data_dir = "tessera-data";
  bool durable_embedded_database = true;
  std::string embedded_database_settings;  // extra postgresql.conf lines for the embedded cluster
  int64_t fee_bps = 1'000;  // platform fee: 10 %
  // How long a job whose spec sets no queue_timeout_ms may wait to start before it is cancelled.
  int64_t default_queue_timeout_ms = intake::kDefaultQueueTimeoutMs;
  int db_pool_size = 16;
  // Calls served at once, each on a thread of its own; a call beyond them is refused with
  // RESOURCE_EXHAUSTED and a RetryInfo of 1 s at once (gRPC's sync server, and
  // ThreadCapRetryInterceptors), so overload never queues without bound.
  int max_rpc_threads = 256;
  // WatchJob streams at once: they hold call threads for as long as they watch, so they get a
  // share of max_rpc_threads, not all of it.
  int max_watch_streams = 64;
  int64_t settle_interval_ms = 200;
  // Reports per settlement transaction (and Merkle batch): bigger batches settle more per second
  // (bench/tessera_settle_bench: ~47,000/s at 10,000, ~51,000/s at 20,000 on 2 cores).
  int settle_batch_reports = 20'000;
  // Where the server writes the admin API key it issues when the database has no active one
  // (first start). Empty: <data_dir>/admin.key.
  std::filesystem::path admin_key_file;
  // SubmitJob calls per API key: the average rate and the burst (token bucket). 0: unlimited.
  double submit_rate_per_key = 200;
  double submit_burst_per_key = 400;
  // How long a server trusts a looked-up key before reading it again (a revoke takes this long).
  int64_t key_cache_ttl_ms = 5'000;
  // Worker streams one provider may hold open at once.
  int max_streams_per_provider = 1'024;
  // Where the artifact service keeps its blobs (a directory on a local or shared disk); empty:
  // <data_dir>/artifacts. Servers that all host the artifact service must share it.
  std::filesystem::path artifact_dir;
  artifacts::ArtifactLimits artifact_limits;
  // A job's stored log lines (past the limit its oldest are cut) and how long after a lease ended its
  // worker's last lines are still taken. Hosted with the artifacts.
  logs::LogLimits log_limits;
  // How often unreferenced blobs are looked for, and how long one is kept after it was first seen
  // unreferenced before its bytes are deleted.
  int64_t blob_collect_interval_ms = 60'000;
  int64_t blob_grace_ms = 3'600'000;
  scheduler_host::SchedulerOptions scheduler;
  // Watches the scheduler host (rounds, ingest batches, lease expiries); null: nobody does. Not
  // owned: it outlives the server. Tests record with it; the metrics of a later issue will too.
  scheduler_host::HostObserver* scheduler_observer = nullptr;
  // Where Prometheus scrapes /metrics ("127.0.0.1:9464"); empty: no metrics are kept.
  std::string metrics_listen;
};

absl::Status ValidateServices(const std::set<std::string>& services);

class TesseraServer {
 public:
  static absl::StatusOr<std::unique_ptr<TesseraServer>> Start(const ServerOptions& options);
  ~TesseraServer();

  int port() const;
  // The worker port, when worker_listen_address was given; else 0 (workers use port()).
  int worker_port() const;
  // The metrics port, when metrics_listen was given; else 0.
  int metrics_port() const;
  // The file holding the admin key this server issued at start; empty when it issued none.
  const std::filesystem::path& issued_admin_key_file() const;
  void Wait();
  // Stops accepting calls, drains in-flight ones (bounded), flushes settlement, stops PostgreSQL.
  void Shutdown();

 private:
  struct Parts;
  explicit TesseraServer(std::unique_ptr<Parts> parts);
  static void StartLeaderElection(Parts& parts);
  static absl::Status IssueAdminKeyIfNone(const ServerOptions& options, Parts& parts);
  static absl::Status StartWorkerPort(const ServerOptions& options, Parts& parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace tessera::server
