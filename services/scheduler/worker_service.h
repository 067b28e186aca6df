// tessera.v1.WorkerService. Registration and listing are short synchronous transactions; Connect
// uses the callback API so that thousands of long-lived worker streams need no thread each.
#pragma once

#include "services/scheduler/scheduler_host.h"
#include "tessera/v1/workers.grpc.pb.h"

namespace tessera::scheduler_host {

class WorkerServiceImpl final : public v1::WorkerService::WithCallbackMethod_Connect<v1::WorkerService::Service> {
 public:
  explicit WorkerServiceImpl(SchedulerHost& host) : host_(host) {}

  grpc::Status RegisterWorker(grpc::ServerContext*, const v1::RegisterWorkerRequest*, v1::RegisterWorkerResponse*) override;
  grpc::Status ListWorkers(grpc::ServerContext*, const v1::ListWorkersRequest*, v1::ListWorkersResponse*) override;
  grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage>* Connect(grpc::CallbackServerContext*) override;

 private:
  SchedulerHost& host_;
};

absl::Status ValidateRegisterWorker(const v1::RegisterWorkerRequest& request);
// Also checked on a hello that carries a new policy.
absl::Status ValidateProviderPolicy(const v1::ProviderPolicy& policy);

}  // namespace tessera::scheduler_host
