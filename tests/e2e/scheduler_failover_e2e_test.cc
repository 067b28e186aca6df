// Scheduler leader election with real processes: two scheduler-only servers on one database
// (intake and billing run in a third, which owns the embedded PostgreSQL). Exactly one leads; the
// leader is SIGKILLed mid-job; the standby takes over within seconds under a new epoch, the
// worker reconnects to it, and jobs keep completing and settling.
#include <catch2/catch.hpp>
#include <signal.h>

#include <thread>

#include "tests/support/e2e_cluster.h"

using namespace tessera;
using testing::Cluster;
using testing::SleepSpec;

namespace {

std::string Leader(Cluster& c) { return c.Sql("SELECT epoch || ' ' || leader FROM scheduler_leadership"); }

}  // namespace

TEST_CASE("scheduler failover: the standby takes over when the leader is killed", "[e2e][slow][failover]") {
  Cluster c("intake,billing");
  const std::string first = c.StartScheduler("sched-a");
  const std::string second = c.StartScheduler("sched-b");
  c.OpenMarket();
  c.StartWorker("rig", "1000000", first + "," + second);

  // sched-a started first and leads (epoch 1); the worker ends up on it.
  const std::string before = Leader(c);
  INFO("leadership before: " << before);
  CHECK(before.rfind("1 ", 0) == 0);
  const int64_t warmup = c.Submit(SleepSpec(100), "warmup");
  c.WaitFor(warmup, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 30'000);

  // A job is running when the leader dies.
  const int64_t job = c.Submit(SleepSpec(3'000), "across-failover");
  c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  const auto killed_at = std::chrono::steady_clock::now();
  c.scheduler("sched-a").Signal(SIGKILL);
  c.scheduler("sched-a").Wait(5'000);

  // The standby is elected under a new epoch within a few seconds.
  std::string after;
  for (int i = 0; i < 100; ++i) {
    after = Leader(c);
    if (after.rfind("2 ", 0) == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const double takeover_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  INFO("leadership after: " << after << " (" << takeover_s << " s)");
  REQUIRE(after.rfind("2 ", 0) == 0);
  WARN("standby took over " << takeover_s << " s after the leader was killed");
  CHECK(takeover_s < 5.0);

  // The worker kept its job through the blip (it reconnects within the lease) and finishes it;
  // new jobs are scheduled by the new leader.
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
  CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
  const int64_t later = c.Submit(SleepSpec(100), "after-failover");
  const v1::Job later_done = c.WaitFor(later, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 30'000);
  CHECK(later_done.attempt() == 1);
  CHECK(c.FinalInvoice(later).final());
  CHECK(c.FinalInvoice(job).final());
  CHECK(testing::RunCommand({"/usr/bin/psql", c.DatabaseUrl(), "-Atc", "SELECT sum(balance_utok) FROM ledger_accounts"}).out ==
        "0\n");
}
