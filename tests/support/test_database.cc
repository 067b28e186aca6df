#include "tests/support/test_database.h"

#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <pqxx/pqxx>

#include "services/store/embedded_postgres.h"
#include "services/store/migrations.h"

namespace tessera::testing {
namespace {

// The cluster lives for the whole test process and is stopped and removed at exit.
class Cluster {
 public:
  static Cluster& Get() {
    static Cluster cluster;
    return cluster;
  }
  std::string UrlFor(const std::string& database) const {
    return "host=" + (dir_ / "run").string() + " port=5432 user=postgres dbname=" + database;
  }

 private:
  Cluster() {
    char tmpl[] = "/tmp/tessera-it-XXXXXX";
    const char* made = mkdtemp(tmpl);
    REQUIRE(made != nullptr);
    dir_ = made;
    std::filesystem::permissions(dir_, std::filesystem::perms::all ^ std::filesystem::perms::others_write ^
                                           std::filesystem::perms::group_write);
    auto pg = store::EmbeddedPostgres::Start({.data_dir = dir_, .port = 5432, .durable = false, .database = "postgres", .extra_settings = {}});
    if (!pg.ok()) FAIL("cannot start the test PostgreSQL: " << pg.status().ToString());
    pg_ = *std::move(pg);
  }
  ~Cluster() {
    pg_.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir_, ec);
  }

  std::filesystem::path dir_;
  std::unique_ptr<store::EmbeddedPostgres> pg_;
};

}  // namespace

TestDatabase::TestDatabase() {
  static std::atomic<int> counter{0};
  const std::string name = "t" + std::to_string(getpid()) + "_" + std::to_string(counter++);
  {
    pqxx::connection admin(Cluster::Get().UrlFor("postgres"));
    pqxx::nontransaction tx(admin);
    tx.exec0("CREATE DATABASE " + name);
  }
  url_ = Cluster::Get().UrlFor(name);
  auto db = store::Database::Open(url_, 8);
  REQUIRE(db.ok());
  db_ = *std::move(db);
  auto applied = store::ApplyMigrations(*db_, store::EmbeddedMigrations());
  if (!applied.ok()) FAIL(applied.status().ToString());
}

std::string TestDatabase::Scalar(const std::string& sql) {
  pqxx::connection conn(url_);
  pqxx::nontransaction tx(conn);
  const pqxx::result r = tx.exec(sql);
  return r.empty() || r[0][0].is_null() ? "" : r[0][0].as<std::string>();
}

}  // namespace tessera::testing
