#include "services/intake/job_spec_validator.h"

#include <cctype>
#include <set>
#include <string>

#include "absl/strings/str_cat.h"
#include "services/common/compute_capability.h"
#include "services/common/money.h"
#include "services/common/names.h"
#include "services/common/sha256.h"
#include "services/common/workloads.h"

namespace tessera::intake {
namespace {

absl::Status OutOfRange(std::string_view field, int64_t lo, int64_t hi, int64_t got) {
  return absl::InvalidArgumentError(absl::StrCat(std::string(field), " must be between ", lo, " and ", hi, ", got ", got));
}

absl::Status ValidatePrecision(const std::string& field, const std::string& precision) {
  if (!precision.empty() && precision != "fp32" && precision != "bf16") {
    return absl::InvalidArgumentError(absl::StrCat(field, " must be fp32 or bf16, got '", precision, "'"));
  }
  return absl::OkStatus();
}

absl::Status ValidateTrainMlp(const v1::TrainMlpParams& p) {
  struct Bound { std::string_view field; int64_t value, lo, hi; };
  const Bound bounds[] = {
      {"spec.train_mlp.input_dim", p.input_dim(), 1, 4096},
      {"spec.train_mlp.hidden_dim", p.hidden_dim(), 1, 8192},
      {"spec.train_mlp.output_dim", p.output_dim(), 1, 1024},
      {"spec.train_mlp.samples", p.samples(), 1, 1'000'000},
      {"spec.train_mlp.batch_size", p.batch_size(), 1, p.samples() > 0 ? p.samples() : 1},
      {"spec.train_mlp.epochs", p.epochs(), 1, 10'000},
      {"spec.train_mlp.learning_rate_micros", p.learning_rate_micros(), 1, 10'000'000},
  };
  for (const Bound& b : bounds) {
    if (b.value < b.lo || b.value > b.hi) return OutOfRange(b.field, b.lo, b.hi, b.value);
  }
  return ValidatePrecision("spec.train_mlp.precision", p.precision());
}

absl::Status ValidateGemmBench(const v1::GemmBenchParams& p) {
  if (p.n() < 16 || p.n() > 16'384) return OutOfRange("spec.gemm_bench.n", 16, 16'384, p.n());
  if (p.iterations() < 1 || p.iterations() > 10'000) return OutOfRange("spec.gemm_bench.iterations", 1, 10'000, p.iterations());
  return ValidatePrecision("spec.gemm_bench.precision", p.precision());
}

bool PrintableAscii(std::string_view s);

// A relative path under a job directory: no "..", ".", empty components or leading "/".
bool RelativeInside(std::string_view path) {
  if (path.empty() || path.size() > 255 || path.front() == '/') return false;
  size_t start = 0;
  for (;;) {
    const size_t end = path.find('/', start);
    const std::string_view part = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (part.empty() || part == "." || part == "..") return false;
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return path.find('\0') == std::string_view::npos;
}

bool EnvName(std::string_view name) {
  if (name.empty() || name.size() > 128 || std::isdigit(static_cast<unsigned char>(name[0]))) return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_')) return false;
  }
  return true;
}

bool SecretName(std::string_view name) {
  if (name.empty() || name.size() > 64 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

absl::Status ValidateContainer(const v1::ContainerParams& p) {
  constexpr const char* kField = "spec.container";
  if (p.image().size() > 256 || !PrintableAscii(p.image())) {
    return absl::InvalidArgumentError(absl::StrCat(kField, ".image: at most 256 printable characters without spaces"));
  }
  if (!p.image().empty() && !IsImageReference(p.image())) {
    return absl::InvalidArgumentError(absl::StrCat(kField, ".image: '", p.image(),
                                                   "' is not an image reference (registry/name:tag or registry/name@sha256:…, as podman names it: fully qualified)"));
  }
  if (p.command_size() < 1 || p.command(0).empty()) {
    return absl::InvalidArgumentError(absl::StrCat(kField, ".command: required: the program and its arguments, as [\"python3\", \"train.py\"]"));
  }
  if (p.command_size() > 256) return OutOfRange(absl::StrCat(kField, ".command entries"), 1, 256, p.command_size());
  for (int i = 0; i < p.command_size(); ++i) {
    if (p.command(i).size() > 4096 || p.command(i).find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".command[", i, "]: at most 4096 bytes, no NUL"));
    }
  }
  if (p.env_size() > 128) return OutOfRange(absl::StrCat(kField, ".env entries"), 0, 128, p.env_size());
  for (const auto& [name, value] : p.env()) {
    if (!EnvName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".env['", name.substr(0, 64), "']: a name is [A-Za-z_][A-Za-z0-9_]*"));
    }
    if (name.starts_with("TESSERA_")) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".env['", name, "']: TESSERA_* variables are the worker's to set"));
    }
    if (value.size() > 4096 || value.find('\0') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".env['", name, "']: at most 4096 bytes, no NUL"));
    }
  }
  if (p.secrets_size() > 32) return OutOfRange(absl::StrCat(kField, ".secrets entries"), 0, 32, p.secrets_size());
  for (const auto& [name, value] : p.secrets()) {
    // The error names the secret, never its value.
    if (!SecretName(name)) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".secrets: '", name.substr(0, 64),
                                                     "' is not a valid file name (letters, digits, '.', '_', '-'; at most 64)"));
    }
    if (value.size() > 16 * 1024) return absl::InvalidArgumentError(absl::StrCat(kField, ".secrets['", name, "']: at most 16 KiB"));
  }
  if (p.inputs_size() > 64) return OutOfRange(absl::StrCat(kField, ".inputs entries"), 0, 64, p.inputs_size());
  std::set<std::string> paths;
  for (int i = 0; i < p.inputs_size(); ++i) {
    const std::string field = absl::StrCat(kField, ".inputs[", i, "]");
    if (absl::StatusOr<std::string> d = ParseDigest(p.inputs(i).artifact(), field + ".artifact"); !d.ok()) return d.status();
    if (!RelativeInside(p.inputs(i).path())) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".path: '", p.inputs(i).path().substr(0, 255),
                                                     "' must be a relative path under /job/inputs, without '..'"));
    }
    if (!paths.insert(p.inputs(i).path()).second) {
      return absl::InvalidArgumentError(absl::StrCat(field, ".path: '", p.inputs(i).path(), "' is used by another input"));
    }
  }
  // One input inside another's directory ("data" and "data/x") would be placed through what the
  // first put there (a bundle's links): each input gets a path of its own.
  for (auto it = paths.begin(); it != paths.end(); ++it) {
    auto next = std::next(it);
    if (next != paths.end() && next->starts_with(*it + "/")) {
      return absl::InvalidArgumentError(absl::StrCat(kField, ".inputs: '", *next, "' lies inside another input, '", *it, "'"));
    }
  }
  if (!p.code().empty()) {
    if (absl::StatusOr<std::string> d = ParseDigest(p.code(), absl::StrCat(kField, ".code")); !d.ok()) return d.status();
  }
  if (p.checkpoint_interval_s() > 86'400) {
    return OutOfRange(absl::StrCat(kField, ".checkpoint_interval_s"), 0, 86'400, p.checkpoint_interval_s());
  }
  if (p.cpu_cores() > 1024) return OutOfRange(absl::StrCat(kField, ".cpu_cores"), 0, 1024, p.cpu_cores());
  if (p.memory_mib() > (uint64_t{4} << 20)) {
    return OutOfRange(absl::StrCat(kField, ".memory_mib"), 0, int64_t{4} << 20, static_cast<int64_t>(p.memory_mib()));
  }
  return absl::OkStatus();
}

absl::Status ValidateRequirements(const v1::JobSpec& spec) {
  if (spec.min_gpu_memory_mib() > kMaxGpuMemoryMib) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.min_gpu_memory_mib must be at most ", kMaxGpuMemoryMib, ", got ", spec.min_gpu_memory_mib()));
  }
  if (!spec.min_compute_capability().empty()) {
    if (auto cc = ParseComputeCapability("spec.min_compute_capability", spec.min_compute_capability()); !cc.ok()) return cc.status();
  }
  if (spec.regions_size() > 16) return absl::InvalidArgumentError("spec.regions lists more than 16 regions");
  for (const std::string& region : spec.regions()) {
    if (region.empty() || region.size() > 64) return absl::InvalidArgumentError("spec.regions: each region is 1..64 characters");
  }
  if (spec.min_reputation() < 0 || spec.min_reputation() > kMaxReputation) {
    return OutOfRange("spec.min_reputation", 0, kMaxReputation, spec.min_reputation());
  }
  if (!v1::GpuPlacement_IsValid(spec.placement())) return absl::InvalidArgumentError("spec.placement is not a known placement");
  return absl::OkStatus();
}

bool PrintableAscii(std::string_view s) {
  for (char c : s) {
    if (c < 0x21 || c > 0x7e) return false;
  }
  return true;
}

absl::Status ValidateRequestId(std::string_view request_id) {
  if (request_id.empty() || request_id.size() > 128 || !PrintableAscii(request_id)) {
    return absl::InvalidArgumentError("request_id must be 1..128 printable ASCII characters without spaces");
  }
  return absl::OkStatus();
}

// Exactly one workload, and `kind`, when a client still sends it, naming that one.
absl::Status ValidateWorkloadChoice(const v1::JobSpec& spec) {
  const std::string_view workload = WorkloadKind(spec);
  if (!spec.kind().empty() && !IsWorkloadKind(spec.kind())) {
    return absl::InvalidArgumentError(absl::StrCat("spec.kind: unknown job kind '", spec.kind(),
                                                   "' (expected sleep, train_mlp, gemm_bench or allreduce_bench)"));
  }
  if (workload.empty() && !spec.kind().empty()) {
    return absl::InvalidArgumentError(absl::StrCat("spec.", spec.kind(), " is required for kind ", spec.kind()));
  }
  if (workload.empty()) {
    return absl::InvalidArgumentError("spec.workload: one of sleep, train_mlp, gemm_bench, allreduce_bench or container is required");
  }
  if (!spec.kind().empty() && spec.kind() != workload) {
    return absl::InvalidArgumentError(absl::StrCat("spec.", std::string(workload), " must not be set for kind ", spec.kind(),
                                                   " (spec.kind names the workload; it may be left out)"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateJobSpec(const v1::JobSpec& spec) {
  if (spec.ByteSizeLong() > kMaxSpecBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec is ", spec.ByteSizeLong(), " bytes; the limit is ", kMaxSpecBytes));
  }
  if (absl::Status s = ValidateWorkloadChoice(spec); !s.ok()) return s;
  if (spec.gpu_count() < 1 || spec.gpu_count() > kMaxGpuCount) return OutOfRange("spec.gpu_count", 1, kMaxGpuCount, spec.gpu_count());
  if (spec.gpu_models_size() > 16) return absl::InvalidArgumentError("spec.gpu_models lists more than 16 models");
  for (const std::string& model : spec.gpu_models()) {
    if (model.empty() || model.size() > 64) return absl::InvalidArgumentError("spec.gpu_models: each model name is 1..64 characters");
  }
  if (spec.bid_utok_per_gpu_hour() <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.bid_utok_per_gpu_hour must be positive, got ", spec.bid_utok_per_gpu_hour()));
  }
  if (spec.max_duration_ms() < 1 || spec.max_duration_ms() > kMaxDurationMs) {
    return OutOfRange("spec.max_duration_ms", 1, kMaxDurationMs, spec.max_duration_ms());
  }
  if (spec.max_attempts() > kMaxAttempts) return OutOfRange("spec.max_attempts", 0, kMaxAttempts, spec.max_attempts());
  if (spec.queue_timeout_ms() < 0 || spec.queue_timeout_ms() > kMaxQueueTimeoutMs) {
    return OutOfRange("spec.queue_timeout_ms", 0, kMaxQueueTimeoutMs, spec.queue_timeout_ms());
  }
  if (!v1::PriorityClass_IsValid(spec.priority_class())) return absl::InvalidArgumentError("spec.priority_class is not a known class");
  if (absl::Status s = ValidateRequirements(spec); !s.ok()) return s;
  if (absl::StatusOr<int64_t> hold = HoldAmount(spec.bid_utok_per_gpu_hour(), spec.gpu_count(), spec.max_duration_ms());
      !hold.ok()) {
    return absl::InvalidArgumentError("spec.bid_utok_per_gpu_hour × gpu_count × max_duration_ms overflows the hold");
  } else if (*hold == 0) {
    // Charges are floor(GPU-ms × price / 3.6e6) and capped by the hold: such a job could never
    // pay its provider anything.
    return absl::InvalidArgumentError(absl::StrCat("spec.bid_utok_per_gpu_hour × gpu_count × max_duration_ms / 3,600,000 is 0 µT (",
                                                   spec.bid_utok_per_gpu_hour(), " × ", spec.gpu_count(), " × ",
                                                   spec.max_duration_ms(), "): raise the bid or the duration"));
  }
  switch (spec.workload_case()) {
    case v1::JobSpec::kSleep:
      // It may exceed max_duration_ms: such a job is stopped at its limit unless ExtendJob raises it.
      if (spec.sleep().duration_ms() < 0 || spec.sleep().duration_ms() > kMaxDurationMs) {
        return OutOfRange("spec.sleep.duration_ms", 0, kMaxDurationMs, spec.sleep().duration_ms());
      }
      return absl::OkStatus();
    case v1::JobSpec::kGemmBench: return ValidateGemmBench(spec.gemm_bench());
    case v1::JobSpec::kAllreduceBench: {
      const v1::AllReduceBenchParams& p = spec.allreduce_bench();
      if (p.megabytes() < 1 || p.megabytes() > 4'096) return OutOfRange("spec.allreduce_bench.megabytes", 1, 4'096, p.megabytes());
      if (p.iterations() < 1 || p.iterations() > 1'000) return OutOfRange("spec.allreduce_bench.iterations", 1, 1'000, p.iterations());
      return absl::OkStatus();
    }
    case v1::JobSpec::kContainer: return ValidateContainer(spec.container());
    case v1::JobSpec::kTrainMlp:
    case v1::JobSpec::WORKLOAD_NOT_SET:  // refused by ValidateWorkloadChoice
      break;
  }
  return ValidateTrainMlp(spec.train_mlp());
}

absl::Status ValidateSubmitRequest(const v1::SubmitJobRequest& request) {
  if (absl::Status s = ValidateName("account", request.account()); !s.ok()) return s;
  if (absl::Status s = ValidateRequestId(request.request_id()); !s.ok()) return s;
  if (!request.has_spec()) return absl::InvalidArgumentError("spec is required");
  return ValidateJobSpec(request.spec());
}

absl::Status ValidateExtendRequest(const v1::ExtendJobRequest& request) {
  if (request.job_id() <= 0) return absl::InvalidArgumentError("job_id must be positive");
  if (request.additional_duration_ms() < 1 || request.additional_duration_ms() > kMaxDurationMs) {
    return OutOfRange("additional_duration_ms", 1, kMaxDurationMs, request.additional_duration_ms());
  }
  return ValidateRequestId(request.request_id());
}

}  // namespace tessera::intake
