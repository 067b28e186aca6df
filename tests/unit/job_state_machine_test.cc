#include <catch2/catch.hpp>

#include "services/common/job_state_machine.h"
#include "services/lifecycle/state_write.h"

using namespace tessera;

TEST_CASE("job state machine follows DESIGN.md", "[state]") {
  CHECK(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED));
  CHECK(CanTransition(v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_QUEUED));  // lease lost
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED));
  CHECK(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLED));
  CHECK(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING));  // a lost lease resumed by its worker
  CHECK_FALSE(CanTransition(v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_ASSIGNED));
  CHECK(SourcesOf(v1::JOB_STATE_RUNNING) == std::vector{v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED});
  CHECK(SourcesOf(v1::JOB_STATE_SUCCEEDED) == std::vector{v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING});
  CHECK(SourcesOf(v1::JOB_STATE_CANCELLED) == std::vector{v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING});
  CHECK_FALSE(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_SUCCEEDED));
  for (auto terminal : {v1::JOB_STATE_SUCCEEDED, v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    CHECK(IsTerminal(terminal));
    for (auto to : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLED}) {
      CHECK_FALSE(CanTransition(terminal, to));
    }
  }
}

TEST_CASE("state names round-trip", "[state]") {
  for (auto s : {v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED,
                 v1::JOB_STATE_FAILED, v1::JOB_STATE_CANCELLED}) {
    CHECK(ParseJobState(JobStateName(s)) == s);
  }
  CHECK_FALSE(ParseJobState("DONE").has_value());
  CHECK(ParseWorkerState(WorkerStateName(v1::WORKER_STATE_OFFLINE)) == v1::WORKER_STATE_OFFLINE);
}

TEST_CASE("a lifecycle statement's guard is rendered from the machine's sources", "[state]") {
  CHECK(lifecycle::StateGuard({v1::JOB_STATE_QUEUED}) == "state = 'QUEUED'");
  CHECK(lifecycle::StateGuard(SourcesOf(v1::JOB_STATE_SUCCEEDED)) == "state IN ('ASSIGNED', 'RUNNING')");
  const store::Statement checked = lifecycle::Checked(
      {.statement = {"t", "UPDATE jobs SET state = 'RUNNING' WHERE state IN ('QUEUED', 'ASSIGNED')"},
       .from = SourcesOf(v1::JOB_STATE_RUNNING),
       .to = {v1::JOB_STATE_RUNNING}});
  CHECK(std::string(checked.name) == "t");
}
