// How the scheduler repository reads its rows: a live assignment with its job, a GPU, a queued
// job's requirements, workers with their GPUs and policy. Shared by the repository's two halves
// (scheduler_repository.cc: the market's side; scheduler_repository_workers.cc: the workers').
#pragma once

#include <pqxx/pqxx>

#include <string>
#include <vector>

#include "tessera/v1/workers.pb.h"
#include "scheduler/market_types.h"
#include "services/scheduler/scheduler_store.h"
#include "services/scheduler/worker_record.h"

namespace tessera::scheduler_host {

// A PostgreSQL int[] literal of GPU indexes.
std::string IndexLiteral(const std::vector<uint32_t>& indexes);

// The columns AssignmentFromRow reads, over assignments a JOIN jobs j JOIN accounts c.
extern const char* const kAssignmentColumns;
LiveAssignment AssignmentFromRow(const pqxx::row& row);

// The columns GpuFromRow reads, from `first` on.
#define GPU_COLUMNS "gpu_index, model, memory_mib, compute_capability, uuid, pci_bus_id, peer_indexes"
v1::Gpu GpuFromRow(const pqxx::row& r, int first);

// Columns: job_id, account name, spec, submitted ms, max_duration_ms (the limit in force).
scheduler::JobRequirements RequirementsFromRow(const pqxx::row& row);

// Workers with their GPUs (ordered by index) and policy, in `ids` order.
std::vector<WorkerRecord> LoadWorkerRecords(pqxx::work& tx, const std::vector<int64_t>& ids);

}  // namespace tessera::scheduler_host
