// A named SQL statement that is parsed and planned once per connection instead of at every call.
// Hot paths (submit, ledger posting, matching, ingest) use it; the first use on a connection
// prepares it there (libpqxx prepares lazily, and re-declaring the same definition is a no-op).
//
//   constexpr store::Statement kFindJob{"find_job", "SELECT … WHERE job_id = $1"};
//   pqxx::result r = store::Exec(tx, kFindJob, job_id);
#pragma once

#include <pqxx/pqxx>
#include <utility>

namespace tessera::store {

struct Statement {
  const char* name;
  const char* sql;
};

template <typename... Args>
pqxx::result Exec(pqxx::work& tx, const Statement& statement, Args&&... args) {
  tx.conn().prepare(statement.name, statement.sql);
  return tx.exec_prepared(statement.name, std::forward<Args>(args)...);
}

}  // namespace tessera::store
