#include "services/auth/api_key_repository.h"

#include <sodium.h>

#include "absl/strings/str_cat.h"
#include "services/auth/api_key.h"
#include "services/common/pagination.h"
#include "services/store/statement.h"

namespace tessera::auth {
namespace {

constexpr int64_t kAdminKeyLock = 0x7E55E7A0A91;

constexpr absl::string_view kKeyColumns =
    "k.key_id, k.role, COALESCE(a.name, ''), k.label, (extract(epoch FROM k.created_at) * 1000)::bigint,"
    " COALESCE((extract(epoch FROM k.revoked_at) * 1000)::bigint, 0)";

v1::ApiKey KeyFromRow(const pqxx::row& r) {
  v1::ApiKey key;
  key.set_key_id(r[0].as<std::string>());
  key.set_role(ParseRole(r[1].as<std::string>()));
  key.set_account(r[2].as<std::string>());
  key.set_label(r[3].as<std::string>());
  key.set_created_at_ms(r[4].as<int64_t>());
  key.set_revoked_at_ms(r[5].as<int64_t>());
  return key;
}

std::string FromHex(const std::string& hex) {
  std::string raw(hex.size() / 2, '\0');
  size_t length = 0;
  (void)sodium_hex2bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), hex.data(), hex.size(), nullptr, &length, nullptr);
  raw.resize(length);
  return raw;
}

// Inserts a new key and its audit row; returns the key as the API shows it.
v1::CreateApiKeyResponse InsertKey(pqxx::work& tx, v1::Role role, int64_t account_id, const std::string& account,
                                   const std::string& label, const std::string& actor_key_id) {
  const GeneratedApiKey key = GenerateApiKey();
  const pqxx::row r = tx.exec_params1(
      "INSERT INTO api_keys (key_id, secret_sha256, role, account_id, label, created_by)"
      " VALUES ($1, decode($2, 'hex'), $3, NULLIF($4, 0), $5, NULLIF($6, ''))"
      " RETURNING (extract(epoch FROM created_at) * 1000)::bigint",
      key.key_id, store::Hex(key.secret_sha256), std::string(RoleName(role)), account_id, label, actor_key_id);
  tx.exec_params0("INSERT INTO audit_log (actor_key_id, action, subject, detail) VALUES (NULLIF($1, ''), 'api_key.create', $2, $3)",
                  actor_key_id, "api_key/" + key.key_id,
                  absl::StrCat("role=", RoleName(role), account.empty() ? "" : " account=", account, label.empty() ? "" : " label=", label));
  v1::CreateApiKeyResponse response;
  v1::ApiKey* out = response.mutable_key();
  out->set_key_id(key.key_id);
  out->set_role(role);
  out->set_account(account);
  out->set_label(label);
  out->set_created_at_ms(r[0].as<int64_t>());
  response.set_secret_key(key.text);
  return response;
}

}  // namespace

absl::StatusOr<ApiKeyRecord> ApiKeyRepository::Find(const std::string& key_id) {
  static constexpr store::Statement kFind{
      "auth_find_key",
      "SELECT k.role, COALESCE(k.account_id, 0), COALESCE(a.name, ''), encode(k.secret_sha256, 'hex'), k.revoked_at IS NOT NULL"
      " FROM api_keys k LEFT JOIN accounts a USING (account_id) WHERE k.key_id = $1"};
  return db_.Transact("find api key", [&](pqxx::work& tx) -> absl::StatusOr<ApiKeyRecord> {
    const pqxx::result r = store::Exec(tx, kFind, key_id);
    if (r.empty()) return absl::NotFoundError("no such API key");
    ApiKeyRecord record;
    record.caller.key_id = key_id;
    record.caller.role = ParseRole(r[0][0].as<std::string>());
    record.caller.account_id = r[0][1].as<int64_t>();
    record.caller.account = r[0][2].as<std::string>();
    record.secret_sha256 = FromHex(r[0][3].as<std::string>());
    record.revoked = r[0][4].as<bool>();
    return record;
  });
}

absl::StatusOr<v1::CreateApiKeyResponse> ApiKeyRepository::Create(const v1::CreateApiKeyRequest& request,
                                                                  const std::string& actor_key_id) {
  return db_.Transact("create api key", [&](pqxx::work& tx) -> absl::StatusOr<v1::CreateApiKeyResponse> {
    int64_t account_id = 0;
    if (request.role() != v1::ROLE_ADMIN) {
      const pqxx::result a = tx.exec_params("SELECT account_id, kind FROM accounts WHERE name = $1", request.account());
      if (a.empty()) return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
      if (a[0][1].as<std::string>() != RoleName(request.role())) {
        return absl::FailedPreconditionError(absl::StrCat("account '", request.account(), "' is a ", a[0][1].as<std::string>(),
                                                          " account; a ", RoleName(request.role()), " key needs a ",
                                                          RoleName(request.role()), " account"));
      }
      account_id = a[0][0].as<int64_t>();
    }
    return InsertKey(tx, request.role(), account_id, request.account(), request.label(), actor_key_id);
  });
}

absl::StatusOr<v1::ListApiKeysResponse> ApiKeyRepository::List(const v1::ListApiKeysRequest& request) {
  const std::string filters = absl::StrCat(request.account(), "|", request.include_revoked());
  const PageQuery query{.list = "api_keys", .filters = filters};
  absl::StatusOr<Page> page = ParsePage(query, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  return db_.Transact("list api keys", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListApiKeysResponse> {
    v1::ListApiKeysResponse response;
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kKeyColumns, ", k.seq FROM api_keys k LEFT JOIN accounts a USING (account_id)"
                     " WHERE ($1 = '' OR a.name = $1) AND ($2 OR k.revoked_at IS NULL) AND k.seq < $3 ORDER BY k.seq DESC LIMIT $4"),
        request.account(), request.include_revoked(), page->before_id(), page->size + 1);
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) *response.add_keys() = KeyFromRow(rows[i]);
    if (rows.size() > page->size) response.set_next_page_token(NextPageToken(query, rows[page->size - 1][6].as<int64_t>()));
    return response;
  });
}

absl::StatusOr<v1::ApiKey> ApiKeyRepository::Revoke(const std::string& key_id, const std::string& actor_key_id) {
  return db_.Transact("revoke api key", [&](pqxx::work& tx) -> absl::StatusOr<v1::ApiKey> {
    const pqxx::result changed = tx.exec_params(
        "UPDATE api_keys SET revoked_at = now(), revoked_by = $2 WHERE key_id = $1 AND revoked_at IS NULL RETURNING key_id", key_id,
        actor_key_id);
    if (!changed.empty()) {
      tx.exec_params0("INSERT INTO audit_log (actor_key_id, action, subject) VALUES ($1, 'api_key.revoke', $2)", actor_key_id,
                      "api_key/" + key_id);
    }
    const pqxx::result r = tx.exec_params(
        absl::StrCat("SELECT ", kKeyColumns, " FROM api_keys k LEFT JOIN accounts a USING (account_id) WHERE k.key_id = $1"), key_id);
    if (r.empty()) return absl::NotFoundError(absl::StrCat("API key ", key_id, " not found"));
    return KeyFromRow(r[0]);
  });
}

absl::StatusOr<bool> ApiKeyRepository::EnsureAdminKey(const std::function<absl::Status(const std::string&)>& deliver) {
  return db_.Transact("ensure admin key", [&](pqxx::work& tx) -> absl::StatusOr<bool> {
    tx.exec_params("SELECT pg_advisory_xact_lock($1)", kAdminKeyLock);
    if (!tx.exec("SELECT 1 FROM api_keys WHERE role = 'admin' AND revoked_at IS NULL LIMIT 1").empty()) return false;
    const v1::CreateApiKeyResponse key = InsertKey(tx, v1::ROLE_ADMIN, 0, "", "bootstrap", "");
    if (absl::Status s = deliver(key.secret_key()); !s.ok()) return s;
    return true;
  });
}

}  // namespace tessera::auth
