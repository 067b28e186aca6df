#include "services/store/database.h"

#include <chrono>

namespace tessera::store {
namespace {

constexpr auto kAcquireTimeout = std::chrono::seconds(10);

void AppendEscaped(std::string& out, std::string_view value) {
  out += '"';
  for (char c : value) {
    if (c == '"' || c == '\\') out += '\\';
    out += c;
  }
  out += '"';
}

}  // namespace

absl::StatusOr<std::unique_ptr<Database>> Database::Open(std::string url, int pool_size) {
  std::unique_ptr<Database> db(new Database(std::move(url)));
  try {
    std::lock_guard lock(db->mu_);
    for (int i = 0; i < pool_size; ++i) db->idle_.push_back(std::make_unique<pqxx::connection>(db->url_));
  } catch (const std::exception& e) {
    return absl::UnavailableError(std::string("cannot connect to PostgreSQL: ") + e.what());
  }
  return db;
}

absl::StatusOr<std::unique_ptr<pqxx::connection>> Database::Acquire() {
  std::unique_lock lock(mu_);
  if (!released_.wait_for(lock, kAcquireTimeout, [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return !idle_.empty(); })) {
    return absl::UnavailableError("database connection pool exhausted");
  }
  std::unique_ptr<pqxx::connection> conn = std::move(idle_.back());
  idle_.pop_back();
  lock.unlock();
  if (conn == nullptr || !conn->is_open()) {
    try {
      conn = std::make_unique<pqxx::connection>(url_);
    } catch (const std::exception& e) {
      Release(nullptr);
      return absl::UnavailableError(std::string("cannot reconnect to PostgreSQL: ") + e.what());
    }
  }
  return conn;
}

void Database::Release(std::unique_ptr<pqxx::connection> conn) {
  {
    std::lock_guard lock(mu_);
    idle_.push_back(std::move(conn));  // null: reconnect on next use
  }
  released_.notify_one();
}

bool Database::IsRetryable(const pqxx::sql_error& e) {
  // 40001 serialization_failure, 40P01 deadlock_detected.
  return e.sqlstate() == "40001" || e.sqlstate() == "40P01";
}

absl::Status Database::Convert(std::string_view what, const std::exception& e) {
  return absl::InternalError(std::string(what) + ": " + e.what());
}

std::string ArrayLiteral(const std::vector<int64_t>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += std::to_string(values[i]);
  }
  return out + "}";
}

std::string ArrayLiteral(const std::vector<std::string>& values) {
  std::string out = "{";
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ',';
    AppendEscaped(out, values[i]);
  }
  return out + "}";
}

std::string Hex(std::string_view bytes) {
  static constexpr char kDigits[] = "0123456789abcdef";
  std::string hex;
  hex.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) {
    hex.push_back(kDigits[c >> 4]);
    hex.push_back(kDigits[c & 0xf]);
  }
  return hex;
}

std::vector<std::string> ParseTextArray(std::string_view literal) {
  std::vector<std::string> out;
  if (literal.size() < 2) return out;
  std::string current;
  bool quoted = false, in_item = false;
  for (size_t i = 1; i + 1 < literal.size(); ++i) {
    const char c = literal[i];
    if (quoted) {
      if (c == '\\' && i + 2 < literal.size()) {
        current += literal[++i];
      } else if (c == '"') {
        quoted = false;
      } else {
        current += c;
      }
    } else if (c == '"') {
      quoted = in_item = true;
    } else if (c == ',') {
      out.push_back(std::move(current));
      current.clear();
      in_item = false;
    } else {
      current += c;
      in_item = true;
    }
  }
  if (in_item || !out.empty()) out.push_back(std::move(current));
  return out;
}

std::vector<int64_t> ParseIntArray(std::string_view literal) {
  std::vector<int64_t> out;
  for (const std::string& item : ParseTextArray(literal)) out.push_back(std::stoll(item));
  return out;
}

}  // namespace tessera::store
