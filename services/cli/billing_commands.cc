// `tessera billing deposit|balance|transfers|invoice`.
#include <iostream>

#include "absl/strings/str_format.h"
#include "services/cli/commands.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::cli {
namespace {

std::string KindName(v1::TransferKind kind) {
  std::string name = v1::TransferKind_Name(kind);
  return name.substr(std::string("TRANSFER_KIND_").size());
}

template <typename Fn>
void WithStub(CliContext& ctx, Fn&& fn) {
  auto stub = v1::BillingService::NewStub(ctx.Channel());
  grpc::Status s = fn(*stub);
  if (!s.ok()) ctx.exit_code = ReportError(s);
}

void PrintInvoice(const v1::Invoice& invoice) {
  std::cout << "invoice for job " << invoice.job_id() << " (" << invoice.account() << ", " << JobStateName(invoice.job_state())
            << (invoice.final() ? ", final" : ", provisional") << ", escrow hold " << HoldStateName(invoice.hold_state()) << ")\n";
  std::vector<std::vector<std::string>> rows;
  for (const v1::InvoiceLine& l : invoice.lines()) {
    rows.push_back({std::to_string(l.attempt()), std::to_string(l.worker_id()), l.provider_account(),
                    std::to_string(l.price_utok_per_gpu_hour()), std::to_string(l.gpu_ms()), std::to_string(l.usage_reports()),
                    FormatTokens(l.charge_utok()), FormatTokens(l.charge_utok() - l.fee_utok()), FormatTokens(l.fee_utok()),
                    l.energy_mj() || l.avg_gpu_utilization_ppm() ? absl::StrFormat("%.1f%%", l.avg_gpu_utilization_ppm() / 1e4) : "-",
                    l.energy_mj() ? absl::StrFormat("%.1f kJ", static_cast<double>(l.energy_mj()) / 1e6) : "-",
                    l.cpu_ms() ? absl::StrFormat("%.1f", static_cast<double>(l.cpu_ms()) / 1e3) : "-",
                    l.peak_memory_mib() ? std::to_string(l.peak_memory_mib()) + " MiB" : "-"});
  }
  // COST is what the customer pays; it splits into the provider's EARNED (the ledger's CHARGE
  // transfers) and the platform's FEE (its FEE transfers): "charge" means one thing, the ledger's.
  // CPU-S and PEAK MEM: the host's share of a container job (its cgroup), informational like GPU UTIL.
  PrintTable({"ATTEMPT", "WORKER", "PROVIDER", "PRICE µT/GPU-h", "GPU-MS", "REPORTS", "COST", "EARNED", "FEE", "GPU UTIL", "ENERGY", "CPU-S",
              "PEAK MEM"},
             rows);
  std::cout << "held " << FormatTokens(invoice.hold_utok()) << "  cost " << FormatTokens(invoice.charged_utok()) << " (providers "
            << FormatTokens(invoice.charged_utok() - invoice.fee_utok()) << " + fee " << FormatTokens(invoice.fee_utok())
            << ")  released " << FormatTokens(invoice.released_utok()) << " tokens\n";
}

void AddDepositCommand(CLI::App& billing, CliContext& ctx) {
  auto account = std::make_shared<std::string>();
  auto* deposit = billing.add_subcommand("deposit", "Mint tokens into a customer's available balance (admin)");
  auto amount = std::make_shared<int64_t>(0);
  auto key = std::make_shared<std::string>();
  deposit->add_option("account", *account)->required();
  deposit->add_option("amount_utok", *amount, "Micro-tokens (1 token = 1000000)")->required();
  deposit->add_option("--idempotency-key", *key, "A retry with the same key deposits once");
  deposit->callback([&ctx, account, amount, key] {
    v1::DepositRequest request;
    request.set_account(*account);
    request.set_amount_utok(*amount);
    request.set_idempotency_key(key->empty() ? RandomIdempotencyKey() : *key);
    WithStub(ctx, [&](v1::BillingService::Stub& stub) {
      v1::Transfer response;
      grpc::Status s = stub.Deposit(ctx.Call().get(), request, &response);
      if (s.ok()) {
        ctx.json() ? void(std::cout << ToJson(response) << "\n")
                   : void(std::cout << "deposited " << FormatTokens(response.amount_utok()) << " tokens into " << *account
                                    << " (transfer " << response.transfer_id() << ")\n");
      }
      return s;
    });
  });
}

void AddBalanceCommand(CLI::App& billing, CliContext& ctx) {
  auto account = std::make_shared<std::string>();
  auto* balance = billing.add_subcommand("balance", "Show an account's balances");
  balance->add_option("account", *account)->required();
  balance->callback([&ctx, account] {
    WithStub(ctx, [&](v1::BillingService::Stub& stub) {
      v1::GetBalanceRequest request;
      request.set_account(*account);
      v1::Balance response;
      grpc::Status s = stub.GetBalance(ctx.Call().get(), request, &response);
      if (s.ok() && ctx.json()) std::cout << ToJson(response) << "\n";
      if (s.ok() && !ctx.json()) {
        // Every bucket the account has: a customer's, a provider's, the platform's fees, the treasury.
        std::vector<std::vector<std::string>> rows;
        for (const v1::BucketBalance& b : response.buckets()) {
          rows.push_back({response.account(), LedgerBucketStoredName(b.bucket()), FormatTokens(b.balance_utok())});
        }
        PrintTable({"ACCOUNT", "BUCKET", "BALANCE"}, rows);
      }
      return s;
    });
  });
}

void AddTransfersCommand(CLI::App& billing, CliContext& ctx) {
  auto account = std::make_shared<std::string>();
  auto* transfers = billing.add_subcommand("transfers", "List an account's ledger transfers, newest first");
  auto limit = std::make_shared<uint32_t>(50);
  transfers->add_option("account", *account)->required();
  transfers->add_option("--limit", *limit);
  transfers->callback([&ctx, account, limit] {
    WithStub(ctx, [&](v1::BillingService::Stub& stub) {
      v1::ListTransfersRequest request;
      request.set_account(*account);
      request.set_page_size(std::min<uint32_t>(*limit, 500));
      v1::ListTransfersResponse response;
      grpc::Status s = stub.ListTransfers(ctx.Call().get(), request, &response);
      if (!s.ok()) return s;
      if (ctx.json()) {
        std::cout << ToJson(response) << "\n";
        return s;
      }
      std::vector<std::vector<std::string>> rows;
      for (const v1::Transfer& t : response.transfers()) {
        // What a CHARGE or FEE pays for: lease job/attempt@worker, in settlement batch N.
        const std::string paid_for = t.batch_id() ? std::to_string(t.job_id()) + "/" + std::to_string(t.attempt()) + "@" +
                                                        std::to_string(t.worker_id()) + " batch " + std::to_string(t.batch_id())
                                     : t.job_id() ? std::to_string(t.job_id())
                                                  : "-";
        rows.push_back({std::to_string(t.transfer_id()), KindName(t.kind()), t.debit(), t.credit(),
                        FormatTokens(t.amount_utok()), paid_for});
      }
      PrintTable({"ID", "KIND", "DEBIT", "CREDIT", "AMOUNT", "FOR"}, rows);
      return s;
    });
  });
}

void AddStatementCommand(CLI::App& billing, CliContext& ctx) {
  auto account = std::make_shared<std::string>();
  auto* statement = billing.add_subcommand("statement", "An account's month: balances and movement by kind");
  auto month = std::make_shared<std::string>();
  statement->add_option("account", *account)->required();
  statement->add_option("month", *month, "YYYY-MM (UTC)")->required();
  statement->callback([&ctx, account, month] {
    WithStub(ctx, [&](v1::BillingService::Stub& stub) {
      v1::GetStatementRequest request;
      request.set_account(*account);
      request.set_month(*month);
      v1::Statement response;
      grpc::Status s = stub.GetStatement(ctx.Call().get(), request, &response);
      if (!s.ok() || ctx.json()) {
        if (s.ok()) std::cout << ToJson(response) << "\n";
        return s;
      }
      std::cout << "statement of " << response.account() << " for " << response.month() << " (tokens)\n";
      std::vector<std::vector<std::string>> rows;
      for (const v1::StatementBucket& b : response.buckets()) {
        rows.push_back({LedgerBucketStoredName(b.bucket()), FormatTokens(b.opening_utok()), FormatTokens(b.closing_utok())});
      }
      PrintTable({"BUCKET", "OPENING", "CLOSING"}, rows);
      rows.clear();
      for (const v1::StatementLine& l : response.lines()) {
        rows.push_back({LedgerBucketStoredName(l.bucket()), KindName(l.kind()), FormatTokens(l.debit_utok()), FormatTokens(l.credit_utok()),
                        std::to_string(l.transfers())});
      }
      PrintTable({"BUCKET", "KIND", "OUT", "IN", "TRANSFERS"}, rows);
      return s;
    });
  });
}

void AddInvoiceCommand(CLI::App& billing, CliContext& ctx) {
  auto* invoice = billing.add_subcommand("invoice", "Show what a job cost");
  auto job_id = std::make_shared<int64_t>(0);
  invoice->add_option("job_id", *job_id)->required();
  auto asking = std::make_shared<std::string>();
  invoice->add_option("--account", *asking, "The customer asking: another account's job is not found");
  invoice->callback([&ctx, job_id, asking] {
    WithStub(ctx, [&](v1::BillingService::Stub& stub) {
      v1::GetJobInvoiceRequest request;
      request.set_job_id(*job_id);
      request.set_account(*asking);
      v1::Invoice response;
      grpc::Status s = stub.GetJobInvoice(ctx.Call().get(), request, &response);
      if (s.ok()) ctx.json() ? void(std::cout << ToJson(response) << "\n") : PrintInvoice(response);
      return s;
    });
  });
}

}  // namespace

void AddBillingCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* billing = app.add_subcommand("billing", "Balances, transfers, invoices, usage proofs, payouts")->require_subcommand(1);
  AddProofCommands(*billing, ctx);
  AddPayoutCommands(*billing, ctx);
  AddReportCommands(*billing, ctx);
  AddDepositCommand(*billing, ctx);
  AddBalanceCommand(*billing, ctx);
  AddTransfersCommand(*billing, ctx);
  AddStatementCommand(*billing, ctx);
  AddInvoiceCommand(*billing, ctx);
}

}  // namespace tessera::cli
