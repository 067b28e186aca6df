#include <catch2/catch.hpp>

#include "services/billing/ledger.h"
#include "services/billing/usage_proof.h"
#include "services/common/money.h"
#include "tests/integration/marketplace_fixture.h"

using namespace tessera;
using testing::Marketplace;

using Funded = testing::FundedMarketplace;

TEST_CASE("submit → assign → usage → settle → release leaves the ledger balanced", "[integration][billing]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  const int64_t hold = submitted->job.hold_utok();
  CHECK(hold == 2'000'000);  // 2 tokens per GPU-hour × 1 GPU × 1 hour
  CHECK(m.Balance("acme").escrow_utok() == hold);
  CHECK(m.LedgerSum() == 0);

  auto assigned = m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)});
  REQUIRE(assigned.size() == 1);
  CHECK(assigned[0].message.price_utok_per_gpu_hour() == 1'000'000);  // pay-as-ask, below the bid
  const uint32_t attempt = assigned[0].attempt;

  for (uint64_t seq = 1; seq <= 3; ++seq) CHECK(m.Report(m.worker, job, attempt, seq, 1'000 * seq)[0].stored);
  m.Finish(m.worker, job, attempt, true);
  m.SettleAll();

  const int64_t charge = *CumulativeCharge(6'000, 1'000'000);  // 1666 µT
  const int64_t fee = CumulativeFee(charge, Marketplace::kFeeBps);
  auto invoice = m.billing.GetJobInvoice(job, "acme");
  REQUIRE(invoice.ok());
  CHECK(invoice->final());
  CHECK(invoice->charged_utok() == charge);
  CHECK(invoice->fee_utok() == fee);
  CHECK(invoice->released_utok() == hold - charge);
  REQUIRE(invoice->lines_size() == 1);
  CHECK(invoice->lines(0).gpu_ms() == 6'000);
  CHECK(invoice->lines(0).usage_reports() == 3);
  CHECK(m.Balance("acme").available_utok() == 100'000'000 - charge);
  CHECK(m.Balance("acme").escrow_utok() == 0);
  CHECK(m.Balance("gpuco").earnings_utok() == charge - fee);
  CHECK(m.LedgerSum() == 0);
  CHECK(m.db.Scalar("SELECT string_agg(state, ',' ORDER BY event_id) FROM job_events") == "QUEUED,ASSIGNED,SUCCEEDED");

  // The provider's CHARGE names what it pays for: the lease's reports in one settlement batch,
  // each provable against that batch's root.
  v1::ListTransfersRequest list;
  list.set_account("gpuco");
  auto earned = m.billing.ListTransfers(list);
  REQUIRE(earned.ok());
  REQUIRE(earned->transfers_size() == 1);
  const v1::Transfer& paid = earned->transfers(0);
  CHECK(paid.kind() == v1::TRANSFER_KIND_CHARGE);
  CHECK(paid.job_id() == job);
  CHECK(paid.attempt() == attempt);
  CHECK(paid.worker_id() == m.worker);
  v1::GetUsageProofRequest proof_request;
  proof_request.set_job_id(job);
  proof_request.set_seq(2);
  auto proof = m.billing.GetUsageProof(proof_request);
  REQUIRE(proof.ok());
  CHECK(paid.batch_id() == proof->batch_id());

  // The hold is closed: the database refuses any further charge or release against it.
  for (const char* kind : {"CHARGE", "RELEASE"}) {
    absl::Status late = m.db.store().Transact("late post", [&](pqxx::work& tx) -> absl::Status {
      billing::PostTransfers(tx, {{.idempotency_key = std::string("late-") + kind, .kind = kind,
                                   .debit_ledger_id = *billing::LedgerId(tx, "acme", "escrow"),
                                   .credit_ledger_id = *billing::LedgerId(tx, "acme", "available"), .amount_utok = 1,
                                   .job_id = job}});
      return absl::OkStatus();
    });
    INFO(kind);
    CHECK_FALSE(late.ok());
    CHECK_THAT(std::string(late.message()), Catch::Contains("is already released"));
  }
  CHECK(m.LedgerSum() == 0);
}

TEST_CASE("a duplicated usage report is acknowledged and charged once", "[integration][billing]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  auto assigned = m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)});
  REQUIRE(assigned.size() == 1);
  CHECK(m.Report(m.worker, job, 1, 1, 36'000)[0].stored);
  m.SettleAll();
  CHECK(m.Report(m.worker, job, 1, 1, 36'000)[0].stored);  // resent after a lost ack
  m.SettleAll();
  CHECK(m.Count("usage_reports") == 1);
  CHECK(m.db.Scalar("SELECT count(*) FROM transfers WHERE kind = 'CHARGE'") == "1");
  auto after = m.jobs.Get(job);
  REQUIRE(after.ok());
  CHECK(after->charged_utok() == 10'000);
  CHECK(m.LedgerSum() == 0);
}

TEST_CASE("insufficient balance is rejected with nothing written", "[integration][billing]") {
  Funded m;
  const int64_t transfers_before = m.Count("transfers");
  auto r = m.jobs.Submit(Marketplace::SleepJob("acme", "big", 1'000'000'000));  // 1000 tokens > 100
  CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(r.status().message()), Catch::Contains("insufficient balance"));
  CHECK(m.Count("jobs") == 0);
  CHECK(m.Count("job_events") == 0);
  CHECK(m.Count("transfers") == transfers_before);
  CHECK(m.Balance("acme").available_utok() == 100'000'000);
}

TEST_CASE("request_id makes submit idempotent", "[integration][intake]") {
  Funded m;
  auto first = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  auto again = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(first.ok());
  REQUIRE(again.ok());
  CHECK(again->deduplicated);
  CHECK(again->job.job_id() == first->job.job_id());
  CHECK(m.Balance("acme").escrow_utok() == first->job.hold_utok());  // held once
  auto different = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 3'000'000));
  CHECK(different.status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(m.Count("jobs") == 1);
}

TEST_CASE("unknown and provider accounts cannot submit", "[integration][intake]") {
  Funded m;
  CHECK(m.jobs.Submit(Marketplace::SleepJob("nobody", "r1", 1)).status().code() == absl::StatusCode::kNotFound);
  CHECK(m.jobs.Submit(Marketplace::SleepJob("gpuco", "r1", 1)).status().code() == absl::StatusCode::kFailedPrecondition);
}

TEST_CASE("a lost lease requeues the job; the stale worker's late reports are refused", "[integration][scheduler]") {
  Funded m;
  const int64_t other = m.RegisterWorker("gpuco", "w2", 1'500'000, 1);
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  CHECK(m.Report(m.worker, job, 1, 1, 500)[0].stored);

  auto requeued = m.scheduler.Requeue({}, {m.worker}, "lease expired");
  REQUIRE(requeued.ok());
  REQUIRE(requeued->size() == 1);
  CHECK_FALSE((*requeued)[0].failed);
  CHECK(m.db.Scalar("SELECT state FROM workers WHERE worker_id = " + std::to_string(m.worker)) == "OFFLINE");
  CHECK_FALSE(m.Report(m.worker, job, 1, 2, 500)[0].stored);  // lease is gone

  auto second = m.MatchOnce({Marketplace::Offer(other, 1'500'000, 1)});
  REQUIRE(second.size() == 1);
  CHECK(second[0].attempt == 2);
  CHECK(m.Report(other, job, 2, 1, 3'600)[0].stored);
  m.Finish(other, job, 2, true);
  m.SettleAll();
  auto invoice = m.billing.GetJobInvoice(job, "acme");
  REQUIRE(invoice.ok());
  REQUIRE(invoice->lines_size() == 2);
  CHECK(invoice->lines(0).gpu_ms() == 500);  // billed only for what was reported
  CHECK(invoice->lines(1).gpu_ms() == 3'600);
  CHECK(invoice->charged_utok() == *CumulativeCharge(500, 1'000'000) + *CumulativeCharge(3'600, 1'500'000));
  CHECK(m.LedgerSum() == 0);
}

TEST_CASE("attempts run out: the job fails and its escrow returns", "[integration][scheduler]") {
  Funded m;
  auto request = Marketplace::SleepJob("acme", "r1", 2'000'000);
  request.mutable_spec()->set_max_attempts(1);
  auto submitted = m.jobs.Submit(request);
  REQUIRE(submitted.ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  auto requeued = m.scheduler.Requeue({}, {m.worker}, "lease expired");
  REQUIRE(requeued.ok());
  REQUIRE(requeued->size() == 1);
  CHECK((*requeued)[0].failed);
  m.SettleAll();
  CHECK(m.Balance("acme").available_utok() == 100'000'000);
  CHECK(m.Balance("acme").escrow_utok() == 0);
}

TEST_CASE("cancel ends the lease and releases the unspent escrow", "[integration][intake]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  const int64_t job = submitted->job.job_id();
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  CHECK(m.Report(m.worker, job, 1, 1, 7'200)[0].stored);
  auto cancelled = m.jobs.Cancel(job);
  REQUIRE(cancelled.ok());
  CHECK(cancelled->state() == v1::JOB_STATE_CANCELLED);
  CHECK(m.jobs.Cancel(job).status().code() == absl::StatusCode::kFailedPrecondition);
  m.SettleAll();
  CHECK(m.Balance("acme").available_utok() == 100'000'000 - 2'000);
  CHECK(m.Balance("acme").escrow_utok() == 0);
  CHECK(m.LedgerSum() == 0);
}

TEST_CASE("deposits are idempotent", "[integration][billing]") {
  Funded m;
  m.Deposit("acme", 5, "again");
  m.Deposit("acme", 5, "again");
  CHECK(m.Balance("acme").available_utok() == 100'000'005);
  v1::DepositRequest different;
  different.set_account("acme");
  different.set_amount_utok(6);
  different.set_idempotency_key("again");
  CHECK(m.billing.Deposit(different).status().code() == absl::StatusCode::kAlreadyExists);
}

TEST_CASE("a deposed scheduler (stale epoch) cannot place or requeue", "[integration][scheduler][leader]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  // A new leader was elected behind this process's back.
  m.db.Scalar("UPDATE scheduler_leadership SET epoch = epoch + 1, leader = 'other' RETURNING epoch");
  auto placed = m.scheduler.PersistDecisions(m.Decide({Marketplace::Offer(m.worker, 1'000'000, 2)}).placements, {});
  CHECK(placed.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(placed.status().message()), Catch::Contains("no longer the leader's"));
  CHECK(m.Count("assignments") == 0);
  CHECK(m.scheduler.Requeue({}, {m.worker}, "lease expired").status().code() == absl::StatusCode::kFailedPrecondition);
  // A hello it still gets is not applied either, and is UNAVAILABLE: its agent reconnects (to the
  // leader) instead of giving up, as it does on FAILED_PRECONDITION before a welcome.
  v1::Hello hello;
  hello.set_worker_id(m.worker);
  const auto refused = m.scheduler.ApplyHello(hello, false);
  CHECK(refused.status().code() == absl::StatusCode::kUnavailable);
  CHECK_THAT(std::string(refused.status().message()), Catch::Contains("reconnect to the leader"));
  // With the current epoch the same write goes through.
  m.scheduler.set_epoch(1);
  CHECK(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
}

TEST_CASE("each settlement batch commits to its reports; a proof verifies offline and breaks on any change",
          "[integration][billing][merkle]") {
  Funded m;
  std::vector<int64_t> jobs;
  for (const char* id : {"p1", "p2"}) {
    auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", id, 2'000'000));
    REQUIRE(submitted.ok());
    jobs.push_back(submitted->job.job_id());
  }
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 2);
  for (int64_t job : jobs) {
    for (uint64_t seq = 1; seq <= 3; ++seq) REQUIRE(m.Report(m.worker, job, 1, seq, 1'000 * seq)[0].stored);
  }
  v1::GetUsageProofRequest request;
  request.set_job_id(jobs[1]);
  request.set_seq(2);
  CHECK(m.billing.GetUsageProof(request).status().code() == absl::StatusCode::kFailedPrecondition);  // not settled yet
  m.SettleAll();
  CHECK(m.Count("settlement_batches") == 1);

  auto proof = m.billing.GetUsageProof(request);
  REQUIRE(proof.ok());
  CHECK(proof->gpu_ms() == 2'000);
  CHECK(proof->tree_size() == 6);
  CHECK(proof->leaf_index() == 4);  // leaves in (job, attempt, worker, seq) order
  CHECK(billing::VerifyUsageProof(*proof).ok());
  auto batches = m.billing.ListSettlementBatches({});
  REQUIRE(batches.ok());
  REQUIRE(batches->batches_size() == 1);
  CHECK(batches->batches(0).merkle_root() == proof->merkle_root());  // the published root
  CHECK(batches->batches(0).reports() == 6);

  v1::UsageProof changed = *proof;
  changed.set_gpu_ms(2'001);
  CHECK(billing::VerifyUsageProof(changed).code() == absl::StatusCode::kDataLoss);
  changed = *proof;
  changed.mutable_path(0)->at(3) ^= 1;
  CHECK(billing::VerifyUsageProof(changed).code() == absl::StatusCode::kDataLoss);
  changed = *proof;
  changed.mutable_merkle_root()->at(31) ^= 1;
  CHECK(billing::VerifyUsageProof(changed).code() == absl::StatusCode::kDataLoss);
  changed = *proof;
  changed.set_leaf_index(3);
  CHECK(billing::VerifyUsageProof(changed).code() == absl::StatusCode::kDataLoss);
  changed = *proof;
  changed.mutable_merkle_root()->pop_back();
  CHECK(billing::VerifyUsageProof(changed).code() == absl::StatusCode::kInvalidArgument);

  // A report altered in the database after settlement no longer matches its batch.
  m.db.Scalar("UPDATE usage_reports SET gpu_ms = gpu_ms + 1 WHERE job_id = " + std::to_string(jobs[0]) + " AND seq = 1 RETURNING 1");
  CHECK(m.billing.GetUsageProof(request).status().code() == absl::StatusCode::kInternal);
  request.set_seq(99);
  CHECK(m.billing.GetUsageProof(request).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("payouts: earnings are held on request, paid out or returned once, never above earnings", "[integration][billing][payout]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "earn", 2'000'000));
  REQUIRE(submitted.ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  REQUIRE(m.Report(m.worker, submitted->job.job_id(), 1, 1, 3'600'000)[0].stored);  // 1 GPU-hour at 1 token
  m.SettleAll();
  const int64_t earned = m.Balance("gpuco").earnings_utok();
  REQUIRE(earned == 900'000);  // 1 token less the 10% fee

  auto request = [&](int64_t amount, const std::string& key) {
    v1::RequestPayoutRequest r;
    r.set_account("gpuco");
    r.set_amount_utok(amount);
    r.set_idempotency_key(key);
    return m.payouts.Request(r);
  };
  auto above = request(earned + 1, "too-much");
  CHECK(above.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(above.status().message()), Catch::Contains("exceeds the earnings"));

  auto first = request(600'000, "p1");
  REQUIRE(first.ok());
  CHECK(first->state() == v1::PAYOUT_STATE_REQUESTED);
  auto retry = request(600'000, "p1");
  REQUIRE(retry.ok());
  CHECK(retry->payout_id() == first->payout_id());  // a retry, not a second payout
  CHECK(request(500'000, "p1").status().code() == absl::StatusCode::kAlreadyExists);
  CHECK(m.Balance("gpuco").earnings_utok() == 300'000);
  CHECK(m.Balance("gpuco").payout_pending_utok() == 600'000);
  CHECK(request(300'001, "p2").status().code() == absl::StatusCode::kFailedPrecondition);  // pending money is not earnings

  auto approved = m.payouts.Approve(first->payout_id());
  REQUIRE(approved.ok());
  CHECK(approved->state() == v1::PAYOUT_STATE_APPROVED);
  CHECK(approved->decided_at_ms() > 0);
  CHECK(m.payouts.Approve(first->payout_id()).status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(m.payouts.Reject(first->payout_id(), "late").status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(m.Balance("gpuco").payout_pending_utok() == 0);

  auto second = request(300'000, "p2");
  REQUIRE(second.ok());
  auto rejected = m.payouts.Reject(second->payout_id(), "bank details missing");
  REQUIRE(rejected.ok());
  CHECK(rejected->reason() == "bank details missing");
  CHECK(m.Balance("gpuco").earnings_utok() == 300'000);  // returned
  CHECK(m.db.Scalar("SELECT balance_utok FROM ledger_accounts l JOIN accounts a USING (account_id) WHERE a.name = 'treasury'") ==
        std::to_string(-100'000'000 + 600'000));  // minted 100 tokens, 0.6 paid out
  CHECK(m.LedgerSum() == 0);

  v1::ListPayoutsRequest list;
  list.set_account("gpuco");
  list.set_state(v1::PAYOUT_STATE_APPROVED);
  auto listed = m.payouts.List(list);
  REQUIRE(listed.ok());
  REQUIRE(listed->payouts_size() == 1);
  CHECK(listed->payouts(0).amount_utok() == 600'000);

  v1::RequestPayoutRequest customer;
  customer.set_account("acme");
  customer.set_amount_utok(1);
  customer.set_idempotency_key("c");
  CHECK(m.payouts.Request(customer).status().code() == absl::StatusCode::kFailedPrecondition);
  customer.set_account("nobody");
  CHECK(m.payouts.Request(customer).status().code() == absl::StatusCode::kNotFound);
  CHECK(m.payouts.Approve(999).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("a monthly statement has opening and closing balances and the month's movement by kind", "[integration][billing][statement]") {
  Funded m;  // 100 tokens deposited this month
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "s1", 2'000'000));
  REQUIRE(submitted.ok());
  const std::string month = m.db.Scalar("SELECT to_char(now() AT TIME ZONE 'UTC', 'YYYY-MM')");
  auto statement = m.billing.GetStatement("acme", month);
  REQUIRE(statement.ok());
  REQUIRE(statement->buckets_size() == 2);
  CHECK(statement->buckets(0).bucket() == v1::LEDGER_BUCKET_AVAILABLE);
  CHECK(statement->buckets(0).opening_utok() == 0);
  CHECK(statement->buckets(0).closing_utok() == m.Balance("acme").available_utok());
  CHECK(statement->buckets(1).closing_utok() == 2'000'000);  // escrow holds the job
  std::map<std::pair<v1::LedgerBucket, v1::TransferKind>, std::pair<int64_t, int64_t>> lines;
  for (const auto& l : statement->lines()) lines[{l.bucket(), l.kind()}] = {l.debit_utok(), l.credit_utok()};
  CHECK(lines.at({v1::LEDGER_BUCKET_AVAILABLE, v1::TRANSFER_KIND_DEPOSIT}) == std::pair<int64_t, int64_t>{0, 100'000'000});
  CHECK(lines.at({v1::LEDGER_BUCKET_AVAILABLE, v1::TRANSFER_KIND_HOLD}) == std::pair<int64_t, int64_t>{2'000'000, 0});
  CHECK(lines.at({v1::LEDGER_BUCKET_ESCROW, v1::TRANSFER_KIND_HOLD}) == std::pair<int64_t, int64_t>{0, 2'000'000});

  // Next month opens where this one closed, with nothing moved yet.
  const std::string next = m.db.Scalar("SELECT to_char(now() AT TIME ZONE 'UTC' + interval '1 month', 'YYYY-MM')");
  auto later = m.billing.GetStatement("acme", next);
  REQUIRE(later.ok());
  CHECK(later->buckets(0).opening_utok() == statement->buckets(0).closing_utok());
  CHECK(later->buckets(0).closing_utok() == statement->buckets(0).closing_utok());
  CHECK(later->lines_size() == 0);
  CHECK(m.billing.GetStatement("nobody", month).status().code() == absl::StatusCode::kNotFound);

  // Transfers of a period: all of them now, none from tomorrow on.
  const int64_t tomorrow_ms = std::stoll(m.db.Scalar("SELECT (extract(epoch FROM now() + interval '1 day') * 1000)::bigint"));
  v1::ListTransfersRequest list;
  list.set_account("acme");
  list.mutable_period()->set_to_ms(tomorrow_ms);
  auto until_tomorrow = m.billing.ListTransfers(list);
  REQUIRE(until_tomorrow.ok());
  CHECK(until_tomorrow->transfers_size() == 2);  // the deposit and the hold
  list.mutable_period()->set_from_ms(tomorrow_ms);
  list.mutable_period()->set_to_ms(0);
  auto from_tomorrow = m.billing.ListTransfers(list);
  REQUIRE(from_tomorrow.ok());
  CHECK(from_tomorrow->transfers_size() == 0);
}

TEST_CASE("admin reports: settled usage by customer, provider, GPU model and region; fee revenue", "[integration][billing][report]") {
  Funded m;
  auto submitted = m.jobs.Submit(Marketplace::SleepJob("acme", "r1", 2'000'000));
  REQUIRE(submitted.ok());
  REQUIRE(m.MatchOnce({Marketplace::Offer(m.worker, 1'000'000, 2)}).size() == 1);
  REQUIRE(m.Report(m.worker, submitted->job.job_id(), 1, 1, 1'800'000)[0].stored);  // half a GPU-hour
  REQUIRE(m.Report(m.worker, submitted->job.job_id(), 1, 2, 1'800'000)[0].stored);
  m.SettleAll();
  for (auto [group, key] : {std::pair{v1::USAGE_GROUP_CUSTOMER, "acme"}, {v1::USAGE_GROUP_PROVIDER, "gpuco"},
                            {v1::USAGE_GROUP_GPU_MODEL, "H100"}, {v1::USAGE_GROUP_REGION, "test"}}) {
    v1::GetUsageReportRequest request;
    request.set_group_by(group);
    auto report = m.reports.UsageReport(request);
    REQUIRE(report.ok());
    REQUIRE(report->rows_size() == 1);
    CHECK(report->rows(0).key() == key);
    CHECK(report->rows(0).gpu_ms() == 3'600'000);
    CHECK(report->rows(0).charged_utok() == 1'000'000);
    CHECK(report->rows(0).fee_utok() == 100'000);
    CHECK(report->rows(0).reports() == 2);
    CHECK(report->rows(0).jobs() == 1);
  }
  v1::GetUsageReportRequest by_worker;
  by_worker.set_group_by(v1::USAGE_GROUP_WORKER);
  by_worker.set_account("gpuco");  // a provider's earnings by machine
  auto earnings = m.reports.UsageReport(by_worker);
  REQUIRE(earnings.ok());
  REQUIRE(earnings->rows_size() == 1);
  CHECK(earnings->rows(0).key() == std::to_string(m.worker) + "/w1");
  CHECK(earnings->rows(0).charged_utok() - earnings->rows(0).fee_utok() == 900'000);
  by_worker.set_account("someone-else");
  CHECK(m.reports.UsageReport(by_worker)->rows_size() == 0);
  v1::Period all;
  auto revenue = m.reports.Revenue(all);
  REQUIRE(revenue.ok());
  CHECK(revenue->fee_utok() == 100'000);
  v1::Period past;
  past.set_from_ms(1);
  past.set_to_ms(2);
  CHECK(m.reports.Revenue(past)->fee_utok() == 0);
}
