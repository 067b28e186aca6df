// What a worker's hello means for its leases, decided by a pure function so that the host and the
// simulation apply one rule (DESIGN.md, "Lifecycle": a reconnect). The hello names the runs the
// agent still has (`running`) and those it lost mid-run (`lost`); the store has the worker's live
// leases, each started (the job RUNNING) or not yet (ASSIGNED).
//
//   HelloPlan plan = PlanHello(live_leases, RunsOf(hello.running()), RunsOf(hello.lost()));
//   // keep: resume metering; resend: assign again; requeue: the run is gone;
//   // not_live: resume if nothing took its place (ResumeLeases), else cancel it on the worker.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "google/protobuf/repeated_ptr_field.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

using RunKey = std::pair<int64_t, uint32_t>;  // job id, attempt

struct LiveLease {
  RunKey run;
  bool started = false;  // the job is RUNNING on this lease (its JobStarted arrived, or it resumed)
};

struct HelloPlan {
  std::vector<RunKey> keep;      // live, and the agent runs it
  std::vector<RunKey> resend;    // live, never started and not named: the agent never got it
  std::vector<RunKey> requeue;   // live, but the agent no longer runs it (it restarted): started, or named lost
  std::vector<RunKey> not_live;  // the agent runs it without a live lease here, in the order named
};

HelloPlan PlanHello(const std::vector<LiveLease>& live, const std::vector<RunKey>& running, const std::vector<RunKey>& lost);

// A hello's list of runs (Hello.running, Hello.lost).
std::vector<RunKey> RunsOf(const google::protobuf::RepeatedPtrField<v1::RunningJob>& runs);

}  // namespace tessera::scheduler_host
