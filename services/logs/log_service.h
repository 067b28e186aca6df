// tessera.v1.LogService (issue 18): workers append their jobs' output under their leases; customers
// read it, or follow it until the job's output is complete. A follower polls the store (as WatchJob
// does) and holds a call thread, so followers at once are bounded.
#pragma once

#include <atomic>

#include "services/auth/authenticator.h"
#include "services/logs/job_log_repository.h"
#include "tessera/v1/logs.grpc.pb.h"

namespace tessera::logs {

class LogServiceImpl final : public v1::LogService::Service {
 public:
  LogServiceImpl(JobLogRepository& logs, auth::Authenticator& auth, int max_followers)
      : logs_(logs), auth_(auth), max_followers_(max_followers) {}

  grpc::Status AppendJobLog(grpc::ServerContext*, const v1::AppendJobLogRequest*, v1::AppendJobLogResponse*) override;
  grpc::Status ReadJobLog(grpc::ServerContext*, const v1::ReadJobLogRequest*, grpc::ServerWriter<v1::ReadJobLogResponse>*) override;

 private:
  JobLogRepository& logs_;
  auth::Authenticator& auth_;
  const int max_followers_;
  std::atomic<int> followers_{0};
};

}  // namespace tessera::logs
