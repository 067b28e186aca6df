#include <catch2/catch.hpp>

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
