// Overload: far more clients than the server has call threads, each call with a deadline. The
// server refuses what it cannot serve at once with RESOURCE_EXHAUSTED instead of queueing it, so
// its memory stays flat however long the storm lasts, and it serves normally once the storm ends.
#include <catch2/catch.hpp>

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "services/auth/client_channel.h"
#include "tessera/v1/jobs.grpc.pb.h"
#include "tests/support/e2e_cluster.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

constexpr int kClients = 200;
constexpr int kRpcThreads = 8;
constexpr auto kStorm = std::chrono::seconds(12);
constexpr auto kDeadline = std::chrono::seconds(2);

int64_t RssKib(pid_t pid) {
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmRSS:", 0) == 0) return std::stoll(line.substr(6));
  }
  return 0;
}

}  // namespace

TEST_CASE("under overload the server answers RESOURCE_EXHAUSTED and its memory stays flat", "[crash][overload]") {
  Cluster c("intake,scheduler,billing", 2'000, {"--max-rpc-threads", std::to_string(kRpcThreads)});
  c.OpenMarket();
  for (int i = 0; i < 20; ++i) c.Submit(SleepSpec(100'000), "backlog-" + std::to_string(i));  // something to list
  absl::StatusOr<std::string> key = auth::ReadApiKeyFile(c.AdminKeyFile());
  REQUIRE(key.ok());

  std::atomic<bool> stop{false};
  std::mutex mu;
  std::map<std::string, int> outcomes;  // status code name (and message for RESOURCE_EXHAUSTED) → calls
  std::atomic<int64_t> slowest_ms{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < kClients; ++i) {
    clients.emplace_back([&, i] {
      grpc::ChannelArguments args;
      args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own, as separate clients have
      args.SetInt("tessera.client", i);
      auto stub = v1::JobService::NewStub(auth::AuthenticatedChannel(c.address(), *key, nullptr, args));
      std::map<std::string, int> mine;
      while (!stop) {
        grpc::ClientContext ctx;
        ctx.set_deadline(std::chrono::system_clock::now() + kDeadline);
        v1::ListJobsRequest request;
        request.set_account("acme");
        request.set_page_size(100);
        v1::ListJobsResponse response;
        const auto began = std::chrono::steady_clock::now();
        const grpc::Status s = stub->ListJobs(&ctx, request, &response);
        const int64_t took_ms =
            std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - began).count();
        int64_t seen = slowest_ms.load();
        while (took_ms > seen && !slowest_ms.compare_exchange_weak(seen, took_ms)) {
        }
        ++mine[s.ok() ? "OK" : std::to_string(s.error_code()) + " " + s.error_message()];
      }
      std::lock_guard lock(mu);
      for (const auto& [k, n] : mine) outcomes[k] += n;
    });
  }
  // Memory is sampled through the storm; the first quarter is warm-up (threads, connections).
  std::vector<int64_t> rss;
  const auto until = std::chrono::steady_clock::now() + kStorm;
  while (std::chrono::steady_clock::now() < until) {
    rss.push_back(RssKib(c.server().pid()));
    std::this_thread::sleep_for(std::chrono::milliseconds(250));
  }
  stop = true;
  for (std::thread& t : clients) t.join();

  const int64_t settled_kib = rss[rss.size() / 4];
  const int64_t peak_kib = *std::max_element(rss.begin() + static_cast<std::ptrdiff_t>(rss.size() / 4), rss.end());
  int ok = 0, exhausted = 0, other = 0;
  std::string summary;
  for (const auto& [outcome, n] : outcomes) {
    summary += "\n  " + std::to_string(n) + " × " + outcome;
    if (outcome == "OK") {
      ok += n;
    } else if (outcome.rfind(std::to_string(grpc::StatusCode::RESOURCE_EXHAUSTED) + " ", 0) == 0) {
      exhausted += n;
    } else {
      other += n;
    }
  }
  WARN(kClients << " clients against " << kRpcThreads << " call threads for " << kStorm.count() << " s:" << summary
                << "\n  server RSS " << settled_kib / 1024 << " MiB after warm-up, peak " << peak_kib / 1024
                << " MiB after it; slowest call " << slowest_ms.load() << " ms");
  CHECK(ok > 0);
  CHECK(exhausted > 0);
  CHECK(other == 0);                                   // no deadline passed: nothing waited in a queue
  CHECK(slowest_ms.load() < 2'000);
  CHECK(peak_kib <= settled_kib + settled_kib / 5);    // flat: within 20 % of the warmed-up size
  // Once the storm is over the server serves as before.
  CHECK(c.Cli({"job", "list", "--account", "acme"}).exit_code == 0);
}
