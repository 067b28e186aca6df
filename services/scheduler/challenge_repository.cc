#include "services/scheduler/challenge_repository.h"

#include <sodium.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "services/common/gpu_challenge_proof.h"
#include "services/common/enum_names.h"
#include "services/common/job_state_machine.h"
#include "services/store/notifications.h"

namespace tessera::scheduler_host {
namespace {

using store::ArrayLiteral;

const char* ReasonName(ChallengeReason reason) { return reason == ChallengeReason::kRecheck ? "RECHECK" : "REGISTRATION"; }

// The challenge's `gpus` jsonb from parameters $2..$8 (GpusParams, in this order).
constexpr char kGpusJson[] =
    "(SELECT jsonb_agg(jsonb_build_object('gpu_index', i, 'model', m, 'seed', s, 'n', n, 'root', nullif(r, ''),"
    "   'elapsed_us', e, 'rows', to_jsonb(string_to_array(nullif(rw, ''), ',')::int[])) ORDER BY i)"
    " FROM unnest($2::int[], $3::text[], $4::text[], $5::int[], $6::text[], $7::bigint[], $8::text[]) AS t(i, m, s, n, r, e, rw))";

struct GpusParams {
  std::string index, model, seed, n, root, elapsed_us, rows;
};

GpusParams ParamsOf(const ChallengeState& state) {
  std::vector<int64_t> index, n, elapsed;
  std::vector<std::string> model, seed, root, rows;
  for (const ChallengedGpuState& g : state.gpus) {
    index.push_back(g.index);
    n.push_back(g.spec.n);
    elapsed.push_back(static_cast<int64_t>(g.elapsed_us));
    model.push_back(g.model);
    seed.push_back(std::to_string(g.spec.seed));
    root.push_back(store::Hex(g.root));
    rows.push_back(absl::StrJoin(g.rows, ","));
  }
  return {ArrayLiteral(index), ArrayLiteral(model), ArrayLiteral(seed), ArrayLiteral(n), ArrayLiteral(root), ArrayLiteral(elapsed),
          ArrayLiteral(rows)};
}

void Audit(pqxx::work& tx, const char* action, int64_t worker_id, const std::string& detail) {
  tx.exec_params0("INSERT INTO audit_log (action, subject, detail) VALUES ($1, $2, $3)", action, absl::StrCat("worker/", worker_id), detail);
}

// Closes the open challenge with its verdict; false when it is no longer open.
bool Close(pqxx::work& tx, const ChallengeState& state, const char* outcome, const std::string& detail) {
  const GpusParams p = ParamsOf(state);
  return !tx.exec_params(absl::StrCat("UPDATE gpu_challenges SET gpus = ", kGpusJson,
                                      ", outcome = $10, detail = $9, completed_at = now()"
                                      " WHERE challenge_id = $1 AND outcome = 'PENDING' RETURNING worker_id"),
                         state.challenge_id, p.index, p.model, p.seed, p.n, p.root, p.elapsed_us, p.rows, detail, outcome)
              .empty();
}

uint64_t RandomSeed() {
  uint64_t seed = 0;
  randombytes_buf(&seed, sizeof seed);
  return seed;
}

}  // namespace

absl::StatusOr<ChallengeState> ChallengeRepository::Issue(int64_t worker_id, ChallengeReason reason, uint32_t n_override) {
  return db_.Transact("issue gpu challenge", [&](pqxx::work& tx) -> absl::StatusOr<ChallengeState> {
    if (reason == ChallengeReason::kRecheck) {
      const pqxx::result w = tx.exec_params(
          "UPDATE workers SET state = 'PENDING_VERIFICATION' WHERE worker_id = $1 AND state = 'ACTIVE' RETURNING worker_id", worker_id);
      if (w.empty()) return absl::FailedPreconditionError(absl::StrCat("worker ", worker_id, " is not ACTIVE: no re-check"));
      Audit(tx, "worker.recheck", worker_id, "random proof-of-GPU re-check");
    }
    ChallengeState state{.challenge_id = 0, .worker_id = worker_id, .reason = reason, .gpus = {}, .commit_signature = {}, .observed_ms = 0};
    for (const pqxx::row& r : tx.exec_params("SELECT gpu_index, model FROM gpus WHERE worker_id = $1 ORDER BY gpu_index", worker_id)) {
      ChallengedGpuState g;
      g.index = r[0].as<uint32_t>();
      g.model = r[1].as<std::string>();
      const Int8Throughput* known = Int8ThroughputOf(g.model);
      g.spec = {.seed = RandomSeed(), .n = n_override != 0 ? n_override : known != nullptr ? known->challenge_n : 256};
      state.gpus.push_back(std::move(g));
    }
    if (state.gpus.empty()) return absl::NotFoundError(absl::StrCat("worker ", worker_id, " has no GPUs to challenge"));
    const GpusParams p = ParamsOf(state);
    state.challenge_id = tx.exec_params1(absl::StrCat("INSERT INTO gpu_challenges (worker_id, reason, gpus) VALUES ($1, $9, ", kGpusJson,
                                                      ") RETURNING challenge_id"),
                                         worker_id, p.index, p.model, p.seed, p.n, p.root, p.elapsed_us, p.rows, ReasonName(reason))[0]
                             .as<int64_t>();
    return state;
  });
}

absl::Status ChallengeRepository::RecordCommit(const ChallengeState& state) {
  return db_.Transact("record gpu challenge commitment", [&](pqxx::work& tx) -> absl::Status {
    const GpusParams p = ParamsOf(state);
    tx.exec_params0(absl::StrCat("UPDATE gpu_challenges SET gpus = ", kGpusJson,
                                 ", commit_signature = decode($9, 'hex'), observed_ms = $10, committed_at = now()"
                                 " WHERE challenge_id = $1 AND outcome = 'PENDING'"),
                    state.challenge_id, p.index, p.model, p.seed, p.n, p.root, p.elapsed_us, p.rows, store::Hex(state.commit_signature),
                    state.observed_ms);
    return absl::OkStatus();
  });
}

absl::StatusOr<v1::WorkerState> ChallengeRepository::Pass(const ChallengeState& state, const std::string& detail) {
  return db_.Transact("pass gpu challenge", [&](pqxx::work& tx) -> absl::StatusOr<v1::WorkerState> {
    if (!Close(tx, state, "PASSED", detail)) {
      return absl::FailedPreconditionError(absl::StrCat("challenge ", state.challenge_id, " is no longer open"));
    }
    const pqxx::result w = tx.exec_params(
        "UPDATE workers SET verified_at = now(),"
        " state = CASE WHEN state = 'PENDING_VERIFICATION' THEN 'ACTIVE' ELSE state END WHERE worker_id = $1 RETURNING state",
        state.worker_id);
    Audit(tx, "worker.verified", state.worker_id, absl::StrCat("passed proof-of-GPU challenge ", state.challenge_id, ": ", detail));
    return ParseWorkerState(w[0][0].as<std::string>());
  });
}

absl::Status ChallengeRepository::Fail(const ChallengeState& state, const std::string& detail) {
  return db_.Transact("fail gpu challenge", [&](pqxx::work& tx) -> absl::Status {
    if (!Close(tx, state, "FAILED", detail)) {
      return absl::FailedPreconditionError(absl::StrCat("challenge ", state.challenge_id, " is no longer open"));
    }
    const std::string reason = absl::StrCat("failed proof-of-GPU challenge ", state.challenge_id, ": ", detail);
    tx.exec_params0("UPDATE workers SET state = 'QUARANTINED', quarantine_reason = $2, reputation = 0 WHERE worker_id = $1",
                    state.worker_id, reason);
    tx.exec_params0("INSERT INTO fraud_signals (worker_id, kind, evidence) VALUES ($1, 'CHALLENGE_FAILED', $2)", state.worker_id, reason);
    Audit(tx, "worker.quarantine", state.worker_id, reason);
    store::Notify(tx, store::WorkerQuarantined{.worker_id = state.worker_id});
    return absl::OkStatus();
  });
}

absl::Status ChallengeRepository::Abandon(int64_t challenge_id) {
  return db_.Transact("abandon gpu challenge", [&](pqxx::work& tx) -> absl::Status {
    tx.exec_params0("UPDATE gpu_challenges SET outcome = 'ABANDONED', detail = 'the stream closed before the verdict', completed_at = now()"
                    " WHERE challenge_id = $1 AND outcome = 'PENDING'",
                    challenge_id);
    return absl::OkStatus();
  });
}

absl::Status ChallengeRepository::AbandonOpen() {
  return db_.Transact("abandon open gpu challenges", [&](pqxx::work& tx) -> absl::Status {
    tx.exec0("UPDATE gpu_challenges SET outcome = 'ABANDONED', detail = 'the scheduler that issued it stepped down', completed_at = now()"
             " WHERE outcome = 'PENDING'");
    return absl::OkStatus();
  });
}

std::vector<v1::GpuChallengeRecord> LatestChallenges(pqxx::work& tx, int64_t worker_id, int limit) {
  std::vector<v1::GpuChallengeRecord> out;
  const pqxx::result rows = tx.exec_params(
      "SELECT c.challenge_id, c.reason, c.outcome, c.detail, coalesce(c.observed_ms, 0),"
      " (extract(epoch FROM c.issued_at) * 1000)::bigint, coalesce((extract(epoch FROM c.completed_at) * 1000)::bigint, 0),"
      " (g->>'gpu_index')::int, g->>'model', g->>'seed', (g->>'n')::int, coalesce(decode(g->>'root', 'hex'), ''),"
      " coalesce((g->>'elapsed_us')::bigint, 0), coalesce(ARRAY(SELECT jsonb_array_elements_text(CASE jsonb_typeof(g->'rows')"
      "   WHEN 'array' THEN g->'rows' ELSE '[]' END))::text, '{}')"
      " FROM (SELECT * FROM gpu_challenges WHERE worker_id = $1 ORDER BY challenge_id DESC LIMIT $2) c,"
      " jsonb_array_elements(c.gpus) g ORDER BY c.challenge_id DESC, (g->>'gpu_index')::int",
      worker_id, limit);
  for (const pqxx::row& r : rows) {
    if (out.empty() || out.back().challenge_id() != r[0].as<int64_t>()) {
      v1::GpuChallengeRecord& c = out.emplace_back();
      c.set_challenge_id(r[0].as<int64_t>());
      c.set_reason(ParseStoredName<v1::ChallengeReason>(r[1].as<std::string>()).value_or(v1::CHALLENGE_REASON_UNSPECIFIED));
      c.set_outcome(ParseStoredName<v1::ChallengeOutcome>(r[2].as<std::string>()).value_or(v1::CHALLENGE_OUTCOME_UNSPECIFIED));
      c.set_detail(r[3].as<std::string>());
      c.set_observed_ms(r[4].as<int64_t>());
      c.set_issued_at_ms(r[5].as<int64_t>());
      c.set_completed_at_ms(r[6].as<int64_t>());
    }
    v1::ChallengedGpu* g = out.back().add_gpus();
    g->set_gpu_index(r[7].as<uint32_t>());
    g->set_model(r[8].as<std::string>());
    uint64_t seed = 0;
    (void)absl::SimpleAtoi(r[9].as<std::string>(), &seed);
    g->set_seed(seed);
    g->set_n(r[10].as<uint32_t>());
    g->set_root(pqxx::binarystring(r[11]).str());
    g->set_elapsed_us(r[12].as<uint64_t>());
    for (int64_t row : store::ParseIntArray(r[13].as<std::string>())) g->add_opened_rows(static_cast<uint32_t>(row));
  }
  return out;
}

}  // namespace tessera::scheduler_host
