// A statement of services/lifecycle that changes jobs.state, with the edges of job_state_machine
// it takes. Before its first use the edges are checked (TESSERA_CHECK: a wrong edge is a bug in
// this module, never bad input): each is legal, the SQL holds the guard for exactly the declared
// sources (`state = 'QUEUED'`, `state IN ('ASSIGNED', 'RUNNING')`; text, so a review still reads
// that it guards the UPDATE) and names every target.
//
//   static const store::Statement kStarted = Checked({.statement = {…}, .from = {ASSIGNED}, .to = {RUNNING}});
#pragma once

#include <string>
#include <vector>

#include "services/store/statement.h"
#include "tessera/v1/common.pb.h"

namespace tessera::lifecycle {

struct StateWrite {
  store::Statement statement;
  std::vector<v1::JobState> from;
  std::vector<v1::JobState> to;
};

// The SQL guard for these sources: "state = 'QUEUED'" or "state IN ('ASSIGNED', 'RUNNING')".
std::string StateGuard(const std::vector<v1::JobState>& from);

// Checks `write` as above and returns its statement.
store::Statement Checked(const StateWrite& write);

}  // namespace tessera::lifecycle
