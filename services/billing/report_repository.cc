#include "services/billing/report_repository.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "services/billing/period.h"
#include "services/common/pagination.h"

namespace tessera::billing {
absl::StatusOr<v1::UsageReportSummary> ReportRepository::UsageReport(const v1::GetUsageReportRequest& request) {
  // The group key, per settled report. A lease's GPUs are all of one model (same-host) or a spread
  // job's GPUs on one worker; the lease's first GPU names the model.
  const char* key = "";
  switch (request.group_by()) {
    case v1::USAGE_GROUP_CUSTOMER: key = "customer.name"; break;
    case v1::USAGE_GROUP_PROVIDER: key = "provider.name"; break;
    case v1::USAGE_GROUP_GPU_MODEL: key = "g.model"; break;
    case v1::USAGE_GROUP_WORKER: key = "w.worker_id || '/' || w.name"; break;
    default: key = "w.region"; break;
  }
  // A report is an aggregate, ranked by charge: its pages are by position (the token's key is the
  // number of rows already sent).
  const std::string filters = absl::StrCat(request.period().from_ms(), "|", request.period().to_ms(), "|", request.group_by(), "|",
                                           request.account());
  const PageQuery query{.list = "usage_report", .filters = filters};
  absl::StatusOr<Page> page = ParsePage(query, request.page_token(), request.page_size());
  if (!page.ok()) return page.status();
  const int64_t offset = std::max<int64_t>(0, page->after.value_or(0));
  return db_.Transact("usage report", [&](pqxx::work& tx) -> absl::StatusOr<v1::UsageReportSummary> {
    const pqxx::result rows = tx.exec_params(absl::StrCat(
        "SELECT ", key, ", sum(u.gpu_ms)::bigint, sum(u.charge_utok)::bigint, sum(u.fee_utok)::bigint, count(*),"
        " count(DISTINCT u.job_id)"
        " FROM settlement_batches b JOIN usage_reports u ON u.batch_id = b.batch_id"
        " JOIN assignments a ON a.job_id = u.job_id AND a.attempt = u.attempt AND a.worker_id = u.worker_id"
        " JOIN jobs j ON j.job_id = u.job_id JOIN accounts customer ON customer.account_id = j.account_id"
        " JOIN workers w ON w.worker_id = u.worker_id JOIN accounts provider ON provider.account_id = w.provider_account_id"
        " JOIN gpus g ON g.worker_id = u.worker_id AND g.gpu_index = a.gpu_indexes[1]"
        " WHERE b.created_at >= to_timestamp($1 / 1000.0) AND b.created_at < to_timestamp($2 / 1000.0)"
        " AND ($3 = '' OR customer.name = $3 OR provider.name = $3)"
        " GROUP BY 1 ORDER BY 3 DESC, 1 OFFSET $4 LIMIT $5"),
        request.period().from_ms(), PeriodEndMs(request.period()), request.account(), offset, page->size + 1);
    v1::UsageReportSummary summary;
    *summary.mutable_period() = request.period();
    summary.set_group_by(request.group_by());
    if (rows.size() > page->size) summary.set_next_page_token(NextPageToken(query, offset + page->size));
    for (pqxx::result::size_type i = 0; i < rows.size() && i < page->size; ++i) {
      const pqxx::row& r = rows[i];
      v1::UsageGroupRow* row = summary.add_rows();
      row->set_key(r[0].as<std::string>());
      row->set_gpu_ms(r[1].as<int64_t>());
      row->set_charged_utok(r[2].as<int64_t>());
      row->set_fee_utok(r[3].as<int64_t>());
      row->set_reports(r[4].as<uint64_t>());
      row->set_jobs(r[5].as<uint64_t>());
    }
    return summary;
  });
}

absl::Status ReportRepository::ExportUsage(const v1::ExportUsageRequest& request,
                                          const std::function<bool(std::string)>& sink) {
  constexpr int kRowsPerChunk = 2'000;
  static constexpr const char* kColumns[] = {"batch_id", "leaf_index", "job_id", "attempt", "worker_id", "seq", "gpu_ms",
                                             "measured_at_ms", "charge_utok", "fee_utok", "customer", "provider", "settled_at_ms",
                                             "avg_gpu_utilization_ppm", "peak_gpu_memory_mib", "energy_mj"};
  const bool json = request.format() == v1::EXPORT_FORMAT_JSON_LINES;
  if (!json) {
    std::string header;
    for (const char* c : kColumns) header += (header.empty() ? "" : ",") + std::string(c);
    if (!sink(header + "\n")) return absl::OkStatus();
  }
  int64_t after_batch = 0, after_leaf = -1;
  while (true) {
    absl::StatusOr<std::string> chunk = db_.Transact("export usage", [&](pqxx::work& tx) -> absl::StatusOr<std::string> {
      const pqxx::result rows = tx.exec_params(
          "SELECT u.batch_id, u.leaf_index, u.job_id, u.attempt, u.worker_id, u.seq, u.gpu_ms, u.measured_at_ms, u.charge_utok,"
          " u.fee_utok, customer.name, provider.name, (extract(epoch FROM b.created_at) * 1000)::bigint,"
          " u.avg_gpu_utilization_ppm, u.peak_gpu_memory_mib, u.energy_mj"
          " FROM settlement_batches b JOIN usage_reports u ON u.batch_id = b.batch_id"
          " JOIN jobs j ON j.job_id = u.job_id JOIN accounts customer ON customer.account_id = j.account_id"
          " JOIN workers w ON w.worker_id = u.worker_id JOIN accounts provider ON provider.account_id = w.provider_account_id"
          " WHERE b.created_at >= to_timestamp($1 / 1000.0) AND b.created_at < to_timestamp($2 / 1000.0)"
          " AND (u.batch_id, u.leaf_index) > ($3, $4) ORDER BY u.batch_id, u.leaf_index LIMIT $5",
          request.period().from_ms(), PeriodEndMs(request.period()), after_batch, after_leaf, kRowsPerChunk);
      std::string out;
      for (const pqxx::row& r : rows) {
        std::string line;
        for (int i = 0; i < static_cast<int>(std::size(kColumns)); ++i) {
          // Account names are [a-z0-9_-]: no quoting is ever needed, in CSV or JSON.
          const bool text = i == 10 || i == 11;
          if (json) {
            line += absl::StrCat(i == 0 ? "{" : ",", "\"", kColumns[i], "\":", text ? "\"" : "", r[i].c_str(), text ? "\"" : "");
          } else {
            line += absl::StrCat(i == 0 ? "" : ",", r[i].c_str());
          }
        }
        out += line + (json ? "}\n" : "\n");
        after_batch = r[0].as<int64_t>();
        after_leaf = r[1].as<int64_t>();
      }
      return out;
    });
    if (!chunk.ok()) return chunk.status();
    if (chunk->empty() || !sink(*std::move(chunk))) return absl::OkStatus();
  }
}

absl::StatusOr<v1::Revenue> ReportRepository::Revenue(const v1::Period& period) {
  return db_.Transact("revenue", [&](pqxx::work& tx) -> absl::StatusOr<v1::Revenue> {
    const pqxx::row r = tx.exec_params1(
        "SELECT coalesce(sum(t.amount_utok), 0)::bigint, count(*) FROM transfers t"
        " JOIN ledger_accounts l ON l.ledger_account_id = t.credit_ledger_id JOIN accounts a USING (account_id)"
        " WHERE a.kind = 'platform' AND l.bucket = 'fees' AND t.kind = 'FEE'"
        " AND t.created_at >= to_timestamp($1 / 1000.0) AND t.created_at < to_timestamp($2 / 1000.0)",
        period.from_ms(), PeriodEndMs(period));
    v1::Revenue revenue;
    *revenue.mutable_period() = period;
    revenue.set_fee_utok(r[0].as<int64_t>());
    revenue.set_fee_transfers(r[1].as<uint64_t>());
    return revenue;
  });
}

}  // namespace tessera::billing
