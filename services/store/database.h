// The PostgreSQL store of record: a bounded pool of libpqxx connections and one way to run a
// transaction. libpqxx throws; nothing thrown leaves this layer — Transact converts every exception
// into an absl::Status, retrying serialization failures and deadlocks a bounded number of times.
//
//   absl::StatusOr<int64_t> id = db.Transact("create account", [&](pqxx::work& tx) -> absl::StatusOr<int64_t> {
//     return tx.exec_params1("INSERT … RETURNING account_id", name)[0].as<int64_t>();
//   });
//
// The body returns absl::Status or absl::StatusOr<T>; a non-OK result rolls the transaction back.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include <pqxx/pqxx>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"

namespace tessera::store {

class Database {
 public:
  // Opens `pool_size` connections to `url` (a libpq connection string or URI).
  static absl::StatusOr<std::unique_ptr<Database>> Open(std::string url, int pool_size);

  template <typename Fn>
  std::invoke_result_t<Fn, pqxx::work&> Transact(std::string_view what, Fn&& body);

  const std::string& url() const { return url_; }

 private:
  static constexpr int kMaxTries = 8;

  explicit Database(std::string url) : url_(std::move(url)) {}
  absl::StatusOr<std::unique_ptr<pqxx::connection>> Acquire();
  void Release(std::unique_ptr<pqxx::connection> conn);
  static const absl::Status& StatusOf(const absl::Status& s) { return s; }
  template <typename T>
  static absl::Status StatusOf(const absl::StatusOr<T>& s) { return s.status(); }
  static bool IsRetryable(const pqxx::sql_error& e);
  static absl::Status Convert(std::string_view what, const std::exception& e);

  const std::string url_;
  std::mutex mu_;
  std::condition_variable released_;
  std::vector<std::unique_ptr<pqxx::connection>> idle_ ABSL_GUARDED_BY(mu_);
};

template <typename Fn>
std::invoke_result_t<Fn, pqxx::work&> Database::Transact(std::string_view what, Fn&& body) {
  using Result = std::invoke_result_t<Fn, pqxx::work&>;
  absl::Status last_error;
  for (int attempt = 1; attempt <= kMaxTries; ++attempt) {
    absl::StatusOr<std::unique_ptr<pqxx::connection>> conn = Acquire();
    if (!conn.ok()) return conn.status();
    bool keep_connection = true;
    try {
      std::optional<Result> result;
      {
        pqxx::work tx(**conn);
        result.emplace(body(tx));
        if (StatusOf(*result).ok()) tx.commit();
      }
      Release(std::move(*conn));
      return *std::move(result);
    } catch (const pqxx::broken_connection& e) {
      keep_connection = false;
      last_error = absl::UnavailableError(std::string(what) + ": database connection lost: " + e.what());
    } catch (const pqxx::in_doubt_error& e) {
      Release(nullptr);
      return absl::UnavailableError(std::string(what) + ": commit outcome unknown: " + e.what());
    } catch (const pqxx::sql_error& e) {
      if (!IsRetryable(e)) {
        Release(std::move(*conn));
        return Convert(what, e);
      }
      last_error = absl::AbortedError(std::string(what) + ": " + e.what());
    } catch (const std::exception& e) {
      Release(std::move(*conn));
      return Convert(what, e);
    }
    Release(keep_connection ? std::move(*conn) : nullptr);
  }
  return last_error;
}

// Builds a PostgreSQL array literal ("{1,2,3}") for passing a column of values as one parameter,
// so that a batch is one statement: `… FROM unnest($1::bigint[], $2::text[])`.
std::string ArrayLiteral(const std::vector<int64_t>& values);
std::string ArrayLiteral(const std::vector<std::string>& values);
// Parses the text form of a PostgreSQL text[] or int[] column.
std::vector<std::string> ParseTextArray(std::string_view literal);
// Bytes as lowercase hex, for decode($n, 'hex') where a bytea travels inside a text array.
std::string Hex(std::string_view bytes);
std::vector<int64_t> ParseIntArray(std::string_view literal);

}  // namespace tessera::store
