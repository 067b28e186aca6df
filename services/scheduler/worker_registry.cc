#include "services/scheduler/worker_registry.h"

#include <spdlog/spdlog.h>

namespace tessera::scheduler_host {

void WorkerRegistry::Track(int64_t worker_id, int64_t now_ms) {
  std::lock_guard lock(mu_);
  workers_.try_emplace(worker_id, Entry{.session = nullptr, .last_seen_ms = now_ms});
}

void WorkerRegistry::Attach(int64_t worker_id, const std::shared_ptr<WorkerSession>& session, int64_t now_ms) {
  std::lock_guard lock(mu_);
  Entry& entry = workers_[worker_id];
  if (entry.session != nullptr && entry.session != session) {
    entry.session->Close(grpc::Status(grpc::StatusCode::ABORTED,
                                      "replaced by a newer connection of this worker (another agent with the same identity, "
                                      "or this agent reconnecting)"));
    Replacements& r = replacements_[worker_id];
    ++r.total;
    ++r.unlogged;
    if (r.total == 1 || now_ms - r.logged_at_ms >= kReplacementLogMs) {
      spdlog::warn("worker {}: a new stream replaced its connected one ({} time(s) since the last warning, {} in all); if this "
                   "repeats, two agents share the worker's identity (a copied state dir)",
                   worker_id, r.unlogged, r.total);
      r.unlogged = 0;
      r.logged_at_ms = now_ms;
    }
  }
  entry.session = session;
  entry.last_seen_ms = now_ms;
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

int64_t WorkerRegistry::StreamReplacements(int64_t worker_id) const {
  std::lock_guard lock(mu_);
  auto it = replacements_.find(worker_id);
  return it == replacements_.end() ? 0 : it->second.total;
}

}  // namespace tessera::scheduler_host
