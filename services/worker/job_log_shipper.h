// A job attempt's log lines on their way to the server (issue 18). Lines are numbered as they come
// and held until the server has them: a thread sends them in batches (at most kMaxAppendLines and
// 1 MiB each) every flush interval, and after a failed send (the server restarting, the network
// down) sends the same lines again after a backoff; the server stores a resent line once (it knows
// the attempt's next seq). What the server has not taken yet is bounded: past the bound, new lines
// are dropped, and a SYSTEM line says how many when there is room again.
//
//   JobLogShipper shipper(sink, lease, clock, {});
//   shipper.Add(lines);               // from the thread that reads the program's output
//   shipper.Finish(10s);              // the last lines, marked final; false: some never got there
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include <grpcpp/channel.h>
#include "services/common/clock.h"
#include "tessera/v1/logs.pb.h"

namespace tessera::worker {

// Where an attempt's lines go: the LogService (GrpcJobLogSink) or a test's store.
class JobLogSink {
 public:
  virtual ~JobLogSink() = default;
  // The server's next_seq for the attempt once it has taken the request.
  virtual absl::StatusOr<uint64_t> Append(const v1::AppendJobLogRequest& request) = 0;
};

struct LogShippingOptions {
  size_t max_buffered_bytes = size_t{8} << 20;
  std::chrono::milliseconds flush_interval{500};
  std::chrono::milliseconds min_backoff{500};
  std::chrono::milliseconds max_backoff{10'000};
};

class JobLogShipper {
 public:
  JobLogShipper(JobLogSink& sink, v1::JobLease lease, const Clock& clock, LogShippingOptions options);
  ~JobLogShipper();  // as Finish(0)

  void Add(std::vector<v1::LogLine> lines);
  // A line from Tessera itself (a checkpoint restored or saved), among the program's.
  void AddSystemLine(std::string text);
  // Sends what is held, the last batch marked final, trying for up to `deadline`; true once the
  // server has every line. Stops the thread; later Adds are ignored.
  bool Finish(std::chrono::milliseconds deadline);

  uint64_t dropped_lines() const;

 private:
  void Loop();
  // Holds the SYSTEM line that says how many lines were dropped (under mu_).
  void HoldDroppedNote();
  // One batch from the front; true when the server took it.
  bool SendBatch(bool final);

  JobLogSink& sink_;
  const v1::JobLease lease_;
  const Clock& clock_;
  const LogShippingOptions options_;

  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<v1::LogLine> held_;  // not yet taken by the server, from seq first_held_
  uint64_t first_held_ = 0;
  uint64_t next_seq_ = 0;         // the number the next added line gets
  size_t held_bytes_ = 0;
  uint64_t dropped_ = 0;          // dropped since the last SYSTEM line about it
  uint64_t dropped_total_ = 0;
  bool finishing_ = false;
  bool final_sent_ = false;
  bool abandoned_ = false;        // the server refused for good: nothing more is sent
  std::chrono::steady_clock::time_point finish_by_;
  std::thread thread_;
};

// The LogService behind a channel; each append may take up to 10 s.
std::unique_ptr<JobLogSink> MakeGrpcJobLogSink(std::shared_ptr<grpc::Channel> channel);

}  // namespace tessera::worker
