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
#include "services/intake/job_spec_validator.h"

namespace tessera::scheduler_host {

absl::Status ValidateRegisterWorker(const v1::RegisterWorkerRequest& request) {
  if (absl::Status s = intake::ValidateName("provider_account", request.provider_account()); !s.ok()) return s;
  if (request.name().empty()) return absl::InvalidArgumentError("name must be 1..128 characters");
  if (request.region().empty()) return absl::InvalidArgumentError("region must be 1..64 characters");
  if (request.ask_utok_per_gpu_hour() <= 0) {
    return absl::InvalidArgumentError(absl::StrCat("ask_utok_per_gpu_hour must be positive, got ", request.ask_utok_per_gpu_hour()));
  }
  if (absl::Status s = ValidateWorkerProfile("", request.name(), request.region(), request.ask_utok_per_gpu_hour()); !s.ok()) return s;
  if (request.public_key().size() != kPublicKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("public_key must be the machine's 32-byte Ed25519 public key, got ", request.public_key().size(), " bytes"));
  }
  if (request.gpus_size() < 1 || request.gpus_size() > 64) {
    return absl::InvalidArgumentError(absl::StrCat("gpus must list 1..64 devices, got ", request.gpus_size()));
  }
  std::set<uint32_t> indexes;
  std::set<std::string> uuids;
  for (const v1::Gpu& gpu : request.gpus()) {
    if (!indexes.insert(gpu.index()).second) return absl::InvalidArgumentError(absl::StrCat("gpus.index ", gpu.index(), " is listed twice"));
    if (gpu.index() >= static_cast<uint32_t>(request.gpus_size())) {
      return absl::InvalidArgumentError(absl::StrCat("gpus.index must be a device ordinal 0..", request.gpus_size() - 1,
                                                     ", got ", gpu.index()));
    }
    if (gpu.uuid().empty() || gpu.uuid().size() > 64) return absl::InvalidArgumentError("gpus.uuid must be 1..64 characters");
    if (!uuids.insert(gpu.uuid()).second) return absl::InvalidArgumentError(absl::StrCat("gpus.uuid '", gpu.uuid(), "' is listed twice"));
    if (gpu.model().empty() || gpu.model().size() > 64) return absl::InvalidArgumentError("gpus.model must be 1..64 characters");
    if (auto cc = ParseComputeCapability("gpus.compute_capability", gpu.compute_capability()); !cc.ok()) return cc.status();
    if (gpu.pci_bus_id().size() > 64) return absl::InvalidArgumentError("gpus.pci_bus_id must be at most 64 characters");
    for (uint32_t peer : gpu.peer_indexes()) {
      if (peer >= static_cast<uint32_t>(request.gpus_size()) || peer == gpu.index()) {
        return absl::InvalidArgumentError(absl::StrCat("gpus.peer_indexes of GPU ", gpu.index(), " must name other GPUs of this worker, got ", peer));
      }
    }
  }
  return ValidateProviderPolicy(request.policy());
}

absl::Status ValidateWorkerProfile(absl::string_view prefix, const std::string& name, const std::string& region, int64_t ask,
                                   const std::vector<std::string>& job_kinds) {
  // Shown in tables and logs: no control characters, which would drive the reader's terminal.
  const auto printable = [](const std::string& text) {
    return std::none_of(text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; });
  };
  if (name.size() > 128 || !printable(name)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "name must be 1..128 printable characters"));
  }
  if (region.size() > 64 || !printable(region)) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, "region must be 1..64 printable characters"));
  }
  if (ask < 0) return absl::InvalidArgumentError(absl::StrCat(prefix, "ask_utok_per_gpu_hour must be positive, got ", ask));
  if (job_kinds.size() > 32) return absl::InvalidArgumentError(absl::StrCat(prefix, "job_kinds lists at most 32 kinds"));
  for (const std::string& kind : job_kinds) {
    if (kind.empty() || kind.size() > 64 || !std::all_of(kind.begin(), kind.end(), [](char c) { return absl::ascii_isalnum(c) || c == '_'; })) {
      return absl::InvalidArgumentError(absl::StrCat(prefix, "job_kinds: each kind is 1..64 characters of [A-Za-z0-9_]"));
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateProviderPolicy(const v1::ProviderPolicy& policy) {
  for (const auto& [model, bid] : policy.min_bid_utok_per_gpu_hour()) {
    if (model.empty() || model.size() > 64) return absl::InvalidArgumentError("policy.min_bid_utok_per_gpu_hour: each model is 1..64 characters");
    if (bid <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("policy.min_bid_utok_per_gpu_hour['", model, "'] must be positive, got ", bid));
    }
  }
  if (policy.max_job_duration_ms() < 0) {
    return absl::InvalidArgumentError(absl::StrCat("policy.max_job_duration_ms must be 0 (any) or positive, got ", policy.max_job_duration_ms()));
  }
  for (const auto* list : {&policy.allowed_accounts(), &policy.denied_accounts()}) {
    if (list->size() > 256) return absl::InvalidArgumentError("policy account lists hold at most 256 accounts");
    for (const std::string& account : *list) {
      if (absl::Status s = intake::ValidateName("policy account", account); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

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
      host_.repository().RegisterWorker(*request, SubnetOfPeer(context->peer()), host_.options().trust);
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
  absl::StatusOr<std::vector<v1::Worker>> workers = host_.repository().ListWorkers(
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
  absl::StatusOr<v1::Worker> retired = host_.repository().RetireWorker(request->worker_id(), caller->admin() ? 0 : caller->account_id,
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
