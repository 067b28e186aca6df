#include "services/worker/sandbox/podman_sandbox.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <thread>

#include <google/protobuf/struct.pb.h>
#include <google/protobuf/util/json_util.h>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "services/common/sha256.h"
#include "services/worker/sandbox/sandbox_spawn.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

constexpr long kCgroup2Magic = 0x63677270;  // CGROUP2_SUPER_MAGIC
constexpr long kTmpfsMagic = 0x01021994;    // TMPFS_MAGIC

std::string ContainerName(const SandboxSpec& spec) { return "tessera-" + spec.name; }

// podman's environment: enough for it to find crun and conmon, nothing of the agent's.
const std::vector<std::string>& PodmanEnv() {
  static const std::vector<std::string> env = {"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root"};
  return env;
}

// The command as a JSON array: podman's --entrypoint takes one, and with it the image's own
// ENTRYPOINT is replaced, not prefixed (a job's command is the whole argv, as Kubernetes' is).
std::string JsonArray(const std::vector<std::string>& argv) {
  google::protobuf::ListValue list;
  for (const std::string& arg : argv) list.add_values()->set_string_value(arg);
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(list, &json);
  return json;
}

// "/dev/nvidia3" → 3; -1 for anything else.
int GpuIndexOf(const std::string& device) {
  constexpr std::string_view kPrefix = "/dev/nvidia";
  if (!device.starts_with(kPrefix) || device.size() == kPrefix.size()) return -1;
  int index = 0;
  for (char c : device.substr(kPrefix.size())) {
    if (!std::isdigit(static_cast<unsigned char>(c))) return -1;
    index = index * 10 + (c - '0');
  }
  return index;
}

// A directory removed with this object: the secrets the container mounts (on a tmpfs), podman's
// working directory.
struct OwnedDir {
  fs::path path;
  ~OwnedDir() {
    std::error_code ec;
    if (!path.empty()) fs::remove_all(path, ec);
  }
};

fs::path SecretsParent(const fs::path& root) { return root / "tessera-secrets"; }

// Which agent a container or a secrets directory belongs to: its state dir, hashed. An agent
// clears only what it left itself (another agent, or a test, may share the machine).
std::string AgentId(const PodmanOptions& options) {
  std::error_code ec;
  const fs::path state = fs::weakly_canonical(options.state_dir, ec);
  return DigestOf(state.string()).substr(kDigestPrefix.size(), 12);
}

absl::Status WriteSecrets(const SandboxSpec& spec, const fs::path& root, const std::string& agent, OwnedDir& dir) {
  struct statfs st {};
  if (::statfs(root.c_str(), &st) != 0 || st.f_type != kTmpfsMagic) {
    return absl::FailedPreconditionError(absl::StrCat("secrets: ", root.string(), " is not a tmpfs; secrets are never written to a disk"));
  }
  // Under a directory only root may enter: no other user of the machine (the job user's uid is
  // shared with other daemons) reaches a job's secrets, and none can take a job's name first.
  const fs::path parent = SecretsParent(root);
  if (::mkdir(parent.c_str(), 0700) != 0 && errno != EEXIST) {
    return absl::InternalError(absl::StrCat("mkdir ", parent.string(), ": ", std::strerror(errno)));
  }
  struct stat p {};
  if (::lstat(parent.c_str(), &p) != 0 || !S_ISDIR(p.st_mode) || p.st_uid != 0 || (p.st_mode & 0077) != 0) {
    return absl::FailedPreconditionError(absl::StrCat(parent.string(), " is not a directory only root may enter; remove it"));
  }
  const fs::path mine = parent / agent;
  if (::mkdir(mine.c_str(), 0700) != 0 && errno != EEXIST) return absl::InternalError(absl::StrCat("mkdir ", mine.string(), ": ", std::strerror(errno)));
  dir.path = mine / spec.name;
  std::error_code ec;
  fs::remove_all(dir.path, ec);
  if (::mkdir(dir.path.c_str(), 0700) != 0) return absl::InternalError(absl::StrCat("mkdir ", dir.path.string(), ": ", std::strerror(errno)));
  for (const auto& [name, value] : spec.secrets) {
    const fs::path file = dir.path / name;  // a plain name: ValidateSandboxSpec
    const int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0400);
    if (fd < 0) return absl::InternalError(absl::StrCat("create ", file.string(), ": ", std::strerror(errno)));
    const bool written = ::write(fd, value.data(), value.size()) == static_cast<ssize_t>(value.size());
    const bool owned = ::fchown(fd, spec.uid, spec.gid) == 0;
    ::close(fd);
    if (!written || !owned) return absl::InternalError(absl::StrCat("cannot write the secret file ", file.string()));
  }
  if (::chown(dir.path.c_str(), spec.uid, spec.gid) != 0 || ::chmod(dir.path.c_str(), 0500) != 0) {
    return absl::InternalError(absl::StrCat("cannot hand ", dir.path.string(), " to the job user"));
  }
  return absl::OkStatus();
}

constexpr double kCloneNewUser = 0x10000000;

google::protobuf::Value Number(double n) {
  google::protobuf::Value v;
  v.set_number_value(n);
  return v;
}

// A rule for `names` whose first argument, masked with CLONE_NEWUSER, equals `datum`.
google::protobuf::Value NewUserRule(double datum, const std::string& action) {
  google::protobuf::Value rule;
  auto& fields = *rule.mutable_struct_value()->mutable_fields();
  auto* names = fields["names"].mutable_list_value();
  names->add_values()->set_string_value("clone");
  names->add_values()->set_string_value("unshare");
  fields["action"].set_string_value(action);
  if (action == "SCMP_ACT_ERRNO") fields["errnoRet"] = Number(1);  // EPERM
  auto& arg = *fields["args"].mutable_list_value()->add_values()->mutable_struct_value()->mutable_fields();
  arg["index"] = Number(0);
  arg["value"] = Number(kCloneNewUser);
  arg["valueTwo"] = Number(datum);
  arg["op"].set_string_value("SCMP_CMP_MASKED_EQ");
  return rule;
}

}  // namespace

absl::Status WriteJobSeccompProfile(const fs::path& base, const fs::path& out) {
  std::ifstream in(base);
  if (!in) return absl::FailedPreconditionError(absl::StrCat(base.string(), " is missing (Debian's golang-github-containers-common)"));
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  google::protobuf::Struct profile;
  if (!google::protobuf::util::JsonStringToMessage(text, &profile).ok() || !profile.fields().contains("syscalls")) {
    return absl::FailedPreconditionError(absl::StrCat(base.string(), " is not a seccomp profile"));
  }
  auto* rules = (*profile.mutable_fields())["syscalls"].mutable_list_value();
  // An unconditional allow would win over any condition: clone, clone3 and unshare leave the
  // allow lists, and come back under the conditions.
  for (auto& rule : *rules->mutable_values()) {
    auto& fields = *rule.mutable_struct_value()->mutable_fields();
    if (!fields.contains("names")) continue;
    auto* names = fields["names"].mutable_list_value()->mutable_values();
    for (int i = names->size() - 1; i >= 0; --i) {
      const std::string& name = names->Get(i).string_value();
      if (name == "clone" || name == "clone3" || name == "unshare") names->DeleteSubrange(i, 1);
    }
  }
  *rules->add_values() = NewUserRule(0, "SCMP_ACT_ALLOW");
  *rules->add_values() = NewUserRule(kCloneNewUser, "SCMP_ACT_ERRNO");
  google::protobuf::Value clone3;
  auto& fields = *clone3.mutable_struct_value()->mutable_fields();
  fields["names"].mutable_list_value()->add_values()->set_string_value("clone3");
  fields["action"].set_string_value("SCMP_ACT_ERRNO");
  fields["errnoRet"] = Number(38);  // ENOSYS
  *rules->add_values() = clone3;
  std::string json;
  if (!google::protobuf::util::MessageToJsonString(profile, &json).ok()) return absl::InternalError("cannot write the seccomp profile");
  const fs::path temp = out.string() + ".tmp";
  {
    std::ofstream file(temp, std::ios::trunc);
    file << json;
    if (!file) return absl::InternalError(absl::StrCat("cannot write ", temp.string()));
  }
  std::error_code ec;
  fs::rename(temp, out, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot write ", out.string(), ": ", ec.message()));
  return absl::OkStatus();
}

PodmanHost InspectPodmanHost(const PodmanOptions& options) {
  PodmanHost host;
  absl::StatusOr<CgroupMode> mode = JobCgroup::Detect(options.cgroup_root);
  struct statfs st {};
  host.hybrid_cgroups = mode.ok() && *mode == CgroupMode::kV1 && ::statfs((options.cgroup_root / "unified").c_str(), &st) == 0 &&
                        st.f_type == kCgroup2Magic;
  for (const fs::path& dir : options.cdi_dirs) {
    std::error_code ec;
    for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
      std::ifstream in(it->path());
      const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (text.find("nvidia.com/gpu") != std::string::npos) host.cdi_gpus = true;
    }
  }
  struct rlimit limit {};
  if (::getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) host.max_open_files = limit.rlim_cur;
  // podman lowers its own process limit to 32768 before crun starts the container, and crun
  // cannot raise it back (the cgroup's pids limit is the job's real bound).
  host.max_processes = 32'768;
  if (::getrlimit(RLIMIT_NPROC, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY) host.max_processes = std::min<uint64_t>(limit.rlim_cur, 32'768);
  return host;
}

std::vector<std::string> PodmanCommandLine(const PodmanOptions& options, const PodmanHost& host, const SandboxSpec& spec,
                                           const fs::path& secrets_dir) {
  std::vector<std::string> a = {options.podman.string(), "--cgroup-manager=cgroupfs", "--log-level=error", "run", "--rm", "--replace",
                                "--name", ContainerName(spec), "--pull=never", "--cgroups=disabled", "--cgroupns=private",
                                "--log-driver=passthrough", "--label", "tessera.agent=" + AgentId(options),
                                "--init", "--user", absl::StrCat(spec.uid, ":", spec.gid), "--cap-drop=all",
                                "--security-opt=no-new-privileges", "--security-opt=seccomp=" + (options.state_dir / "job-seccomp.json").string(), "--read-only", "--hostname", "tessera-job",
                                spec.network ? "--network=host" : "--network=none",
                                absl::StrCat("--ulimit=nofile=", host.max_open_files, ":", host.max_open_files),
                                absl::StrCat("--ulimit=nproc=", host.max_processes, ":", host.max_processes),
                                "--tmpfs", "/job:rw,exec,mode=1777"};
  for (const SandboxMount& m : spec.mounts) {
    a.push_back("--mount");
    a.push_back(absl::StrCat("type=bind,source=", m.host.string(), ",destination=", m.inside, m.writable ? "" : ",ro=true"));
  }
  if (!secrets_dir.empty()) {
    a.push_back("--mount");
    a.push_back(absl::StrCat("type=bind,source=", secrets_dir.string(), ",destination=/run/secrets,ro=true"));
  }
  int gpus = 0;
  for (const std::string& device : spec.devices) {
    const int index = GpuIndexOf(device);
    if (host.cdi_gpus && index >= 0) {
      a.push_back(absl::StrCat("--device=nvidia.com/gpu=", index));
      ++gpus;
    } else if (!host.cdi_gpus || !device.starts_with("/dev/nvidia")) {
      a.push_back("--device=" + device);  // without CDI, the nodes themselves (the image brings its own driver libraries)
    }
  }
  a.insert(a.end(), {"--workdir", spec.working_dir, "--env", "HOME=/job", "--env", "TMPDIR=/tmp", "--env", "LANG=C.UTF-8"});
  for (const auto& [key, value] : spec.env) {
    // CDI shows a job's GPUs inside as 0..n-1, whatever their indexes on the host.
    if (key == "CUDA_VISIBLE_DEVICES" && gpus > 0) continue;
    a.insert(a.end(), {"--env", absl::StrCat(key, "=", value)});
  }
  if (gpus > 0) {
    std::vector<int> visible;
    for (int i = 0; i < gpus; ++i) visible.push_back(i);
    a.insert(a.end(), {"--env", "CUDA_VISIBLE_DEVICES=" + absl::StrJoin(visible, ",")});
  }
  a.insert(a.end(), {"--entrypoint", JsonArray(spec.command), spec.image});
  return a;
}

absl::StatusOr<int> PodmanSandbox::RunPodman(const std::vector<std::string>& args, std::string* said, std::chrono::seconds timeout) {
  int out[2];
  if (::pipe2(out, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
  std::error_code ec;
  fs::create_directories(WorkRoot(), ec);
  SpawnRequest request = PodmanSpawn(WorkRoot());
  request.argv.insert(request.argv.end(), args.begin(), args.end());
  request.stdout_fd = out[1];
  request.stderr_fd = out[1];
  absl::StatusOr<pid_t> pid = Spawn(request);
  ::close(out[1]);
  if (!pid.ok()) {
    ::close(out[0]);
    return pid.status();
  }
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::string text;
  for (;;) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) break;
    pollfd p{.fd = out[0], .events = POLLIN, .revents = 0};
    if (::poll(&p, 1, static_cast<int>(left)) <= 0) continue;
    char buf[4096];
    const ssize_t n = ::read(out[0], buf, sizeof buf);
    if (n <= 0) break;
    if (text.size() < 16'384) text.append(buf, static_cast<size_t>(n));
  }
  ::close(out[0]);
  // podman may close its output and still not end: wait for it only until the deadline.
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(*pid, &status, WNOHANG);
    if (r == *pid || (r < 0 && errno != EINTR)) break;
    if (std::chrono::steady_clock::now() >= deadline) {
      ::kill(*pid, SIGKILL);
      while (::waitpid(*pid, &status, 0) < 0 && errno == EINTR) {
      }
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  if (said != nullptr) *said = std::string(absl::StripAsciiWhitespace(text));
  if (!WIFEXITED(status)) return absl::DeadlineExceededError(absl::StrCat("podman ", args.empty() ? "" : args[0], " did not finish"));
  return WEXITSTATUS(status);
}

SpawnRequest PodmanSandbox::PodmanSpawn(const fs::path& working_dir) const {
  SpawnRequest request;
  request.argv = {options_.podman.string()};
  request.env = PodmanEnv();
  if (host_.hybrid_cgroups) request.detach_mount = (options_.cgroup_root / "unified").string();
  request.working_dir = working_dir.string();
  return request;
}

fs::path PodmanSandbox::WorkRoot() const { return options_.state_dir / "podman"; }

bool PodmanSandbox::HasImage(const std::string& image) {
  absl::StatusOr<int> code = RunPodman({"image", "exists", image}, nullptr, std::chrono::seconds(30));
  return code.ok() && *code == 0;
}

absl::Status PodmanSandbox::Probe() {
  if (::geteuid() != 0) return absl::FailedPreconditionError("podman jobs need the agent to run as root (it makes each job's cgroup)");
  std::error_code ec;
  if (!fs::exists(options_.podman, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(options_.podman.string(), " is missing (Debian's podman and crun packages)"));
  }
  // The device nodes an image may carry are confined by the v1 devices controller (JobCgroup).
  absl::StatusOr<CgroupMode> mode = JobCgroup::Detect(options_.cgroup_root);
  if (!mode.ok()) return mode.status();
  if (*mode == CgroupMode::kV2) {
    return absl::FailedPreconditionError(
        "image jobs need the v1 devices controller to confine the device nodes an image may carry (on cgroup v2 an eBPF device "
        "filter is needed, not done yet)");
  }
  if (options_.state_dir.empty()) return absl::FailedPreconditionError("podman jobs need a state dir for their seccomp profile");
  fs::create_directories(options_.state_dir, ec);
  if (absl::Status s = WriteJobSeccompProfile(options_.base_seccomp, JobSeccomp()); !s.ok()) {
    return absl::FailedPreconditionError(absl::StrCat("the jobs' seccomp profile: ", s.message()));
  }
  std::string said;
  // What an agent that died left behind (conmon outlives it): its containers, their secrets.
  if (absl::StatusOr<int> listed = RunPodman({"ps", "--all", "--quiet", "--filter", "label=tessera.agent=" + AgentId(options_)}, &said,
                                             std::chrono::seconds(60));
      listed.ok() && *listed == 0) {
    for (absl::string_view id : absl::StrSplit(said, '\n', absl::SkipWhitespace())) {
      spdlog::warn("podman: removing container {} left by an earlier agent", std::string(id));
      (void)RunPodman({"rm", "--force", "--time=0", std::string(id)}, nullptr, std::chrono::seconds(60));
    }
  }
  for (fs::directory_iterator it(SecretsParent(options_.secrets_root) / AgentId(options_), ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code removed;
    fs::remove_all(it->path(), removed);
  }
  absl::StatusOr<int> code = RunPodman({"info", "--format", "{{.Host.OCIRuntime.Name}} {{.Host.CgroupsVersion}}"}, &said, std::chrono::seconds(60));
  if (!code.ok()) return absl::FailedPreconditionError(absl::StrCat("podman cannot run here: ", code.status().message()));
  if (*code != 0) return absl::FailedPreconditionError(absl::StrCat("podman cannot run here (exit ", *code, "): ", said));
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<SandboxProcess>> PodmanSandbox::Start(const SandboxSpec& spec, int stdout_fd, int stderr_fd) {
  if (absl::Status s = ValidateSandboxSpec(spec); !s.ok()) return s;
  if (spec.image.empty()) return absl::InvalidArgumentError("image: required: podman runs an image");
  std::error_code ec;
  if (options_.state_dir.empty() || !fs::exists(JobSeccomp(), ec)) {
    return absl::FailedPreconditionError("the jobs' seccomp profile is not written (Probe makes it)");
  }
  for (const SandboxMount& m : spec.mounts) {
    if (m.host.string().find(',') != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat("mounts: the host path '", m.host.string(), "' holds a comma, which podman cannot mount"));
    }
  }
  // Nothing is pulled (no registry is reachable): an image this machine lacks is said so at once.
  if (!HasImage(spec.image)) {
    return absl::FailedPreconditionError(
        absl::StrCat("image '", spec.image, "' is not on this worker (workers reach no registry: its provider imports images with `podman load`)"));
  }
  // A directory of its own for podman to run in (conmon writes there), removed with the job.
  auto workdir = std::make_shared<OwnedDir>();
  workdir->path = WorkRoot() / spec.name;
  fs::remove_all(workdir->path, ec);
  fs::create_directories(workdir->path, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", workdir->path.string(), ": ", ec.message()));
  auto secrets = std::make_shared<OwnedDir>();
  if (!spec.secrets.empty()) {
    if (absl::Status s = WriteSecrets(spec, options_.secrets_root, AgentId(options_), *secrets); !s.ok()) return s;
  }
  // An image's own files may hold device nodes (rootful podman unpacks them, and its overlay root
  // is not nodev): the job's cgroup lets it open none but the standard ones and its GPUs.
  absl::StatusOr<std::unique_ptr<JobCgroup>> cgroup =
      JobCgroup::Create(spec.name, spec.limits, options_.cgroup_root, options_.cgroup_parent, spec.devices);
  if (!cgroup.ok()) return cgroup.status();
  SpawnRequest request = PodmanSpawn(workdir->path);
  request.argv = PodmanCommandLine(options_, host_, spec, secrets->path);
  request.procs_files = (*cgroup)->procs_files();
  request.stdout_fd = stdout_fd;
  request.stderr_fd = stderr_fd;
  absl::StatusOr<pid_t> pid = Spawn(request);
  if (!pid.ok()) return pid.status();
  // podman (which reports the end) and conmon (which holds the container) are spared the SIGTERM;
  // catatonit, PID 1 inside, passes it on to the program.
  auto machinery = [](pid_t podman, const JobCgroup& cgroup) {
    std::vector<pid_t> pids = {podman};
    for (pid_t p : cgroup.Pids()) {
      const std::string comm = CommandOf(p);
      if (comm == "podman" || comm == "conmon") pids.push_back(p);
    }
    return pids;
  };
  // A container killed with its podman leaves its record behind; the next run of the same name
  // would replace it, but a worker should not keep dead containers around.
  const std::string name = ContainerName(spec);
  auto cleanup = [this, name, secrets, workdir] {
    std::string said;
    absl::StatusOr<int> code;
    // A container whose conmon was killed is still "running" to podman: the first rm finds it
    // gone and marks it exited, the second removes it.
    for (int tries = 0; tries < 2; ++tries) {
      code = RunPodman({"rm", "--force", "--ignore", "--time=0", name}, &said, std::chrono::seconds(30));
      if (code.ok() && *code == 0) return;
    }
    spdlog::warn("podman rm {}: {}", name, code.ok() ? said : code.status().ToString());
  };
  return std::unique_ptr<SandboxProcess>(new CgroupProcess(*pid, *std::move(cgroup), machinery, cleanup));
}

}  // namespace tessera::worker
