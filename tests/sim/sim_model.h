// The simulated world's parts: the random source, the trace, the store of record (with its ledger),
// the network, the workers and the server around the product's scheduler host. Internal to
// tests/sim; sim_world.h is the interface.
#pragma once

#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "scheduler/market.h"
#include "services/billing/settlement_plan.h"
#include "services/common/clock.h"
#include "services/common/random_source.h"
#include "services/common/worker_signing.h"
#include "services/scheduler/scheduler_host.h"
#include "services/scheduler/usage_screen.h"
#include "services/scheduler/worker_record.h"
#include "tessera/v1/jobs.pb.h"
#include "tests/sim/sim_world.h"

namespace tessera::sim {

// SplitMix64: small, fast, and the same sequence on every platform (std distributions are not).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t Next();
  int64_t Uniform(int64_t lo, int64_t hi);  // inclusive
  bool Chance(int ppm) { return ppm > 0 && Uniform(0, 999'999) < ppm; }

 private:
  uint64_t state_;
};

// Every event folds into a hash; the lines are kept only when asked (shrinking, the CLI).
class Trace {
 public:
  explicit Trace(bool record) : record_(record) {}
  void Add(int64_t now_ms, const std::string& line);
  template <typename... Ints>
  void Fold(Ints... values) {
    for (int64_t v : {static_cast<int64_t>(values)...}) hash_ = (hash_ ^ static_cast<uint64_t>(v)) * 0x100000001b3ULL;
  }
  bool recording() const { return record_; }
  uint64_t hash() const { return hash_; }
  std::vector<std::string> TakeLines() { return std::move(lines_); }

 private:
  bool record_;
  uint64_t hash_ = 0xcbf29ce484222325ULL;
  std::vector<std::string> lines_;
};

enum class JobState { kQueued, kAssigned, kRunning, kSucceeded, kFailed, kCancelled };
bool Terminal(JobState s);
const char* StateName(JobState s);

struct StoreJob {
  v1::JobSpec spec;                 // as submitted: a sleep workload of work_ms
  scheduler::JobRequirements req;  // what the market reads of it (JobRequirementsFrom)
  int customer = 0;
  int64_t hold_utok = 0;
  int64_t charged_utok = 0;
  int64_t fee_bps = 0;
  uint32_t attempt = 0;
  uint32_t max_attempts = 3;
  JobState state = JobState::kQueued;
  bool hold_pending = true;
  int64_t work_ms = 0;  // how long the job computes (the simulated kernel)
  std::string wait_reason;  // why it waits, as the host last said
};

struct StoreLease {
  std::vector<uint32_t> gpus;
  int64_t price = 0;
  int64_t created_at_ms = 0;
  uint32_t node_rank = 0;
  std::vector<int64_t> nodes;  // the attempt's workers, in node_rank order
  bool live = true;
  bool cancelled = false;  // ended by the customer's cancel
  scheduler_host::IngestTotals ingest;
  billing::LeaseMoney money;
};

struct StoreReport {
  scheduler_host::ReportContent content;
  int64_t measured_at_ms = 0;
  bool settled = false;
  int64_t charge_utok = 0, fee_utok = 0;
};

// Ledger bucket ids.
inline constexpr int64_t kTreasury = 1;
inline constexpr int64_t kFees = 2;
inline int64_t AvailableOf(int customer) { return 10 + 2 * customer; }
inline int64_t EscrowOf(int customer) { return 11 + 2 * customer; }
inline int64_t EarningsOf(int64_t worker_id) { return 1000 + worker_id; }

// A registered worker as the store holds it.
struct StoreWorker {
  scheduler_host::WorkerRecord record;
  int64_t provider_account_id = 0;
  std::string public_key;
};

// The store of record: what survives a server restart. Each method is one transaction.
struct Store {
  std::map<int64_t, StoreWorker> workers;
  std::map<int64_t, StoreJob> jobs;
  std::map<std::string, int64_t> submit_keys;  // the customer's request key → job id
  std::map<scheduler_host::LeaseKey, StoreLease> leases;
  std::map<scheduler_host::ReportKey, StoreReport> reports;
  std::set<scheduler_host::ReportKey> unsettled;
  std::map<int64_t, int64_t> balances;    // ledger bucket → µT
  std::set<std::string> transfer_keys;    // idempotency keys posted
  std::map<std::string, int64_t> posted;  // per kind, µT
  std::map<int, int64_t> deposited;       // per customer
  std::map<int64_t, int64_t> paid_out;    // per provider (worker)
  int64_t next_job_id = 1;
  int64_t next_batch_id = 1;
  int64_t epoch = 0;  // the scheduler's leadership term (one more at each restart)
  std::map<scheduler_host::RunKey, std::string> rendezvous;  // a spread attempt's communicator id

  // Applies the transfers whose keys are new; returns an error (and applies nothing) where one
  // would take a bucket other than the treasury's or the fees' below zero, as the schema's
  // constraints would abort the transaction.
  std::string Post(const std::vector<billing::TransferSpec>& transfers);
  std::vector<const StoreLease*> LiveLeasesOf(int64_t job_id, uint32_t attempt) const;
};

// A message on a worker's stream, either way.
struct Message {
  enum Kind { kHello, kHeartbeat, kStarted, kUsage, kFinished, kWelcome, kAssign, kCancel, kUsageAck, kFinishedAck };
  Kind kind = kHeartbeat;
  int64_t worker_id = 0;
  int64_t conn = 0;  // the stream it travels on
  int64_t job_id = 0;
  uint32_t attempt = 0;
  uint64_t seq = 0;
  int64_t gpu_ms = 0;
  int64_t measured_at_ms = 0;
  bool ok = true;  // ack: accepted; finished: succeeded
  std::vector<uint32_t> gpus;
  int64_t work_ms = 0;
  std::vector<std::pair<int64_t, uint32_t>> running;  // hello
  std::vector<std::pair<int64_t, uint32_t>> lost;     // hello: runs with journaled usage, no result and no runner
};

struct InFlight {
  int64_t deliver_at_ms = 0;
  int64_t order = 0;
  bool to_server = true;
  Message m;
};

struct SimWorker {
  int64_t id = 0;
  uint32_t gpu_count = 1;
  bool up = true;
  int64_t down_until_ms = 0;
  int64_t partitioned_until_ms = 0;
  int64_t conn = 0;           // the stream it is on, 0: none
  bool welcomed = false;      // the server answered this stream's hello
  int64_t clock_offset_ms = 0;
  int64_t next_connect_ms = 0;
  struct Run {
    std::vector<uint32_t> gpus;
    int64_t work_ms = 0;
    int64_t ran_ms = 0;
    int64_t reported_ms = 0;
    uint64_t next_seq = 1;
    bool fails = false;
    bool finished = false;
  };
  std::map<std::pair<int64_t, uint32_t>, Run> runs;
  std::deque<Message> outbox;  // usage and finished, until acknowledged; on disk (a crash keeps it)
};

// The server's memory: lost on a restart. The scheduler host is the product's; the sessions are
// its worker streams, by the simulated stream they stand for.
class SimSession;
class SimSchedulerStore;
class SimNotifications;
struct ServerState {
  bool up = true;
  int64_t down_until_ms = 0;
  std::unique_ptr<scheduler_host::SchedulerHost> host;
  std::map<int64_t, std::shared_ptr<SimSession>> sessions;  // by stream
  std::vector<std::shared_ptr<SimSession>> closed;          // streams closed since the host last heard
};

// The world's side of the server's worker streams (SimSession): what the host sends down a stream
// travels the simulated network; a stream the host closes ends at both ends.
class SimStreams {
 public:
  virtual ~SimStreams() = default;
  virtual bool ToWorker(int64_t conn, const v1::ServerMessage& message) = 0;
  virtual void CloseFromServer(int64_t conn, const grpc::Status& status) = 0;
  virtual bool StreamClosed(int64_t conn) const = 0;
};

// The simulation's clock: the world's time, which moves only between steps.
class WorldClock final : public Clock {
 public:
  explicit WorldClock(const int64_t& now_ms) : now_ms_(now_ms) {}
  int64_t NowMs() const override { return now_ms_; }

 private:
  const int64_t& now_ms_;
};

class World final : private SimStreams {
 public:
  explicit World(const SimOptions& options);
  ~World() override;
  SimResult Run();

 private:
  // sim_world.cc: the loop, customers, faults, the network.
  void Step();
  void Customers();
  // Posts a customer's or provider's request, sometimes delivered twice; true when it was new.
  bool PostRequest(const billing::TransferSpec& t);
  void Faults();
  void Deliver();
  void Send(Message m, bool to_server);
  void CloseConn(SimWorker& w, const std::string& why);  // both ends see the stream end
  bool Faulting() const { return now_ms_ < options_.fault_phase_ms; }
  // Whether the fault of kind `rate` (a member of FaultRates) fires now: its stream, or null. Each
  // kind draws from a stream of its own, as do the fault's own parameters, so that shrinking one
  // kind's rate leaves the draws of the others and of the workload where they were.
  Rng* Fire(int FaultRates::*rate);
  void Note(const std::string& line);
  bool Quiescent() const;

  // sim_server.cc: the server process: the product's scheduler host on the simulated store, intake
  // and billing.
  void ServerStart();
  void ServerCrash(Rng& fault);  // `fault`: the stream its downtime is drawn from
  void ServerTick();
  // A worker's message reaches the host on the stream it was sent on (signed with the worker's key).
  void ToHost(const Message& m);
  // The host hears of the streams that closed since it last did (gRPC's OnDone, after the fact).
  void ReportClosedStreams();
  void Submit(const std::string& key);
  void Cancel(int64_t job_id);
  void SettleOnce();
  void ReleaseEnded();
  bool ToWorker(int64_t conn, const v1::ServerMessage& message) override;
  void CloseFromServer(int64_t conn, const grpc::Status& status) override;
  bool StreamClosed(int64_t conn) const override { return closed_conns_.contains(conn); }

  // sim_worker.cc: the agent.
  void WorkerTick(SimWorker& w);
  void OnWorkerMessage(SimWorker& w, const Message& m);
  void WorkerConnect(SimWorker& w);
  void WorkerCrash(SimWorker& w, Rng& fault);
  void WorkerSend(SimWorker& w, Message m);  // queues usage and results in the outbox
  void Transmit(SimWorker& w, Message m);    // on the current stream, if any

  // sim_invariants.cc.
  void CheckInvariants();
  void CheckFinal();
  void CheckLease(const scheduler_host::LeaseKey& key);
  void Violation(const std::string& what);

  const SimOptions options_;
  Rng rng_;  // the workload, the network's ordinary delays, the servers' choices
  std::vector<Rng> fault_rngs_;  // one per kind, in kFaultKinds order
  Trace trace_;
  int64_t now_ms_ = 0;
  int64_t step_ = 0;
  Store store_;
  // What the host runs on: the simulated store of record, its notifications, the world's clock, a
  // seeded random source, and no observer.
  WorldClock clock_{now_ms_};
  SeededRandom host_random_;
  scheduler_host::NoHostObserver observer_;
  std::unique_ptr<SimSchedulerStore> scheduler_store_;
  std::unique_ptr<SimNotifications> notifications_;
  ServerState server_;
  std::vector<SimWorker> workers_;
  std::vector<WorkerKeyPair> keys_;  // by worker index: what each signs its reports and results with
  std::vector<InFlight> net_;
  std::map<int64_t, int64_t> conn_last_delivery_ms_;  // keeps each stream in order
  int64_t next_order_ = 0;
  int64_t next_conn_ = 1;
  std::map<int64_t, int64_t> conn_worker_;  // stream → the worker that opened it
  std::set<int64_t> closed_conns_;
  // Closed streams whose in-flight messages have started to be lost: the rest are lost too, as a
  // broken TCP stream delivers a prefix of what was sent, never a later message without the earlier.
  std::set<int64_t> cut_conns_;
  // The customers' side: what they were told was accepted, and their pending retries.
  std::set<int64_t> accepted_jobs_;
  std::map<std::string, StoreJob> requests_;  // a submit's key → what it asks for (a retry resends it)
  std::vector<std::string> retry_submits_;
  int jobs_submitted_ = 0;
  std::map<int, int> deposits_made_;
  std::map<int64_t, int> payouts_made_;
  // The worker's side: reports the server acknowledged as stored.
  std::set<scheduler_host::ReportKey> acked_reports_;
  SimResult result_;
};

}  // namespace tessera::sim
