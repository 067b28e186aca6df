// The job lifecycle of DESIGN.md: QUEUED → ASSIGNED → RUNNING → SUCCEEDED | FAILED | CANCELLED,
// back to QUEUED when a lease is lost, and CANCELLED from any non-terminal state. One edge DESIGN.md
// leaves out: QUEUED → RUNNING when the worker whose lease was lost reconnects still running that
// same attempt and nothing took its GPUs meanwhile (the lease resumes; no work is redone).
// services/lifecycle is the one module that writes job state: every statement there declares the
// edges it takes, checked against CanTransition before its first use, and guards them in SQL with
// exactly the source states (`WHERE state IN (…)`, so a stale or repeated event changes nothing).
#pragma once

#include <optional>
#include <string_view>
#include <vector>

#include "tessera/v1/common.pb.h"

namespace tessera {

bool IsTerminal(v1::JobState state);
bool CanTransition(v1::JobState from, v1::JobState to);
// Every state with an edge to `to`, in enum order.
std::vector<v1::JobState> SourcesOf(v1::JobState to);

// "QUEUED", "RUNNING", … as stored in the database and shown by the CLI.
std::string_view JobStateName(v1::JobState state);
std::optional<v1::JobState> ParseJobState(std::string_view name);

std::string_view PriorityClassName(v1::PriorityClass priority);  // "ON_DEMAND" or "SPOT"
v1::PriorityClass ParsePriorityClass(std::string_view name);

std::string_view WorkerStateName(v1::WorkerState state);
v1::WorkerState ParseWorkerState(std::string_view name);

// "PENDING", "RELEASED", "VOIDED": a job's escrow hold as stored.
std::string_view HoldStateName(v1::EscrowHoldState state);
v1::EscrowHoldState ParseHoldState(std::string_view name);

}  // namespace tessera
