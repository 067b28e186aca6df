// OCI images through podman (Debian's `podman` with crun), for jobs whose spec names an image the
// provider imported (`podman load`, `podman import`: workers reach no registry, so nothing is
// pulled). The container runs in the job's own cgroup (JobCgroup, made by the agent, which podman
// joins before it starts: --cgroups=disabled keeps crun from making another), so its limits, its
// metering and its stop are the same as the process sandbox's; podman and conmon, a few MiB,
// count with it. Inside: the image's root read-only, a private /tmp, /run and /job (a tmpfs with
// the job's mounts on it), the secrets under /run/secrets (files on a tmpfs of the host, never
// disk), the job user (never root), no capabilities, no new privileges, podman's seccomp profile
// (which refuses new namespaces, so none can be made inside), no network unless allowed, catatonit
// as PID 1 so that SIGTERM reaches the program and orphans are reaped. The job's GPUs go in by CDI
// ("nvidia.com/gpu=N") where the host has a CDI spec for them (nvidia-ctk cdi generate), else as
// bare device nodes. The program's stdout and stderr are the job's pipes (log driver passthrough).
//
// What our development machines need (cgroup v1 controllers beside a cgroup2 mount that holds only
// hugetlb; no CAP_SYS_RESOURCE): crun refuses such hybrid hosts, so podman starts in a private
// mount namespace with the cgroup2 mount detached; and every ulimit is set explicitly to what the
// agent has, since podman's defaults are above the hard limits and cannot be raised.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include "services/worker/sandbox/sandbox.h"
#include "services/worker/sandbox/sandbox_spawn.h"

namespace tessera::worker {

struct PodmanOptions {
  std::filesystem::path podman = "/usr/bin/podman";
  std::filesystem::path cgroup_root = "/sys/fs/cgroup";
  std::string cgroup_parent = "tessera";
  std::filesystem::path secrets_root = "/dev/shm";  // a tmpfs: secrets never touch a disk
  std::vector<std::filesystem::path> cdi_dirs = {"/etc/cdi", "/var/run/cdi"};
  std::filesystem::path base_seccomp = "/usr/share/containers/seccomp.json";  // podman's default profile
  // Required: the agent's state dir. The jobs' seccomp profile is written there (job-seccomp.json),
  // and podman and conmon run in a directory of their own per job under <state_dir>/podman
  // (conmon leaves files in its working directory, an "oom" mark among them).
  std::filesystem::path state_dir;
};

// podman's default seccomp profile lets a program make user namespaces (rootless podman inside a
// container needs them); a job must not, since inside one it holds every capability again (the
// hostile-job test "regain capabilities through a nested user namespace"). The jobs' profile is
// the default with clone and unshare allowed only without CLONE_NEWUSER (EPERM with it) and clone3,
// whose flags a filter cannot read, answered ENOSYS so that the C library falls back to clone.
absl::Status WriteJobSeccompProfile(const std::filesystem::path& base, const std::filesystem::path& out);

// What the host offers podman, found once by the agent (and printed at its start).
struct PodmanHost {
  bool hybrid_cgroups = false;  // v1 controllers and a cgroup2 mount at <cgroup_root>/unified
  bool cdi_gpus = false;        // a CDI spec names nvidia.com/gpu devices
  uint64_t max_open_files = 1024;
  uint64_t max_processes = 4096;
};
PodmanHost InspectPodmanHost(const PodmanOptions& options);

// The podman command line for `spec`, its secrets in `secrets_dir` (empty: none). What Start
// execs; a test reads it.
std::vector<std::string> PodmanCommandLine(const PodmanOptions& options, const PodmanHost& host, const SandboxSpec& spec,
                                           const std::filesystem::path& secrets_dir);

class PodmanSandbox final : public Sandbox {
 public:
  explicit PodmanSandbox(PodmanOptions options = {}) : options_(std::move(options)), host_(InspectPodmanHost(options_)) {}
  // INVALID_ARGUMENT without an image; FAILED_PRECONDITION naming the image when this machine does
  // not have it (nothing is pulled).
  absl::StatusOr<std::unique_ptr<SandboxProcess>> Start(const SandboxSpec& spec, int stdout_fd, int stderr_fd) override;

  // Whether podman runs here: FAILED_PRECONDITION saying why not (not root; no podman; its runtime
  // cannot be reached; the jobs' seccomp profile cannot be made). An agent offers image jobs only
  // when it passes.
  absl::Status Probe();
  // Whether podman holds `image` locally.
  bool HasImage(const std::string& image);
  const PodmanHost& host() const { return host_; }

 private:
  // Runs podman with `args` outside any job (mount namespace as for a job); its exit code, and its
  // output in `said` (bounded).
  absl::StatusOr<int> RunPodman(const std::vector<std::string>& args, std::string* said, std::chrono::seconds timeout);
  std::filesystem::path WorkRoot() const;
  std::filesystem::path JobSeccomp() const { return options_.state_dir / "job-seccomp.json"; }
  // podman (argv[0] only), its environment, its mount namespace, run in `working_dir`.
  SpawnRequest PodmanSpawn(const std::filesystem::path& working_dir) const;

  const PodmanOptions options_;
  const PodmanHost host_;
};

}  // namespace tessera::worker
