// A placement as leases: one per worker (node), ranked in the order the market chose the workers,
// node rank 0 first (a single-host job has one). The store of record writes one lease row each;
// the simulation's store does the same.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "scheduler/market_types.h"

namespace tessera::scheduler {

struct NodeLease {
  int64_t worker_id = 0;
  std::vector<uint32_t> gpu_indexes;
  int64_t price_utok_per_gpu_hour = 0;  // the worker's ask
};

inline std::vector<NodeLease> NodeLeases(const JobPlacement& placement) {
  std::vector<NodeLease> nodes;
  for (const PlacedGpu& g : placement.gpus) {
    auto it = std::find_if(nodes.begin(), nodes.end(), [&](const NodeLease& n) { return n.worker_id == g.worker_id; });
    if (it == nodes.end()) it = nodes.insert(nodes.end(), NodeLease{.worker_id = g.worker_id, .gpu_indexes = {}, .price_utok_per_gpu_hour = 0});
    it->gpu_indexes.push_back(g.index);
    it->price_utok_per_gpu_hour = g.price_utok_per_gpu_hour;
  }
  return nodes;
}

}  // namespace tessera::scheduler
