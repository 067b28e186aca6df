#include "services/common/job_state_machine.h"

#include <array>
#include <utility>

namespace tessera {
namespace {

using v1::JobState;

constexpr std::array<std::pair<JobState, std::string_view>, 6> kJobStateNames = {{
    {v1::JOB_STATE_QUEUED, "QUEUED"},
    {v1::JOB_STATE_ASSIGNED, "ASSIGNED"},
    {v1::JOB_STATE_RUNNING, "RUNNING"},
    {v1::JOB_STATE_SUCCEEDED, "SUCCEEDED"},
    {v1::JOB_STATE_FAILED, "FAILED"},
    {v1::JOB_STATE_CANCELLED, "CANCELLED"},
}};

constexpr std::array<std::pair<v1::WorkerState, std::string_view>, 6> kWorkerStateNames = {{
    {v1::WORKER_STATE_PENDING_VERIFICATION, "PENDING_VERIFICATION"},
    {v1::WORKER_STATE_ACTIVE, "ACTIVE"},
    {v1::WORKER_STATE_DRAINING, "DRAINING"},
    {v1::WORKER_STATE_OFFLINE, "OFFLINE"},
    {v1::WORKER_STATE_QUARANTINED, "QUARANTINED"},
    {v1::WORKER_STATE_RETIRED, "RETIRED"},
}};

constexpr std::array<std::pair<v1::EscrowHoldState, std::string_view>, 3> kHoldStateNames = {{
    {v1::ESCROW_HOLD_STATE_PENDING, "PENDING"},
    {v1::ESCROW_HOLD_STATE_RELEASED, "RELEASED"},
    {v1::ESCROW_HOLD_STATE_VOIDED, "VOIDED"},
}};

// The stored name of an enum value, and back, through one of the tables above.
template <typename Enum, size_t N>
std::string_view NameIn(const std::array<std::pair<Enum, std::string_view>, N>& names, Enum value) {
  for (const auto& [known, name] : names) {
    if (known == value) return name;
  }
  return "UNSPECIFIED";
}

template <typename Enum, size_t N>
std::optional<Enum> ValueIn(const std::array<std::pair<Enum, std::string_view>, N>& names, std::string_view name) {
  for (const auto& [value, known] : names) {
    if (known == name) return value;
  }
  return std::nullopt;
}

}  // namespace

bool IsTerminal(JobState state) {
  return state == v1::JOB_STATE_SUCCEEDED || state == v1::JOB_STATE_FAILED || state == v1::JOB_STATE_CANCELLED;
}

bool CanTransition(JobState from, JobState to) {
  if (IsTerminal(from) || from == v1::JOB_STATE_UNSPECIFIED) return false;
  switch (to) {
    case v1::JOB_STATE_ASSIGNED:
      return from == v1::JOB_STATE_QUEUED;
    case v1::JOB_STATE_RUNNING:  // started; or from QUEUED, a lost lease resumed by its worker
      return from == v1::JOB_STATE_ASSIGNED || from == v1::JOB_STATE_QUEUED;
    case v1::JOB_STATE_SUCCEEDED:
      return from == v1::JOB_STATE_RUNNING || from == v1::JOB_STATE_ASSIGNED;
    case v1::JOB_STATE_QUEUED:  // lease lost or retryable failure
    case v1::JOB_STATE_FAILED:  // failure, or attempts exhausted
      return from == v1::JOB_STATE_ASSIGNED || from == v1::JOB_STATE_RUNNING;
    case v1::JOB_STATE_CANCELLED:
      return true;
    default:
      return false;
  }
}

std::vector<JobState> SourcesOf(JobState to) {
  std::vector<JobState> sources;
  for (const auto& [from, name] : kJobStateNames) {
    if (CanTransition(from, to)) sources.push_back(from);
  }
  return sources;
}

std::string_view JobStateName(JobState state) { return NameIn(kJobStateNames, state); }

std::optional<JobState> ParseJobState(std::string_view name) { return ValueIn(kJobStateNames, name); }

std::string_view PriorityClassName(v1::PriorityClass priority) {
  return priority == v1::PRIORITY_CLASS_SPOT ? "SPOT" : "ON_DEMAND";
}

v1::PriorityClass ParsePriorityClass(std::string_view name) {
  return name == "SPOT" ? v1::PRIORITY_CLASS_SPOT : v1::PRIORITY_CLASS_ON_DEMAND;
}

std::string_view WorkerStateName(v1::WorkerState state) { return NameIn(kWorkerStateNames, state); }

v1::WorkerState ParseWorkerState(std::string_view name) {
  return ValueIn(kWorkerStateNames, name).value_or(v1::WORKER_STATE_UNSPECIFIED);
}

std::string_view HoldStateName(v1::EscrowHoldState state) { return NameIn(kHoldStateNames, state); }

v1::EscrowHoldState ParseHoldState(std::string_view name) {
  return ValueIn(kHoldStateNames, name).value_or(v1::ESCROW_HOLD_STATE_UNSPECIFIED);
}

}  // namespace tessera
