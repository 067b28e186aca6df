// What a person sees while bytes move (`artifact put`, `artifact get`, `job outputs`): on a
// terminal, one line redrawn at most ten times a second with the share done, the bytes and the
// rate ("[=====>    ]  52.0%  532.5 MiB / 1.0 GiB  412.3 MiB/s"); when stderr is a pipe or a file,
// a plain line at each quarter, so a CI log stays readable. Always on stderr: stdout carries the
// result (a digest, JSON), which scripts read.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>

namespace tessera::cli {

// 1536 → "1.5 KiB", 1073741824 → "1.0 GiB".
std::string HumanBytes(int64_t bytes);

class TransferProgress {
 public:
  // `verb` ("uploading", "downloading") and what (a file name); `total` bytes, `start_at` of them
  // already there (a resumed download).
  TransferProgress(std::string verb, std::string what, int64_t total, int64_t start_at = 0);
  void Advance(int64_t bytes);
  // The last line: "uploaded train.csv: 1.0 GiB in 2.1 s (487.6 MiB/s)".
  void Done(const std::string& past_verb);

 private:
  void Draw(bool force);

  const std::string verb_;
  const std::string what_;
  const int64_t total_;
  const int64_t start_at_;
  int64_t done_;
  const bool terminal_;
  int quarters_printed_ = 0;
  const std::chrono::steady_clock::time_point started_ = std::chrono::steady_clock::now();
  std::chrono::steady_clock::time_point last_draw_{};
};

}  // namespace tessera::cli
