#include "services/worker/sandbox/bwrap_sandbox.h"

#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <linux/close_range.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxSecretBytes = 64 << 10;  // what a pipe holds without a reader

// The host's system directories, read-only: merged-/usr systems link /bin, /lib… into /usr.
constexpr const char* kSystemDirs[] = {"/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/etc"};

bool PlainName(const std::string& name) {
  if (name.empty() || name.size() > 255 || name == "." || name == "..") return false;
  for (char c : name) {
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.')) return false;
  }
  return true;
}

// Writes the decimal `n` into `out` (async-signal-safe, for the forked child); returns the length.
size_t FormatPid(pid_t n, char* out) {
  char digits[16];
  size_t len = 0;
  do {
    digits[len++] = static_cast<char>('0' + n % 10);
    n /= 10;
  } while (n > 0);
  for (size_t i = 0; i < len; ++i) out[i] = digits[len - 1 - i];
  return len;
}

// The parent of `pid`, from /proc/<pid>/stat ("pid (comm) state ppid …"; comm may hold spaces).
pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

class BwrapProcess final : public SandboxProcess {
 public:
  BwrapProcess(pid_t pid, std::unique_ptr<JobCgroup> cgroup) : pid_(pid), cgroup_(std::move(cgroup)) {}
  ~BwrapProcess() override {
    cgroup_->KillAll();
    Reap(true);
  }

  bool Wait(std::chrono::milliseconds timeout) override {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    for (;;) {
      if (Reap(false)) {
        // bubblewrap's init took the program's processes down with the PID namespace; anything
        // that escaped it in the cgroup goes now.
        cgroup_->KillAll();
        return true;
      }
      if (std::chrono::steady_clock::now() >= deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
  }

  void Stop(std::chrono::milliseconds grace) override {
    {
      std::lock_guard lock(mu_);
      if (reaped_) return;
      stopped_ = true;
    }
    // The program and what it started get SIGTERM; bubblewrap itself and its init in the PID
    // namespace do not, or they would end at once and SIGKILL the program before its grace.
    std::vector<pid_t> bubblewrap = {pid_};
    for (pid_t p : cgroup_->Pids()) {
      if (ParentOf(p) == pid_) bubblewrap.push_back(p);
    }
    cgroup_->Signal(SIGTERM, bubblewrap);
    if (!Wait(grace)) {
      cgroup_->KillAll();
      Wait(std::chrono::seconds(5));
    }
  }

  CgroupUsage Usage() const override { return cgroup_->Usage(); }

  SandboxExit Exit() const override {
    std::lock_guard lock(mu_);
    SandboxExit exit;
    exit.usage = cgroup_->Usage();
    exit.stopped = stopped_;
    exit.oom_killed = exit.usage.oom_killed;
    if (lost_) {
      exit.exit_code = -1;
    } else if (WIFEXITED(status_)) {
      exit.exit_code = WEXITSTATUS(status_);
      // bubblewrap exits 128+N when the program died of signal N.
      if (exit.exit_code > 128 && exit.exit_code < 128 + NSIG) {
        exit.signal = exit.exit_code - 128;
        exit.exit_code = -1;
      }
    } else if (WIFSIGNALED(status_)) {
      exit.signal = WTERMSIG(status_);
    }
    return exit;
  }

 private:
  // True once bubblewrap has exited (its status kept); `block` waits for it.
  bool Reap(bool block) {
    std::lock_guard lock(mu_);
    if (reaped_) return true;
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, block ? 0 : WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
    } else if (r < 0 && errno == ECHILD) {
      reaped_ = true;  // reaped by someone else: how it ended is unknown, so never a success
      lost_ = true;
    }
    return reaped_;
  }

  const pid_t pid_;
  std::unique_ptr<JobCgroup> cgroup_;
  mutable std::mutex mu_;
  bool reaped_ = false;
  bool stopped_ = false;
  bool lost_ = false;
  int status_ = 0;
};

}  // namespace

absl::Status ValidateSandboxSpec(const SandboxSpec& spec) {
  if (spec.command.empty() || spec.command[0].empty()) return absl::InvalidArgumentError("command: must name a program");
  if (spec.uid == 0 || spec.gid == 0) return absl::InvalidArgumentError("uid: a job never runs as root");
  if (!PlainName(spec.name)) return absl::InvalidArgumentError(absl::StrCat("name: '", spec.name, "' is not a plain name"));
  for (const auto& [name, value] : spec.secrets) {
    if (!PlainName(name)) {
      return absl::InvalidArgumentError(absl::StrCat("secrets: '", name, "' is not a valid file name (letters, digits, '.', '_', '-')"));
    }
    if (value.size() > kMaxSecretBytes) {
      return absl::InvalidArgumentError(absl::StrCat("secrets['", name, "']: at most ", kMaxSecretBytes, " bytes"));
    }
  }
  for (const SandboxMount& m : spec.mounts) {
    const std::string inside = fs::path(m.inside).lexically_normal().string();
    if (m.inside.find("..") != std::string::npos || !inside.starts_with("/job/") || inside.size() <= 5) {
      return absl::InvalidArgumentError(absl::StrCat("mounts: '", m.inside, "' is not a path under /job"));
    }
  }
  return absl::OkStatus();
}

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
  const std::vector<std::string> args = BwrapCommandLine(options_, spec, secret_fds);
  std::vector<char*> argv;
  for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  char path_env[] = "PATH=/usr/bin:/bin";
  char* envp[] = {path_env, nullptr};
  std::vector<const char*> procs_files;
  for (const std::string& f : (*cgroup)->procs_files()) procs_files.push_back(f.c_str());
  const int null_fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  struct rlimit files {};
  const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                         : 1 << 16;

  const pid_t pid = ::fork();
  if (pid < 0) {
    close_secrets();
    if (null_fd >= 0) ::close(null_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // The child: only async-signal-safe calls from here to exec.
    char text[16];
    const size_t len = FormatPid(::getpid(), text);
    for (const char* file : procs_files) {
      const int fd = ::open(file, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, text, len) != static_cast<ssize_t>(len)) ::_exit(125);
      ::close(fd);
    }
    if (::dup2(null_fd, 0) < 0 || ::dup2(stdout_fd, 1) < 0 || ::dup2(stderr_fd, 2) < 0) ::_exit(125);
    // Nothing else of the agent's reaches the job: any descriptor the agent opened without
    // O_CLOEXEC (a file of another job, a socket) closes at exec.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int fd : secret_fds) ::fcntl(fd, F_SETFD, 0);  // bubblewrap reads them
    ::setsid();
    if (::getuid() == 0 && ::setgroups(0, nullptr) != 0) ::_exit(125);
    if (::setresgid(spec.gid, spec.gid, spec.gid) != 0 || ::setresuid(spec.uid, spec.uid, spec.uid) != 0) ::_exit(125);
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // after the change of user, which clears it
    ::execve(argv[0], argv.data(), envp);
    ::_exit(127);
  }
  close_secrets();
  if (null_fd >= 0) ::close(null_fd);
  return std::unique_ptr<SandboxProcess>(new BwrapProcess(pid, *std::move(cgroup)));
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
