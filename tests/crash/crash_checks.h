// What every crash test checks at its end, with SQL against the store of record and against what
// each worker's own outbox journal says it sent and was told.
#pragma once

#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <tuple>
#include <vector>

#include "services/worker/outbox_journal.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/ledger_invariants.h"

namespace tessera::testing {

using ReportId = std::tuple<int64_t, uint32_t, int64_t, uint64_t>;  // job, attempt, worker, seq

inline void CheckLedgerInvariants(Cluster& c) {
  for (const auto& [name, violations] : LedgerInvariants()) {
    INFO(name);
    CHECK(c.Sql(violations) == "0");
  }
}

// Waits until no job is live and every stored report is settled.
inline void WaitForQuiet(Cluster& c, int timeout_ms) {
  const std::string busy =
      "SELECT (SELECT count(*) FROM jobs WHERE state NOT IN ('SUCCEEDED', 'FAILED', 'CANCELLED'))"
      " + (SELECT count(*) FROM usage_reports WHERE NOT settled) + (SELECT count(*) FROM jobs WHERE hold_state = 'PENDING')";
  for (int waited = 0; waited < timeout_ms && c.Sql(busy) != "0"; waited += 200) {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  }
  INFO("jobs by state: " << c.Sql("SELECT string_agg(state || '=' || n, ' ') FROM (SELECT state, count(*) n FROM jobs GROUP BY 1) t"));
  REQUIRE(c.Sql(busy) == "0");
}

struct JournalTotals {
  int accepted = 0, refused = 0, pending = 0;
};

// Every report a worker's journal says the server accepted is stored exactly as sent and settled;
// every stored report is in the journal of the worker that sent it; none is still undelivered.
inline JournalTotals CheckJournalsMatchStore(Cluster& c, const std::vector<std::string>& worker_names) {
  std::map<ReportId, std::pair<int64_t, bool>> stored;  // gpu_ms, settled
  std::istringstream rows(c.Sql("SELECT job_id, attempt, worker_id, seq, gpu_ms, settled FROM usage_reports"));
  for (std::string line; std::getline(rows, line);) {
    int64_t job = 0, worker = 0, gpu_ms = 0;
    uint32_t attempt = 0;
    uint64_t seq = 0;
    char settled = 0, bar = 0;
    std::istringstream in(line);
    in >> job >> bar >> attempt >> bar >> worker >> bar >> seq >> bar >> gpu_ms >> bar >> settled;
    stored[{job, attempt, worker, seq}] = {gpu_ms, settled == 't'};
  }
  JournalTotals totals;
  std::map<ReportId, int64_t> journaled;
  for (const std::string& name : worker_names) {
    const std::filesystem::path state = std::filesystem::path(c.dir()) / name;
    int64_t worker_id = 0;
    std::ifstream(state / "worker-id") >> worker_id;
    auto entries = worker::OutboxJournal::Read(state / "outbox.journal");
    INFO("worker " << name);
    REQUIRE(entries.ok());
    for (const worker::OutboxJournal::Entry& e : *entries) {
      if (!e.message.has_usage()) continue;
      const v1::UsageReport& r = e.message.usage();
      const ReportId id{r.job_id(), r.attempt(), worker_id, r.seq()};
      journaled[id] = r.gpu_ms();
      if (!e.acked) {
        ++totals.pending;
        continue;
      }
      auto it = stored.find(id);
      INFO("job " << r.job_id() << " attempt " << r.attempt() << " seq " << r.seq());
      if (e.accepted) {
        ++totals.accepted;
        REQUIRE(it != stored.end());
        CHECK(it->second.first == r.gpu_ms());
        CHECK(it->second.second);
      } else {
        ++totals.refused;
        CHECK(it == stored.end());
      }
    }
  }
  CHECK(totals.pending == 0);
  for (const auto& [id, row] : stored) {
    INFO("stored report of job " << std::get<0>(id) << " seq " << std::get<3>(id) << " from worker " << std::get<2>(id));
    CHECK(journaled.contains(id));
  }
  CHECK(static_cast<size_t>(totals.accepted) == stored.size());
  return totals;
}

}  // namespace tessera::testing
