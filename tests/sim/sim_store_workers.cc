// The simulated store's side of a worker: who it is, its hello (one transaction, as
// SchedulerRepository::ApplyHello), the leases it resumes, its drain and its rendezvous.
#include "tests/sim/sim_store.h"

#include <algorithm>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "services/scheduler/hello_plan.h"

namespace tessera::sim {

using scheduler_host::LiveAssignment;
using scheduler_host::RunKey;

absl::StatusOr<scheduler_host::WorkerIdentity> SimSchedulerStore::Identify(int64_t worker_id, int64_t provider_account_id) {
  auto it = store_.workers.find(worker_id);
  if (provider_account_id != 0 && (it == store_.workers.end() || it->second.provider_account_id != provider_account_id)) {
    return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id, " is not a worker of this API key's provider account"));
  }
  if (it == store_.workers.end()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " is not registered"));
  return scheduler_host::WorkerIdentity{.provider_account_id = it->second.provider_account_id, .public_key = it->second.public_key};
}

absl::StatusOr<scheduler_host::AppliedHello> SimSchedulerStore::ApplyHello(const v1::Hello& hello, bool require_verification) {
  auto it = store_.workers.find(hello.worker_id());
  if (it == store_.workers.end()) return absl::NotFoundError(absl::StrCat("worker ", hello.worker_id(), " is not registered"));
  scheduler_host::WorkerRecord& record = it->second.record;
  if (record.state == v1::WORKER_STATE_RETIRED) return absl::FailedPreconditionError("the worker is retired");
  if (record.state == v1::WORKER_STATE_QUARANTINED) return absl::PermissionDeniedError("the worker is quarantined");
  record.state = require_verification && !record.verified ? v1::WORKER_STATE_PENDING_VERIFICATION
                 : hello.draining()                      ? v1::WORKER_STATE_DRAINING
                                                         : v1::WORKER_STATE_ACTIVE;
  const int64_t worker_id = record.worker_id;
  scheduler_host::AppliedHello out;
  out.worker = record;
  std::vector<scheduler_host::LiveLease> leases;
  std::map<RunKey, LiveAssignment> by_run;
  for (LiveAssignment& a : LiveAssignmentsOf(worker_id)) {
    leases.push_back({.run = {a.job_id, a.attempt}, .started = a.running});
    by_run.emplace(RunKey{a.job_id, a.attempt}, std::move(a));
  }
  const scheduler_host::HelloPlan plan =
      scheduler_host::PlanHello(leases, scheduler_host::RunsOf(hello.running()), scheduler_host::RunsOf(hello.lost()));
  for (const RunKey& run : plan.keep) {
    // The agent says it runs it: RUNNING from now, whether or not its JobStarted arrived.
    StoreJob& job = store_.jobs.at(run.first);
    if (job.state == JobState::kAssigned && job.attempt == run.second) job.state = JobState::kRunning;
    out.keep.push_back(by_run.at(run));
    out.keep.back().running = true;
  }
  for (const RunKey& run : plan.resend) out.resend.push_back(by_run.at(run));
  if (!plan.requeue.empty() && bug_ != InjectedBug::kNoRequeueOnHello) {
    out.requeued = EndLeases({}, plan.requeue, {}, "worker restarted without the job");
  }
  std::set<RunKey> resumed;
  for (const RunKey& run : ResumeLeases(worker_id, plan.not_live)) {
    resumed.insert(run);
    out.resumed.push_back(run);
    out.keep.push_back(AssignmentOf({run.first, run.second, worker_id}, store_.leases.at({run.first, run.second, worker_id})));
  }
  for (const RunKey& run : plan.not_live) {
    if (!resumed.contains(run)) out.not_live.push_back(run);
  }
  for (const auto& [key, lease] : store_.leases) {
    const auto& [job_id, attempt, lease_worker] = key;
    if (!lease.live || lease_worker != worker_id || lease.node_rank == 0) continue;
    if (auto r = store_.rendezvous.find({job_id, attempt}); r != store_.rendezvous.end()) {
      scheduler_host::RendezvousOut& o = out.rendezvous.emplace_back();
      o.job_id = job_id;
      o.attempt = attempt;
      o.unique_id = r->second;
      for (const StoreLease* l : store_.LiveLeasesOf(job_id, attempt)) o.node_gpu_counts.push_back(static_cast<uint32_t>(l->gpus.size()));
    }
  }
  note_(absl::StrCat("hello of worker ", worker_id, " applied: ", out.keep.size(), " kept, ", out.resend.size(), " resent, ",
                     out.requeued.size(), " requeued, ", out.resumed.size(), " resumed, ", out.not_live.size(), " to cancel"));
  return out;
}

std::vector<RunKey> SimSchedulerStore::ResumeLeases(int64_t worker_id, const std::vector<RunKey>& runs) {
  std::vector<RunKey> resumed;
  for (const auto& [job_id, attempt] : runs) {
    auto it = store_.leases.find({job_id, attempt, worker_id});
    auto job_it = store_.jobs.find(job_id);
    if (it == store_.leases.end() || it->second.live || job_it == store_.jobs.end()) continue;
    StoreJob& job = job_it->second;
    if (job.state != JobState::kQueued || job.attempt != attempt) continue;
    bool alone = true, gpus_free = true;
    for (const auto& [key, other] : store_.leases) {
      const auto& [other_job, other_attempt, other_worker] = key;
      if (other_job == job_id && other_attempt == attempt && other_worker != worker_id) alone = false;
      if (other_worker == worker_id && other.live) {
        for (uint32_t g : other.gpus) {
          gpus_free = gpus_free && std::find(it->second.gpus.begin(), it->second.gpus.end(), g) == it->second.gpus.end();
        }
      }
    }
    if (!alone || !gpus_free) continue;
    it->second.live = true;
    job.state = JobState::kRunning;  // it runs the job, whether or not its JobStarted arrived
    resumed.emplace_back(job_id, attempt);
    note_(absl::StrCat("job ", job_id, " attempt ", attempt, " resumed on worker ", worker_id));
  }
  return resumed;
}

absl::StatusOr<bool> SimSchedulerStore::DrainWorker(int64_t worker_id, const std::string& reason) {
  auto it = store_.workers.find(worker_id);
  if (it == store_.workers.end() || it->second.record.state != v1::WORKER_STATE_ACTIVE) return false;
  it->second.record.state = v1::WORKER_STATE_DRAINING;
  note_(absl::StrCat("worker ", worker_id, " draining: ", reason));
  return true;
}

absl::Status SimSchedulerStore::TouchWorkers(const std::vector<int64_t>& /*worker_ids*/) { return absl::OkStatus(); }

absl::StatusOr<scheduler_host::RendezvousOut> SimSchedulerStore::RecordRendezvous(int64_t worker_id, const v1::RendezvousOffer& offer) {
  scheduler_host::RendezvousOut out{.job_id = offer.job_id(), .attempt = offer.attempt(), .unique_id = {}, .node_gpu_counts = {},
                                    .recipients = {}};
  bool is_rank_zero = false;
  for (auto it = store_.leases.lower_bound({offer.job_id(), offer.attempt(), 0});
       it != store_.leases.end() && std::get<0>(it->first) == offer.job_id() && std::get<1>(it->first) == offer.attempt(); ++it) {
    if (!it->second.live) continue;
    if (std::get<2>(it->first) == worker_id) {
      is_rank_zero = it->second.node_rank == 0;
    } else {
      out.recipients.push_back(std::get<2>(it->first));
    }
    out.node_gpu_counts.push_back(static_cast<uint32_t>(it->second.gpus.size()));
  }
  if (!is_rank_zero) {
    return absl::PermissionDeniedError(absl::StrCat("worker ", worker_id, " holds no live node-rank-0 lease of job ", offer.job_id(),
                                                    " attempt ", offer.attempt()));
  }
  out.unique_id = store_.rendezvous.try_emplace({offer.job_id(), offer.attempt()}, offer.unique_id()).first->second;
  return out;
}

}  // namespace tessera::sim
