// One job attempt's control group (issue 18): the limits the kernel enforces on everything the job
// starts (memory, CPU, process count), what it used (CPU time, peak memory, whether the kernel's OOM
// killer struck), and the way to signal or kill every process of it, however deep the tree.
//
// Both hierarchies: cgroup v2 where it is mounted with the controllers delegated (GPU hosts, under
// systemd's Delegate=yes), else the v1 controllers (memory, pids, cpu, cpuacct) each under its own
// mount, which is what our development machines have (their cgroup2 mount holds only hugetlb).
//
//   absl::StatusOr<std::unique_ptr<JobCgroup>> cg = JobCgroup::Create("job-12-1", {.memory_bytes = 1 << 30});
//   … a forked child writes its pid to each of (*cg)->procs_files() before it execs …
//   (*cg)->Signal(SIGTERM);  …  (*cg)->KillAll();   CgroupUsage u = (*cg)->Usage();
#pragma once

#include <sys/types.h>

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace tessera::worker {

struct CgroupLimits {
  int64_t memory_bytes = 0;    // 0: no limit; swap is held to the same limit where the kernel counts it
  int64_t max_pids = 0;        // 0: no limit
  int64_t cpu_millicores = 0;  // 0: no limit; 4000 is four cores' worth of time
};

struct CgroupUsage {
  int64_t cpu_usage_us = 0;
  int64_t peak_memory_bytes = 0;
  bool oom_killed = false;  // the kernel killed a process of the group for memory
};

enum class CgroupMode { kV2, kV1 };

class JobCgroup {
 public:
  // Creates `name` under `parent` in every controller (v1: under each controller's root; v2: under
  // the agent's own, delegated cgroup) and sets the limits. FAILED_PRECONDITION when no usable hierarchy is mounted at `root`.
  //
  // With `devices`, device access is confined to the standard character devices (null, zero, full,
  // random, urandom, tty, ptmx, pts) and those nodes ("/dev/nvidia0"): a node an OCI image carries
  // opens nothing else. That is the v1 devices controller; v2 has none (an eBPF program would be
  // needed), so Create is FAILED_PRECONDITION there when `devices` is given.
  static absl::StatusOr<std::unique_ptr<JobCgroup>> Create(const std::string& name, const CgroupLimits& limits,
                                                           const std::filesystem::path& root = "/sys/fs/cgroup",
                                                           const std::string& parent = "tessera",
                                                           const std::optional<std::vector<std::string>>& devices = std::nullopt);
  // Which hierarchy `root` offers, if any.
  static absl::StatusOr<CgroupMode> Detect(const std::filesystem::path& root = "/sys/fs/cgroup");
  ~JobCgroup();  // kills what is left and removes the group

  CgroupMode mode() const { return mode_; }
  // The cgroup.procs files a process joins the group by (its pid written to each), in order: what a
  // forked child writes before it execs, so that nothing it starts runs outside.
  const std::vector<std::string>& procs_files() const { return procs_files_; }
  std::vector<pid_t> Pids() const;
  CgroupUsage Usage() const;
  // Sends `sig` to every process in the group but those in `except`.
  void Signal(int sig, const std::vector<pid_t>& except = {});
  // SIGKILLs every process until none is left (v2: cgroup.kill where the kernel has it); a fork
  // racing the kill is caught by the next pass. Returns false if some survived `timeout_ms`.
  bool KillAll(int timeout_ms = 5'000);

 private:
  JobCgroup(CgroupMode mode, std::vector<std::filesystem::path> dirs) : mode_(mode), dirs_(std::move(dirs)) {}

  const CgroupMode mode_;
  // v2: one directory; v1: memory, pids, cpu, cpuacct (those mounted), deduplicated where co-mounted.
  std::vector<std::filesystem::path> dirs_;
  std::vector<std::string> procs_files_;
  mutable int64_t peak_seen_ = 0;  // v2 without memory.peak: the most memory.current ever read
};

}  // namespace tessera::worker
