// tessera.v1.WorkerService. Registration and listing are short synchronous transactions; Connect
// uses the callback API so that thousands of long-lived worker streams need no thread each. A
// provider's key registers and connects only that provider's workers, with at most
// `max_streams_per_provider` streams open at once.
#pragma once

#include <mutex>

#include "absl/container/flat_hash_map.h"
#include "services/auth/authenticator.h"
#include "services/scheduler/scheduler_host.h"
#include "services/scheduler/scheduler_repository.h"
#include "tessera/v1/workers.grpc.pb.h"

namespace tessera::scheduler_host {

class WorkerServiceImpl final : public v1::WorkerService::WithCallbackMethod_Connect<v1::WorkerService::Service> {
 public:
  // `workers`: registration, listing and retirement (the API's side of the worker registry).
  WorkerServiceImpl(SchedulerHost& host, SchedulerRepository& workers, auth::Authenticator& auth, int max_streams_per_provider)
      : host_(host), workers_(workers), auth_(auth), max_streams_per_provider_(max_streams_per_provider) {}

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*, v1::RegisterWorkerResponse*) override;
  grpc::Status RetireWorker(grpc::ServerContext*, const v1::RetireWorkerRequest*, v1::Worker*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*, v1::ListWorkersResponse*) override;
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage>* Connect(grpc::CallbackServerContext*) override;

 private:
  // A slot of the provider's stream quota, released when the holder drops it; null when full.
  std::shared_ptr<void> TakeStreamSlot(int64_t provider_account_id);

  SchedulerHost& host_;
  SchedulerRepository& workers_;
  auth::Authenticator& auth_;
  const int max_streams_per_provider_;
  std::mutex streams_mu_;
  absl::flat_hash_map<int64_t, int> open_streams_ ABSL_GUARDED_BY(streams_mu_);
};

}  // namespace tessera::scheduler_host
