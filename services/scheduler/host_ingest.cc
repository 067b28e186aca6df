// The ingest thread: worker messages drained from the bounded inbound queue in order, checked
// (shape, signatures), applied to the store in a fixed number of transactions per batch, then
// acknowledged; finished jobs are handed to the scheduling thread.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/scheduler/host_messages.h"
#include "services/scheduler/scheduler_host.h"
#include "services/common/grpc_status.h"
#include "services/common/worker_signing.h"
#include "services/common/worker_validation.h"
#include "services/scheduler/usage_screen.h"

namespace tessera::scheduler_host {
namespace {

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

}  // namespace

void SchedulerHost::IngestLoop() {
  while (!stop_) {
    {
      std::unique_lock lock(inbound_mu_);
      inbound_cv_.wait_for(lock, std::chrono::milliseconds(200), [&] { return !inbound_.empty() || stop_; });
    }
    std::vector<Inbound> batch = TakeBatch();
    if (batch.empty()) continue;
    const auto started = std::chrono::steady_clock::now();
    ProcessBatch(batch);
    observer_.OnIngestBatch({.messages = batch.size(), .latency_us = MicrosecondsSince(started)});
  }
}

std::vector<SchedulerHost::Inbound> SchedulerHost::TakeBatch() {
  std::vector<Inbound> batch;
  std::lock_guard lock(inbound_mu_);
  while (!inbound_.empty() && batch.size() < options_.max_ingest_batch) {
    batch.push_back(std::move(inbound_.front()));
    inbound_.pop_front();
  }
  return batch;
}

void SchedulerHost::ProcessBatch(std::vector<Inbound>& batch) {
  const int64_t now_ms = clock_.NowMs();
  Segment segment;
  for (Inbound& in : batch) {
    if (in.message.has_hello()) {
      AcceptHello(in);
    } else {
      Route(in, segment, now_ms);
    }
  }
  FlushSegment(segment);
}

void SchedulerHost::AcceptHello(Inbound& in) {
  const v1::WorkerMessage& m = in.message;
  // The scheduling thread handles the hello (it owns the market). The stream's later messages
  // go on here under the claimed id: what they change is checked against its live leases.
  if (in.session->worker_id() != 0) {
    in.session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "hello was already sent on this stream"));
    return;
  }
  if (m.hello().worker_id() <= 0) {
    in.session->Close(InvalidArgumentStatus("hello.worker_id must be a registered worker id"));
    return;
  }
  if (m.hello().has_policy()) {
    if (absl::Status s = ValidateProviderPolicy(m.hello().policy()); !s.ok()) {
      in.session->Close(ToGrpcStatus(s));
      return;
    }
  }
  if (absl::Status s = ValidateWorkerProfile("hello.", m.hello().name(), m.hello().region(), m.hello().ask_utok_per_gpu_hour(),
                                             {m.hello().job_kinds().begin(), m.hello().job_kinds().end()});
      !s.ok()) {
    in.session->Close(ToGrpcStatus(s));
    return;
  }
  // Before any later message of the stream is taken under the claimed id: is it the stream
  // key's provider's machine, and with which key does it sign?
  absl::StatusOr<WorkerIdentity> identity = repo_.Identify(m.hello().worker_id(), in.session->provider_account_id());
  if (!identity.ok()) {
    in.session->Close(ToGrpcStatus(identity.status()));
    return;
  }
  in.session->set_public_key(std::move(identity->public_key));
  in.session->set_worker_id(m.hello().worker_id());
  Post([&](MarketEvents& e) { e.hellos.push_back(std::move(in)); });
}

void SchedulerHost::Route(Inbound& in, Segment& segment, int64_t now_ms) {
  v1::WorkerMessage& m = in.message;
  const int64_t worker_id = in.session->worker_id();
  if (worker_id == 0) {
    in.session->Close(grpc::Status(grpc::StatusCode::FAILED_PRECONDITION, "the first message on a stream must be hello"));
    return;
  }
  registry_.Touch(worker_id, now_ms);
  switch (m.body_case()) {
    case v1::WorkerMessage::kStarted:
      segment.events.started.emplace_back(worker_id, m.started());
      segment.started_sessions.push_back(in.session);
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
      if (verifier_ != nullptr) verifier_->OnCommit(in.session, std::move(*m.mutable_challenge_commit()));
      break;
    case v1::WorkerMessage::kChallengeOpening:
      if (verifier_ != nullptr) verifier_->OnOpening(in.session, std::move(*m.mutable_challenge_opening()));
      break;
    default:
      break;  // heartbeat: the touch above is all it does
  }
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
      // A start is not resent, but the reconnect's hello names the run, which makes it RUNNING.
      for (auto& s : segment.started_sessions) s->Close(grpc::Status(grpc::StatusCode::UNAVAILABLE, "job start not stored; reconnect"));
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

}  // namespace tessera::scheduler_host
