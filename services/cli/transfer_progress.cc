#include "services/cli/transfer_progress.h"

#include <unistd.h>

#include <algorithm>
#include <iostream>

#include "absl/strings/str_format.h"

namespace tessera::cli {

std::string HumanBytes(int64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024 && unit < 4) {
    value /= 1024;
    ++unit;
  }
  return unit == 0 ? absl::StrFormat("%d B", bytes) : absl::StrFormat("%.1f %s", value, kUnits[unit]);
}

TransferProgress::TransferProgress(std::string verb, std::string what, int64_t total, int64_t start_at)
    : verb_(std::move(verb)), what_(std::move(what)), total_(total), start_at_(start_at), done_(start_at),
      terminal_(::isatty(STDERR_FILENO) == 1) {
  if (start_at_ > 0) std::cerr << verb_ << " " << what_ << ": resuming at " << HumanBytes(start_at_) << "\n";
  Draw(true);
}

void TransferProgress::Advance(int64_t bytes) {
  done_ += bytes;
  Draw(false);
}

void TransferProgress::Draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  const double seconds = std::chrono::duration<double>(now - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_ - start_at_) / seconds : 0;
  const double share = total_ > 0 ? static_cast<double>(done_) / static_cast<double>(total_) : 1.0;
  if (terminal_) {
    if (!force && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    constexpr int kWidth = 24;
    const int filled = std::clamp(static_cast<int>(share * kWidth), 0, kWidth);
    std::string bar(static_cast<size_t>(filled), '=');
    if (filled < kWidth) bar += '>' + std::string(static_cast<size_t>(kWidth - filled - 1), ' ');
    std::cerr << absl::StrFormat("\r\x1b[2K%s [%s] %5.1f%%  %s / %s  %s/s", verb_, bar, share * 100, HumanBytes(done_),
                                 HumanBytes(total_), HumanBytes(static_cast<int64_t>(rate)))
              << std::flush;
    return;
  }
  const int quarter = static_cast<int>(share * 4);
  if (quarter <= quarters_printed_ || quarter >= 4) return;  // 100% is Done's line
  quarters_printed_ = quarter;
  std::cerr << absl::StrFormat("%s %s: %d%% (%s of %s, %s/s)\n", verb_, what_, quarter * 25, HumanBytes(done_), HumanBytes(total_),
                               HumanBytes(static_cast<int64_t>(rate)));
}

void TransferProgress::Done(const std::string& past_verb) {
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count();
  const double rate = seconds > 0 ? static_cast<double>(done_ - start_at_) / seconds : 0;
  if (terminal_) std::cerr << "\r\x1b[2K";
  std::cerr << absl::StrFormat("%s %s: %s in %.1f s (%s/s)\n", past_verb, what_, HumanBytes(done_ - start_at_), seconds,
                               HumanBytes(static_cast<int64_t>(rate)));
}

}  // namespace tessera::cli
