// Job intake's transactions. Submit validates nothing (the validator did) but enforces what needs
// the database: the account exists and is a customer, the request_id is new or the same spec, the
// balance covers the hold. The job row, the HOLD transfer, the QUEUED event and the scheduler's
// NOTIFY are one transaction, so a failure writes nothing.
#pragma once

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "services/intake/job_spec_validator.h"
#include "services/store/database.h"
#include "tessera/v1/jobs.pb.h"

namespace tessera::intake {

struct SubmitOutcome {
  v1::Job job;
  bool deduplicated = false;
};

// At most this many events are read per call; a full page means more may follow.
inline constexpr size_t kMaxEventsPerRead = 1'000;

// The job's audit events after `after_event_id`, oldest first, and the job as it is now.
struct JobChanges {
  std::vector<v1::JobUpdate> updates;
  int64_t last_event_id = 0;
  v1::Job job;
  double loss = 0;  // latest training loss reported, 0 if none
};

class JobRepository {
 public:
  // `fee_bps` is the platform fee in basis points that jobs submitted here will pay;
  // `default_queue_timeout_ms` how long a job whose spec sets no queue timeout may wait to start.
  JobRepository(store::Database& db, int64_t fee_bps, int64_t default_queue_timeout_ms = kDefaultQueueTimeoutMs)
      : db_(db), fee_bps_(fee_bps), default_queue_timeout_ms_(default_queue_timeout_ms) {}

  absl::StatusOr<SubmitOutcome> Submit(const v1::SubmitJobRequest& request);
  // Many submits in one transaction (group commit): each request gets the outcome it would have
  // had alone, in order; a request_id repeated within the batch is a retry of its first use.
  std::vector<absl::StatusOr<SubmitOutcome>> SubmitBatch(const std::vector<const v1::SubmitJobRequest*>& requests);
  absl::StatusOr<v1::Job> Get(int64_t job_id);
  absl::StatusOr<v1::ListJobsResponse> List(const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> Cancel(int64_t job_id);
  // ExtendJob: the request is already validated (ValidateExtendRequest).
  absl::StatusOr<v1::Job> Extend(const v1::ExtendJobRequest& request);
  absl::StatusOr<JobChanges> ChangesSince(int64_t job_id, int64_t after_event_id);

 private:
  store::Database& db_;
  const int64_t fee_bps_;
  const int64_t default_queue_timeout_ms_;
};

// The SELECT list and conversion shared by every read of a job.
extern const char* const kJobColumns;
v1::Job JobFromRow(const pqxx::row& row);
absl::StatusOr<v1::Job> LoadJob(pqxx::work& tx, int64_t job_id);

}  // namespace tessera::intake
