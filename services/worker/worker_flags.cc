#include "services/worker/worker_flags.h"

#include <pwd.h>

#include <spdlog/spdlog.h>

#include <charconv>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "kernels/cuda_devices.h"
#include "services/auth/client_channel.h"
#include "services/worker/device_inventory.h"

namespace tessera::worker {
namespace {

absl::Status AddMinBids(const std::vector<std::string>& entries, v1::ProviderPolicy& policy) {
  for (const std::string& entry : entries) {
    const size_t eq = entry.find('=');
    int64_t bid = 0;
    const char* digits = entry.c_str() + (eq == std::string::npos ? entry.size() : eq + 1);
    const auto [end, error] = std::from_chars(digits, entry.c_str() + entry.size(), bid);
    if (eq == 0 || eq == std::string::npos || error != std::errc() || *end != '\0' || bid <= 0) {
      return absl::InvalidArgumentError(absl::StrCat("--min-bid takes MODEL=UTOK with a positive amount, got '", entry, "'"));
    }
    (*policy.mutable_min_bid_utok_per_gpu_hour())[entry.substr(0, eq)] = bid;
  }
  return absl::OkStatus();
}

}  // namespace

void AddWorkerFlags(CLI::App& app, WorkerFlags& flags) {
  AgentOptions& options = flags.options;
  if (const char* server = std::getenv("TESSERA_SERVER")) options.server = server;
  if (const char* key = std::getenv("TESSERA_API_KEY")) options.api_key = key;
  if (const char* file = std::getenv("TESSERA_API_KEY_FILE")) flags.api_key_file = file;
  app.add_option("--server", options.server, "Scheduler address (env TESSERA_SERVER)");
  app.add_option("--provider", options.provider_account, "Provider account that owns this machine")->required();
  app.add_option("--api-key", options.api_key, "The provider's API key (env TESSERA_API_KEY)");
  app.add_option("--api-key-file", flags.api_key_file, "File holding the provider's API key (env TESSERA_API_KEY_FILE)");
  app.add_option("--tls-ca", flags.tls_ca, "PEM CA of the scheduler's TLS certificate");
  app.add_option("--tls-cert", flags.tls_cert, "PEM certificate of this machine, for a mutual-TLS worker port");
  app.add_option("--tls-key", flags.tls_key, "PEM private key of --tls-cert");
  app.add_option("--name", options.name, "Machine name")->required();
  app.add_option("--region", options.region, "Region label");
  app.add_option("--ask", options.ask_utok_per_gpu_hour, "Price per GPU-hour in µT")->check(CLI::PositiveNumber);
  app.add_option("--gpus", flags.device_count, "Devices to offer: at most this many GPUs (default all), or this many CPU devices (default 1)")
      ->check(CLI::Range(1, 64));
  app.add_option("--state-dir", flags.state_dir, "Where the worker keeps its identity and its outbox journal");
  app.add_option("--disconnect-grace-ms", options.disconnect_grace_ms,
                 "How long jobs keep running while no scheduler answers (default 10 minutes)")
      ->check(CLI::Range(int64_t{1'000}, int64_t{7} * 24 * 3'600'000));
  app.add_option("--keepalive-ms", options.keepalive_ms, "Ping the scheduler this often; no answer this long: reconnect")
      ->check(CLI::Range(int64_t{2'000}, int64_t{600'000}));
  app.add_option("--usage-interval-ms", options.runner.usage_interval_ms, "Usage report period")->check(CLI::Range(10, 60'000));
  app.add_flag("--cpu", flags.cpu, "Offer CPU devices and run the CPU kernels even where NVIDIA GPUs are present");
  app.add_option("--min-bid", flags.min_bids, "Least bid per GPU-hour (µT) for a GPU model, as MODEL=UTOK; repeatable");
  app.add_option("--max-job-duration-ms", flags.max_job_duration_ms, "Longest job taken (its max_duration_ms); 0: any")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--allow-account", flags.allowed_accounts, "Only jobs of this customer account; repeatable");
  app.add_option("--deny-account", flags.denied_accounts, "Never jobs of this customer account; repeatable");
  app.add_flag("--refuse-spot", flags.refuse_spot, "Take no SPOT (preemptible) jobs");
  app.add_flag("--no-containers", flags.no_containers, "Run no container jobs (customers' own programs), only the built-in kernels");
  app.add_flag("--no-images", flags.no_images, "Run no OCI images (podman), only container jobs in the process sandbox");
  app.add_option("--job-user", flags.job_user, "The unprivileged user container jobs run as (never root; default nobody)");
  app.add_flag("--allow-job-network", options.allow_network, "Container jobs that ask for the network get it (default: none do)");
  app.add_option("--job-memory-mib-per-gpu", options.job_memory_mib_per_gpu, "Memory limit of a container job that sets none, per GPU")
      ->check(CLI::Range(int64_t{64}, int64_t{4} << 20));
  app.add_option("--job-cpus-per-gpu", options.job_cpu_millicores_per_gpu,
                 "CPU limit of a container job that sets none, per GPU, in thousandths of a core")
      ->check(CLI::Range(int64_t{100}, int64_t{1'024'000}));
}

absl::Status ApplyWorkerFlags(WorkerFlags& flags) {
  AgentOptions& options = flags.options;
  options.state_dir = flags.state_dir;
  options.containers = !flags.no_containers;
  options.images = !flags.no_images;
  if (options.containers) {
    const struct passwd* user = ::getpwnam(flags.job_user.c_str());
    if (user != nullptr && (user->pw_uid == 0 || user->pw_gid == 0)) return absl::InvalidArgumentError("--job-user: jobs never run as root");
    if (user == nullptr) {
      // The built-in kernels still run; the agent just offers no container jobs.
      spdlog::warn("container jobs: off: --job-user: no user '{}' on this machine", flags.job_user);
      options.containers = false;
    } else {
      options.job_uid = user->pw_uid;
      options.job_gid = user->pw_gid;
    }
  }
  options.tls_ca = flags.tls_ca;
  options.tls_cert = flags.tls_cert;
  options.tls_key = flags.tls_key;
  if (options.api_key.empty() && !flags.api_key_file.empty()) {
    absl::StatusOr<std::string> key = auth::ReadApiKeyFile(flags.api_key_file);
    if (!key.ok()) return key.status();
    options.api_key = *key;
  } else if (!options.api_key.empty()) {
    if (absl::Status s = auth::ValidateApiKeyText(options.api_key, "--api-key (or TESSERA_API_KEY)"); !s.ok()) return s;
  }
  if (absl::Status s = AddMinBids(flags.min_bids, options.policy); !s.ok()) return s;
  options.policy.set_max_job_duration_ms(flags.max_job_duration_ms);
  for (const std::string& a : flags.allowed_accounts) options.policy.add_allowed_accounts(a);
  for (const std::string& a : flags.denied_accounts) options.policy.add_denied_accounts(a);
  options.policy.set_refuse_spot(flags.refuse_spot);
  options.policy.set_allow_job_network(options.allow_network);  // the scheduler places network jobs only here
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<kernels::ComputeBackend>> ChooseBackend(WorkerFlags& flags, std::unique_ptr<GpuSampler>& sampler) {
  AgentOptions& options = flags.options;
  if (!flags.cpu) {
    // CUDA ordinals in PCI order, as NVML numbers devices: the sampler reads the GPUs a job holds.
    setenv("CUDA_DEVICE_ORDER", "PCI_BUS_ID", 1);
    absl::StatusOr<std::vector<kernels::CudaDevice>> gpus = kernels::ListCudaDevices();
    if (!gpus.ok()) {
      return absl::Status(gpus.status().code(), absl::StrCat(gpus.status().message(), " (--cpu runs on the CPU instead)"));
    }
    if (!gpus->empty()) {
      options.devices = GpuDevices(*gpus, flags.device_count);
      sampler = MakeNvmlSampler();
      options.runner.sampler = sampler.get();
      if (sampler == nullptr) spdlog::warn("no NVML: usage reports carry GPU-ms only (no utilization, memory or energy)");
      return kernels::MakeCudaBackend();
    }
    spdlog::info("no usable NVIDIA GPU here: offering CPU devices");
  }
  options.devices = CpuDevices(flags.device_count > 0 ? flags.device_count : 1, options.name);
  return kernels::MakeCpuBackend();
}

}  // namespace tessera::worker
