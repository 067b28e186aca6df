// The notifications one process sends another through PostgreSQL (NOTIFY at commit, heard by a
// NotificationListener): each channel, its payload as a type, one encoder and one decoder, so a
// writer and a reader cannot disagree on a format. A notification only wakes its reader early:
// the truth is in the rows the same transaction wrote, which a reader re-reads after a LISTEN gap.
//
//   store::Notify(tx, store::JobCancelled{.job_id = 7, .attempt = 1, .worker_id = 3});  // in a write
//   listener = NotificationListener(url, store::SchedulerChannels(), [](channel, payload) {
//     std::optional<store::Notification> n = store::DecodeNotification(channel, payload); ... });
#pragma once

#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace tessera::store {

// The jobs channel, and the expression a set-based INSERT … RETURNING job_id notifies each queued
// job with (the payload EncodePayload writes for JobSubmitted): string literals, so that a
// constexpr statement splices them in and the SQL cannot drift from the decoder.
#define TESSERA_JOBS_CHANNEL "tessera_jobs"
#define TESSERA_NOTIFY_JOB_SUBMITTED_SQL "pg_notify('" TESSERA_JOBS_CHANNEL "', job_id::text)"

inline constexpr char kJobsChannel[] = TESSERA_JOBS_CHANNEL;
inline constexpr char kCancelsChannel[] = "tessera_cancels";
inline constexpr char kExtensionsChannel[] = "tessera_extensions";
inline constexpr char kQuarantineChannel[] = "tessera_quarantine";
inline constexpr char kSettleChannel[] = "tessera_settle";  // no payload: usage or an ended lease awaits settlement

// A job was queued (submitted). Batched submits notify from their set-based INSERT
// (TESSERA_NOTIFY_JOB_SUBMITTED_SQL).
struct JobSubmitted {
  int64_t job_id = 0;
  bool operator==(const JobSubmitted&) const = default;
};
// A customer cancelled a job: one per worker that held a lease of the attempt (worker 0: it was
// still queued).
struct JobCancelled {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  int64_t worker_id = 0;
  bool operator==(const JobCancelled&) const = default;
};
// ExtendJob raised a job's limit: one per worker running the attempt (worker 0: not running).
struct JobExtended {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  int64_t worker_id = 0;
  int64_t max_duration_ms = 0;
  bool operator==(const JobExtended&) const = default;
};
// An operator or a failed GPU challenge quarantined a worker: its stream is closed.
struct WorkerQuarantined {
  int64_t worker_id = 0;
  bool operator==(const WorkerQuarantined&) const = default;
};

using Notification = std::variant<JobSubmitted, JobCancelled, JobExtended, WorkerQuarantined>;

std::string_view ChannelOf(const Notification& notification);
std::string EncodePayload(const Notification& notification);
// What a payload heard on `channel` says; nullopt for an unknown channel or a malformed payload
// (the reader then re-reads what it follows from PostgreSQL).
std::optional<Notification> DecodeNotification(std::string_view channel, std::string_view payload);

// Queues `notification` in `tx`; PostgreSQL delivers it when (and only if) `tx` commits.
void Notify(pqxx::work& tx, const Notification& notification);
void NotifySettle(pqxx::work& tx);

// The channels the scheduler follows.
std::vector<std::string> SchedulerChannels();

}  // namespace tessera::store
