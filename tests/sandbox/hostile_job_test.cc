// A customer's program in each sandbox (issue 18), on this machine's real kernel: bubblewrap (the
// host's own system) and podman (an OCI image made by scripts/make-test-image.sh from this
// machine's files). What a program may do, and each thing a hostile job tries on a provider's
// machine, with the check that it failed, for both. Needs root (the agent's cgroups and user
// switch), bubblewrap, podman and crun (scripts/install-deps.sh).
#include <arpa/inet.h>
#include <fcntl.h>
#include <signal.h>
#include <catch2/catch.hpp>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/worker/sandbox/bwrap_sandbox.h"
#include "services/worker/sandbox/podman_sandbox.h"
#include "tests/support/files.h"

using namespace tessera;
using namespace tessera::worker;
using testing::ReadAll;
using testing::TempDir;
using testing::WriteAll;
namespace fs = std::filesystem;

namespace {

constexpr uid_t kJobUser = 65534;  // nobody

// Whether this machine can run sandboxes (BwrapSandbox::Probe). Where it cannot (not root, no
// bubblewrap, or user namespaces refused, as in the chroot of ../shared/tools/fresh-debian), the
// tests say SKIPPED and why, as the GPU tests do without a GPU; with TESSERA_REQUIRE_SANDBOX=1
// (worker hosts, and this development machine) they fail instead.
bool Required() {
  const char* required = std::getenv("TESSERA_REQUIRE_SANDBOX");
  return required != nullptr && std::string(required) != "0";
}

bool SandboxHost() {
  static const absl::Status probe = BwrapSandbox().Probe(kJobUser, kJobUser);
  if (probe.ok()) return true;
  if (Required()) FAIL("TESSERA_REQUIRE_SANDBOX is set, but " << probe.message());
  WARN("SKIPPED (" << probe.message() << "); on a worker host run `TESSERA_REQUIRE_SANDBOX=1 ctest -L sandbox`");
  return false;
}

// The image podman jobs run here, made from this machine's own files (no registry is reachable).
constexpr const char* kTestImage = "localhost/tessera-tools:1";

PodmanOptions TestPodmanOptions() {
  return {.state_dir = fs::temp_directory_path() / "tessera-test-podman"};
}

// Whether podman runs here (PodmanSandbox::Probe) and the test image could be made. Skipped, or
// failed under TESSERA_REQUIRE_SANDBOX, as the bubblewrap tests are.
bool PodmanRuns() {
  // Where no sandbox can be made (a chroot) podman is not even asked: it would mount its storage
  // there and leave the mount behind.
  if (!SandboxHost()) return false;
  static const absl::Status probe = [] {
    absl::Status s = PodmanSandbox(TestPodmanOptions()).Probe();
    if (!s.ok()) return s;
    const std::string make = std::string(TESSERA_SOURCE_DIR) + "/scripts/make-test-image.sh " + kTestImage + " >/dev/null";
    if (std::system(make.c_str()) != 0) return absl::FailedPreconditionError("scripts/make-test-image.sh failed");
    return absl::OkStatus();
  }();
  if (probe.ok()) return true;
  if (Required()) FAIL("TESSERA_REQUIRE_SANDBOX is set, but " << probe.message());
  WARN("SKIPPED podman (" << probe.message() << ")");
  return false;
}

// Each test runs once per sandbox.
bool Host(const std::string& runtime) { return runtime == "podman" ? PodmanRuns() : SandboxHost(); }

std::unique_ptr<Sandbox> SandboxFor(const SandboxSpec& spec) {
  if (spec.image.empty()) return std::make_unique<BwrapSandbox>();
  return std::make_unique<PodmanSandbox>(TestPodmanOptions());
}

// One job's directory on the worker: code and inputs read-only, outputs writable by the job user.
struct JobDir {
  TempDir dir;
  JobDir() {
    for (const char* sub : {"code", "inputs", "outputs"}) fs::create_directories(dir.path / sub);
    WriteAll(dir.path / "code" / "train.py", "print('training')\n");
    WriteAll(dir.path / "inputs" / "data.csv", "1,2,3\n");
    REQUIRE(::chown((dir.path / "outputs").c_str(), kJobUser, kJobUser) == 0);
    fs::permissions(dir.path, fs::perms(0755));
  }
  std::vector<SandboxMount> Mounts() const {
    return {{.host = dir.path / "code", .inside = "/job/code", .writable = false},
            {.host = dir.path / "inputs", .inside = "/job/inputs", .writable = false},
            {.host = dir.path / "outputs", .inside = "/job/outputs", .writable = true}};
  }
};

struct Ran {
  SandboxExit exit;
  std::string out, err;
  double seconds = 0;
};

SandboxSpec Shell(const std::string& runtime, const std::string& name, const JobDir& job, const std::string& script) {
  SandboxSpec spec;
  spec.name = name;
  if (runtime == "podman") spec.image = kTestImage;
  spec.command = {"/bin/sh", "-c", script};
  spec.mounts = job.Mounts();
  spec.uid = kJobUser;
  spec.gid = kJobUser;
  spec.limits = {.memory_bytes = 256 << 20, .max_pids = 64, .cpu_millicores = 1000};
  return spec;
}

// Runs `spec` to its end (or stops it after `stop_after`, with `grace`).
Ran Run(const SandboxSpec& spec, std::chrono::milliseconds stop_after = std::chrono::seconds(30),
        std::chrono::milliseconds grace = std::chrono::milliseconds(500)) {
  TempDir logs;
  const std::string out_path = logs.path / "out", err_path = logs.path / "err";
  const int out = ::open(out_path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  const int err = ::open(err_path.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  const std::unique_ptr<Sandbox> sandbox = SandboxFor(spec);
  const auto start = std::chrono::steady_clock::now();
  absl::StatusOr<std::unique_ptr<SandboxProcess>> p = sandbox->Start(spec, out, err);
  ::close(out);
  ::close(err);
  INFO(p.status().ToString());
  REQUIRE(p.ok());
  if (!(*p)->Wait(stop_after)) (*p)->Stop(grace);
  REQUIRE((*p)->Wait(std::chrono::seconds(10)));
  Ran ran{.exit = (*p)->Exit(), .out = ReadAll(out_path), .err = ReadAll(err_path),
          .seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()};
  return ran;
}

// A TCP listener on the host's loopback; its port.
struct Listener {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int port = 0;
  Listener() {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd, 8) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
    port = ntohs(a.sin_port);
  }
  ~Listener() { ::close(fd); }
};

}  // namespace

TEST_CASE("a sandboxed program runs as the job user with its mounts, environment, secrets and exit code", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  JobDir job;
  SandboxSpec spec = Shell(runtime, "sandbox-basic", job,
                           "id -u; pwd; cat /job/code/train.py /job/inputs/data.csv; echo $BATCH; cat /run/secrets/hf_token; echo;"
                           " env | grep -c s3cr3t; echo done > /job/outputs/model.txt; echo to-stderr >&2; exit 3");
  spec.env = {{"BATCH", "64"}};
  spec.secrets = {{"hf_token", "s3cr3t-value"}};
  const Ran ran = Run(spec);
  INFO(ran.out << ran.err);
  CHECK(ran.exit.exit_code == 3);
  CHECK(ran.exit.signal == 0);
  CHECK(ran.out == "65534\n/job\nprint('training')\n1,2,3\n64\ns3cr3t-value\n0\n");
  CHECK(ran.err == "to-stderr\n");
  CHECK(ReadAll(job.dir.path / "outputs" / "model.txt") == "done\n");
  CHECK(ran.seconds < 5);
}

TEST_CASE("a hostile job cannot read the machine's secrets, the agent's state or another job's files", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  TempDir state;  // the agent's state dir: its key lives here
  WriteAll(state.path / "worker.ed25519", "private key");
  JobDir other;   // another job on the same worker
  WriteAll(other.dir.path / "outputs" / "theirs.bin", "another customer's model");
  JobDir job;
  const Ran ran = Run(Shell(runtime, "sandbox-read", job,
                            "cat /etc/shadow && echo READ-SHADOW; cat " + (state.path / "worker.ed25519").string() +
                                " && echo READ-KEY; cat " + (other.dir.path / "outputs" / "theirs.bin").string() +
                                " && echo READ-OTHER; ls /root /home /var/lib 2>/dev/null | head -3; echo end"));
  INFO(ran.out << ran.err);
  CHECK(ran.out.find("READ-") == std::string::npos);
  CHECK(ran.out.find("private key") == std::string::npos);
  CHECK(ran.out.find("another customer") == std::string::npos);
  CHECK_THAT(ran.out, Catch::EndsWith("end\n"));
}

TEST_CASE("a hostile job cannot write outside /job/outputs, nor to /proc/sys, nor regain capabilities", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  JobDir job;
  const std::string core_pattern = ReadAll("/proc/sys/kernel/core_pattern");
  const Ran ran = Run(Shell(runtime, "sandbox-write", job,
                            "for f in /usr/evil /etc/evil /evil /proc/evil /job/code/evil /job/inputs/evil /job/code/train.py; do"
                            "  (echo x > $f) 2>/dev/null && echo WROTE $f; done;"
                            " (echo '|/tmp/x' > /proc/sys/kernel/core_pattern) 2>/dev/null && echo WROTE core_pattern;"
                            " unshare -r true 2>/dev/null && echo NESTED-USERNS;"
                            " unshare -U true 2>/dev/null && echo NESTED-USERNS2;"
                            " grep CapEff /proc/self/status; echo scratch > /job/scratch && cat /job/scratch; echo tmp > /tmp/mine && cat /tmp/mine"));
  INFO(ran.out << ran.err);
  CHECK(ran.out.find("WROTE") == std::string::npos);
  CHECK(ran.out.find("NESTED") == std::string::npos);
  CHECK_THAT(ran.out, Catch::Contains("CapEff:\t0000000000000000"));
  CHECK_THAT(ran.out, Catch::EndsWith("scratch\ntmp\n"));  // its own /job and /tmp are writable
  CHECK(ReadAll("/proc/sys/kernel/core_pattern") == core_pattern);
  CHECK(ReadAll(job.dir.path / "code" / "train.py") == "print('training')\n");
  CHECK_FALSE(fs::exists("/evil"));
  CHECK_FALSE(fs::exists("/tmp/mine"));  // its /tmp was its own
}

TEST_CASE("without network a job cannot reach the machine's ports; with it, it can", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  Listener server;  // the Tessera server's port, say
  JobDir job;
  const std::string connect = "python3 -c \"import socket; socket.create_connection(('127.0.0.1', " + std::to_string(server.port) +
                              "), timeout=2); print('CONNECTED')\"";
  CHECK(Run(Shell(runtime, "sandbox-nonet", job, connect + " 2>/dev/null; echo end")).out == "end\n");
  SandboxSpec allowed = Shell(runtime, "sandbox-net", job, connect);
  allowed.network = true;
  CHECK(Run(allowed).out == "CONNECTED\n");
}

TEST_CASE("a job over its memory limit is killed by the kernel and reported as out of memory", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  JobDir job;
  SandboxSpec spec = Shell(runtime, "sandbox-oom", job, "python3 -c \"b = bytearray(512 << 20); print('ALLOCATED')\"");
  // podman and conmon, a few tens of MiB, share the limit.
  const int64_t limit = runtime == "podman" ? 160 << 20 : 64 << 20;
  const bool oom_mark_before = fs::exists("oom");
  spec.limits.memory_bytes = limit;
  const Ran ran = Run(spec);
  INFO(ran.out << ran.err);
  CHECK(ran.out.find("ALLOCATED") == std::string::npos);
  CHECK(ran.exit.oom_killed);
  CHECK(ran.exit.signal == SIGKILL);
  CHECK(ran.exit.usage.peak_memory_bytes <= limit + (1 << 20));
  // Nothing of it lands outside: conmon marks an OOM with a file in its working directory, which
  // must be the job's own (this test's directory once got one).
  if (!oom_mark_before) CHECK_FALSE(fs::exists("oom"));
  // The machine is fine: the next job runs.
  CHECK(Run(Shell(runtime, "sandbox-after-oom", job, "echo fine")).out == "fine\n");
}

TEST_CASE("a fork bomb is held to the process limit and stopped with its job", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  JobDir job;
  SandboxSpec spec = Shell(runtime, "sandbox-forkbomb", job, "bomb() { bomb | bomb & }; bomb; sleep 60");
  // podman and conmon (a Go program's threads) count against the limit too.
  const int limit = runtime == "podman" ? 128 : 32;
  spec.limits.max_pids = limit;
  const std::unique_ptr<Sandbox> sandbox = SandboxFor(spec);
  const int null_fd = ::open("/dev/null", O_WRONLY | O_CLOEXEC);
  absl::StatusOr<std::unique_ptr<SandboxProcess>> p = sandbox->Start(spec, null_fd, null_fd);
  ::close(null_fd);
  REQUIRE(p.ok());
  std::this_thread::sleep_for(std::chrono::seconds(1));
  const fs::path pids = "/sys/fs/cgroup/pids/tessera/sandbox-forkbomb";
  if (fs::exists(pids / "pids.current")) {
    const int current = std::stoi(ReadAll(pids / "pids.current"));
    CHECK(current <= limit);
    CHECK(std::stoi(ReadAll(pids / "pids.events").substr(4)) > 0);  // "max N": forks refused
  }
  (*p)->Stop(std::chrono::milliseconds(200));
  REQUIRE((*p)->Wait(std::chrono::seconds(10)));
  CHECK((*p)->Exit().stopped);
  if (fs::exists(pids / "cgroup.procs")) CHECK(ReadAll(pids / "cgroup.procs").empty());  // no process of it left
}

TEST_CASE("stopping a job: SIGTERM with a grace, then SIGKILL for one that ignores it; orphans go with it", "[sandbox]") {
  const std::string runtime = GENERATE(as<std::string>{}, "bwrap", "podman");
  if (!Host(runtime)) return;
  JobDir job;
  // Polite: it saves on SIGTERM and exits.
  const Ran polite = Run(Shell(runtime, "sandbox-polite", job, "trap 'echo saved > /job/outputs/ckpt; exit 0' TERM; sleep 60 & wait"),
                         std::chrono::milliseconds(300), std::chrono::seconds(5));
  CHECK(polite.exit.stopped);
  CHECK(polite.exit.exit_code == 0);
  CHECK(ReadAll(job.dir.path / "outputs" / "ckpt") == "saved\n");
  CHECK(polite.seconds < 3);
  // Deaf: it ignores SIGTERM and is killed after the grace.
  const Ran deaf = Run(Shell(runtime, "sandbox-deaf", job, "trap '' TERM; while true; do sleep 1; done"), std::chrono::milliseconds(300),
                       std::chrono::milliseconds(500));
  CHECK(deaf.exit.stopped);
  CHECK(deaf.exit.signal == SIGKILL);
  CHECK(deaf.seconds < 5);
  // An orphan left running after the program exits is killed with the job.
  const Ran orphan = Run(Shell(runtime, "sandbox-orphan", job, "setsid sh -c 'sleep 1000' & echo left"));
  CHECK(orphan.out == "left\n");
  CHECK(orphan.exit.exit_code == 0);
  CHECK(std::system("pgrep -u 65534 -f 'sleep 1000' >/dev/null") != 0);
}

TEST_CASE("a spec the sandbox cannot honour is refused naming the field", "[sandbox]") {
  const std::string runtime = "bwrap";
  JobDir job;
  BwrapSandbox sandbox;
  auto refused = [&](SandboxSpec spec) { return std::string(sandbox.Start(spec, 1, 2).status().message()); };
  SandboxSpec spec = Shell(runtime, "sandbox-refused", job, "true");
  spec.command.clear();
  CHECK_THAT(refused(spec), Catch::StartsWith("command"));
  spec = Shell(runtime, "sandbox-refused", job, "true");
  spec.uid = 0;
  CHECK_THAT(refused(spec), Catch::StartsWith("uid"));
  spec = Shell(runtime, "sandbox-refused", job, "true");
  spec.secrets = {{"../../etc/passwd", "x"}};
  CHECK_THAT(refused(spec), Catch::StartsWith("secrets"));
  spec = Shell(runtime, "sandbox-refused", job, "true");
  spec.mounts.push_back({.host = "/", .inside = "/job/../etc", .writable = true});
  CHECK_THAT(refused(spec), Catch::StartsWith("mounts"));
  spec.mounts.back().inside = "/etc";
  CHECK_THAT(refused(spec), Catch::StartsWith("mounts"));
  spec = Shell(runtime, "sandbox-refused", job, "true");
  spec.image = "localhost/tessera-tools:1";
  CHECK_THAT(refused(spec), Catch::StartsWith("image: the process sandbox runs the host's own system"));
}

TEST_CASE("an image that carries device nodes opens none of them: not the host's disk, console or fuse", "[sandbox]") {
  if (!PodmanRuns()) return;
  // The disk this machine's root lives on, as a node anyone may read, inside a customer's image.
  struct stat root {};
  REQUIRE(::stat("/", &root) == 0);
  const std::string make = absl::StrCat(
      "set -e; d=$(mktemp -d); cid=$(podman create ", kTestImage, " true); podman export $cid > $d/root.tar; podman rm $cid >/dev/null;"
      " mkdir -p $d/x/opt; mknod -m 666 $d/x/opt/disk b ", major(root.st_dev), " ", minor(root.st_dev),
      "; mknod -m 666 $d/x/opt/tty0 c 4 0; mknod -m 666 $d/x/opt/fuse c 10 229; tar -C $d/x -rf $d/root.tar ./opt/disk ./opt/tty0 ./opt/fuse;"
      " podman import $d/root.tar localhost/tessera-hostile:1 >/dev/null; rm -rf $d");
  REQUIRE(std::system(make.c_str()) == 0);
  JobDir job;
  SandboxSpec spec = Shell("podman", "podman-devices", job,
                           "ls -l /opt/disk /opt/tty0 /opt/fuse; (head -c 16 /opt/disk >/dev/null) 2>/dev/null && echo READ-DISK;"
                           // Without the confinement, nobody opens both here (the disk is refused by this VM's own rules).
                           " (: < /opt/tty0) 2>/dev/null && echo READ-CONSOLE; (: < /opt/fuse) 2>/dev/null && echo READ-FUSE;"
                           " echo /dev/null works > /dev/null && echo end");
  spec.image = "localhost/tessera-hostile:1";
  const Ran ran = Run(spec);
  INFO(ran.out << ran.err);
  CHECK_THAT(ran.out, Catch::Contains("/opt/disk"));  // the node is there, readable by its mode
  CHECK(ran.out.find("READ-") == std::string::npos);
  CHECK_THAT(ran.out, Catch::EndsWith("end\n"));
  std::system("podman rmi -f localhost/tessera-hostile:1 >/dev/null 2>&1");
}

TEST_CASE("podman runs only images this machine has, by a reference that cannot be an option", "[sandbox]") {
  if (!PodmanRuns()) return;
  JobDir job;
  PodmanSandbox sandbox(TestPodmanOptions());
  SandboxSpec spec = Shell("podman", "podman-refused", job, "true");
  spec.image.clear();
  CHECK(sandbox.Start(spec, 1, 2).status().message() == "image: required: podman runs an image");
  spec.image = "--privileged";
  CHECK_THAT(std::string(sandbox.Start(spec, 1, 2).status().message()), Catch::StartsWith("image: '--privileged' is not an image reference"));
  spec.image = "localhost/no-such-image:1";
  const absl::Status missing = sandbox.Start(spec, 1, 2).status();
  CHECK(missing.code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(missing.message()), Catch::Contains("is not on this worker"));
}

TEST_CASE("the podman command line: no privileges, the job's own cgroup, its GPUs by CDI or as nodes, its argv whole", "[sandbox]") {
  JobDir job;
  SandboxSpec spec = Shell("podman", "job-7-2", job, "echo 'a \"b\"'");
  spec.devices = {"/dev/nvidia3", "/dev/nvidiactl", "/dev/nvidia-uvm"};
  spec.env = {{"CUDA_VISIBLE_DEVICES", "3"}, {"BATCH", "64"}};
  const PodmanOptions options{.state_dir = "/var/lib/tessera"};
  auto joined = [](const std::vector<std::string>& argv) {
    std::string all;
    for (const std::string& a : argv) all += a + "\n";
    return all;
  };
  const std::string cdi = joined(PodmanCommandLine(options, {.cdi_gpus = true}, spec, ""));
  for (const char* expected : {"--cgroups=disabled\n", "--pull=never\n", "--cap-drop=all\n", "--security-opt=no-new-privileges\n",
                               "--security-opt=seccomp=/var/lib/tessera/job-seccomp.json\n", "--read-only\n", "--network=none\n",
                               "--user\n65534:65534\n", "--name\ntessera-job-7-2\n", "--device=nvidia.com/gpu=3\n",
                               "--env\nCUDA_VISIBLE_DEVICES=0\n", "--env\nBATCH=64\n",
                               "--entrypoint\n[\"/bin/sh\",\"-c\",\"echo 'a \\\"b\\\"'\"]\nlocalhost/tessera-tools:1\n"}) {
    CHECK_THAT(cdi, Catch::Contains(expected));
  }
  CHECK_THAT(cdi, !Catch::Contains("/dev/nvidiactl"));  // CDI brings the control nodes and the driver's libraries
  CHECK_THAT(cdi, Catch::EndsWith("localhost/tessera-tools:1\n"));  // nothing after the image: the command is the entrypoint
  const std::string nodes = joined(PodmanCommandLine(options, {.cdi_gpus = false}, spec, "/dev/shm/tessera-secrets-job-7-2"));
  for (const char* expected : {"--device=/dev/nvidia3\n", "--device=/dev/nvidiactl\n", "--env\nCUDA_VISIBLE_DEVICES=3\n",
                               "type=bind,source=/dev/shm/tessera-secrets-job-7-2,destination=/run/secrets,ro=true\n"}) {
    CHECK_THAT(nodes, Catch::Contains(expected));
  }
  spec.network = true;
  CHECK_THAT(joined(PodmanCommandLine(options, {}, spec, "")), Catch::Contains("--network=host\n"));
}

TEST_CASE("the jobs' seccomp profile keeps podman's and takes away new user namespaces", "[sandbox]") {
  TempDir dir;
  WriteAll(dir.path / "base.json",
           R"({"defaultAction": "SCMP_ACT_ERRNO", "defaultErrnoRet": 38, "syscalls": [)"
           R"({"names": ["read", "clone", "clone3", "unshare", "write"], "action": "SCMP_ACT_ALLOW", "args": []}]})");
  REQUIRE(WriteJobSeccompProfile(dir.path / "base.json", dir.path / "job.json").ok());
  const std::string profile = ReadAll(dir.path / "job.json");
  INFO(profile);
  CHECK_THAT(profile, Catch::Contains(R"("names":["read","write"])"));
  CHECK_THAT(profile, Catch::Contains(R"("valueTwo":0)"));          // clone and unshare without CLONE_NEWUSER: allowed
  CHECK_THAT(profile, Catch::Contains(R"("valueTwo":268435456)"));  // with it: EPERM
  CHECK_THAT(profile, Catch::Contains(R"("names":["clone3"])"));
  CHECK_THAT(profile, Catch::Contains(R"("defaultErrnoRet":38)"));
  CHECK_FALSE(WriteJobSeccompProfile(dir.path / "missing.json", dir.path / "job.json").ok());
}
