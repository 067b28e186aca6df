// Crash safety of settlement with real processes: workers stream usage while settlement passes run
// every ~100 ms; the server is SIGKILLed mid-stream and started again on the same data. After the
// restart settles what was left, every stored report is settled exactly once and every money
// invariant holds (tests/support/ledger_invariants.h).
#include <catch2/catch.hpp>
#include <signal.h>

#include <thread>

#include "tests/support/e2e_cluster.h"
#include "tests/support/ledger_invariants.h"

using namespace tessera;
using testing::Cluster;
using testing::SleepSpec;

TEST_CASE("settlement survives SIGKILL: nothing lost, nothing charged twice", "[e2e][slow][crash]") {
  Cluster c;
  c.OpenMarket();
  for (const char* name : {"rig-a", "rig-b", "rig-c"}) c.StartWorker(name, "1000000");
  for (int i = 0; i < 3; ++i) c.Submit(SleepSpec(20'000), "long-" + std::to_string(i));

  // Kill once usage is flowing from every worker and some of it has been settled (passes are
  // running), with reports still arriving.
  const std::string flowing =
      "SELECT count(*) FILTER (WHERE settled) > 0 AND count(*) > 10 AND count(DISTINCT worker_id) = 3 FROM usage_reports";
  for (int i = 0; i < 300 && c.Sql(flowing) != "t"; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  REQUIRE(c.Sql(flowing) == "t");
  c.KillAndRestartServer();
  const std::string stored = c.Sql("SELECT count(*) FROM usage_reports");

  // The restarted server settles the rest (the workers, still aimed at the old port, send nothing).
  for (int i = 0; i < 200 && c.Sql("SELECT count(*) FROM usage_reports WHERE NOT settled") != "0"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  CHECK(c.Sql("SELECT count(*) FROM usage_reports WHERE NOT settled") == "0");
  CHECK(c.Sql("SELECT count(*) FROM usage_reports") == stored);  // nothing stored was lost
  CHECK(c.Sql("SELECT coalesce(sum(reports), 0) FROM settlement_batches") == stored);  // each settled once
  for (const auto& [name, violations] : testing::LedgerInvariants()) {
    INFO(name);
    CHECK(c.Sql(violations) == "0");
  }
  // A report settled before the crash still proves against its batch's root.
  const std::string job = c.Sql("SELECT job_id FROM usage_reports WHERE seq = 1 ORDER BY batch_id LIMIT 1");
  const std::string proof = c.Cli({"-o", "json", "billing", "proof", job, "1"}).out;
  const auto path = std::filesystem::path(c.dir()) / "proof.json";
  std::ofstream(path) << proof;
  CHECK(c.Cli({"billing", "verify-proof", path.string()}).exit_code == 0);
}
