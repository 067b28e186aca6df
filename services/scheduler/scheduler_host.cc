#include "services/scheduler/scheduler_host.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <cmath>
#include <set>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"
#include "services/common/worker_signing.h"
#include "services/scheduler/hello_plan.h"
#include "services/scheduler/market_inputs.h"
#include "services/scheduler/usage_screen.h"
#include "services/common/worker_validation.h"

namespace tessera::scheduler_host {
namespace {

int64_t MicrosecondsSince(std::chrono::steady_clock::time_point started) {
  return std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - started).count();
}

v1::ServerMessage CancelMessage(int64_t job_id, uint32_t attempt, const std::string& reason) {
  v1::ServerMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_attempt(attempt);
  m.mutable_cancel()->set_reason(reason);
  return m;
}

v1::ServerMessage ExtendedMessage(int64_t job_id, uint32_t attempt, int64_t max_duration_ms) {
  v1::ServerMessage m;
  m.mutable_extended()->set_job_id(job_id);
  m.mutable_extended()->set_attempt(attempt);
  m.mutable_extended()->set_max_duration_ms(max_duration_ms);
  return m;
}

v1::ServerMessage RendezvousMessage(const RendezvousOut& r) {
  v1::ServerMessage m;
  m.mutable_rendezvous()->set_job_id(r.job_id);
  m.mutable_rendezvous()->set_attempt(r.attempt);
  m.mutable_rendezvous()->set_unique_id(r.unique_id);
  for (uint32_t n : r.node_gpu_counts) m.mutable_rendezvous()->add_node_gpu_counts(n);
  return m;
}

v1::ServerMessage AssignmentMessage(const LiveAssignment& a) {
  v1::ServerMessage m;
  *m.mutable_assignment() = a.message;
  return m;
}

// A round's commit withdraws placements that did not take effect and persists what the market
// decided instead; this bounds the repetitions (a later round picks up the rest).
constexpr int kMaxCommitRepeats = 4;
constexpr int64_t kTouchWorkersEveryMs = 5'000;

v1::ServerMessage UsageAckMessage(const v1::UsageReport& usage, bool accepted, const std::string& reason = "") {
  v1::ServerMessage ack;
  ack.mutable_usage_ack()->set_job_id(usage.job_id());
  ack.mutable_usage_ack()->set_attempt(usage.attempt());
  ack.mutable_usage_ack()->set_through_seq(usage.seq());
  ack.mutable_usage_ack()->set_accepted(accepted);
  ack.mutable_usage_ack()->set_reason(reason);
  return ack;
}

FraudSignal BadSignature(const char* kind, int64_t worker_id, int64_t job_id, uint32_t attempt, uint64_t seq, const std::string& what,
                         const std::string& signature) {
  return {.worker_id = worker_id, .kind = kind, .job_id = job_id, .attempt = attempt, .seq = seq,
          .evidence = absl::StrCat(what, signature.empty() ? " is unsigned" : " carries a signature that the worker's key does not verify",
                                   " (", signature.size(), "-byte signature ", store::Hex(signature.substr(0, 64)), ")")};
}

void Merge(scheduler::Decisions& into, scheduler::Decisions from) {
  for (auto& p : from.placements) into.placements.push_back(std::move(p));
  into.preempted.insert(into.preempted.end(), from.preempted.begin(), from.preempted.end());
}

std::vector<scheduler::PlacedGpu> PlacedGpus(const LiveAssignment& a) {
  std::vector<scheduler::PlacedGpu> gpus;
  for (uint32_t index : a.gpu_indexes) {
    gpus.push_back({.worker_id = a.worker_id, .index = index, .price_utok_per_gpu_hour = a.message.price_utok_per_gpu_hour()});
  }
  return gpus;
}

scheduler::JobRequirements RequirementsOf(const LiveAssignment& a) {
  return JobRequirementsFrom(a.job_id, a.account, a.message.spec(), a.submitted_at_ms);
}

}  // namespace

SchedulerHost::SchedulerHost(SchedulerStore& store, store::Database& db, const Clock& clock, RandomSource& random,
                             HostObserver& observer, SchedulerOptions options)
    : db_(db),
      clock_(clock),
      random_(random),
      observer_(observer),
      options_(options),
      repo_(store),
      verifier_(db, clock, random, options.verifier, [this](int64_t worker_id, v1::WorkerState state) {
        Post([&](MarketEvents& e) { e.verified.emplace_back(worker_id, state); });
      }) {}

SchedulerHost::~SchedulerHost() { Stop(); }

absl::Status SchedulerHost::Start(int64_t epoch) {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (running_) return absl::OkStatus();
  repo_.set_epoch(epoch);
  repo_.ForgetLeases();  // another leader may have ingested since this one last did
  stop_ = false;
  {
    std::lock_guard lock(events_mu_);
    stopping_ = false;
    events_ = MarketEvents{};
  }
  wait_reasons_.clear();
  // Recovery: every worker that may hold a lease gets a lease clock from now; those that do not
  // reconnect in time are expired and their jobs requeued. No worker is connected yet, so the
  // rebuild places nothing.
  scheduler::Decisions none;
  if (absl::Status s = Rebuild(none); !s.ok()) return s;
  market_stale_ = false;
  read_back_pending_ = false;  // the listener asks for it once its LISTENs are in place
  recheck_at_ms_.clear();
  if (options_.verifier.enabled) {
    if (absl::Status s = verifier_.Start(); !s.ok()) return s;
  }
  listener_ = std::make_unique<store::NotificationListener>(
      db_.url(), store::SchedulerChannels(),
      [this](const std::string& channel, const std::string& payload) { OnNotification(channel, payload); },
      // A job committed after the rebuild's snapshot but before the LISTEN took effect (or while
      // the listener reconnects) was notified to no one: once listening, the queue is compared
      // with PostgreSQL, and what was missed is placed now rather than at the periodic reconcile;
      // so are cancels, extensions and quarantines notified meanwhile.
      [this] {
        Post([](MarketEvents& e) {
          e.reconcile = true;
          e.read_back_notified = true;
        });
      });
  ingest_thread_ = std::thread([this] { IngestLoop(); });
  scheduling_thread_ = std::thread([this] { SchedulingLoop(); });
  running_ = true;
  return absl::OkStatus();
}

void SchedulerHost::Stop() {
  std::lock_guard lifecycle(lifecycle_mu_);
  if (!running_.exchange(false)) return;
  stop_ = true;
  {
    std::lock_guard lock(events_mu_);
    stopping_ = true;
  }
  events_cv_.notify_all();
  inbound_cv_.notify_all();
  for (std::thread* t : {&ingest_thread_, &scheduling_thread_}) {
    if (t->joinable()) t->join();
  }
  verifier_.Stop();
  listener_.reset();
  registry_.CloseAll(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler stepped down; reconnect to the leader"));
  market_.reset();
  std::lock_guard lock(inbound_mu_);
  inbound_.clear();
}

void SchedulerHost::OnMessage(const std::shared_ptr<WorkerSession>& session, v1::WorkerMessage message) {
  if (!running_) {
    session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "this scheduler is a standby; connect to the leader"));
    return;
  }
  {
    std::lock_guard lock(inbound_mu_);
    if (inbound_.size() >= options_.max_inbound_messages) {
      session->Close(ToGrpcStatus(ResourceExhaustedWithRetry("scheduler inbound queue is full; reconnect later", 1'000)));
      return;
    }
    inbound_.push_back({session, std::move(message)});
  }
  inbound_cv_.notify_one();
}

void SchedulerHost::OnClosed(const std::shared_ptr<WorkerSession>& session) {
  registry_.Detach(session);
  if (options_.verifier.enabled && session->worker_id() != 0) verifier_.OnClosed(session);
  if (const int64_t worker_id = session->worker_id(); worker_id != 0) {
    Post([&](MarketEvents& e) { e.disconnected.push_back(worker_id); });
  }
}

void SchedulerHost::Post(const std::function<void(MarketEvents&)>& add) {
  {
    std::lock_guard lock(events_mu_);
    add(events_);
  }
  events_cv_.notify_one();
}

void SchedulerHost::OnNotification(const std::string& channel, const std::string& payload) {
  const std::optional<store::Notification> note = store::DecodeNotification(channel, payload);
  if (!note) {
    // Not a payload this build knows: compare what it follows with PostgreSQL instead.
    spdlog::warn("notification on {} not understood ({}); reconciling", channel, payload);
    Post([](MarketEvents& e) {
      e.reconcile = true;
      e.read_back_notified = true;
    });
    return;
  }
  Post([&](MarketEvents& e) {
    if (const auto* n = std::get_if<store::JobSubmitted>(&*note)) e.submitted.push_back(n->job_id);
    if (const auto* n = std::get_if<store::JobCancelled>(&*note)) e.cancelled.push_back(*n);
    if (const auto* n = std::get_if<store::JobExtended>(&*note)) e.extended.push_back(*n);
    if (const auto* n = std::get_if<store::WorkerQuarantined>(&*note)) e.quarantined.push_back(n->worker_id);
  });
}

// ---- Ingest ----

void SchedulerHost::IngestLoop() {
  while (!stop_) {
    std::vector<Inbound> batch;
    {
      std::unique_lock lock(inbound_mu_);
      inbound_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return !inbound_.empty() || stop_; });
      while (!inbound_.empty() && batch.size() < options_.max_ingest_batch) {
        batch.push_back(std::move(inbound_.front()));
        inbound_.pop_front();
      }
    }
    if (batch.empty()) continue;
    const auto started = std::chrono::steady_clock::now();
    ProcessBatch(batch);
    observer_.OnIngestBatch({.messages = batch.size(), .latency_us = MicrosecondsSince(started)});
  }
}

void SchedulerHost::ProcessBatch(std::vector<Inbound>& batch) {
  const int64_t now_ms = clock_.NowMs();
  Segment segment;
  for (Inbound& in : batch) {
    v1::WorkerMessage& m = in.message;
    if (m.has_hello()) {
      // The scheduling thread handles the hello (it owns the market). The stream's later messages
      // go on here under the claimed id: what they change is checked against its live leases.
      if (in.session->worker_id() != 0) {
        in.session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "hello was already sent on this stream"));
        continue;
      }
      if (m.hello().worker_id() <= 0) {
        in.session->Close(InvalidArgumentStatus("hello.worker_id must be a registered worker id"));
        continue;
      }
      if (m.hello().has_policy()) {
        if (absl::Status s = ValidateProviderPolicy(m.hello().policy()); !s.ok()) {
          in.session->Close(ToGrpcStatus(s));
          continue;
        }
      }
      if (absl::Status s = ValidateWorkerProfile("hello.", m.hello().name(), m.hello().region(), m.hello().ask_utok_per_gpu_hour(),
                                                 {m.hello().job_kinds().begin(), m.hello().job_kinds().end()});
          !s.ok()) {
        in.session->Close(ToGrpcStatus(s));
        continue;
      }
      // Before any later message of the stream is taken under the claimed id: is it the stream
      // key's provider's machine, and with which key does it sign?
      absl::StatusOr<WorkerIdentity> identity = repo_.Identify(m.hello().worker_id(), in.session->provider_account_id());
      if (!identity.ok()) {
        in.session->Close(ToGrpcStatus(identity.status()));
        continue;
      }
      in.session->set_public_key(std::move(identity->public_key));
      in.session->set_worker_id(m.hello().worker_id());
      Post([&](MarketEvents& e) { e.hellos.push_back(std::move(in)); });
      continue;
    }
    const int64_t worker_id = in.session->worker_id();
    if (worker_id == 0) {
      in.session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the first message on a stream must be hello"));
      continue;
    }
    registry_.Touch(worker_id, now_ms);
    switch (m.body_case()) {
      case v1::WorkerMessage::kStarted:
        segment.events.started.emplace_back(worker_id, m.started());
        break;
      case v1::WorkerMessage::kProgress:
        segment.events.progress.emplace_back(worker_id, m.progress());
        break;
      case v1::WorkerMessage::kUsage:
        if (!PlausibleUsage(m.usage())) {
          in.session->Send(UsageAckMessage(m.usage(), false, "implausible report"));  // refused at the edge, never stored
          break;
        }
        if (!VerifyUsage(in.session->public_key(), worker_id, m.usage())) {
          const v1::UsageReport& u = m.usage();
          segment.signals.push_back(BadSignature("BAD_SIGNATURE", worker_id, u.job_id(), u.attempt(), u.seq(),
                                                 absl::StrCat("usage report ", u.seq(), " of job ", u.job_id()), u.signature()));
          in.session->Send(UsageAckMessage(u, false, "bad signature"));
          break;
        }
        segment.usage.push_back({.worker_id = worker_id, .report = m.usage()});
        segment.usage_sessions.push_back(in.session);
        break;
      case v1::WorkerMessage::kFinished:
        if (!VerifyFinished(in.session->public_key(), worker_id, m.finished())) {
          const v1::JobFinished& f = m.finished();
          segment.signals.push_back(BadSignature("BAD_RESULT_SIGNATURE", worker_id, f.job_id(), f.attempt(), 0,
                                                 absl::StrCat("the result of job ", f.job_id(), " attempt ", f.attempt()), f.signature()));
          // Not applied and not acknowledged: a worker that cannot sign its results cannot finish jobs.
          in.session->Close(grpc::Status(grpc::StatusCode::PERMISSION_DENIED,
                                         absl::StrCat("the result of job ", f.job_id(), " is not signed by this worker's key")));
          break;
        }
        segment.events.finished.emplace_back(worker_id, m.finished());
        segment.finished_sessions.push_back(in.session);
        break;
      case v1::WorkerMessage::kRendezvousOffer:
        ForwardRendezvous(worker_id, m.rendezvous_offer());
        break;
      case v1::WorkerMessage::kDrain:
        Post([&](MarketEvents& e) { e.draining.emplace_back(in.session, m.drain().reason()); });
        break;
      case v1::WorkerMessage::kChallengeCommit:
        if (options_.verifier.enabled) verifier_.OnCommit(in.session, std::move(*m.mutable_challenge_commit()));
        break;
      case v1::WorkerMessage::kChallengeOpening:
        if (options_.verifier.enabled) verifier_.OnOpening(in.session, std::move(*m.mutable_challenge_opening()));
        break;
      default:
        break;  // heartbeat: the touch above is all it does
    }
  }
  FlushSegment(segment);
}

void SchedulerHost::ForwardRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) {
  if (offer.unique_id().empty() || offer.unique_id().size() > 256) {
    spdlog::warn("worker {}: rendezvous offer for job {} with a {}-byte id ignored (1..256)", worker_id, offer.job_id(),
                 offer.unique_id().size());
    return;
  }
  absl::StatusOr<RendezvousOut> kept = repo_.RecordRendezvous(worker_id, offer);
  if (!kept.ok()) {
    spdlog::warn("worker {}: rendezvous offer ignored: {}", worker_id, kept.status().ToString());
    return;
  }
  for (int64_t peer : kept->recipients) {
    if (auto session = registry_.SessionOf(peer)) session->Send(RendezvousMessage(*kept));
  }
}

void SchedulerHost::FlushSegment(Segment& segment) {
  if (segment.empty()) return;
  if (absl::Status s = repo_.RecordFraudSignals(segment.signals); !s.ok()) spdlog::error("fraud signals not recorded: {}", s.ToString());
  if (!segment.usage.empty()) {
    absl::StatusOr<std::vector<UsageOutcome>> outcomes = repo_.IngestUsage(segment.usage);
    if (!outcomes.ok()) {
      // Nothing was acknowledged: closing the streams makes the agents reconnect and resend.
      spdlog::error("usage ingest failed: {}", outcomes.status().ToString());
      for (auto& s : segment.usage_sessions) s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "usage not stored; resend"));
    } else {
      for (size_t i = 0; i < outcomes->size(); ++i) {
        segment.usage_sessions[i]->Send(UsageAckMessage(segment.usage[i].report, (*outcomes)[i].stored, (*outcomes)[i].reason));
      }
    }
  }
  const bool state_changes = !segment.events.started.empty() || !segment.events.progress.empty() || !segment.events.finished.empty();
  if (state_changes) {
    absl::StatusOr<AppliedEvents> applied = repo_.ApplyStateEvents(segment.events);
    if (!applied.ok()) {
      spdlog::error("job events failed: {}", applied.status().ToString());
      for (auto& s : segment.finished_sessions) s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "result not stored; resend"));
    } else {
      // Every finish is acknowledged: recorded now, or its lease had already ended (cancel,
      // expiry) and the report has nothing left to change.
      for (size_t i = 0; i < segment.events.finished.size(); ++i) {
        const v1::JobFinished& f = segment.events.finished[i].second;
        v1::ServerMessage ack;
        ack.mutable_finished_ack()->set_job_id(f.job_id());
        ack.mutable_finished_ack()->set_attempt(f.attempt());
        segment.finished_sessions[i]->Send(ack);
      }
      for (const Requeued& r : applied->cancelled) {
        if (auto session = registry_.SessionOf(r.worker_id)) session->Send(CancelMessage(r.job_id, r.attempt, "the job failed on another of its workers"));
      }
      if (!applied->ended.empty()) {
        Post([&](MarketEvents& e) { e.finished.insert(e.finished.end(), applied->ended.begin(), applied->ended.end()); });
      }
    }
  }
  segment = Segment{};
}

// ---- Scheduling ----

void SchedulerHost::SchedulingLoop() {
  const auto wake_every = std::chrono::milliseconds(std::clamp<int64_t>(options_.lease_timeout_ms / 8, 20, 250));
  int64_t next_tick_ms = clock_.NowMs();
  int64_t next_reconcile_ms = next_tick_ms + options_.reconcile_interval_ms;
  int64_t next_touch_ms = next_tick_ms + kTouchWorkersEveryMs;
  int64_t next_reputation_ms = next_tick_ms + options_.reputation_interval_ms;
  while (true) {
    MarketEvents events;
    {
      std::unique_lock lock(events_mu_);
      events_cv_.wait_for(lock, wake_every, [&] { return !events_.empty() || stopping_; });
      if (stopping_) return;
      std::swap(events, events_);
    }
    const int64_t now_ms = clock_.NowMs();
    const auto round_started = std::chrono::steady_clock::now();
    scheduler::Decisions decisions;
    if (market_stale_) {
      if (absl::Status s = Rebuild(decisions); !s.ok()) {
        spdlog::warn("rebuilding the market: {}", s.ToString());
        // The events are not lost: the rebuild reads them all from PostgreSQL, except hellos and
        // streams, which must be handled in any case.
        events.submitted.clear();
        events.finished.clear();
      } else {
        market_stale_ = false;
      }
    }
    if (market_stale_) {
      // Without a market only streams are looked after; the rest is in PostgreSQL for the rebuild.
      for (Inbound& in : events.hellos) in.session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "scheduler is recovering; reconnect"));
      for (const store::JobCancelled& c : events.cancelled) SendCancel(c);
      for (const store::JobExtended& x : events.extended) SendExtension(x);
      if (events.read_back_notified) read_back_pending_ = true;  // once rebuilt
      continue;
    }
    // Asked for, or left over from a round that could not do it (a rebuild, a failed read): then at
    // the periodic reconcile, so that an unreachable database is not asked again at once.
    if (events.read_back_notified) read_back_pending_ = true;
    if (read_back_pending_ && (events.read_back_notified || now_ms >= next_reconcile_ms)) read_back_pending_ = !ReadBackNotified(events);
    ApplyEvents(events, decisions);
    ExpireLeases(decisions);
    const bool tick = now_ms >= next_tick_ms;
    if (tick) {
      CancelExpiredQueued(now_ms, decisions);
      StartDueRechecks(now_ms, decisions);
      Merge(decisions, market_->Tick(now_ms));
      next_tick_ms = now_ms + options_.tick_interval_ms;
    }
    if (events.reconcile || now_ms >= next_reconcile_ms) {
      Reconcile(decisions);
      next_reconcile_ms = now_ms + options_.reconcile_interval_ms;
    }
    // A market found inconsistent this round decides nothing; the next round rebuilds it.
    RoundReport round;
    if (!market_stale_) std::tie(round.placements, round.preemptions) = Commit(std::move(decisions));
    if (!market_stale_) {
      round.queued_jobs = market_->queued_jobs();
      round.latency_us = MicrosecondsSince(round_started);
      observer_.OnRound(round);
    }
    if (tick && !market_stale_) RefreshWaitReasons();
    if (now_ms >= next_reputation_ms && !market_stale_) {
      next_reputation_ms = now_ms + options_.reputation_interval_ms;
      RefreshReputations();
    }
    if (now_ms >= next_touch_ms) {
      next_touch_ms = now_ms + kTouchWorkersEveryMs;
      if (absl::Status s = repo_.TouchWorkers(registry_.ConnectedWorkers()); !s.ok()) spdlog::warn("{}", s.ToString());
    }
  }
}

void SchedulerHost::RefreshReputations() {
  absl::StatusOr<std::vector<std::pair<int64_t, int32_t>>> changed = repo_.RefreshReputations();
  if (!changed.ok()) {
    spdlog::warn("reputation refresh: {}", changed.status().ToString());
    return;
  }
  for (const auto& [worker_id, reputation] : *changed) (void)market_->SetReputation(worker_id, reputation);
}

void SchedulerHost::ApplyEvents(MarketEvents& events, scheduler::Decisions& decisions) {
  const int64_t now_ms = clock_.NowMs();
  for (Inbound& in : events.hellos) HandleHello(in.session, in.message.hello(), decisions);
  for (int64_t worker_id : events.quarantined) {
    // No new jobs from now on; its stream ends (it cannot reconnect), so its leases expire and their
    // jobs run elsewhere.
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
    if (auto session = registry_.SessionOf(worker_id)) {
      session->Close(grpc::Status(grpc::StatusCode::PERMISSION_DENIED, absl::StrCat("worker ", worker_id, " is quarantined")));
    }
  }
  for (const auto& [session, reason] : events.draining) {
    // Its running jobs go on; it gets no new one. The state survives its reconnects (their hellos
    // say draining) and a scheduler restart (PostgreSQL has it). A drain from a stream that a newer
    // one replaced is stale: the newer hello said whether the agent drains.
    const int64_t worker_id = session->worker_id();
    if (registry_.SessionOf(worker_id) != session) continue;
    absl::StatusOr<bool> drained = repo_.DrainWorker(worker_id, reason);
    if (!drained.ok()) {
      spdlog::warn("worker {}: drain not recorded: {}", worker_id, drained.status().ToString());
      continue;
    }
    if (*drained) spdlog::info("worker {} is draining: {}", worker_id, reason.empty() ? "its agent asked" : reason);
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
  }
  for (int64_t worker_id : events.disconnected) {
    // A newer stream may already have replaced the closed one.
    if (registry_.SessionOf(worker_id) == nullptr) {
      Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
      recheck_at_ms_.erase(worker_id);
    }
  }
  for (const auto& [worker_id, state] : events.verified) {
    // Its hardware is what it claims: it joins the market (unless it went away meanwhile).
    if (registry_.SessionOf(worker_id) == nullptr || !market_->HasWorker(worker_id)) continue;
    Merge(decisions, market_->SetSchedulable(worker_id, state == v1::WORKER_STATE_ACTIVE, now_ms));
    if (state == v1::WORKER_STATE_ACTIVE) ScheduleRecheck(worker_id, now_ms);
  }
  for (const store::JobCancelled& c : events.cancelled) {
    SendCancel(c);
    Merge(decisions, market_->RemoveJob(c.job_id, now_ms));
  }
  for (const store::JobExtended& x : events.extended) {
    SendExtension(x);
    market_->SetMaxDuration(x.job_id, x.max_duration_ms);
  }
  for (int64_t job_id : events.finished) Merge(decisions, market_->FinishJob(job_id, now_ms));
  AddQueuedJobs(events.submitted, decisions);
}

bool SchedulerHost::ReadBackNotified(MarketEvents& events) {
  absl::StatusOr<NotifiedState> state = repo_.ReadNotifiedState(market_->JobIds(), registry_.ConnectedWorkers());
  if (!state.ok()) {
    spdlog::warn("reading back notified cancels, extensions and quarantines: {}; trying again at the next reconcile",
                 state.status().ToString());
    return false;
  }
  // Applying one twice is harmless (a worker ignores a cancel or an extension of a run it does not
  // have, the market one of a job it no longer holds), so a notification heard too is no matter.
  size_t missed = 0;
  events.cancelled.insert(events.cancelled.end(), state->cancelled.begin(), state->cancelled.end());
  missed += state->cancelled.size();
  for (const store::JobExtended& limit : state->limits) {
    const scheduler::JobRequirements* job = market_->FindJob(limit.job_id);
    if (job == nullptr || job->max_duration_ms == limit.max_duration_ms) continue;
    events.extended.push_back(limit);
    ++missed;
  }
  for (int64_t worker_id : state->quarantined) {
    events.quarantined.push_back(worker_id);
    ++missed;
  }
  if (missed > 0) spdlog::warn("{} cancels, extensions or quarantines were notified while not listening; applied now", missed);
  return true;
}

void SchedulerHost::SendExtension(const store::JobExtended& x) {
  if (x.worker_id == 0) return;  // not running: the limit travels with its next assignment
  if (auto session = registry_.SessionOf(x.worker_id)) session->Send(ExtendedMessage(x.job_id, x.attempt, x.max_duration_ms));
}

void SchedulerHost::SendCancel(const store::JobCancelled& c) {
  if (c.worker_id == 0) return;  // it was still queued
  if (auto session = registry_.SessionOf(c.worker_id)) session->Send(CancelMessage(c.job_id, c.attempt, "cancelled by the customer"));
}

void SchedulerHost::HandleHello(const std::shared_ptr<WorkerSession>& session, const v1::Hello& hello,
                                scheduler::Decisions& decisions) {
  // Everything PostgreSQL holds of the reconnect, decided and written in one transaction; then the
  // market follows it.
  absl::StatusOr<AppliedHello> applied = repo_.ApplyHello(hello, options_.verifier.enabled);
  if (!applied.ok()) {
    session->Close(ToGrpcStatus(applied.status()));
    return;
  }
  const int64_t now_ms = clock_.NowMs();
  const WorkerRecord& record = applied->worker;
  for (const Requeued& r : applied->requeued) {
    if (r.worker_id != record.worker_id) SendLeaseLost(r);
    Merge(decisions, r.failed ? market_->RemoveJob(r.job_id, now_ms) : market_->Requeue(r.job_id, now_ms));
  }
  // A resumed lease's job is queued in the market: it is rebuilt from PostgreSQL.
  for (const auto& [job_id, attempt] : applied->resumed) {
    spdlog::info("job {} attempt {}: lease resumed on worker {} after its reconnect", job_id, attempt, record.worker_id);
    market_stale_ = true;
  }
  market_->UpsertWorker(WorkerSpecFrom(record));
  CheckMarketHolds(applied->keep);
  CheckMarketHolds(applied->resend);
  registry_.Attach(record.worker_id, session, now_ms);
  if (!market_stale_) {
    Merge(decisions, market_->SetSchedulable(record.worker_id, record.state == v1::WORKER_STATE_ACTIVE, now_ms));
  }

  SendReconnectMessages(*session, *applied);
  if (record.state == v1::WORKER_STATE_PENDING_VERIFICATION) {
    // It proves its hardware before it gets a job: a never-verified machine, or one whose re-check
    // was interrupted.
    verifier_.Challenge(session, record.verified ? ChallengeReason::kRecheck : ChallengeReason::kRegistration);
  } else if (record.state == v1::WORKER_STATE_ACTIVE) {
    ScheduleRecheck(record.worker_id, now_ms);
  }
  spdlog::info("worker {} connected ({} GPUs, {} jobs kept, {} resent, {} requeued)", record.worker_id, record.gpus.size(),
               applied->keep.size(), applied->resend.size(), applied->requeued.size());
}

void SchedulerHost::CheckMarketHolds(const std::vector<LiveAssignment>& leases) {
  for (const LiveAssignment& a : leases) {
    for (uint32_t index : a.gpu_indexes) {
      if (market_->HolderOf(a.worker_id, index) != a.job_id && !market_stale_) {
        spdlog::warn("job {} holds GPU {} of worker {} unknown to the market; rebuilding it", a.job_id, index, a.worker_id);
        market_stale_ = true;
      }
    }
  }
}

void SchedulerHost::SendReconnectMessages(WorkerSession& session, const AppliedHello& hello) {
  v1::ServerMessage welcome;
  welcome.mutable_welcome()->set_worker_id(hello.worker.worker_id);
  welcome.mutable_welcome()->set_lease_timeout_ms(options_.lease_timeout_ms);
  welcome.mutable_welcome()->set_heartbeat_interval_ms(std::max<int64_t>(100, options_.lease_timeout_ms / 4));
  session.Send(welcome);
  for (const auto& [job_id, attempt] : hello.not_live) session.Send(CancelMessage(job_id, attempt, "lease is no longer live"));
  for (const LiveAssignment& a : hello.resend) session.Send(AssignmentMessage(a));
  // A job kept across the reconnect may have been extended meanwhile: the limit in force again.
  for (const LiveAssignment& a : hello.keep) session.Send(ExtendedMessage(a.job_id, a.attempt, a.message.spec().max_duration_ms()));
  // And a worker waiting for its jobs' communicator ids gets them again.
  for (const RendezvousOut& r : hello.rendezvous) session.Send(RendezvousMessage(r));
}

void SchedulerHost::ScheduleRecheck(int64_t worker_id, int64_t now_ms) {
  if (!options_.verifier.enabled || options_.verifier.recheck_mean_interval_ms <= 0) return;
  // Exponential gaps: when the next re-check comes cannot be told from when the last one came.
  const double gap_ms = -std::log1p(-random_.Unit()) * static_cast<double>(options_.verifier.recheck_mean_interval_ms);
  recheck_at_ms_[worker_id] = now_ms + static_cast<int64_t>(gap_ms);
}

void SchedulerHost::StartDueRechecks(int64_t now_ms, scheduler::Decisions& decisions) {
  for (auto it = recheck_at_ms_.begin(); it != recheck_at_ms_.end();) {
    const auto [worker_id, due_ms] = *it;
    std::shared_ptr<WorkerSession> session = registry_.SessionOf(worker_id);
    if (session == nullptr) {
      it = recheck_at_ms_.erase(it);
      continue;
    }
    // A busy worker is re-checked once it is idle: a challenge never competes with a customer's job.
    if (due_ms > now_ms || !market_->IsIdle(worker_id)) {
      ++it;
      continue;
    }
    Merge(decisions, market_->SetSchedulable(worker_id, false, now_ms));
    verifier_.Challenge(session, ChallengeReason::kRecheck);
    it = recheck_at_ms_.erase(it);
  }
}

void SchedulerHost::ExpireLeases(scheduler::Decisions& decisions) {
  const int64_t now_ms = clock_.NowMs();
  auto expired = registry_.TakeExpired(now_ms, options_.lease_timeout_ms);
  if (expired.empty()) return;
  std::vector<int64_t> ids;
  for (const auto& [id, session] : expired) ids.push_back(id);
  auto requeued = repo_.Requeue({}, ids, absl::StrCat("lease expired (worker silent for more than ", options_.lease_timeout_ms, " ms)"));
  if (!requeued.ok()) {
    spdlog::error("expiring leases: {}", requeued.status().ToString());
    for (int64_t id : ids) registry_.Track(id, now_ms - options_.lease_timeout_ms - 1);  // again next round
    return;
  }
  std::set<int64_t> gone(ids.begin(), ids.end());
  for (const Requeued& r : *requeued) {
    if (!gone.contains(r.worker_id)) SendLeaseLost(r);
  }
  for (const auto& [id, session] : expired) {
    // The market forgets the worker and its jobs; those requeued come back from PostgreSQL.
    (void)market_->RemoveWorker(id);
    if (session) session->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "lease expired"));
  }
  std::set<int64_t> back;
  for (const Requeued& r : *requeued) {
    if (!r.failed) back.insert(r.job_id);
  }
  spdlog::info("{} worker lease(s) expired; {} job(s) requeued", ids.size(), back.size());
  observer_.OnLeasesExpired(ids.size(), back.size());
  AddQueuedJobs({back.begin(), back.end()}, decisions);
}

void SchedulerHost::CancelExpiredQueued(int64_t now_ms, scheduler::Decisions& decisions) {
  absl::StatusOr<std::vector<int64_t>> cancelled = repo_.CancelExpiredQueued(256);
  if (!cancelled.ok()) {
    spdlog::warn("cancelling jobs past their queue timeout: {}", cancelled.status().ToString());
    return;
  }
  for (int64_t job_id : *cancelled) Merge(decisions, market_->RemoveJob(job_id, now_ms));
  if (!cancelled->empty()) spdlog::info("{} job(s) cancelled at their queue timeout", cancelled->size());
}

void SchedulerHost::SendLeaseLost(const Requeued& r) {
  if (auto session = registry_.SessionOf(r.worker_id)) {
    session->Send(CancelMessage(r.job_id, r.attempt, "the job lost another of its workers; it is requeued"));
  }
}

size_t SchedulerHost::AddQueuedJobs(const std::vector<int64_t>& job_ids, scheduler::Decisions& decisions) {
  std::vector<int64_t> unknown;
  for (int64_t id : job_ids) {
    if (!market_->HasJob(id)) unknown.push_back(id);
  }
  if (unknown.empty()) return 0;
  auto jobs = repo_.LoadQueuedJobs(unknown);
  if (!jobs.ok()) {
    // The periodic reconcile finds them in PostgreSQL: asking again at once would only spin this
    // loop against a database that cannot answer.
    spdlog::warn("loading queued jobs: {}; they are placed after the next reconcile", jobs.status().ToString());
    return 0;
  }
  const int64_t now_ms = clock_.NowMs();
  for (const scheduler::JobRequirements& job : *jobs) Merge(decisions, market_->AddJob(job, now_ms));
  return jobs->size();
}

void SchedulerHost::Reconcile(scheduler::Decisions& decisions) {
  auto ids = repo_.QueuedJobIds();
  if (!ids.ok()) {
    spdlog::warn("reconciling the queue: {}", ids.status().ToString());
    return;
  }
  const std::set<int64_t> queued(ids->begin(), ids->end());
  const int64_t now_ms = clock_.NowMs();
  size_t dropped = 0;
  for (int64_t id : market_->QueuedJobIds()) {
    if (!queued.contains(id)) {
      Merge(decisions, market_->RemoveJob(id, now_ms));
      ++dropped;
    }
  }
  const size_t added = AddQueuedJobs(*ids, decisions);
  if (dropped > 0 || added > 0) spdlog::info("queue reconciled with PostgreSQL: {} dropped, {} added", dropped, added);
}

absl::Status SchedulerHost::Rebuild(scheduler::Decisions& decisions) {
  absl::StatusOr<MarketSnapshot> snapshot = repo_.LoadMarket();
  if (!snapshot.ok()) return snapshot.status();
  market_ = std::make_unique<scheduler::Market>(options_.market);
  decisions = {};
  const int64_t now_ms = clock_.NowMs();
  for (const WorkerRecord& w : snapshot->workers) {
    market_->UpsertWorker(WorkerSpecFrom(w));
    (void)market_->SetSchedulable(w.worker_id, false, now_ms);
    registry_.Track(w.worker_id, now_ms);
  }
  // A job's leases (one per worker it spans) restore together.
  std::map<int64_t, std::vector<const LiveAssignment*>> by_job;
  for (const LiveAssignment& a : snapshot->live) by_job[a.job_id].push_back(&a);
  for (const auto& [job_id, leases] : by_job) {
    std::vector<scheduler::PlacedGpu> gpus;
    for (const LiveAssignment* a : leases) {
      for (const scheduler::PlacedGpu& g : PlacedGpus(*a)) gpus.push_back(g);
    }
    if (!market_->RestoreRunning(RequirementsOf(*leases.front()), gpus, now_ms)) {
      spdlog::error("job {}: its live lease names GPUs that are missing or held twice; left out of the market", job_id);
    }
  }
  for (const scheduler::JobRequirements& job : snapshot->queued) (void)market_->AddJob(job, now_ms);
  for (const WorkerRecord& w : snapshot->workers) {
    if (w.state == v1::WORKER_STATE_ACTIVE && registry_.SessionOf(w.worker_id) != nullptr) {
      Merge(decisions, market_->SetSchedulable(w.worker_id, true, now_ms));
    }
  }
  spdlog::info("market rebuilt from PostgreSQL: {} workers, {} running jobs, {} queued", snapshot->workers.size(),
               by_job.size(), market_->queued_jobs());
  return absl::OkStatus();
}

std::pair<size_t, size_t> SchedulerHost::Commit(scheduler::Decisions decisions) {
  size_t placed = 0, preempted = 0;
  for (int repeat = 0; repeat < kMaxCommitRepeats && !(decisions.placements.empty() && decisions.preempted.empty()); ++repeat) {
    // The market's last word per job: a placement superseded later in the round (the job was
    // preempted, removed or placed again) no longer holds its GPUs and is dropped.
    std::vector<scheduler::JobPlacement> placements;
    std::set<int64_t> seen;
    for (auto it = decisions.placements.rbegin(); it != decisions.placements.rend(); ++it) {
      if (!seen.insert(it->job_id).second) continue;
      bool holds = true;
      for (const scheduler::PlacedGpu& g : it->gpus) holds = holds && market_->HolderOf(g.worker_id, g.index) == it->job_id;
      if (holds) placements.push_back(std::move(*it));
    }
    std::reverse(placements.begin(), placements.end());
    absl::StatusOr<PersistedDecisions> persisted = repo_.PersistDecisions(placements, decisions.preempted);
    if (!persisted.ok()) {
      // Nothing was written or sent; PostgreSQL still has the truth, so the market is rebuilt from it.
      spdlog::warn("persisting {} placements: {}", placements.size(), persisted.status().ToString());
      market_stale_ = true;
      return {placed, preempted};
    }
    placed += persisted->assigned.size();
    preempted += persisted->preempted.size();
    for (const Requeued& r : persisted->preempted) {
      if (auto session = registry_.SessionOf(r.worker_id)) session->Send(CancelMessage(r.job_id, r.attempt, "preempted by an on-demand job"));
    }
    std::set<int64_t> assigned;
    for (const LiveAssignment& a : persisted->assigned) {
      assigned.insert(a.job_id);
      // No stream: the worker gets it in its next hello, or its lease expires and the job returns.
      if (auto session = registry_.SessionOf(a.worker_id)) session->Send(AssignmentMessage(a));
    }
    decisions = {};
    const int64_t now_ms = clock_.NowMs();
    for (const scheduler::JobPlacement& p : placements) {
      if (!assigned.contains(p.job_id)) Merge(decisions, market_->RemoveJob(p.job_id, now_ms));  // no longer QUEUED
    }
  }
  return {placed, preempted};
}

void SchedulerHost::RefreshWaitReasons() {
  const std::vector<int64_t> queued = market_->QueuedJobIds();
  const int64_t now_ms = clock_.NowMs();
  std::vector<std::pair<int64_t, std::string>> changed;
  const size_t n = std::min(options_.wait_reasons_per_tick, queued.size());
  for (size_t k = 0; k < n; ++k) {
    const int64_t id = queued[(wait_reason_cursor_ + k) % queued.size()];
    // A job that just arrived is usually placed within milliseconds: explain only real waits.
    const scheduler::JobRequirements* job = market_->FindJob(id);
    if (job == nullptr || now_ms - job->submitted_at_ms < options_.tick_interval_ms) continue;
    std::string reason = market_->WhyWaiting(id);
    std::string& known = wait_reasons_[id];
    if (known != reason) {
      known = reason;
      changed.emplace_back(id, std::move(reason));
    }
  }
  wait_reason_cursor_ = queued.empty() ? 0 : (wait_reason_cursor_ + n) % queued.size();
  if (wait_reasons_.size() > 2 * queued.size() + 1024) {
    const std::set<int64_t> still(queued.begin(), queued.end());
    std::erase_if(wait_reasons_, [&](const auto& kv) { return !still.contains(kv.first); });
  }
  if (absl::Status s = repo_.UpdateWaitReasons(changed); !s.ok()) spdlog::warn("wait reasons: {}", s.ToString());
}

}  // namespace tessera::scheduler_host
