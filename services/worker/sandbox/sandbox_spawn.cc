#include "services/worker/sandbox/sandbox_spawn.h"

#include <fcntl.h>
#include <grp.h>
#include <linux/close_range.h>
#include <sched.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace tessera::worker {
namespace {

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

}  // namespace

pid_t ParentOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/stat");
  std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t close = stat.rfind(')');  // "pid (comm) state ppid …": comm may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream rest(stat.substr(close + 1));
  std::string state;
  pid_t ppid = 0;
  rest >> state >> ppid;
  return ppid;
}

std::string CommandOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/comm");
  std::string comm;
  std::getline(in, comm);
  return comm;
}

absl::StatusOr<pid_t> Spawn(const SpawnRequest& request) {
  if (request.argv.empty() || request.argv[0].empty() || request.argv[0][0] != '/') {
    return absl::InvalidArgumentError("spawn: argv[0] must be an absolute path");
  }
  // Everything the child touches is made before the fork: after it, only async-signal-safe calls.
  std::vector<char*> argv;
  for (const std::string& arg : request.argv) argv.push_back(const_cast<char*>(arg.c_str()));
  argv.push_back(nullptr);
  std::vector<char*> envp;
  for (const std::string& e : request.env) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  std::vector<const char*> procs_files;
  for (const std::string& f : request.procs_files) procs_files.push_back(f.c_str());
  const char* detach = request.detach_mount.empty() ? nullptr : request.detach_mount.c_str();
  const char* cwd = request.working_dir.empty() ? nullptr : request.working_dir.c_str();
  const int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd < 0) return absl::InternalError(absl::StrCat("open /dev/null: ", std::strerror(errno)));
  const int out_fd = request.stdout_fd >= 0 ? request.stdout_fd : null_fd;
  const int err_fd = request.stderr_fd >= 0 ? request.stderr_fd : null_fd;
  struct rlimit files {};
  const int max_fd = ::getrlimit(RLIMIT_NOFILE, &files) == 0 && files.rlim_cur != RLIM_INFINITY
                         ? static_cast<int>(std::min<rlim_t>(files.rlim_cur, 1 << 20))
                         : 1 << 16;

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const int error = errno;
    ::close(null_fd);
    return absl::InternalError(absl::StrCat("fork: ", std::strerror(error)));
  }
  if (pid == 0) {
    char text[16];
    const size_t len = FormatPid(::getpid(), text);
    for (const char* file : procs_files) {
      const int fd = ::open(file, O_WRONLY | O_CLOEXEC);
      if (fd < 0 || ::write(fd, text, len) != static_cast<ssize_t>(len)) ::_exit(125);
      ::close(fd);
    }
    if (detach != nullptr) {
      if (::unshare(CLONE_NEWNS) != 0) ::_exit(125);
      if (::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0) ::_exit(125);
      if (::umount2(detach, MNT_DETACH) != 0 && errno != EINVAL && errno != ENOENT) ::_exit(125);
    }
    if (cwd != nullptr && ::chdir(cwd) != 0) ::_exit(125);
    if (::dup2(null_fd, 0) < 0 || ::dup2(out_fd, 1) < 0 || ::dup2(err_fd, 2) < 0) ::_exit(125);
    // Nothing else of the agent's reaches the job: any descriptor the agent opened without
    // O_CLOEXEC (a file of another job, a socket) closes at exec.
    if (::syscall(SYS_close_range, 3U, ~0U, CLOSE_RANGE_CLOEXEC) != 0) {
      for (int fd = 3; fd < max_fd; ++fd) ::fcntl(fd, F_SETFD, FD_CLOEXEC);
    }
    for (int fd : request.inherited_fds) ::fcntl(fd, F_SETFD, 0);
    ::setsid();
    if (request.user) {
      const auto [uid, gid] = *request.user;
      if (::getuid() == 0 && ::setgroups(0, nullptr) != 0) ::_exit(125);
      if (::setresgid(gid, gid, gid) != 0 || ::setresuid(uid, uid, uid) != 0) ::_exit(125);
    }
    ::prctl(PR_SET_PDEATHSIG, SIGKILL);  // after any change of user, which clears it
    if (::getppid() != parent) ::_exit(125);  // the agent died before the line above: nobody would kill this
    ::execve(argv[0], argv.data(), envp.data());
    ::_exit(127);
  }
  ::close(null_fd);
  return pid;
}

CgroupProcess::~CgroupProcess() {
  cgroup_->KillAll();
  Reap(true);
  if (cleanup_) cleanup_();
}

bool CgroupProcess::Wait(std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  for (;;) {
    if (Reap(false)) {
      // The sandbox took the program's processes down with it; anything that escaped it in the
      // cgroup goes now.
      cgroup_->KillAll();
      return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void CgroupProcess::Stop(std::chrono::milliseconds grace) {
  {
    std::lock_guard lock(mu_);
    if (reaped_) return;
    stopped_ = true;
  }
  // The program and what it started get SIGTERM; the sandbox's machinery does not, or it would
  // end at once and SIGKILL the program before its grace.
  const std::vector<pid_t> spared = machinery_ ? machinery_(pid_, *cgroup_) : std::vector<pid_t>{pid_};
  cgroup_->Signal(SIGTERM, spared);
  if (!Wait(grace)) {
    // The program first, so that the machinery sees it end and clears up after it (podman removes
    // its container); then whatever is left.
    cgroup_->Signal(SIGKILL, spared);
    if (!Wait(std::chrono::seconds(3))) cgroup_->KillAll();
    Wait(std::chrono::seconds(5));
  }
}

SandboxExit CgroupProcess::Exit() const {
  std::lock_guard lock(mu_);
  SandboxExit exit;
  exit.usage = cgroup_->Usage();
  exit.stopped = stopped_;
  exit.oom_killed = exit.usage.oom_killed;
  if (lost_) {
    exit.exit_code = -1;
  } else if (WIFEXITED(status_)) {
    exit.exit_code = WEXITSTATUS(status_);
    // The sandbox exits 128+N when the program died of signal N.
    if (exit.exit_code > 128 && exit.exit_code < 128 + NSIG) {
      exit.signal = exit.exit_code - 128;
      exit.exit_code = -1;
    }
  } else if (WIFSIGNALED(status_)) {
    exit.signal = WTERMSIG(status_);
  }
  return exit;
}

bool CgroupProcess::Reap(bool block) {
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

}  // namespace tessera::worker
