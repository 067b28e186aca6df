#include "services/worker/output_lines.h"

#include "services/common/utf8.h"

namespace tessera::worker {

void OutputLines::Emit(v1::LogStream stream, std::string line, std::vector<v1::LogLine>& out) const {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  // Redacted before anything else: a secret is matched on the bytes as the program wrote them.
  const std::string text = ValidUtf8(redact_(std::move(line)));
  const int64_t now = clock_.NowMs();
  std::string_view rest = text;
  do {
    // Never split a UTF-8 sequence: a piece ends on a character boundary.
    std::string_view piece = Utf8Prefix(rest, kMaxLogLineBytes);
    if (piece.empty()) piece = rest.substr(0, std::min(rest.size(), kMaxLogLineBytes));
    v1::LogLine& l = out.emplace_back();
    l.set_time_ms(now);
    l.set_stream(stream);
    l.set_text(std::string(piece));
    rest.remove_prefix(piece.size());
  } while (!rest.empty());
}

void OutputLines::Feed(v1::LogStream stream, std::string_view bytes, std::vector<v1::LogLine>& out) {
  std::string& pending = pending_[stream == v1::LOG_STREAM_STDERR ? 1 : 0];
  while (!bytes.empty()) {
    const size_t newline = bytes.find('\n');
    const size_t take = newline == std::string_view::npos ? bytes.size() : newline;
    const size_t room = kMaxHeldLineBytes - pending.size();
    if (take > room || (take == room && newline == std::string_view::npos)) {
      pending.append(bytes.substr(0, room));
      bytes.remove_prefix(room);
      Emit(stream, std::move(pending), out);
      pending.clear();
      continue;
    }
    pending.append(bytes.substr(0, take));
    bytes.remove_prefix(take);
    if (newline == std::string_view::npos) break;
    bytes.remove_prefix(1);
    Emit(stream, std::move(pending), out);
    pending.clear();
  }
}

void OutputLines::Finish(std::vector<v1::LogLine>& out) {
  for (v1::LogStream stream : {v1::LOG_STREAM_STDOUT, v1::LOG_STREAM_STDERR}) {
    std::string& pending = pending_[stream == v1::LOG_STREAM_STDERR ? 1 : 0];
    if (!pending.empty()) Emit(stream, std::move(pending), out);
    pending.clear();
  }
}

}  // namespace tessera::worker
