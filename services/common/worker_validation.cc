#include "services/common/worker_validation.h"

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/compute_capability.h"
#include "services/common/names.h"
#include "services/common/worker_signing.h"

namespace tessera {

absl::Status ValidateRegisterWorker(const v1::RegisterWorkerRequest& request) {
  if (absl::Status s = ValidateName("provider_account", request.provider_account()); !s.ok()) return s;
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
      if (absl::Status s = ValidateName("policy account", account); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

bool PolicyAllowsDuration(const v1::ProviderPolicy& policy, int64_t max_duration_ms) {
  return scheduler::AllowsDuration(policy.max_job_duration_ms(), max_duration_ms);
}

}  // namespace tessera
