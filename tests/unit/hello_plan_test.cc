// A worker's hello against its live leases (DESIGN.md "Lifecycle": a reconnect): the one rule the
// scheduler host and the simulation apply.
#include <catch2/catch.hpp>

#include "services/scheduler/hello_plan.h"

using namespace tessera::scheduler_host;

TEST_CASE("a hello keeps what the agent runs, resends what it never got, requeues what it lost", "[hello]") {
  const std::vector<LiveLease> live = {
      {.run = {1, 1}, .started = true},   // runs it: kept
      {.run = {2, 1}, .started = false},  // never started, not named: the agent never got it
      {.run = {3, 2}, .started = true},   // started, not named: the agent restarted without it
      {.run = {4, 1}, .started = false},  // never seen to start, but the agent says it died mid-run
      {.run = {5, 1}, .started = false},  // assigned, and the agent has it (its JobStarted was lost)
  };
  const HelloPlan plan = PlanHello(live, /*running=*/{{1, 1}, {5, 1}, {9, 3}, {3, 1}}, /*lost=*/{{4, 1}, {8, 1}});
  CHECK(plan.keep == std::vector<RunKey>{{1, 1}, {5, 1}});
  CHECK(plan.resend == std::vector<RunKey>{{2, 1}});
  CHECK(plan.requeue == std::vector<RunKey>{{3, 2}, {4, 1}});
  // Runs without a live lease here, in order: another attempt of job 3, and job 9. A lost run with
  // no live lease (job 8) needs nothing.
  CHECK(plan.not_live == std::vector<RunKey>{{3, 1}, {9, 3}});
}

TEST_CASE("a hello from a fresh agent with no leases plans nothing", "[hello]") {
  const HelloPlan plan = PlanHello({}, {}, {});
  CHECK(plan.keep.empty());
  CHECK(plan.resend.empty());
  CHECK(plan.requeue.empty());
  CHECK(plan.not_live.empty());
}

TEST_CASE("a run both running and named lost is kept: the runner is the truth", "[hello]") {
  const HelloPlan plan = PlanHello({{.run = {7, 1}, .started = true}}, {{7, 1}}, {{7, 1}});
  CHECK(plan.keep == std::vector<RunKey>{{7, 1}});
  CHECK(plan.requeue.empty());
}

TEST_CASE("a hello's run lists convert from the proto", "[hello]") {
  tessera::v1::Hello hello;
  auto* r = hello.add_running();
  r->set_job_id(12);
  r->set_attempt(3);
  CHECK(RunsOf(hello.running()) == std::vector<RunKey>{{12, 3}});
  CHECK(RunsOf(hello.lost()).empty());
}
