#include "services/scheduler/scheduler_rows.h"

#include <map>

#include "services/common/job_state_machine.h"
#include "services/scheduler/market_inputs.h"
#include "services/store/database.h"
#include "services/store/statement.h"

namespace tessera::scheduler_host {

using store::ArrayLiteral;

std::string IndexLiteral(const std::vector<uint32_t>& indexes) {
  return ArrayLiteral(std::vector<int64_t>(indexes.begin(), indexes.end()));
}

const char* const kAssignmentColumns =
    "a.job_id, a.attempt, a.worker_id, a.gpu_indexes, a.price_utok_per_gpu_hour, j.spec, j.state, c.name,"
    " (extract(epoch FROM j.created_at) * 1000)::bigint, a.node_rank,"
    " (SELECT array_agg(o.worker_id ORDER BY o.node_rank) FROM assignments o WHERE o.job_id = a.job_id AND o.attempt = a.attempt),"
    " j.max_duration_ms";

LiveAssignment AssignmentFromRow(const pqxx::row& row) {
  LiveAssignment a;
  a.job_id = row[0].as<int64_t>();
  a.attempt = row[1].as<uint32_t>();
  a.worker_id = row[2].as<int64_t>();
  for (int64_t i : store::ParseIntArray(row[3].as<std::string>())) a.gpu_indexes.push_back(static_cast<uint32_t>(i));
  a.running = row[6].as<std::string>() == "RUNNING";
  a.message.set_job_id(a.job_id);
  a.message.set_attempt(a.attempt);
  a.message.set_price_utok_per_gpu_hour(row[4].as<int64_t>());
  a.message.mutable_spec()->ParseFromString(pqxx::binarystring(row[5]).str());
  a.message.mutable_spec()->set_max_duration_ms(row[11].as<int64_t>());  // the limit in force (ExtendJob)
  for (uint32_t i : a.gpu_indexes) a.message.add_gpu_indexes(i);
  a.account = row[7].as<std::string>();
  a.submitted_at_ms = row[8].as<int64_t>();
  a.message.set_node_rank(row[9].as<uint32_t>());
  for (int64_t id : store::ParseIntArray(row[10].as<std::string>())) a.message.add_node_worker_ids(id);
  return a;
}

v1::Gpu GpuFromRow(const pqxx::row& r, int first) {
  v1::Gpu gpu;
  gpu.set_index(r[first].as<uint32_t>());
  gpu.set_model(r[first + 1].as<std::string>());
  gpu.set_memory_mib(r[first + 2].as<uint64_t>());
  gpu.set_compute_capability(r[first + 3].as<std::string>());
  gpu.set_uuid(r[first + 4].as<std::string>());
  gpu.set_pci_bus_id(r[first + 5].as<std::string>());
  for (int64_t peer : store::ParseIntArray(r[first + 6].as<std::string>())) gpu.add_peer_indexes(static_cast<uint32_t>(peer));
  return gpu;
}

scheduler::JobRequirements RequirementsFromRow(const pqxx::row& row) {
  v1::JobSpec spec;
  spec.ParseFromString(pqxx::binarystring(row[2]).str());
  spec.set_max_duration_ms(row[4].as<int64_t>());
  return JobRequirementsFrom(row[0].as<int64_t>(), row[1].as<std::string>(), spec, row[3].as<int64_t>());
}

std::vector<WorkerRecord> LoadWorkerRecords(pqxx::work& tx, const std::vector<int64_t>& ids) {
  std::map<int64_t, WorkerRecord> records;
  for (const pqxx::row& r : store::Exec(tx, {"sched_load_workers",
           "SELECT worker_id, state, region, reputation, ask_utok_per_gpu_hour, policy, verified_at IS NOT NULL,"
           " coalesce(job_kinds, '{}') FROM workers WHERE worker_id = ANY($1::bigint[])"},
           ArrayLiteral(ids))) {
    WorkerRecord& w = records[r[0].as<int64_t>()];
    w.worker_id = r[0].as<int64_t>();
    w.state = ParseWorkerState(r[1].as<std::string>());
    w.region = r[2].as<std::string>();
    w.reputation = r[3].as<int32_t>();
    w.ask_utok_per_gpu_hour = r[4].as<int64_t>();
    w.policy.ParseFromString(pqxx::binarystring(r[5]).str());
    w.verified = r[6].as<bool>();
    w.job_kinds = store::ParseTextArray(r[7].as<std::string>());
  }
  for (const pqxx::row& r : store::Exec(tx, {"sched_load_gpus",
           "SELECT worker_id, " GPU_COLUMNS " FROM gpus WHERE worker_id = ANY($1::bigint[]) ORDER BY worker_id, gpu_index"},
           ArrayLiteral(ids))) {
    auto it = records.find(r[0].as<int64_t>());
    if (it != records.end()) it->second.gpus.push_back(GpuFromRow(r, 1));
  }
  std::vector<WorkerRecord> out;
  for (int64_t id : ids) {
    if (auto it = records.find(id); it != records.end()) out.push_back(std::move(it->second));
  }
  return out;
}

}  // namespace tessera::scheduler_host
