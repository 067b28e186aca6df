#include "services/billing/billing_repository.h"


#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/billing/usage_proof.h"
#include "services/common/merkle.h"
#include "services/billing/period.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"
#include "services/common/pagination.h"
#include "services/billing/ledger.h"
#include "services/common/money.h"

namespace tessera::billing {
namespace {

constexpr PageQuery kBatchesQuery{.list = "settlement_batches", .filters = ""};

PageQuery TransfersQuery(const v1::ListTransfersRequest& request, std::string& filters) {
  filters = absl::StrCat(request.account(), "|", request.period().from_ms(), "|", request.period().to_ms());
  return {.list = "transfers", .filters = filters};
}

const char* const kTransferColumns =
    "t.transfer_id, t.kind, da.name || '/' || dl.bucket, ca.name || '/' || cl.bucket, t.amount_utok,"
    " coalesce(t.job_id, 0), t.idempotency_key, (extract(epoch FROM t.created_at) * 1000)::bigint,"
    " coalesce(t.attempt, 0), coalesce(t.worker_id, 0), coalesce(t.batch_id, 0)"
    " FROM transfers t"
    " JOIN ledger_accounts dl ON dl.ledger_account_id = t.debit_ledger_id JOIN accounts da ON da.account_id = dl.account_id"
    " JOIN ledger_accounts cl ON cl.ledger_account_id = t.credit_ledger_id JOIN accounts ca ON ca.account_id = cl.account_id";

v1::Transfer TransferFromRow(const pqxx::row& r) {
  v1::Transfer t;
  t.set_transfer_id(r[0].as<int64_t>());
  v1::TransferKind kind = v1::TRANSFER_KIND_UNSPECIFIED;
  v1::TransferKind_Parse("TRANSFER_KIND_" + r[1].as<std::string>(), &kind);
  t.set_kind(kind);
  t.set_debit(r[2].as<std::string>());
  t.set_credit(r[3].as<std::string>());
  t.set_amount_utok(r[4].as<int64_t>());
  t.set_job_id(r[5].as<int64_t>());
  t.set_idempotency_key(r[6].as<std::string>());
  t.set_created_at_ms(r[7].as<int64_t>());
  t.set_attempt(r[8].as<uint32_t>());
  t.set_worker_id(r[9].as<int64_t>());
  t.set_batch_id(r[10].as<int64_t>());
  return t;
}

// Stored in lower case (migrations/0001).
v1::AccountKind KindOf(const std::string& kind) {
  return ParseStoredName<v1::AccountKind>(absl::AsciiStrToUpper(kind)).value_or(v1::ACCOUNT_KIND_UNSPECIFIED);
}

}  // namespace

absl::StatusOr<v1::Transfer> BillingRepository::Deposit(const v1::DepositRequest& request) {
  const std::string key = "deposit:" + request.idempotency_key();
  return db_.Transact("deposit", [&](pqxx::work& tx) -> absl::StatusOr<v1::Transfer> {
    const pqxx::result account = tx.exec_params("SELECT kind FROM accounts WHERE name = $1", request.account());
    if (account.empty()) return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    if (account[0][0].as<std::string>() != "customer") {
      return absl::FailedPreconditionError(absl::StrCat("account '", request.account(), "' is not a customer account"));
    }
    absl::StatusOr<int64_t> treasury = LedgerId(tx, "treasury", "main");
    absl::StatusOr<int64_t> available = LedgerId(tx, request.account(), "available");
    if (!treasury.ok()) return treasury.status();
    if (!available.ok()) return available.status();
    // Both buckets locked in id order (the ledger's order), so concurrent deposits see each other's
    // minting before checking the supply bound.
    const pqxx::row minted = tx.exec_params1(
        "SELECT -min(balance_utok) FILTER (WHERE ledger_account_id = $1) FROM (SELECT ledger_account_id, balance_utok"
        " FROM ledger_accounts WHERE ledger_account_id IN ($1, $2) ORDER BY ledger_account_id FOR NO KEY UPDATE) b",
        *treasury, *available);
    const bool retry = !tx.exec_params("SELECT 1 FROM transfers WHERE idempotency_key = $1", key).empty();
    const auto outstanding = minted[0].as<int64_t>();
    if (!retry && request.amount_utok() > kMaxTokenSupplyUtok - outstanding) {
      return absl::FailedPreconditionError(absl::StrCat(
          "amount_utok ", request.amount_utok(), " would take the tokens outstanding from ", outstanding,
          " µT above the network's supply limit of ", kMaxTokenSupplyUtok, " µT; at most ", kMaxTokenSupplyUtok - outstanding,
          " µT can be deposited now"));
    }
    PostTransfers(tx,
                  {{.idempotency_key = key, .kind = "DEPOSIT", .debit_ledger_id = *treasury, .credit_ledger_id = *available,
                    .amount_utok = request.amount_utok(), .job_id = 0}},
                  BucketLocks::kAlreadyHeld);
    const pqxx::result r = tx.exec_params(absl::StrCat("SELECT ", kTransferColumns, " WHERE t.idempotency_key = $1"), key);
    v1::Transfer transfer = TransferFromRow(r[0]);
    if (transfer.amount_utok() != request.amount_utok() || transfer.credit() != request.account() + "/available") {
      return absl::AlreadyExistsError(
          absl::StrCat("idempotency_key '", request.idempotency_key(), "' was already used for a different deposit"));
    }
    return transfer;
  });
}

absl::StatusOr<v1::Balance> BillingRepository::GetBalance(const std::string& account) {
  return db_.Transact("get balance", [&](pqxx::work& tx) -> absl::StatusOr<v1::Balance> {
    const pqxx::result rows = tx.exec_params(
        "SELECT l.bucket, l.balance_utok, a.kind FROM accounts a JOIN ledger_accounts l USING (account_id) WHERE a.name = $1"
        " ORDER BY l.ledger_account_id",
        account);
    if (rows.empty()) return absl::NotFoundError(absl::StrCat("account '", account, "' not found"));
    v1::Balance balance;
    balance.set_account(account);
    balance.set_kind(KindOf(rows[0][2].as<std::string>()));
    for (const pqxx::row& r : rows) {
      const auto bucket = r[0].as<std::string>();
      const auto amount = r[1].as<int64_t>();
      v1::BucketBalance* listed = balance.add_buckets();
      listed->set_bucket(ParseLedgerBucket(bucket));
      listed->set_balance_utok(amount);
      if (bucket == "available") balance.set_available_utok(amount);
      if (bucket == "escrow") balance.set_escrow_utok(amount);
      if (bucket == "earnings") balance.set_earnings_utok(amount);
      if (bucket == "payout_pending") balance.set_payout_pending_utok(amount);
    }
    return balance;
  });
}

absl::StatusOr<v1::ListTransfersResponse> BillingRepository::ListTransfers(const v1::ListTransfersRequest& request) {
  std::string filters;
  absl::StatusOr<Page> page = ParsePage(TransfersQuery(request, filters), request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  const uint32_t page_size = page->size;
  const int64_t before = page->before_id();
  return db_.Transact("list transfers", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListTransfersResponse> {
    const pqxx::result ids = tx.exec_params(
        "SELECT l.ledger_account_id FROM accounts a JOIN ledger_accounts l USING (account_id) WHERE a.name = $1",
        request.account());
    if (ids.empty()) return absl::NotFoundError(absl::StrCat("account '", request.account(), "' not found"));
    std::vector<int64_t> ledger_ids;
    for (const pqxx::row& r : ids) ledger_ids.push_back(r[0].as<int64_t>());
    const pqxx::result rows = tx.exec_params(
        absl::StrCat("SELECT ", kTransferColumns,
                     " WHERE t.transfer_id IN ("
                     "  (SELECT transfer_id FROM transfers WHERE debit_ledger_id = ANY($1::bigint[]) AND transfer_id < $2"
                     "   AND created_at >= to_timestamp($4 / 1000.0) AND created_at < to_timestamp($5 / 1000.0)"
                     "   ORDER BY transfer_id DESC LIMIT $3)"
                     "  UNION ALL"
                     "  (SELECT transfer_id FROM transfers WHERE credit_ledger_id = ANY($1::bigint[]) AND transfer_id < $2"
                     "   AND created_at >= to_timestamp($4 / 1000.0) AND created_at < to_timestamp($5 / 1000.0)"
                     "   ORDER BY transfer_id DESC LIMIT $3))"
                     " ORDER BY t.transfer_id DESC LIMIT $3"),
        store::ArrayLiteral(ledger_ids), before, page_size + 1, request.period().from_ms(), PeriodEndMs(request.period()));
    v1::ListTransfersResponse response;
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page_size; ++i) *response.add_transfers() = TransferFromRow(rows[i]);
    if (rows.size() > page_size) response.set_next_page_token(NextPageToken(TransfersQuery(request, filters), response.transfers().rbegin()->transfer_id()));
    return response;
  });
}

absl::StatusOr<v1::Invoice> BillingRepository::GetJobInvoice(int64_t job_id, const std::string& account) {
  return db_.Transact("job invoice", [&](pqxx::work& tx) -> absl::StatusOr<v1::Invoice> {
    const pqxx::result job = tx.exec_params(
        "SELECT a.name, j.state, j.hold_utok, j.charged_utok, j.released_utok, j.hold_state"
        " FROM jobs j JOIN accounts a USING (account_id) WHERE j.job_id = $1",
        job_id);
    // Another account's job is not found rather than refused: its existence is not disclosed.
    if (job.empty() || (!account.empty() && job[0][0].as<std::string>() != account)) {
      return absl::NotFoundError(absl::StrCat("job ", job_id, " not found", account.empty() ? "" : " for account '" + account + "'"));
    }
    v1::Invoice invoice;
    invoice.set_job_id(job_id);
    invoice.set_account(job[0][0].as<std::string>());
    invoice.set_job_state(ParseJobState(job[0][1].as<std::string>()).value_or(v1::JOB_STATE_UNSPECIFIED));
    invoice.set_hold_utok(job[0][2].as<int64_t>());
    invoice.set_charged_utok(job[0][3].as<int64_t>());
    invoice.set_released_utok(job[0][4].as<int64_t>());
    invoice.set_hold_state(ParseHoldState(job[0][5].as<std::string>()));
    invoice.set_final(invoice.hold_state() != v1::ESCROW_HOLD_STATE_PENDING);
    int64_t fees = 0;
    for (const pqxx::row& r : tx.exec_params(
             "SELECT s.attempt, s.worker_id, p.name, s.price_utok_per_gpu_hour, t.gpu_ms_total, t.charged_utok, t.fee_utok,"
             " t.usage_reports, m.utilization_ppm, m.peak_memory_mib, m.energy_mj, m.cpu_ms, m.host_memory_mib"
             " FROM assignments s JOIN lease_totals t USING (job_id, attempt, worker_id) JOIN workers w USING (worker_id)"
             " JOIN accounts p ON p.account_id = w.provider_account_id"
             // The worker's metering over the lease's settled reports: utilization weighted by GPU-ms.
             " CROSS JOIN LATERAL (SELECT coalesce(sum(u.avg_gpu_utilization_ppm::numeric * u.gpu_ms) / nullif(sum(u.gpu_ms), 0), 0)::bigint"
             "   AS utilization_ppm, coalesce(max(u.peak_gpu_memory_mib), 0) AS peak_memory_mib, coalesce(sum(u.energy_mj), 0)::bigint AS energy_mj,"
             "   coalesce(sum(u.cpu_ms), 0)::bigint AS cpu_ms, coalesce(max(u.peak_memory_mib), 0) AS host_memory_mib"
             "   FROM usage_reports u WHERE u.job_id = s.job_id AND u.attempt = s.attempt AND u.worker_id = s.worker_id AND u.settled) m"
             " WHERE s.job_id = $1 ORDER BY s.attempt, s.node_rank",
             job_id)) {
      v1::InvoiceLine* line = invoice.add_lines();
      line->set_attempt(r[0].as<uint32_t>());
      line->set_worker_id(r[1].as<int64_t>());
      line->set_provider_account(r[2].as<std::string>());
      line->set_price_utok_per_gpu_hour(r[3].as<int64_t>());
      line->set_gpu_ms(r[4].as<int64_t>());
      line->set_charge_utok(r[5].as<int64_t>());
      line->set_fee_utok(r[6].as<int64_t>());
      line->set_usage_reports(r[7].as<uint64_t>());
      line->set_avg_gpu_utilization_ppm(r[8].as<uint32_t>());
      line->set_peak_gpu_memory_mib(r[9].as<uint64_t>());
      line->set_energy_mj(r[10].as<uint64_t>());
      line->set_cpu_ms(r[11].as<int64_t>());
      line->set_peak_memory_mib(r[12].as<uint64_t>());
      fees += line->fee_utok();
    }
    invoice.set_fee_utok(fees);
    return invoice;
  });
}

absl::StatusOr<v1::Statement> BillingRepository::GetStatement(const std::string& account, const std::string& month) {
  return db_.Transact("statement", [&](pqxx::work& tx) -> absl::StatusOr<v1::Statement> {
    const pqxx::result buckets = tx.exec_params(
        "SELECT l.bucket, coalesce(sum(m.credit_utok - m.debit_utok) FILTER (WHERE m.month < $2::date), 0)::bigint,"
        " coalesce(sum(m.credit_utok - m.debit_utok) FILTER (WHERE m.month <= $2::date), 0)::bigint"
        " FROM accounts a JOIN ledger_accounts l USING (account_id) LEFT JOIN ledger_months m USING (ledger_account_id)"
        " WHERE a.name = $1 GROUP BY l.ledger_account_id, l.bucket ORDER BY l.ledger_account_id",
        account, month + "-01");
    if (buckets.empty()) return absl::NotFoundError(absl::StrCat("account '", account, "' not found"));
    v1::Statement statement;
    statement.set_account(account);
    statement.set_month(month);
    for (const pqxx::row& b : buckets) {
      v1::StatementBucket* out = statement.add_buckets();
      out->set_bucket(ParseLedgerBucket(b[0].as<std::string>()));
      out->set_opening_utok(b[1].as<int64_t>());
      out->set_closing_utok(b[2].as<int64_t>());
    }
    for (const pqxx::row& r : tx.exec_params(
             "SELECT l.bucket, m.kind, m.debit_utok, m.credit_utok, m.transfers FROM accounts a"
             " JOIN ledger_accounts l USING (account_id) JOIN ledger_months m USING (ledger_account_id)"
             " WHERE a.name = $1 AND m.month = $2::date ORDER BY l.ledger_account_id, m.kind",
             account, month + "-01")) {
      v1::StatementLine* line = statement.add_lines();
      line->set_bucket(ParseLedgerBucket(r[0].as<std::string>()));
      v1::TransferKind kind = v1::TRANSFER_KIND_UNSPECIFIED;
      v1::TransferKind_Parse("TRANSFER_KIND_" + r[1].as<std::string>(), &kind);
      line->set_kind(kind);
      line->set_debit_utok(r[2].as<int64_t>());
      line->set_credit_utok(r[3].as<int64_t>());
      line->set_transfers(r[4].as<uint64_t>());
    }
    return statement;
  });
}

absl::StatusOr<v1::UsageProof> BillingRepository::GetUsageProof(const v1::GetUsageProofRequest& request, const UsageViewer& viewer) {
  return db_.Transact("usage proof", [&](pqxx::work& tx) -> absl::StatusOr<v1::UsageProof> {
    const pqxx::result found = tx.exec_params(
        "SELECT attempt, worker_id, settled, batch_id FROM usage_reports u"
        " WHERE job_id = $1 AND seq = $2 AND ($3 = 0 OR attempt = $3) AND ($4 = 0 OR worker_id = $4)"
        " AND ($5 = '' OR EXISTS (SELECT 1 FROM jobs j JOIN accounts c USING (account_id) WHERE j.job_id = u.job_id AND c.name = $5))"
        " AND ($6 = '' OR EXISTS (SELECT 1 FROM workers w JOIN accounts p ON p.account_id = w.provider_account_id"
        "  WHERE w.worker_id = u.worker_id AND p.name = $6)) LIMIT 2",
        request.job_id(), static_cast<int64_t>(request.seq()), static_cast<int64_t>(request.attempt()), request.worker_id(),
        viewer.customer, viewer.provider);
    const std::string which = absl::StrCat("usage report seq ", request.seq(), " of job ", request.job_id());
    if (found.empty()) return absl::NotFoundError(absl::StrCat(which, " not found"));
    if (found.size() > 1) {
      return absl::InvalidArgumentError(absl::StrCat(which, " exists for several attempts or workers; give attempt and worker_id"));
    }
    if (!found[0][2].as<bool>()) return absl::FailedPreconditionError(absl::StrCat(which, " is not settled yet"));
    if (found[0][3].is_null()) return absl::FailedPreconditionError(absl::StrCat(which, " was settled before batches were committed"));
    const auto batch_id = found[0][3].as<int64_t>();
    const pqxx::row batch = tx.exec_params1("SELECT encode(merkle_root, 'hex') FROM settlement_batches WHERE batch_id = $1", batch_id);
    v1::UsageProof proof;
    std::vector<Hash> leaves;
    int64_t index = -1;
    for (const pqxx::row& r : tx.exec_params(
             "SELECT job_id, attempt, worker_id, seq, gpu_ms, measured_at_ms, charge_utok, fee_utok FROM usage_reports"
             " WHERE batch_id = $1 ORDER BY leaf_index",
             batch_id)) {
      const UsageLeafFields f{.job_id = r[0].as<int64_t>(), .attempt = r[1].as<uint32_t>(), .worker_id = r[2].as<int64_t>(),
                              .seq = r[3].as<uint64_t>(), .gpu_ms = r[4].as<int64_t>(), .measured_at_ms = r[5].as<int64_t>(),
                              .charge_utok = r[6].as<int64_t>(), .fee_utok = r[7].as<int64_t>()};
      if (f.job_id == request.job_id() && f.seq == request.seq() && f.attempt == found[0][0].as<uint32_t>() &&
          f.worker_id == found[0][1].as<int64_t>()) {
        index = static_cast<int64_t>(leaves.size());
        SetLeafFields(f, &proof);
      }
      leaves.push_back(LeafHash(UsageLeaf(f)));
    }
    const Hash root = MerkleRoot(leaves);
    if (ToHex(root) != batch[0].as<std::string>()) {
      return absl::InternalError(absl::StrCat("settlement batch ", batch_id, " no longer matches its Merkle root"));
    }
    proof.set_batch_id(batch_id);
    proof.set_leaf_index(static_cast<uint64_t>(index));
    proof.set_tree_size(leaves.size());
    proof.set_merkle_root(std::string(root.begin(), root.end()));
    for (const Hash& h : InclusionPath(leaves, static_cast<uint64_t>(index))) proof.add_path(std::string(h.begin(), h.end()));
    return proof;
  });
}

absl::StatusOr<v1::ListSettlementBatchesResponse> BillingRepository::ListSettlementBatches(
    const v1::ListSettlementBatchesRequest& request) {
  absl::StatusOr<Page> page = ParsePage(kBatchesQuery, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  return db_.Transact("list settlement batches", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListSettlementBatchesResponse> {
    const pqxx::result rows = tx.exec_params(
        "SELECT batch_id, merkle_root, reports, charged_utok, fee_utok, (extract(epoch FROM created_at) * 1000)::bigint"
        " FROM settlement_batches WHERE batch_id < $1 ORDER BY batch_id DESC LIMIT $2",
        page->before_id(), page->size + 1);
    v1::ListSettlementBatchesResponse response;
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) {
      v1::SettlementBatch* b = response.add_batches();
      b->set_batch_id(rows[i][0].as<int64_t>());
      b->set_merkle_root(pqxx::binarystring(rows[i][1]).str());
      b->set_reports(rows[i][2].as<uint32_t>());
      b->set_charged_utok(rows[i][3].as<int64_t>());
      b->set_fee_utok(rows[i][4].as<int64_t>());
      b->set_created_at_ms(rows[i][5].as<int64_t>());
    }
    if (rows.size() > page->size) response.set_next_page_token(NextPageToken(kBatchesQuery, response.batches().rbegin()->batch_id()));
    return response;
  });
}

absl::StatusOr<v1::Account> BillingRepository::CreateAccount(const v1::CreateAccountRequest& request) {
  const std::string kind = request.kind() == v1::ACCOUNT_KIND_CUSTOMER ? "customer" : "provider";
  return db_.Transact("create account", [&](pqxx::work& tx) -> absl::StatusOr<v1::Account> {
    const pqxx::result r = tx.exec_params(
        "INSERT INTO accounts (name, kind) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING"
        " RETURNING account_id, (extract(epoch FROM created_at) * 1000)::bigint",
        request.name(), kind);
    if (r.empty()) return absl::AlreadyExistsError(absl::StrCat("account '", request.name(), "' already exists"));
    const auto id = r[0][0].as<int64_t>();
    tx.exec_params0(
        "INSERT INTO ledger_accounts (account_id, bucket) SELECT $1, unnest($2::text[])", id,
        kind == "customer" ? std::string("{available,escrow}") : std::string("{earnings,payout_pending}"));
    v1::Account account;
    account.set_account_id(id);
    account.set_name(request.name());
    account.set_kind(request.kind());
    account.set_created_at_ms(r[0][1].as<int64_t>());
    return account;
  });
}

absl::StatusOr<v1::ListAccountsResponse> BillingRepository::ListAccounts(const v1::ListAccountsRequest& request) {
  constexpr PageQuery kQuery{.list = "accounts", .filters = ""};
  absl::StatusOr<Page> page = ParsePage(kQuery, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  return db_.Transact("list accounts", [&](pqxx::work& tx) -> absl::StatusOr<v1::ListAccountsResponse> {
    v1::ListAccountsResponse response;
    const pqxx::result rows = tx.exec_params(
        "SELECT account_id, name, kind, (extract(epoch FROM created_at) * 1000)::bigint FROM accounts"
        " WHERE kind IN ('customer', 'provider') AND account_id < $1 ORDER BY account_id DESC LIMIT $2",
        page->before_id(), page->size + 1);
    if (rows.size() > page->size) response.set_next_page_token(NextPageToken(kQuery, rows[page->size - 1][0].as<int64_t>()));
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) {
      const pqxx::row& r = rows[i];
      v1::Account* a = response.add_accounts();
      a->set_account_id(r[0].as<int64_t>());
      a->set_name(r[1].as<std::string>());
      a->set_kind(KindOf(r[2].as<std::string>()));
      a->set_created_at_ms(r[3].as<int64_t>());
    }
    return response;
  });
}

}  // namespace tessera::billing
