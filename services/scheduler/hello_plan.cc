#include "services/scheduler/hello_plan.h"

#include <set>

namespace tessera::scheduler_host {

std::vector<RunKey> RunsOf(const google::protobuf::RepeatedPtrField<v1::RunningJob>& runs) {
  std::vector<RunKey> out;
  out.reserve(runs.size());
  for (const v1::RunningJob& r : runs) out.emplace_back(r.job_id(), r.attempt());
  return out;
}

HelloPlan PlanHello(const std::vector<LiveLease>& live, const std::vector<RunKey>& running, const std::vector<RunKey>& lost) {
  const std::set<RunKey> runs(running.begin(), running.end()), named_lost(lost.begin(), lost.end());
  HelloPlan plan;
  std::set<RunKey> leased;
  for (const LiveLease& lease : live) {
    leased.insert(lease.run);
    if (runs.contains(lease.run)) {
      plan.keep.push_back(lease.run);
    } else if (lease.started || named_lost.contains(lease.run)) {
      // A run we saw start, or one the agent says died with it, is gone: assigned again, it would
      // run a second time under the usage seqs already reported.
      plan.requeue.push_back(lease.run);
    } else {
      plan.resend.push_back(lease.run);
    }
  }
  for (const RunKey& run : runs) {
    if (!leased.contains(run)) plan.not_live.push_back(run);
  }
  return plan;
}

}  // namespace tessera::scheduler_host
