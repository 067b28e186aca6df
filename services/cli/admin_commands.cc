// `tessera admin create-key|list-keys|revoke-key`: the operator's API keys; `tessera admin fraud
// list|show|quarantine|release`: fraud signals and quarantines.
#include <ctime>
#include <iostream>

#include "services/auth/caller.h"
#include "services/auth/client_channel.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/cli/commands.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"
#include "tessera/v1/admin.grpc.pb.h"

namespace tessera::cli {
namespace {

std::vector<std::string> KeyRow(const v1::ApiKey& k) {
  return {k.key_id(), std::string(auth::RoleName(k.role())), k.account().empty() ? "-" : k.account(), k.label(),
          k.revoked_at_ms() == 0 ? "active" : "revoked"};
}

const std::vector<std::string> kKeyHeader = {"KEY ID", "ROLE", "ACCOUNT", "LABEL", "STATE"};

void PrintSignals(const google::protobuf::RepeatedPtrField<v1::FraudSignal>& signals) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::FraudSignal& f : signals) {
    rows.push_back({std::to_string(f.signal_id()), std::to_string(f.worker_id()), StoredName(f.kind()),
                    f.job_id() == 0 ? "-" : absl::StrCat(f.job_id(), "/", f.attempt(), f.seq() == 0 ? "" : absl::StrCat(" #", f.seq())),
                    f.evidence()});
  }
  PrintTable({"ID", "WORKER", "KIND", "REPORT", "EVIDENCE"}, rows);
}

// One table of challenges, then one row per challenged GPU, so that the evidence of a failure can be
// checked by hand (the seed and n regenerate the operands, the root is what the worker signed)
// without repeating a challenge's outcome text on every GPU's row.
void PrintChallenges(const google::protobuf::RepeatedPtrField<v1::GpuChallengeRecord>& challenges) {
  std::vector<std::vector<std::string>> rows, gpus;
  for (const v1::GpuChallengeRecord& c : challenges) {
    rows.push_back({std::to_string(c.challenge_id()), StoredName(c.reason()), StoredName(c.outcome()), std::to_string(c.gpus_size()),
                    c.observed_ms() == 0 ? "-" : absl::StrCat(c.observed_ms(), " ms"), c.detail().empty() ? "-" : c.detail()});
    for (const v1::ChallengedGpu& g : c.gpus()) {
      std::string root;
      for (unsigned char byte : g.root().substr(0, 8)) absl::StrAppend(&root, absl::Hex(byte, absl::kZeroPad2));
      gpus.push_back({std::to_string(c.challenge_id()), absl::StrCat(g.gpu_index(), " ", g.model()), absl::StrCat(g.seed(), " / ", g.n()),
                      root.empty() ? "-" : root + "…", g.root().empty() ? "-" : absl::StrCat(static_cast<double>(g.elapsed_us()) / 1e3, " ms")});
    }
  }
  PrintTable({"CHALLENGE", "REASON", "OUTCOME", "GPUS", "ROUND TRIP", "DETAIL"}, rows);
  std::cout << "\n";
  PrintTable({"CHALLENGE", "GPU", "SEED / N", "ROOT", "REPORTED"}, gpus);
}

void PrintTrust(const v1::WorkerTrust& t) {
  PrintTable({"FIELD", "VALUE"},
             {{"worker", std::to_string(t.worker_id())},
              {"provider", t.provider_account()},
              {"state", std::string(WorkerStateName(t.state()))},
              {"reputation", absl::StrCat(t.reputation(), " / 1000")},
              {"anomaly", absl::StrCat(t.anomaly_score())},
              {"leases (30 d)", absl::StrCat(t.leases_succeeded(), " succeeded, ", t.leases_failed(), " failed, ", t.leases_lost(), " lost")},
              {"subnet", t.registered_subnet().empty() ? "-" : t.registered_subnet()},
              {"quarantined for", t.quarantine_reason().empty() ? "-" : t.quarantine_reason()},
              {"verified", t.verified_at_ms() == 0 ? "never" : UtcTime(t.verified_at_ms())}});
  if (t.signals_size() > 0) {
    std::cout << "\n";
    PrintSignals(t.signals());
  }
  if (t.challenges_size() > 0) {
    std::cout << "\n";
    PrintChallenges(t.challenges());
  }
}

void AddFraudCommands(CLI::App& admin, CliContext& ctx) {
  CLI::App* fraud = admin.add_subcommand("fraud", "Fraud signals, worker trust and quarantines")->require_subcommand(1);
  auto* list = fraud->add_subcommand("list", "Fraud signals, newest first");
  auto request = std::make_shared<v1::ListFraudSignalsRequest>();
  list->add_option_function<int64_t>("--worker", [request](int64_t w) { request->set_worker_id(w); }, "Only this worker's");
  auto kind = std::make_shared<std::string>();
  auto limit = std::make_shared<int>(100);
  list->add_option("--kind", *kind, "Only this kind (BAD_SIGNATURE, OVER_CLAIM, DUPLICATE_GPU_UUID, CHALLENGE_FAILED, …)");
  list->add_option("--limit", *limit, "At most this many (default 100)")->check(CLI::PositiveNumber);
  list->callback([&ctx, request, kind, limit] {
    if (!kind->empty()) {
      std::optional<v1::FraudSignalKind> parsed = ParseStoredName<v1::FraudSignalKind>(absl::AsciiStrToUpper(*kind));
      if (!parsed) {
        std::cerr << "error: --kind: unknown fraud signal kind '" << Printable(*kind) << "'\n";
        ctx.exit_code = 2;
        return;
      }
      request->set_kind(*parsed);
    }
    ShowPages<v1::ListFraudSignalsResponse>(
        ctx, *request,
        [&](grpc::ClientContext* c, const v1::ListFraudSignalsRequest& q, v1::ListFraudSignalsResponse* p) {
          return v1::AdminService::NewStub(ctx.Channel())->ListFraudSignals(c, q, p);
        },
        [](v1::ListFraudSignalsResponse& p) { return p.mutable_signals(); },
        [](const v1::ListFraudSignalsResponse& r) { PrintSignals(r.signals()); }, *limit);
  });

  auto worker_id = std::make_shared<int64_t>(0);
  auto reason = std::make_shared<std::string>();
  auto* show = fraud->add_subcommand("show", "A worker's trust record: reputation, its inputs, latest signals");
  show->add_option("worker_id", *worker_id, "The worker")->required();
  show->callback([&ctx, worker_id] {
    v1::GetWorkerTrustRequest r;
    r.set_worker_id(*worker_id);
    Show<v1::WorkerTrust>(
        ctx, [&](grpc::ClientContext* c, v1::WorkerTrust* t) { return v1::AdminService::NewStub(ctx.Channel())->GetWorkerTrust(c, r, t); },
        PrintTrust);
  });
  auto* quarantine = fraud->add_subcommand("quarantine", "Take a worker out of the market until released");
  quarantine->add_option("worker_id", *worker_id, "The worker")->required();
  quarantine->add_option("--reason", *reason, "Why (recorded as evidence)")->required();
  quarantine->callback([&ctx, worker_id, reason] {
    v1::QuarantineWorkerRequest r;
    r.set_worker_id(*worker_id);
    r.set_reason(*reason);
    Show<v1::WorkerTrust>(
        ctx, [&](grpc::ClientContext* c, v1::WorkerTrust* t) { return v1::AdminService::NewStub(ctx.Channel())->QuarantineWorker(c, r, t); },
        PrintTrust);
  });
  auto* release = fraud->add_subcommand("release", "Lift a worker's quarantine");
  release->add_option("worker_id", *worker_id, "The worker")->required();
  release->add_option("--reason", *reason, "Why (for the audit log)")->required();
  release->callback([&ctx, worker_id, reason] {
    v1::ReleaseWorkerRequest r;
    r.set_worker_id(*worker_id);
    r.set_reason(*reason);
    Show<v1::WorkerTrust>(
        ctx, [&](grpc::ClientContext* c, v1::WorkerTrust* t) { return v1::AdminService::NewStub(ctx.Channel())->ReleaseWorker(c, r, t); },
        PrintTrust);
  });
}

}  // namespace

void AddAdminCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* admin = app.add_subcommand("admin", "Operator functions: API keys, fraud signals, quarantines")->require_subcommand(1);

  auto* create = admin->add_subcommand("create-key", "Issue an API key; the key is printed once and cannot be recovered");
  auto role = std::make_shared<std::string>();
  auto account = std::make_shared<std::string>();
  auto label = std::make_shared<std::string>();
  create->add_option("--role", *role, "customer, provider or admin")->required()->check(CLI::IsMember({"customer", "provider", "admin"}));
  create->add_option("--account", *account, "The account the key acts for (customer and provider keys)");
  create->add_option("--label", *label, "A note for operators, e.g. 'ci runner'");
  auto out = std::make_shared<std::string>();
  create->add_option("--out", *out, "Write the key to this file, readable by its owner only (0600), instead of stdout");
  create->callback([&ctx, role, account, label, out] {
    v1::CreateApiKeyRequest request;
    request.set_role(auth::ParseRole(*role));
    request.set_account(*account);
    request.set_label(*label);
    Show<v1::CreateApiKeyResponse>(
        ctx, [&](grpc::ClientContext* c, v1::CreateApiKeyResponse* r) { return v1::AdminService::NewStub(ctx.Channel())->CreateApiKey(c, request, r); },
        [&ctx, out](const v1::CreateApiKeyResponse& r) {
          if (!out->empty()) {
            if (absl::Status s = auth::WriteSecretFile(*out, r.secret_key()); !s.ok()) {
              // The key exists now and is shown only once: printed rather than lost.
              std::cerr << "error: " << s.message() << "; the key is printed instead\n";
              std::cout << r.secret_key() << "\n";
              ctx.exit_code = 1;
              return;
            }
          } else {
            // The key alone on stdout, so that `tessera admin create-key … > key` stores it.
            std::cout << r.secret_key() << "\n";
          }
          std::cerr << "issued " << auth::RoleName(r.key().role()) << " key " << r.key().key_id()
                    << (r.key().account().empty() ? "" : " for " + r.key().account()) << "; it is shown only now\n";
        });
  });

  auto* list = admin->add_subcommand("list-keys", "API keys (never their secrets)");
  auto filter = std::make_shared<std::string>();
  auto all = std::make_shared<bool>(false);
  list->add_option("--account", *filter, "Only this account's keys");
  list->add_flag("--all", *all, "Include revoked keys");
  list->callback([&ctx, filter, all] {
    v1::ListApiKeysRequest request;
    request.set_account(*filter);
    request.set_include_revoked(*all);
    ShowPages<v1::ListApiKeysResponse>(
        ctx, request,
        [&](grpc::ClientContext* c, const v1::ListApiKeysRequest& q, v1::ListApiKeysResponse* p) {
          return v1::AdminService::NewStub(ctx.Channel())->ListApiKeys(c, q, p);
        },
        [](v1::ListApiKeysResponse& p) { return p.mutable_keys(); },
        [](const v1::ListApiKeysResponse& r) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::ApiKey& k : r.keys()) rows.push_back(KeyRow(k));
          PrintTable(kKeyHeader, rows);
        });
  });

  AddFraudCommands(*admin, ctx);

  auto* revoke = admin->add_subcommand("revoke-key", "Revoke an API key for good (servers stop accepting it within 5 s)");
  auto key_id = std::make_shared<std::string>();
  revoke->add_option("key_id", *key_id, "The key's id (16 hex, as list-keys shows)")->required();
  revoke->callback([&ctx, key_id] {
    v1::RevokeApiKeyRequest request;
    request.set_key_id(*key_id);
    Show<v1::ApiKey>(
        ctx, [&](grpc::ClientContext* c, v1::ApiKey* r) { return v1::AdminService::NewStub(ctx.Channel())->RevokeApiKey(c, request, r); },
        [](const v1::ApiKey& k) { PrintTable(kKeyHeader, {KeyRow(k)}); });
  });
}

}  // namespace tessera::cli
