#include "services/store/embedded_postgres.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <pqxx/pqxx>

namespace tessera::store {
namespace fs = std::filesystem;
namespace {

// Shell commands here only ever contain paths we validated to be free of quotes.
bool SafeForShell(const std::string& s) { return s.find_first_of("'\"\\$`") == std::string::npos; }

absl::Status Chown(const fs::path& path, const passwd* user) {
  if (user == nullptr) return absl::OkStatus();
  if (chown(path.c_str(), user->pw_uid, user->pw_gid) != 0) {
    return absl::PermissionDeniedError("cannot hand " + path.string() + " to the postgres user");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<fs::path> FindPostgresBinDir() {
  std::error_code ec;
  fs::path best;
  for (const auto& entry : fs::directory_iterator("/usr/lib/postgresql", ec)) {
    const fs::path bin = entry.path() / "bin";
    if (fs::exists(bin / "initdb") && fs::exists(bin / "pg_ctl") && (best.empty() || bin > best)) best = bin;
  }
  if (best.empty()) {
    return absl::NotFoundError("no PostgreSQL server under /usr/lib/postgresql (install postgresql-15, or pass --database-url)");
  }
  return best;
}

absl::StatusOr<std::unique_ptr<EmbeddedPostgres>> EmbeddedPostgres::Start(EmbeddedPostgresOptions options) {
  absl::StatusOr<fs::path> bin_dir = FindPostgresBinDir();
  if (!bin_dir.ok()) return bin_dir.status();
  std::error_code ec;
  options.data_dir = fs::absolute(options.data_dir, ec);
  if (!SafeForShell(options.data_dir.string())) return absl::InvalidArgumentError("data dir must not contain quotes, $ or backslashes");
  std::unique_ptr<EmbeddedPostgres> pg(new EmbeddedPostgres(std::move(options), *std::move(bin_dir)));
  if (absl::Status locked = pg->LockDataDir(); !locked.ok()) return locked;
  for (absl::Status step : {pg->InitIfNeeded(), pg->StartServer(), pg->CreateDatabase()}) {
    if (!step.ok()) return step;
  }
  return pg;
}

EmbeddedPostgres::~EmbeddedPostgres() {
  (void)Stop();
  if (lock_fd_ >= 0) close(lock_fd_);
}

absl::Status EmbeddedPostgres::LockDataDir() {
  std::error_code ec;
  fs::create_directories(options_.data_dir, ec);
  if (ec) return absl::PermissionDeniedError("cannot create " + options_.data_dir.string() + ": " + ec.message());
  // O_CLOEXEC: PostgreSQL, started through a shell, must not inherit (and outlive us holding) it.
  const fs::path lock = options_.data_dir / "tessera.lock";
  lock_fd_ = open(lock.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (lock_fd_ < 0) return absl::PermissionDeniedError("cannot open " + lock.string());
  if (flock(lock_fd_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError("data dir " + options_.data_dir.string() +
                                         " is in use by another running tessera server");
  }
  return absl::OkStatus();
}

std::string EmbeddedPostgres::url() const {
  return "host=" + (options_.data_dir / "run").string() + " port=" + std::to_string(options_.port) +
         " user=postgres dbname=" + options_.database;
}

absl::Status EmbeddedPostgres::RunAsPostgres(const std::string& command) const {
  const std::string line = geteuid() == 0 ? "runuser -u postgres -- sh -c '" + command + "'" : command;
  const int rc = std::system(line.c_str());
  if (rc != 0) return absl::InternalError("command failed (" + std::to_string(rc) + "): " + command);
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::InitIfNeeded() {
  const fs::path cluster = options_.data_dir / "pg";
  const fs::path run = options_.data_dir / "run";
  std::error_code ec;
  fs::create_directories(run, ec);
  if (ec) return absl::PermissionDeniedError("cannot create " + run.string() + ": " + ec.message());
  const passwd* postgres = geteuid() == 0 ? getpwnam("postgres") : nullptr;
  if (geteuid() == 0 && postgres == nullptr) return absl::FailedPreconditionError("running as root needs a `postgres` user (package postgresql-15)");
  if (absl::Status s = Chown(run, postgres); !s.ok()) return s;
  if (fs::exists(cluster / "PG_VERSION")) return absl::OkStatus();

  fs::create_directories(cluster, ec);
  chmod(cluster.c_str(), 0700);
  if (absl::Status s = Chown(cluster, postgres); !s.ok()) return s;
  if (!RunAsPostgres("test -w " + cluster.string()).ok()) {
    return absl::FailedPreconditionError("the postgres user cannot write " + cluster.string() +
                                         " (a parent directory is private?); choose a --data-dir outside it");
  }
  const std::string initdb = (bin_dir_ / "initdb").string() + " -D " + cluster.string() +
                             " -U postgres --auth=trust --encoding=UTF8 --no-locale" +
                             (options_.durable ? "" : " --no-sync") + " > " + run.string() + "/initdb.log 2>&1";
  if (absl::Status s = RunAsPostgres(initdb); !s.ok()) {
    return absl::InternalError("initdb failed; see " + run.string() + "/initdb.log");
  }
  std::ofstream(cluster / "postgresql.conf", std::ios::app) << "\ninclude_if_exists 'tessera.conf'\n";
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::StartServer() {
  const fs::path cluster = options_.data_dir / "pg";
  const fs::path run = options_.data_dir / "run";
  {
    std::ofstream conf(cluster / "tessera.conf", std::ios::trunc);
    conf << "# Written by the tessera server at every start.\n"
         << "listen_addresses = ''\n"
         << "unix_socket_directories = '" << run.string() << "'\n"
         << "port = " << options_.port << "\n"
         << "max_connections = 200\n"
         << "shared_buffers = 256MB\n"
         << "fsync = " << (options_.durable ? "on" : "off") << "\n"
         << "synchronous_commit = " << (options_.durable ? "on" : "off") << "\n"
         << "full_page_writes = " << (options_.durable ? "on" : "off") << "\n"
         << options_.extra_settings << "\n";
  }
  const std::string pg_ctl = (bin_dir_ / "pg_ctl").string() + " -D " + cluster.string();
  if (RunAsPostgres(pg_ctl + " status > /dev/null 2>&1").ok()) {
    running_ = true;  // left running by a server that was killed: adopt it
    return absl::OkStatus();
  }
  if (absl::Status s = RunAsPostgres(pg_ctl + " -w -t 60 -l " + run.string() + "/postgres.log start > /dev/null");
      !s.ok()) {
    return absl::InternalError("PostgreSQL did not start; see " + run.string() + "/postgres.log");
  }
  running_ = true;
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::CreateDatabase() {
  const std::string admin_url = "host=" + (options_.data_dir / "run").string() +
                                " port=" + std::to_string(options_.port) + " user=postgres dbname=postgres";
  try {
    pqxx::connection conn(admin_url);
    pqxx::nontransaction tx(conn);
    if (tx.exec_params("SELECT 1 FROM pg_database WHERE datname = $1", options_.database).empty()) {
      tx.exec0("CREATE DATABASE " + tx.quote_name(options_.database));
    }
  } catch (const std::exception& e) {
    return absl::UnavailableError(std::string("cannot create the embedded database: ") + e.what());
  }
  return absl::OkStatus();
}

absl::Status EmbeddedPostgres::Stop() {
  if (!running_) return absl::OkStatus();
  running_ = false;
  return RunAsPostgres((bin_dir_ / "pg_ctl").string() + " -D " + (options_.data_dir / "pg").string() +
                       " -m fast -w stop > /dev/null 2>&1");
}

}  // namespace tessera::store
