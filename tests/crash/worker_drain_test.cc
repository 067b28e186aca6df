// Graceful worker shutdown: SIGTERM drains the agent. Its running job finishes on its first
// attempt and is settled, the worker is DRAINING (recorded, audited) and gets no new job, and the
// agent exits 0 once everything is delivered; the job it did not take runs on the next worker.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>

#include <thread>

#include "tests/crash/crash_checks.h"

using namespace tessera;
using namespace tessera::testing;

TEST_CASE("a draining worker finishes its job, takes no new one, and exits", "[crash][drain]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("rig-a", "1000000");
  const int64_t running = c.Submit(SleepSpec(3'000), "before-drain");
  c.WaitFor(running, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);

  c.worker("rig-a").Signal(SIGTERM);
  const std::string id = std::to_string(WorkerId(c, "rig-a"));
  for (int i = 0; i < 50 && c.Sql("SELECT state FROM workers WHERE worker_id = " + id) != "DRAINING"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(c.Sql("SELECT state FROM workers WHERE worker_id = " + id) == "DRAINING");
  CHECK(c.Sql("SELECT count(*) FROM audit_log WHERE action = 'worker.drain' AND subject = 'worker/" + id + "'") == "1");
  const int64_t later = c.Submit(SleepSpec(200), "after-drain");

  const v1::Job done = c.WaitFor(running, [](const v1::Job& j) { return testing::IsTerminal(j); }, 30'000);
  CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.attempt() == 1);
  const int status = c.worker("rig-a").Wait(15'000);
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(c.Job(later).state() == v1::JOB_STATE_QUEUED);  // never offered to the draining worker

  // The next machine takes it; the drained one's journal is fully delivered.
  c.StartWorker("rig-b", "1000000");
  const v1::Job moved = c.WaitFor(later, [](const v1::Job& j) { return testing::IsTerminal(j); }, 30'000);
  CHECK(moved.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(c.Sql("SELECT worker_id FROM assignments WHERE job_id = " + std::to_string(later)) == std::to_string(WorkerId(c, "rig-b")));
  WaitForQuiet(c, 30'000);
  CheckLedgerInvariants(c);
  CheckJournalsMatchStore(c, {"rig-a", "rig-b"});
}
