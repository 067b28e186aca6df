#include "services/logs/job_log_repository.h"

#include "absl/strings/str_cat.h"
#include "services/common/job_state_machine.h"
#include "services/lifecycle/lease_holder.h"

namespace tessera::logs {
namespace {

// A program's last lines can come this long after its job ended (a cancel's grace period): until
// then, a follower whose job has ended but whose output is not closed keeps waiting.
constexpr int kLateLinesSeconds = 15;
constexpr size_t kMaxLineBytes = 16 * 1024;
// Chunks hold up to 1 MiB: a query fetches a few, and a follower polls with it.
constexpr int kChunksPerQuery = 4;

absl::Status CheckLines(const v1::AppendJobLogRequest& request) {
  if (request.lines_size() > kMaxAppendLines) {
    return absl::InvalidArgumentError(absl::StrCat("lines: ", request.lines_size(), " lines; at most ", kMaxAppendLines, " an append"));
  }
  size_t bytes = 0;
  for (int i = 0; i < request.lines_size(); ++i) {
    const v1::LogLine& line = request.lines(i);
    if (line.text().size() > kMaxLineBytes) {
      return absl::InvalidArgumentError(absl::StrCat("lines[", i, "].text: ", line.text().size(), " bytes; at most ", kMaxLineBytes));
    }
    if (!v1::LogStream_IsValid(line.stream()) || line.stream() == v1::LOG_STREAM_UNSPECIFIED) {
      return absl::InvalidArgumentError(absl::StrCat("lines[", i, "].stream: STDOUT, STDERR or SYSTEM, got ", line.stream()));
    }
    bytes += line.text().size();
  }
  if (bytes > kMaxAppendBytes) {
    return absl::InvalidArgumentError(absl::StrCat("lines: ", bytes, " bytes of text; at most ", kMaxAppendBytes, " an append"));
  }
  return absl::OkStatus();
}

// The lines of a stored chunk, numbered.
std::vector<v1::LogLine> Decode(const pqxx::row& chunk, uint32_t attempt, uint32_t node) {
  v1::ReadJobLogResponse stored;
  stored.ParseFromString(pqxx::binarystring(chunk[1]).str());
  const uint64_t first = chunk[0].as<uint64_t>();
  std::vector<v1::LogLine> lines;
  lines.reserve(static_cast<size_t>(stored.lines_size()));
  for (int i = 0; i < stored.lines_size(); ++i) {
    v1::LogLine& line = lines.emplace_back(std::move(*stored.mutable_lines(i)));
    line.set_attempt(attempt);
    line.set_node(node);
    line.set_seq(first + static_cast<uint64_t>(i));
  }
  return lines;
}

}  // namespace

absl::StatusOr<uint64_t> JobLogRepository::Append(int64_t provider_account_id, const v1::AppendJobLogRequest& request) {
  if (absl::Status s = CheckLines(request); !s.ok()) return s;
  const v1::JobLease& lease = request.lease();
  return db_.Transact("append job log", [&](pqxx::work& tx) -> absl::StatusOr<uint64_t> {
    absl::StatusOr<lifecycle::HeldLease> held =
        lifecycle::LeaseHeldBy(tx, provider_account_id, lease, limits_.append_grace);
    if (!held.ok()) return held.status();
    const int64_t node = held->node_rank;
    // One writer of a job's logs at a time: the cut below reads and deletes across its attempts.
    tx.exec_params("SELECT pg_advisory_xact_lock(hashtextextended('job log ' || $1::text, 0))", lease.job_id());
    tx.exec_params0("INSERT INTO job_logs (job_id, attempt, node) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING", lease.job_id(),
                    static_cast<int64_t>(lease.attempt()), node);
    const pqxx::row log = tx.exec_params1("SELECT next_seq FROM job_logs WHERE job_id = $1 AND attempt = $2 AND node = $3",
                                          lease.job_id(), static_cast<int64_t>(lease.attempt()), node);
    const uint64_t next = log[0].as<uint64_t>();
    if (request.first_seq() > next) {
      return absl::FailedPreconditionError(
          absl::StrCat("first_seq: ", request.first_seq(), " leaves a gap; the next line the server expects is ", next));
    }
    const uint64_t skip = next - request.first_seq();
    v1::ReadJobLogResponse chunk;
    int64_t bytes = 0;  // the encoded chunk's size, once there is one
    for (uint64_t i = skip; i < static_cast<uint64_t>(request.lines_size()); ++i) {
      const v1::LogLine& in = request.lines(static_cast<int>(i));
      v1::LogLine* line = chunk.add_lines();
      line->set_time_ms(in.time_ms());
      line->set_stream(in.stream());
      line->set_text(in.text());
    }
    const uint64_t added = static_cast<uint64_t>(chunk.lines_size());
    if (added > 0) {
      // What the chunk takes in the store, not only its text: empty lines count too.
      const std::string encoded = chunk.SerializeAsString();
      bytes = static_cast<int64_t>(encoded.size());
      tx.exec_params0("INSERT INTO job_log_chunks (job_id, attempt, node, first_seq, line_count, bytes, lines) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                      lease.job_id(), static_cast<int64_t>(lease.attempt()), node, static_cast<int64_t>(next),
                      static_cast<int64_t>(added), bytes, pqxx::binarystring(encoded));
    }
    tx.exec_params0(
        "UPDATE job_logs SET next_seq = next_seq + $4, stored_bytes = stored_bytes + $5, closed = closed OR $6, updated_at = now()"
        " WHERE job_id = $1 AND attempt = $2 AND node = $3",
        lease.job_id(), static_cast<int64_t>(lease.attempt()), node, static_cast<int64_t>(added), bytes, request.final());
    // Past the job's limit, its oldest chunks go (of its earliest attempt first), counted as cut.
    int64_t total = tx.exec_params1("SELECT coalesce(sum(stored_bytes), 0)::bigint FROM job_logs WHERE job_id = $1", lease.job_id())[0]
                        .as<int64_t>();
    while (total > limits_.max_job_log_bytes) {
      const pqxx::result cut = tx.exec_params(
          "DELETE FROM job_log_chunks WHERE (job_id, attempt, node, first_seq) = (SELECT job_id, attempt, node, first_seq"
          "   FROM job_log_chunks WHERE job_id = $1 ORDER BY attempt, node, first_seq LIMIT 1)"
          " RETURNING attempt, node, first_seq + line_count, bytes",
          lease.job_id());
      if (cut.empty()) break;
      tx.exec_params0("UPDATE job_logs SET first_kept = $4, stored_bytes = stored_bytes - $5 WHERE job_id = $1 AND attempt = $2 AND node = $3",
                      lease.job_id(), cut[0][0].as<int64_t>(), cut[0][1].as<int64_t>(), cut[0][2].as<int64_t>(), cut[0][3].as<int64_t>());
      total -= cut[0][3].as<int64_t>();
    }
    return next + added;
  });
}

absl::StatusOr<JobLogRead> JobLogRepository::Read(int64_t job_id, uint32_t attempt, LogPositions& positions, size_t max_lines) {
  LogPositions advanced = positions;
  absl::StatusOr<JobLogRead> read = db_.Transact("read job log", [&](pqxx::work& tx) -> absl::StatusOr<JobLogRead> {
    // One snapshot: the attempts' counters and their chunks agree.
    tx.exec0("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY");
    advanced = positions;
    const pqxx::result job = tx.exec_params(
        "SELECT c.name, j.state, j.updated_at < now() - make_interval(secs => $2) FROM jobs j JOIN accounts c ON c.account_id = j.account_id"
        " WHERE j.job_id = $1",
        job_id, static_cast<double>(kLateLinesSeconds));
    if (job.empty()) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
    JobLogRead out;
    out.account = job[0][0].as<std::string>();
    out.job_ended = IsTerminal(ParseJobState(job[0][1].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED));
    bool all_closed = true;
    const pqxx::result logs = tx.exec_params(
        "SELECT attempt, node, next_seq, first_kept, closed FROM job_logs WHERE job_id = $1 AND ($2 = 0 OR attempt = $2)"
        " ORDER BY attempt, node",
        job_id, static_cast<int64_t>(attempt));
    for (const pqxx::row& log : logs) {
      const auto a = log[0].as<uint32_t>();
      const auto node = log[1].as<uint32_t>();
      const auto next_seq = log[2].as<uint64_t>();
      const auto first_kept = log[3].as<uint64_t>();
      all_closed = all_closed && log[4].as<bool>();
      uint64_t& pos = advanced[{a, node}];
      if (out.lines.size() >= max_lines) {
        out.more = out.more || pos < next_seq;
        continue;
      }
      if (pos < first_kept) {
        v1::LogLine& marker = out.lines.emplace_back();
        marker.set_attempt(a);
        marker.set_node(node);
        marker.set_seq(first_kept - 1);
        marker.set_stream(v1::LOG_STREAM_SYSTEM);
        marker.set_text(absl::StrCat("[tessera] ", first_kept - pos, " earlier lines cut: a job keeps at most ",
                                     limits_.max_job_log_bytes >> 20, " MiB of logs"));
        pos = first_kept;
      }
      while (pos < next_seq && out.lines.size() < max_lines) {
        // From the chunk holding `pos` (the last one starting at or before it) on, by the index.
        const pqxx::result chunks = tx.exec_params(
            "SELECT first_seq, lines FROM job_log_chunks WHERE job_id = $1 AND attempt = $2 AND node = $3 AND first_seq >="
            "   coalesce((SELECT max(first_seq) FROM job_log_chunks WHERE job_id = $1 AND attempt = $2 AND node = $3 AND first_seq <= $4), 0)"
            "   AND first_seq + line_count > $4"
            " ORDER BY first_seq LIMIT $5",
            job_id, static_cast<int64_t>(a), static_cast<int64_t>(node), static_cast<int64_t>(pos), kChunksPerQuery);
        const uint64_t before = pos;
        for (const pqxx::row& chunk : chunks) {
          for (v1::LogLine& line : Decode(chunk, a, node)) {
            if (line.seq() < pos) continue;
            if (out.lines.size() >= max_lines) break;
            pos = line.seq() + 1;
            out.lines.push_back(std::move(line));
          }
        }
        if (pos == before) break;  // nothing (more) stored below next_seq: never spin
      }
      out.more = out.more || pos < next_seq;
    }
    out.complete = out.job_ended && (all_closed || job[0][2].as<bool>());
    return out;
  });
  if (read.ok()) positions = std::move(advanced);
  return read;
}

absl::StatusOr<LogPositions> JobLogRepository::TailPositions(int64_t job_id, uint32_t attempt, uint64_t lines) {
  return db_.Transact("tail job log", [&](pqxx::work& tx) -> absl::StatusOr<LogPositions> {
    LogPositions positions;
    for (const pqxx::row& log : tx.exec_params("SELECT attempt, node, next_seq, first_kept FROM job_logs WHERE job_id = $1 AND ($2 = 0 OR attempt = $2)",
                                               job_id, static_cast<int64_t>(attempt))) {
      const auto next_seq = log[2].as<uint64_t>();
      const auto first_kept = log[3].as<uint64_t>();
      positions[{log[0].as<uint32_t>(), log[1].as<uint32_t>()}] = std::max(first_kept, next_seq > lines ? next_seq - lines : 0);
    }
    return positions;
  });
}

}  // namespace tessera::logs
