// Workers killed and frozen mid-job, with real processes: the job runs elsewhere, the killed
// worker's journaled reports are delivered once after it restarts, and a frozen worker's late
// reports for a lease it lost are refused; nothing is charged twice.
#include <catch2/catch.hpp>
#include <signal.h>

#include <thread>

#include "tests/crash/crash_checks.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

std::string Count(const std::string& what) { return "SELECT count(*) FROM " + what; }

void WaitForSql(Cluster& c, const std::string& query, const std::string& want, int timeout_ms) {
  for (int waited = 0; waited < timeout_ms && c.Sql(query) != want; waited += 100) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  INFO(query);
  REQUIRE(c.Sql(query) == want);
}

// A job on the cheaper worker `rig-a`, running and reporting, with `rig-b` standing by.
int64_t JobRunningOnRigA(Cluster& c, int duration_ms) {
  c.OpenMarket();
  c.StartWorker("rig-a", "1000000");
  const int64_t job = c.Submit(SleepSpec(duration_ms), "victim");
  c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  c.StartWorker("rig-b", "1500000");
  WaitForSql(c, "SELECT count(*) >= 3 FROM usage_reports WHERE attempt = 1", "t", 10'000);
  return job;
}

}  // namespace

TEST_CASE("a worker SIGKILLed mid-job: the job runs elsewhere, its reports are delivered once after it restarts", "[crash][slow]") {
  Cluster c;
  const int64_t job = JobRunningOnRigA(c, 4'000);
  c.worker("rig-a").Signal(SIGKILL);
  c.worker("rig-a").Wait(5'000);

  // The lease expires and rig-b runs the job's second attempt to the end.
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 60'000);
  CHECK(done.attempt() == 2);
  CHECK(c.Sql("SELECT worker_id FROM assignments WHERE attempt = 2") == std::to_string(WorkerId(c, "rig-b")));

  // rig-a comes back with what its journal still held; each report lands once or is refused.
  c.StartWorker("rig-a", "1000000");
  WaitForQuiet(c, 60'000);
  CHECK(c.Sql("SELECT coalesce(sum(reports), 0) FROM settlement_batches") == c.Sql(Count("usage_reports")));
  CheckLedgerInvariants(c);
  CheckJournalsMatchStore(c, {"rig-a", "rig-b"});
  CHECK(c.FinalInvoice(job).final());
}

TEST_CASE("a worker frozen past its lease: the job moves, the thawed worker's late reports are refused", "[crash][slow]") {
  Cluster c;
  const int64_t job = JobRunningOnRigA(c, 6'000);
  const std::string stale_id = std::to_string(WorkerId(c, "rig-a"));
  c.worker("rig-a").Signal(SIGSTOP);
  // Frozen past the 2 s lease: the job is requeued and rig-b takes it.
  WaitForSql(c, "SELECT state || ' ' || attempt FROM jobs WHERE job_id = " + std::to_string(job), "RUNNING 2", 30'000);
  c.worker("rig-a").Signal(SIGCONT);

  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
  CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.attempt() == 2);
  WaitForQuiet(c, 60'000);
  // The thawed worker metered the frozen time too; the server took none of it after the lease ended.
  const JournalTotals journals = CheckJournalsMatchStore(c, {"rig-a", "rig-b"});
  CHECK(journals.refused >= 1);
  CHECK(c.Sql("SELECT count(*) FROM usage_reports u JOIN assignments a USING (job_id, attempt, worker_id) WHERE u.worker_id = " +
              stale_id + " AND u.received_at > a.ended_at") == "0");
  CHECK(c.Sql("SELECT count(*) FROM fraud_signals") == "0");  // a stale worker is not a cheat
  CHECK(c.Sql("SELECT coalesce(sum(reports), 0) FROM settlement_batches") == c.Sql(Count("usage_reports")));
  CheckLedgerInvariants(c);
}
