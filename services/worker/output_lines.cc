#include "services/worker/output_lines.h"

namespace tessera::worker {

void OutputLines::Emit(v1::LogStream stream, std::string line, std::vector<v1::LogLine>& out) const {
  if (!line.empty() && line.back() == '\r') line.pop_back();
  const std::string text = redact_(std::move(line));
  const int64_t now = clock_.NowMs();
  size_t at = 0;
  do {
    size_t len = std::min(kMaxLogLineBytes, text.size() - at);
    // Never split a UTF-8 sequence: back up to the start of the character the cut would halve.
    if (at + len < text.size()) {
      while (len > 1 && (static_cast<unsigned char>(text[at + len]) & 0xC0) == 0x80) --len;
    }
    v1::LogLine& piece = out.emplace_back();
    piece.set_time_ms(now);
    piece.set_stream(stream);
    piece.set_text(text.substr(at, len));
    at += len;
  } while (at < text.size());
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
