// README.md's "A tour of the CLI", run (issue 16: `tessera billing proof 1 3 -o json` failed as the
// README wrote it). Every client line of the tour's sh block runs as a user would type it, through
// /bin/sh in a scratch dir, top to bottom against a live server with one CPU worker; a few lines are
// skipped by the explicit rules of Classify, and a line no rule takes fails the test, so that a new
// tour line cannot go untried. Exit codes other than 0, outputs the tour promises and the waits a
// user at a terminal would make are in Expectations, each keyed by its exact line.
#include <catch2/catch.hpp>

#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <set>
#include <sstream>
#include <thread>

#include "tests/support/e2e_cluster.h"
#include "tests/support/files.h"

using namespace tessera;
using testing::Cluster;
using testing::FromJson;

using testing::ReadAll;

namespace {

const std::string kTourHeading = "## A tour of the CLI";
constexpr int kLineTimeoutS = 60;  // no tour line waits longer; `job watch` would otherwise hang a broken run

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

std::string Trim(const std::string& s) {
  const size_t first = s.find_first_not_of(" \t");
  if (first == std::string::npos) return "";
  return s.substr(first, s.find_last_not_of(" \t") - first + 1);
}

// The command of a tour line: the line without its trailing `# comment` (a '#' outside quotes that
// starts a word, as sh reads it).
std::string WithoutComment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char ch = line[i];
    if (quote != 0) {
      if (ch == quote) quote = 0;
    } else if (ch == '\'' || ch == '"') {
      quote = ch;
    } else if (ch == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return Trim(line.substr(0, i));
    }
  }
  return Trim(line);
}

// The commands of the first sh block after the tour's heading: backslash continuations joined,
// blank and comment-only lines dropped.
std::vector<std::string> TourCommands(const std::string& readme) {
  const size_t heading = readme.find(kTourHeading);
  REQUIRE(heading != std::string::npos);
  const size_t open = readme.find("```sh\n", heading);
  REQUIRE(open != std::string::npos);
  const size_t body = open + 6;
  const size_t close = readme.find("\n```", body);
  REQUIRE(close != std::string::npos);
  std::istringstream block(readme.substr(body, close - body));
  std::vector<std::string> commands;
  std::string line, joined;
  while (std::getline(block, line)) {
    if (!line.empty() && line.back() == '\\') {
      joined += line.substr(0, line.size() - 1);
      continue;
    }
    joined += line;
    const std::string command = WithoutComment(joined);
    joined.clear();
    if (!command.empty()) commands.push_back(command);
  }
  return commands;
}

enum class Rule { kRun, kSkip, kExport, kStartWorker, kDrainWorker, kUnknown };

// The only ways a tour line escapes being run as written, in order.
Rule Classify(const std::string& command) {
  // The shell's state for the lines after it: applied to each of them (tessera-data is the cluster's).
  if (StartsWith(command, "export ")) return Rule::kExport;
  // Servers in other configurations (TLS, split services, limits) and migrations: the cluster's
  // server is the tour's `tessera server`, and it migrated its database at start.
  if (StartsWith(command, "tessera server") || StartsWith(command, "tessera migrate")) return Rule::kSkip;
  // TLS needs certificates; tests/integration/tls_test.cc covers it.
  if (command.find("--tls-") != std::string::npos) return Rule::kSkip;
  // The first agent line: a CPU agent named rig-a at the same ask stands in for it (Cluster::StartWorker);
  // the later ones show other agent flags.
  if (StartsWith(command, "tessera-worker ")) return Rule::kStartWorker;
  // `pidof` would find every agent on the machine: the test sends SIGTERM to its own.
  if (command == "kill -TERM $(pidof tessera-worker)") return Rule::kDrainWorker;
  if (StartsWith(command, "tessera ")) return Rule::kRun;
  return Rule::kUnknown;
}

// What a run line must do beyond exiting 0.
struct Expectation {
  int exit_code = 0;
  std::string output;             // printed (stdout or stderr), when not empty
  std::function<void()> before;   // what a user at a terminal would have waited for
  std::function<void()> after;
};

Expectation Prints(std::string output, std::function<void()> before = {}) {
  Expectation e;
  e.output = std::move(output);
  e.before = std::move(before);
  return e;
}
Expectation ExitsWith(int exit_code, std::string output) {
  Expectation e = Prints(std::move(output));
  e.exit_code = exit_code;
  return e;
}
Expectation WaitsFirst(std::function<void()> before) { return Prints("", std::move(before)); }
Expectation ChecksAfter(std::function<void()> after) {
  Expectation e;
  e.after = std::move(after);
  return e;
}

std::map<std::string, Expectation> Expectations(Cluster& c, const std::string& tour_dir) {
  auto waits_with_reason = [&c](std::vector<int64_t> jobs) {
    return [&c, jobs] {
      for (int64_t id : jobs) c.WaitFor(id, [](const v1::Job& j) { return !j.wait_reason().empty(); }, 15'000);
    };
  };
  return {
      {"tessera health --service tessera.v1.JobService", Prints("SERVING")},
      {"tessera artifact ls --account acme", Prints("2 artifacts; ")},
      {"tessera artifact get $(sha256sum examples/sleep.json | cut -c1-64) -O sleep-copy.json --account acme",
       ChecksAfter([tour_dir] { CHECK(ReadAll(tour_dir + "/sleep-copy.json") == ReadAll(tour_dir + "/examples/sleep.json")); })},
      {"tessera admin create-key --role customer --account acme --out acme.key", ChecksAfter([tour_dir] {
         struct stat st {};
         REQUIRE(stat((tour_dir + "/acme.key").c_str(), &st) == 0);
         CHECK((st.st_mode & 0777) == 0600);
         CHECK(StartsWith(ReadAll(tour_dir + "/acme.key"), "tsk_"));
       })},
      {"tessera admin revoke-key $(cut -c5-20 ci.key)", Prints("revoked")},
      {"tessera --api-key-file acme.key billing balance acme", Prints("100.000000")},
      {"tessera job watch 1", Prints("SUCCEEDED")},
      // The scheduler says why a job waits at its next full pass (--tick-interval-ms).
      {"tessera job get 2", Prints("no GPU of model H100 (GPUs here: CPU)", waits_with_reason({2, 3, 4}))},
      {"tessera job list --account acme --state QUEUED",
       Prints("no worker runs job kind 'allreduce_bench' (workers run: ")},
      {"tessera job watch 4", ExitsWith(3, "CANCELLED")},
      {"tessera billing balance platform", Prints("fees")},
      {"tessera billing balance treasury", Prints("-100.000000")},
      // Settlement is asynchronous: the invoice is final, and job 5's reports in a batch, soon after the job ends.
      {"tessera billing invoice 1 --account acme", Prints("final", [&c] { c.FinalInvoice(1); })},
      {"tessera billing proof 5 3 -o json > proof.json", WaitsFirst([&c] { c.FinalInvoice(5); })},
      {"tessera billing verify-proof proof.json", Prints("proof holds")},
      {"tessera --api-key-file gpuco.key billing payout request gpuco 1000", Prints("REQUESTED")},
      {"tessera billing payout approve 1", Prints("APPROVED")},
      {"tessera worker retire 1 --reason \"rig-a sold\"", Prints("RETIRED")},
  };
}

const v1::Worker* FindWorker(const v1::ListWorkersResponse& workers, const std::string& name) {
  for (const v1::Worker& w : workers.workers()) {
    if (w.name() == name) return &w;
  }
  return nullptr;
}

// Waits until worker `name` is (or is no longer) connected, and ACTIVE when connected.
void WaitForWorker(Cluster& c, const std::string& name, bool connected) {
  for (int i = 0; i < 300; ++i) {
    const auto workers = FromJson<v1::ListWorkersResponse>(c.Cli({"-o", "json", "worker", "list"}).out);
    const v1::Worker* w = FindWorker(workers, name);
    if (w != nullptr && w->connected() == connected && (!connected || w->state() == v1::WORKER_STATE_ACTIVE)) return;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  FAIL("worker " << name << (connected ? " never became ACTIVE" : " never disconnected") << "; logs in " << c.dir());
}

// Runs one tour line as typed, in `dir`, after the tour's exports so far; stderr joins stdout.
testing::CommandResult RunLine(const Cluster& c, const std::string& dir, const std::vector<std::string>& exports,
                               const std::string& command) {
  std::string script = "cd '" + dir + "' || exit 100\nunset TESSERA_API_KEY TESSERA_API_KEY_FILE TESSERA_TLS_CA\n";
  script += "export PATH='" + testing::kBin + "':\"$PATH\" TESSERA_SERVER='" + c.address() + "'\n";
  for (const std::string& e : exports) script += e + "\n";
  script += "exec 2>&1\n" + command + "\n";
  return testing::RunCommand({"/usr/bin/timeout", std::to_string(kLineTimeoutS), "/bin/sh", "-c", script});
}

}  // namespace

TEST_CASE("every client line of the README's tour runs against a live server as written", "[e2e][readme]") {
  const std::vector<std::string> commands = TourCommands(ReadAll(std::string(TESSERA_SOURCE_DIR) + "/README.md"));
  Cluster c;
  const std::string dir = c.dir() + "/tour";
  std::filesystem::create_directory(dir);
  std::filesystem::create_directory_symlink(std::string(TESSERA_SOURCE_DIR) + "/examples", dir + "/examples");
  std::filesystem::create_directory_symlink(c.dir() + "/data", dir + "/tessera-data");

  std::map<std::string, Expectation> expectations = Expectations(c, dir);
  std::set<std::string> expected_seen;
  std::vector<std::string> exports;
  bool worker_started = false, worker_drained = false;
  int ran = 0;
  for (const std::string& command : commands) {
    INFO("tour line: " << command << "\nlogs in " << c.dir());
    switch (Classify(command)) {
      case Rule::kUnknown:
        FAIL("a tour line that the test neither runs nor skips by a rule of Classify");
        break;
      case Rule::kSkip:
        break;
      case Rule::kExport:
        exports.push_back(command);
        break;
      case Rule::kStartWorker:
        if (!worker_started) {
          c.StartWorker("rig-a", "1200000");
          WaitForWorker(c, "rig-a", /*connected=*/true);
          worker_started = true;
        }
        break;
      case Rule::kDrainWorker: {
        REQUIRE(worker_started);
        c.worker("rig-a").Signal(SIGTERM);
        const int status = c.worker("rig-a").Wait(30'000);
        CHECK((WIFEXITED(status) && WEXITSTATUS(status) == 0));
        WaitForWorker(c, "rig-a", /*connected=*/false);
        worker_drained = true;
        break;
      }
      case Rule::kRun: {
        // Real values only: ids and files the lines before created, no placeholders.
        REQUIRE(command.find("…") == std::string::npos);
        REQUIRE(command.find('[') == std::string::npos);
        Expectation expect;
        if (auto it = expectations.find(command); it != expectations.end()) {
          expect = it->second;
          expected_seen.insert(command);
        }
        if (expect.before) expect.before();
        const testing::CommandResult r = RunLine(c, dir, exports, command);
        INFO("output:\n" << r.out);
        REQUIRE(r.exit_code == expect.exit_code);
        if (!expect.output.empty()) CHECK_THAT(r.out, Catch::Contains(expect.output));
        if (expect.after) expect.after();
        ++ran;
        break;
      }
    }
  }
  // The whole tour ran: its agent came and went, and every expectation met its line (a reworded
  // line must take its expectation along).
  CHECK(worker_started);
  CHECK(worker_drained);
  for (const auto& [command, expect] : expectations) {
    INFO("an expectation whose line is not in the tour: " << command);
    CHECK(expected_seen.count(command) == 1);
  }
  CHECK(ran >= 40);
}
