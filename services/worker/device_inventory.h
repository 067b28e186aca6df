// The devices a worker offers: its NVIDIA GPUs from the CUDA runtime (model, UUID, memory, compute
// capability, PCI bus id, peer access), or CPU devices (model "CPU") that run the CPU reference
// kernels where there is no usable GPU or the provider asks for the CPU.
#pragma once

#include <string>
#include <vector>

#include "kernels/cuda_devices.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

// `count` CPU devices with UUIDs unique to this machine and worker name.
std::vector<v1::Gpu> CpuDevices(int count, const std::string& worker_name);

// The first `limit` (0: all) NVIDIA GPUs as the market sees them.
std::vector<v1::Gpu> GpuDevices(const std::vector<kernels::CudaDevice>& cuda, int limit);

}  // namespace tessera::worker
