#include "services/logs/log_service.h"

#include <thread>

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/common/grpc_status.h"

namespace tessera::logs {
namespace {

constexpr auto kFollowPollInterval = std::chrono::milliseconds(250);
constexpr int64_t kFollowRetryAfterMs = 2'000;
constexpr size_t kLinesPerRead = 1'000;
// A response stays well under gRPC's 4 MiB message limit: lines are at most 16 KiB each.
constexpr size_t kLinesPerMessage = 200;

}  // namespace

grpc::Status LogServiceImpl::AppendJobLog(grpc::ServerContext* context, const v1::AppendJobLogRequest* request,
                                          v1::AppendJobLogResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.LogService/AppendJobLog");
  if (caller->role != v1::ROLE_PROVIDER) return ToGrpcStatus(absl::PermissionDeniedError("AppendJobLog is for workers' keys"));
  absl::StatusOr<uint64_t> next = logs_.Append(caller->account_id, *request);
  if (!next.ok()) return ToGrpcStatus(next.status());
  response->set_next_seq(*next);
  return grpc::Status::OK;
}

grpc::Status LogServiceImpl::ReadJobLog(grpc::ServerContext* context, const v1::ReadJobLogRequest* request,
                                        grpc::ServerWriter<v1::ReadJobLogResponse>* writer) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.LogService/ReadJobLog");
  if (request->job_id() <= 0) return InvalidArgumentStatus(absl::StrCat("job_id: a job's id (1 or more), got ", request->job_id()));
  LogPositions positions;
  for (const v1::LogPosition& p : request->after()) positions[{p.attempt(), p.node()}] = p.next_seq();
  // Who may read is decided by the job's owner, read with the first lines.
  absl::StatusOr<JobLogRead> read = logs_.Read(request->job_id(), request->attempt(), positions, 0);
  if (read.ok() && !auth::MaySee(*caller, read->account)) read = absl::NotFoundError(absl::StrCat("job ", request->job_id(), " not found"));
  if (!read.ok()) return ToGrpcStatus(read.status());
  if (request->tail_lines() > 0 && request->after().empty()) {
    absl::StatusOr<LogPositions> tail = logs_.TailPositions(request->job_id(), request->attempt(), request->tail_lines());
    if (!tail.ok()) return ToGrpcStatus(tail.status());
    positions = *std::move(tail);
  }
  struct Release {
    std::atomic<int>* n = nullptr;
    ~Release() {
      if (n != nullptr) n->fetch_sub(1);
    }
  } release;
  if (request->follow()) {
    // Each follower holds a call thread while it waits: beyond the limit, refused (retry later).
    if (followers_.fetch_add(1) >= max_followers_) {
      followers_.fetch_sub(1);
      return ToGrpcStatus(ResourceExhaustedWithRetry(
          absl::StrCat("too many ReadJobLog followers (", max_followers_, "); read without follow meanwhile"), kFollowRetryAfterMs));
    }
    release.n = &followers_;
  }
  while (!context->IsCancelled()) {
    read = logs_.Read(request->job_id(), request->attempt(), positions, kLinesPerRead);
    if (!read.ok()) return ToGrpcStatus(read.status());
    v1::ReadJobLogResponse message;
    for (v1::LogLine& line : read->lines) {
      *message.add_lines() = std::move(line);
      if (static_cast<size_t>(message.lines_size()) == kLinesPerMessage) {
        if (!writer->Write(message)) return grpc::Status::OK;  // the reader went away
        message.clear_lines();
      }
    }
    if (message.lines_size() > 0 && !writer->Write(message)) return grpc::Status::OK;
    if (read->more) continue;
    if (!request->follow() || read->complete) return grpc::Status::OK;
    std::this_thread::sleep_for(kFollowPollInterval);
  }
  return grpc::Status::OK;
}

}  // namespace tessera::logs
