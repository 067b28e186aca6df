// Property test of the money rules against a real PostgreSQL: random sequences of deposits,
// submits, extensions, placements, usage reports (duplicated, out of order, retried), finishes,
// cancels, settlement passes and payouts. After every step the ledger balances, no customer or provider
// balance is negative, every report is charged once, and every lease's charge is
// floor(total_gpu_ms × price / 3,600,000) unless its job's hold ran out, and never above the hold.
#include <catch2/catch.hpp>

#include <map>
#include <random>

#include "tests/integration/marketplace_fixture.h"

using namespace tessera;
using testing::Marketplace;

TEST_CASE("ledger property: random money sequences keep every invariant", "[integration][billing][property]") {
  const uint64_t seed = GENERATE(range(1u, 7u));
  INFO("seed " << seed);
  std::mt19937_64 rng(seed);
  auto pick = [&](int n) { return static_cast<int>(rng() % static_cast<uint64_t>(n)); };
  Marketplace m;
  m.CreateAccount("acme", v1::ACCOUNT_KIND_CUSTOMER);
  m.CreateAccount("gpuco", v1::ACCOUNT_KIND_PROVIDER);
  m.Deposit("acme", 20'000'000, "opening");
  const int64_t ask = 1'000'000 + 1'000 * pick(500);
  const int64_t worker = m.RegisterWorker("gpuco", "w1", ask, 64);
  struct Lease {
    int64_t job_id;
    uint32_t attempt;
    uint64_t next_seq = 1;
    std::vector<std::pair<uint64_t, int64_t>> sent;  // (seq, gpu_ms) already sent, for duplicates
  };
  std::vector<Lease> live;
  int submitted = 0, deposits = 0, payouts = 0;
  std::vector<int64_t> requested_payouts;
  for (int step = 0; step < 80; ++step) {
    const int op = pick(100);
    if (op < 8) {
      // A deposit, sometimes a retry of an earlier key (applied once).
      const bool retry = deposits > 0 && pick(3) == 0;
      m.Deposit("acme", 5'000'000, "dep-" + std::to_string(retry ? pick(deposits) : deposits++));
    } else if (op < 25) {
      auto r = Marketplace::SleepJob("acme", "job-" + std::to_string(submitted++), 1'000'000 + 100'000 * pick(20),
                                     60'000 + 60'000 * pick(30));
      (void)m.jobs.Submit(r);  // may be refused for the balance: nothing is written then
    } else if (op < 35) {
      for (const auto& a : m.MatchOnce({Marketplace::Offer(worker, ask, 64)})) {
        live.push_back({.job_id = a.job_id, .attempt = a.attempt, .next_seq = 1, .sent = {}});
      }
    } else if (op < 70 && !live.empty()) {
      Lease& l = live[static_cast<size_t>(pick(static_cast<int>(live.size())))];
      const int kind = pick(10);
      if (kind < 2 && !l.sent.empty()) {
        const auto& [seq, ms] = l.sent[static_cast<size_t>(pick(static_cast<int>(l.sent.size())))];
        (void)m.Report(worker, l.job_id, l.attempt, seq, ms);  // a duplicate: stored once, charged once
      } else {
        const uint64_t seq = kind < 4 ? l.next_seq + 1 : l.next_seq;  // sometimes out of order
        const int64_t ms = 1'000 * pick(600'000);
        (void)m.Report(worker, l.job_id, l.attempt, seq, ms);
        l.sent.emplace_back(seq, ms);
        l.next_seq = std::max(l.next_seq, seq) + (seq == l.next_seq ? 1 : 0);
      }
    } else if (op < 78 && !live.empty()) {
      const size_t i = static_cast<size_t>(pick(static_cast<int>(live.size())));
      if (pick(2) == 0) {
        m.Finish(worker, live[i].job_id, live[i].attempt, true);
      } else {
        (void)m.jobs.Cancel(live[i].job_id);
      }
      live.erase(live.begin() + static_cast<std::ptrdiff_t>(i));
    } else if (op < 92) {
      auto stats = m.settlement.SettleOnce(1 + pick(20));
      REQUIRE(stats.ok());
    } else if (op >= 96 && submitted > 0) {
      // An extension of some job, sometimes a retry of an earlier request (applied once); refused
      // for an ended job or a short balance, with nothing written.
      v1::ExtendJobRequest r;
      r.set_job_id(std::stoll(m.db.Scalar("SELECT coalesce(min(job_id), 1) FROM jobs")) + pick(submitted));
      r.set_additional_duration_ms(60'000 * (1 + pick(3)));
      r.set_request_id("extend-" + std::to_string(pick(4)));
      (void)m.jobs.Extend(r);
    } else {
      const int64_t earnings = m.billing.GetBalance("gpuco")->earnings_utok();
      if (!requested_payouts.empty() && pick(2) == 0) {
        const int64_t id = requested_payouts.back();
        requested_payouts.pop_back();
        (void)(pick(2) == 0 ? m.payouts.Approve(id) : m.payouts.Reject(id, "property test"));
      } else if (earnings > 0) {
        v1::RequestPayoutRequest r;
        r.set_account("gpuco");
        r.set_amount_utok(1 + pick(static_cast<int>(std::min<int64_t>(earnings, 1'000'000'000))));
        r.set_idempotency_key("payout-" + std::to_string(payouts++));
        if (auto p = m.payouts.Request(r); p.ok()) requested_payouts.push_back(p->payout_id());
      }
    }
    m.CheckInvariants();
  }
  m.SettleAll();
  m.CheckInvariants();
  CHECK(m.db.Scalar("SELECT count(*) FROM usage_reports WHERE NOT settled") == "0");
  // The sequence did exercise the ledger: reports were charged, holds spent and released.
  CHECK(std::stoll(m.db.Scalar("SELECT count(*) FROM usage_reports")) > 0);
  CHECK(std::stoll(m.db.Scalar("SELECT count(DISTINCT kind) FROM transfers")) >= 4);
}
