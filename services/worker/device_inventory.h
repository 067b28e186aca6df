// The devices a worker offers. This version offers CPU devices (model "CPU"), which run the CPU
// reference kernels; the GPU worker issue adds the CUDA runtime inventory (name, UUID, memory,
// compute capability, PCI bus id) behind the same function.
#pragma once

#include <string>
#include <vector>

#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// `count` CPU devices with UUIDs unique to this machine and worker name.
std::vector<v1::Gpu> CpuDevices(int count, const std::string& worker_name);

}  // namespace tessera::worker
