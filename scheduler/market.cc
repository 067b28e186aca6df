#include "scheduler/market.h"

#include <algorithm>
#include <limits>
#include <optional>
#include <set>

#include "base/check.h"

namespace tessera::scheduler {
namespace {

bool Contains(const std::vector<std::string>& list, const std::string& value) {
  return std::find(list.begin(), list.end(), value) != list.end();
}

// Bounded work per event: a freed GPU looks at this many queued jobs at most; Tick's full pass
// catches anything deeper.
constexpr size_t kMaxJobsPerRematch = 4'096;
// Preemption looks at every worker running SPOT jobs; a full pass tries it for this many waiting
// ON_DEMAND jobs at most (the highest-priority ones), so a long queue cannot make a pass quadratic.
constexpr int kMaxPreemptionAttemptsPerPass = 64;

}  // namespace

Market::Market(MarketOptions options) : options_(options) {}

int Market::ModelId(const std::string& model) {
  auto [it, inserted] = model_ids_.try_emplace(model, static_cast<int>(model_names_.size()));
  if (inserted) model_names_.push_back(model);
  return it->second;
}

int Market::RegionId(const std::string& region) {
  auto [it, inserted] = region_ids_.try_emplace(region, static_cast<int>(region_names_.size()));
  if (inserted) {
    all_region_ids_.push_back(static_cast<int>(region_names_.size()));
    region_names_.push_back(region);
  }
  return it->second;
}

int Market::KindId(const std::string& kind) {
  return kind_ids_.try_emplace(kind, static_cast<int>(kind_ids_.size())).first->second;
}

std::vector<int> Market::KindIds(const std::vector<std::string>& kinds) {
  std::vector<int> ids;
  for (const std::string& k : kinds) ids.push_back(KindId(k));
  std::sort(ids.begin(), ids.end());
  return ids;
}

// Whether the worker's agent runs the job's kind (an agent that never said runs every kind).
bool Market::Runs(const WorkerState& w, const JobState& j) {
  return w.kinds.empty() || std::binary_search(w.kinds.begin(), w.kinds.end(), j.kind);
}

// Keeps the worker's (model, region) entry in the index in step with its free GPUs of that model.
Market::IndexCell& Market::Cell(int model, int region) {
  if (index_.size() <= static_cast<size_t>(model)) index_.resize(static_cast<size_t>(model) + 1);
  auto& row = index_[static_cast<size_t>(model)];
  if (row.size() <= static_cast<size_t>(region)) row.resize(static_cast<size_t>(region) + 1);
  return row[static_cast<size_t>(region)];
}

const Market::IndexCell* Market::FindCell(int model, int region) const {
  if (static_cast<size_t>(model) >= index_.size()) return nullptr;
  const auto& row = index_[static_cast<size_t>(model)];
  return static_cast<size_t>(region) < row.size() ? &row[static_cast<size_t>(region)] : nullptr;
}

void Market::RecomputeBest(IndexCell& cell) {
  const uint32_t top = cell.levels.empty() ? 0 : cell.levels.rbegin()->first;
  const IndexKey none{std::numeric_limits<int64_t>::max(), 0, 0, 0};
  cell.best_from.assign(top + 1, none);
  IndexKey best = none;
  auto level = cell.levels.rbegin();
  for (uint32_t c = top + 1; c-- > 0;) {
    if (level != cell.levels.rend() && level->first == c) {
      best = std::min(best, *level->second.begin());
      ++level;
    }
    cell.best_from[c] = best;
  }
}

void Market::EraseFromIndex(int model, int region, const IndexKey& key) {
  IndexCell& cell = Cell(model, region);
  cell.free -= std::get<2>(key);
  auto& levels = cell.levels;
  auto level = levels.find(std::get<2>(key));
  level->second.erase(key);
  if (level->second.empty()) levels.erase(level);
  RecomputeBest(cell);
}

void Market::Reindex(WorkerState& w, int model) {
  if (auto it = w.indexed.find(model); it != w.indexed.end()) {
    EraseFromIndex(model, w.region, it->second);
    w.indexed.erase(it);
  }
  const uint32_t free = w.free_by_model[model];
  if (free == 0 || !Open(w)) return;
  const IndexKey key{w.spec.ask_utok_per_gpu_hour, -w.spec.reputation, free, w.spec.worker_id};
  IndexCell& cell = Cell(model, w.region);
  cell.levels[free].insert(key);
  cell.free += free;
  RecomputeBest(cell);
  w.indexed[model] = key;
}

void Market::Unindex(WorkerState& w) {
  for (const auto& [model, key] : w.indexed) EraseFromIndex(model, w.region, key);
  w.indexed.clear();
}

void Market::ReindexAll(WorkerState& w) {
  for (const auto& [model, free] : w.free_by_model) Reindex(w, model);
}

void Market::UpsertWorker(const WorkerSpec& spec) {
  auto it = workers_.find(spec.worker_id);
  if (it != workers_.end()) {
    WorkerState& w = it->second;
    Unindex(w);
    w.spec.ask_utok_per_gpu_hour = spec.ask_utok_per_gpu_hour;
    w.spec.reputation = spec.reputation;
    w.spec.policy = spec.policy;
    w.spec.job_kinds = spec.job_kinds;
    w.kinds = KindIds(spec.job_kinds);
    ReindexAll(w);
    return;
  }
  WorkerState& w = workers_[spec.worker_id];
  w.spec = spec;
  w.region = RegionId(spec.region);
  w.kinds = KindIds(spec.job_kinds);
  for (const GpuSpec& gpu : spec.gpus) {
    const int model = ModelId(gpu.model);
    model_max_memory_mib_.resize(model_names_.size(), 0);
    model_max_capability_.resize(model_names_.size(), 0);
    model_max_memory_mib_[model] = std::max(model_max_memory_mib_[model], gpu.memory_mib);
    model_max_capability_[model] = std::max(model_max_capability_[model], gpu.compute_capability);
    w.gpu_model.push_back(model);
    w.holder.push_back(0);
    w.free_by_model[model] += 1;
  }
  ReindexAll(w);
}

bool Market::SetReputation(int64_t worker_id, int32_t reputation) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return false;
  WorkerSpec spec = it->second.spec;
  spec.reputation = reputation;
  UpsertWorker(spec);
  return true;
}

std::vector<int64_t> Market::RemoveWorker(int64_t worker_id) {
  auto it = workers_.find(worker_id);
  if (it == workers_.end()) return {};
  std::set<int64_t> running(it->second.holder.begin(), it->second.holder.end());
  running.erase(0);
  std::vector<int64_t> evicted;
  for (int64_t job_id : running) {
    JobState& j = jobs_.at(job_id);
    (void)Release(j);
    jobs_.erase(job_id);
    evicted.push_back(job_id);
  }
  for (auto& [id, j] : jobs_) {
    if (j.reserved_worker == worker_id) {
      j.reserved_worker = 0;
      --reservations_;
    }
  }
  Unindex(it->second);
  workers_with_spot_.erase(worker_id);
  workers_.erase(it);
  return evicted;
}

Decisions Market::SetSchedulable(int64_t worker_id, bool schedulable, int64_t now_ms) {
  Decisions out;
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.schedulable == schedulable) return out;
  WorkerState& w = it->second;
  w.schedulable = schedulable;
  ReindexAll(w);
  if (!schedulable) return out;
  std::vector<std::pair<int64_t, int>> freed;
  for (const auto& [model, free] : w.free_by_model) {
    if (free > 0) freed.emplace_back(worker_id, model);
  }
  Rematch(freed, now_ms, out);
  return out;
}

std::vector<int64_t> Market::QueuedJobIds() const {
  std::vector<int64_t> ids;
  ids.reserve(queue_.size());
  for (const QueueKey& key : queue_) ids.push_back(std::get<3>(key));
  return ids;
}

std::vector<int64_t> Market::JobIds() const {
  std::vector<int64_t> ids;
  ids.reserve(jobs_.size());
  for (const auto& [id, job] : jobs_) ids.push_back(id);
  std::sort(ids.begin(), ids.end());  // deterministic, whatever the hash order
  return ids;
}

bool Market::AcceptsModel(const JobState& j, int model) const {
  return j.models.empty() || std::find(j.models.begin(), j.models.end(), model) != j.models.end();
}

bool Market::AcceptsRegion(const JobState& j, int region) const {
  return j.regions.empty() || std::find(j.regions.begin(), j.regions.end(), region) != j.regions.end();
}

// Everything about the pair except which GPUs are free: both sides' requirements and the price.
bool Market::PolicyAccepts(const WorkerState& w, const JobState& j) const {
  const ProviderPolicy& p = w.spec.policy;
  const JobRequirements& r = j.req;
  if (!Runs(w, j)) return false;
  if (w.spec.ask_utok_per_gpu_hour > r.bid_utok_per_gpu_hour) return false;
  if (w.spec.reputation < r.min_reputation || !AcceptsRegion(j, w.region)) return false;
  if (r.priority == Priority::kSpot && !p.accepts_spot) return false;
  if (r.needs_network && !p.allows_network) return false;
  if (!AllowsDuration(p.max_duration_ms, r.max_duration_ms)) return false;
  if (!p.allowed_accounts.empty() && !Contains(p.allowed_accounts, r.account)) return false;
  return !Contains(p.denied_accounts, r.account);
}

// No GPU of the model anywhere has the memory or compute capability the job needs: skip the model.
bool Market::ModelCanMeet(const JobState& j, int model) const {
  return static_cast<size_t>(model) < model_max_memory_mib_.size() && model_max_memory_mib_[model] >= j.req.min_memory_mib &&
         model_max_capability_[model] >= j.req.min_compute_capability;
}

bool Market::GpuMeetsJob(const WorkerState& w, uint32_t index, const JobState& j) const {
  const GpuSpec& gpu = w.spec.gpus[index];
  return AcceptsModel(j, w.gpu_model[index]) && gpu.memory_mib >= j.req.min_memory_mib &&
         gpu.compute_capability >= j.req.min_compute_capability;
}

bool Market::GpuFits(const WorkerState& w, uint32_t index, const JobState& j) const {
  if (!GpuMeetsJob(w, index, j)) return false;
  // The provider's minimum bid for this GPU model.
  auto min_bid = w.spec.policy.min_bid_by_model.find(w.spec.gpus[index].model);
  return min_bid == w.spec.policy.min_bid_by_model.end() || j.req.bid_utok_per_gpu_hour >= min_bid->second;
}

uint32_t Market::CountFittingFree(const WorkerState& w, int model, const JobState& j, uint32_t limit) const {
  uint32_t n = 0;
  for (uint32_t i = 0; i < w.holder.size() && n < limit; ++i) {
    if (w.holder[i] == 0 && w.gpu_model[i] == model && GpuFits(w, i, j)) ++n;
  }
  return n;
}

std::vector<uint32_t> Market::FittingFree(const WorkerState& w, int model, const JobState& j, uint32_t limit) const {
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < w.holder.size() && out.size() < limit; ++i) {
    if (w.holder[i] == 0 && w.gpu_model[i] == model && GpuFits(w, i, j)) out.push_back(i);
  }
  return out;
}

void Market::Enqueue(JobState& j) {
  const QueueKey key{static_cast<int>(j.req.priority), -j.req.bid_utok_per_gpu_hour, j.req.submitted_at_ms, j.req.job_id};
  j.queued = true;
  queue_.insert(key);
  for (const BucketKey& bucket : BucketsOf(j)) buckets_[bucket].insert(key);
}

// A queued job is listed under every (model, region, GPU count) it could use, so that a freed GPU
// only looks at jobs that could take it: -1 stands for "any", count 0 for a spread job.
std::vector<Market::BucketKey> Market::BucketsOf(const JobState& j) const {
  std::vector<BucketKey> out;
  const uint32_t count = j.req.same_host ? j.req.gpu_count : 0;
  const std::vector<int> any = {-1};
  for (int m : j.models.empty() ? any : j.models) {
    for (int r : j.regions.empty() ? any : j.regions) out.emplace_back(m, r, count);
  }
  return out;
}

void Market::Dequeue(JobState& j) {
  const QueueKey key{static_cast<int>(j.req.priority), -j.req.bid_utok_per_gpu_hour, j.req.submitted_at_ms, j.req.job_id};
  j.queued = false;
  queue_.erase(key);
  for (const BucketKey& bucket : BucketsOf(j)) {
    auto it = buckets_.find(bucket);
    it->second.erase(key);
    if (it->second.empty()) buckets_.erase(it);
  }
  if (j.reserved_worker != 0) {
    if (auto w = workers_.find(j.reserved_worker); w != workers_.end() && w->second.reserved_for == j.req.job_id) {
      w->second.reserved_for = 0;
      ReindexAll(w->second);
    }
    j.reserved_worker = 0;
    --reservations_;
  }
}

void Market::Take(JobState& j, std::vector<PlacedGpu> gpus, Decisions& out) {
  Dequeue(j);
  std::set<int64_t> touched;
  for (const PlacedGpu& g : gpus) {
    WorkerState& w = workers_.at(g.worker_id);
    // DESIGN.md invariant 4, checked where it is kept: a lease's GPUs are its worker's, and a GPU
    // is free before it is taken (so no GPU is ever given twice).
    TESSERA_CHECK(g.index < w.holder.size());
    TESSERA_CHECK(w.holder[g.index] == 0);
    TESSERA_CHECK(w.free_by_model[w.gpu_model[g.index]] > 0);
    w.holder[g.index] = j.req.job_id;
    w.free_by_model[w.gpu_model[g.index]] -= 1;
    touched.insert(g.worker_id);
  }
  for (int64_t id : touched) {
    WorkerState& w = workers_.at(id);
    ReindexAll(w);
    if (j.req.priority == Priority::kSpot) {
      w.spot_jobs.insert(j.req.job_id);
      workers_with_spot_.insert(id);
    }
  }
  j.gpus = std::move(gpus);
  out.placements.push_back({.job_id = j.req.job_id, .gpus = j.gpus});
}

std::vector<std::pair<int64_t, int>> Market::Release(JobState& j) {
  std::vector<std::pair<int64_t, int>> freed;
  std::set<int64_t> touched;
  for (const PlacedGpu& g : j.gpus) {
    auto it = workers_.find(g.worker_id);
    if (it == workers_.end()) continue;
    WorkerState& w = it->second;
    if (w.holder[g.index] != j.req.job_id) continue;
    w.holder[g.index] = 0;
    w.free_by_model[w.gpu_model[g.index]] += 1;
    freed.emplace_back(g.worker_id, w.gpu_model[g.index]);
    touched.insert(g.worker_id);
  }
  for (int64_t id : touched) {
    WorkerState& w = workers_.at(id);
    ReindexAll(w);
    w.spot_jobs.erase(j.req.job_id);
    if (w.spot_jobs.empty()) workers_with_spot_.erase(id);
  }
  j.gpus.clear();
  return freed;
}

bool Market::PlaceOnWorker(JobState& j, WorkerState& w, Decisions& out) {
  if (!PolicyAccepts(w, j)) return false;
  for (const auto& [model, free] : w.free_by_model) {
    if (free < j.req.gpu_count || !AcceptsModel(j, model)) continue;
    std::vector<uint32_t> fit = FittingFree(w, model, j, j.req.gpu_count);
    if (fit.size() < j.req.gpu_count) continue;
    std::vector<PlacedGpu> gpus;
    for (uint32_t i : fit) gpus.push_back({.worker_id = w.spec.worker_id, .index = i, .price_utok_per_gpu_hour = w.spec.ask_utok_per_gpu_hour});
    Take(j, std::move(gpus), out);
    return true;
  }
  return false;
}

bool Market::PlaceSameHost(JobState& j, Decisions& out) {
  const IndexKey* best = nullptr;
  int best_model = -1;
  auto consider = [&](int model, int region) {
    if (!ModelCanMeet(j, model)) return;
    const IndexCell* cell = FindCell(model, region);
    if (cell == nullptr || cell->best_from.size() <= j.req.gpu_count) return;
    // The cell's best worker with room: usually acceptable, and then no scan is needed.
    const IndexKey& head = cell->best_from[j.req.gpu_count];
    if (std::get<0>(head) > j.req.bid_utok_per_gpu_hour || (best != nullptr && head >= *best)) return;
    if (const WorkerState& w = workers_.at(std::get<3>(head));
        PolicyAccepts(w, j) && CountFittingFree(w, model, j, j.req.gpu_count) >= j.req.gpu_count) {
      best = &head;
      best_model = model;
      return;
    }
    // Levels by free-GPU count: only workers with room for the whole gang are looked at, and in
    // each level the first acceptable worker is that level's best (cheapest, most reputable).
    for (auto level = cell->levels.lower_bound(j.req.gpu_count); level != cell->levels.end(); ++level) {
      for (const IndexKey& key : level->second) {
        if (std::get<0>(key) > j.req.bid_utok_per_gpu_hour) break;
        if (best != nullptr && key >= *best) break;  // nothing better further in this level
        const WorkerState& w = workers_.at(std::get<3>(key));
        if (!PolicyAccepts(w, j) || CountFittingFree(w, model, j, j.req.gpu_count) < j.req.gpu_count) continue;
        best = &key;
        best_model = model;
        break;
      }
    }
  };
  const std::vector<int>& regions = j.regions.empty() ? all_region_ids_ : j.regions;
  if (j.models.empty()) {
    for (size_t m = 0; m < model_names_.size(); ++m) {
      for (int r : regions) consider(static_cast<int>(m), r);
    }
  } else {
    for (int m : j.models) {
      for (int r : regions) consider(m, r);
    }
  }
  if (best == nullptr) return false;
  WorkerState& w = workers_.at(std::get<3>(*best));
  std::vector<PlacedGpu> gpus;
  for (uint32_t i : FittingFree(w, best_model, j, j.req.gpu_count)) {
    gpus.push_back({.worker_id = w.spec.worker_id, .index = i, .price_utok_per_gpu_hour = w.spec.ask_utok_per_gpu_hour});
  }
  Take(j, std::move(gpus), out);
  return true;
}

// Free GPUs of the job's models in a region (an upper bound on what a spread job could get there).
uint32_t Market::FreeInRegion(const JobState& j, int region) const {
  uint32_t total = 0;
  for (size_t m = 0; m < model_names_.size(); ++m) {
    if (!AcceptsModel(j, static_cast<int>(m))) continue;
    if (const IndexCell* cell = FindCell(static_cast<int>(m), region)) total += cell->free;
  }
  return total;
}

// Free GPUs of the job's models in a region at an ask within the bid: a tighter bound than
// FreeInRegion, still without per-GPU checks.
uint32_t Market::AffordableFreeInRegion(const JobState& j, int region) const {
  uint32_t total = 0;
  for (size_t m = 0; m < model_names_.size(); ++m) {
    if (!AcceptsModel(j, static_cast<int>(m)) || !ModelCanMeet(j, static_cast<int>(m))) continue;
    const IndexCell* cell = FindCell(static_cast<int>(m), region);
    if (cell == nullptr) continue;
    for (const auto& [free, level] : cell->levels) {
      for (const IndexKey& key : level) {
        if (std::get<0>(key) > j.req.bid_utok_per_gpu_hour) break;
        total += free;
        if (total >= j.req.gpu_count) return total;
      }
    }
  }
  return total;
}

// Spread over workers of one region: the cheapest fitting GPUs of the cheapest region, all or none.
// Per region, the index sets of the accepted models are merged in ask order (a heap of cursors), so
// only as many workers are looked at as the gang needs.
bool Market::PlaceSpread(JobState& j, Decisions& out) {
  using Cursor = std::pair<std::set<IndexKey>::const_iterator, std::set<IndexKey>::const_iterator>;
  std::vector<PlacedGpu> best;
  int64_t best_cost = std::numeric_limits<int64_t>::max();
  for (size_t r = 0; r < region_names_.size(); ++r) {
    if (!AcceptsRegion(j, static_cast<int>(r)) || FreeInRegion(j, static_cast<int>(r)) < j.req.gpu_count ||
        AffordableFreeInRegion(j, static_cast<int>(r)) < j.req.gpu_count) {
      continue;
    }
    std::vector<std::pair<Cursor, int>> cursors;  // (position in a level set, model)
    for (size_t m = 0; m < model_names_.size(); ++m) {
      if (!AcceptsModel(j, static_cast<int>(m)) || !ModelCanMeet(j, static_cast<int>(m))) continue;
      const IndexCell* cell = FindCell(static_cast<int>(m), static_cast<int>(r));
      if (cell == nullptr) continue;
      for (const auto& [free, level] : cell->levels) cursors.push_back({{level.begin(), level.end()}, static_cast<int>(m)});
    }
    auto later = [](const std::pair<Cursor, int>& a, const std::pair<Cursor, int>& b) {
      return *b.first.first < *a.first.first;  // min-heap on the index key (ask first)
    };
    std::make_heap(cursors.begin(), cursors.end(), later);
    std::vector<PlacedGpu> chosen;
    int64_t cost = 0;
    while (chosen.size() < j.req.gpu_count && !cursors.empty()) {
      std::pop_heap(cursors.begin(), cursors.end(), later);
      auto& [cursor, model] = cursors.back();
      const IndexKey key = *cursor.first;
      if (std::get<0>(key) > j.req.bid_utok_per_gpu_hour) break;  // every later GPU is dearer
      const WorkerState& w = workers_.at(std::get<3>(key));
      if (PolicyAccepts(w, j)) {
        for (uint32_t i : FittingFree(w, model, j, j.req.gpu_count - static_cast<uint32_t>(chosen.size()))) {
          chosen.push_back({.worker_id = w.spec.worker_id, .index = i, .price_utok_per_gpu_hour = w.spec.ask_utok_per_gpu_hour});
          cost += w.spec.ask_utok_per_gpu_hour;
        }
      }
      if (++cursor.first == cursor.second) {
        cursors.pop_back();
      } else {
        std::push_heap(cursors.begin(), cursors.end(), later);
      }
    }
    if (chosen.size() == j.req.gpu_count && cost < best_cost) {
      best = std::move(chosen);
      best_cost = cost;
    }
  }
  if (best.empty()) return false;
  Take(j, std::move(best), out);
  return true;
}

bool Market::TryPlace(JobState& j, Decisions& out) {
  if (j.reserved_worker != 0) {
    auto it = workers_.find(j.reserved_worker);
    if (it != workers_.end() && it->second.schedulable && PlaceOnWorker(j, it->second, out)) return true;
  }
  return j.req.same_host ? PlaceSameHost(j, out) : PlaceSpread(j, out);
}

// Evicts SPOT jobs on the one worker where the fewest evictions, then the least work lost, make
// room for an ON_DEMAND job.
bool Market::TryPreempt(JobState& j, int64_t now_ms, Decisions& out) {
  if (j.req.priority != Priority::kOnDemand || !j.req.same_host) return false;
  struct Plan {
    std::tuple<size_t, int64_t, int64_t, int64_t> cost;  // evictions, work lost, ask, worker
    std::vector<int64_t> victims;
  };
  std::optional<Plan> best;
  for (int64_t worker_id : workers_with_spot_) {
    WorkerState& w = workers_.at(worker_id);
    if (!Open(w) || !PolicyAccepts(w, j)) continue;
    for (const auto& [model, free] : w.free_by_model) {
      if (!AcceptsModel(j, model)) continue;
      uint32_t available = CountFittingFree(w, model, j, j.req.gpu_count);
      // Victims holding fitting GPUs of this model: the biggest first (fewest evictions), then the
      // most recently started (least work lost).
      std::vector<std::tuple<uint32_t, int64_t, int64_t>> spot;  // -gpus, -started, job
      for (int64_t victim : w.spot_jobs) {
        uint32_t held = 0;
        for (uint32_t i = 0; i < w.holder.size(); ++i) held += (w.holder[i] == victim && w.gpu_model[i] == model && GpuFits(w, i, j)) ? 1 : 0;
        if (held > 0) spot.emplace_back(held, jobs_.at(victim).started_at_ms, victim);
      }
      std::sort(spot.begin(), spot.end(), [](const auto& a, const auto& b) {
        return std::tuple(-static_cast<int64_t>(std::get<0>(a)), -std::get<1>(a), std::get<2>(a)) <
               std::tuple(-static_cast<int64_t>(std::get<0>(b)), -std::get<1>(b), std::get<2>(b));
      });
      Plan plan;
      int64_t lost = 0;
      for (const auto& [held, started, victim] : spot) {
        if (available >= j.req.gpu_count) break;
        available += held;
        lost += (now_ms - started) * held;
        plan.victims.push_back(victim);
      }
      if (available < j.req.gpu_count) continue;
      plan.cost = {plan.victims.size(), lost, w.spec.ask_utok_per_gpu_hour, worker_id};
      if (!best || plan.cost < best->cost) best = std::move(plan);
    }
  }
  if (!best) return false;
  WorkerState& w = workers_.at(std::get<3>(best->cost));
  for (int64_t victim : best->victims) {
    JobState& v = jobs_.at(victim);
    (void)Release(v);
    Enqueue(v);
    out.preempted.push_back(victim);
  }
  return PlaceOnWorker(j, w, out);
}

// A gang job waiting too long holds the worker that will fit it soonest (most fitting GPUs free).
void Market::MaybeReserve(JobState& j, int64_t now_ms) {
  if (j.reserved_worker != 0 || !j.req.same_host || j.req.gpu_count < options_.reserve_min_gpus) return;
  if (now_ms - j.req.submitted_at_ms < options_.reserve_after_ms || reservations_ >= options_.max_reservations) return;
  WorkerState* best = nullptr;
  std::tuple<int64_t, int64_t, int64_t> best_key;
  for (auto& [id, w] : workers_) {
    if (!Open(w) || !PolicyAccepts(w, j)) continue;
    std::map<int, std::pair<uint32_t, uint32_t>> by_model;  // model → (fitting total, fitting free)
    for (uint32_t i = 0; i < w.holder.size(); ++i) {
      if (!GpuFits(w, i, j)) continue;
      auto& [total, free] = by_model[w.gpu_model[i]];
      ++total;
      free += w.holder[i] == 0 ? 1 : 0;
    }
    for (const auto& [model, counts] : by_model) {
      if (counts.first < j.req.gpu_count) continue;
      const std::tuple<int64_t, int64_t, int64_t> key{-static_cast<int64_t>(counts.second), w.spec.ask_utok_per_gpu_hour, id};
      if (best == nullptr || key < best_key) {
        best = &w;
        best_key = key;
      }
    }
  }
  if (best == nullptr) return;
  best->reserved_for = j.req.job_id;
  Unindex(*best);
  j.reserved_worker = best->spec.worker_id;
  ++reservations_;
}

Decisions Market::AddJob(const JobRequirements& job, int64_t now_ms) {
  Decisions out;
  if (jobs_.contains(job.job_id) || job.gpu_count == 0) return out;
  JobState& j = jobs_[job.job_id];
  j.req = job;
  for (const std::string& m : job.gpu_models) j.models.push_back(ModelId(m));
  for (const std::string& r : job.regions) j.regions.push_back(RegionId(r));
  j.kind = KindId(job.kind);
  Enqueue(j);
  if (!TryPlace(j, out)) (void)TryPreempt(j, now_ms, out);
  for (const JobPlacement& p : out.placements) jobs_.at(p.job_id).started_at_ms = now_ms;
  return out;
}

bool Market::RestoreRunning(const JobRequirements& job, const std::vector<PlacedGpu>& gpus, int64_t started_at_ms) {
  // Stored leases are input: one that names a GPU twice, or a taken or unknown one, is refused
  // here rather than tripping Take's checks.
  std::set<std::pair<int64_t, uint32_t>> named;
  for (const PlacedGpu& g : gpus) {
    auto w = workers_.find(g.worker_id);
    if (w == workers_.end() || g.index >= w->second.holder.size() || w->second.holder[g.index] != 0) return false;
    if (!named.emplace(g.worker_id, g.index).second) return false;
  }
  Decisions ignored;
  JobState& j = jobs_[job.job_id];
  j.req = job;
  for (const std::string& m : job.gpu_models) j.models.push_back(ModelId(m));
  for (const std::string& r : job.regions) j.regions.push_back(RegionId(r));
  j.kind = KindId(job.kind);
  Enqueue(j);
  Take(j, gpus, ignored);
  j.started_at_ms = started_at_ms;
  return true;
}

void Market::Rematch(const std::vector<std::pair<int64_t, int>>& freed, int64_t now_ms, Decisions& out) {
  // A reserved worker's GPUs go to its reservation first.
  for (const auto& [worker_id, model] : freed) {
    auto w = workers_.find(worker_id);
    if (w == workers_.end() || w->second.reserved_for == 0 || !w->second.schedulable) continue;
    JobState& j = jobs_.at(w->second.reserved_for);
    if (PlaceOnWorker(j, w->second, out)) j.started_at_ms = now_ms;
  }
  // Then the queue in priority order, among the jobs listed under a freed (model, region) and a
  // GPU count that fits the freed worker, until the freed GPUs are used up. Merges those buckets
  // lazily.
  std::set<BucketKey> wanted;
  for (const auto& [worker_id, model] : freed) {
    auto w = workers_.find(worker_id);
    if (w == workers_.end()) continue;
    const uint32_t free = w->second.free_by_model[model];
    for (int m : {model, -1}) {
      for (int r : {w->second.region, -1}) {
        for (uint32_t count = 0; count <= free; ++count) wanted.emplace(m, r, count);
      }
    }
  }
  struct QueueCursor {
    std::set<QueueKey>::const_iterator first, second;
    const std::set<QueueKey>* queue;
  };
  std::vector<QueueCursor> cursors;
  for (const BucketKey& bucket : wanted) {
    if (auto it = buckets_.find(bucket); it != buckets_.end()) cursors.push_back({it->second.begin(), it->second.end(), &it->second});
  }
  // Within a priority class the queue is ordered by bid, highest first: once a bid is below every
  // freed worker's ask, the rest of that class cannot afford them either.
  int64_t cheapest_ask = std::numeric_limits<int64_t>::max();
  for (const auto& [worker_id, model] : freed) {
    if (auto w = workers_.find(worker_id); w != workers_.end()) cheapest_ask = std::min(cheapest_ask, w->second.spec.ask_utok_per_gpu_hour);
  }
  auto freed_left = [&] {
    for (const auto& [worker_id, model] : freed) {
      auto w = workers_.find(worker_id);
      if (w != workers_.end() && Open(w->second) && w->second.free_by_model[model] > 0) return true;
    }
    return false;
  };
  int spread_tried = 0;
  for (size_t looked = 0; looked < kMaxJobsPerRematch && freed_left(); ++looked) {
    size_t pick = cursors.size();
    for (size_t c = 0; c < cursors.size(); ++c) {
      if (cursors[c].first == cursors[c].second) continue;
      if (pick == cursors.size() || *cursors[c].first < *cursors[pick].first) pick = c;
    }
    if (pick == cursors.size()) break;
    const QueueKey picked = *cursors[pick].first;
    if (-std::get<1>(picked) < cheapest_ask) {
      const QueueKey next_class{std::get<0>(picked) + 1, std::numeric_limits<int64_t>::min(),
                                std::numeric_limits<int64_t>::min(), std::numeric_limits<int64_t>::min()};
      for (QueueCursor& c : cursors) {
        if (c.first != c.second && std::get<0>(*c.first) == std::get<0>(picked)) c.first = c.queue->lower_bound(next_class);
      }
      continue;
    }
    const int64_t job_id = std::get<3>(picked);
    JobState& j = jobs_.at(job_id);
    // A job listed in several buckets is at the front of each: moving every cursor past it visits
    // it once, and keeps the cursors valid when Take() erases it from the buckets.
    for (QueueCursor& c : cursors) {
      if (c.first != c.second && std::get<3>(*c.first) == job_id) ++c.first;
    }
    // Only the freed workers changed: a job that cannot use them cannot newly fit anywhere, so a
    // cheap look at them spares the full search. A spread gang rarely completes on a freed GPU and
    // its search is the costly one: one attempt per event, the rest wait for the periodic pass.
    if (!CouldUseFreed(j, freed)) continue;
    if (!j.req.same_host && spread_tried++ > 0) continue;
    if (TryPlace(j, out)) j.started_at_ms = now_ms;
  }
}

bool Market::CouldUseFreed(const JobState& j, const std::vector<std::pair<int64_t, int>>& freed) const {
  for (const auto& [worker_id, model] : freed) {
    auto it = workers_.find(worker_id);
    if (it == workers_.end()) continue;
    const WorkerState& w = it->second;
    if (!Open(w) || !AcceptsModel(j, model) || !PolicyAccepts(w, j)) continue;
    if (!j.req.same_host) return FreeInRegion(j, w.region) >= j.req.gpu_count;  // may combine with others
    auto free = w.free_by_model.find(model);
    if (free != w.free_by_model.end() && free->second >= j.req.gpu_count &&
        CountFittingFree(w, model, j, j.req.gpu_count) >= j.req.gpu_count) {
      return true;
    }
  }
  return false;
}

void Market::FullPass(int64_t now_ms, Decisions& out) {
  std::vector<int64_t> order;
  for (const QueueKey& key : queue_) order.push_back(std::get<3>(key));
  int preemption_attempts = 0;
  for (int64_t job_id : order) {
    JobState& j = jobs_.at(job_id);
    if (!j.queued) continue;
    if (TryPlace(j, out)) {
      j.started_at_ms = now_ms;
      continue;
    }
    if (j.req.priority == Priority::kOnDemand && preemption_attempts < kMaxPreemptionAttemptsPerPass &&
        !workers_with_spot_.empty()) {
      ++preemption_attempts;
      if (TryPreempt(j, now_ms, out)) {
        j.started_at_ms = now_ms;
        continue;
      }
    }
    MaybeReserve(j, now_ms);
  }
  for (const JobPlacement& p : out.placements) jobs_.at(p.job_id).started_at_ms = now_ms;
}

Decisions Market::FinishJob(int64_t job_id, int64_t now_ms) {
  Decisions out;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.queued) return out;
  const auto freed = Release(it->second);
  jobs_.erase(it);
  Rematch(freed, now_ms, out);
  return out;
}

Decisions Market::Requeue(int64_t job_id, int64_t now_ms) {
  Decisions out;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || it->second.queued) return out;
  const auto freed = Release(it->second);
  Enqueue(it->second);
  Rematch(freed, now_ms, out);
  return out;
}

void Market::SetMaxDuration(int64_t job_id, int64_t max_duration_ms) {
  if (auto it = jobs_.find(job_id); it != jobs_.end()) it->second.req.max_duration_ms = max_duration_ms;
}

Decisions Market::RemoveJob(int64_t job_id, int64_t now_ms) {
  Decisions out;
  auto it = jobs_.find(job_id);
  if (it == jobs_.end()) return out;
  if (it->second.queued) {
    Dequeue(it->second);
    jobs_.erase(it);
    return out;
  }
  const auto freed = Release(it->second);
  jobs_.erase(it);
  Rematch(freed, now_ms, out);
  return out;
}

Decisions Market::Tick(int64_t now_ms) {
  Decisions out;
  FullPass(now_ms, out);
  return out;
}

bool Market::IsIdle(int64_t worker_id) const {
  auto it = workers_.find(worker_id);
  if (it == workers_.end() || it->second.reserved_for != 0) return false;
  return std::all_of(it->second.holder.begin(), it->second.holder.end(), [](int64_t job) { return job == 0; });
}

int64_t Market::HolderOf(int64_t worker_id, uint32_t index) const {
  auto it = workers_.find(worker_id);
  return it == workers_.end() || index >= it->second.holder.size() ? 0 : it->second.holder[index];
}

std::string Market::WhyWaiting(int64_t job_id) const {
  auto it = jobs_.find(job_id);
  if (it == jobs_.end() || !it->second.queued) return "";
  const JobState& j = it->second;
  if (j.reserved_worker != 0) {
    return "holds a reservation on worker " + std::to_string(j.reserved_worker) + "; waiting for its GPUs to free";
  }
  if (std::string unmet = UnmetRequirement(j); !unmet.empty()) return unmet;
  // Narrow down: GPUs that meet the job, then affordable ones, then those whose provider accepts
  // the job, then the free ones; the first empty step is the reason.
  uint32_t matching_gpus = 0, affordable_gpus = 0, accepted_gpus = 0, free_fit = 0, largest_fit = 0;
  int64_t lowest_ask = std::numeric_limits<int64_t>::max();
  int64_t reserved_by = 0;
  for (const auto& [id, w] : workers_) {
    if (!Runs(w, j) || w.spec.reputation < j.req.min_reputation || !AcceptsRegion(j, w.region)) continue;
    std::map<int, uint32_t> fit_free;
    uint32_t meeting = 0, fitting = 0;
    for (uint32_t i = 0; i < w.holder.size(); ++i) {
      if (!GpuMeetsJob(w, i, j)) continue;
      ++meeting;
      if (!GpuFits(w, i, j)) continue;
      ++fitting;
      if (w.holder[i] == 0 && w.schedulable) fit_free[w.gpu_model[i]] += 1;
    }
    if (meeting == 0) continue;
    matching_gpus += meeting;
    lowest_ask = std::min(lowest_ask, w.spec.ask_utok_per_gpu_hour);
    if (w.spec.ask_utok_per_gpu_hour > j.req.bid_utok_per_gpu_hour) continue;
    affordable_gpus += meeting;
    if (fitting == 0 || !PolicyAccepts(w, j)) continue;
    accepted_gpus += fitting;
    for (const auto& [model, n] : fit_free) {
      if (w.reserved_for != 0) {
        reserved_by = w.reserved_for;
        continue;
      }
      free_fit += n;
      largest_fit = std::max(largest_fit, n);
    }
  }
  if (affordable_gpus == 0) {
    return "bid " + std::to_string(j.req.bid_utok_per_gpu_hour) + " below the lowest ask " + std::to_string(lowest_ask) +
           " of " + std::to_string(matching_gpus) + " matching GPUs";
  }
  if (accepted_gpus == 0) {
    return j.req.needs_network ? "no provider's policy accepts the job (network, bid per model, duration, account or spot)"
                               : "no provider's policy accepts the job (bid per model, duration, account or spot)";
  }
  if (free_fit == 0 && reserved_by != 0) return "waiting behind reserved gang job " + std::to_string(reserved_by);
  if (j.req.same_host) {
    return "needs " + std::to_string(j.req.gpu_count) + " free GPUs on one worker; the largest free fit is " +
           std::to_string(largest_fit);
  }
  return "needs " + std::to_string(j.req.gpu_count) + " free GPUs in one region; " + std::to_string(free_fit) +
         " fit now";
}

// The job's requirements, applied one after another to every worker the market knows, busy or
// not; the first that leaves nothing (or too few GPUs for the gang) is what no worker can meet, and
// waiting alone will not change it: the reason names it and what the workers have instead.
std::string Market::UnmetRequirement(const JobState& j) const {
  const JobRequirements& r = j.req;
  const auto join = [](const std::set<std::string>& names) {
    std::string out;
    for (const std::string& n : names) out += (out.empty() ? "" : ", ") + n;
    return out.empty() ? std::string("none") : out;
  };
  std::set<std::string> kinds_seen, regions_seen, models_seen;
  int32_t best_reputation = std::numeric_limits<int32_t>::min();
  uint64_t most_memory = 0;
  uint32_t best_capability = 0, most_on_one = 0;
  std::map<int, uint32_t> by_region;
  bool runs = false, networked = false, reputable = false, in_region = false, model = false, memory = false;
  for (const auto& [id, w] : workers_) {
    for (const std::string& k : w.spec.job_kinds) kinds_seen.insert(k);
    if (!Runs(w, j)) continue;
    runs = true;
    if (r.needs_network && !w.spec.policy.allows_network) continue;
    networked = true;
    best_reputation = std::max(best_reputation, w.spec.reputation);
    if (w.spec.reputation < r.min_reputation) continue;
    reputable = true;
    regions_seen.insert(w.spec.region);
    if (!AcceptsRegion(j, w.region)) continue;
    in_region = true;
    uint32_t meeting = 0;
    for (uint32_t i = 0; i < w.holder.size(); ++i) {
      const GpuSpec& gpu = w.spec.gpus[i];
      models_seen.insert(gpu.model);
      if (!AcceptsModel(j, w.gpu_model[i])) continue;
      model = true;
      most_memory = std::max(most_memory, gpu.memory_mib);
      if (gpu.memory_mib < r.min_memory_mib) continue;
      memory = true;
      best_capability = std::max(best_capability, gpu.compute_capability);
      if (gpu.compute_capability < r.min_compute_capability) continue;
      ++meeting;
    }
    most_on_one = std::max(most_on_one, meeting);
    by_region[w.region] += meeting;
  }
  if (workers_.empty()) return "no worker is registered with the scheduler yet";
  if (!runs) return "no worker runs job kind '" + r.kind + "' (workers run: " + join(kinds_seen) + ")";
  if (!networked) return "no worker's provider allows the network the job asks for (spec.container.network)";
  if (!reputable) {
    return "no worker has reputation " + std::to_string(r.min_reputation) + " or more (the best is " +
           std::to_string(best_reputation) + ")";
  }
  if (!in_region) {
    std::set<std::string> wanted;
    for (const std::string& name : r.regions) wanted.insert(name);
    return "no worker in region " + join(wanted) + " (workers are in: " + join(regions_seen) + ")";
  }
  if (!model) {
    std::set<std::string> wanted(r.gpu_models.begin(), r.gpu_models.end());
    return "no GPU of model " + join(wanted) + " (GPUs here: " + join(models_seen) + ")";
  }
  if (!memory) {
    return "no GPU has " + std::to_string(r.min_memory_mib) + " MiB of memory (the most is " + std::to_string(most_memory) + ")";
  }
  if (most_on_one == 0) {
    return "no GPU has compute capability " + std::to_string(r.min_compute_capability / 10) + "." +
           std::to_string(r.min_compute_capability % 10) + " (the best is " + std::to_string(best_capability / 10) + "." +
           std::to_string(best_capability % 10) + ")";
  }
  if (r.same_host && most_on_one < r.gpu_count) {
    return "needs " + std::to_string(r.gpu_count) + " matching GPUs on one worker; the most any worker has is " +
           std::to_string(most_on_one);
  }
  uint32_t most_in_region = 0;
  for (const auto& [region, n] : by_region) most_in_region = std::max(most_in_region, n);
  if (!r.same_host && most_in_region < r.gpu_count) {
    return "needs " + std::to_string(r.gpu_count) + " matching GPUs in one region; the most any region has is " +
           std::to_string(most_in_region);
  }
  return "";
}

}  // namespace tessera::scheduler
