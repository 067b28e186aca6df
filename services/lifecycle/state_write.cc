#include "services/lifecycle/state_write.h"

#include <string_view>

#include "base/check.h"
#include "services/common/job_state_machine.h"

namespace tessera::lifecycle {

std::string StateGuard(const std::vector<v1::JobState>& from) {
  const auto quoted = [](v1::JobState s) { return "'" + std::string(JobStateName(s)) + "'"; };
  if (from.size() == 1) return "state = " + quoted(from[0]);
  std::string guard = "state IN (";
  for (size_t i = 0; i < from.size(); ++i) guard += (i > 0 ? ", " : "") + quoted(from[i]);
  return guard + ")";
}

store::Statement Checked(const StateWrite& write) {
  const std::string_view sql = write.statement.sql;
  TESSERA_CHECK(!write.from.empty() && !write.to.empty());
  for (v1::JobState from : write.from) {
    for (v1::JobState to : write.to) TESSERA_CHECK(CanTransition(from, to));
  }
  TESSERA_CHECK(sql.find(StateGuard(write.from)) != std::string_view::npos);
  for (v1::JobState to : write.to) TESSERA_CHECK(sql.find("'" + std::string(JobStateName(to)) + "'") != std::string_view::npos);
  return write.statement;
}

}  // namespace tessera::lifecycle
