// The server SIGKILLed at random moments under a steady load of submits and metered jobs, and
// started again on the same data and port each time. At the end, with SQL: every submit the
// server acknowledged exists, every job ended, the money invariants hold, no report is charged
// twice, and each worker's journal of what it sent matches what was settled.
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <set>
#include <thread>

#include "tests/crash/crash_checks.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

constexpr int kKills = 20;

std::string ShortJob(int duration_ms) {
  return "kind: sleep\ngpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 60000\nmax_attempts: 10\nsleep:\n  duration_ms: " +
         std::to_string(duration_ms) + "\n";
}

// Customers submitting jobs as fast as the CLI goes, each submit retried with its request id until
// the server answers; the ids it acknowledged are kept. No Catch2 assertions: it runs on a thread.
class SubmitLoad {
 public:
  SubmitLoad(Cluster& c) : address_(c.address()), key_file_(c.AdminKeyFile()), spec_(c.dir() + "/short.yaml") {
    std::ofstream(spec_) << ShortJob(400);
    thread_ = std::thread([this] { Run(); });
  }
  ~SubmitLoad() { Stop(); }
  void Stop() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
  }
  std::vector<std::string> accepted() const { return accepted_; }
  int failures() const { return failures_; }

 private:
  void Run() {
    for (int n = 0; !stop_; ++n) {
      const std::string id = "load-" + std::to_string(n);
      while (!stop_) {
        CommandResult r = RunCommand({kBin + "/tessera", "--server", address_, "--api-key-file", key_file_, "job", "submit", "-f",
                                      spec_, "--account", "acme", "--request-id", id});
        if (r.exit_code == 0) {
          accepted_.push_back(id);
          break;
        }
        ++failures_;
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(150));
    }
  }

  const std::string address_, key_file_, spec_;
  std::atomic<bool> stop_{false};
  std::vector<std::string> accepted_;  // read after Stop()
  std::atomic<int> failures_{0};
  std::thread thread_;
};

}  // namespace

TEST_CASE("the server survives 20 SIGKILLs under load: nothing accepted is lost, nothing charged twice", "[crash][slow]") {
  Cluster c;
  c.OpenMarket();
  const std::vector<std::string> workers = {"rig-a", "rig-b", "rig-c"};
  for (const std::string& name : workers) c.StartWorker(name, "1000000");
  SubmitLoad load(c);

  const uint64_t seed = std::random_device{}();
  INFO("kill schedule seed " << seed);
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int> pause_ms(300, 1'500);
  int kills = 0;
  for (; kills < kKills; ++kills) {
    std::this_thread::sleep_for(std::chrono::milliseconds(pause_ms(rng)));
    c.KillAndRestartServer(/*same_port=*/true);
  }
  // The load runs on a while against the last server, then stops; everything it started finishes.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  load.Stop();
  const std::vector<std::string> accepted = load.accepted();
  WARN(kills << " SIGKILLs survived; " << accepted.size() << " submits acknowledged, " << load.failures()
             << " refused or unanswered while the server was down (seed " << seed << ")");
  REQUIRE(accepted.size() > 20);
  WaitForQuiet(c, 120'000);

  // Every acknowledged submit is a job, once.
  std::set<std::string> jobs;
  std::istringstream ids(c.Sql("SELECT request_id FROM jobs"));
  for (std::string id; std::getline(ids, id);) jobs.insert(id);
  for (const std::string& id : accepted) {
    INFO(id);
    CHECK(jobs.contains(id));
  }
  CHECK(c.Sql("SELECT count(*) - count(DISTINCT request_id) FROM jobs") == "0");
  CHECK(c.Sql("SELECT count(*) FROM jobs WHERE state = 'SUCCEEDED'") == std::to_string(jobs.size()));
  // Each report is settled in exactly one batch, and the money moved is what the reports say.
  CHECK(c.Sql("SELECT coalesce(sum(reports), 0) FROM settlement_batches") == c.Sql("SELECT count(*) FROM usage_reports"));
  CheckLedgerInvariants(c);
  const JournalTotals journals = CheckJournalsMatchStore(c, workers);
  WARN(journals.accepted << " reports delivered and settled once, " << journals.refused << " refused");
  CHECK(journals.accepted > 50);
}
