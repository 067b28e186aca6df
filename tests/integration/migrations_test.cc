#include <catch2/catch.hpp>

#include <filesystem>

#include "services/store/embedded_postgres.h"
#include "services/store/migrations.h"
#include "tests/support/test_database.h"

using namespace tessera;

TEST_CASE("migrations apply on an empty database and are idempotent", "[integration][migrations]") {
  testing::TestDatabase db;  // applies every migration once
  CHECK(db.Scalar("SELECT count(*) FROM schema_migrations") == std::to_string(store::EmbeddedMigrations().size()));
  for (const char* table : {"accounts", "ledger_accounts", "transfers", "jobs", "job_events", "workers", "gpus",
                            "assignments", "usage_reports"}) {
    CHECK(db.Scalar(std::string("SELECT to_regclass('") + table + "') IS NOT NULL") == "t");
  }
  auto again = store::ApplyMigrations(db.store(), store::EmbeddedMigrations());
  REQUIRE(again.ok());
  CHECK(again->empty());
  CHECK(db.Scalar("SELECT count(*) FROM accounts") == "2");  // platform and treasury, seeded once
}

TEST_CASE("the ledger is append-only", "[integration][migrations]") {
  testing::TestDatabase db;
  auto status = db.store().Transact("tamper", [](pqxx::work& tx) {
    tx.exec0("INSERT INTO transfers (idempotency_key, kind, debit_ledger_id, credit_ledger_id, amount_utok)"
             " VALUES ('x', 'DEPOSIT', 1, 2, 5)");
    tx.exec0("UPDATE transfers SET amount_utok = 6");
    return absl::OkStatus();
  });
  CHECK(status.code() == absl::StatusCode::kInternal);
  CHECK_THAT(std::string(status.message()), Catch::Contains("append-only"));
  CHECK(db.Scalar("SELECT count(*) FROM transfers") == "0");
}

TEST_CASE("an embedded data dir serves one server at a time", "[integration][embedded]") {
  char tmpl[] = "/tmp/tessera-lock-XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  std::filesystem::permissions(dir, std::filesystem::perms(0755));
  store::EmbeddedPostgresOptions options;
  options.data_dir = dir;
  options.durable = false;
  {
    auto first = store::EmbeddedPostgres::Start(options);
    REQUIRE(first.ok());
    auto second = store::EmbeddedPostgres::Start(options);
    CHECK(second.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(second.status().message()), Catch::Contains("in use by another running tessera server"));
    // The refused second start did not stop the first one's cluster.
    auto db = store::Database::Open((*first)->url(), 1);
    CHECK(db.ok());
  }
  // Once the first has stopped, the data dir (and its cluster) can be used again.
  auto again = store::EmbeddedPostgres::Start(options);
  CHECK(again.ok());
  again->reset();
  std::filesystem::remove_all(dir);
}
