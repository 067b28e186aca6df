// A server restart, abrupt or graceful, or a freeze, under running jobs stops none of them: the
// workers keep running through it, reconnect to the new server on the same port within their
// lease, and the jobs finish on their first attempt with every report settled once. SIGTERM also
// drains: the server exits 0 and has settled, before it exits, everything it had received.
#include <catch2/catch.hpp>
#include <signal.h>
#include <sys/wait.h>

#include <fstream>
#include <thread>

#include "tests/crash/crash_checks.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

std::vector<int64_t> StartJobs(Cluster& c, int n) {
  c.OpenMarket();
  std::vector<int64_t> jobs;
  for (int i = 0; i < n; ++i) c.StartWorker("rig-" + std::to_string(i), "1000000");
  for (int i = 0; i < n; ++i) jobs.push_back(c.Submit(SleepSpec(8'000), "through-restart-" + std::to_string(i)));
  for (int64_t job : jobs) c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));  // reports flowing
  return jobs;
}

void CheckUninterrupted(Cluster& c, const std::vector<int64_t>& jobs) {
  for (int64_t job : jobs) {
    const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
    INFO("job " << job);
    CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
    CHECK(done.attempt() == 1);
    // Its reports are one unbroken sequence: none lost, none resent as new.
    CHECK(c.Sql("SELECT max(seq) = count(*) FROM usage_reports WHERE job_id = " + std::to_string(job)) == "t");
  }
  CHECK(c.Sql("SELECT count(*) FROM job_events WHERE message LIKE '%requeued%' OR message LIKE '%resumed%'") == "0");
  CHECK(c.Sql("SELECT count(*) FROM assignments WHERE end_reason NOT IN ('succeeded')") == "0");
  WaitForQuiet(c, 60'000);
  CHECK(c.Sql("SELECT coalesce(sum(reports), 0) FROM settlement_batches") == c.Sql("SELECT count(*) FROM usage_reports"));
  CheckLedgerInvariants(c);
  std::vector<std::string> names;
  for (size_t i = 0; i < jobs.size(); ++i) names.push_back("rig-" + std::to_string(i));
  CheckJournalsMatchStore(c, names);
}

}  // namespace

TEST_CASE("a SIGKILLed server restarted under running jobs stops none of them", "[crash][restart]") {
  Cluster c("intake,scheduler,billing", /*lease_timeout_ms=*/10'000);
  const std::vector<int64_t> jobs = StartJobs(c, 2);
  c.KillAndRestartServer(/*same_port=*/true);
  CheckUninterrupted(c, jobs);
}

TEST_CASE("SIGTERM drains: the server settles what it received, exits 0, and its restart stops no job", "[crash][restart]") {
  Cluster c("intake,scheduler,billing", /*lease_timeout_ms=*/10'000);
  const std::vector<int64_t> jobs = StartJobs(c, 2);
  const auto asked = std::chrono::steady_clock::now();
  const int status = c.StopServer(SIGTERM);
  const double took_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - asked).count();
  REQUIRE(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(took_s < 8.0);
  c.StartServerAgain(/*same_port=*/true);
  // Every report received before the old server stopped was settled by it: no batch of the new
  // server (its PostgreSQL started after the old one stopped) holds one.
  CHECK(c.Sql("SELECT count(*) FROM usage_reports u JOIN settlement_batches b USING (batch_id)"
              " WHERE u.received_at < pg_postmaster_start_time() AND b.created_at > pg_postmaster_start_time()") == "0");
  CHECK(c.Sql("SELECT count(*) > 0 FROM usage_reports WHERE received_at < pg_postmaster_start_time()") == "t");
  CheckUninterrupted(c, jobs);
}

TEST_CASE("a frozen server: the worker's keepalive notices, it reconnects once the server thaws, the job goes on",
          "[crash][restart]") {
  Cluster c("intake,scheduler,billing", /*lease_timeout_ms=*/10'000);
  c.OpenMarket();
  c.StartWorker("rig-0", "1000000", "", {"--keepalive-ms", "2000"});
  const int64_t job = c.Submit(SleepSpec(8'000), "through-freeze");
  c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  c.server().Signal(SIGSTOP);  // TCP still answers; nothing above it does
  std::this_thread::sleep_for(std::chrono::seconds(6));
  c.server().Signal(SIGCONT);
  CheckUninterrupted(c, {job});
  std::ifstream log(c.dir() + "/rig-0.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("disconnected from"));  // the stream was given up, not left hanging
  size_t connects = 0;
  for (size_t at = text.find("connected as worker"); at != std::string::npos; at = text.find("connected as worker", at + 1)) ++connects;
  CHECK(connects >= 2);  // and a new one welcomed after the thaw
}

TEST_CASE("a server gone longer than the worker's grace period: the worker stops its job, which runs again later",
          "[crash][restart]") {
  Cluster c("intake,scheduler,billing", /*lease_timeout_ms=*/10'000);
  c.OpenMarket();
  c.StartWorker("rig-0", "1000000", "", {"--keepalive-ms", "2000", "--disconnect-grace-ms", "1000"});
  const int64_t job = c.Submit(SleepSpec(8'000), "past-grace");
  c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  c.server().Signal(SIGSTOP);
  std::this_thread::sleep_for(std::chrono::seconds(7));  // keepalive gives up after ~4 s, the grace after 1 s more
  c.server().Signal(SIGCONT);
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
  CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.attempt() == 2);  // the first attempt was stopped by its worker, the second ran
  std::ifstream log(c.dir() + "/rig-0.log");
  const std::string text((std::istreambuf_iterator<char>(log)), std::istreambuf_iterator<char>());
  CHECK_THAT(text, Catch::Contains("(grace 1000 ms); stopping it"));
  WaitForQuiet(c, 30'000);
  CheckLedgerInvariants(c);
  CheckJournalsMatchStore(c, {"rig-0"});
}
