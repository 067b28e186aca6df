// Leader election over PostgreSQL: whoever holds a session advisory lock on a dedicated connection
// leads, and bumps the leadership epoch in the database when it takes over. The lock dies with the
// connection, so when a leader process dies its standby takes over within one poll interval.
// Callbacks run on the election thread: on_elected(epoch) when this process becomes leader,
// on_deposed() when it loses the lock (connection lost) or shuts down while leading.
#pragma once

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <cstdint>
#include <functional>
#include <string>
#include <thread>

namespace tessera::store {

struct LeaderElectionOptions {
  std::string url;
  std::string candidate;        // who we are, recorded with the epoch (host:pid)
  int64_t lock_key = 0x7E55E7A0002;
  int64_t poll_interval_ms = 500;
};

class LeaderElection {
 public:
  LeaderElection(LeaderElectionOptions options, std::function<void(int64_t epoch)> on_elected,
                 std::function<void()> on_deposed);
  ~LeaderElection();
  LeaderElection(const LeaderElection&) = delete;
  LeaderElection& operator=(const LeaderElection&) = delete;

  // Waits until the first campaign round is over (won, or lost to a running leader), so that a
  // server that starts alone is already scheduling when its port opens.
  bool WaitFirstRound(int64_t timeout_ms);

 private:
  void Run();
  void MarkFirstRound();

  const LeaderElectionOptions options_;
  const std::function<void(int64_t)> on_elected_;
  const std::function<void()> on_deposed_;
  std::atomic<bool> stop_{false};
  std::atomic<bool> leading_{false};
  std::mutex mu_;
  std::condition_variable first_round_cv_;
  bool first_round_done_ = false;
  std::thread thread_;
};

}  // namespace tessera::store
