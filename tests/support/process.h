// Real child processes for end-to-end tests: start a binary with arguments and its output in a log
// file, signal it, wait for it; and run a command to completion capturing stdout.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace tessera::testing {

class ChildProcess {
 public:
  ChildProcess(const std::vector<std::string>& argv, const std::string& log_path);
  ~ChildProcess();  // SIGKILLs a child still running
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  void Signal(int sig);
  // Waits up to timeout_ms; returns the exit status (as from waitpid) or -1 on timeout.
  int Wait(int timeout_ms);
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
};

// Runs argv to completion and returns its exit code and standard output.
CommandResult RunCommand(const std::vector<std::string>& argv);

}  // namespace tessera::testing
