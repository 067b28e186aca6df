// The flags of `tessera-worker` and what they make: the agent's options, its provider policy, its
// API key, and the devices and compute backend it offers. Kept out of main so that main only
// parses, builds and runs, and so that each step can say what is wrong with a flag.
#pragma once

#include <CLI/CLI.hpp>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "kernels/compute_backend.h"
#include "services/worker/agent.h"
#include "services/worker/gpu_sampler.h"

namespace tessera::worker {

struct WorkerFlags {
  AgentOptions options;
  std::string api_key_file;
  std::string state_dir = "tessera-worker";
  std::string tls_ca, tls_cert, tls_key;
  bool cpu = false;
  int device_count = 0;
  // Provider policy: which jobs this machine takes besides those whose bid covers the ask.
  std::vector<std::string> min_bids, allowed_accounts, denied_accounts;
  int64_t max_job_duration_ms = 0;
  bool refuse_spot = false;
  // Container jobs: the unprivileged user they run as (a name from the passwd database).
  std::string job_user = "nobody";
  bool no_containers = false;
  bool no_images = false;
};

// Defaults from the environment (TESSERA_SERVER, TESSERA_API_KEY, TESSERA_API_KEY_FILE), then the
// flags on `app`.
void AddWorkerFlags(CLI::App& app, WorkerFlags& flags);

// After parsing: the API key read and checked, the policy built, the paths set in `flags.options`.
// INVALID_ARGUMENT naming the flag when one is wrong.
absl::Status ApplyWorkerFlags(WorkerFlags& flags);

// The compute this machine offers: its NVIDIA GPUs with the CUDA kernels (and an NVML sampler,
// kept in `sampler`, when the machine has NVML), or CPU devices when it has no GPU or --cpu says
// so. Sets `flags.options.devices`. An error when the CUDA runtime cannot list the GPUs.
absl::StatusOr<std::unique_ptr<kernels::ComputeBackend>> ChooseBackend(WorkerFlags& flags, std::unique_ptr<GpuSampler>& sampler);

}  // namespace tessera::worker
