// The simulated worker agent, after services/worker/agent.cc: runs keep going while the stream is
// down, usage and results wait in the outbox (journaled on disk, so a crash keeps it) until
// acknowledged, and a new stream sends its hello (what the worker runs), then the whole outbox in
// order once the server's welcome says the hello was reconciled.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {
namespace {

constexpr int64_t kStepMs = 100;
constexpr int64_t kReportEveryMs = 2'000;
constexpr int64_t kHeartbeatEveryMs = 1'000;

}  // namespace

void World::WorkerSend(SimWorker& w, Message m) {
  m.worker_id = w.id;
  if (m.kind == Message::kUsage || m.kind == Message::kFinished) {
    w.outbox.push_back(m);
    if (!w.welcomed) return;  // the welcome sends it
  }
  Transmit(w, std::move(m));
}

void World::Transmit(SimWorker& w, Message m) {
  if (w.conn == 0) return;
  m.conn = w.conn;
  if (m.kind == Message::kUsage && Fire(&FaultRates::usage_lost)) {
    CloseConn(w, absl::StrCat("usage seq ", m.seq, " of job ", m.job_id, " lost"));  // the stream breaks with it
    return;
  }
  Send(std::move(m), /*to_server=*/true);
}

void World::WorkerConnect(SimWorker& w) {
  w.conn = next_conn_++;
  conn_worker_[w.conn] = w.id;
  w.welcomed = false;
  Message hello{.kind = Message::kHello, .worker_id = w.id, .conn = w.conn};
  // As the agent's hello: its runs, finished ones too until their result is acknowledged, and so
  // also the runs whose result only the journal still holds after a crash (the run is done; the
  // server must keep its lease for the result, not send the assignment to be run again).
  std::set<std::pair<int64_t, uint32_t>> running;
  for (const auto& [key, run] : w.runs) running.insert(key);
  for (const Message& m : w.outbox) {
    if (m.kind == Message::kFinished) running.insert({m.job_id, m.attempt});
  }
  hello.running.assign(running.begin(), running.end());
  // And, as the agent, the runs that died with a crash: usage journaled, no result, no runner.
  std::set<std::pair<int64_t, uint32_t>> lost;
  for (const Message& m : w.outbox) {
    const std::pair<int64_t, uint32_t> key{m.job_id, m.attempt};
    if (m.kind == Message::kUsage && !running.contains(key)) lost.insert(key);
  }
  hello.lost.assign(lost.begin(), lost.end());
  Send(hello, /*to_server=*/true);
  Note(absl::StrCat("worker ", w.id, " connects on stream ", hello.conn, " with ", hello.running.size(), " runs, ", w.outbox.size(),
                    " queued messages"));
}

void World::WorkerCrash(SimWorker& w, Rng& fault) {
  CloseConn(w, "worker crashed");
  w.up = false;
  w.down_until_ms = now_ms_ + fault.Uniform(1, 20) * 1'000;
  w.runs.clear();  // the outbox is on disk: it is delivered after the restart
  Note(absl::StrCat("worker ", w.id, " crashed; back at ", w.down_until_ms, " with ", w.outbox.size(), " journaled messages"));
}

void World::WorkerTick(SimWorker& w) {
  if (!w.up) {
    if (now_ms_ < w.down_until_ms) return;
    w.up = true;
    w.next_connect_ms = now_ms_;
    Note(absl::StrCat("worker ", w.id, " restarted"));
  }
  const bool reachable = w.partitioned_until_ms <= now_ms_ && server_.up;
  if (w.conn == 0 && now_ms_ >= w.next_connect_ms) {
    if (reachable) {
      WorkerConnect(w);
    } else {
      w.next_connect_ms = now_ms_ + 500;
    }
  }
  for (auto& [key, run] : w.runs) {
    if (run.finished) continue;
    run.ran_ms = std::min(run.work_ms, run.ran_ms + kStepMs);
    const bool failing = run.fails && run.ran_ms >= run.work_ms / 2;
    const bool done = failing || run.ran_ms == run.work_ms;
    if (done || run.ran_ms - run.reported_ms >= kReportEveryMs) {
      if (run.ran_ms > run.reported_ms) {
        WorkerSend(w, {.kind = Message::kUsage, .job_id = key.first, .attempt = key.second, .seq = run.next_seq++,
                       .gpu_ms = (run.ran_ms - run.reported_ms) * static_cast<int64_t>(run.gpus.size()),
                       .measured_at_ms = now_ms_ + w.clock_offset_ms});
        run.reported_ms = run.ran_ms;
      }
    }
    if (done) {
      run.finished = true;
      WorkerSend(w, {.kind = Message::kFinished, .job_id = key.first, .attempt = key.second, .ok = !failing});
    }
  }
  if (w.conn != 0 && now_ms_ % kHeartbeatEveryMs == 0) {
    Send({.kind = Message::kHeartbeat, .worker_id = w.id, .conn = w.conn}, /*to_server=*/true);
  }
}

void World::OnWorkerMessage(SimWorker& w, const Message& m) {
  auto same = [&](Message::Kind kind) {
    return [&, kind](const Message& o) { return o.kind == kind && o.job_id == m.job_id && o.attempt == m.attempt && (kind != Message::kUsage || o.seq == m.seq); };
  };
  switch (m.kind) {
    case Message::kWelcome:
      // The hello is reconciled: the outbox follows on this stream, in its original order, and
      // stays queued until acknowledged.
      w.welcomed = true;
      for (const Message& queued : std::deque<Message>(w.outbox)) {
        if (w.conn == 0) break;
        Transmit(w, queued);
      }
      return;
    case Message::kAssign: {
      if (w.runs.contains({m.job_id, m.attempt})) return;  // a resend
      for (const auto& [key, run] : w.runs) {
        if (run.finished) continue;
        for (uint32_t g : m.gpus) {
          if (std::find(run.gpus.begin(), run.gpus.end(), g) != run.gpus.end()) {
            return Violation(absl::StrCat("worker ", w.id, " GPU ", g, " assigned to job ", m.job_id, " while job ", key.first,
                                          " attempt ", key.second, " runs on it"));
          }
        }
      }
      w.runs[{m.job_id, m.attempt}] = {.gpus = m.gpus, .work_ms = m.work_ms, .fails = Fire(&FaultRates::kernel_failure) != nullptr};
      Note(absl::StrCat("worker ", w.id, " starts job ", m.job_id, " attempt ", m.attempt));
      Send({.kind = Message::kStarted, .worker_id = w.id, .conn = w.conn, .job_id = m.job_id, .attempt = m.attempt}, true);
      return;
    }
    case Message::kCancel:
      if (w.runs.erase({m.job_id, m.attempt}) > 0) Note(absl::StrCat("worker ", w.id, " stops job ", m.job_id, " attempt ", m.attempt));
      std::erase_if(w.outbox, same(Message::kFinished));  // nothing left to report for a cancelled run
      return;
    case Message::kUsageAck: {
      std::erase_if(w.outbox, same(Message::kUsage));
      if (!m.ok) return;
      const scheduler_host::ReportKey key{m.job_id, m.attempt, w.id, m.seq};
      acked_reports_.insert(key);
      if (!store_.reports.contains(key)) Violation(absl::StrCat("report ", m.job_id, "/", m.attempt, "/", m.seq, " acknowledged but not stored"));
      return;
    }
    case Message::kFinishedAck:
      std::erase_if(w.outbox, same(Message::kFinished));
      if (auto it = w.runs.find({m.job_id, m.attempt}); it != w.runs.end() && it->second.finished) w.runs.erase(it);
      return;
    default:
      return;
  }
}

}  // namespace tessera::sim
