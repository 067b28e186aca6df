#include "services/scheduler/host_messages.h"

namespace tessera::scheduler_host {

v1::ServerMessage CancelMessage(int64_t job_id, uint32_t attempt, const std::string& reason) {
  v1::ServerMessage m;
  m.mutable_cancel()->set_job_id(job_id);
  m.mutable_cancel()->set_attempt(attempt);
  m.mutable_cancel()->set_reason(reason);
  return m;
}

v1::ServerMessage ExtendedMessage(int64_t job_id, uint32_t attempt, int64_t max_duration_ms) {
  v1::ServerMessage m;
  m.mutable_extended()->set_job_id(job_id);
  m.mutable_extended()->set_attempt(attempt);
  m.mutable_extended()->set_max_duration_ms(max_duration_ms);
  return m;
}

v1::ServerMessage RendezvousMessage(const RendezvousOut& r) {
  v1::ServerMessage m;
  m.mutable_rendezvous()->set_job_id(r.job_id);
  m.mutable_rendezvous()->set_attempt(r.attempt);
  m.mutable_rendezvous()->set_unique_id(r.unique_id);
  for (uint32_t n : r.node_gpu_counts) m.mutable_rendezvous()->add_node_gpu_counts(n);
  return m;
}

v1::ServerMessage AssignmentMessage(const LiveAssignment& a) {
  v1::ServerMessage m;
  *m.mutable_assignment() = a.message;
  return m;
}

}  // namespace tessera::scheduler_host
