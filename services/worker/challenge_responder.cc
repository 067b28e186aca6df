#include "services/worker/challenge_responder.h"

#include <spdlog/spdlog.h>

#include <optional>
#include <vector>

namespace tessera::worker {
namespace {

// The most GPUs one challenge may name: one thread each (the largest machines have 8 or 16).
constexpr int kChallengedGpusMax = 64;

}  // namespace

ChallengeResponder::ChallengeResponder(kernels::ComputeBackend& backend, const WorkerKeyPair& key, int64_t worker_id,
                                       std::vector<uint32_t> devices, Sender send)
    : backend_(backend), key_(key), worker_id_(worker_id), send_(std::move(send)), thread_([this] { Loop(); }) {
  // First in the queue: every GPU's context and libraries are made now, in parallel, not inside the
  // first challenge's deadline (a challenge arriving meanwhile waits for it, as it would anyway).
  std::lock_guard lock(mu_);
  tasks_.push_back([this, devices = std::move(devices)] { backend_.WarmUp(devices); });
  cv_.notify_one();
}

ChallengeResponder::~ChallengeResponder() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void ChallengeResponder::OnChallenge(const v1::Challenge& challenge) {
  const uint64_t generation = generation_.load();
  {
    std::lock_guard lock(mu_);
    tasks_.push_back([this, challenge, generation] { Answer(challenge, generation); });
  }
  cv_.notify_one();
}

void ChallengeResponder::OnOpenRows(const v1::OpenRows& open) {
  const uint64_t generation = generation_.load();
  {
    std::lock_guard lock(mu_);
    tasks_.push_back([this, open, generation] { Open(open, generation); });
  }
  cv_.notify_one();
}

void ChallengeResponder::Reset() {
  ++generation_;
  std::lock_guard lock(mu_);
  tasks_.clear();
  tasks_.push_back([this] {
    challenge_id_ = 0;
    committed_.clear();
  });
  cv_.notify_one();
}

void ChallengeResponder::Loop() {
  while (true) {
    std::function<void()> task;
    {
      std::unique_lock lock(mu_);
      cv_.wait(lock, [&] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      task = std::move(tasks_.front());
      tasks_.pop_front();
    }
    task();
  }
}

// Every GPU at once, one thread each: run one after another, an 8-GPU machine would pay eight
// times over inside one deadline. Each GPU's time is measured on that GPU alone.
std::vector<absl::StatusOr<kernels::ChallengeRun>> ChallengeResponder::RunAll(const v1::Challenge& challenge) {
  std::vector<std::optional<absl::StatusOr<kernels::ChallengeRun>>> runs(static_cast<size_t>(challenge.gpus_size()));
  std::vector<std::thread> threads;
  for (int i = 0; i < challenge.gpus_size(); ++i) {
    threads.emplace_back([&, i] {
      const v1::GpuChallenge& g = challenge.gpus(i);
      (void)runs[static_cast<size_t>(i)].emplace(backend_.RunChallenge({.seed = g.seed(), .n = g.n()}, g.gpu_index()));
    });
  }
  for (std::thread& t : threads) t.join();
  std::vector<absl::StatusOr<kernels::ChallengeRun>> out;
  for (auto& run : runs) out.push_back(*std::move(run));
  return out;
}

void ChallengeResponder::Answer(const v1::Challenge& challenge, uint64_t generation) {
  challenge_id_ = challenge.challenge_id();
  committed_.clear();
  if (challenge.gpus_size() > kChallengedGpusMax) {
    spdlog::error("proof-of-GPU challenge {} names {} GPUs, more than the {} one answer may hold: not answered",
                  challenge.challenge_id(), challenge.gpus_size(), kChallengedGpusMax);
    return;
  }
  std::vector<absl::StatusOr<kernels::ChallengeRun>> runs = RunAll(challenge);
  if (generation != generation_.load()) return;
  v1::WorkerMessage m;
  v1::ChallengeCommit& commit = *m.mutable_challenge_commit();
  commit.set_challenge_id(challenge.challenge_id());
  for (int i = 0; i < challenge.gpus_size(); ++i) {
    const v1::GpuChallenge& g = challenge.gpus(i);
    absl::StatusOr<kernels::ChallengeRun>& run = runs[static_cast<size_t>(i)];
    if (!run.ok()) {
      // Nothing honest to commit to: the server's deadline fails the challenge, with this in our log.
      spdlog::error("proof-of-GPU challenge {}: GPU {} could not compute its product: {}", challenge.challenge_id(), g.gpu_index(),
                    run.status().ToString());
      return;
    }
    CommittedProduct& c = committed_[g.gpu_index()] = CommitProduct(std::move(run->product), g.n());
    v1::GpuCommitment* out = commit.add_gpus();
    out->set_gpu_index(g.gpu_index());
    out->set_root(std::string(c.root.begin(), c.root.end()));
    out->set_elapsed_us(static_cast<uint64_t>(run->elapsed_us + 0.5));
    spdlog::info("proof-of-GPU challenge {}: GPU {} n = {} in {:.3f} ms ({}, mean of {} products)", challenge.challenge_id(),
                 g.gpu_index(), g.n(), run->elapsed_us / 1e3, kernels::ChallengePathName(run->path), run->products_timed);
  }
  SignChallengeCommit(key_, worker_id_, &commit);
  if (generation == generation_.load()) send_(m);
}

void ChallengeResponder::Open(const v1::OpenRows& open, uint64_t generation) {
  if (open.challenge_id() != challenge_id_) return;  // not the challenge in hand
  for (const v1::RowPick& pick : open.gpus()) {
    auto it = committed_.find(pick.gpu_index());
    if (it == committed_.end()) continue;
    v1::WorkerMessage m;
    v1::ChallengeOpening& opening = *m.mutable_challenge_opening();
    opening.set_challenge_id(open.challenge_id());
    opening.set_gpu_index(pick.gpu_index());
    for (uint32_t row : pick.rows()) {
      const RowOpening o = OpenRow(it->second, row);
      v1::OpenedRow* r = opening.add_rows();
      r->set_row(row);
      r->mutable_values()->Add(o.values.begin(), o.values.end());
      for (const Hash& h : o.path) r->add_path(std::string(h.begin(), h.end()));
    }
    SignChallengeOpening(key_, worker_id_, &opening);
    if (generation != generation_.load()) return;
    send_(m);
  }
  challenge_id_ = 0;
  committed_.clear();
}

}  // namespace tessera::worker
