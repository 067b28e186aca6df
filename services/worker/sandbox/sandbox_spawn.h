// How every sandbox starts its first process (bubblewrap, podman): forked, moved into the job's
// cgroup before it execs (so nothing it starts ever runs outside), its stdio the job's, every other
// descriptor of the agent closed, in a session of its own, killed if the agent dies, optionally
// as another user and optionally in a private mount namespace with one mount detached (crun
// refuses to run where cgroup v1 controllers sit beside a cgroup2 mount). And how such a process
// is waited for, stopped and read back: CgroupProcess.
#pragma once

#include <sys/types.h>

#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/worker/sandbox/sandbox.h"

namespace tessera::worker {

struct SpawnRequest {
  std::vector<std::string> argv;                // argv[0] is an absolute path
  std::vector<std::string> env;                 // "KEY=value", the whole environment
  std::vector<std::string> procs_files;         // the cgroup it joins (JobCgroup::procs_files); empty: the agent's
  int stdout_fd = -1;                           // -1: /dev/null
  int stderr_fd = -1;
  std::vector<int> inherited_fds;               // kept open across exec (bubblewrap reads secrets from them)
  std::optional<std::pair<uid_t, gid_t>> user;  // run as this user (setgroups, setresgid, setresuid)
  std::string detach_mount;                     // unshare the mount namespace, then lazily unmount this path there
  std::string working_dir;                      // its working directory; empty: the agent's
};

// The child's pid; INTERNAL when fork fails. The child exits 125 when its setup fails, 127 when
// exec does. It is SIGKILLed when the calling *thread* ends (PR_SET_PDEATHSIG follows the thread
// that forked): call it from a thread that outlives the process, as a workload's own thread does.
absl::StatusOr<pid_t> Spawn(const SpawnRequest& request);

// A spawned program and its cgroup. Stop sends SIGTERM to every process of the group but the
// sandbox's own machinery (`machinery` names it: bubblewrap and its init, podman and conmon), so
// that the machinery stays to report the end, then SIGKILL to all after the grace. The exit status
// of the spawned process is the program's: its code, or 128+N for signal N (as both bubblewrap and
// podman report it). `cleanup` runs once the process is gone (a container record to remove).
class CgroupProcess final : public SandboxProcess {
 public:
  using Machinery = std::function<std::vector<pid_t>(pid_t spawned, const JobCgroup& cgroup)>;
  CgroupProcess(pid_t pid, std::unique_ptr<JobCgroup> cgroup, Machinery machinery, std::function<void()> cleanup = {})
      : pid_(pid), cgroup_(std::move(cgroup)), machinery_(std::move(machinery)), cleanup_(std::move(cleanup)) {}
  ~CgroupProcess() override;

  bool Wait(std::chrono::milliseconds timeout) override;
  void Stop(std::chrono::milliseconds grace) override;
  CgroupUsage Usage() const override { return cgroup_->Usage(); }
  SandboxExit Exit() const override;

 private:
  bool Reap(bool block);

  const pid_t pid_;
  std::unique_ptr<JobCgroup> cgroup_;
  const Machinery machinery_;
  std::function<void()> cleanup_;
  mutable std::mutex mu_;
  bool reaped_ = false;
  bool stopped_ = false;
  bool lost_ = false;
  int status_ = 0;
};

// The parent of `pid`, from /proc/<pid>/stat; 0 when it is gone.
pid_t ParentOf(pid_t pid);
// The command name of `pid` (/proc/<pid>/comm), "" when it is gone.
std::string CommandOf(pid_t pid);

}  // namespace tessera::worker
