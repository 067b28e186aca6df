// `tessera account create|list` and `tessera worker list`.
#include <iostream>

#include "services/cli/commands.h"
#include "tessera/v1/admin.grpc.pb.h"
#include "tessera/v1/workers.grpc.pb.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"

namespace tessera::cli {
namespace {

std::string KindName(v1::AccountKind kind) {
  return absl::AsciiStrToLower(StoredName(kind));
}

}  // namespace

void AddAccountCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* account = app.add_subcommand("account", "Customer and provider accounts")->require_subcommand(1);

  auto* create = account->add_subcommand("create", "Create an account");
  auto name = std::make_shared<std::string>();
  auto kind = std::make_shared<std::string>("customer");
  create->add_option("name", *name, "Account name ([a-z][a-z0-9_-]*)")->required();
  create->add_option("--kind", *kind, "customer or provider")->check(CLI::IsMember({"customer", "provider"}));
  create->callback([&ctx, name, kind] {
    v1::CreateAccountRequest request;
    request.set_name(*name);
    request.set_kind(*kind == "customer" ? v1::ACCOUNT_KIND_CUSTOMER : v1::ACCOUNT_KIND_PROVIDER);
    v1::Account response;
    grpc::Status s = v1::AdminService::NewStub(ctx.Channel())->CreateAccount(ctx.Call().get(), request, &response);
    if (!s.ok()) {
      ctx.exit_code = ReportError(s);
      return;
    }
    if (ctx.json()) {
      std::cout << ToJson(response) << "\n";
    } else {
      std::cout << "created " << KindName(response.kind()) << " account " << response.name() << "\n";
    }
  });

  auto* list = account->add_subcommand("list", "List accounts");
  list->callback([&ctx] {
    ShowPages<v1::ListAccountsResponse>(
        ctx, v1::ListAccountsRequest{},
        [&](grpc::ClientContext* c, const v1::ListAccountsRequest& q, v1::ListAccountsResponse* p) {
          return v1::AdminService::NewStub(ctx.Channel())->ListAccounts(c, q, p);
        },
        [](v1::ListAccountsResponse& p) { return p.mutable_accounts(); },
        [](const v1::ListAccountsResponse& response) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::Account& a : response.accounts()) rows.push_back({std::to_string(a.account_id()), a.name(), KindName(a.kind())});
          PrintTable({"ID", "NAME", "KIND"}, rows);
        });
  });
}

namespace {

void PrintWorkers(const v1::ListWorkersResponse& response) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Worker& w : response.workers()) {
    std::string model = w.gpus().empty() ? "-" : w.gpus(0).model();
    rows.push_back({std::to_string(w.worker_id()), w.name(), w.provider_account(), w.region(),
                    std::string(WorkerStateName(w.state())),
                    std::string(w.connected() ? "yes" : "no") +
                        (w.stream_replacements() > 0 ? " (replaced " + std::to_string(w.stream_replacements()) + "x)" : ""),
                    std::to_string(w.gpus_size()) + " x " + model, std::to_string(w.busy_gpus()),
                    std::to_string(w.ask_utok_per_gpu_hour()), std::to_string(w.reputation())});
  }
  PrintTable({"ID", "NAME", "PROVIDER", "REGION", "STATE", "CONNECTED", "GPUS", "BUSY", "ASK µT/GPU-h", "REPUTATION"}, rows);
}

}  // namespace

void AddWorkerCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* worker = app.add_subcommand("worker", "Worker machines")->require_subcommand(1);
  auto* list = worker->add_subcommand("list", "List workers and their GPUs");
  auto provider = std::make_shared<std::string>();
  list->add_option("--provider", *provider, "Only this provider's workers");
  list->callback([&ctx, provider] {
    v1::ListWorkersRequest request;
    request.set_provider_account(*provider);
    ShowPages<v1::ListWorkersResponse>(
        ctx, request,
        [&](grpc::ClientContext* c, const v1::ListWorkersRequest& q, v1::ListWorkersResponse* p) {
          return v1::WorkerService::NewStub(ctx.Channel())->ListWorkers(c, q, p);
        },
        [](v1::ListWorkersResponse& p) { return p.mutable_workers(); }, PrintWorkers);
  });

  auto* retire = worker->add_subcommand("retire", "Retire a worker for good, so that its machine can register again");
  auto worker_id = std::make_shared<int64_t>(0);
  auto reason = std::make_shared<std::string>();
  retire->add_option("worker_id", *worker_id)->required();
  retire->add_option("--reason", *reason, "Why, for the audit log")->required();
  retire->callback([&ctx, worker_id, reason] {
    v1::RetireWorkerRequest request;
    request.set_worker_id(*worker_id);
    request.set_reason(*reason);
    Show<v1::Worker>(
        ctx, [&](grpc::ClientContext* c, v1::Worker* w) { return v1::WorkerService::NewStub(ctx.Channel())->RetireWorker(c, request, w); },
        [](const v1::Worker& w) {
          std::cout << "worker " << w.worker_id() << " (" << Printable(w.name()) << ") is " << WorkerStateName(w.state())
                    << "; its GPUs may be registered again under a new worker\n";
        });
  });
}

}  // namespace tessera::cli
