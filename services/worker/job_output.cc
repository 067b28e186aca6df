#include "services/worker/job_output.h"

#include <fcntl.h>
#include <poll.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/utf8.h"

namespace tessera::worker {
namespace {

constexpr size_t kTailLines = 20;
constexpr size_t kTailLineChars = 500;

int64_t SteadyMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

}  // namespace

absl::StatusOr<std::unique_ptr<JobOutput>> JobOutput::Open(const Clock& clock, const SecretRedactor& redact, JobLogShipper* shipper) {
  std::unique_ptr<JobOutput> out(new JobOutput(clock, redact, shipper));
  for (int i = 0; i < 2; ++i) {
    int fds[2];
    if (::pipe2(fds, O_CLOEXEC) != 0) return absl::InternalError(absl::StrCat("pipe: ", std::strerror(errno)));
    out->read_[i] = fds[0];
    out->write_[i] = fds[1];
    ::fcntl(fds[0], F_SETFL, O_NONBLOCK);
  }
  return out;
}

JobOutput::~JobOutput() {
  Close(std::chrono::milliseconds(0));
  for (int fd : {read_[0], read_[1], write_[0], write_[1]}) {
    if (fd >= 0) ::close(fd);
  }
}

void JobOutput::Started() {
  for (int& fd : write_) {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  reader_ = std::thread([this] { Read(); });
}

void JobOutput::Close(std::chrono::milliseconds drain) {
  int64_t expected = 0;
  stop_at_ms_.compare_exchange_strong(expected, SteadyMs() + drain.count());
  if (reader_.joinable()) reader_.join();
}

void JobOutput::Hand(std::vector<v1::LogLine> lines) {
  if (lines.empty()) return;
  {
    std::lock_guard lock(mu_);
    for (const v1::LogLine& line : lines) {
      tail_.emplace_back(Utf8Prefix(line.text(), kTailLineChars));
      if (tail_.size() > kTailLines) tail_.pop_front();
    }
  }
  if (shipper_ != nullptr) shipper_->Add(std::move(lines));
}

void JobOutput::Read() {
  static constexpr v1::LogStream kStreams[2] = {v1::LOG_STREAM_STDOUT, v1::LOG_STREAM_STDERR};
  std::string buffer(64 * 1024, '\0');
  bool open[2] = {true, true};
  while (open[0] || open[1]) {
    const int64_t stop_at = stop_at_ms_.load();
    if (stop_at != 0 && SteadyMs() >= stop_at) break;
    pollfd fds[2] = {{.fd = open[0] ? read_[0] : -1, .events = POLLIN, .revents = 0},
                     {.fd = open[1] ? read_[1] : -1, .events = POLLIN, .revents = 0}};
    if (::poll(fds, 2, 100) < 0 && errno != EINTR) break;
    std::vector<v1::LogLine> lines;
    for (int i = 0; i < 2; ++i) {
      if (!open[i] || fds[i].revents == 0) continue;
      const ssize_t n = ::read(read_[i], buffer.data(), buffer.size());
      if (n > 0) {
        lines_.Feed(kStreams[i], std::string_view(buffer.data(), static_cast<size_t>(n)), lines);
      } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
        open[i] = false;  // every writer closed it: the program and all it started are gone
      }
    }
    Hand(std::move(lines));
  }
  std::vector<v1::LogLine> rest;
  lines_.Finish(rest);
  Hand(std::move(rest));
}

std::string JobOutput::Tail() const {
  std::lock_guard lock(mu_);
  return absl::StrJoin(tail_, "\n");
}

}  // namespace tessera::worker
