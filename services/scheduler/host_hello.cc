// A worker's hello on the scheduling thread: the store applies it in one transaction
// (SchedulerStore::ApplyHello), then the market follows and the worker is told what it keeps.
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/scheduler/host_messages.h"
#include "services/scheduler/scheduler_host.h"
#include "services/common/grpc_status.h"
#include "services/scheduler/market_inputs.h"

namespace tessera::scheduler_host {

void SchedulerHost::HandleHello(const std::shared_ptr<WorkerSession>& session, const v1::Hello& hello,
                                scheduler::Decisions& decisions) {
  // A stream that ended while its hello waited for this round: registering it would show the
  // worker connected on a dead stream until its lease expired. Its agent reconnects and says hello
  // again.
  if (session->closing()) return;
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
  // Closed while the store applied the hello: its OnClosed may have come before the Attach and found
  // nothing to detach. Its disconnect, already posted, then finds the worker without a session.
  if (session->closing()) {
    registry_.Detach(session);
    return;
  }
  if (!market_stale_) {
    Merge(decisions, market_->SetSchedulable(record.worker_id, record.state == v1::WORKER_STATE_ACTIVE, now_ms));
  }

  SendReconnectMessages(*session, *applied);
  if (record.state == v1::WORKER_STATE_PENDING_VERIFICATION) {
    // It proves its hardware before it gets a job: a never-verified machine, or one whose re-check
    // was interrupted.
    verifier_->Challenge(session, record.verified ? ChallengeReason::kRecheck : ChallengeReason::kRegistration);
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

}  // namespace tessera::scheduler_host
