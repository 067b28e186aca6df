#include "services/billing/payout_repository.h"

#include "absl/strings/str_cat.h"
#include "services/billing/ledger.h"
#include "services/common/pagination.h"

namespace tessera::billing {
namespace {

constexpr const char* kPayoutColumns =
    "p.payout_id, a.name, p.amount_utok, p.state, p.reason, p.idempotency_key,"
    " (extract(epoch FROM p.requested_at) * 1000)::bigint, coalesce((extract(epoch FROM p.decided_at) * 1000)::bigint, 0)"
    " FROM payouts p JOIN accounts a USING (account_id)";

v1::Payout PayoutFromRow(const pqxx::row& r) {
  v1::Payout p;
  p.set_payout_id(r[0].as<int64_t>());
  p.set_account(r[1].as<std::string>());
  p.set_amount_utok(r[2].as<int64_t>());
  v1::PayoutState state = v1::PAYOUT_STATE_UNSPECIFIED;
  v1::PayoutState_Parse("PAYOUT_STATE_" + r[3].as<std::string>(), &state);
  p.set_state(state);
  p.set_reason(r[4].as<std::string>());
  p.set_idempotency_key(r[5].as<std::string>());
  p.set_requested_at_ms(r[6].as<int64_t>());
  p.set_decided_at_ms(r[7].as<int64_t>());
  return p;
}

v1::Payout LoadPayout(pqxx::work& tx, int64_t payout_id) {
  return PayoutFromRow(tx.exec_params1(absl::StrCat("SELECT ", kPayoutColumns, " WHERE p.payout_id = $1"), payout_id));
}

}  // namespace

absl::StatusOr<v1::Payout> PayoutRepository::Request(const v1::RequestPayoutRequest& request) {
  return db_.Transact("request payout", [&](pqxx::work& tx) -> absl::StatusOr<v1::Payout> {
    // Locks the provider's earnings and pending buckets in id order, as every money transaction does.
    const pqxx::result buckets = tx.exec_params(
        "SELECT a.account_id, a.kind, l.ledger_account_id, l.bucket, l.balance_utok FROM accounts a"
        " JOIN ledger_accounts l USING (account_id) WHERE a.name = $1 ORDER BY l.ledger_account_id FOR NO KEY UPDATE OF l",
        request.account());
    if (buckets.empty()) return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    if (buckets[0][1].as<std::string>() != "provider") {
      return absl::FailedPreconditionError(absl::StrCat("account '", request.account(), "' is not a provider account; only providers are paid out"));
    }
    const auto account_id = buckets[0][0].as<int64_t>();
    int64_t earnings_id = 0, pending_id = 0, earnings = 0;
    for (const pqxx::row& b : buckets) {
      if (b[3].as<std::string>() == "earnings") {
        earnings_id = b[2].as<int64_t>();
        earnings = b[4].as<int64_t>();
      } else if (b[3].as<std::string>() == "payout_pending") {
        pending_id = b[2].as<int64_t>();
      }
    }
    const pqxx::result existing = tx.exec_params(
        "SELECT payout_id, amount_utok FROM payouts WHERE account_id = $1 AND idempotency_key = $2", account_id,
        request.idempotency_key());
    if (!existing.empty()) {
      if (existing[0][1].as<int64_t>() != request.amount_utok()) {
        return absl::AlreadyExistsError(absl::StrCat("idempotency_key '", request.idempotency_key(),
                                                     "' was already used for a payout of ", existing[0][1].as<int64_t>(), " µT"));
      }
      return LoadPayout(tx, existing[0][0].as<int64_t>());
    }
    if (request.amount_utok() > earnings) {
      return absl::FailedPreconditionError(absl::StrCat("payout of ", request.amount_utok(), " µT exceeds the earnings of '",
                                                        request.account(), "' (", earnings, " µT)"));
    }
    const auto payout_id = tx.exec_params1(
        "INSERT INTO payouts (account_id, amount_utok, idempotency_key, state) VALUES ($1, $2, $3, 'REQUESTED') RETURNING payout_id",
        account_id, request.amount_utok(), request.idempotency_key())[0].as<int64_t>();
    PostTransfers(tx,
                  {{.idempotency_key = absl::StrCat("payout-request:", payout_id), .kind = "HOLD", .debit_ledger_id = earnings_id,
                    .credit_ledger_id = pending_id, .amount_utok = request.amount_utok(), .job_id = 0}},
                  BucketLocks::kAlreadyHeld);
    return LoadPayout(tx, payout_id);
  });
}

absl::StatusOr<v1::Payout> PayoutRepository::Approve(int64_t payout_id) { return Decide(payout_id, true, ""); }

absl::StatusOr<v1::Payout> PayoutRepository::Reject(int64_t payout_id, const std::string& reason) {
  return Decide(payout_id, false, reason);
}

absl::StatusOr<v1::Payout> PayoutRepository::Decide(int64_t payout_id, bool approve, const std::string& reason) {
  return db_.Transact(approve ? "approve payout" : "reject payout", [&](pqxx::work& tx) -> absl::StatusOr<v1::Payout> {
    const pqxx::result row = tx.exec_params(
        "SELECT p.state, p.amount_utok, a.name FROM payouts p JOIN accounts a USING (account_id) WHERE p.payout_id = $1"
        " FOR NO KEY UPDATE OF p",
        payout_id);
    if (row.empty()) return absl::NotFoundError(absl::StrCat("payout ", payout_id, " not found"));
    if (row[0][0].as<std::string>() != "REQUESTED") {
      return absl::FailedPreconditionError(absl::StrCat("payout ", payout_id, " is already ", row[0][0].as<std::string>()));
    }
    const auto amount = row[0][1].as<int64_t>();
    const auto account = row[0][2].as<std::string>();
    absl::StatusOr<int64_t> pending = LedgerId(tx, account, "payout_pending");
    absl::StatusOr<int64_t> target = approve ? LedgerId(tx, "treasury", "main") : LedgerId(tx, account, "earnings");
    if (!pending.ok()) return pending.status();
    if (!target.ok()) return target.status();
    PostTransfers(tx, {{.idempotency_key = absl::StrCat(approve ? "payout:" : "payout-reject:", payout_id),
                        .kind = approve ? "PAYOUT" : "RELEASE", .debit_ledger_id = *pending, .credit_ledger_id = *target,
                        .amount_utok = amount, .job_id = 0}});
    tx.exec_params0("UPDATE payouts SET state = $2, reason = $3, decided_at = now() WHERE payout_id = $1", payout_id,
                    approve ? "APPROVED" : "REJECTED", reason);
    return LoadPayout(tx, payout_id);
  });
}

absl::StatusOr<v1::ListPayoutsResponse> PayoutRepository::List(const v1::ListPayoutsRequest& request) {
  const std::string state =
      request.state() == v1::PAYOUT_STATE_UNSPECIFIED ? "" : v1::PayoutState_Name(request.state()).substr(std::string("PAYOUT_STATE_").size());
  const std::string filters = absl::StrCat(request.account(), "|", state);
  const PageQuery query{.list = "payouts", .filters = filters};
  absl::StatusOr<Page> page = ParsePage(query, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  return db_.Transact("list payouts", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListPayoutsResponse> {
    if (!request.account().empty() && tx.exec_params("SELECT 1 FROM accounts WHERE name = $1", request.account()).empty()) {
      return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    }
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kPayoutColumns,
                     " WHERE ($1 = '' OR a.name = $1) AND ($2 = '' OR p.state = $2) AND p.payout_id < $3"
                     " ORDER BY p.payout_id DESC LIMIT $4"),
        request.account(), state, page->before_id(), page->size + 1);
    v1::ListPayoutsResponse response;
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) *response.add_payouts() = PayoutFromRow(rows[i]);
    if (rows.size() > page->size) response.set_next_page_token(NextPageToken(query, response.payouts().rbegin()->payout_id()));
    return response;
  });
}

}  // namespace tessera::billing
