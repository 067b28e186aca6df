// A durable PostgreSQL for a benchmark: an embedded cluster in a fresh temporary directory with
// Tessera's schema applied; removed when the object goes away.
#pragma once

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <string>

#include "services/store/database.h"
#include "services/store/embedded_postgres.h"
#include "services/store/migrations.h"

namespace tessera::bench {

inline void Check(const absl::Status& s, const char* what) {
  if (!s.ok()) {
    std::fprintf(stderr, "%s: %s\n", what, s.ToString().c_str());
    std::exit(1);
  }
}

struct BenchDatabase {
  explicit BenchDatabase(int pool_size = 8) {
    char tmpl[] = "/tmp/tessera-bench-XXXXXX";
    dir = mkdtemp(tmpl);
    std::filesystem::permissions(dir, std::filesystem::perms(0755));
    auto started = store::EmbeddedPostgres::Start({.data_dir = dir, .port = 5432, .durable = true, .database = "tessera", .extra_settings = ""});
    Check(started.status(), "embedded PostgreSQL");
    pg = *std::move(started);
    auto opened = store::Database::Open(pg->url(), pool_size);
    Check(opened.status(), "database");
    db = *std::move(opened);
    Check(store::ApplyMigrations(*db, store::EmbeddedMigrations()).status(), "migrations");
  }
  ~BenchDatabase() {
    db.reset();
    (void)pg->Stop();
    std::filesystem::remove_all(dir);
  }

  std::string dir;
  std::unique_ptr<store::EmbeddedPostgres> pg;
  std::unique_ptr<store::Database> db;
};

}  // namespace tessera::bench
