// A worker as the scheduler host needs it: what the market reads of its registration.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

// A worker as the scheduler host needs it.
struct WorkerRecord {
  int64_t worker_id = 0;
  v1::WorkerState state = v1::WORKER_STATE_UNSPECIFIED;
  std::string region;
  int32_t reputation = 0;
  int64_t ask_utok_per_gpu_hour = 0;
  std::vector<v1::Gpu> gpus;  // ordered by index, dense from 0
  v1::ProviderPolicy policy;
  bool verified = false;  // it passed a proof-of-GPU challenge once (or an admin vouched for it)
  std::vector<std::string> job_kinds;  // empty: every kind (an agent that never said)
};

}  // namespace tessera::scheduler_host
