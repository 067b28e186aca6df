// The embedded default: a private PostgreSQL cluster under a data directory, created on first
// start (initdb), started with pg_ctl on a Unix socket only (no TCP port), and stopped on shutdown.
// PostgreSQL refuses to run as root, so as root the cluster runs as the `postgres` user. A cluster
// left running by a killed server is adopted, not started twice; a lock file keeps a second server
// from using the same data directory while the first is alive.
//
//   absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> pg = EmbeddedPostgres::Start({.data_dir = dir});
//   Database::Open((*pg)->url(), 8);
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tessera::store {

struct EmbeddedPostgresOptions {
  std::filesystem::path data_dir;  // the cluster lives in data_dir/pg, its socket in data_dir/run
  int port = 5432;                 // names the socket file; nothing listens on TCP
  // Throwaway clusters for tests trade durability for speed (fsync off).
  bool durable = true;
  std::string database = "tessera";
  // Extra postgresql.conf lines (benchmarks load pg_stat_statements this way).
  std::string extra_settings;
};

class EmbeddedPostgres {
 public:
  static absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> Start(EmbeddedPostgresOptions options);
  ~EmbeddedPostgres();

  EmbeddedPostgres(const EmbeddedPostgres&) = delete;
  EmbeddedPostgres& operator=(const EmbeddedPostgres&) = delete;

  // libpq connection string of the cluster's database.
  std::string url() const;
  absl::Status Stop();

 private:
  explicit EmbeddedPostgres(EmbeddedPostgresOptions options, std::filesystem::path bin_dir)
      : options_(std::move(options)), bin_dir_(std::move(bin_dir)) {}
  absl::Status InitIfNeeded();
  absl::Status StartServer();
  absl::Status CreateDatabase();
  absl::Status RunAsPostgres(const std::string& command) const;

  absl::Status LockDataDir();

  EmbeddedPostgresOptions options_;
  std::filesystem::path bin_dir_;
  int lock_fd_ = -1;
  bool running_ = false;
};

// The PostgreSQL server binaries (initdb, pg_ctl) of the newest installed version.
absl::StatusOr<std::filesystem::path> FindPostgresBinDir();

}  // namespace tessera::store
