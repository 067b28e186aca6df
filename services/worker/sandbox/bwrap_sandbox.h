// The process sandbox: bubblewrap (Debian's `bubblewrap`), started as the job's unprivileged user so
// that its user namespace maps that user, not root (bubblewrap started by root would map the
// sandbox's root to the host's, and a job could then open /proc/sys/kernel/core_pattern for
// writing). New user, PID, IPC, UTS, cgroup and (unless allowed) network namespaces; no further user
// namespaces inside (--disable-userns), so no capability can be regained; the host's /usr and /etc
// read-only, its own /proc, a minimal /dev, private /tmp; the job's mounts under /job. About 15 ms
// a start here.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "services/worker/sandbox/sandbox.h"

namespace tessera::worker {

struct BwrapOptions {
  std::filesystem::path bwrap = "/usr/bin/bwrap";
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "tessera";  // v1: one level under each controller; v2: under this path
};

// The bubblewrap command line for `spec`, the secrets read from `secret_fds` (one per secret, in
// the spec's name order). What Start execs; a test reads it.
std::vector<std::string> BwrapCommandLine(const BwrapOptions& options, const SandboxSpec& spec, const std::vector<int>& secret_fds);

class BwrapSandbox final : public Sandbox {
 public:
  explicit BwrapSandbox(BwrapOptions options = {}) : options_(std::move(options)) {}
  absl::StatusOr<std::unique_ptr<SandboxProcess>> Start(const SandboxSpec& spec, int stdout_fd, int stderr_fd) override;

  // Whether this machine can run sandboxed jobs, by running `true` in one as `uid`: FAILED_PRECONDITION
  // saying why not (the agent is not root; no bubblewrap; no usable cgroups; user namespaces refused,
  // as in a chroot or with kernel.unprivileged_userns_clone=0). An agent offers container jobs only
  // when it passes.
  // With `mount`, the probe also mounts that directory read-only, as a job's are: it must be
  // reachable by the job user (an absolute path whose every parent it may traverse).
  absl::Status Probe(uid_t uid = 65534, gid_t gid = 65534, const std::filesystem::path& mount = {});

 private:
  const BwrapOptions options_;
};

}  // namespace tessera::worker
