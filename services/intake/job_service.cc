#include "services/intake/job_service.h"

#include <chrono>
#include <thread>

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/common/grpc_status.h"
#include "services/common/job_state_machine.h"
#include "services/intake/job_spec_validator.h"
#include "services/common/names.h"
#include "services/common/workloads.h"

namespace tessera::intake {
namespace {

constexpr auto kWatchPollInterval = std::chrono::milliseconds(200);
// A watcher refused for the stream cap is told to come back after this long.
constexpr int64_t kWatchRetryAfterMs = 2'000;

grpc::Status RequireJobId(int64_t job_id) {
  if (job_id <= 0) return InvalidArgumentStatus("job_id must be positive");
  return grpc::Status::OK;
}

}  // namespace

absl::StatusOr<v1::Job> JobServiceImpl::OwnJob(const auth::Caller& caller, int64_t job_id) {
  absl::StatusOr<v1::Job> job = jobs_.Get(job_id);
  if (job.ok() && !auth::MaySee(caller, job->account())) return absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  return job;
}

grpc::Status JobServiceImpl::SubmitJob(grpc::ServerContext* context, const v1::SubmitJobRequest* request,
                                       v1::SubmitJobResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/SubmitJob");
  if (absl::Status s = ValidateSubmitRequest(*request); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = submit_limit_.Take(caller->key_id); !s.ok()) return ToGrpcStatus(s);
  // Stored with `kind` filled in, for readers that still read it, and so that a retry that leaves
  // it out is the same spec as a first request that gave it.
  v1::SubmitJobRequest submitted = *request;
  submitted.mutable_spec()->set_kind(std::string(WorkloadKind(request->spec())));
  absl::StatusOr<SubmitOutcome> outcome = submits_.Submit(submitted);
  if (!outcome.ok()) return ToGrpcStatus(outcome.status());
  *response->mutable_job() = std::move(outcome->job);
  response->set_deduplicated(outcome->deduplicated);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::GetJob(grpc::ServerContext* context, const v1::GetJobRequest* request, v1::Job* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/GetJob");
  if (grpc::Status s = RequireJobId(request->job_id()); !s.ok()) return s;
  absl::StatusOr<v1::Job> job = OwnJob(*caller, request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ListJobs(grpc::ServerContext* context, const v1::ListJobsRequest* request,
                                      v1::ListJobsResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/ListJobs");
  if (absl::Status s = ValidateName("account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (absl::Status s = auth::RequireAccount(*caller, "account", request->account()); !s.ok()) return ToGrpcStatus(s);
  if (!v1::JobState_IsValid(request->state())) {
    return ToGrpcStatus(absl::InvalidArgumentError(
        absl::StrCat("state must be a JobState (0 for any, ", v1::JOB_STATE_QUEUED, "..", v1::JobState_MAX, "), got ", request->state())));
  }
  absl::StatusOr<v1::ListJobsResponse> page = jobs_.List(*request);
  if (!page.ok()) return ToGrpcStatus(page.status());
  *response = *std::move(page);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::CancelJob(grpc::ServerContext* context, const v1::CancelJobRequest* request, v1::Job* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/CancelJob");
  if (grpc::Status s = RequireJobId(request->job_id()); !s.ok()) return s;
  if (absl::StatusOr<v1::Job> own = OwnJob(*caller, request->job_id()); !own.ok()) return ToGrpcStatus(own.status());
  absl::StatusOr<v1::Job> job = jobs_.Cancel(request->job_id());
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::ExtendJob(grpc::ServerContext* context, const v1::ExtendJobRequest* request, v1::Job* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/ExtendJob");
  if (absl::Status s = ValidateExtendRequest(*request); !s.ok()) return ToGrpcStatus(s);
  if (absl::StatusOr<v1::Job> own = OwnJob(*caller, request->job_id()); !own.ok()) return ToGrpcStatus(own.status());
  absl::StatusOr<v1::Job> job = jobs_.Extend(*request);
  if (!job.ok()) return ToGrpcStatus(job.status());
  *response = *std::move(job);
  return grpc::Status::OK;
}

grpc::Status JobServiceImpl::WatchJob(grpc::ServerContext* context, const v1::WatchJobRequest* request,
                                      grpc::ServerWriter<v1::JobUpdate>* writer) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.JobService/WatchJob");
  if (grpc::Status s = RequireJobId(request->job_id()); !s.ok()) return s;
  if (request->after_event_id() < 0) {
    return ToGrpcStatus(absl::InvalidArgumentError(absl::StrCat("after_event_id must be 0 or positive, got ", request->after_event_id())));
  }
  if (absl::StatusOr<v1::Job> own = OwnJob(*caller, request->job_id()); !own.ok()) return ToGrpcStatus(own.status());
  // Each stream holds a call thread while it watches: beyond the limit, refused (retry later).
  if (watch_streams_.fetch_add(1) >= max_watch_streams_) {
    watch_streams_.fetch_sub(1);
    return ToGrpcStatus(ResourceExhaustedWithRetry(
        absl::StrCat("too many WatchJob streams open (", max_watch_streams_, "); poll GetJob meanwhile"), kWatchRetryAfterMs));
  }
  struct Release {
    std::atomic<int>& n;
    ~Release() { n.fetch_sub(1); }
  } release{watch_streams_};
  int64_t last_event_id = request->after_event_id();  // a reconnecting watcher resumes after what it saw
  uint32_t last_progress_ppm = 0;
  std::string last_wait_reason;
  while (!context->IsCancelled()) {
    absl::StatusOr<JobChanges> changes = jobs_.ChangesSince(request->job_id(), last_event_id);
    if (!changes.ok()) return ToGrpcStatus(changes.status());
    for (const v1::JobUpdate& update : changes->updates) {
      if (!writer->Write(update)) return grpc::Status::OK;  // the client went away
    }
    last_event_id = changes->last_event_id;
    const v1::Job& job = changes->job;
    if (job.progress_ppm() != last_progress_ppm && !IsTerminal(job.state())) {
      last_progress_ppm = job.progress_ppm();
      v1::JobUpdate progress;
      progress.set_job_id(job.job_id());
      progress.set_state(job.state());
      progress.set_attempt(job.attempt());
      progress.set_progress_ppm(job.progress_ppm());
      progress.set_loss(changes->loss);
      progress.set_message("progress");
      progress.set_kind(v1::JOB_UPDATE_KIND_PROGRESS);
      progress.set_at_ms(job.updated_at_ms());
      progress.set_event_id(last_event_id);
      if (!writer->Write(progress)) return grpc::Status::OK;
    }
    if (job.state() == v1::JOB_STATE_QUEUED && job.wait_reason() != last_wait_reason) {
      last_wait_reason = job.wait_reason();
      if (!last_wait_reason.empty()) {
        v1::JobUpdate waiting;
        waiting.set_job_id(job.job_id());
        waiting.set_state(job.state());
        waiting.set_attempt(job.attempt());
        waiting.set_message("waiting: " + last_wait_reason);
        waiting.set_kind(v1::JOB_UPDATE_KIND_WAITING);
        waiting.set_at_ms(job.updated_at_ms());
        waiting.set_event_id(last_event_id);
        if (!writer->Write(waiting)) return grpc::Status::OK;
      }
    }
    // The terminal event is written with the terminal state, so once the job is terminal and the
    // events are drained the stream is complete.
    if (IsTerminal(job.state()) && changes->updates.size() < kMaxEventsPerRead) return grpc::Status::OK;
    std::this_thread::sleep_for(kWatchPollInterval);
  }
  return grpc::Status::OK;
}

}  // namespace tessera::intake
