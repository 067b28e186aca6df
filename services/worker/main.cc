// `tessera-worker`: the agent a GPU owner runs on each machine.
#include <signal.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <charconv>
#include <thread>

#include "services/worker/agent.h"

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  tessera::worker::AgentOptions options;
  if (const char* server = std::getenv("TESSERA_SERVER")) options.server = server;
  std::string state_dir = "tessera-worker";
  bool cpu = true;
  CLI::App app{"tessera-worker: runs Tessera jobs on this machine's devices"};
  app.add_option("--server", options.server, "Scheduler address (env TESSERA_SERVER)");
  app.add_option("--provider", options.provider_account, "Provider account that owns this machine")->required();
  app.add_option("--name", options.name, "Machine name")->required();
  app.add_option("--region", options.region, "Region label");
  app.add_option("--ask", options.ask_utok_per_gpu_hour, "Price per GPU-hour in µT")->check(CLI::PositiveNumber);
  app.add_option("--gpus", options.devices, "Devices to offer")->check(CLI::Range(1, 64));
  app.add_option("--state-dir", state_dir, "Where the worker keeps its identity");
  app.add_option("--usage-interval-ms", options.runner.usage_interval_ms, "Usage report period")->check(CLI::Range(10, 60'000));
  app.add_flag("--cpu", cpu, "Run on the CPU backend (the only backend of this build)");
  // Provider policy: which jobs this machine takes besides those whose bid covers the ask.
  std::vector<std::string> min_bids, allowed, denied;
  int64_t max_job_duration_ms = 0;
  bool refuse_spot = false;
  app.add_option("--min-bid", min_bids, "Least bid per GPU-hour (µT) for a GPU model, as MODEL=UTOK; repeatable");
  app.add_option("--max-job-duration-ms", max_job_duration_ms, "Longest job taken (its max_duration_ms); 0: any")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--allow-account", allowed, "Only jobs of this customer account; repeatable");
  app.add_option("--deny-account", denied, "Never jobs of this customer account; repeatable");
  app.add_flag("--refuse-spot", refuse_spot, "Take no SPOT (preemptible) jobs");
  CLI11_PARSE(app, argc, argv);
  options.state_dir = state_dir;
  for (const std::string& entry : min_bids) {
    const size_t eq = entry.find('=');
    int64_t bid = 0;
    const char* digits = entry.c_str() + (eq == std::string::npos ? entry.size() : eq + 1);
    const auto [end, error] = std::from_chars(digits, entry.c_str() + entry.size(), bid);
    if (eq == 0 || eq == std::string::npos || error != std::errc() || *end != '\0' || bid <= 0) {
      std::cerr << "error: --min-bid takes MODEL=UTOK with a positive amount, got '" << entry << "'\n";
      return 2;
    }
    (*options.policy.mutable_min_bid_utok_per_gpu_hour())[entry.substr(0, eq)] = bid;
  }
  options.policy.set_max_job_duration_ms(max_job_duration_ms);
  for (const std::string& a : allowed) options.policy.add_allowed_accounts(a);
  for (const std::string& a : denied) options.policy.add_denied_accounts(a);
  options.policy.set_refuse_spot(refuse_spot);

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  tessera::SystemClock clock;
  tessera::worker::Agent agent(options, tessera::kernels::MakeCpuTrainBackend(), clock);
  absl::StatusOr<int64_t> id = agent.RegisterOrLoad();
  if (!id.ok()) {
    std::cerr << "error: " << id.status().message() << "\n";
    return 1;
  }
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    spdlog::info("signal {}: stopping", sig);
    agent.Stop();
  });
  agent.Run();
  waiter.detach();
  return 0;
}
