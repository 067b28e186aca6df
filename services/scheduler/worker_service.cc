#include "services/scheduler/worker_service.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/compute_capability.h"
#include "services/common/gpu_challenge_proof.h"
#include "services/common/grpc_status.h"
#include "services/common/pagination.h"
#include "services/common/worker_signing.h"
#include "services/auth/access_policy.h"
#include "services/common/worker_validation.h"

namespace tessera::scheduler_host {

grpc::Status WorkerServiceImpl::RegisterWorker(grpc::ServerContext* context, const v1::RegisterWorkerRequest* request,
                                               v1::RegisterWorkerResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.WorkerService/RegisterWorker");
  if (absl::Status s = ValidateRegisterWorker(*request); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "provider_account", request->provider_account()); !s.ok()) return ToGrpcStatus(s);
  if (host_.options().verifier.enabled) {
    // A machine that could never pass its challenge is told now, not held PENDING_VERIFICATION forever.
    for (const v1::Gpu& gpu : request->gpus()) {
      if (Int8ThroughputOf(gpu.model()) == nullptr) {
        std::string known;
        for (const Int8Throughput& t : kInt8Throughput) absl::StrAppend(&known, known.empty() ? "" : ", ", t.model);
        return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat(
            "gpus.model '", gpu.model(), "' cannot be verified by a proof-of-GPU challenge; known models: ", known)));
      }
    }
  }
  absl::StatusOr<v1::RegisterWorkerResponse> registered =
      workers_.RegisterWorker(*request, SubnetOfPeer(context->peer()), host_.options().trust);
  if (!registered.ok()) return ToGrpcStatus(registered.status());
  *response = *std::move(registered);
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::ListWorkers(grpc::ServerContext* context, const v1::ListWorkersRequest* request,
                                            v1::ListWorkersResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.WorkerService/ListWorkers");
  absl::StatusOr<std::string> provider = auth::ScopeAccountFilter(*caller, "provider_account", request->provider_account());
  if (!provider.ok()) return ToGrpcStatus(provider.status());
  const PageQuery query{.list = "workers", .filters = *provider};
  absl::StatusOr<Page> page = ParsePage(query, request->page_token(), request->page_size());
  if (!page.ok()) return ToGrpcStatus(page.status());
  absl::StatusOr<std::vector<v1::Worker>> workers = workers_.ListWorkers(
      {.provider_account = *provider, .worker_id = 0, .before_worker_id = page->before_id(), .limit = page->size + 1});
  if (!workers.ok()) return ToGrpcStatus(workers.status());
  if (workers->size() > page->size) {
    workers->pop_back();
    response->set_next_page_token(NextPageToken(query, workers->back().worker_id()));
  }
  const std::vector<int64_t> connected = host_.registry().ConnectedWorkers();
  for (v1::Worker& w : *workers) {
    w.set_connected(std::find(connected.begin(), connected.end(), w.worker_id()) != connected.end());
    w.set_stream_replacements(host_.registry().StreamReplacements(w.worker_id()));
    *response->add_workers() = std::move(w);
  }
  return grpc::Status::OK;
}

grpc::Status WorkerServiceImpl::RetireWorker(grpc::ServerContext* context, const v1::RetireWorkerRequest* request,
                                             v1::Worker* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.WorkerService/RetireWorker");
  if (request->worker_id() <= 0) return ToGrpcStatus(absl::InvalidArgumentError("worker_id must be positive"));
  if (request->reason().empty() || request->reason().size() > 512) {
    return ToGrpcStatus(absl::InvalidArgumentError("reason must be 1..512 characters"));
  }
  // A connected worker is still someone's running machine: its agent is stopped first.
  if (host_.registry().SessionOf(request->worker_id()) != nullptr) {
    return ToGrpcStatus(absl::FailedPreconditionError(absl::StrCat(
        "worker ", request->worker_id(), " is connected: stop its agent (SIGTERM drains it) before retiring it")));
  }
  absl::StatusOr<v1::Worker> retired = workers_.RetireWorker(request->worker_id(), caller->admin() ? 0 : caller->account_id,
                                                                       request->reason(), caller->key_id);
  if (!retired.ok()) return ToGrpcStatus(retired.status());
  *response = *std::move(retired);
  return grpc::Status::OK;
}

grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage>* WorkerServiceImpl::Connect(grpc::CallbackServerContext* context) {
  absl::StatusOr<auth::Caller> caller = auth_.Authorize(*context, "tessera.v1.WorkerService/Connect");
  if (!caller.ok()) return new RejectedStream(ToGrpcStatus(caller.status()));
  std::shared_ptr<void> slot;
  if (!caller->admin()) {
    slot = TakeStreamSlot(caller->account_id);
    if (slot == nullptr) {
      return new RejectedStream(ToGrpcStatus(ResourceExhaustedWithRetry(
          absl::StrCat("provider '", caller->account, "' already has ", max_streams_per_provider_,
                       " worker streams open (--max-streams-per-provider)"),
          5'000)));
    }
  }
  return new WorkerStream(host_, caller->admin() ? 0 : caller->account_id, std::move(slot));
}

std::shared_ptr<void> WorkerServiceImpl::TakeStreamSlot(int64_t provider_account_id) {
  std::lock_guard lock(streams_mu_);
  int& open = open_streams_[provider_account_id];
  if (open >= max_streams_per_provider_) return nullptr;
  ++open;
  // The service outlives every stream: the server shuts gRPC down before destroying it.
  return std::shared_ptr<void>(new char, [this, provider_account_id](void* token) {
    delete static_cast<char*>(token);
    std::lock_guard lock(streams_mu_);
    if (--open_streams_[provider_account_id] == 0) open_streams_.erase(provider_account_id);
  });
}

}  // namespace tessera::scheduler_host
