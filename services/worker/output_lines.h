// A program's stdout and stderr bytes cut into log lines (issue 18), each stamped with the time it
// was read and redacted of the job's secrets. A line is redacted whole (up to kMaxHeldLineBytes, so
// a secret inside it never straddles a cut), made valid UTF-8 (a bad byte becomes U+FFFD), then
// split on character boundaries into pieces of at most kMaxLogLineBytes; the only residue is a
// secret straddling a kMaxHeldLineBytes boundary of one enormous line.
//
//   OutputLines lines(clock, redactor);
//   lines.Feed(v1::LOG_STREAM_STDOUT, bytes, out);   // complete lines appended to `out`
//   lines.Finish(out);                               // what is left of unfinished lines
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "services/common/clock.h"
#include "services/worker/secret_redactor.h"
#include "tessera/v1/logs.pb.h"

namespace tessera::worker {

inline constexpr size_t kMaxLogLineBytes = 16 * 1024;   // the server's limit on one line
inline constexpr size_t kMaxHeldLineBytes = 256 * 1024; // an unfinished line is let out at this length

class OutputLines {
 public:
  OutputLines(const Clock& clock, const SecretRedactor& redact) : clock_(clock), redact_(redact) {}

  void Feed(v1::LogStream stream, std::string_view bytes, std::vector<v1::LogLine>& out);
  void Finish(std::vector<v1::LogLine>& out);

 private:
  void Emit(v1::LogStream stream, std::string line, std::vector<v1::LogLine>& out) const;

  const Clock& clock_;
  const SecretRedactor& redact_;
  std::string pending_[2];  // stdout's and stderr's unfinished line
};

}  // namespace tessera::worker
