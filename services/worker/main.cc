// `tessera-worker`: the agent a GPU owner runs on each machine. Parses its flags, builds the agent
// over this machine's devices, and runs it until a signal: SIGTERM drains (the jobs running
// finish, no new ones come, then the agent exits); SIGINT, or a second SIGTERM, stops at once.
#include <signal.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "services/worker/worker_flags.h"

namespace {

int Fail(const absl::Status& status, int code) {
  std::cerr << "error: " << status.message() << "\n";
  return code;
}

}  // namespace

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  tessera::worker::WorkerFlags flags;
  CLI::App app{"tessera-worker: runs Tessera jobs on this machine's devices"};
  tessera::worker::AddWorkerFlags(app, flags);
  CLI11_PARSE(app, argc, argv);
  if (absl::Status s = tessera::worker::ApplyWorkerFlags(flags); !s.ok()) return Fail(s, 2);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  std::unique_ptr<tessera::worker::GpuSampler> sampler;
  auto backend = tessera::worker::ChooseBackend(flags, sampler);
  if (!backend.ok()) return Fail(backend.status(), 1);
  spdlog::info("offering {} {} device(s), {} backend", flags.options.devices.size(), flags.options.devices.front().model(),
               (*backend)->Name());

  tessera::SystemClock clock;
  tessera::worker::Agent agent(flags.options, *std::move(backend), clock);
  if (absl::Status connected = agent.Connect(); !connected.ok()) return Fail(connected, 2);
  if (absl::StatusOr<int64_t> id = agent.RegisterOrLoad(); !id.ok()) return Fail(id.status(), 1);
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    if (sig == SIGTERM) {
      spdlog::info("SIGTERM: draining (SIGINT or another SIGTERM stops at once)");
      agent.Drain();
      sigwait(&signals, &sig);
    }
    spdlog::info("signal {}: stopping", sig);
    agent.Stop();
  });
  agent.Run();
  waiter.detach();
  if (!agent.refusal().empty()) {
    std::cerr << "error: the scheduler refused this worker: " << agent.refusal() << "\n";
    return 1;
  }
  return 0;
}
