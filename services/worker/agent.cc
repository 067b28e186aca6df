#include "services/worker/agent.h"

#include <spdlog/spdlog.h>

#include <sodium.h>

#include <fstream>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "services/auth/client_channel.h"
#include "services/auth/tls.h"
#include "services/common/workloads.h"
#include "services/worker/device_inventory.h"

namespace tessera::worker {
namespace {

constexpr auto kRpcTimeout = std::chrono::seconds(10);
// The longest a disconnected agent waits between attempts to reach a scheduler.
constexpr int kReconnectMaxMs = 1'000;

}  // namespace

Agent::Agent(AgentOptions options, std::unique_ptr<kernels::ComputeBackend> backend, const Clock& clock)
    : options_(std::move(options)), backend_(std::move(backend)), clock_(clock) {}

absl::Status Agent::Connect() {
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials =
      auth::ClientCredentials({.ca = options_.tls_ca, .cert = options_.tls_cert, .key = options_.tls_key});
  if (!credentials.ok()) return credentials.status();
  for (absl::string_view server : absl::StrSplit(options_.server, ',', absl::SkipEmpty())) {
    servers_.emplace_back(server);
    // The Connect stream has no deadline (it lasts as long as the worker); its liveness is HTTP/2
    // keepalive instead: a server that does not answer a ping in time is gone (a partition, a frozen
    // or dead machine), and the agent reconnects, to another scheduler if it has one.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, static_cast<int>(options_.keepalive_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, static_cast<int>(options_.keepalive_ms));
    args.SetInt(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
    args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
    // gRPC's own reconnect backoff grows to 120 s by default: after an outage of a few seconds (a
    // server restart under load) the channel would refuse to try again for longer than the lease,
    // which the new leader counts from its start, and the worker's jobs would be requeued. Keep it
    // at most kReconnectMaxMs, like the agent's own loop below.
    args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 100);
    args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, kReconnectMaxMs);
    stubs_.push_back(
        v1::WorkerService::NewStub(auth::AuthenticatedChannel(servers_.back(), options_.api_key, *credentials, args)));
  }
  runner_options_ = options_.runner;
  if (options_.containers && !servers_.empty()) {
    sandbox_ = std::make_unique<BwrapSandbox>();
    // bubblewrap mounts a job's directories as the job user: the path to them must be absolute and
    // traversable (never listable) by that user; the state dir's key stays 0600.
    std::error_code ec;
    const std::filesystem::path state = std::filesystem::absolute(options_.state_dir, ec);
    const std::filesystem::path jobs = state / "jobs";
    std::filesystem::create_directories(jobs, ec);
    std::filesystem::permissions(state, std::filesystem::perms::others_exec, std::filesystem::perm_options::add, ec);
    std::filesystem::permissions(jobs, std::filesystem::perms(0711), ec);
    if (absl::Status probe = sandbox_->Probe(options_.job_uid, options_.job_gid, jobs); probe.ok()) {
      // Artifacts and logs go to the first server (all-in-one, or the front of a split deployment).
      const std::shared_ptr<grpc::Channel> data = auth::AuthenticatedChannel(servers_.front(), options_.api_key, *credentials);
      artifacts_ = std::make_unique<ArtifactTransfer>(data);
      job_logs_ = MakeGrpcJobLogSink(data);
      container_host_ = {.sandbox = sandbox_.get(), .artifacts = artifacts_.get(), .logs = job_logs_.get(), .clock = &clock_, .jobs_dir = jobs,
                         .uid = options_.job_uid, .gid = options_.job_gid, .worker_id = 0,
                         .memory_mib_per_gpu = options_.job_memory_mib_per_gpu,
                         .cpu_millicores_per_gpu = options_.job_cpu_millicores_per_gpu, .max_pids = 4'096,
                         .network_allowed = options_.allow_network, .max_outputs_bytes = int64_t{10} << 30,
                         .stop_grace = std::chrono::seconds(10)};
      runner_options_.containers = &container_host_;
      spdlog::info("container jobs: on (bubblewrap sandbox, as uid {})", options_.job_uid);
      if (options_.images) {
        podman_ = std::make_unique<PodmanSandbox>(PodmanOptions{.state_dir = state});
        if (absl::Status probe = podman_->Probe(); probe.ok()) {
          container_host_.images = podman_.get();
          const PodmanHost& host = podman_->host();
          spdlog::info("image jobs: on (podman{}{})", host.hybrid_cgroups ? ", hybrid cgroups: crun in a mount namespace of its own" : "",
                       host.cdi_gpus ? ", GPUs by CDI" : ", GPUs as device nodes (no CDI spec)");
        } else {
          podman_.reset();
          spdlog::info("image jobs: off: {}", std::string(probe.message()));
        }
      }
    } else {
      sandbox_.reset();
      spdlog::warn("container jobs: off: {}", std::string(probe.message()));
    }
  }
  return absl::OkStatus();
}

Agent::~Agent() {
  Stop();
  if (heartbeat_thread_.joinable()) heartbeat_thread_.join();
  std::map<JobKey, std::unique_ptr<JobRunner>> runners;
  {
    std::lock_guard lock(mu_);
    runners.swap(runners_);
  }
  runners.clear();  // cancels and joins outside the lock: runners report through Send()
}

// The machine's Ed25519 key, kept beside its worker id (hex, owner-readable only). Made before the
// machine registers, so that a crash after registration never leaves a worker without its key.
absl::Status Agent::LoadOrMakeKey(bool registered) {
  const std::filesystem::path key_file = options_.state_dir / "worker.ed25519";
  if (!std::filesystem::exists(key_file)) {
    if (registered) {
      return absl::FailedPreconditionError(absl::StrCat(
          options_.state_dir.string(), " holds a worker id but no worker.ed25519 key (registered before signed usage): retire that "
          "worker (tessera worker retire ID --reason …), then remove its worker-id file to register the machine again"));
    }
    key_ = WorkerKeyPair::Generate();
    std::string hex(2 * key_.secret_key.size() + 1, '\0');
    sodium_bin2hex(hex.data(), hex.size(), reinterpret_cast<const unsigned char*>(key_.secret_key.data()), key_.secret_key.size());
    hex.pop_back();
    return auth::WriteSecretFile(key_file, hex);
  }
  absl::StatusOr<std::string> text = auth::ReadFileText(key_file);
  if (!text.ok()) return text.status();
  const std::string hex(absl::StripAsciiWhitespace(*text));
  std::string raw(hex.size() / 2, '\0');
  size_t length = 0;
  if (sodium_hex2bin(reinterpret_cast<unsigned char*>(raw.data()), raw.size(), hex.data(), hex.size(), nullptr, &length, nullptr) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(key_file.string(), " is not hex"));
  }
  raw.resize(length);
  absl::StatusOr<WorkerKeyPair> key = WorkerKeyPair::FromSecretKey(raw);
  if (!key.ok()) return absl::InvalidArgumentError(absl::StrCat(key_file.string(), ": ", key.status().message()));
  key_ = *std::move(key);
  return absl::OkStatus();
}

absl::StatusOr<int64_t> Agent::RegisterOrLoad() {
  const std::filesystem::path id_file = options_.state_dir / "worker-id";
  std::error_code ec;
  std::filesystem::create_directories(options_.state_dir, ec);
  if (ec) return absl::PermissionDeniedError("cannot create state dir " + options_.state_dir.string() + ": " + ec.message());
  absl::StatusOr<StateDirLock> lock = StateDirLock::Acquire(options_.state_dir);
  if (!lock.ok()) return lock.status();
  state_lock_.emplace(*std::move(lock));
  int64_t saved_id = 0;
  const bool registered = static_cast<bool>(std::ifstream(id_file) >> saved_id) && saved_id > 0;
  if (absl::Status s = LoadOrMakeKey(registered); !s.ok()) return s;
  absl::StatusOr<std::unique_ptr<OutboxJournal>> journal = OutboxJournal::Open(options_.state_dir / "outbox.journal");
  if (!journal.ok()) return journal.status();
  journal_ = *std::move(journal);
  {
    std::lock_guard lock(mu_);
    outbox_ = journal_->Pending();
    if (!outbox_.empty()) spdlog::info("{} usage report(s) and result(s) from before a restart await delivery", outbox_.size());
  }
  if (registered) {
    worker_id_ = saved_id;
    return worker_id_;
  }

  v1::RegisterWorkerRequest request;
  request.set_provider_account(options_.provider_account);
  request.set_name(options_.name);
  request.set_region(options_.region);
  request.set_ask_utok_per_gpu_hour(options_.ask_utok_per_gpu_hour);
  *request.mutable_policy() = options_.policy;
  request.set_public_key(key_.public_key);
  for (const v1::Gpu& gpu : options_.devices) *request.add_gpus() = gpu;
  grpc::Status s(grpc::StatusCode::INVALID_ARGUMENT, "no --server given");
  v1::RegisterWorkerResponse response;
  for (auto& stub : stubs_) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + kRpcTimeout);
    context.set_wait_for_ready(true);
    s = stub->RegisterWorker(&context, request, &response);
    if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
  }
  if (!s.ok()) return absl::Status(static_cast<absl::StatusCode>(s.error_code()), "registration failed: " + s.error_message());
  worker_id_ = response.worker_id();
  std::ofstream(id_file) << worker_id_ << "\n";
  spdlog::info("registered as worker {}", worker_id_);
  return worker_id_;
}

void Agent::Run() {
  container_host_.worker_id = worker_id_;  // known now; container jobs name it in their leases
  std::vector<uint32_t> offered;
  for (const v1::Gpu& gpu : options_.devices) offered.push_back(gpu.index());
  challenges_ = std::make_unique<ChallengeResponder>(*backend_, key_, worker_id_, std::move(offered), [this](const v1::WorkerMessage& m) {
    std::lock_guard lock(mu_);
    WriteLocked(m);
  });
  last_contact_ms_ = clock_.NowMs();
  heartbeat_thread_ = std::thread([this] { HeartbeatLoop(); });
  int backoff_ms = 100;
  while (!stop_ && !stubs_.empty()) {
    const bool welcomed = ServeOneConnection();
    if (stop_) break;
    current_ = (current_ + 1) % stubs_.size();  // the next address may be the leader now
    // A server that answered and then went away is most likely restarting: try again soon, well
    // within the lease. Only servers that never answer get the growing backoff, and never more
    // than kReconnectMaxMs: however long the outage, the worker is back within a second of the
    // server (the lease, 10 s by default, runs from the new leader's start).
    if (welcomed) backoff_ms = 100;
    std::this_thread::sleep_for(std::chrono::milliseconds(backoff_ms));
    backoff_ms = std::min(backoff_ms * 2, kReconnectMaxMs);
  }
}

void Agent::Drain() {
  draining_ = true;
  std::lock_guard lock(mu_);
  spdlog::info("draining: no new jobs; {} running, {} report(s) and result(s) to deliver", runners_.size(), outbox_.size());
  v1::WorkerMessage m;
  m.mutable_drain()->set_reason("the agent was asked to drain");
  if (welcomed_) WriteLocked(m);
}

void Agent::StopIfDrained() {
  if (!draining_) return;
  {
    std::lock_guard lock(mu_);
    ReapFinished();
    if (!runners_.empty() || !outbox_.empty()) return;
  }
  spdlog::info("drained: every job finished and every report delivered");
  Stop();
}

void Agent::Stop() {
  stop_ = true;
  std::lock_guard lock(mu_);
  if (context_ != nullptr) context_->TryCancel();
}

bool Agent::WriteLocked(const v1::WorkerMessage& message) {
  if (stream_ == nullptr) return false;
  if (!stream_->Write(message)) {
    stream_ = nullptr;  // broken; the reader sees it too and reconnects
    return false;
  }
  return true;
}

void Agent::Send(v1::WorkerMessage message) {
  // Signed once, so that a resend from the outbox is byte-identical (the server's duplicate check).
  if (message.has_usage()) SignUsage(key_, worker_id_, message.mutable_usage());
  if (message.has_finished()) SignFinished(key_, worker_id_, message.mutable_finished());
  std::lock_guard lock(mu_);
  if (message.has_finished() && abandoned_.contains({message.finished().job_id(), message.finished().attempt()})) return;
  if (message.has_usage() || message.has_finished()) {
    // On disk before on the wire: a report the server may have seen is never lost by a crash.
    if (absl::Status s = journal_->Append(message); !s.ok()) spdlog::error("outbox journal: {}", s.ToString());
    outbox_.push_back(message);
    // Until the server has answered the hello, reports wait: it may be resuming their lease.
    if (welcomed_) WriteLocked(message);
    return;
  }
  WriteLocked(message);
}

bool Agent::ServeOneConnection() {
  grpc::ClientContext context;
  std::unique_ptr<grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>> stream = stubs_[current_]->Connect(&context);
  {
    // Hello; everything still unacknowledged follows the welcome (Handle).
    std::lock_guard lock(mu_);
    context_ = &context;
    stream_ = stream.get();
    welcomed_ = false;
    v1::WorkerMessage hello;
    hello.mutable_hello()->set_worker_id(worker_id_);
    hello.mutable_hello()->set_agent_version("tessera-worker 0.1.0");
    *hello.mutable_hello()->mutable_policy() = options_.policy;
    hello.mutable_hello()->set_draining(draining_);
    // The configuration in force: a changed --name, --region or --ask is applied by the server.
    hello.mutable_hello()->set_name(options_.name);
    hello.mutable_hello()->set_region(options_.region);
    hello.mutable_hello()->set_ask_utok_per_gpu_hour(options_.ask_utok_per_gpu_hour);
    for (const std::string& kind : WorkloadKindsOn(*backend_, runner_options_.containers != nullptr, container_host_.images != nullptr)) {
      hello.mutable_hello()->add_job_kinds(kind);
    }
    std::set<JobKey> running;
    for (const auto& [key, runner] : runners_) {
      if (abandoned_.contains(key)) continue;  // being stopped: the scheduler requeues it
      running.insert(key);
    }
    // A run is named until its result is acknowledged, finished or not; after a restart only the
    // journal still holds that result. Named, its lease is kept for the result that follows the
    // welcome; unnamed, a lease the server never saw start would be assigned again, run a second
    // time, and its GPUs freed by the old result while the new run still holds them.
    for (const v1::WorkerMessage& m : outbox_) {
      if (m.has_finished()) running.emplace(m.finished().job_id(), m.finished().attempt());
    }
    // A run with usage but no result and no runner died with an earlier agent: named as lost, its
    // lease is requeued rather than assigned again (a second run would reuse its usage seqs).
    std::set<JobKey> lost;
    for (const v1::WorkerMessage& m : outbox_) {
      if (!m.has_usage()) continue;
      const JobKey key{m.usage().job_id(), m.usage().attempt()};
      if (!running.contains(key) && !runners_.contains(key)) lost.insert(key);
    }
    for (const auto& [job_id, attempt] : running) {
      v1::RunningJob* r = hello.mutable_hello()->add_running();
      r->set_job_id(job_id);
      r->set_attempt(attempt);
    }
    for (const auto& [job_id, attempt] : lost) {
      v1::RunningJob* r = hello.mutable_hello()->add_lost();
      r->set_job_id(job_id);
      r->set_attempt(attempt);
    }
    WriteLocked(hello);
  }
  v1::ServerMessage message;
  bool welcomed = false;
  while (stream->Read(&message)) {
    last_contact_ms_ = clock_.NowMs();
    welcomed = welcomed || message.has_welcome();
    Handle(message);
  }
  {
    std::lock_guard lock(mu_);
    stream_ = nullptr;
    context_ = nullptr;
    welcomed_ = false;
  }
  challenges_->Reset();
  grpc::Status status = stream->Finish();
  if (!welcomed && status.error_code() == grpc::StatusCode::FAILED_PRECONDITION) {
    // The server refused this worker's hello for good (a retired worker, an agent that broke the
    // protocol): retrying would only repeat the refusal.
    spdlog::error("the scheduler refused this worker: {}", status.error_message());
    refusal_ = status.error_message();
    Stop();
    return false;
  }
  if (!stop_) {
    spdlog::warn("disconnected from {}: {} {}", servers_[current_], static_cast<int>(status.error_code()), status.error_message());
  }
  return welcomed;
}

void Agent::Handle(const v1::ServerMessage& message) {
  std::lock_guard lock(mu_);
  switch (message.body_case()) {
    case v1::ServerMessage::kWelcome:
      heartbeat_interval_ms_ = std::max<int64_t>(50, message.welcome().heartbeat_interval_ms());
      spdlog::info("connected as worker {}", message.welcome().worker_id());
      // The hello is reconciled (leases kept, resumed or cancelled): the outbox follows in its
      // original order, atomically with respect to runners sending new messages.
      welcomed_ = true;
      for (const v1::WorkerMessage& m : outbox_) {
        if (!WriteLocked(m)) break;
      }
      break;
    case v1::ServerMessage::kAssignment: {
      const v1::Assignment& a = message.assignment();
      const JobKey key{a.job_id(), a.attempt()};
      if (!runners_.contains(key)) {
        spdlog::info("job {} attempt {}: {} on {} device(s)", a.job_id(), a.attempt(), WorkloadKind(a.spec()), a.gpu_indexes_size());
        runners_[key] = std::make_unique<JobRunner>(a, *this, *backend_, clock_, runner_options_);
      }
      break;
    }
    case v1::ServerMessage::kCancel: {
      auto it = runners_.find({message.cancel().job_id(), message.cancel().attempt()});
      if (it != runners_.end()) it->second->Cancel(message.cancel().reason());
      break;
    }
    case v1::ServerMessage::kRendezvous: {
      auto it = runners_.find({message.rendezvous().job_id(), message.rendezvous().attempt()});
      if (it != runners_.end()) it->second->OnRendezvous(message.rendezvous());
      break;
    }
    case v1::ServerMessage::kExtended: {
      auto it = runners_.find({message.extended().job_id(), message.extended().attempt()});
      if (it != runners_.end()) it->second->Extend(message.extended().max_duration_ms());
      break;
    }
    case v1::ServerMessage::kChallenge:
      spdlog::info("proof-of-GPU challenge {} for {} GPU(s)", message.challenge().challenge_id(), message.challenge().gpus_size());
      challenges_->OnChallenge(message.challenge());
      break;
    case v1::ServerMessage::kOpenRows:
      challenges_->OnOpenRows(message.open_rows());
      break;
    case v1::ServerMessage::kChallengeResult:
      if (message.challenge_result().passed()) {
        spdlog::info("passed proof-of-GPU challenge {}: the worker is {}", message.challenge_result().challenge_id(),
                     v1::WorkerState_Name(message.challenge_result().state()));
      } else {
        spdlog::error("failed proof-of-GPU challenge {}: {}", message.challenge_result().challenge_id(), message.challenge_result().reason());
      }
      break;
    case v1::ServerMessage::kUsageAck:
    case v1::ServerMessage::kFinishedAck:
      if (message.has_usage_ack() && !message.usage_ack().accepted()) {
        // Refused for good (the server says why; a trust check records it): the provider should know.
        const v1::UsageAck& a = message.usage_ack();
        spdlog::warn("usage report {} of job {} attempt {} refused: {}", a.through_seq(), a.job_id(), a.attempt(), a.reason());
      }
      if (absl::Status s = journal_->Acknowledge(message); !s.ok()) spdlog::error("outbox journal: {}", s.ToString());
      std::erase_if(outbox_, [&](const v1::WorkerMessage& m) { return IsAcked(m, message); });
      if (message.has_finished_ack()) ReapFinished();
      break;
    default:
      break;
  }
}

void Agent::ReapFinished() {
  // A runner is forgotten once it finished and its result is acknowledged.
  for (auto it = runners_.begin(); it != runners_.end();) {
    const JobKey key = it->first;
    const bool result_pending = std::any_of(outbox_.begin(), outbox_.end(), [&](const v1::WorkerMessage& m) {
      return m.has_finished() && m.finished().job_id() == key.first && m.finished().attempt() == key.second;
    });
    if (it->second->finished() && !result_pending) {
      // The meter thread has sent its last message; joining it cannot call back into Send().
      it = runners_.erase(it);
    } else {
      ++it;
    }
  }
}

void Agent::StopJobsPastGrace() {
  const int64_t silent_ms = clock_.NowMs() - last_contact_ms_;
  std::lock_guard lock(mu_);
  ReapFinished();  // runs stopped here before are forgotten once their meters have stopped
  if (silent_ms <= options_.disconnect_grace_ms || welcomed_) return;
  for (auto& [key, runner] : runners_) {
    if (runner->finished() || runner->cancelled()) continue;
    spdlog::warn("job {} attempt {}: no scheduler for {} ms (grace {} ms); stopping it", key.first, key.second, silent_ms,
                 options_.disconnect_grace_ms);
    abandoned_.insert(key);
    runner->Cancel(absl::StrCat("the worker lost its scheduler for more than ", options_.disconnect_grace_ms, " ms"));
  }
}

void Agent::HeartbeatLoop() {
  while (!stop_) {
    std::this_thread::sleep_for(std::chrono::milliseconds(heartbeat_interval_ms_.load()));
    StopJobsPastGrace();
    StopIfDrained();
    v1::WorkerMessage m;
    m.mutable_heartbeat()->set_sent_at_ms(clock_.NowMs());
    std::lock_guard lock(mu_);
    WriteLocked(m);
  }
}

}  // namespace tessera::worker
