#include "services/scheduler/gpu_verifier.h"

#include <spdlog/spdlog.h>

#include <set>

#include "absl/strings/str_cat.h"
#include "kernels/gpu_challenge_plan.h"
#include "services/common/gpu_challenge_proof.h"
#include "services/common/worker_signing.h"

namespace tessera::scheduler_host {
namespace {

// The worker's clock and the server's tick differently; a reported time this much over the round
// trip is still a measurement.
constexpr double kClockSlackMs = 50;

v1::ServerMessage ResultMessage(int64_t challenge_id, bool passed, const std::string& reason, v1::WorkerState state) {
  v1::ServerMessage m;
  m.mutable_challenge_result()->set_challenge_id(challenge_id);
  m.mutable_challenge_result()->set_passed(passed);
  m.mutable_challenge_result()->set_reason(reason);
  m.mutable_challenge_result()->set_state(state);
  return m;
}

std::vector<uint32_t> PickRows(RandomSource& random, uint32_t n, uint32_t k) {
  std::set<uint32_t> rows;
  while (rows.size() < std::min(n, k)) rows.insert(static_cast<uint32_t>(random.Below(n)));
  std::vector<uint32_t> out(rows.begin(), rows.end());
  // The order is part of the pick: an opening must follow it.
  for (size_t i = out.size(); i > 1; --i) std::swap(out[i - 1], out[random.Below(i)]);
  return out;
}

}  // namespace

GpuVerifier::GpuVerifier(ChallengeStore& challenges, const Clock& clock, RandomSource& random, VerifierOptions options,
                         std::function<void(int64_t, v1::WorkerState)> on_pass)
    : repo_(challenges), clock_(clock), random_(random), options_(options), on_pass_(std::move(on_pass)) {}

GpuVerifier::~GpuVerifier() { Stop(); }

absl::Status GpuVerifier::Start() {
  if (absl::Status s = repo_.AbandonOpen(); !s.ok()) return s;
  {
    std::lock_guard lock(mu_);
    stop_ = false;
    tasks_.clear();
  }
  open_.clear();
  thread_ = std::thread([this] { Loop(); });
  return absl::OkStatus();
}

void GpuVerifier::Stop() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

void GpuVerifier::Post(std::function<void()> task) {
  {
    std::lock_guard lock(mu_);
    if (stop_) return;
    tasks_.push_back(std::move(task));
  }
  cv_.notify_one();
}

void GpuVerifier::Challenge(std::shared_ptr<WorkerSession> session, ChallengeReason reason) {
  Post([this, session = std::move(session), reason] { Issue(session, reason); });
}

void GpuVerifier::OnCommit(std::shared_ptr<WorkerSession> session, v1::ChallengeCommit commit) {
  Post([this, session = std::move(session), commit = std::move(commit)] { Commit(session, commit); });
}

void GpuVerifier::OnOpening(std::shared_ptr<WorkerSession> session, v1::ChallengeOpening opening) {
  Post([this, session = std::move(session), opening = std::move(opening)] { Opening(session, opening); });
}

void GpuVerifier::OnClosed(std::shared_ptr<WorkerSession> session) {
  Post([this, session = std::move(session)] { Closed(session); });
}

void GpuVerifier::Loop() {
  while (true) {
    std::deque<std::function<void()>> tasks;
    {
      std::unique_lock lock(mu_);
      cv_.wait_for(lock, std::chrono::milliseconds(100), [&] { return stop_ || !tasks_.empty(); });
      if (stop_) return;
      tasks.swap(tasks_);
    }
    for (auto& task : tasks) task();
    ExpireDeadlines();
  }
}

void GpuVerifier::Issue(const std::shared_ptr<WorkerSession>& session, ChallengeReason reason) {
  const int64_t worker_id = session->worker_id();
  if (auto it = open_.find(worker_id); it != open_.end()) {
    if (it->second.session == session) return;  // already being challenged on this stream
    (void)repo_.Abandon(it->second.state.challenge_id);
    open_.erase(it);
  }
  absl::StatusOr<ChallengeState> issued = repo_.Issue(worker_id, reason, options_.challenge_n);
  if (!issued.ok()) {
    if (reason == ChallengeReason::kRegistration) {
      spdlog::error("worker {}: no challenge issued: {}", worker_id, issued.status().ToString());
      session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GPU challenge could not be issued; reconnect"));
    }
    return;  // a re-check of a worker no longer ACTIVE is moot
  }
  Open& open = open_[worker_id];
  open = Open{.session = session, .state = *std::move(issued), .committed = false, .sent_at_ms = clock_.NowMs(), .deadline_ms = 0,
              .opened_gpus = 0, .opened = {}};
  open.opened.assign(open.state.gpus.size(), false);
  double slowest_ms = 0;
  v1::ServerMessage m;
  m.mutable_challenge()->set_challenge_id(open.state.challenge_id);
  for (const ChallengedGpuState& g : open.state.gpus) {
    const Int8Throughput* model = Int8ThroughputOf(g.model);
    if (model == nullptr) {
      FailChallenge(open, absl::StrCat("GPU ", g.index, " is a '", g.model, "', a model whose int8 throughput is unknown, so it cannot be "
                                       "verified (services/common/gpu_challenge_proof.h lists the models that can)"));
      return;
    }
    // A GPU times a batch of back-to-back products (gpu_challenge_plan.h), each of which may take
    // as long as the slowest card of its model allows; a CPU device computes one.
    const uint32_t products = g.model == "CPU" ? 1 : kernels::ChallengeProductsToTime(g.spec.n);
    slowest_ms += SlowestChallengeMs(*model, g.spec.n) * products;
    v1::GpuChallenge* c = m.mutable_challenge()->add_gpus();
    c->set_gpu_index(g.index);
    c->set_seed(g.spec.seed);
    c->set_n(g.spec.n);
  }
  const int64_t commit_within_ms = options_.overhead_ms + static_cast<int64_t>(slowest_ms) + 1;
  m.mutable_challenge()->set_commit_deadline_ms(commit_within_ms);
  open.deadline_ms = open.sent_at_ms + commit_within_ms;
  session->Send(m);
  spdlog::info("worker {}: proof-of-GPU challenge {} ({} GPUs)", worker_id, open.state.challenge_id, open.state.gpus.size());
}

GpuVerifier::Open* GpuVerifier::Find(const std::shared_ptr<WorkerSession>& session, int64_t challenge_id) {
  auto it = open_.find(session->worker_id());
  if (it == open_.end() || it->second.session != session || it->second.state.challenge_id != challenge_id) return nullptr;
  return &it->second;
}

void GpuVerifier::Commit(const std::shared_ptr<WorkerSession>& session, const v1::ChallengeCommit& commit) {
  Open* found = Find(session, commit.challenge_id());
  if (found == nullptr) return;  // not this stream's open challenge (a late answer to an abandoned one)
  Open& open = *found;
  if (open.committed) return FailChallenge(open, "committed twice");
  ChallengeState& state = open.state;
  if (!VerifyChallengeCommit(session->public_key(), state.worker_id, commit)) {
    return FailChallenge(open, "the commitment is not signed by the worker's key");
  }
  if (commit.gpus_size() != static_cast<int>(state.gpus.size())) {
    return FailChallenge(open, absl::StrCat("committed to ", commit.gpus_size(), " GPUs of the ", state.gpus.size(), " challenged"));
  }
  state.observed_ms = clock_.NowMs() - open.sent_at_ms;
  state.commit_signature = commit.signature();
  for (size_t i = 0; i < state.gpus.size(); ++i) {
    const v1::GpuCommitment& c = commit.gpus(static_cast<int>(i));
    ChallengedGpuState& g = state.gpus[i];
    if (c.gpu_index() != g.index) {
      return FailChallenge(open, absl::StrCat("commitment ", i, " is for GPU ", c.gpu_index(), ", not GPU ", g.index));
    }
    if (c.root().size() != sizeof(Hash)) return FailChallenge(open, absl::StrCat("GPU ", g.index, ": the root is not 32 bytes"));
    g.root = c.root();
    g.elapsed_us = c.elapsed_us();
  }
  open.committed = true;
  if (absl::Status s = repo_.RecordCommit(state); !s.ok()) {
    spdlog::error("worker {}: commitment not recorded: {}", state.worker_id, s.ToString());
    (void)repo_.Abandon(state.challenge_id);
    session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GPU challenge could not be recorded; reconnect"));
    open_.erase(state.worker_id);
    return;
  }
  for (const ChallengedGpuState& g : state.gpus) {
    const double elapsed_ms = static_cast<double>(g.elapsed_us) / 1e3;
    if (elapsed_ms > static_cast<double>(state.observed_ms) + kClockSlackMs) {
      return FailChallenge(open, absl::StrCat("GPU ", g.index, " reports ", elapsed_ms, " ms of compute, but the commitment came ",
                                              state.observed_ms, " ms after the challenge"));
    }
    if (absl::Status t = CheckChallengeTime(g.model, g.spec.n, elapsed_ms); !t.ok()) {
      return FailChallenge(open, absl::StrCat("GPU ", g.index, ": ", t.message()));
    }
  }
  v1::ServerMessage m;
  m.mutable_open_rows()->set_challenge_id(state.challenge_id);
  for (ChallengedGpuState& g : state.gpus) {
    g.rows = PickRows(random_, g.spec.n, options_.rows_per_gpu);
    v1::RowPick* pick = m.mutable_open_rows()->add_gpus();
    pick->set_gpu_index(g.index);
    for (uint32_t r : g.rows) pick->add_rows(r);
  }
  m.mutable_open_rows()->set_deadline_ms(options_.overhead_ms);
  open.deadline_ms = clock_.NowMs() + options_.overhead_ms;
  session->Send(m);
}

void GpuVerifier::Opening(const std::shared_ptr<WorkerSession>& session, const v1::ChallengeOpening& opening) {
  Open* found = Find(session, opening.challenge_id());
  if (found == nullptr) return;
  Open& open = *found;
  if (!open.committed) return FailChallenge(open, "opened rows before committing");
  ChallengeState& state = open.state;
  size_t i = 0;
  while (i < state.gpus.size() && state.gpus[i].index != opening.gpu_index()) ++i;
  if (i == state.gpus.size()) return FailChallenge(open, absl::StrCat("opened GPU ", opening.gpu_index(), ", which was not challenged"));
  if (open.opened[i]) return FailChallenge(open, absl::StrCat("opened GPU ", opening.gpu_index(), " twice"));
  if (!VerifyChallengeOpening(session->public_key(), state.worker_id, opening)) {
    return FailChallenge(open, absl::StrCat("the opening of GPU ", opening.gpu_index(), " is not signed by the worker's key"));
  }
  const ChallengedGpuState& g = state.gpus[i];
  if (opening.rows_size() != static_cast<int>(g.rows.size())) {
    return FailChallenge(open, absl::StrCat("GPU ", g.index, ": opened ", opening.rows_size(), " rows of the ", g.rows.size(), " picked"));
  }
  std::vector<int8_t> a, b;
  kernels::ChallengeOperands(g.spec, a, b);
  Hash root;
  std::copy(g.root.begin(), g.root.end(), root.begin());
  for (int r = 0; r < opening.rows_size(); ++r) {
    const v1::OpenedRow& row = opening.rows(r);
    if (row.row() != g.rows[static_cast<size_t>(r)]) {
      return FailChallenge(open, absl::StrCat("GPU ", g.index, ": opened row ", row.row(), " where row ", g.rows[static_cast<size_t>(r)],
                                              " was picked"));
    }
    RowOpening o{.row = row.row(), .values = {row.values().begin(), row.values().end()}, .path = {}};
    for (const std::string& h : row.path()) {
      if (h.size() != sizeof(Hash)) return FailChallenge(open, absl::StrCat("GPU ", g.index, ": a path hash is not 32 bytes"));
      std::copy(h.begin(), h.end(), o.path.emplace_back().begin());
    }
    if (absl::Status s = CheckOpening(g.spec, a, b, root, o); !s.ok()) {
      return FailChallenge(open, absl::StrCat("GPU ", g.index, ": ", s.message()));
    }
  }
  open.opened[i] = true;
  if (++open.opened_gpus == state.gpus.size()) PassChallenge(open);
}

void GpuVerifier::Closed(const std::shared_ptr<WorkerSession>& session) {
  auto it = open_.find(session->worker_id());
  if (it == open_.end() || it->second.session != session) return;
  if (absl::Status s = repo_.Abandon(it->second.state.challenge_id); !s.ok()) spdlog::warn("{}", s.ToString());
  open_.erase(it);
}

void GpuVerifier::ExpireDeadlines() {
  const int64_t now_ms = clock_.NowMs();
  std::vector<int64_t> late;
  for (const auto& [worker_id, open] : open_) {
    if (now_ms > open.deadline_ms) late.push_back(worker_id);
  }
  for (int64_t worker_id : late) {
    Open& open = open_.at(worker_id);
    FailChallenge(open, open.committed
                            ? absl::StrCat("the picked rows were not opened within ", options_.overhead_ms, " ms")
                            : absl::StrCat("no commitment within ", open.deadline_ms - open.sent_at_ms,
                                           " ms, the most the claimed GPUs may take with the allowance"));
  }
}

void GpuVerifier::FailChallenge(Open& open, const std::string& detail) {
  const int64_t worker_id = open.state.worker_id;
  spdlog::warn("worker {}: failed proof-of-GPU challenge {}: {}", worker_id, open.state.challenge_id, detail);
  // Queued before the quarantine is stored: its NOTIFY closes the stream from the scheduling thread,
  // and the worker should learn why first.
  open.session->Send(ResultMessage(open.state.challenge_id, false, detail, v1::WORKER_STATE_QUARANTINED));
  if (absl::Status s = repo_.Fail(open.state, detail); !s.ok()) {
    spdlog::error("worker {}: the failed challenge was not recorded: {}", worker_id, s.ToString());
    open.session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GPU challenge could not be recorded; reconnect"));
  } else {
    open.session->Close(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                     absl::StrCat("worker ", worker_id, " failed its proof-of-GPU challenge: ", detail)));
  }
  open_.erase(worker_id);
}

void GpuVerifier::PassChallenge(Open& open) {
  const ChallengeState& state = open.state;
  std::string detail;
  for (const ChallengedGpuState& g : state.gpus) {
    const double ms = static_cast<double>(g.elapsed_us) / 1e3;
    absl::StrAppend(&detail, detail.empty() ? "" : "; ", "GPU ", g.index, " (", g.model, "): n = ", g.spec.n, " in ", ms, " ms, ",
                    ChallengeTops(g.spec.n, ms), " int8 TOPS, ", g.rows.size(), " rows checked");
  }
  absl::StrAppend(&detail, "; round trip ", state.observed_ms, " ms");
  const int64_t worker_id = state.worker_id;
  absl::StatusOr<v1::WorkerState> now = repo_.Pass(state, detail);
  if (!now.ok()) {
    spdlog::error("worker {}: the passed challenge was not recorded: {}", worker_id, now.status().ToString());
    open.session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the GPU challenge could not be recorded; reconnect"));
    open_.erase(worker_id);
    return;
  }
  spdlog::info("worker {}: passed proof-of-GPU challenge {}: {}", worker_id, state.challenge_id, detail);
  open.session->Send(ResultMessage(state.challenge_id, true, "", *now));
  open_.erase(worker_id);
  on_pass_(worker_id, *now);
}

}  // namespace tessera::scheduler_host
