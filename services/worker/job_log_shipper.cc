#include "services/worker/job_log_shipper.h"

#include <grpcpp/grpcpp.h>
#include <spdlog/spdlog.h>

#include "absl/strings/str_cat.h"
#include "services/common/utf8.h"
#include "tessera/v1/logs.grpc.pb.h"

namespace tessera::worker {
namespace {

// The server's limits on one append (services/logs/job_log_repository.h).
constexpr int kBatchLines = 1'000;
constexpr size_t kBatchBytes = size_t{1} << 20;
// Held lines this large are sent without waiting for the flush interval.
constexpr size_t kEagerBytes = 64 * 1024;

// What a held line counts against the bound: its text and a little for its other fields.
size_t HeldBytes(const v1::LogLine& line) { return line.text().size() + 16; }

// An error the same request would get again: retrying it is pointless.
bool Permanent(const absl::Status& s) {
  return s.code() == absl::StatusCode::kPermissionDenied || s.code() == absl::StatusCode::kInvalidArgument ||
         s.code() == absl::StatusCode::kFailedPrecondition || s.code() == absl::StatusCode::kUnauthenticated ||
         s.code() == absl::StatusCode::kUnimplemented;  // a server without the LogService
}

class GrpcJobLogSink final : public JobLogSink {
 public:
  explicit GrpcJobLogSink(std::shared_ptr<grpc::Channel> channel) : stub_(v1::LogService::NewStub(std::move(channel))) {}

  absl::StatusOr<uint64_t> Append(const v1::AppendJobLogRequest& request) override {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::AppendJobLogResponse response;
    const grpc::Status s = stub_->AppendJobLog(&context, request, &response);
    if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), s.error_message());
    return response.next_seq();
  }

 private:
  std::unique_ptr<v1::LogService::Stub> stub_;
};

}  // namespace

std::unique_ptr<JobLogSink> MakeGrpcJobLogSink(std::shared_ptr<grpc::Channel> channel) {
  return std::make_unique<GrpcJobLogSink>(std::move(channel));
}

JobLogShipper::JobLogShipper(JobLogSink& sink, v1::JobLease lease, const Clock& clock, LogShippingOptions options)
    : sink_(sink), lease_(std::move(lease)), clock_(clock), options_(options), thread_([this] { Loop(); }) {}

JobLogShipper::~JobLogShipper() { Finish(std::chrono::milliseconds(0)); }

void JobLogShipper::Add(std::vector<v1::LogLine> lines) {
  std::lock_guard lock(mu_);
  if (finishing_ || abandoned_) return;
  for (v1::LogLine& line : lines) {
    const size_t bytes = HeldBytes(line);
    if (held_bytes_ + bytes > options_.max_buffered_bytes) {
      ++dropped_;
      ++dropped_total_;
      continue;
    }
    if (dropped_ > 0) HoldDroppedNote();
    line.set_seq(next_seq_++);
    held_bytes_ += bytes;
    held_.push_back(std::move(line));
  }
  if (held_bytes_ >= kEagerBytes) wake_.notify_all();
}

void JobLogShipper::HoldDroppedNote() {
  v1::LogLine& note = held_.emplace_back();
  note.set_seq(next_seq_++);
  note.set_time_ms(clock_.NowMs());
  note.set_stream(v1::LOG_STREAM_SYSTEM);
  note.set_text(absl::StrCat("[tessera] ", dropped_, " lines dropped: the server was out of reach and the worker holds at most ",
                             options_.max_buffered_bytes >> 20, " MiB of unsent lines"));
  held_bytes_ += HeldBytes(note);
  dropped_ = 0;
}

void JobLogShipper::AddSystemLine(std::string text) {
  std::vector<v1::LogLine> lines(1);
  lines[0].set_time_ms(clock_.NowMs());
  lines[0].set_stream(v1::LOG_STREAM_SYSTEM);
  lines[0].set_text(ValidUtf8("[tessera] " + std::move(text)));
  Add(std::move(lines));
}

bool JobLogShipper::SendBatch(bool finishing) {
  v1::AppendJobLogRequest request;
  {
    std::lock_guard lock(mu_);
    *request.mutable_lease() = lease_;
    request.set_first_seq(first_held_);
    size_t bytes = 0;
    for (const v1::LogLine& line : held_) {
      if (request.lines_size() == kBatchLines || bytes + line.text().size() > kBatchBytes) break;
      *request.add_lines() = line;
      bytes += line.text().size();
    }
    request.set_final(finishing && static_cast<size_t>(request.lines_size()) == held_.size());
  }
  absl::StatusOr<uint64_t> next = sink_.Append(request);
  std::lock_guard lock(mu_);
  if (!next.ok()) {
    if (Permanent(next.status())) {
      // Not ours to send any more (the lease is gone): what is held never will be.
      spdlog::warn("job {} attempt {}: {} log lines not stored: {}", lease_.job_id(), lease_.attempt(), held_.size(),
                   std::string(next.status().message()));
      dropped_total_ += held_.size();
      held_.clear();
      held_bytes_ = 0;
      first_held_ = next_seq_;
      final_sent_ = true;
      abandoned_ = true;  // later lines would only leave a gap the server refuses
      return true;
    }
    return false;
  }
  for (int i = 0; i < request.lines_size(); ++i) {
    held_bytes_ -= HeldBytes(held_.front());
    held_.pop_front();
  }
  first_held_ += static_cast<uint64_t>(request.lines_size());
  if (request.final()) final_sent_ = true;
  return true;
}

void JobLogShipper::Loop() {
  std::chrono::milliseconds backoff = options_.min_backoff;
  bool failed = false;
  for (;;) {
    bool finishing = false;
    {
      std::unique_lock lock(mu_);
      const bool was_finishing = finishing_;
      auto ready = [&] { return (!failed && (finishing_ || held_bytes_ >= kEagerBytes)) || finishing_ != was_finishing; };
      if (!ready()) {
        auto until = std::chrono::steady_clock::now() + (failed ? backoff : options_.flush_interval);
        if (finishing_) until = std::min(until, finish_by_);
        wake_.wait_until(lock, until, ready);
      }
      if (finishing_ && (final_sent_ || std::chrono::steady_clock::now() >= finish_by_)) return;
      if (held_.empty() && !finishing_) continue;
      finishing = finishing_;
    }
    if (SendBatch(finishing)) {
      failed = false;
      backoff = options_.min_backoff;
    } else {
      failed = true;
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
}

bool JobLogShipper::Finish(std::chrono::milliseconds deadline) {
  {
    std::lock_guard lock(mu_);
    if (!finishing_) {
      finishing_ = true;
      finish_by_ = std::chrono::steady_clock::now() + deadline;
      if (dropped_ > 0) HoldDroppedNote();
    }
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard lock(mu_);
  if (!held_.empty()) {
    spdlog::warn("job {} attempt {}: {} log lines never reached the server", lease_.job_id(), lease_.attempt(), held_.size());
  }
  return held_.empty() && final_sent_ && dropped_total_ == 0;
}

uint64_t JobLogShipper::dropped_lines() const {
  std::lock_guard lock(mu_);
  return dropped_total_;
}

}  // namespace tessera::worker
