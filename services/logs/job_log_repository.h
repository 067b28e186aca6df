// Job logs in PostgreSQL (issue 18, migrations/0021_job_logs.sql): each attempt's (and node's)
// output lines as its worker appended them, numbered from 0, so a resent append is stored once;
// bounded per job, the oldest lines cut first. A read is one snapshot: it never sees a chunk
// without its attempt's counters.
//
//   JobLogRepository logs(db, limits);
//   absl::StatusOr<uint64_t> next = logs.Append(provider_account_id, request);   // a worker's lines
//   absl::StatusOr<JobLogRead> read = logs.Read(job_id, attempt, positions, 1'000);
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "services/store/database.h"
#include "tessera/v1/logs.pb.h"

namespace tessera::logs {

struct LogLimits {
  int64_t max_job_log_bytes = int64_t{16} << 20;  // a job's stored lines, all attempts: past it the oldest are cut
  std::chrono::seconds append_grace{120};         // a worker's lines still count this long after its lease ended
};

// The most lines and text bytes one append carries.
inline constexpr int kMaxAppendLines = 1'000;
inline constexpr size_t kMaxAppendBytes = size_t{1} << 20;

// Where a reader is in each attempt's and node's output: the seq of the next line it wants.
using LogPositions = std::map<std::pair<uint32_t, uint32_t>, uint64_t>;

struct JobLogRead {
  std::string account;                // the job's customer
  std::vector<v1::LogLine> lines;     // after the positions, by attempt, node and seq; positions advanced
  bool more = false;                  // the read stopped at its line limit
  bool job_ended = false;             // the job is terminal
  bool complete = false;              // it ended and every attempt's output was closed, or long enough ago
};

class JobLogRepository {
 public:
  JobLogRepository(store::Database& db, LogLimits limits) : db_(db), limits_(limits) {}

  // Stores the request's lines the server does not yet have; returns the attempt's next_seq.
  // PERMISSION_DENIED without the lease (or one ended more than the grace ago); FAILED_PRECONDITION
  // on a gap; INVALID_ARGUMENT on too many lines.
  absl::StatusOr<uint64_t> Append(int64_t provider_account_id, const v1::AppendJobLogRequest& request);
  // Up to `max_lines` lines of the job (of one attempt unless 0) after `positions` (advanced past
  // what is returned), with a SYSTEM line where lines were cut. NOT_FOUND for no such job.
  absl::StatusOr<JobLogRead> Read(int64_t job_id, uint32_t attempt, LogPositions& positions, size_t max_lines);
  // Positions that leave only the last `lines` of each attempt and node as stored now.
  absl::StatusOr<LogPositions> TailPositions(int64_t job_id, uint32_t attempt, uint64_t lines);

  const LogLimits& limits() const { return limits_; }

 private:
  store::Database& db_;
  const LogLimits limits_;
};

}  // namespace tessera::logs
