// Identity end to end, with real processes: the server issues the first admin key into its data
// directory (owner-readable only); the admin issues customer and provider keys with the CLI; every
// CLI call and every worker needs a key of the right role, and a bad one is a clear error.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>

#include <fstream>
#include <thread>

#include "tessera/v1/jobs.pb.h"
#include "tests/support/e2e_cluster.h"

using namespace tessera;
using testing::Cluster;
using testing::FromJson;

namespace {

using testing::RunWithStderr;

TEST_CASE("keys end to end: the bootstrap admin key, issued keys by role, and refusals", "[e2e][auth]") {
  Cluster c;
  struct stat key_file {};
  REQUIRE(stat(c.AdminKeyFile().c_str(), &key_file) == 0);
  CHECK((key_file.st_mode & 0777) == 0600);

  const std::string bin = testing::kBin + "/tessera";
  auto no_key = RunWithStderr({bin, "--server", c.address(), "account", "list"});
  CHECK(no_key.exit_code == 1);
  CHECK_THAT(no_key.out, Catch::Contains("error: UNAUTHENTICATED: missing API key"));
  auto bad_key = RunWithStderr({bin, "--server", c.address(), "--api-key", "tsk_nope", "account", "list"});
  CHECK_THAT(bad_key.out, Catch::Contains("error: UNAUTHENTICATED: malformed API key"));
  auto missing_file = RunWithStderr({bin, "--server", c.address(), "--api-key-file", c.dir() + "/nope.key", "account", "list"});
  CHECK_THAT(missing_file.out, Catch::Contains("cannot read the API key file"));

  // Health needs no key (probes have none); the leader's WorkerService is SERVING.
  auto health = RunWithStderr({bin, "--server", c.address(), "health", "--service", "tessera.v1.WorkerService"});
  CHECK(health.exit_code == 0);
  CHECK(health.out == "SERVING\n");
  CHECK(RunWithStderr({bin, "--server", c.address(), "health", "--service", "tessera.v1.Nope"}).exit_code == 1);

  c.OpenMarket();
  const std::string acme_key = c.IssueKeyFile("customer", "acme");
  testing::ChildProcess* w1 = &c.StartWorker("w1", "1000000");  // with gpuco's provider key
  const std::string spec = c.dir() + "/sleep.yaml";
  {
    std::ofstream(spec) << testing::SleepSpec(50);
  }
  const auto submitted = FromJson<v1::SubmitJobResponse>(
      c.CliWithKeyFile(acme_key, {"-o", "json", "job", "submit", "-f", spec, "--account", "acme", "--request-id", "k1"}).out);
  const v1::Job done = c.WaitFor(submitted.job().job_id(), testing::IsTerminal, 20'000);
  CHECK(done.state() == v1::JOB_STATE_SUCCEEDED);
  // The worker made its Ed25519 key before registering, keeps it owner-readable only, and signed
  // the usage the server stored.
  REQUIRE(stat((c.dir() + "/w1/worker.ed25519").c_str(), &key_file) == 0);
  CHECK((key_file.st_mode & 0777) == 0600);
  CHECK(c.Sql("SELECT length(public_key) FROM workers") == "32");
  CHECK(c.Sql("SELECT count(*) FROM usage_reports WHERE signature IS NULL") == "0");
  CHECK(c.Sql("SELECT count(*) FROM fraud_signals") == "0");
  // Restarted, the agent signs with the key it kept (the server still verifies it).
  w1->Signal(SIGTERM);
  CHECK(w1->Wait(10'000) >= 0);
  c.StartWorker("w1", "1000000");
  const auto again = FromJson<v1::SubmitJobResponse>(
      c.CliWithKeyFile(acme_key, {"-o", "json", "job", "submit", "-f", spec, "--account", "acme", "--request-id", "k2"}).out);
  CHECK(c.WaitFor(again.job().job_id(), testing::IsTerminal, 20'000).state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(c.Sql("SELECT count(*) FROM workers") == "1");  // the same machine, not a new registration
  CHECK(c.Sql("SELECT count(*) FROM fraud_signals") == "0");

  // The customer's key cannot mint tokens, nor act as another customer.
  auto deposit = RunWithStderr({bin, "--server", c.address(), "--api-key-file", acme_key, "billing", "deposit", "acme", "1"});
  CHECK(deposit.exit_code == 1);
  CHECK_THAT(deposit.out, Catch::Contains("PERMISSION_DENIED: a customer key may not call tessera.v1.BillingService/Deposit"));
  c.Cli({"account", "create", "globex"});
  auto other = RunWithStderr(
      {bin, "--server", c.address(), "--api-key-file", acme_key, "job", "submit", "-f", spec, "--account", "globex"});
  CHECK_THAT(other.out, Catch::Contains("PERMISSION_DENIED: this API key acts for account 'acme', not for account 'globex'"));

  // A worker started with a customer's key is refused at registration and exits with the reason.
  auto worker = RunWithStderr({testing::kBin + "/tessera-worker", "--server", c.address(), "--provider", "gpuco", "--api-key-file",
                               acme_key, "--name", "rogue", "--cpu", "--state-dir", c.dir() + "/rogue"});
  CHECK(worker.exit_code == 1);
  CHECK_THAT(worker.out, Catch::Contains("registration failed: a customer key may not call tessera.v1.WorkerService/RegisterWorker"));

  // Revoked: the key stops working (within the servers' 5 s key cache).
  const std::string key_id = c.Sql("SELECT key_id FROM api_keys k JOIN accounts a USING (account_id) WHERE a.name = 'acme'");
  c.Cli({"admin", "revoke-key", key_id});
  bool refused = false;
  for (int i = 0; i < 70 && !refused; ++i) {
    refused = RunWithStderr({bin, "--server", c.address(), "--api-key-file", acme_key, "job", "list", "--account", "acme"})
                  .out.find("UNAUTHENTICATED: invalid or revoked API key") != std::string::npos;
    if (!refused) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  CHECK(refused);
}

}  // namespace
