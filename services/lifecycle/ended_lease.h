// A lease that ended with its job requeued, or FAILED with its attempts exhausted (one per worker
// of a spread job): what lifecycle::EndLeases returns and the scheduler acts on.
#pragma once

#include <cstdint>

namespace tessera::lifecycle {

struct EndedLease {
  int64_t job_id = 0;
  uint32_t attempt = 0;
  int64_t worker_id = 0;
  bool failed = false;  // the job had no attempt left: FAILED, not requeued
};

}  // namespace tessera::lifecycle
