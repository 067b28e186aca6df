// GetStatement for a customer with a million transfers (issue 4: ≤ 100 ms). The transfers are
// posted through the ledger (PostTransfers, 10,000 per transaction), so the per-month totals the
// statement reads are the ones production keeps; then the statement is timed.
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "bench/bench_database.h"
#include "services/billing/billing_repository.h"
#include "services/billing/ledger.h"

using namespace tessera;
using SteadyClock = std::chrono::steady_clock;

int main(int argc, char** argv) {
  int transfers = 1'000'000, probes = 50;
  CLI::App app{"Tessera statement benchmark"};
  app.add_option("--transfers", transfers);
  app.add_option("--probes", probes, "Statements timed");
  CLI11_PARSE(app, argc, argv);
  spdlog::set_level(spdlog::level::warn);

  bench::BenchDatabase bench_db;
  billing::BillingRepository billing(*bench_db.db);
  v1::CreateAccountRequest account;
  account.set_name("acme");
  account.set_kind(v1::ACCOUNT_KIND_CUSTOMER);
  bench::Check(billing.CreateAccount(account).status(), "account");

  const auto load_start = SteadyClock::now();
  constexpr int kPerTransaction = 10'000;
  for (int done = 0; done < transfers; done += kPerTransaction) {
    bench::Check(bench_db.db->Transact("load", [&](pqxx::work& tx) -> absl::Status {
      const int64_t treasury = *billing::LedgerId(tx, "treasury", "main");
      const int64_t available = *billing::LedgerId(tx, "acme", "available");
      const int64_t escrow = *billing::LedgerId(tx, "acme", "escrow");
      std::vector<billing::TransferSpec> batch;
      for (int i = done; i < std::min(transfers, done + kPerTransaction); ++i) {
        // Deposits, and holds of part of them: two kinds, both buckets.
        if (i % 2 == 0) {
          batch.push_back({.idempotency_key = absl::StrCat("d", i), .kind = "DEPOSIT", .debit_ledger_id = treasury,
                           .credit_ledger_id = available, .amount_utok = 1'000, .job_id = 0});
        } else {
          batch.push_back({.idempotency_key = absl::StrCat("h", i), .kind = "HOLD", .debit_ledger_id = available,
                           .credit_ledger_id = escrow, .amount_utok = 400, .job_id = 0});
        }
      }
      billing::PostTransfers(tx, batch);
      return absl::OkStatus();
    }), "post transfers");
  }
  const double load_s = std::chrono::duration<double>(SteadyClock::now() - load_start).count();

  std::string month;
  {
    pqxx::connection conn(bench_db.pg->url());
    pqxx::nontransaction tx(conn);
    month = tx.exec("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')")[0][0].as<std::string>();
  }
  std::vector<double> ms;
  v1::Statement last;
  for (int i = 0; i < probes; ++i) {
    const auto t0 = SteadyClock::now();
    auto statement = billing.GetStatement("acme", month);
    ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - t0).count());
    bench::Check(statement.status(), "statement");
    last = *std::move(statement);
  }
  std::sort(ms.begin(), ms.end());
  uint64_t counted = 0;
  for (const auto& line : last.lines()) counted += line.transfers();
  std::printf("%d transfers posted through the ledger in %.1f s (%.0f/s)\n", transfers, load_s, transfers / load_s);
  std::printf("GetStatement(acme, %s): median %.2f ms, p99 %.2f ms, max %.2f ms over %d calls; it accounts for %llu "
              "transfer legs, closing available %lld µT\n",
              month.c_str(), ms[ms.size() / 2], ms[ms.size() * 99 / 100], ms.back(), probes,
              static_cast<unsigned long long>(counted), static_cast<long long>(last.buckets(0).closing_utok()));
  return 0;
}
