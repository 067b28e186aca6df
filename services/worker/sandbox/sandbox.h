// A customer's program on a provider's machine (issue 18), behind one interface whatever isolates
// it: bubblewrap (BwrapSandbox, the default) or an OCI runtime. The program sees the host's system
// files read-only, its own /job (scratch space, with its mounts on it), a private /tmp, its secrets as files under /run/secrets, and
// nothing else of the machine: not the agent's state dir or keys, not other jobs, not the network
// unless the spec allows it. It runs as an unprivileged user with no capabilities, in a control
// group that bounds its memory, CPU and process count and through which every process it starts
// is stopped with it.
//
//   absl::StatusOr<std::unique_ptr<SandboxProcess>> p = sandbox.Start(spec, stdout_fd, stderr_fd);
//   (*p)->Wait(1s);  …  (*p)->Stop(grace);  SandboxExit e = (*p)->Exit();
#pragma once

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/worker/sandbox/job_cgroup.h"

namespace tessera::worker {

struct SandboxMount {
  std::filesystem::path host;     // a directory or file on the machine
  std::string inside;             // where the program sees it ("/job/code")
  bool writable = false;
};

struct SandboxSpec {
  std::string name;                           // unique per attempt on this machine ("job-12-1"): names its cgroup
  std::string image;                          // an OCI image (PodmanSandbox); empty: the host's system (BwrapSandbox)
  std::vector<std::string> command;           // argv; command[0] is looked up in PATH inside
  std::map<std::string, std::string> env;     // on top of PATH, HOME=/job, LANG, TMPDIR
  std::map<std::string, std::string> secrets; // name → value: /run/secrets/<name>, read-only, on a tmpfs
  std::vector<SandboxMount> mounts;           // under /job (code, inputs read-only; outputs, checkpoints writable)
  std::vector<std::string> devices;           // device nodes to pass ("/dev/nvidia0"), nothing else of /dev's hardware
  std::string working_dir = "/job";
  bool network = false;                       // share the machine's network (else only a loopback of its own)
  uid_t uid = 65534;                          // the unprivileged user it runs as (never 0)
  gid_t gid = 65534;
  CgroupLimits limits;
};

// How a sandboxed program ended.
struct SandboxExit {
  int exit_code = -1;        // its exit status, when it exited
  int signal = 0;            // the signal that ended it, when one did
  bool oom_killed = false;   // the kernel killed it for memory (its limit)
  bool stopped = false;      // Stop() ended it
  CgroupUsage usage;         // CPU time and peak memory of everything it ran
};

class SandboxProcess {
 public:
  virtual ~SandboxProcess() = default;  // kills whatever is left of it
  // Waits up to `timeout` for the program to end; true once it has (and every process it started
  // is gone).
  virtual bool Wait(std::chrono::milliseconds timeout) = 0;
  // SIGTERM to every process of it, then SIGKILL to whatever is left after `grace`. From any thread.
  virtual void Stop(std::chrono::milliseconds grace) = 0;
  // Once Wait returned true.
  virtual SandboxExit Exit() const = 0;
  // What everything it ran has used so far (CPU time, peak memory), read from its cgroup.
  virtual CgroupUsage Usage() const = 0;
};

// INVALID_ARGUMENT naming the field for a spec no sandbox runs: an empty command, the root user,
// a mount outside /job or onto /job itself, a secret whose name is not a plain file name or whose
// value is over 64 KiB, an image that is not an image reference.
absl::Status ValidateSandboxSpec(const SandboxSpec& spec);

class Sandbox {
 public:
  virtual ~Sandbox() = default;
  // The program's stdout and stderr go to the two descriptors (the caller's pipes or files).
  // INVALID_ARGUMENT for a spec it cannot honour (an empty command, uid 0, a mount outside /job).
  virtual absl::StatusOr<std::unique_ptr<SandboxProcess>> Start(const SandboxSpec& spec, int stdout_fd, int stderr_fd) = 0;
};

}  // namespace tessera::worker
