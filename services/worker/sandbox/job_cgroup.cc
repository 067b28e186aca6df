#include "services/worker/sandbox/job_cgroup.h"

#include <signal.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

constexpr const char* kV1Controllers[] = {"memory", "pids", "cpu", "cpuacct"};
constexpr int64_t kCpuPeriodUs = 100'000;

std::string ReadText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

int64_t ReadNumber(const fs::path& path, int64_t otherwise = 0) {
  int64_t n = 0;
  return absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadText(path)), &n) ? n : otherwise;
}

// "key value" lines (memory.events, cpu.stat, memory.oom_control): the value of `key`.
int64_t ReadKey(const fs::path& path, std::string_view key) {
  for (absl::string_view line : absl::StrSplit(ReadText(path), '\n')) {
    std::vector<absl::string_view> parts = absl::StrSplit(line, ' ', absl::SkipEmpty());
    int64_t n = 0;
    if (parts.size() == 2 && parts[0] == absl::string_view(key.data(), key.size()) && absl::SimpleAtoi(parts[1], &n)) return n;
  }
  return 0;
}

absl::Status WriteText(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  out << text;
  out.flush();
  if (!out) return absl::InternalError(absl::StrCat("cannot write '", text, "' to ", path.string(), ": ", std::strerror(errno)));
  return absl::OkStatus();
}

// The agent's own v2 cgroup ("0::/system.slice/tessera-worker.service" in /proc/self/cgroup).
fs::path OwnV2Cgroup() {
  for (absl::string_view line : absl::StrSplit(ReadText("/proc/self/cgroup"), '\n')) {
    if (absl::ConsumePrefix(&line, "0::")) return fs::path(std::string(line)).relative_path();
  }
  return {};
}

bool HasAll(const std::string& controllers, std::initializer_list<std::string_view> wanted) {
  std::vector<absl::string_view> have = absl::StrSplit(controllers, absl::ByAnyChar(" \n"), absl::SkipEmpty());
  return std::all_of(wanted.begin(), wanted.end(),
                     [&](std::string_view w) { return std::find(have.begin(), have.end(), absl::string_view(w.data(), w.size())) != have.end(); });
}

}  // namespace

absl::StatusOr<CgroupMode> JobCgroup::Detect(const fs::path& root) {
  std::error_code ec;
  if (fs::exists(root / "cgroup.controllers", ec) && HasAll(ReadText(root / "cgroup.controllers"), {"memory", "pids", "cpu"})) {
    return CgroupMode::kV2;
  }
  if (fs::is_directory(root / "memory", ec) && fs::is_directory(root / "pids", ec)) return CgroupMode::kV1;
  return absl::FailedPreconditionError(absl::StrCat("no cgroup hierarchy with the memory, pids and cpu controllers under ", root.string(),
                                                    " (a job's limits need one)"));
}

absl::StatusOr<std::unique_ptr<JobCgroup>> JobCgroup::Create(const std::string& name, const CgroupLimits& limits, const fs::path& root,
                                                             const std::string& parent,
                                                             const std::optional<std::vector<std::string>>& devices) {
  absl::StatusOr<CgroupMode> mode = Detect(root);
  if (!mode.ok()) return mode.status();
  std::error_code ec;
  std::vector<fs::path> dirs;
  if (*mode == CgroupMode::kV2) {
    // Under the agent's own group, which systemd delegated to it (Delegate=yes): a v2 group with
    // processes cannot hand controllers to children, so the agent first moves itself into a leaf
    // ("agent"), then enables the controllers in its group and in `parent` below it.
    const fs::path own = root / OwnV2Cgroup();
    if (!ReadText(own / "cgroup.procs").empty()) {
      fs::create_directories(own / "agent", ec);
      for (absl::string_view pid : absl::StrSplit(ReadText(own / "cgroup.procs"), '\n', absl::SkipEmpty())) {
        (void)WriteText(own / "agent" / "cgroup.procs", std::string(pid));
      }
    }
    if (absl::Status s = WriteText(own / "cgroup.subtree_control", "+memory +pids +cpu"); !s.ok()) return s;
    const fs::path base = parent.empty() ? own : own / parent;
    fs::create_directories(base, ec);
    if (base != own) {
      if (absl::Status s = WriteText(base / "cgroup.subtree_control", "+memory +pids +cpu"); !s.ok()) return s;
    }
    dirs.push_back(base / name);
  } else {
    std::set<fs::path> seen;  // cpu and cpuacct are often one mount under two names
    std::vector<const char*> controllers(std::begin(kV1Controllers), std::end(kV1Controllers));
    if (devices) {
      if (!fs::is_directory(root / "devices", ec)) {
        return absl::FailedPreconditionError(absl::StrCat("no devices controller under ", root.string(), " to confine the job's devices"));
      }
      controllers.push_back("devices");
    }
    for (const char* controller : controllers) {
      if (!fs::is_directory(root / controller, ec)) continue;
      const fs::path mount = fs::canonical(root / controller, ec);
      if (ec || !seen.insert(mount).second) continue;
      dirs.push_back(mount / parent / name);
    }
  }
  for (const fs::path& dir : dirs) {
    fs::create_directories(dir, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create the cgroup ", dir.string(), ": ", ec.message()));
  }
  std::unique_ptr<JobCgroup> group(new JobCgroup(*mode, dirs));
  for (const fs::path& dir : dirs) group->procs_files_.push_back((dir / "cgroup.procs").string());
  auto set = [&](std::string_view file, const std::string& value) -> absl::Status {
    for (const fs::path& dir : group->dirs_) {
      if (fs::exists(dir / file, ec)) return WriteText(dir / file, value);
    }
    return absl::OkStatus();  // that controller is not mounted here
  };
  absl::Status s;
  if (*mode == CgroupMode::kV2 && devices) {
    return absl::FailedPreconditionError("confining a job's devices needs the v1 devices controller (cgroup v2 has none; eBPF is not done yet)");
  }
  if (devices) {
    // Deny everything, then allow the few every program needs and the job's own nodes.
    s.Update(set("devices.deny", "a"));
    for (const char* rule : {"c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm", "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm"}) {
      s.Update(set("devices.allow", rule));
    }
    for (const std::string& node : *devices) {
      struct stat st {};
      if (::stat(node.c_str(), &st) != 0 || !(S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode))) continue;
      s.Update(set("devices.allow", absl::StrCat(S_ISCHR(st.st_mode) ? "c " : "b ", major(st.st_rdev), ":", minor(st.st_rdev), " rwm")));
    }
  }
  if (*mode == CgroupMode::kV2) {
    if (limits.memory_bytes > 0) {
      s.Update(set("memory.max", std::to_string(limits.memory_bytes)));
      s.Update(set("memory.swap.max", "0"));
    }
    if (limits.max_pids > 0) s.Update(set("pids.max", std::to_string(limits.max_pids)));
    if (limits.cpu_millicores > 0) {
      s.Update(set("cpu.max", absl::StrCat(limits.cpu_millicores * kCpuPeriodUs / 1000, " ", kCpuPeriodUs)));
    }
  } else {
    if (limits.memory_bytes > 0) {
      s.Update(set("memory.limit_in_bytes", std::to_string(limits.memory_bytes)));
      s.Update(set("memory.memsw.limit_in_bytes", std::to_string(limits.memory_bytes)));  // no more through swap
    }
    if (limits.max_pids > 0) s.Update(set("pids.max", std::to_string(limits.max_pids)));
    if (limits.cpu_millicores > 0) {
      s.Update(set("cpu.cfs_period_us", std::to_string(kCpuPeriodUs)));
      s.Update(set("cpu.cfs_quota_us", std::to_string(limits.cpu_millicores * kCpuPeriodUs / 1000)));
    }
  }
  if (!s.ok()) return s;
  return group;
}

JobCgroup::~JobCgroup() {
  KillAll();
  std::error_code ec;
  for (const fs::path& dir : dirs_) fs::remove(dir, ec);  // rmdir: a cgroup's files go with it
}

std::vector<pid_t> JobCgroup::Pids() const {
  std::set<pid_t> pids;
  for (const std::string& file : procs_files_) {
    for (absl::string_view line : absl::StrSplit(ReadText(file), '\n', absl::SkipEmpty())) {
      int pid = 0;
      if (absl::SimpleAtoi(line, &pid)) pids.insert(pid);
    }
  }
  return {pids.begin(), pids.end()};
}

CgroupUsage JobCgroup::Usage() const {
  CgroupUsage usage;
  std::error_code ec;
  for (const fs::path& dir : dirs_) {
    if (mode_ == CgroupMode::kV2) {
      usage.cpu_usage_us = ReadKey(dir / "cpu.stat", "usage_usec");
      peak_seen_ = std::max(peak_seen_, ReadNumber(dir / "memory.current"));
      usage.peak_memory_bytes = fs::exists(dir / "memory.peak", ec) ? ReadNumber(dir / "memory.peak") : peak_seen_;
      usage.oom_killed = ReadKey(dir / "memory.events", "oom_kill") > 0;
      continue;
    }
    if (fs::exists(dir / "cpuacct.usage", ec)) usage.cpu_usage_us = ReadNumber(dir / "cpuacct.usage") / 1000;
    if (fs::exists(dir / "memory.max_usage_in_bytes", ec)) {
      usage.peak_memory_bytes = ReadNumber(dir / "memory.max_usage_in_bytes");
      // Kernels before 4.13 have no oom_kill count: a hit limit (failcnt) with processes gone is
      // the best sign there, read by the caller with the exit signal.
      usage.oom_killed = ReadKey(dir / "memory.oom_control", "oom_kill") > 0;
    }
  }
  return usage;
}

void JobCgroup::Signal(int sig, const std::vector<pid_t>& except) {
  for (pid_t pid : Pids()) {
    if (std::find(except.begin(), except.end(), pid) == except.end()) ::kill(pid, sig);
  }
}

bool JobCgroup::KillAll(int timeout_ms) {
  std::error_code ec;
  if (mode_ == CgroupMode::kV2 && fs::exists(dirs_[0] / "cgroup.kill", ec)) (void)WriteText(dirs_[0] / "cgroup.kill", "1");
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    const std::vector<pid_t> pids = Pids();
    if (pids.empty()) return true;
    if (std::chrono::steady_clock::now() > deadline) return false;
    for (pid_t pid : pids) ::kill(pid, SIGKILL);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

}  // namespace tessera::worker
