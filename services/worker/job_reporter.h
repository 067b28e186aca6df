// Where a running job's messages go: the agent's stream and, for what must survive a disconnect,
// its outbox.
#pragma once

#include "tessera/v1/workers.pb.h"

namespace tessera::worker {

class JobReporter {
 public:
  virtual ~JobReporter() = default;
  virtual void Send(v1::WorkerMessage message) = 0;
};

}  // namespace tessera::worker
