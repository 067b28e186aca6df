// How long a container job waits for its sandbox (issue 18's target: median <= 50 ms from the start
// of BwrapSandbox::Start to the program's first line of output), against a bare fork and exec of
// the same command (`sh -c 'echo ready'`), interleaved run by run on the same machine; with
// --image, also PodmanSandbox::Start of that image (no target: podman, conmon and crun start per
// job). Needs root and bubblewrap (and podman), as an agent does.
//
//   build/bench/tessera_sandbox_start_bench [--runs 25] [--image localhost/tessera-tools:1]
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <vector>

#include "services/worker/sandbox/bwrap_sandbox.h"
#include "services/worker/sandbox/podman_sandbox.h"

using namespace tessera::worker;
using Clock = std::chrono::steady_clock;

namespace {

// Blocks until the first byte arrives on `fd`; returns when it did.
Clock::time_point FirstByte(int fd) {
  char c;
  while (::read(fd, &c, 1) < 0 && errno == EINTR) {
  }
  return Clock::now();
}

// From Start to the first byte of `sh -c 'echo ready'` in `sandbox`; negative on failure.
double TimeStart(Sandbox& sandbox, SandboxSpec spec) {
  int p[2];
  if (::pipe2(p, O_CLOEXEC) != 0) return -1;
  spec.command = {"/bin/sh", "-c", "echo ready"};
  spec.limits = {.memory_bytes = 256 << 20, .max_pids = 256, .cpu_millicores = 1000};
  const Clock::time_point start = Clock::now();
  absl::StatusOr<std::unique_ptr<SandboxProcess>> process = sandbox.Start(spec, p[1], p[1]);
  ::close(p[1]);
  if (!process.ok()) {
    std::fprintf(stderr, "%s\n", std::string(process.status().message()).c_str());
    ::close(p[0]);
    return -1;
  }
  const double ms = std::chrono::duration<double, std::milli>(FirstByte(p[0]) - start).count();
  (*process)->Wait(std::chrono::seconds(10));
  ::close(p[0]);
  return ms;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

extern char** environ;

int main(int argc, char** argv) {
  CLI::App app("sandbox start time");
  int runs = 25;
  std::string image;
  app.add_option("--runs", runs)->check(CLI::Range(3, 1000));
  app.add_option("--image", image, "Also time podman starting this (local) image");
  CLI11_PARSE(app, argc, argv);
  BwrapSandbox sandbox;
  if (absl::Status probe = sandbox.Probe(); !probe.ok()) {
    std::fprintf(stderr, "cannot benchmark the sandbox here: %s\n", std::string(probe.message()).c_str());
    return 2;
  }
  std::unique_ptr<PodmanSandbox> podman;
  if (!image.empty()) {
    podman = std::make_unique<PodmanSandbox>(PodmanOptions{.state_dir = "/tmp/tessera-bench-podman"});
    if (absl::Status probe = podman->Probe(); !probe.ok()) {
      std::fprintf(stderr, "cannot benchmark podman here: %s\n", std::string(probe.message()).c_str());
      return 2;
    }
  }
  std::vector<double> sandboxed, bare, podmans;
  for (int i = 0; i < runs; ++i) {
    SandboxSpec spec;
    spec.name = "bench-start-" + std::to_string(i);
    const double ms = TimeStart(sandbox, spec);
    if (ms < 0) return 1;
    sandboxed.push_back(ms);
    if (podman != nullptr) {
      spec.image = image;
      const double podman_ms = TimeStart(*podman, spec);
      if (podman_ms < 0) return 1;
      podmans.push_back(podman_ms);
    }

    int p[2];
    if (::pipe2(p, O_CLOEXEC) != 0) return 1;
    posix_spawn_file_actions_t actions;
    posix_spawn_file_actions_init(&actions);
    posix_spawn_file_actions_adddup2(&actions, p[1], 1);
    const char* args[] = {"/bin/sh", "-c", "echo ready", nullptr};
    const Clock::time_point bare_start = Clock::now();
    pid_t pid = 0;
    if (posix_spawn(&pid, "/bin/sh", &actions, nullptr, const_cast<char**>(args), environ) != 0) return 1;
    ::close(p[1]);
    bare.push_back(std::chrono::duration<double, std::milli>(FirstByte(p[0]) - bare_start).count());
    ::waitpid(pid, nullptr, 0);
    ::close(p[0]);
    posix_spawn_file_actions_destroy(&actions);
  }
  std::printf("runs %d\nsandbox (cgroup, bubblewrap, namespaces) to first output: median %.1f ms (min %.1f, max %.1f)\n", runs,
              Median(sandboxed), *std::min_element(sandboxed.begin(), sandboxed.end()),
              *std::max_element(sandboxed.begin(), sandboxed.end()));
  std::printf("bare fork+exec of the same command to first output:        median %.1f ms (min %.1f, max %.1f)\n", Median(bare),
              *std::min_element(bare.begin(), bare.end()), *std::max_element(bare.begin(), bare.end()));
  if (!podmans.empty()) {
    std::printf("podman (image check, conmon, crun, catatonit) to first output:  median %.1f ms (min %.1f, max %.1f)\n", Median(podmans),
                *std::min_element(podmans.begin(), podmans.end()), *std::max_element(podmans.begin(), podmans.end()));
  }
  std::printf("target: sandbox median <= 50 ms: %s\n", Median(sandboxed) <= 50 ? "met" : "NOT met");
  return 0;
}
