// A worker's side of job logs (issue 18): output cut into stamped, redacted lines (OutputLines,
// SecretRedactor), and the shipper that gets every line to the server exactly once in order
// through failed sends, bounded while the server is away (JobLogShipper), against a sink that
// behaves as the server does (it skips lines it has, refuses gaps).
#include <catch2/catch.hpp>

#include <mutex>
#include <thread>

#include "services/common/utf8.h"
#include "services/worker/job_log_shipper.h"
#include "services/worker/output_lines.h"
#include "services/worker/secret_redactor.h"

using namespace tessera;
using namespace tessera::worker;

namespace {

google::protobuf::Map<std::string, std::string> Secrets(std::initializer_list<std::pair<const std::string, std::string>> values) {
  google::protobuf::Map<std::string, std::string> m;
  for (const auto& [k, v] : values) m[k] = v;
  return m;
}

// The server's append, in memory: stores lines from its next seq, skips what it has, refuses gaps;
// fails the next `fail` calls as a server that is down would.
class ServerLikeSink final : public JobLogSink {
 public:
  absl::StatusOr<uint64_t> Append(const v1::AppendJobLogRequest& request) override {
    std::lock_guard lock(mu_);
    ++calls;
    if (fail > 0) {
      --fail;
      return absl::UnavailableError("server down");
    }
    if (denied) return absl::PermissionDeniedError("no lease");
    if (request.first_seq() > lines.size()) return absl::FailedPreconditionError("gap");
    for (int i = static_cast<int>(lines.size() - request.first_seq()); i < request.lines_size(); ++i) lines.push_back(request.lines(i));
    closed = closed || request.final();
    return lines.size();
  }
  std::mutex mu_;
  std::vector<v1::LogLine> lines;
  int fail = 0;
  int calls = 0;
  bool denied = false;
  bool closed = false;
};

LogShippingOptions Fast() {
  return {.max_buffered_bytes = size_t{1} << 20, .flush_interval = std::chrono::milliseconds(5),
          .min_backoff = std::chrono::milliseconds(1), .max_backoff = std::chrono::milliseconds(5)};
}

std::vector<v1::LogLine> Lines(int from, int count) {
  std::vector<v1::LogLine> lines;
  for (int i = from; i < from + count; ++i) {
    v1::LogLine& l = lines.emplace_back();
    l.set_stream(v1::LOG_STREAM_STDOUT);
    l.set_text("line " + std::to_string(i));
  }
  return lines;
}

}  // namespace

TEST_CASE("a secret is redacted whole, and each line of a multi-line one", "[unit][logs]") {
  const SecretRedactor redact(Secrets({{"token", "hunter2-abc"}, {"key", "-----BEGIN KEY-----\nAAAABBBB\n-----END KEY-----"}, {"pin", "42"}}));
  CHECK(redact("token=hunter2-abc!") == "token=<redacted>!");
  CHECK(redact("AAAABBBB") == "<redacted>");
  CHECK(redact("the answer is 42") == "the answer is 42");  // under 4 characters: not a secret worth hiding words for
}

TEST_CASE("output is cut into stamped lines per stream, redacted before any split", "[unit][logs]") {
  ManualClock clock(1'000);
  const SecretRedactor redact(Secrets({{"token", "s3cr3t-value"}}));
  OutputLines cut(clock, redact);
  std::vector<v1::LogLine> out;
  // A line arrives in pieces, the secret split across them, stdout and stderr interleaved.
  cut.Feed(v1::LOG_STREAM_STDOUT, "token is s3cr", out);
  cut.Feed(v1::LOG_STREAM_STDERR, "warn", out);
  CHECK(out.empty());
  clock.Advance(5);
  cut.Feed(v1::LOG_STREAM_STDOUT, "3t-value\r\nsecond\n", out);
  cut.Feed(v1::LOG_STREAM_STDERR, "ing\n", out);
  REQUIRE(out.size() == 3);
  CHECK(out[0].text() == "token is <redacted>");
  CHECK(out[0].stream() == v1::LOG_STREAM_STDOUT);
  CHECK(out[0].time_ms() == 1'005);
  CHECK(out[1].text() == "second");
  CHECK(out[2].text() == "warning");
  CHECK(out[2].stream() == v1::LOG_STREAM_STDERR);
  // A line longer than the server takes comes as several, none splitting a UTF-8 character.
  out.clear();
  std::string longline(kMaxLogLineBytes - 1, 'x');
  longline += "é and more\n";
  cut.Feed(v1::LOG_STREAM_STDOUT, longline, out);
  REQUIRE(out.size() == 2);
  CHECK(out[0].text().size() == kMaxLogLineBytes - 1);
  CHECK(out[1].text() == "é and more");
  // Unfinished lines come out at the end.
  out.clear();
  cut.Feed(v1::LOG_STREAM_STDERR, "no newline", out);
  cut.Finish(out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].text() == "no newline");
}

TEST_CASE("every line reaches the server once and in order through failed sends, the last marked final", "[unit][logs]") {
  ManualClock clock;
  ServerLikeSink sink;
  sink.fail = 3;
  JobLogShipper shipper(sink, v1::JobLease(), clock, Fast());
  for (int i = 0; i < 25; ++i) shipper.Add(Lines(i * 100, 100));
  CHECK(shipper.Finish(std::chrono::seconds(10)));
  REQUIRE(sink.lines.size() == 2'500);
  for (size_t i = 0; i < sink.lines.size(); ++i) CHECK(sink.lines[i].text() == "line " + std::to_string(i));
  CHECK(sink.closed);
  CHECK(sink.calls > 3);
  CHECK(shipper.dropped_lines() == 0);
}

TEST_CASE("while the server is away the shipper holds a bounded amount and says what it dropped", "[unit][logs]") {
  ManualClock clock;
  ServerLikeSink sink;
  sink.fail = 1'000'000;
  LogShippingOptions options = Fast();
  options.max_buffered_bytes = 64 * 1024;
  JobLogShipper shipper(sink, v1::JobLease(), clock, options);
  for (int i = 0; i < 100; ++i) shipper.Add(Lines(i * 100, 100));  // ~200 KiB
  {
    std::lock_guard lock(sink.mu_);
    sink.fail = 0;  // the server is back
  }
  // Until what was held has gone: then there is room again.
  for (int i = 0; i < 500; ++i) {
    {
      std::lock_guard lock(sink.mu_);
      if (!sink.lines.empty()) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  shipper.Add(Lines(99'999, 1));
  CHECK_FALSE(shipper.Finish(std::chrono::seconds(10)));  // not every line made it
  CHECK(shipper.dropped_lines() > 0);
  REQUIRE(sink.lines.size() > 2);
  // Held lines first, in order; then the note; then the line that came after.
  CHECK(sink.lines[0].text() == "line 0");
  const v1::LogLine& note = sink.lines[sink.lines.size() - 2];
  CHECK(note.stream() == v1::LOG_STREAM_SYSTEM);
  CHECK_THAT(note.text(), Catch::Contains(std::to_string(shipper.dropped_lines()) + " lines dropped"));
  CHECK(sink.lines.back().text() == "line 99999");
  CHECK(sink.closed);
}

TEST_CASE("a lease the server no longer honours ends shipping at once", "[unit][logs]") {
  ManualClock clock;
  ServerLikeSink sink;
  sink.denied = true;
  JobLogShipper shipper(sink, v1::JobLease(), clock, Fast());
  shipper.Add(Lines(0, 10));
  const auto start = std::chrono::steady_clock::now();
  CHECK_FALSE(shipper.Finish(std::chrono::seconds(30)));
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(5));
  CHECK(sink.lines.empty());
}

TEST_CASE("output that is not UTF-8 becomes valid text, and empty lines are lines", "[unit][logs]") {
  CHECK(ValidUtf8("plain") == "plain");
  CHECK(ValidUtf8("caf\xC3\xA9") == "caf\xC3\xA9");
  CHECK(ValidUtf8("latin-1 caf\xE9!") == "latin-1 caf\xEF\xBF\xBD!");
  CHECK(ValidUtf8("\xC0\xAF") == "\xEF\xBF\xBD\xEF\xBF\xBD");      // an overlong '/'
  CHECK(ValidUtf8("\xED\xA0\x80") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // a surrogate
  CHECK(ValidUtf8("\xF0\x9F\x98") == "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD");  // cut short
  CHECK(Utf8Prefix("\xC3\xA9\xC3\xA9", 3) == "\xC3\xA9");
  ManualClock clock;
  const SecretRedactor redact(Secrets({}));
  OutputLines cut(clock, redact);
  std::vector<v1::LogLine> out;
  cut.Feed(v1::LOG_STREAM_STDOUT, std::string("\xFF\xFE binary\n\n\n", 12), out);
  REQUIRE(out.size() == 3);
  CHECK(out[0].text() == "\xEF\xBF\xBD\xEF\xBF\xBD binary");
  CHECK(out[1].text().empty());
  // Every line serializes and parses back (proto3 refuses invalid UTF-8 in a string).
  v1::AppendJobLogRequest request;
  for (const v1::LogLine& l : out) *request.add_lines() = l;
  v1::AppendJobLogRequest parsed;
  CHECK(parsed.ParseFromString(request.SerializeAsString()));
}
