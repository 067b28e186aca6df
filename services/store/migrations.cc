#include "services/store/migrations.h"

namespace tessera::store {
namespace {

// Arbitrary constant naming the migration lock among PostgreSQL advisory locks.
constexpr int64_t kMigrationLockKey = 0x7E55E7A0001;

}  // namespace

absl::StatusOr<std::vector<std::string>> ApplyMigrations(Database& db, const std::vector<Migration>& migrations) {
  absl::Status ready = db.Transact("create schema_migrations", [](pqxx::work& tx) {
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
    tx.exec0(
        "CREATE TABLE IF NOT EXISTS schema_migrations ("
        " version text PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())");
    return absl::OkStatus();
  });
  if (!ready.ok()) return ready;

  std::vector<std::string> applied;
  for (const Migration& migration : migrations) {
    absl::StatusOr<bool> ran = db.Transact("migrate " + migration.name, [&](pqxx::work& tx) -> absl::StatusOr<bool> {
      tx.exec_params("SELECT pg_advisory_xact_lock($1)", kMigrationLockKey);
      if (!tx.exec_params("SELECT 1 FROM schema_migrations WHERE version = $1", migration.name).empty()) return false;
      tx.exec(migration.sql);
      tx.exec_params0("INSERT INTO schema_migrations (version) VALUES ($1)", migration.name);
      return true;
    });
    if (!ran.ok()) return ran.status();
    if (*ran) applied.push_back(migration.name);
  }
  return applied;
}

}  // namespace tessera::store
