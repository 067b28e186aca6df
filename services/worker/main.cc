// `tessera-worker`: the agent a GPU owner runs on each machine.
#include <signal.h>
#include <sodium.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <iostream>
#include <charconv>
#include <thread>

#include "kernels/cuda_devices.h"
#include "services/auth/client_channel.h"
#include "services/worker/agent.h"
#include "services/worker/device_inventory.h"

int main(int argc, char** argv) {
  if (sodium_init() < 0) return 1;
  tessera::worker::AgentOptions options;
  if (const char* server = std::getenv("TESSERA_SERVER")) options.server = server;
  if (const char* key = std::getenv("TESSERA_API_KEY")) options.api_key = key;
  std::string api_key_file;
  if (const char* file = std::getenv("TESSERA_API_KEY_FILE")) api_key_file = file;
  std::string state_dir = "tessera-worker";
  bool cpu = false;
  int device_count = 0;
  CLI::App app{"tessera-worker: runs Tessera jobs on this machine's devices"};
  app.add_option("--server", options.server, "Scheduler address (env TESSERA_SERVER)");
  app.add_option("--provider", options.provider_account, "Provider account that owns this machine")->required();
  app.add_option("--api-key", options.api_key, "The provider's API key (env TESSERA_API_KEY)");
  app.add_option("--api-key-file", api_key_file, "File holding the provider's API key (env TESSERA_API_KEY_FILE)");
  std::string tls_ca, tls_cert, tls_key;
  app.add_option("--tls-ca", tls_ca, "PEM CA of the scheduler's TLS certificate");
  app.add_option("--tls-cert", tls_cert, "PEM certificate of this machine, for a mutual-TLS worker port");
  app.add_option("--tls-key", tls_key, "PEM private key of --tls-cert");
  app.add_option("--name", options.name, "Machine name")->required();
  app.add_option("--region", options.region, "Region label");
  app.add_option("--ask", options.ask_utok_per_gpu_hour, "Price per GPU-hour in µT")->check(CLI::PositiveNumber);
  app.add_option("--gpus", device_count, "Devices to offer: at most this many GPUs (default all), or this many CPU devices (default 1)")
      ->check(CLI::Range(1, 64));
  app.add_option("--state-dir", state_dir, "Where the worker keeps its identity and its outbox journal");
  app.add_option("--disconnect-grace-ms", options.disconnect_grace_ms,
                 "How long jobs keep running while no scheduler answers (default 10 minutes)")
      ->check(CLI::Range(int64_t{1'000}, int64_t{7} * 24 * 3'600'000));
  app.add_option("--keepalive-ms", options.keepalive_ms, "Ping the scheduler this often; no answer this long: reconnect")
      ->check(CLI::Range(int64_t{2'000}, int64_t{600'000}));
  app.add_option("--usage-interval-ms", options.runner.usage_interval_ms, "Usage report period")->check(CLI::Range(10, 60'000));
  app.add_flag("--cpu", cpu, "Offer CPU devices and run the CPU kernels even where NVIDIA GPUs are present");
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
  options.tls_ca = tls_ca;
  options.tls_cert = tls_cert;
  options.tls_key = tls_key;
  if (options.api_key.empty() && !api_key_file.empty()) {
    absl::StatusOr<std::string> key = tessera::auth::ReadApiKeyFile(api_key_file);
    if (!key.ok()) {
      std::cerr << "error: " << key.status().message() << "\n";
      return 2;
    }
    options.api_key = *key;
  } else if (!options.api_key.empty()) {
    if (absl::Status s = tessera::auth::ValidateApiKeyText(options.api_key, "--api-key (or TESSERA_API_KEY)"); !s.ok()) {
      std::cerr << "error: " << s.message() << "\n";
      return 2;
    }
  }
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

  // The machine's NVIDIA GPUs and the CUDA kernels, unless there are none (or --cpu).
  std::unique_ptr<tessera::kernels::ComputeBackend> backend;
  std::unique_ptr<tessera::worker::GpuSampler> sampler;
  if (!cpu) {
    // CUDA ordinals in PCI order, as NVML numbers devices: the sampler reads the GPUs a job holds.
    setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
    absl::StatusOr<std::vector<tessera::kernels::CudaDevice>> gpus = tessera::kernels::ListCudaDevices();
    if (!gpus.ok()) {
      std::cerr << "error: " << gpus.status().message() << " (--cpu runs on the CPU instead)\n";
      return 1;
    }
    if (!gpus->empty()) {
      options.devices = tessera::worker::GpuDevices(*gpus, device_count);
      backend = tessera::kernels::MakeCudaBackend();
      sampler = tessera::worker::MakeNvmlSampler();
      options.runner.sampler = sampler.get();
      if (sampler == nullptr) spdlog::warn("no NVML: usage reports carry GPU-ms only (no utilization, memory or energy)");
    } else {
      spdlog::info("no usable NVIDIA GPU here: offering CPU devices");
    }
  }
  if (backend == nullptr) {
    options.devices = tessera::worker::CpuDevices(device_count > 0 ? device_count : 1, options.name);
    backend = tessera::kernels::MakeCpuBackend();
  }
  spdlog::info("offering {} {} device(s), {} backend", options.devices.size(), options.devices.front().model(), backend->Name());

  tessera::SystemClock clock;
  tessera::worker::Agent agent(options, std::move(backend), clock);
  if (absl::Status connected = agent.Connect(); !connected.ok()) {
    std::cerr << "error: " << connected.message() << "\n";
    return 2;
  }
  absl::StatusOr<int64_t> id = agent.RegisterOrLoad();
  if (!id.ok()) {
    std::cerr << "error: " << id.status().message() << "\n";
    return 1;
  }
  // SIGTERM drains (the jobs running finish, no new ones come, then the agent exits); SIGINT, or
  // a second SIGTERM, stops at once (the jobs' leases expire and they run elsewhere).
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
