// Escrow exhaustion end to end, with real processes: a running job whose usage nears its limit
// gets an ESCROW_LOW warning on WatchJob; the customer tops it up with `tessera job extend` and
// the worker lets it finish. A job that is not topped up is stopped at its limit, after the same
// warning, and says why; it is billed up to the limit only.
#include <catch2/catch.hpp>

#include <signal.h>

#include <sstream>
#include <thread>

#include "tessera/v1/billing.pb.h"
#include "tessera/v1/jobs.pb.h"
#include "tests/support/e2e_cluster.h"

using namespace tessera;
using testing::Cluster;
using testing::FromJson;

namespace {

std::string SleepFor(int sleep_ms, int max_duration_ms) {
  return "kind: sleep\ngpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: " + std::to_string(max_duration_ms) +
         "\nsleep:\n  duration_ms: " + std::to_string(sleep_ms) + "\n";
}

// Every update of a finished job, oldest first (WatchJob replays them, then ends).
std::vector<v1::JobUpdate> History(Cluster& c, int64_t job_id) {
  std::istringstream lines(c.Cli({"-o", "json", "job", "watch", std::to_string(job_id)}, false).out);
  std::vector<v1::JobUpdate> updates;
  for (std::string line; std::getline(lines, line);) {
    if (!line.empty()) updates.push_back(FromJson<v1::JobUpdate>(line));
  }
  return updates;
}

size_t IndexOf(const std::vector<v1::JobUpdate>& updates, const std::function<bool(const v1::JobUpdate&)>& match) {
  for (size_t i = 0; i < updates.size(); ++i) {
    if (match(updates[i])) return i;
  }
  return updates.size();
}

}  // namespace

TEST_CASE("a job nearing its escrow limit is warned, and runs on when extended or stops at the limit", "[e2e][slow]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  c.StartWorker("w2", "1000000");

  const int64_t extended = c.Submit(SleepFor(10'000, 8'000), "extended");
  const int64_t stopped = c.Submit(SleepFor(10'000, 3'000), "stopped");

  // The warning comes once 80% of the limit is used (6.4 s of 8); the customer reacts to it.
  const std::string warned = "SELECT count(*) FROM job_events WHERE kind = 'ESCROW_LOW' AND job_id = " + std::to_string(extended);
  for (int waited = 0; c.Sql(warned) == "0"; waited += 50) {
    REQUIRE(waited < 30'000);
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  const v1::Job topped_up = FromJson<v1::Job>(
      c.Cli({"-o", "json", "job", "extend", std::to_string(extended), "--by-ms", "6000", "--request-id", "top-up"}).out);
  CHECK(topped_up.max_duration_ms() == 14'000);
  CHECK(topped_up.hold_utok() == 2'000'000LL * 14'000 / 3'600'000);

  const v1::Job finished = c.WaitFor(extended, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
  CHECK(finished.state() == v1::JOB_STATE_SUCCEEDED);
  const std::vector<v1::JobUpdate> history = History(c, extended);
  const size_t warning = IndexOf(history, [](const v1::JobUpdate& u) { return u.kind() == v1::JOB_UPDATE_KIND_ESCROW_LOW; });
  const size_t extension = IndexOf(history, [](const v1::JobUpdate& u) { return u.kind() == v1::JOB_UPDATE_KIND_EXTENDED; });
  REQUIRE(warning < history.size());
  CHECK(history[warning].remaining_ms() <= 1'600);
  CHECK(warning < extension);
  CHECK(extension < history.size());
  CHECK(history.back().state() == v1::JOB_STATE_SUCCEEDED);
  const v1::Invoice invoice = c.FinalInvoice(extended);
  CHECK(invoice.lines(0).gpu_ms() >= 10'000);  // ran past its first limit
  CHECK(invoice.hold_state() == v1::ESCROW_HOLD_STATE_RELEASED);

  // Not extended: warned the same way, then stopped at 3 s with the reason, billed to the limit.
  const v1::Job cut = c.WaitFor(stopped, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
  CHECK(cut.state() == v1::JOB_STATE_FAILED);
  CHECK_THAT(cut.result().error(), Catch::Contains("escrow is exhausted at max_duration_ms 3000"));
  const std::vector<v1::JobUpdate> cut_history = History(c, stopped);
  CHECK(IndexOf(cut_history, [](const v1::JobUpdate& u) { return u.kind() == v1::JOB_UPDATE_KIND_ESCROW_LOW; }) <
        cut_history.size() - 1);
  const v1::Invoice cut_invoice = c.FinalInvoice(stopped);
  CHECK(cut_invoice.lines(0).gpu_ms() <= 3'000);
  CHECK(cut_invoice.lines(0).gpu_ms() >= 2'400);
  CHECK(c.Sql("SELECT sum(balance_utok) FROM ledger_accounts") == "0");
}
