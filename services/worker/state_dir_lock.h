// The lock a running agent holds on its state directory. The directory is the worker's identity
// (its id, its Ed25519 key, its outbox journal): two agents sharing it would be one worker with two
// streams replacing each other, and would interleave appends to one journal. So the agent takes an
// exclusive flock(2) on `<state_dir>/agent.lock` for as long as it runs; the kernel drops it when the
// process ends, however it ends, so a crash never leaves a stale lock. The file holds the owner's pid
// for the error a second agent gets.
//
//   absl::StatusOr<StateDirLock> lock = StateDirLock::Acquire(state_dir);  // keep it while running
#pragma once

#include <filesystem>

#include "absl/status/statusor.h"

namespace tessera::worker {

class StateDirLock {
 public:
  // FAILED_PRECONDITION naming the directory and the other agent's pid when another process holds it.
  static absl::StatusOr<StateDirLock> Acquire(const std::filesystem::path& state_dir);

  StateDirLock(StateDirLock&& other) noexcept : fd_(other.fd_) { other.fd_ = -1; }
  StateDirLock& operator=(StateDirLock&& other) noexcept;
  StateDirLock(const StateDirLock&) = delete;
  StateDirLock& operator=(const StateDirLock&) = delete;
  ~StateDirLock();

 private:
  explicit StateDirLock(int fd) : fd_(fd) {}
  int fd_ = -1;
};

}  // namespace tessera::worker
