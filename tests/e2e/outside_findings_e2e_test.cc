// What outsiders found broken (issue 16), with real processes: a key file with a second line, two
// agents started in one state dir, a restarted agent's changed --ask, and `job watch` across a
// server restart.
#include <catch2/catch.hpp>

#include <algorithm>

#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_join.h"
#include "services/worker/sandbox/bwrap_sandbox.h"
#include "services/worker/sandbox/podman_sandbox.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/files.h"

using namespace tessera;
using testing::Cluster;
using testing::FromJson;
using testing::RunWithStderr;

using testing::ReadAll;

namespace {

size_t Occurrences(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

// The id of worker `name` once its agent is connected.
int64_t ConnectedWorker(Cluster& c, const std::string& name) {
  for (int i = 0; i < 200; ++i) {
    auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
    for (const v1::Worker& w : workers.workers()) {
      if (w.name() == name && w.connected()) return w.worker_id();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("worker " << name << " never connected; logs in " << c.dir());
  return 0;
}

TEST_CASE("a key file with a second line is refused with a clear error, never an abort", "[e2e][auth]") {
  Cluster c;
  c.OpenMarket();
  const std::string key = c.ProviderKeyFile();
  const std::string two_lines = c.dir() + "/two-lines.key";
  {
    std::ifstream in(key);
    std::string line;
    std::getline(in, line);
    std::ofstream(two_lines) << line << "\n" << line << "\n";
  }
  auto worker = RunWithStderr({testing::kBin + "/tessera-worker", "--server", c.address(), "--provider", "gpuco", "--api-key-file",
                               two_lines, "--name", "w", "--cpu", "--state-dir", c.dir() + "/w"});
  CHECK(worker.exit_code == 2);  // not 134 (SIGABRT in gRPC's header check)
  CHECK_THAT(worker.out, Catch::Contains("holds more than one line"));
  auto cli = RunWithStderr({testing::kBin + "/tessera", "--server", c.address(), "--api-key-file", two_lines, "account", "list"});
  CHECK(cli.exit_code == 1);
  CHECK_THAT(cli.out, Catch::Contains("holds more than one line"));
  auto flag = RunWithStderr({testing::kBin + "/tessera-worker", "--server", c.address(), "--provider", "gpuco", "--api-key",
                             "tsk_a\nb", "--name", "w", "--cpu", "--state-dir", c.dir() + "/w"});
  CHECK(flag.exit_code == 2);
}

TEST_CASE("one agent per state dir; a restarted agent's new ask and name are applied, audited", "[e2e][worker]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t id = ConnectedWorker(c, "w1");

  // A second agent in the same directory, under another name and ask, is refused at once.
  auto second = RunWithStderr({testing::kBin + "/tessera-worker", "--server", c.address(), "--provider", "gpuco", "--api-key-file",
                               c.ProviderKeyFile(), "--name", "w2", "--ask", "5", "--cpu", "--state-dir", c.dir() + "/w1"});
  CHECK(second.exit_code == 1);
  CHECK_THAT(second.out, Catch::Contains("is in use by another tessera-worker (pid " + std::to_string(c.worker("w1").pid()) + ")"));
  auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
  REQUIRE(workers.workers_size() == 1);
  CHECK(workers.workers(0).stream_replacements() == 0);

  // Restarted with another name and ask: the same worker, reconfigured.
  c.worker("w1").Signal(SIGINT);
  REQUIRE(c.worker("w1").Wait(10'000) >= 0);
  c.StartWorker("w1", "1500000", "", {"--name", "rig-b"});
  v1::Worker now;
  for (int i = 0; i < 100; ++i) {
    workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
    REQUIRE(workers.workers_size() == 1);
    now = workers.workers(0);
    if (now.ask_utok_per_gpu_hour() == 1'500'000 && now.connected()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(now.worker_id() == id);
  CHECK(now.ask_utok_per_gpu_hour() == 1'500'000);
  CHECK(now.name() == "rig-b");
  CHECK(c.Sql("SELECT detail FROM audit_log WHERE action = 'worker.reconfigure'") ==
        "in its hello: name 'w1' → 'rig-b'; ask 1000000 → 1500000 µT/GPU-h");
}

TEST_CASE("a retired worker's agent stops with the reason; its machine registers again cleanly", "[e2e][worker]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t id = ConnectedWorker(c, "w1");
  const std::string provider = c.ProviderKeyFile();
  // Refused while its agent is connected.
  auto connected = c.CliWithKeyFile(provider, {"worker", "retire", std::to_string(id), "--reason", "reinstall"}, false);
  CHECK(connected.exit_code == 1);
  c.worker("w1").Signal(SIGINT);
  REQUIRE(c.worker("w1").Wait(10'000) >= 0);
  std::string out;
  for (int i = 0; i < 100; ++i) {  // the registry lets go of the stream at once, the lease soon after
    auto r = c.CliWithKeyFile(provider, {"worker", "retire", std::to_string(id), "--reason", "reinstall"}, false);
    out = r.out;
    if (r.exit_code == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK_THAT(out, Catch::Contains("is RETIRED"));
  // The old state dir's agent is told why and stops, instead of retrying forever.
  c.StartWorker("w1", "1000000");
  const int status = c.worker("w1").Wait(20'000);
  REQUIRE(status >= 0);
  CHECK(WEXITSTATUS(status) == 1);
  CHECK_THAT(ReadAll(c.dir() + "/w1.log"), Catch::Contains("is retired and cannot connect again"));
  // With its state dir cleared, the machine registers again under the same name, so with the same
  // device UUIDs (a CPU device's is a hash of machine and name): no duplicate, no signal.
  std::filesystem::rename(c.dir() + "/w1", c.dir() + "/w1-retired");
  c.StartWorker("w1", "1000000");
  int64_t again = 0;
  for (int i = 0; i < 100 && again == 0; ++i) {
    again = std::stoll(c.Sql("SELECT coalesce(max(worker_id), 0) FROM workers WHERE worker_id <> " + std::to_string(id)));
    if (again == 0) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(again > 0);
  CHECK(c.Sql("SELECT string_agg(uuid, ',' ORDER BY uuid) FROM gpus WHERE worker_id = " + std::to_string(again)) ==
        c.Sql("SELECT string_agg(uuid, ',' ORDER BY uuid) FROM gpus WHERE worker_id = " + std::to_string(id)));
  CHECK(c.Sql("SELECT state FROM workers WHERE worker_id = " + std::to_string(again)) != "QUARANTINED");
  CHECK(c.Sql("SELECT count(*) FROM fraud_signals") == "0");
  CHECK(c.Sql("SELECT state FROM workers WHERE worker_id = " + std::to_string(id)) == "RETIRED");
}

TEST_CASE("job watch follows a job through a server restart and prints each state once", "[e2e][slow]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t job = c.Submit(testing::SleepSpec(6'000), "watched");
  c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 20'000);
  const std::string log = c.dir() + "/watch.log";
  testing::ChildProcess watch({testing::kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "job", "watch",
                               std::to_string(job)},
                              log);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  c.KillAndRestartServer(/*same_port=*/true);
  const int status = watch.Wait(60'000);
  INFO(ReadAll(log));
  REQUIRE(status >= 0);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  const std::string printed = ReadAll(log);
  CHECK_THAT(printed, Catch::Contains("reconnecting"));
  CHECK(Occurrences(printed, "SUCCEEDED") == 1);
  CHECK(Occurrences(printed, "ASSIGNED") == 1);
  CHECK(c.Job(job).state() == v1::JOB_STATE_SUCCEEDED);
}

}  // namespace

TEST_CASE("a job no worker can run says why, is never offered to a worker, and gives its escrow back at its queue timeout",
          "[e2e][scheduler]") {
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t worker = ConnectedWorker(c, "w1");
  auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
  REQUIRE(workers.workers_size() == 1);
  // `container` only where this machine can make sandboxes (not in fresh-debian's chroot).
  std::vector<std::string> kinds{"sleep", "train_mlp", "gemm_bench"};
  if (worker::BwrapSandbox().Probe().ok()) {
    kinds.push_back("container");
    // And OCI images where podman runs too.
    if (worker::PodmanSandbox({.state_dir = "/tmp/tessera-e2e-podman"}).Probe().ok()) kinds.push_back("container_oci");
  }
  CHECK(std::vector<std::string>(workers.workers(0).job_kinds().begin(), workers.workers(0).job_kinds().end()) == kinds);
  // examples/allreduce_bench.yaml names no model: before, it landed on the CPU worker, failed and charged.
  const int64_t job = c.Submit(
      "kind: allreduce_bench\ngpu_count: 1\nbid_utok_per_gpu_hour: 3000000\nmax_duration_ms: 600000\nqueue_timeout_ms: 4000\n"
      "allreduce_bench:\n  megabytes: 1\n  iterations: 1\n",
      "allreduce");
  const v1::Job waiting = c.WaitFor(job, [](const v1::Job& j) { return !j.wait_reason().empty(); }, 10'000);
  std::vector<std::string> sorted = kinds;
  std::sort(sorted.begin(), sorted.end());
  CHECK(waiting.wait_reason() == "no worker runs job kind 'allreduce_bench' (workers run: " + absl::StrJoin(sorted, ", ") + ")");
  CHECK(waiting.queue_deadline_ms() > 0);
  const v1::Job cancelled = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_CANCELLED; }, 15'000);
  CHECK(cancelled.attempt() == 0);
  CHECK(cancelled.worker_id() == 0);
  const v1::Invoice invoice = c.FinalInvoice(job);
  CHECK(invoice.charged_utok() == 0);
  CHECK(invoice.released_utok() == invoice.hold_utok());
  CHECK(invoice.hold_state() == v1::ESCROW_HOLD_STATE_VOIDED);
  CHECK(c.Sql("SELECT count(*) FROM assignments WHERE worker_id = " + std::to_string(worker)) == "0");
  CHECK_THAT(c.Sql("SELECT message FROM job_events WHERE job_id = " + std::to_string(job) + " ORDER BY event_id DESC LIMIT 1"),
             Catch::StartsWith("queue timeout: not started within 4000 ms (no worker runs job kind 'allreduce_bench'"));
  // The customer's escrow is whole again, and `billing balance` shows every bucket, the platform's too.
  auto acme = FromJson<v1::Balance>(c.Cli({"-o", "json", "billing", "balance", "acme"}).out);
  CHECK(acme.available_utok() == 50'000'000);
  CHECK(acme.escrow_utok() == 0);
  const std::string treasury = c.Cli({"billing", "balance", "treasury"}).out;
  CHECK_THAT(treasury, Catch::Contains("main") && Catch::Contains("-50.000000"));
  CHECK_THAT(c.Cli({"billing", "balance", "platform"}).out, Catch::Contains("fees"));
}
