// End to end with real processes: `tessera server` (embedded PostgreSQL), two `tessera-worker`
// agents, and the `tessera` CLI as a customer would use it. Then a worker is SIGKILLed mid-job: its
// lease expires, the job finishes on the other worker, and the dead worker is paid only for the
// usage it reported.
#include <catch2/catch.hpp>
#include <google/protobuf/util/json_util.h>
#include <signal.h>
#include <sys/wait.h>

#include <algorithm>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <thread>

#include "services/common/money.h"
#include "tessera/v1/billing.pb.h"
#include "tessera/v1/jobs.pb.h"
#include "tessera/v1/workers.pb.h"
#include "tests/support/e2e_cluster.h"

using namespace tessera;
using testing::ChildProcess;
using testing::Cluster;
using testing::FromJson;
using testing::RunCommand;
using testing::WorkerId;

namespace {

const char* kTrainSpec =
    "kind: train_mlp\ngpu_count: 1\ngpu_models: [CPU]\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 600000\n"
    "train_mlp:\n  seed: SEED\n  input_dim: 8\n  hidden_dim: 32\n  output_dim: 1\n  samples: 2048\n  batch_size: 32\n"
    "  epochs: 15\n  learning_rate_micros: 50000\n";

std::string TrainSpec(int seed) {
  std::string spec = kTrainSpec;
  spec.replace(spec.find("SEED"), 4, std::to_string(seed));
  return spec;
}

}  // namespace

TEST_CASE("customers, workers and the ledger end to end; a killed worker's job finishes elsewhere", "[e2e][slow]") {
  Cluster c;
  c.OpenMarket();
  ChildProcess& cheap = c.StartWorker("cheap", "1000000");
  c.StartWorker("dear", "1500000");
  for (int i = 0; i < 100; ++i) {
    auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
    int connected = 0;
    for (const auto& w : workers.workers()) connected += w.connected() ? 1 : 0;
    if (connected == 2) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  const int64_t cheap_id = WorkerId(c, "cheap");
  const int64_t dear_id = WorkerId(c, "dear");
  // Both agents proved their (CPU) hardware before any job reached them, and the operator sees how.
  for (int i = 0; i < 100 && c.Sql("SELECT count(*) FROM gpu_challenges WHERE outcome = 'PASSED'") != "2"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(c.Sql("SELECT count(*) FROM gpu_challenges WHERE outcome = 'PASSED' AND reason = 'REGISTRATION'") == "2");
  CHECK(c.Sql("SELECT count(*) FROM workers WHERE state = 'ACTIVE' AND verified_at IS NOT NULL") == "2");
  CHECK_THAT(c.Cli({"admin", "fraud", "show", std::to_string(cheap_id)}).out, Catch::Contains("PASSED") && Catch::Contains("0 CPU"));

  // Bad input through the CLI is a clear error, not a crash.
  auto bad = c.Cli({"job", "get", "-5"}, false);
  CHECK(bad.exit_code != 0);

  // Two training jobs run to completion and are invoiced.
  const int64_t job_a = c.Submit(TrainSpec(1), "train-a");
  const int64_t job_b = c.Submit(TrainSpec(2), "train-b");
  CHECK(c.Cli({"job", "watch", std::to_string(job_a)}).exit_code == 0);
  int64_t charged = 0, fees = 0;
  for (int64_t id : {job_a, job_b}) {
    v1::Job job = c.WaitFor(id, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 60'000);
    CHECK(job.result().train_mlp().final_loss() < job.result().train_mlp().initial_loss());
    CHECK(job.result().train_mlp().weights_sha256().size() == 64);
    const v1::Invoice invoice = c.FinalInvoice(id);
    REQUIRE(invoice.lines_size() == 1);
    CHECK(invoice.lines(0).gpu_ms() > 0);
    CHECK(invoice.charged_utok() == *CumulativeCharge(invoice.lines(0).gpu_ms(), invoice.lines(0).price_utok_per_gpu_hour()));
    CHECK(invoice.released_utok() == invoice.hold_utok() - invoice.charged_utok());
    charged += invoice.charged_utok();
    fees += invoice.fee_utok();
  }

  // A worker's real throughput, measured by a gemm_bench job (the CPU device here).
  {
    const int64_t bench = c.Submit("kind: gemm_bench\ngpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 600000\n"
                                   "gemm_bench:\n  n: 128\n  iterations: 5\n", "gemm");
    const v1::Job done = c.WaitFor(bench, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
    CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
    CHECK(done.result().gemm_bench().achieved_tflops() > 0);
    CHECK(done.result().gemm_bench().backend() == "cpu");
    // A CPU's throughput at its own scale, not "0.000 TFLOP/s".
    const std::string shown = c.Cli({"job", "get", std::to_string(bench)}).out;
    INFO(shown);
    CHECK((shown.find(" GFLOP/s on cpu") != std::string::npos || shown.find(" MFLOP/s on cpu") != std::string::npos));
    CHECK(shown.find(" 0.0 ") == std::string::npos);
    const v1::Invoice invoice = c.FinalInvoice(bench);
    charged += invoice.charged_utok();
    fees += invoice.fee_utok();
  }

  // A training job over both workers: node rank 0's communicator id reaches the other through the
  // scheduler, and both finish.
  {
    std::string spread = TrainSpec(3);
    spread.replace(spread.find("gpu_count: 1"), 12, "gpu_count: 2\nplacement: GPU_PLACEMENT_SPREAD");
    const int64_t job = c.Submit(spread, "train-spread");
    const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return testing::IsTerminal(j); }, 60'000);
    CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
    CHECK(c.Sql("SELECT count(*) FROM job_rendezvous WHERE job_id = " + std::to_string(job)) == "1");
    CHECK(c.Sql("SELECT count(*) FROM assignments WHERE end_reason = 'succeeded' AND job_id = " + std::to_string(job)) == "2");
    const v1::Invoice invoice = c.FinalInvoice(job);
    charged += invoice.charged_utok();
    fees += invoice.fee_utok();
  }

  // Anyone can check a settled report against its batch's published Merkle root, offline.
  {
    const std::string proof_json = c.Cli({"-o", "json", "billing", "proof", std::to_string(job_a), "1"}).out;
    const v1::UsageProof proof = FromJson<v1::UsageProof>(proof_json);
    CHECK(proof.job_id() == job_a);
    const auto path = std::filesystem::temp_directory_path() / ("tessera-proof-" + std::to_string(getpid()) + ".json");
    std::ofstream(path) << proof_json;
    CHECK(c.Cli({"billing", "verify-proof", path.string()}).out.starts_with("proof holds"));
    v1::UsageProof forged = proof;
    forged.set_gpu_ms(proof.gpu_ms() / 2);
    std::string forged_json;
    REQUIRE(google::protobuf::util::MessageToJsonString(forged, &forged_json).ok());
    std::ofstream(path) << forged_json;
    CHECK(c.Cli({"billing", "verify-proof", path.string()}, false).exit_code == 1);
    std::filesystem::remove(path);
  }

  // A job on the cheap worker; the worker dies mid-job.
  const int64_t job_k = c.Submit(testing::SleepSpec(4000), "sleep-k");
  c.WaitFor(job_k, [&](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING && j.worker_id() == cheap_id; }, 30'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'200));
  cheap.Signal(SIGKILL);
  cheap.Wait(5'000);
  const v1::Job done = c.WaitFor(job_k, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 60'000);
  CHECK(done.attempt() == 2);
  CHECK(done.worker_id() == dear_id);
  const v1::Invoice invoice = c.FinalInvoice(job_k);
  REQUIRE(invoice.lines_size() == 2);
  const v1::InvoiceLine& killed = invoice.lines(0);
  const v1::InvoiceLine& rerun = invoice.lines(1);
  CHECK(killed.worker_id() == cheap_id);
  CHECK(killed.usage_reports() >= 1);
  CHECK(killed.gpu_ms() > 0);
  CHECK(killed.gpu_ms() < 4'000);  // only what it reported before dying, never the whole job
  CHECK(killed.charge_utok() == *CumulativeCharge(killed.gpu_ms(), 1'000'000));
  CHECK(rerun.worker_id() == dear_id);
  CHECK(rerun.gpu_ms() >= 4'000);
  CHECK(rerun.charge_utok() == *CumulativeCharge(rerun.gpu_ms(), 1'500'000));
  charged += invoice.charged_utok();
  fees += invoice.fee_utok();

  // A cancelled running job stops on its worker and gets its unspent escrow back.
  const int64_t job_c = c.Submit(testing::SleepSpec(60000), "sleep-c");
  c.WaitFor(job_c, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_RUNNING; }, 30'000);
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  c.Cli({"job", "cancel", std::to_string(job_c)});
  CHECK(c.Cli({"job", "cancel", std::to_string(job_c)}, false).exit_code != 0);  // already CANCELLED
  const v1::Invoice cancelled = c.FinalInvoice(job_c);
  CHECK(cancelled.job_state() == v1::JOB_STATE_CANCELLED);
  CHECK(cancelled.released_utok() == cancelled.hold_utok() - cancelled.charged_utok());
  charged += cancelled.charged_utok();
  fees += cancelled.fee_utok();
  // The worker is free again and runs the next job.
  const int64_t job_after = c.Submit(testing::SleepSpec(100), "sleep-after");
  c.WaitFor(job_after, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED; }, 30'000);
  const v1::Invoice after = c.FinalInvoice(job_after);
  charged += after.charged_utok();
  fees += after.fee_utok();
  const std::string listed = c.Cli({"job", "list", "--account", "acme"}).out;
  CHECK_THAT(listed, Catch::Contains("CANCELLED"));
  CHECK_THAT(listed, Catch::Contains("SUCCEEDED"));

  // Money is conserved: what the customer spent is what the provider and the platform received.
  auto acme = FromJson<v1::Balance>(c.Cli({"-o", "json", "billing", "balance", "acme"}).out);
  auto gpuco = FromJson<v1::Balance>(c.Cli({"-o", "json", "billing", "balance", "gpuco"}).out);
  CHECK(acme.escrow_utok() == 0);
  CHECK(acme.available_utok() == 50'000'000 - charged);
  CHECK(gpuco.earnings_utok() == charged - fees);

  // The provider is paid out what it asks for once an admin approves; above its earnings is refused.
  CHECK(c.Cli({"billing", "payout", "request", "gpuco", std::to_string(gpuco.earnings_utok() + 1)}, false).exit_code != 0);
  const auto payout = FromJson<v1::Payout>(
      c.Cli({"-o", "json", "billing", "payout", "request", "gpuco", std::to_string(gpuco.earnings_utok())}).out);
  CHECK(payout.state() == v1::PAYOUT_STATE_REQUESTED);
  CHECK_THAT(c.Cli({"billing", "payout", "list", "--state", "REQUESTED"}).out, Catch::Contains("gpuco"));
  CHECK(FromJson<v1::Payout>(c.Cli({"-o", "json", "billing", "payout", "approve", std::to_string(payout.payout_id())}).out)
            .state() == v1::PAYOUT_STATE_APPROVED);
  const auto paid = FromJson<v1::Balance>(c.Cli({"-o", "json", "billing", "balance", "gpuco"}).out);
  CHECK(paid.earnings_utok() == 0);
  CHECK(paid.payout_pending_utok() == 0);

  // The month's statement reads the same money by kind.
  const std::time_t now = std::time(nullptr);
  char month[8];
  std::strftime(month, sizeof month, "%Y-%m", std::gmtime(&now));
  const auto statement = FromJson<v1::Statement>(c.Cli({"-o", "json", "billing", "statement", "acme", month}).out);
  REQUIRE(statement.buckets_size() == 2);
  CHECK(statement.buckets(0).closing_utok() == acme.available_utok());
  CHECK_THAT(c.Cli({"billing", "statement", "gpuco", month}).out, Catch::Contains("PAYOUT"));
  const auto by_provider = FromJson<v1::UsageReportSummary>(c.Cli({"-o", "json", "billing", "usage", "--group-by", "provider"}).out);
  REQUIRE(by_provider.rows_size() == 1);
  CHECK(by_provider.rows(0).charged_utok() == charged);
  CHECK(FromJson<v1::Revenue>(c.Cli({"-o", "json", "billing", "revenue"}).out).fee_utok() == fees);
  CHECK(c.Cli({"-o", "csv", "billing", "usage", "--group-by", "region"}).out.starts_with("region,GPU-MS,CHARGED,FEES,REPORTS,JOBS\r\n"));
  const std::string csv = c.Cli({"billing", "export"}).out;
  CHECK(csv.starts_with("batch_id,leaf_index,job_id,attempt,worker_id,seq,gpu_ms,"));
  CHECK(static_cast<uint64_t>(std::count(csv.begin(), csv.end(), '\n')) == by_provider.rows(0).reports() + 1);
  const std::string jsonl = c.Cli({"billing", "export", "--format", "jsonl"}).out;
  CHECK(jsonl.starts_with("{\"batch_id\":"));
  CHECK_THAT(jsonl, Catch::Contains("\"provider\":\"gpuco\""));
  const std::string human = c.Cli({"billing", "invoice", std::to_string(job_k)}).out;
  CHECK_THAT(human, Catch::Contains("final"));

  // SIGTERM shuts the server down cleanly (and its embedded PostgreSQL with it).
  c.server().Signal(SIGTERM);
  const int status = c.server().Wait(30'000);
  REQUIRE(status != -1);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK_FALSE(std::filesystem::exists(c.dir() + "/data/pg/postmaster.pid"));
}
