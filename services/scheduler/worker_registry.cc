#include "services/scheduler/worker_registry.h"

#include "services/common/check.h"

namespace tessera::scheduler_host {

void WorkerRegistry::Track(int64_t worker_id, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Entry& entry = workers_[worker_id];
  entry.record.worker_id = worker_id;
  entry.last_seen_ms = now_ms;
}

void WorkerRegistry::Attach(const WorkerRecord& record, const std::vector<LiveAssignment>& live,
                            const std::shared_ptr<WorkerSession>& session, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Entry& entry = workers_[record.worker_id];
  if (entry.session != nullptr && entry.session != session) {
    entry.session->Close(grpc::Status(grpc::StatusCode::ABORTED, "replaced by a newer connection of this worker"));
  }
  entry.record = record;
  entry.session = session;
  entry.last_seen_ms = now_ms;
  entry.busy.clear();
  for (const LiveAssignment& a : live) {
    for (uint32_t index : a.gpu_indexes) {
      TESSERA_CHECK(!entry.busy.contains(index));  // a GPU never holds two jobs
      entry.busy[index] = {a.job_id, a.attempt};
    }
  }
}

void WorkerRegistry::Detach(const std::shared_ptr<WorkerSession>& session) {
  std::lock_guard lock(mu_);
  auto it = workers_.find(session->worker_id());
  if (it != workers_.end() && it->second.session == session) it->second.session = nullptr;
}

void WorkerRegistry::Touch(int64_t worker_id, int64_t now_ms) {
  std::lock_guard lock(mu_);
  auto it = workers_.find(worker_id);
  if (it != workers_.end()) it->second.last_seen_ms = now_ms;
}

std::vector<scheduler::WorkerOffer> WorkerRegistry::Offers() const {
  std::lock_guard lock(mu_);
  std::vector<scheduler::WorkerOffer> offers;
  for (const auto& [id, entry] : workers_) {
    if (entry.session == nullptr || entry.record.state != v1::WORKER_STATE_ACTIVE) continue;
    scheduler::WorkerOffer offer{.worker_id = id, .ask_utok_per_gpu_hour = entry.record.ask_utok_per_gpu_hour, .free_gpus = {}};
    for (const v1::Gpu& gpu : entry.record.gpus) {
      if (!entry.busy.contains(gpu.index())) offer.free_gpus.push_back({.index = gpu.index(), .model = gpu.model()});
    }
    if (!offer.free_gpus.empty()) offers.push_back(std::move(offer));
  }
  return offers;
}

bool WorkerRegistry::Reserve(const scheduler::Placement& placement, uint32_t attempt) {
  std::lock_guard lock(mu_);
  auto it = workers_.find(placement.worker_id);
  if (it == workers_.end()) return false;
  const std::pair<int64_t, uint32_t> holder{placement.job_id, attempt};
  for (uint32_t index : placement.gpu_indexes) {
    auto busy = it->second.busy.find(index);
    if (busy != it->second.busy.end() && busy->second != holder) return false;  // a hello may have restored it already
  }
  for (uint32_t index : placement.gpu_indexes) it->second.busy[index] = {placement.job_id, attempt};
  return true;
}

void WorkerRegistry::Release(int64_t worker_id, int64_t job_id, uint32_t attempt) {
  std::lock_guard lock(mu_);
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return;
  std::erase_if(it->second.busy, [&](const auto& kv) { return kv.second == std::pair(job_id, attempt); });
}

std::vector<std::pair<int64_t, std::shared_ptr<WorkerSession>>> WorkerRegistry::TakeExpired(int64_t now_ms,
                                                                                            int64_t lease_timeout_ms) {
  std::lock_guard lock(mu_);
  std::vector<std::pair<int64_t, std::shared_ptr<WorkerSession>>> expired;
  for (auto it = workers_.begin(); it != workers_.end();) {
    if (now_ms - it->second.last_seen_ms > lease_timeout_ms) {
      expired.emplace_back(it->first, it->second.session);
      it = workers_.erase(it);
    } else {
      ++it;
    }
  }
  return expired;
}

std::shared_ptr<WorkerSession> WorkerRegistry::SessionOf(int64_t worker_id) const {
  std::lock_guard lock(mu_);
  auto it = workers_.find(worker_id);
  return it == workers_.end() ? nullptr : it->second.session;
}

void WorkerRegistry::CloseAll(const grpc::Status& status) {
  std::map<int64_t, Entry> workers;
  {
    std::lock_guard lock(mu_);
    workers.swap(workers_);
  }
  for (auto& [id, entry] : workers) {
    if (entry.session) entry.session->Close(status);
  }
}

std::vector<int64_t> WorkerRegistry::ConnectedWorkers() const {
  std::lock_guard lock(mu_);
  std::vector<int64_t> ids;
  for (const auto& [id, entry] : workers_) {
    if (entry.session != nullptr) ids.push_back(id);
  }
  return ids;
}

}  // namespace tessera::scheduler_host
