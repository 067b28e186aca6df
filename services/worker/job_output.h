// A sandboxed program's stdout and stderr (issue 18): two pipes it writes into, read by a thread
// that cuts them into stamped, redacted lines (OutputLines), hands them to the job's log shipper,
// and keeps the last few for a failed job's error. The agent never waits on the program's writes:
// a program that prints fast is limited only by this thread and the pipe's buffer.
//
//   absl::StatusOr<std::unique_ptr<JobOutput>> out = JobOutput::Open(clock, redactor, &shipper);
//   sandbox.Start(spec, (*out)->stdout_fd(), (*out)->stderr_fd());  (*out)->Started();
//   … the program runs …
//   (*out)->Close(2s);  std::string last = (*out)->Tail();
#pragma once

#include <atomic>
#include <chrono>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "services/common/clock.h"
#include "services/worker/job_log_shipper.h"
#include "services/worker/output_lines.h"
#include "services/worker/secret_redactor.h"

namespace tessera::worker {

class JobOutput {
 public:
  // `shipper` may be null (the lines are kept for the tail only). Both outlive this.
  static absl::StatusOr<std::unique_ptr<JobOutput>> Open(const Clock& clock, const SecretRedactor& redact, JobLogShipper* shipper);
  ~JobOutput();

  // The pipes' write ends, for the program; Started() closes them here and starts reading.
  int stdout_fd() const { return write_[0]; }
  int stderr_fd() const { return write_[1]; }
  void Started();
  // Once the program has ended: reads what is left in the pipes for up to `drain` (a process that
  // escaped with a copy of a pipe cannot hold it open longer), then stops.
  void Close(std::chrono::milliseconds drain);
  // The last lines it printed, redacted, each at most 500 characters.
  std::string Tail() const;

 private:
  JobOutput(const Clock& clock, const SecretRedactor& redact, JobLogShipper* shipper) : lines_(clock, redact), shipper_(shipper) {}
  void Read();
  void Hand(std::vector<v1::LogLine> lines);

  OutputLines lines_;
  JobLogShipper* const shipper_;
  int read_[2] = {-1, -1};
  int write_[2] = {-1, -1};
  std::atomic<int64_t> stop_at_ms_{0};  // steady ms after which the reader stops; 0: not yet asked
  std::thread reader_;
  mutable std::mutex mu_;
  std::deque<std::string> tail_;
};

}  // namespace tessera::worker
