// What every sandbox refuses before it starts anything (sandbox.h).
#include <cctype>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "services/common/workloads.h"
#include "services/worker/sandbox/sandbox.h"

namespace tessera::worker {
namespace {

constexpr size_t kMaxSecretBytes = 64 << 10;  // what a pipe holds without a reader

bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

}  // namespace

absl::Status ValidateSandboxSpec(const SandboxSpec& spec) {
  if (spec.command.empty() || spec.command[0].empty()) return absl::InvalidArgumentError("command: must name a program");
  if (spec.uid == 0 || spec.gid == 0) return absl::InvalidArgumentError("uid: a job never runs as root");
  if (!PlainName(spec.name)) return absl::InvalidArgumentError(absl::StrCat("name: '", spec.name, "' is not a plain name"));
  if (!spec.image.empty() && !IsImageReference(spec.image)) {
    return absl::InvalidArgumentError(absl::StrCat("image: '", spec.image, "' is not an image reference (registry/name:tag or registry/name@sha256:…)"));
  }
  for (const auto& [name, value] : spec.secrets) {
    if (!PlainName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("secrets: '", name, "' is not a valid file name (letters, digits, '.', '_', '-')"));
    }
    if (value.size() > kMaxSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat("secrets['", name, "']: at most ", kMaxSecretBytes, " bytes"));
    }
  }
  for (const SandboxMount& m : spec.mounts) {
    const std::string inside = std::filesystem::path(m.inside).lexically_normal().string();
    if (m.inside.find("..") != std::string::npos || !inside.starts_with("/job/") || inside.size() <= 5) {
      return absl::InvalidArgumentError(absl::StrCat("mounts: '", m.inside, "' is not a path under /job"));
    }
  }
  return absl::OkStatus();
}

}  // namespace tessera::worker
