// Real processes for end-to-end tests: a `tessera server` on its embedded PostgreSQL in a temp
// dir, more scheduler-only servers on the same database, `tessera-worker` agents, and the `tessera`
// CLI run as a user would, with JSON output parsed back into protobuf messages.
#pragma once

#include <signal.h>

#include <catch2/catch.hpp>
#include <google/protobuf/util/json_util.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <memory>
#include <thread>

#include "tessera/v1/billing.pb.h"
#include "tessera/v1/jobs.pb.h"
#include "tessera/v1/workers.pb.h"
#include "tests/support/process.h"

namespace tessera::testing {

inline const std::string kBin = TESSERA_BINARY_DIR;

template <typename Message>
Message FromJson(const std::string& json) {
  Message m;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  const auto status = google::protobuf::util::JsonStringToMessage(json, &m, options);
  INFO(json);
  REQUIRE(status.ok());
  return m;
}

// A command's exit code and everything it printed, stderr included.
inline CommandResult RunWithStderr(const std::vector<std::string>& argv) {
  std::string line;
  for (const std::string& a : argv) line += "'" + a + "' ";
  return RunCommand({"/bin/sh", "-c", line + "2>&1"});
}

class Cluster {
 public:
  explicit Cluster(const std::string& services = "intake,scheduler,billing,artifacts", int64_t lease_timeout_ms = 2'000,
                   const std::vector<std::string>& more_server_args = {}) {
    char tmpl[] = "/tmp/tessera-e2e-XXXXXX";
    dir_ = mkdtemp(tmpl);
    std::filesystem::permissions(dir_, std::filesystem::perms(0755));
    server_args_ = {kBin + "/tessera", "server", "--services", services, "--listen", "127.0.0.1:0", "--data-dir", dir_ + "/data",
                    "--port-file", dir_ + "/port", "--lease-timeout-ms", std::to_string(lease_timeout_ms), "--no-fsync"};
    server_args_.insert(server_args_.end(), more_server_args.begin(), more_server_args.end());
    server_ = std::make_unique<ChildProcess>(server_args_, dir_ + "/server.log");
    port_ = WaitForPort(dir_ + "/port");
  }

  // SIGKILLs the server wherever it is and starts it again on the same data directory (it adopts
  // the PostgreSQL cluster the dead one left running). The new server listens on a new port, or
  // with `same_port` on the old one, so that the workers find it again.
  void KillAndRestartServer(bool same_port = false) {
    StopServer(SIGKILL);
    StartServerAgain(same_port);
  }

  // Sends `sig` to the server and waits for it to exit; returns its exit status (as from waitpid).
  int StopServer(int sig) {
    server_->Signal(sig);
    const int status = server_->Wait(30'000);
    std::filesystem::remove(dir_ + "/port");
    return status;
  }
  void StartServerAgain(bool same_port) {
    std::vector<std::string> args = server_args_;
    if (same_port) *std::find(args.begin(), args.end(), "127.0.0.1:0") = address();
    server_ = std::make_unique<ChildProcess>(args, dir_ + "/server-" + std::to_string(++restarts_) + ".log");
    port_ = WaitForPort(dir_ + "/port");
  }

  // One value from the store of record, read with psql.
  std::string Sql(const std::string& query) {
    testing::CommandResult r = RunCommand({"/usr/bin/psql", DatabaseUrl(), "-Atc", query});
    REQUIRE(r.exit_code == 0);
    while (!r.out.empty() && r.out.back() == '\n') r.out.pop_back();
    return r.out;
  }

  // Another server hosting only the scheduler, on the main server's database. Returns its address.
  std::string StartScheduler(const std::string& name) {
    schedulers_[name] = std::make_unique<ChildProcess>(
        std::vector<std::string>{kBin + "/tessera", "server", "--services", "scheduler", "--listen", "127.0.0.1:0",
                                 "--database-url", DatabaseUrl(), "--port-file", dir_ + "/" + name + ".port",
                                 "--lease-timeout-ms", "2000"},
        dir_ + "/" + name + ".log");
    return "127.0.0.1:" + std::to_string(WaitForPort(dir_ + "/" + name + ".port"));
  }
  ChildProcess& scheduler(const std::string& name) { return *schedulers_.at(name); }

  std::string DatabaseUrl() const { return "host=" + dir_ + "/data/run port=5432 user=postgres dbname=tessera"; }
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  ~Cluster() {
    workers_.clear();
    schedulers_.clear();
    server_.reset();
    // A server killed by a failed test leaves its PostgreSQL running; stop it before removing the dir.
    RunCommand({"/bin/sh", "-c", "pg=$(ls -d /usr/lib/postgresql/*/bin | tail -1); d='" + dir_ +
                                     "/data/pg'; if [ \"$(id -u)\" = 0 ]; then runuser -u postgres -- $pg/pg_ctl -D $d -m immediate stop; "
                                     "else $pg/pg_ctl -D $d -m immediate stop; fi >/dev/null 2>&1; true"});
    if (getenv("TESSERA_KEEP_TEST_DIRS") == nullptr) std::filesystem::remove_all(dir_);
  }

  // The admin API key the server issued into its data directory at first start.
  std::string AdminKeyFile() const { return dir_ + "/data/admin.key"; }

  // Runs the CLI against this server as the admin; REQUIREs success unless `expect_ok` is false.
  testing::CommandResult Cli(std::vector<std::string> args, bool expect_ok = true) {
    return CliWithKeyFile(AdminKeyFile(), std::move(args), expect_ok);
  }

  // Runs the CLI with the API key in `key_file` (empty: none).
  testing::CommandResult CliWithKeyFile(const std::string& key_file, std::vector<std::string> args, bool expect_ok = true) {
    if (!key_file.empty()) args.insert(args.begin(), {"--api-key-file", key_file});
    args.insert(args.begin(), {kBin + "/tessera", "--server", "127.0.0.1:" + std::to_string(port_)});
    testing::CommandResult r = RunCommand(args);
    if (expect_ok) {
      INFO(JoinArgs(args) << " → " << r.out);
      REQUIRE(r.exit_code == 0);
    }
    return r;
  }

  // A worker offering one device; `servers` defaults to the main server.
  // The customer `acme` with 50 tokens to spend and the provider `gpuco`, as every test starts.
  void OpenMarket() {
    Cli({"account", "create", "acme"});
    Cli({"account", "create", "gpuco", "--kind", "provider"});
    Cli({"billing", "deposit", "acme", "50000000", "--idempotency-key", "opening"});
  }

  // A key of `role` for `account`, issued through the CLI and stored in a file; returns the path.
  std::string IssueKeyFile(const std::string& role, const std::string& account) {
    const std::string path = dir_ + "/" + role + "-" + account + ".key";
    std::vector<std::string> args = {"admin", "create-key", "--role", role};
    if (!account.empty()) args.insert(args.end(), {"--account", account});
    std::ofstream(path) << Cli(args).out;
    return path;
  }

  // A CPU worker (--cpu), even on a GPU machine: these tests are about the marketplace, and their
  // jobs ask for model "CPU". It runs with a provider key of `gpuco` (issued once).
  ChildProcess& StartWorker(const std::string& name, const std::string& ask, const std::string& servers = "",
                            const std::vector<std::string>& more_args = {}) {
    // `name` names the agent's state dir and log; a --name in more_args renames the machine.
    std::vector<std::string> args{kBin + "/tessera-worker", "--server", servers.empty() ? address() : servers, "--provider",
                                  "gpuco", "--api-key-file", ProviderKeyFile(), "--cpu", "--gpus", "1", "--ask",
                                  ask, "--usage-interval-ms", "200", "--state-dir", dir_ + "/" + name};
    if (std::find(more_args.begin(), more_args.end(), "--name") == more_args.end()) args.insert(args.end(), {"--name", name});
    args.insert(args.end(), more_args.begin(), more_args.end());
    workers_[name] = std::make_unique<ChildProcess>(args, dir_ + "/" + name + ".log");
    return *workers_[name];
  }

  v1::Job Job(int64_t id) { return FromJson<v1::Job>(Cli({"-o", "json", "job", "get", std::to_string(id)}).out); }

  v1::Job WaitFor(int64_t id, const std::function<bool(const v1::Job&)>& done, int timeout_ms) {
    v1::Job job;
    for (int waited = 0; waited < timeout_ms; waited += 100) {
      job = Job(id);
      if (done(job)) return job;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    FAIL("job " << id << " stuck in state " << v1::JobState_Name(job.state()) << "; logs in " << dir_);
    return job;
  }

  int64_t Submit(const std::string& spec_yaml, const std::string& request_id) {
    const std::string path = dir_ + "/" + request_id + ".yaml";
    std::ofstream(path) << spec_yaml;
    auto r = Cli({"-o", "json", "job", "submit", "-f", path, "--account", "acme", "--request-id", request_id});
    return FromJson<v1::SubmitJobResponse>(r.out).job().job_id();
  }

  // The job's invoice once settlement has made it final.
  v1::Invoice FinalInvoice(int64_t job_id) {
    v1::Invoice invoice;
    for (int i = 0; i < 100 && !invoice.final(); ++i) {
      invoice = FromJson<v1::Invoice>(Cli({"-o", "json", "billing", "invoice", std::to_string(job_id)}).out);
      if (!invoice.final()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    REQUIRE(invoice.final());
    return invoice;
  }

  // gpuco's provider key file, issued on first use.
  const std::string& ProviderKeyFile() {
    if (provider_key_file_.empty()) provider_key_file_ = IssueKeyFile("provider", "gpuco");
    return provider_key_file_;
  }

  ChildProcess& server() { return *server_; }
  ChildProcess& worker(const std::string& name) { return *workers_.at(name); }
  const std::string& dir() const { return dir_; }

 private:
  int WaitForPort(const std::string& path) {
    for (int i = 0; i < 600 && !std::filesystem::exists(path); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    int port = 0;
    std::ifstream(path) >> port;
    INFO("logs in " << dir_);
    REQUIRE(port > 0);
    return port;
  }

  static std::string JoinArgs(const std::vector<std::string>& args) {
    std::string line;
    for (size_t i = 1; i < args.size(); ++i) line += (i > 1 ? " " : "") + args[i];
    return line;
  }

  std::string dir_;
  std::string provider_key_file_;
  int port_ = 0;
  std::vector<std::string> server_args_;
  int restarts_ = 0;
  std::unique_ptr<ChildProcess> server_;
  std::map<std::string, std::unique_ptr<ChildProcess>> workers_;
  std::map<std::string, std::unique_ptr<ChildProcess>> schedulers_;
};

// A one-GPU `sleep` job spec in YAML, as a customer would write it.
inline std::string SleepSpec(int duration_ms) {
  return "kind: sleep\ngpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 600000\nsleep:\n  duration_ms: " +
         std::to_string(duration_ms) + "\n";
}

inline bool IsTerminal(const v1::Job& job) {
  return job.state() == v1::JOB_STATE_SUCCEEDED || job.state() == v1::JOB_STATE_FAILED ||
         job.state() == v1::JOB_STATE_CANCELLED;
}

inline int64_t WorkerId(Cluster& c, const std::string& name) {
  auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
  for (const v1::Worker& w : workers.workers()) {
    if (w.name() == name) return w.worker_id();
  }
  FAIL("worker " << name << " is not registered");
  return 0;
}

}  // namespace tessera::testing
