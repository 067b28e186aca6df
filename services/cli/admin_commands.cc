// `tessera admin create-key|list-keys|revoke-key`: the operator's API keys.
#include <iostream>

#include "services/auth/caller.h"
#include "services/cli/commands.h"
#include "tessera/v1/admin.grpc.pb.h"

namespace tessera::cli {
namespace {

std::vector<std::string> KeyRow(const v1::ApiKey& k) {
  return {k.key_id(), std::string(auth::RoleName(k.role())), k.account().empty() ? "-" : k.account(), k.label(),
          k.revoked_at_ms() == 0 ? "active" : "revoked"};
}

const std::vector<std::string> kKeyHeader = {"KEY ID", "ROLE", "ACCOUNT", "LABEL", "STATE"};

}  // namespace

void AddAdminCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* admin = app.add_subcommand("admin", "Operator functions: API keys")->require_subcommand(1);

  auto* create = admin->add_subcommand("create-key", "Issue an API key; the key is printed once and cannot be recovered");
  auto role = std::make_shared<std::string>();
  auto account = std::make_shared<std::string>();
  auto label = std::make_shared<std::string>();
  create->add_option("--role", *role, "customer, provider or admin")->required()->check(CLI::IsMember({"customer", "provider", "admin"}));
  create->add_option("--account", *account, "The account the key acts for (customer and provider keys)");
  create->add_option("--label", *label, "A note for operators, e.g. 'ci runner'");
  create->callback([&ctx, role, account, label] {
    v1::CreateApiKeyRequest request;
    request.set_role(auth::ParseRole(*role));
    request.set_account(*account);
    request.set_label(*label);
    Show<v1::CreateApiKeyResponse>(
        ctx, [&](grpc::ClientContext* c, v1::CreateApiKeyResponse* r) { return v1::AdminService::NewStub(ctx.Channel())->CreateApiKey(c, request, r); },
        [](const v1::CreateApiKeyResponse& r) {
          // The key alone on stdout, so that `tessera admin create-key … > key` stores it.
          std::cout << r.secret_key() << "\n";
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
    Show<v1::ListApiKeysResponse>(
        ctx, [&](grpc::ClientContext* c, v1::ListApiKeysResponse* r) { return v1::AdminService::NewStub(ctx.Channel())->ListApiKeys(c, request, r); },
        [](const v1::ListApiKeysResponse& r) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::ApiKey& k : r.keys()) rows.push_back(KeyRow(k));
          PrintTable(kKeyHeader, rows);
        });
  });

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
