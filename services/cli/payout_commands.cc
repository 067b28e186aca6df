// `tessera billing payout request|list|approve|reject`.
#include <iostream>

#include "services/cli/commands.h"
#include "tessera/v1/billing.grpc.pb.h"

namespace tessera::cli {
namespace {

std::string StateName(v1::PayoutState state) { return v1::PayoutState_Name(state).substr(std::string("PAYOUT_STATE_").size()); }

void PrintPayouts(const google::protobuf::RepeatedPtrField<v1::Payout>& payouts) {
  std::vector<std::vector<std::string>> rows;
  for (const v1::Payout& p : payouts) {
    rows.push_back({std::to_string(p.payout_id()), p.account(), FormatTokens(p.amount_utok()), StateName(p.state()), p.reason()});
  }
  PrintTable({"PAYOUT", "PROVIDER", "AMOUNT", "STATE", "REASON"}, rows);
}

// Runs one payout RPC and prints the payout it returns.
template <typename Request, typename Call>
void PayoutCall(CliContext& ctx, const Request& request, Call call) {
  auto stub = v1::BillingService::NewStub(ctx.Channel());
  Show<v1::Payout>(
      ctx, [&](grpc::ClientContext* c, v1::Payout* out) { return call(*stub, c, request, out); },
      [](const v1::Payout& p) {
        google::protobuf::RepeatedPtrField<v1::Payout> one;
        *one.Add() = p;
        PrintPayouts(one);
      });
}

}  // namespace

void AddPayoutCommands(CLI::App& billing, CliContext& ctx) {
  CLI::App* payout = billing.add_subcommand("payout", "Provider payouts: request, list, approve or reject (admin)")
                         ->require_subcommand(1);
  auto account = std::make_shared<std::string>();
  auto amount = std::make_shared<int64_t>(0);
  auto key = std::make_shared<std::string>();
  auto* request = payout->add_subcommand("request", "Ask to be paid part of a provider's earnings");
  request->add_option("account", *account)->required();
  request->add_option("amount_utok", *amount, "Micro-tokens (1 token = 1000000)")->required();
  request->add_option("--idempotency-key", *key, "A retry with the same key requests once");
  request->callback([&ctx, account, amount, key] {
    v1::RequestPayoutRequest r;
    r.set_account(*account);
    r.set_amount_utok(*amount);
    r.set_idempotency_key(key->empty() ? RandomIdempotencyKey() : *key);
    PayoutCall(ctx, r, [](auto& stub, auto* c, const auto& req, auto* out) { return stub.RequestPayout(c, req, out); });
  });

  auto* list = payout->add_subcommand("list", "Payouts, newest first");
  auto state = std::make_shared<std::string>();
  list->add_option("--account", *account, "One provider's (default: all, admin)");
  list->add_option("--state", *state, "REQUESTED, APPROVED or REJECTED");
  list->callback([&ctx, account, state] {
    v1::ListPayoutsRequest r;
    r.set_account(*account);
    v1::PayoutState parsed = v1::PAYOUT_STATE_UNSPECIFIED;
    if (!state->empty() && !v1::PayoutState_Parse("PAYOUT_STATE_" + *state, &parsed)) {
      std::cerr << "error: --state must be REQUESTED, APPROVED or REJECTED, got '" << *state << "'\n";
      ctx.exit_code = 2;
      return;
    }
    r.set_state(parsed);
    auto stub = v1::BillingService::NewStub(ctx.Channel());
    Show<v1::ListPayoutsResponse>(
        ctx, [&](grpc::ClientContext* c, auto* out) { return stub->ListPayouts(c, r, out); },
        [](const v1::ListPayoutsResponse& response) { PrintPayouts(response.payouts()); });
  });

  auto payout_id = std::make_shared<int64_t>(0);
  auto reason = std::make_shared<std::string>();
  auto* approve = payout->add_subcommand("approve", "Pay a requested payout out to the treasury (admin)");
  approve->add_option("payout_id", *payout_id)->required();
  approve->callback([&ctx, payout_id] {
    v1::DecidePayoutRequest r;
    r.set_payout_id(*payout_id);
    PayoutCall(ctx, r, [](auto& stub, auto* c, const auto& req, auto* out) { return stub.ApprovePayout(c, req, out); });
  });
  auto* reject = payout->add_subcommand("reject", "Return a requested payout to the provider's earnings (admin)");
  reject->add_option("payout_id", *payout_id)->required();
  reject->add_option("--reason", *reason, "Why (shown to the provider)")->required();
  reject->callback([&ctx, payout_id, reason] {
    v1::DecidePayoutRequest r;
    r.set_payout_id(*payout_id);
    r.set_reason(*reason);
    PayoutCall(ctx, r, [](auto& stub, auto* c, const auto& req, auto* out) { return stub.RejectPayout(c, req, out); });
  });
}

}  // namespace tessera::cli
