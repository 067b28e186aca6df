#include "services/common/workloads.h"

#include <algorithm>
#include <cctype>

namespace tessera {

std::string_view WorkloadKind(const v1::JobSpec& spec) {
  switch (spec.workload_case()) {
    case v1::JobSpec::kSleep: return "sleep";
    case v1::JobSpec::kTrainMlp: return "train_mlp";
    case v1::JobSpec::kGemmBench: return "gemm_bench";
    case v1::JobSpec::kAllreduceBench: return "allreduce_bench";
    case v1::JobSpec::kContainer: return "container";
    case v1::JobSpec::WORKLOAD_NOT_SET: return "";
  }
  return "";
}

std::string_view MatchingKind(const v1::JobSpec& spec) {
  if (spec.has_container() && !spec.container().image().empty()) return kOciImageKind;
  return WorkloadKind(spec);
}

bool IsImageReference(std::string_view image) {
  if (image.empty() || image.size() > 256 || !std::isalnum(static_cast<unsigned char>(image[0]))) return false;
  for (char c : image) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '/' || c == ':' || c == '@')) {
      return false;
    }
  }
  // Fully qualified, with a tag or a digest: a short name or a bare image id could resolve to any
  // image the worker holds, another customer's among them.
  const size_t slash = image.rfind('/');
  return slash != std::string_view::npos && image.find_first_of(":@", slash) != std::string_view::npos;
}

bool IsWorkloadKind(std::string_view kind) { return std::find(kWorkloadKinds.begin(), kWorkloadKinds.end(), kind) != kWorkloadKinds.end(); }

void RedactSecrets(v1::JobSpec* spec) {
  if (!spec->has_container()) return;
  for (auto& [name, value] : *spec->mutable_container()->mutable_secrets()) value = std::string(kRedacted);
}

// The one place that reads the deprecated fields.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
void UpgradeLegacyResult(std::string_view kind, v1::JobResult* r) {
  if (r->outputs_case() != v1::JobResult::OUTPUTS_NOT_SET) return;
  if (!r->error().empty()) {
    // A failure's outputs are not results (before outputs, a run stopped at its limit after its
    // kernel had finished kept them beside the error).
  } else if (kind == "train_mlp") {
    v1::TrainMlpResult* out = r->mutable_train_mlp();
    out->set_initial_loss(r->initial_loss());
    out->set_final_loss(r->final_loss());
    out->set_weights_sha256(r->weights_sha256());
  } else if (kind == "gemm_bench") {
    v1::GemmBenchResult* out = r->mutable_gemm_bench();
    out->set_achieved_tflops(r->achieved_tflops());
    out->set_timed_seconds(r->timed_seconds());
    out->set_backend(r->backend());
    out->set_checksum(r->checksum());
  } else if (kind == "allreduce_bench") {
    v1::AllReduceBenchResult* out = r->mutable_allreduce_bench();
    out->set_algorithm_gbps(r->algorithm_gbps());
    out->set_bus_gbps(r->bus_gbps());
    out->set_timed_seconds(r->timed_seconds());
    out->set_backend(r->backend());
  }
  r->clear_initial_loss();
  r->clear_final_loss();
  r->clear_weights_sha256();
  r->clear_achieved_tflops();
  r->clear_timed_seconds();
  r->clear_backend();
  r->clear_checksum();
  r->clear_algorithm_gbps();
  r->clear_bus_gbps();
}
#pragma GCC diagnostic pop

}  // namespace tessera
