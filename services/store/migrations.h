// Applies the schema in migrations/*.sql, which the build embeds in the binary. Each file runs in
// its own transaction together with its row in schema_migrations; an advisory lock keeps two
// servers starting at once from applying the same file twice. Applying is idempotent.
#pragma once

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "services/store/database.h"

namespace tessera::store {

struct Migration {
  std::string name;  // file name, e.g. "0001_initial_schema.sql"; applied in name order
  std::string sql;
};

const std::vector<Migration>& EmbeddedMigrations();

// Applies every migration not yet recorded; returns the names it applied.
absl::StatusOr<std::vector<std::string>> ApplyMigrations(Database& db, const std::vector<Migration>& migrations);

}  // namespace tessera::store
