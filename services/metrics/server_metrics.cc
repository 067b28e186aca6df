#include "services/metrics/server_metrics.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <string_view>

namespace tessera::metrics {
namespace {

// Times one call and reports it when its status goes out.
class RpcInterceptor final : public grpc::experimental::Interceptor {
 public:
  RpcInterceptor(ServerMetrics& metrics, const char* method) : metrics_(metrics), method_(method) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_STATUS)) {
      metrics_.OnRpc(method_, methods->GetSendStatus().error_code(),
                     std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
    }
    methods->Proceed();
  }

 private:
  ServerMetrics& metrics_;
  const char* const method_;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
};

class RpcInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit RpcInterceptorFactory(ServerMetrics& metrics) : metrics_(metrics) {}
  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* info) override {
    return new RpcInterceptor(metrics_, info->method());
  }

 private:
  ServerMetrics& metrics_;
};

// gRPC's names for its codes, as Prometheus label values ("OK", "NOT_FOUND").
const char* CodeName(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK: return "OK";
    case grpc::StatusCode::CANCELLED: return "CANCELLED";
    case grpc::StatusCode::UNKNOWN: return "UNKNOWN";
    case grpc::StatusCode::INVALID_ARGUMENT: return "INVALID_ARGUMENT";
    case grpc::StatusCode::DEADLINE_EXCEEDED: return "DEADLINE_EXCEEDED";
    case grpc::StatusCode::NOT_FOUND: return "NOT_FOUND";
    case grpc::StatusCode::ALREADY_EXISTS: return "ALREADY_EXISTS";
    case grpc::StatusCode::PERMISSION_DENIED: return "PERMISSION_DENIED";
    case grpc::StatusCode::RESOURCE_EXHAUSTED: return "RESOURCE_EXHAUSTED";
    case grpc::StatusCode::FAILED_PRECONDITION: return "FAILED_PRECONDITION";
    case grpc::StatusCode::ABORTED: return "ABORTED";
    case grpc::StatusCode::OUT_OF_RANGE: return "OUT_OF_RANGE";
    case grpc::StatusCode::UNIMPLEMENTED: return "UNIMPLEMENTED";
    case grpc::StatusCode::INTERNAL: return "INTERNAL";
    case grpc::StatusCode::UNAVAILABLE: return "UNAVAILABLE";
    case grpc::StatusCode::DATA_LOSS: return "DATA_LOSS";
    case grpc::StatusCode::UNAUTHENTICATED: return "UNAUTHENTICATED";
    default: return "UNKNOWN";
  }
}

}  // namespace

ServerMetrics::ServerMetrics(MetricRegistry& registry, store::Database* db)
    : db_(db),
      rpcs_(registry.AddCounter("tessera_rpc_requests_total", "gRPC calls finished, by service, method and status code",
                                {"service", "method", "code"})),
      rpc_seconds_(registry.AddHistogram("tessera_rpc_duration_seconds", "gRPC call latency, from its start to its status",
                                         {"service", "method"}, LatencyBuckets())),
      rounds_(registry.AddCounter("tessera_scheduling_rounds_total", "Matching rounds the scheduler leader ran").WithLabels({})),
      round_seconds_(registry.AddHistogram("tessera_scheduling_round_duration_seconds",
                                           "A matching round: applying events, matching and committing", {}, LatencyBuckets())
                         .WithLabels({})),
      placements_(registry.AddCounter("tessera_placements_total", "Leases written and sent to workers").WithLabels({})),
      preemptions_(registry.AddCounter("tessera_preemptions_total", "SPOT jobs preempted for higher bids").WithLabels({})),
      market_queue_(registry.AddGauge("tessera_market_queue_jobs", "Jobs in the leader's market queue after its last round").WithLabels({})),
      ingest_batches_(registry.AddCounter("tessera_ingest_batches_total", "Batches of worker messages applied").WithLabels({})),
      worker_messages_(registry.AddCounter("tessera_worker_messages_total", "Worker messages applied (usage, results, hellos)").WithLabels({})),
      leases_expired_(registry.AddCounter("tessera_leases_expired_total", "Workers whose leases expired (silent past the lease timeout)")
                          .WithLabels({})),
      jobs_requeued_(registry.AddCounter("tessera_jobs_requeued_total", "Jobs requeued when their worker's lease expired").WithLabels({})),
      jobs_(registry.AddGauge("tessera_jobs", "Jobs by state, kind and priority class", {"state", "kind", "class"})),
      jobs_submitted_(registry.AddCounter("tessera_jobs_submitted_total", "Jobs accepted, by kind and priority class", {"kind", "class"})),
      queue_(registry.AddGauge("tessera_queue_jobs", "Queued jobs by the GPU model they ask for (any: none named)", {"gpu_model"})),
      queue_oldest_(registry.AddGauge("tessera_queue_oldest_wait_seconds", "How long the oldest queued job has waited, by GPU model",
                                      {"gpu_model"})),
      workers_(registry.AddGauge("tessera_workers", "Workers by state and GPU model", {"state", "gpu_model"})),
      ledger_(registry.AddGauge("tessera_ledger_balance_utok", "The ledger's balances summed by bucket, in micro-tokens (they sum to 0)",
                                {"bucket"})) {
  if (db_ != nullptr) registry.OnScrape([this] { CollectFromStore(); });
}

std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> ServerMetrics::RpcInterceptorFactory() {
  return std::make_unique<metrics::RpcInterceptorFactory>(*this);
}

void ServerMetrics::OnRpc(const char* full_method, grpc::StatusCode code, double seconds) {
  // "/tessera.v1.JobService/SubmitJob": service and method.
  std::string_view m = full_method != nullptr ? full_method : "";
  if (m.starts_with('/')) m.remove_prefix(1);
  const size_t slash = m.find('/');
  const std::string service(slash == std::string_view::npos ? "" : m.substr(0, slash));
  const std::string method(slash == std::string_view::npos ? m : m.substr(slash + 1));
  rpcs_.WithLabels({service, method, CodeName(code)}).Increment();
  rpc_seconds_.WithLabels({service, method}).Observe(seconds);
}

void ServerMetrics::OnRound(const scheduler_host::RoundReport& round) {
  rounds_.Increment();
  round_seconds_.Observe(static_cast<double>(round.latency_us) / 1e6);
  placements_.Increment(static_cast<double>(round.placements));
  preemptions_.Increment(static_cast<double>(round.preemptions));
  market_queue_.Set(static_cast<double>(round.queued_jobs));
}

void ServerMetrics::OnIngestBatch(const scheduler_host::IngestReport& batch) {
  ingest_batches_.Increment();
  worker_messages_.Increment(static_cast<double>(batch.messages));
}

void ServerMetrics::OnLeasesExpired(size_t workers, size_t jobs_requeued) {
  leases_expired_.Increment(static_cast<double>(workers));
  jobs_requeued_.Increment(static_cast<double>(jobs_requeued));
}

void ServerMetrics::CollectFromStore() {
  // A scrape that cannot reach the store keeps the last figures rather than failing the scrape:
  // the RPC and scheduler metrics are still worth having.
  absl::Status read = db_->Transact("metrics", [&](pqxx::work& tx) -> absl::Status {
    for (const auto& r : tx.exec("SELECT state, kind, priority_class, count(*) FROM jobs GROUP BY 1, 2, 3")) {
      jobs_.WithLabels({r[0].as<std::string>(), r[1].as<std::string>(), r[2].as<std::string>()}).Set(r[3].as<double>());
    }
    // Jobs are never deleted: their count by kind and class only grows, as a counter's must.
    for (const auto& r : tx.exec("SELECT kind, priority_class, count(*) FROM jobs GROUP BY 1, 2")) {
      Counter& c = jobs_submitted_.WithLabels({r[0].as<std::string>(), r[1].as<std::string>()});
      c.Increment(r[2].as<double>() - c.value());
    }
    // A model no longer queued for reads 0, not its last figure.
    queue_.ForEachMutable([](const std::vector<std::string>&, Gauge& g) { g.Set(0); });
    queue_oldest_.ForEachMutable([](const std::vector<std::string>&, Gauge& g) { g.Set(0); });
    for (const auto& r : tx.exec("SELECT coalesce(m, 'any'), count(*), extract(epoch FROM now() - min(created_at))::float8"
                                 " FROM jobs LEFT JOIN LATERAL unnest(gpu_models) m ON true WHERE state = 'QUEUED' GROUP BY 1")) {
      queue_.WithLabels({r[0].as<std::string>()}).Set(r[1].as<double>());
      queue_oldest_.WithLabels({r[0].as<std::string>()}).Set(r[2].as<double>());
    }
    workers_.ForEachMutable([](const std::vector<std::string>&, Gauge& g) { g.Set(0); });
    for (const auto& r : tx.exec("SELECT w.state, coalesce(g.model, 'none'), count(DISTINCT w.worker_id) FROM workers w"
                                 " LEFT JOIN gpus g ON g.worker_id = w.worker_id WHERE w.retired_at IS NULL GROUP BY 1, 2")) {
      workers_.WithLabels({r[0].as<std::string>(), r[1].as<std::string>()}).Set(r[2].as<double>());
    }
    for (const auto& r : tx.exec("SELECT bucket, sum(balance_utok)::float8 FROM ledger_accounts GROUP BY 1")) {
      ledger_.WithLabels({r[0].as<std::string>()}).Set(r[1].as<double>());
    }
    return absl::OkStatus();
  });
  if (!read.ok()) spdlog::warn("metrics: the store's figures were not read: {}", std::string(read.message()));
}

}  // namespace tessera::metrics
