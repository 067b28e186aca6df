// tessera.v1.JobService: the customer's entry point. Validates at the edge, then delegates to the
// JobRepository. Uses gRPC's synchronous API: every call is a short database transaction on a
// pooled connection, and the server's thread quota bounds how many run at once. Submits are group
// committed (SubmitBatcher). Every call is authenticated and scoped to the caller's account
// (services/auth/access_policy.h); submits are rate limited per API key.
#pragma once

#include <atomic>

#include "services/auth/authenticator.h"
#include "services/auth/rate_limiter.h"
#include "services/common/clock.h"
#include "services/intake/job_repository.h"
#include "services/intake/submit_batcher.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::intake {

class JobServiceImpl final : public v1::JobService::Service {
 public:
  JobServiceImpl(JobRepository& jobs, auth::Authenticator& auth, auth::RateLimiter& submit_limit, int max_watch_streams = 64)
      : jobs_(jobs), submits_(jobs), auth_(auth), submit_limit_(submit_limit), max_watch_streams_(max_watch_streams) {}

  grpc::Status SubmitJob(grpc::ServerContext*, const v1::SubmitJobRequest*, v1::SubmitJobResponse*) override;
  grpc::Status GetJob(grpc::ServerContext*, const v1::GetJobRequest*, v1::Job*) override;
  grpc::Status ListJobs(grpc::ServerContext*, const v1::ListJobsRequest*, v1::ListJobsResponse*) override;
  grpc::Status CancelJob(grpc::ServerContext*, const v1::CancelJobRequest*, v1::Job*) override;
  grpc::Status ExtendJob(grpc::ServerContext*, const v1::ExtendJobRequest*, v1::Job*) override;
  grpc::Status WatchJob(grpc::ServerContext*, const v1::WatchJobRequest*, grpc::ServerWriter<v1::JobUpdate>*) override;

 private:
  // The job, if the caller may see it; NOT_FOUND (as for a job that does not exist) otherwise.
  absl::StatusOr<v1::Job> OwnJob(const auth::Caller& caller, int64_t job_id);

  JobRepository& jobs_;
  SubmitBatcher submits_;
  auth::Authenticator& auth_;
  auth::RateLimiter& submit_limit_;
  const int max_watch_streams_;
  std::atomic<int> watch_streams_{0};
};

}  // namespace tessera::intake
