#include "services/server/tessera_server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <unistd.h>

#include <chrono>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/auth/api_key_repository.h"
#include "services/auth/authenticator.h"
#include "services/auth/client_channel.h"
#include "services/auth/rate_limiter.h"
#include "services/auth/tls.h"
#include "services/admin/admin_service.h"
#include "services/artifacts/artifact_service.h"
#include "services/artifacts/blob_collector.h"
#include "services/artifacts/file_blob_store.h"
#include "services/logs/log_service.h"
#include "services/metrics/metrics_http_server.h"
#include "services/metrics/server_metrics.h"
#include "services/billing/billing_service.h"
#include "services/billing/settlement.h"
#include "services/intake/job_service.h"
#include "services/scheduler/worker_service.h"
#include "services/server/reflection_v1_service.h"
#include "services/server/thread_cap_retry_interceptor.h"
#include "services/store/embedded_postgres.h"
#include "services/store/leader_election.h"
#include "services/store/migrations.h"
#include "services/store/notification_listener.h"

namespace tessera::server {
namespace {

// Worker agents ping their Connect stream (agent.cc: a partitioned server shows up as a missed ping,
// not as a stream that hangs for the TCP timeout); such pings are welcome, also between messages.
void AllowWorkerKeepalive(grpc::ServerBuilder& builder) {
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 1'000);
}

}  // namespace

// Destruction order matters: the gRPC server first, then the loops, then the database.
struct TesseraServer::Parts {
  SystemClock clock;
  SecureRandom random;
  scheduler_host::NoHostObserver no_observer;
  std::unique_ptr<store::EmbeddedPostgres> embedded;
  std::unique_ptr<store::Database> db;
  // Metrics: after the database they read, before everything that reports to them.
  metrics::MetricRegistry metric_registry;
  std::unique_ptr<metrics::ServerMetrics> metrics;
  std::unique_ptr<metrics::MetricsHttpServer> metrics_http;
  std::unique_ptr<auth::ApiKeyRepository> keys;
  std::unique_ptr<auth::Authenticator> authenticator;
  std::unique_ptr<auth::RateLimiter> submit_limit;
  std::filesystem::path issued_admin_key_file;
  std::unique_ptr<intake::JobRepository> jobs;
  std::unique_ptr<billing::BillingRepository> billing;
  std::unique_ptr<billing::PayoutRepository> payouts;
  std::unique_ptr<billing::ReportRepository> reports;
  std::unique_ptr<scheduler_host::TrustRepository> trust;
  std::unique_ptr<scheduler_host::SchedulerRepository> scheduler_store;
  std::unique_ptr<scheduler_host::ChallengeRepository> challenges;
  std::unique_ptr<store::PostgresNotifications> notifications;
  std::unique_ptr<scheduler_host::SchedulerHost> scheduler;
  std::unique_ptr<billing::SettlementLoop> settlement;
  std::unique_ptr<intake::JobServiceImpl> job_service;
  std::unique_ptr<billing::BillingServiceImpl> billing_service;
  std::unique_ptr<admin::AdminServiceImpl> admin_service;
  std::unique_ptr<scheduler_host::WorkerServiceImpl> worker_service;
  std::unique_ptr<artifacts::FileBlobStore> blobs;
  std::unique_ptr<artifacts::ArtifactRepository> artifacts;
  std::unique_ptr<artifacts::ArtifactServiceImpl> artifact_service;
  std::unique_ptr<artifacts::BlobCollector> blob_collector;
  std::unique_ptr<logs::JobLogRepository> job_logs;
  std::unique_ptr<logs::LogServiceImpl> log_service;
  ReflectionV1Service reflection_v1;
  std::unique_ptr<grpc::Server> grpc_server;
  std::unique_ptr<grpc::Server> worker_grpc_server;  // only with a separate worker port
  int worker_port = 0;
  std::unique_ptr<store::LeaderElection> election;
  std::string database_url;
  int port = 0;
  bool shut_down = false;
};

absl::Status ValidateServices(const std::set<std::string>& services) {
  if (services.empty()) return absl::InvalidArgumentError("--services must name at least one service");
  for (const std::string& s : services) {
    if (s != "intake" && s != "scheduler" && s != "billing" && s != "artifacts") {
      return absl::InvalidArgumentError(
          absl::StrCat("--services: unknown service '", s, "' (expected intake, scheduler, billing, artifacts)"));
    }
  }
  return absl::OkStatus();
}

// Campaigns for scheduler leadership; the leader's WorkerService reports SERVING to health checks
// (what a Kubernetes readiness probe or a worker's load balancer looks at), a standby's does not.
void TesseraServer::StartLeaderElection(Parts& parts) {
  grpc::HealthCheckServiceInterface* health = parts.grpc_server->GetHealthCheckService();
  const std::string kService = v1::WorkerService::service_full_name();
  if (health != nullptr) health->SetServingStatus(kService, false);
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  store::LeaderElectionOptions election{.url = parts.database_url,
                                        .candidate = absl::StrCat(host, ":", getpid(), ":", parts.port),
                                        .lock_key = 0x7E55E7A0002,
                                        .poll_interval_ms = 500};
  scheduler_host::SchedulerHost* scheduler = parts.scheduler.get();
  parts.election = std::make_unique<store::LeaderElection>(
      election,
      [scheduler, health, kService](int64_t epoch) {
        if (absl::Status s = scheduler->Start(epoch); !s.ok()) {
          spdlog::error("cannot start the scheduler: {}", s.ToString());
          return;
        }
        if (health != nullptr) health->SetServingStatus(kService, true);
      },
      [scheduler, health, kService] {
        if (health != nullptr) health->SetServingStatus(kService, false);
        scheduler->Stop();
      });
  if (!parts.election->WaitFirstRound(10'000)) spdlog::warn("leader election has not completed a round yet");
}

// The worker agents' own port, serving WorkerService alone: with a worker CA it is mutual TLS, so a
// machine without a certificate from the network's CA cannot even open a stream.
absl::Status TesseraServer::StartWorkerPort(const ServerOptions& options, Parts& parts) {
  auto credentials =
      auth::ServerCredentials({.cert = options.tls_cert_file, .key = options.tls_key_file, .client_ca = options.worker_ca_file});
  if (!credentials.ok()) return credentials.status();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options.worker_listen_address, *credentials, &parts.worker_port);
  builder.SetMaxReceiveMessageSize(4 * 1024 * 1024);
  AllowWorkerKeepalive(builder);
  builder.RegisterService(parts.worker_service.get());
  parts.worker_grpc_server = builder.BuildAndStart();
  if (parts.worker_grpc_server == nullptr || parts.worker_port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.worker_listen_address));
  }
  spdlog::info("worker port {}{}", parts.worker_port, options.worker_ca_file.empty() ? "" : " (mutual TLS)");
  return absl::OkStatus();
}

// A new database has no key, and every call needs one: the first server issues an admin key and
// writes it, owner-readable only, where the operator finds it (never to the log).
absl::Status TesseraServer::IssueAdminKeyIfNone(const ServerOptions& options, Parts& parts) {
  const std::filesystem::path file = options.admin_key_file.empty() ? options.data_dir / "admin.key" : options.admin_key_file;
  absl::StatusOr<bool> issued = parts.keys->EnsureAdminKey([&](const std::string& key) {
    std::error_code ignored;
    std::filesystem::create_directories(file.parent_path(), ignored);
    return auth::WriteSecretFile(file, key);
  });
  if (!issued.ok()) return issued.status();
  if (*issued) {
    parts.issued_admin_key_file = file;
    spdlog::info("issued the first admin API key into {} (tessera --api-key-file {})", file.string(), file.string());
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<TesseraServer>> TesseraServer::Start(const ServerOptions& options) {
  if (absl::Status s = ValidateServices(options.services); !s.ok()) return s;
  // Options that cannot work are refused before anything is started or written.
  const auto credentials = auth::ServerCredentials({.cert = options.tls_cert_file, .key = options.tls_key_file, .client_ca = {}});
  if (!credentials.ok()) return credentials.status();
  if (!options.worker_ca_file.empty() && options.worker_listen_address.empty()) {
    return absl::InvalidArgumentError("--worker-ca needs --worker-listen: mutual TLS is for the worker port");
  }
  if (!options.worker_listen_address.empty() && !options.services.contains("scheduler")) {
    return absl::InvalidArgumentError("--worker-listen needs the scheduler service: the worker port serves WorkerService");
  }
  if (!options.worker_listen_address.empty()) {
    auto worker_credentials =
        auth::ServerCredentials({.cert = options.tls_cert_file, .key = options.tls_key_file, .client_ca = options.worker_ca_file});
    if (!worker_credentials.ok()) return worker_credentials.status();
  }
  auto parts = std::make_unique<Parts>();
  std::string url = options.database_url;
  if (url.empty()) {
    auto pg = store::EmbeddedPostgres::Start({.data_dir = options.data_dir, .port = 5432,
                                              .durable = options.durable_embedded_database, .database = "tessera",
                                              .extra_settings = options.embedded_database_settings});
    if (!pg.ok()) return pg.status();
    parts->embedded = *std::move(pg);
    url = parts->embedded->url();
    spdlog::info("embedded PostgreSQL running under {}", options.data_dir.string());
  }
  auto db = store::Database::Open(url, options.db_pool_size);
  if (!db.ok()) return db.status();
  parts->db = *std::move(db);
  auto applied = store::ApplyMigrations(*parts->db, store::EmbeddedMigrations());
  if (!applied.ok()) return applied.status();
  if (!applied->empty()) spdlog::info("applied migrations: {}", absl::StrJoin(*applied, ", "));
  parts->keys = std::make_unique<auth::ApiKeyRepository>(*parts->db);
  if (absl::Status s = IssueAdminKeyIfNone(options, *parts); !s.ok()) return s;
  parts->authenticator = std::make_unique<auth::Authenticator>(*parts->keys, parts->clock, options.key_cache_ttl_ms);
  parts->submit_limit =
      std::make_unique<auth::RateLimiter>(parts->clock, options.submit_rate_per_key, options.submit_burst_per_key, "SubmitJob");

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();  // grpc.reflection.v1alpha
  grpc::ServerBuilder builder;
  parts->reflection_v1.RegisterWith(builder);
  builder.AddListeningPort(options.listen_address, *credentials, &parts->port);
  grpc::ResourceQuota quota("tessera");
  quota.SetMaxThreads(options.max_rpc_threads);
  builder.SetResourceQuota(quota);
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> interceptors =
      ThreadCapRetryInterceptors(options.max_rpc_threads);
  if (!options.metrics_listen.empty()) {
    parts->metrics = std::make_unique<metrics::ServerMetrics>(parts->metric_registry, parts->db.get());
    interceptors.push_back(parts->metrics->RpcInterceptorFactory());
  }
  builder.experimental().SetInterceptorCreators(std::move(interceptors));
  builder.SetMaxReceiveMessageSize(4 * 1024 * 1024);
  AllowWorkerKeepalive(builder);

  const auto& s = options.services;
  // Health answers for each service by its own name, as a generated client's probe asks; but
  // WorkerService's answer follows scheduler leadership (StartLeaderElection), so it is not here.
  std::vector<std::string> serving;
  if (s.contains("intake")) {
    parts->jobs = std::make_unique<intake::JobRepository>(*parts->db, options.fee_bps, options.default_queue_timeout_ms);
    parts->job_service = std::make_unique<intake::JobServiceImpl>(*parts->jobs, *parts->authenticator, *parts->submit_limit,
                                                                 options.max_watch_streams);
    builder.RegisterService(parts->job_service.get());
    serving.push_back(v1::JobService::service_full_name());
  }
  if (s.contains("billing")) {
    parts->billing = std::make_unique<billing::BillingRepository>(*parts->db);
    parts->payouts = std::make_unique<billing::PayoutRepository>(*parts->db);
    parts->reports = std::make_unique<billing::ReportRepository>(*parts->db);
    parts->billing_service =
        std::make_unique<billing::BillingServiceImpl>(*parts->billing, *parts->payouts, *parts->reports, *parts->authenticator);
    parts->trust = std::make_unique<scheduler_host::TrustRepository>(*parts->db);
    parts->admin_service =
        std::make_unique<admin::AdminServiceImpl>(*parts->billing, *parts->keys, *parts->trust, *parts->authenticator);
    builder.RegisterService(parts->billing_service.get());
    builder.RegisterService(parts->admin_service.get());
    serving.push_back(v1::BillingService::service_full_name());
    serving.push_back(v1::AdminService::service_full_name());
    parts->settlement = std::make_unique<billing::SettlementLoop>(*parts->db, options.settle_interval_ms,
                                                                 options.settle_batch_reports);
  }
  if (s.contains("artifacts")) {
    const std::filesystem::path root = options.artifact_dir.empty() ? options.data_dir / "artifacts" : options.artifact_dir;
    absl::StatusOr<std::unique_ptr<artifacts::FileBlobStore>> blobs = artifacts::FileBlobStore::Open(root);
    if (!blobs.ok()) return blobs.status();
    parts->blobs = *std::move(blobs);
    parts->artifacts = std::make_unique<artifacts::ArtifactRepository>(*parts->db, *parts->blobs, options.artifact_limits);
    parts->artifact_service = std::make_unique<artifacts::ArtifactServiceImpl>(*parts->artifacts, *parts->blobs, *parts->authenticator);
    builder.RegisterService(parts->artifact_service.get());
    serving.push_back(v1::ArtifactService::service_full_name());
    parts->blob_collector =
        std::make_unique<artifacts::BlobCollector>(*parts->artifacts, options.blob_collect_interval_ms, options.blob_grace_ms);
    // The jobs' logs are their data too: hosted with the artifacts.
    parts->job_logs = std::make_unique<logs::JobLogRepository>(*parts->db, options.log_limits);
    parts->log_service = std::make_unique<logs::LogServiceImpl>(*parts->job_logs, *parts->authenticator, options.max_watch_streams);
    builder.RegisterService(parts->log_service.get());
    serving.push_back(v1::LogService::service_full_name());
  }
  if (s.contains("scheduler")) {
    // Started by the leader election below: only the leader schedules.
    parts->scheduler_store = std::make_unique<scheduler_host::SchedulerRepository>(*parts->db);
    parts->challenges = std::make_unique<scheduler_host::ChallengeRepository>(*parts->db);
    parts->notifications = std::make_unique<store::PostgresNotifications>(parts->db->url());
    parts->scheduler = std::make_unique<scheduler_host::SchedulerHost>(
        scheduler_host::HostParts{.store = *parts->scheduler_store, .challenges = parts->challenges.get(),
                                  .notifications = *parts->notifications, .clock = parts->clock, .random = parts->random,
                                  .observer = options.scheduler_observer != nullptr ? *options.scheduler_observer
                                              : parts->metrics != nullptr          ? static_cast<scheduler_host::HostObserver&>(*parts->metrics)
                                                                                   : parts->no_observer},
        options.scheduler);
    parts->worker_service = std::make_unique<scheduler_host::WorkerServiceImpl>(*parts->scheduler, *parts->scheduler_store, *parts->authenticator,
                                                                                options.max_streams_per_provider);
    if (options.worker_listen_address.empty()) builder.RegisterService(parts->worker_service.get());
  }
  parts->grpc_server = builder.BuildAndStart();
  if (parts->grpc_server == nullptr || parts->port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", options.listen_address));
  }
  if (grpc::HealthCheckServiceInterface* health = parts->grpc_server->GetHealthCheckService(); health != nullptr) {
    for (const std::string& name : serving) health->SetServingStatus(name, true);
  }
  parts->database_url = url;
  if (parts->worker_service && !options.worker_listen_address.empty()) {
    if (absl::Status started = StartWorkerPort(options, *parts); !started.ok()) return started;
  }
  if (parts->metrics != nullptr) {
    absl::StatusOr<std::unique_ptr<metrics::MetricsHttpServer>> http =
        metrics::MetricsHttpServer::Start(options.metrics_listen, parts->metric_registry);
    if (!http.ok()) return http.status();
    parts->metrics_http = *std::move(http);
    spdlog::info("metrics on http://{}/metrics (port {})", options.metrics_listen, parts->metrics_http->port());
  }
  if (parts->scheduler) StartLeaderElection(*parts);
  spdlog::info("tessera server listening on port {} with {}", parts->port, absl::StrJoin(s, ","));
  return std::unique_ptr<TesseraServer>(new TesseraServer(std::move(parts)));
}

TesseraServer::TesseraServer(std::unique_ptr<Parts> parts) : parts_(std::move(parts)) {}

TesseraServer::~TesseraServer() { Shutdown(); }

int TesseraServer::port() const { return parts_->port; }

int TesseraServer::worker_port() const { return parts_->worker_port; }

int TesseraServer::metrics_port() const { return parts_->metrics_http != nullptr ? parts_->metrics_http->port() : 0; }

const std::filesystem::path& TesseraServer::issued_admin_key_file() const { return parts_->issued_admin_key_file; }

void TesseraServer::Wait() { parts_->grpc_server->Wait(); }

void TesseraServer::Shutdown() {
  if (parts_->shut_down) return;
  parts_->shut_down = true;
  // Every service turns NOT_SERVING before the port closes, so health watchers (a load balancer,
  // a client's health checking) hear it rather than see a stream break; the election's late
  // updates are ignored from here on.
  for (grpc::Server* server : {parts_->grpc_server.get(), parts_->worker_grpc_server.get()}) {
    if (server != nullptr && server->GetHealthCheckService() != nullptr) server->GetHealthCheckService()->Shutdown();
  }
  // New calls are refused at once; those in flight get until the deadline. Worker streams never
  // end by themselves: stopping the scheduler ends them (their workers reconnect to the next
  // server, their jobs running on), so the drain waits only for the short calls.
  const auto drain_deadline = std::chrono::system_clock::now() + std::chrono::seconds(5);
  std::thread drain([&] {
    if (parts_->worker_grpc_server) parts_->worker_grpc_server->Shutdown(drain_deadline);
    parts_->grpc_server->Shutdown(drain_deadline);
  });
  parts_->election.reset();  // steps down: the standby takes over at once
  if (parts_->scheduler) parts_->scheduler->Stop();
  drain.join();
  parts_->settlement.reset();  // its last pass flushes what was ingested
  parts_->blob_collector.reset();
  parts_->db.reset();
  if (parts_->embedded) (void)parts_->embedded->Stop();
  spdlog::info("tessera server stopped");
}

}  // namespace tessera::server
