#include "services/worker/sandbox/bwrap_sandbox.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/worker/sandbox/sandbox_spawn.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

// The host's system directories, read-only: merged-/usr systems link /bin, /lib… into /usr.
constexpr const char* kSystemDirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"};

}  // namespace

std::vector<std::string> BwrapCommandLine(const BwrapOptions& options, const SandboxSpec& spec, const std::vector<int>& secret_fds) {
  std::vector<std::string> a = {options.bwrap.string(), "--unshare-user", "--unshare-pid", "--unshare-ipc", "--unshare-uts",
                                "--unshare-cgroup-try", "--disable-userns", "--die-with-parent", "--new-session", "--cap-drop",
                                "ALL"};
  if (!spec.network) a.push_back("--unshare-net");
  std::error_code ec;
  for (const char* dir : kSystemDirs) {
    if (fs::is_symlink(dir, ec)) {
      a.insert(a.end(), {"--symlink", fs::read_symlink(dir, ec).string(), dir});
    } else if (fs::is_directory(dir, ec)) {
      a.insert(a.end(), {"--ro-bind", dir, dir});
    }
  }
  a.insert(a.end(), {"--proc", "/proc", "--dev", "/dev", "--tmpfs", "/tmp", "--tmpfs", "/run", "--hostname", "tessera-job"});
  for (const std::string& device : spec.devices) a.insert(a.end(), {"--dev-bind", device, device});
  if (!spec.secrets.empty()) a.insert(a.end(), {"--dir", "/run/secrets"});
  size_t i = 0;
  for (const auto& [name, value] : spec.secrets) {
    a.insert(a.end(), {"--perms", "0400", "--ro-bind-data", std::to_string(secret_fds.at(i++)), "/run/secrets/" + name});
  }
  // /job is scratch space of its own (a tmpfs), the job's mounts on it; everything else of the
  // sandbox's root is read-only.
  a.insert(a.end(), {"--tmpfs", "/job"});
  for (const SandboxMount& m : spec.mounts) a.insert(a.end(), {m.writable ? "--bind" : "--ro-bind", m.host.string(), m.inside});
  a.insert(a.end(), {"--remount-ro", "/"});
  a.insert(a.end(), {"--chdir", spec.working_dir, "--clearenv", "--setenv", "PATH", "/usr/local/bin:/usr/bin:/bin", "--setenv", "HOME",
                     "/job", "--setenv", "TMPDIR", "/tmp", "--setenv", "LANG", "C.UTF-8"});
  for (const auto& [key, value] : spec.env) a.insert(a.end(), {"--setenv", key, value});
  a.push_back("--");
  a.insert(a.end(), spec.command.begin(), spec.command.end());
  return a;
}

absl::StatusOr<std::unique_ptr<SandboxProcess>> BwrapSandbox::Start(const SandboxSpec& spec, int stdout_fd, int stderr_fd) {
  if (absl::Status s = ValidateSandboxSpec(spec); !s.ok()) return s;
  if (!spec.image.empty()) return absl::InvalidArgumentError("image: the process sandbox runs the host's own system, not an image");
  absl::StatusOr<std::unique_ptr<JobCgroup>> cgroup = JobCgroup::Create(spec.name, spec.limits, options_.cgroup_root, options_.cgroup_parent);
  if (!cgroup.ok()) return cgroup.status();
  // Secrets travel through pipes that bubblewrap copies onto its tmpfs: never a file on disk.
  std::vector<int> secret_fds;
  auto close_secrets = [&] {
    for (int fd : secret_fds) ::close(fd);
  };
  for (const auto& [name, value] : spec.secrets) {
    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) {
      close_secrets();
      return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    }
    const ssize_t written = ::write(p[1], value.data(), value.size());
    ::close(p[1]);
    secret_fds.push_back(p[0]);
    if (written != static_cast<ssize_t>(value.size())) {
      close_secrets();
      return absl::InternalError("cannot pass a secret to the sandbox");
    }
  }
  SpawnRequest request;
  request.argv = BwrapCommandLine(options_, spec, secret_fds);
  request.env = {"PATH=/usr/bin:/bin"};
  request.procs_files = (*cgroup)->procs_files();
  request.stdout_fd = stdout_fd;
  request.stderr_fd = stderr_fd;
  request.inherited_fds = secret_fds;  // bubblewrap reads the secrets from them
  request.user = std::make_pair(spec.uid, spec.gid);
  absl::StatusOr<pid_t> pid = Spawn(request);
  close_secrets();
  if (!pid.ok()) return pid.status();
  // bubblewrap and its init in the PID namespace (its direct children) report the end.
  auto machinery = [](pid_t bubblewrap, const JobCgroup& cgroup) {
    std::vector<pid_t> pids = {bubblewrap};
    for (pid_t p : cgroup.Pids()) {
      if (ParentOf(p) == bubblewrap) pids.push_back(p);
    }
    return pids;
  };
  return std::unique_ptr<SandboxProcess>(new CgroupProcess(*pid, *std::move(cgroup), machinery));
}

absl::Status BwrapSandbox::Probe(uid_t uid, gid_t gid, const fs::path& mount) {
  if (::geteuid() != 0) {
    return absl::FailedPreconditionError("the sandbox needs the agent to run as root (it makes each job's cgroup and runs it as the job user)");
  }
  std::error_code ec;
  if (!fs::exists(options_.bwrap, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(options_.bwrap.string(), " is missing (Debian's bubblewrap package)"));
  }
  int err[2];
  if (::pipe2(err, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  SandboxSpec spec;
  spec.name = absl::StrCat("probe-", ::getpid());
  spec.command = {"true"};
  if (!mount.empty()) spec.mounts.push_back({.host = mount, .inside = "/job/probe", .writable = false});
  spec.uid = uid;
  spec.gid = gid;
  absl::StatusOr<std::unique_ptr<SandboxProcess>> p = Start(spec, err[1], err[1]);
  ::close(err[1]);
  std::string said;
  if (p.ok() && (*p)->Wait(std::chrono::seconds(10))) {
    char buf[512];
    ssize_t n = 0;
    while ((n = ::read(err[0], buf, sizeof buf)) > 0 && said.size() < 2'000) said.append(buf, static_cast<size_t>(n));
  }
  ::close(err[0]);
  if (!p.ok()) return absl::FailedPreconditionError(absl::StrCat("the sandbox cannot start here: ", p.status().message()));
  const SandboxExit exit = (*p)->Exit();
  if (exit.exit_code != 0) {
    return absl::FailedPreconditionError(absl::StrCat("bubblewrap cannot make a sandbox here (exit ", exit.exit_code, "): ",
                                                      std::string(absl::StripAsciiWhitespace(said))));
  }
  return absl::OkStatus();
}

}  // namespace tessera::worker
