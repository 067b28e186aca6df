#include "services/worker/device_inventory.h"

#include <sodium.h>
#include <unistd.h>

#include <fstream>
#include <thread>

namespace tessera::worker {
namespace {

std::string MachineId() {
  std::ifstream in("/etc/machine-id");
  std::string id;
  if (in >> id) return id;
  char host[256] = {};
  gethostname(host, sizeof host - 1);
  return host;
}

uint64_t MemoryMib() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page_size = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) / (1024 * 1024) : 0;
}

}  // namespace

std::vector<v1::Gpu> CpuDevices(int count, const std::string& worker_name) {
  // A CPU "device" is named by a hash of machine, worker and index, so two workers on one machine
  // never claim the same device id.
  std::vector<v1::Gpu> devices;
  const std::string machine = MachineId();
  for (int i = 0; i < count; ++i) {
    const std::string seed = machine + "/" + worker_name + "/" + std::to_string(i);
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(digest, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
    char hex[33];
    sodium_bin2hex(hex, sizeof hex, digest, 16);
    v1::Gpu& gpu = devices.emplace_back();
    gpu.set_index(static_cast<uint32_t>(i));
    gpu.set_model("CPU");
    gpu.set_memory_mib(MemoryMib() / static_cast<uint64_t>(count > 0 ? count : 1));
    gpu.set_compute_capability("0.0");
    gpu.set_uuid(std::string("CPU-") + hex);
  }
  return devices;
}

std::vector<v1::Gpu> GpuDevices(const std::vector<kernels::CudaDevice>& cuda, int limit) {
  std::vector<v1::Gpu> devices;
  for (const kernels::CudaDevice& d : cuda) {
    if (limit > 0 && static_cast<int>(devices.size()) == limit) break;
    v1::Gpu& gpu = devices.emplace_back();
    gpu.set_index(d.ordinal);
    gpu.set_model(kernels::MarketModelName(d.name));
    gpu.set_memory_mib(d.memory_mib);
    gpu.set_compute_capability(std::to_string(d.compute_major) + "." + std::to_string(d.compute_minor));
    gpu.set_uuid(d.uuid);
    gpu.set_pci_bus_id(d.pci_bus_id);
    for (uint32_t peer : d.peers) {
      if (limit <= 0 || peer < static_cast<uint32_t>(limit)) gpu.add_peer_indexes(peer);
    }
  }
  return devices;
}

}  // namespace tessera::worker
