// `tessera job logs JOB [-f] [--attempt N] [--tail N] [-t]`: a job's stdout and stderr as its
// workers sent them, every attempt in order (a header line where a new attempt or node begins).
// The program's stderr lines go to stderr, the rest to stdout, as `docker logs` does. With -f it
// follows the job until its output is complete, reconnecting after a broken stream where it left
// off (no line twice, none skipped).
#include <iostream>

#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "services/cli/commands.h"
#include "services/cli/stream_reconnect.h"
#include "tessera/v1/logs.grpc.pb.h"

namespace tessera::cli {
namespace {

// "2026-12-07T19:45:00.123Z"
std::string LineTime(int64_t unix_ms) {
  const std::time_t seconds = static_cast<std::time_t>(unix_ms / 1000);
  std::tm utc{};
  gmtime_r(&seconds, &utc);
  char text[40];
  const size_t n = std::strftime(text, sizeof text, "%Y-%m-%dT%H:%M:%S", &utc);
  std::snprintf(text + n, sizeof text - n, ".%03dZ", static_cast<int>(unix_ms % 1000));
  return text;
}

// Control characters escaped (a program's output must not drive the terminal), tabs kept.
std::string Shown(const std::string& text) {
  std::vector<std::string> parts;
  for (absl::string_view part : absl::StrSplit(text, '\t')) parts.push_back(Printable(std::string(part)));
  return absl::StrJoin(parts, "\t");
}

struct LogsState {
  std::map<std::pair<uint32_t, uint32_t>, uint64_t> next;  // per attempt and node: the next line wanted
  std::pair<uint32_t, uint32_t> shown{0, 0};               // the attempt and node of the last line printed
  bool several_nodes = false;
};

void PrintLine(const CliContext& ctx, const v1::LogLine& line, bool timestamps, LogsState& state) {
  if (ctx.json()) {
    std::cout << ToJson(line) << '\n';
    return;
  }
  const std::pair<uint32_t, uint32_t> source{line.attempt(), line.node()};
  if (source != state.shown) {
    std::cout << "── attempt " << line.attempt();
    if (line.node() > 0 || state.several_nodes) std::cout << " node " << line.node();
    std::cout << " ──" << '\n';
    state.shown = source;
  }
  std::ostream& out = line.stream() == v1::LOG_STREAM_STDERR ? std::cerr : std::cout;
  if (line.stream() == v1::LOG_STREAM_STDERR) std::cout.flush();
  if (timestamps && line.time_ms() > 0) out << LineTime(line.time_ms()) << ' ';
  out << Shown(line.text()) << '\n';
  if (line.stream() == v1::LOG_STREAM_STDERR) out.flush();
}

grpc::Status ReadOnce(const CliContext& ctx, v1::LogService::Stub& stub, const v1::ReadJobLogRequest& base, bool timestamps,
                      LogsState& state, bool& received) {
  grpc::ClientContext context;  // no deadline when following: it lasts as long as the job
  if (!base.follow()) context.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(5));
  v1::ReadJobLogRequest request = base;
  for (const auto& [source, next_seq] : state.next) {
    v1::LogPosition* p = request.add_after();
    p->set_attempt(source.first);
    p->set_node(source.second);
    p->set_next_seq(next_seq);
  }
  // A resumed stream continues where it was, not from the tail.
  if (!state.next.empty()) request.set_tail_lines(0);
  auto reader = stub.ReadJobLog(&context, request);
  v1::ReadJobLogResponse response;
  while (reader->Read(&response)) {
    received = true;
    for (const v1::LogLine& line : response.lines()) {
      uint64_t& next = state.next[{line.attempt(), line.node()}];
      if (line.seq() < next) continue;  // never a line twice
      next = line.seq() + 1;
      if (line.node() > 0) state.several_nodes = true;
      PrintLine(ctx, line, timestamps, state);
    }
    std::cout.flush();
  }
  return reader->Finish();
}

}  // namespace

void AddJobLogsCommand(CLI::App& job, CliContext& ctx) {
  auto* logs = job.add_subcommand("logs", "A job's stdout and stderr, every attempt (stderr lines to stderr); -f follows it");
  auto job_id = std::make_shared<int64_t>(0);
  auto follow = std::make_shared<bool>(false);
  auto timestamps = std::make_shared<bool>(false);
  auto attempt = std::make_shared<uint32_t>(0);
  auto tail = std::make_shared<uint32_t>(0);
  auto reconnect_for_ms = std::make_shared<int64_t>(300'000);
  logs->add_option("job_id", *job_id)->required();
  logs->add_flag("-f,--follow", *follow, "Keep printing lines as they come until the job has ended and its output is complete");
  logs->add_flag("-t,--timestamps", *timestamps, "Start each line with the time its worker read it (UTC)");
  logs->add_option("--attempt", *attempt, "Only this attempt's lines (1 is the first)")->check(CLI::PositiveNumber);
  logs->add_option("--tail", *tail, "Only the last N lines of each attempt as stored now (then, with -f, what follows)")
      ->check(CLI::PositiveNumber);
  logs->add_option("--reconnect-for-ms", *reconnect_for_ms,
                   "With -f: how long to keep reconnecting after the stream breaks before giving up (default 5 min)")
      ->check(CLI::NonNegativeNumber);
  logs->callback([&ctx, job_id, follow, timestamps, attempt, tail, reconnect_for_ms] {
    std::shared_ptr<grpc::Channel> channel = ctx.Channel();
    auto stub = v1::LogService::NewStub(channel);
    v1::ReadJobLogRequest request;
    request.set_job_id(*job_id);
    request.set_attempt(*attempt);
    request.set_follow(*follow);
    request.set_tail_lines(*tail);
    LogsState state;
    const auto reconnect_for = std::chrono::milliseconds(*follow ? *reconnect_for_ms : 0);
    const grpc::Status s = ReconnectingStream("logs", *channel, reconnect_for, [&](bool& received) {
      return ReadOnce(ctx, *stub, request, *timestamps, state, received);
    });
    std::cout.flush();
    ctx.exit_code = s.ok() ? 0 : ReportError(s);
  });
}

}  // namespace tessera::cli
