#include "services/store/leader_election.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <pqxx/pqxx>

namespace tessera::store {

LeaderElection::LeaderElection(LeaderElectionOptions options, std::function<void(int64_t)> on_elected,
                               std::function<void()> on_deposed)
    : options_(std::move(options)), on_elected_(std::move(on_elected)), on_deposed_(std::move(on_deposed)) {
  thread_ = std::thread([this] { Run(); });
}

bool LeaderElection::WaitFirstRound(int64_t timeout_ms) {
  std::unique_lock lock(mu_);
  return first_round_cv_.wait_for(lock, std::chrono::milliseconds(timeout_ms), [&] { return first_round_done_; });
}

LeaderElection::~LeaderElection() {
  stop_ = true;
  thread_.join();
}

void LeaderElection::MarkFirstRound() {
  {
    std::lock_guard lock(mu_);
    first_round_done_ = true;
  }
  first_round_cv_.notify_all();
}

void LeaderElection::Run() {
  const auto pause = std::chrono::milliseconds(options_.poll_interval_ms);
  while (!stop_) {
    try {
      pqxx::connection conn(options_.url);
      while (!stop_ && !leading_) {
        pqxx::nontransaction tx(conn);
        if (tx.exec_params1("SELECT pg_try_advisory_lock($1)", options_.lock_key)[0].as<bool>()) {
          const auto epoch = tx.exec_params1(
              "UPDATE scheduler_leadership SET epoch = epoch + 1, leader = $1, elected_at = now() WHERE id = 1"
              " RETURNING epoch",
              options_.candidate)[0].as<int64_t>();
          leading_ = true;
          spdlog::info("elected scheduler leader, epoch {}", epoch);
          on_elected_(epoch);
          MarkFirstRound();
        } else {
          MarkFirstRound();
          std::this_thread::sleep_for(pause);
        }
      }
      // Leading: the lock lives as long as this connection; a failed ping means it is gone.
      while (!stop_) {
        std::this_thread::sleep_for(pause);
        pqxx::nontransaction tx(conn);
        tx.exec("SELECT 1");
      }
    } catch (const std::exception& e) {
      if (!stop_) spdlog::warn("leader election: {}", e.what());
    }
    if (leading_.exchange(false)) {
      spdlog::warn("scheduler leadership lost");
      on_deposed_();
    }
    if (!stop_) std::this_thread::sleep_for(pause);
  }
}

}  // namespace tessera::store
