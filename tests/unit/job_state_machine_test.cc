#include <catch2/catch.hpp>

#include "services/common/job_state_machine.h"

using namespace tessera;

TEST_CASE("job state machine follows DESIGN.md", "[state]") {
  CHECK(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_ASSIGNED));
  CHECK(CanTransition(v1::JOB_STATE_ASSIGNED, v1::JOB_STATE_RUNNING));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_SUCCEEDED));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_QUEUED));  // lease lost
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_FAILED));
  CHECK(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_CANCELLED));
  CHECK(CanTransition(v1::JOB_STATE_RUNNING, v1::JOB_STATE_CANCELLED));
  CHECK_FALSE(CanTransition(v1::JOB_STATE_QUEUED, v1::JOB_STATE_RUNNING));
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
