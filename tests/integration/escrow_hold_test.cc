// The escrow hold as a two-phase transfer (closed once: RELEASED or VOIDED), ExtendJob, the
// ESCROW_LOW warning, and invoices scoped to their customer, through the real repositories.
#include <catch2/catch.hpp>

#include "services/common/money.h"
#include "tests/integration/marketplace_fixture.h"

using namespace tessera;
using testing::Marketplace;

namespace {

struct Funded : testing::FundedMarketplace {
  Funded() { CreateAccount("rival", v1::ACCOUNT_KIND_CUSTOMER); }
  int64_t Submit(const std::string& request_id, int64_t max_duration_ms) {
    auto submitted = jobs.Submit(SleepJob("acme", request_id, 2'000'000, max_duration_ms));
    REQUIRE(submitted.ok());
    return submitted->job.job_id();
  }
  uint32_t Run(int64_t job) {
    auto assigned = MatchOnce({Offer(worker, 1'000'000, 2)});
    REQUIRE(assigned.size() == 1);
    REQUIRE(assigned[0].job_id == job);
    return assigned[0].attempt;
  }
  absl::StatusOr<v1::Job> Extend(int64_t job, int64_t ms, const std::string& request_id) {
    v1::ExtendJobRequest r;
    r.set_job_id(job);
    r.set_additional_duration_ms(ms);
    r.set_request_id(request_id);
    return jobs.Extend(r);
  }
  std::vector<v1::JobUpdate> Updates(int64_t job, v1::JobUpdateKind kind) {
    auto changes = jobs.ChangesSince(job, 0);
    REQUIRE(changes.ok());
    std::vector<v1::JobUpdate> out;
    for (const v1::JobUpdate& u : changes->updates) {
      if (u.kind() == kind) out.push_back(u);
    }
    return out;
  }
};

}  // namespace

TEST_CASE("an escrow hold closes once: VOIDED when nothing was charged, RELEASED after charges",
          "[integration][billing]") {
  Funded m;
  const int64_t never_ran = m.Submit("never-ran", 3'600'000);
  REQUIRE(m.jobs.Cancel(never_ran).ok());
  const int64_t ran = m.Submit("ran", 3'600'000);
  const uint32_t attempt = m.Run(ran);
  REQUIRE(m.Report(m.worker, ran, attempt, 1, 36'000)[0].stored);
  m.Finish(m.worker, ran, attempt, true);
  m.SettleAll();

  auto voided = m.billing.GetJobInvoice(never_ran, "acme");
  REQUIRE(voided.ok());
  CHECK(voided->hold_state() == v1::ESCROW_HOLD_STATE_VOIDED);
  CHECK(voided->final());
  CHECK(voided->released_utok() == voided->hold_utok());
  auto released = m.billing.GetJobInvoice(ran, "acme");
  REQUIRE(released.ok());
  CHECK(released->hold_state() == v1::ESCROW_HOLD_STATE_RELEASED);
  CHECK(released->charged_utok() == 10'000);  // 36 GPU-s at 1 token per GPU-hour
  CHECK(released->released_utok() == released->hold_utok() - 10'000);
  CHECK(m.jobs.Get(ran)->hold_state() == v1::ESCROW_HOLD_STATE_RELEASED);
  m.CheckInvariants();

  // Whatever the code does, the database refuses a second close, a post after the void, and any
  // further transfer against a closed hold.
  const std::string id = std::to_string(ran), void_id = std::to_string(never_ran);
  CHECK_THROWS_WITH(m.db.Scalar("UPDATE jobs SET hold_state = 'VOIDED' WHERE job_id = " + id + " RETURNING 1"),
                    Catch::Contains("already released"));
  CHECK_THROWS_WITH(m.db.Scalar("UPDATE jobs SET charged_utok = 1, released_utok = released_utok - 1 WHERE job_id = " +
                                void_id + " RETURNING 1"),
                    Catch::Contains("already voided"));
  for (const char* kind : {"CHARGE", "RELEASE", "HOLD"}) {
    INFO(kind);
    const std::string sql = "INSERT INTO transfers (idempotency_key, kind, debit_ledger_id, credit_ledger_id, amount_utok, job_id)"
                            " SELECT 'late-" + std::string(kind) + "', '" + kind + "', e.ledger_account_id, v.ledger_account_id, 1, " +
                            void_id + " FROM ledger_accounts e JOIN ledger_accounts v USING (account_id) JOIN accounts a USING (account_id)"
                            " WHERE a.name = 'acme' AND e.bucket = 'escrow' AND v.bucket = 'available' RETURNING 1";
    CHECK_THROWS_WITH(m.db.Scalar(sql), Catch::Contains("is already voided: no " + std::string(kind) + " may be posted"));
  }
  m.CheckInvariants();
}

TEST_CASE("ExtendJob holds the extra escrow once, raises the limit and is refused precisely",
          "[integration][billing]") {
  Funded m;
  const int64_t job = m.Submit("long", 3'600'000);  // hold 2 tokens: 2 per GPU-hour × 1 h
  const uint32_t attempt = m.Run(job);
  const int64_t available_before = m.billing.GetBalance("acme")->available_utok();

  auto extended = m.Extend(job, 1'800'000, "more-1");
  REQUIRE(extended.ok());
  CHECK(extended->max_duration_ms() == 5'400'000);
  CHECK(extended->spec().max_duration_ms() == 3'600'000);  // the spec stays as submitted
  CHECK(extended->hold_utok() == *HoldAmount(2'000'000, 1, 5'400'000));
  CHECK(extended->hold_state() == v1::ESCROW_HOLD_STATE_PENDING);
  CHECK(m.billing.GetBalance("acme")->available_utok() == available_before - 1'000'000);
  CHECK(m.billing.GetBalance("acme")->escrow_utok() == 3'000'000);

  SECTION("a retry is applied once; the same request_id for another duration is refused") {
    auto retry = m.Extend(job, 1'800'000, "more-1");
    REQUIRE(retry.ok());
    CHECK(retry->max_duration_ms() == 5'400'000);
    CHECK(m.billing.GetBalance("acme")->escrow_utok() == 3'000'000);
    CHECK(m.Extend(job, 60'000, "more-1").status().code() == absl::StatusCode::kAlreadyExists);
    CHECK(m.Count("job_extensions") == 1);
  }
  SECTION("the scheduler's view and the worker's assignment carry the limit in force") {
    auto live = m.scheduler.LoadMarket();
    REQUIRE(live.ok());
    REQUIRE(live->live.size() == 1);
    CHECK(live->live[0].message.spec().max_duration_ms() == 5'400'000);
  }
  SECTION("WatchJob shows the extension") {
    auto events = m.Updates(job, v1::JOB_UPDATE_KIND_EXTENDED);
    REQUIRE(events.size() == 1);
    CHECK_THAT(events[0].message(), Catch::Contains("extended by 1800000 ms to max_duration_ms 5400000"));
  }
  SECTION("bad extensions are refused with nothing written") {
    const int64_t transfers_before = m.Count("transfers");
    CHECK(m.Extend(job + 1'000, 60'000, "x").status().code() == absl::StatusCode::kNotFound);
    auto too_long = m.Extend(job, 30LL * 24 * 3'600'000, "x");
    CHECK(too_long.status().code() == absl::StatusCode::kOutOfRange);
    CHECK_THAT(std::string(too_long.status().message()), Catch::Contains("above the limit"));
    auto poor = m.Extend(job, 29LL * 24 * 3'600'000, "x");  // 1,392 tokens more; acme has ~97
    CHECK(poor.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(poor.status().message()), Catch::Contains("insufficient balance"));
    m.Finish(m.worker, job, attempt, true);
    auto ended = m.Extend(job, 60'000, "after-end");
    CHECK(ended.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(ended.status().message()), Catch::Contains("is already SUCCEEDED"));
    CHECK(m.Count("transfers") == transfers_before);
    CHECK(m.Count("job_extensions") == 1);
  }
  m.SettleAll();
  m.CheckInvariants();
}

TEST_CASE("ExtendJob respects the running worker's provider policy", "[integration][billing]") {
  Funded m;
  const int64_t job = m.Submit("capped", 600'000);
  m.Run(job);
  v1::ProviderPolicy policy;
  policy.set_max_job_duration_ms(900'000);
  REQUIRE(m.scheduler.ApplyHello(Marketplace::Hello(m.worker, {}, &policy), false).ok());
  CHECK(m.Extend(job, 300'000, "to-the-cap").ok());
  auto over = m.Extend(job, 1, "over-the-cap");
  CHECK(over.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(over.status().message()), Catch::Contains("takes jobs of at most 900000 ms"));
}

TEST_CASE("settlement warns once per limit when a running job's escrow runs low", "[integration][billing]") {
  Funded m;
  const int64_t job = m.Submit("warned", 100'000);
  const uint32_t attempt = m.Run(job);
  REQUIRE(m.Report(m.worker, job, attempt, 1, 79'000)[0].stored);
  m.SettleAll();
  CHECK(m.Updates(job, v1::JOB_UPDATE_KIND_ESCROW_LOW).empty());  // 79% used

  REQUIRE(m.Report(m.worker, job, attempt, 2, 2'000)[0].stored);
  m.SettleAll();
  auto warnings = m.Updates(job, v1::JOB_UPDATE_KIND_ESCROW_LOW);
  REQUIRE(warnings.size() == 1);
  CHECK(warnings[0].remaining_ms() == 19'000);
  CHECK(warnings[0].state() == v1::JOB_STATE_ASSIGNED);
  CHECK_THAT(warnings[0].message(), Catch::Contains("19000 ms left of max_duration_ms 100000"));
  CHECK_THAT(warnings[0].message(), Catch::Contains("ExtendJob"));

  REQUIRE(m.Report(m.worker, job, attempt, 3, 5'000)[0].stored);
  m.SettleAll();
  CHECK(m.Updates(job, v1::JOB_UPDATE_KIND_ESCROW_LOW).size() == 1);  // once per limit

  // An extension re-arms the warning for the new limit: 80% of 200,000 ms.
  REQUIRE(m.Extend(job, 100'000, "top-up").ok());
  REQUIRE(m.Report(m.worker, job, attempt, 4, 70'000)[0].stored);
  m.SettleAll();
  CHECK(m.Updates(job, v1::JOB_UPDATE_KIND_ESCROW_LOW).size() == 1);  // 156,000 of 200,000 ms
  REQUIRE(m.Report(m.worker, job, attempt, 5, 4'000)[0].stored);
  m.SettleAll();
  warnings = m.Updates(job, v1::JOB_UPDATE_KIND_ESCROW_LOW);
  REQUIRE(warnings.size() == 2);
  CHECK(warnings[1].remaining_ms() == 40'000);
  m.CheckInvariants();
}

TEST_CASE("a customer cannot read another customer's invoice", "[integration][billing]") {
  Funded m;
  const int64_t job = m.Submit("private", 3'600'000);
  CHECK(m.billing.GetJobInvoice(job, "acme").ok());
  CHECK(m.billing.GetJobInvoice(job, "").ok());  // the admin's view
  auto other = m.billing.GetJobInvoice(job, "rival");
  CHECK(other.status().code() == absl::StatusCode::kNotFound);
  CHECK_THAT(std::string(other.status().message()), Catch::Contains("not found for account 'rival'"));
}

TEST_CASE("an invoice line carries the worker's metering over its settled reports", "[integration][billing]") {
  Funded m;
  const int64_t job = m.Submit("metered", 3'600'000);
  const uint32_t attempt = m.Run(job);
  std::vector<scheduler_host::UsageIn> usage;
  for (auto [seq, gpu_ms, ppm, mib, mj] : {std::tuple{1, 1'000, 900'000, 40'000, 300'000}, {2, 3'000, 500'000, 70'000, 900'000}}) {
    scheduler_host::UsageIn& in = usage.emplace_back();
    in.worker_id = m.worker;
    in.report.set_job_id(job);
    in.report.set_attempt(attempt);
    in.report.set_seq(static_cast<uint64_t>(seq));
    in.report.set_gpu_ms(gpu_ms);
    in.report.set_avg_gpu_utilization_ppm(static_cast<uint32_t>(ppm));
    in.report.set_peak_gpu_memory_mib(static_cast<uint64_t>(mib));
    in.report.set_energy_mj(static_cast<uint64_t>(mj));
  }
  m.db.Scalar("UPDATE assignments SET created_at = now() - interval '1 minute' WHERE job_id = " + std::to_string(job));
  REQUIRE(m.scheduler.IngestUsage(usage).ok());
  m.SettleAll();
  auto invoice = m.billing.GetJobInvoice(job, "acme");
  REQUIRE(invoice.ok());
  REQUIRE(invoice->lines_size() == 1);
  CHECK(invoice->lines(0).avg_gpu_utilization_ppm() == 600'000);  // (0.9 × 1 s + 0.5 × 3 s) / 4 s
  CHECK(invoice->lines(0).peak_gpu_memory_mib() == 70'000);
  CHECK(invoice->lines(0).energy_mj() == 1'200'000);
  CHECK(invoice->lines(0).charge_utok() == 1'111);  // by GPU-ms alone: 4 s at 1 token per GPU-hour
}
