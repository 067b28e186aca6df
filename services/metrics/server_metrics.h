// The server's metrics (issue 19): every RPC by service, method and code with its latency (a
// server interceptor); the scheduler host's rounds, placements, preemptions, lease expiries and
// ingest (its HostObserver); and, read from PostgreSQL at each scrape, the jobs by state, kind and
// class, the queue by GPU model with its oldest wait, the workers by state and GPU model, and the
// ledger's totals by bucket. The store of record answers those, so every server of a deployment
// reports the same figures, and a restart loses none.
#pragma once

#include <grpcpp/support/server_interceptor.h>

#include <memory>
#include <vector>

#include "services/metrics/metric_registry.h"
#include "services/scheduler/host_observer.h"
#include "services/store/database.h"

namespace tessera::metrics {

class ServerMetrics final : public scheduler_host::HostObserver {
 public:
  // `db` may be null (no figures from the store); it outlives this object.
  ServerMetrics(MetricRegistry& registry, store::Database* db);

  // For grpc::ServerBuilder::experimental().SetInterceptorCreators, beside any others.
  std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface> RpcInterceptorFactory();
  // One finished RPC ("/tessera.v1.JobService/SubmitJob", its code, its seconds).
  void OnRpc(const char* full_method, grpc::StatusCode code, double seconds);

  void OnRound(const scheduler_host::RoundReport& round) override;
  void OnIngestBatch(const scheduler_host::IngestReport& batch) override;
  void OnLeasesExpired(size_t workers, size_t jobs_requeued) override;

 private:
  void CollectFromStore();

  store::Database* const db_;
  Family<Counter>& rpcs_;
  Family<Histogram>& rpc_seconds_;
  Counter& rounds_;
  Histogram& round_seconds_;
  Counter& placements_;
  Counter& preemptions_;
  Gauge& market_queue_;
  Counter& ingest_batches_;
  Counter& worker_messages_;
  Counter& leases_expired_;
  Counter& jobs_requeued_;
  Family<Gauge>& jobs_;
  Family<Counter>& jobs_submitted_;
  Family<Gauge>& queue_;
  Family<Gauge>& queue_oldest_;
  Family<Gauge>& workers_;
  Family<Gauge>& ledger_;
};

}  // namespace tessera::metrics
