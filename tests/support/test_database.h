// A throwaway PostgreSQL for integration tests: one private cluster per test process (initdb in a
// temp dir, as the postgres user when running as root, fsync off), and a fresh migrated database
// per test so that tests never see each other's rows.
//
//   TestDatabase db;                      // new database, schema applied
//   tessera::store::Database& store = db.store();
#pragma once

#include <memory>
#include <string>

#include "services/store/database.h"

namespace tessera::testing {

class TestDatabase {
 public:
  TestDatabase();
  store::Database& store() { return *db_; }
  const std::string& url() const { return url_; }
  // Runs one query and returns the first column of the first row as text ("" for no rows).
  std::string Scalar(const std::string& sql);

 private:
  std::string url_;
  std::unique_ptr<store::Database> db_;
};

}  // namespace tessera::testing
