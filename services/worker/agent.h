// The worker agent (`tessera-worker`): registers the machine once (its worker id is kept in the
// state directory and reused), holds the Connect stream, runs assignments with JobRunner, and
// survives disconnects: usage reports and results stay in an outbox, journaled on disk
// (outbox_journal.h), until the server acknowledges them, and are resent in order once the server
// has welcomed a reconnect (and resumed the leases it could), while jobs keep running for up to
// `disconnect_grace_ms` without a scheduler.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/base/thread_annotations.h"
#include "kernels/compute_backend.h"
#include "services/common/clock.h"
#include "services/common/worker_signing.h"
#include "services/worker/challenge_responder.h"
#include "services/worker/job_runner.h"
#include "services/worker/outbox_journal.h"
#include "services/worker/sandbox/bwrap_sandbox.h"
#include "services/worker/sandbox/podman_sandbox.h"
#include "services/worker/state_dir_lock.h"
#include "tessera/v1/workers.grpc.pb.h"

namespace tessera::worker {

struct AgentOptions {
  // Scheduler addresses, comma-separated: the agent tries them in turn until one (the leader)
  // accepts its stream.
  std::string server = "127.0.0.1:7070";
  std::string provider_account;
  // The provider's API key (role provider, acting for provider_account), sent with every call.
  std::string api_key;
  // TLS to the scheduler: its CA, and this machine's certificate for an mTLS worker port.
  std::filesystem::path tls_ca, tls_cert, tls_key;
  std::string name;
  std::string region = "local";
  int64_t ask_utok_per_gpu_hour = 1'000'000;
  // The devices offered at registration (DetectDevices or CpuDevices), by index.
  std::vector<v1::Gpu> devices;
  // What the provider requires of jobs; sent at registration and in every hello, so a restart
  // with new flags updates it.
  v1::ProviderPolicy policy;
  std::filesystem::path state_dir = "tessera-worker";
  // How long jobs keep running with no scheduler to talk to; past it the agent stops them (their
  // leases have long expired and the jobs are requeued). Reports keep until delivered regardless.
  int64_t disconnect_grace_ms = 600'000;
  // HTTP/2 pings on the scheduler stream this often; one unanswered this long ends the stream.
  int64_t keepalive_ms = 10'000;
  RunnerOptions runner;
  // Container jobs (issue 18): run in the bubblewrap sandbox as `job_uid`, offered only when the
  // sandbox works on this machine (BwrapSandbox::Probe says why not in the log).
  bool containers = true;
  bool images = true;  // and OCI images through podman, where it runs (with containers)
  uid_t job_uid = 65534;
  gid_t job_gid = 65534;
  bool allow_network = false;  // jobs that ask for the network may have it
  int64_t job_memory_mib_per_gpu = 8'192;
  int64_t job_cpu_millicores_per_gpu = 2'000;
};

class Agent final : public JobReporter {
 public:
  Agent(AgentOptions options, std::unique_ptr<kernels::ComputeBackend> backend, const Clock& clock);
  ~Agent() override;

  // INVALID_ARGUMENT or NOT_FOUND when the TLS files are unusable; call before RegisterOrLoad.
  absl::Status Connect();
  // Loads the saved worker id or registers the machine and saves it.
  absl::StatusOr<int64_t> RegisterOrLoad();
  const std::string& public_key() const { return key_.public_key; }
  // Connects and serves until Stop(), or until a drain is done, reconnecting with backoff, or until
  // the scheduler refuses the worker for good (refusal() then says why).
  void Run();
  const std::string& refusal() const { return refusal_; }
  void Stop();
  // Takes no new jobs (the server is told, now and in every hello), finishes those it runs and
  // delivers their reports and results, then ends Run().
  void Drain();

  void Send(v1::WorkerMessage message) override;

 private:
  using JobKey = std::pair<int64_t, uint32_t>;

  // One stream, until it breaks; true when the server welcomed it.
  bool ServeOneConnection();
  void Handle(const v1::ServerMessage& message);
  void HeartbeatLoop();
  void ReapFinished() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void StopJobsPastGrace();
  void StopIfDrained();
  bool WriteLocked(const v1::WorkerMessage& message) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const AgentOptions options_;
  const std::unique_ptr<kernels::ComputeBackend> backend_;
  const Clock& clock_;
  std::vector<std::string> servers_;
  std::vector<std::unique_ptr<v1::WorkerService::Stub>> stubs_;
  size_t current_ = 0;  // run thread only
  int64_t worker_id_ = 0;
  std::atomic<bool> stop_{false};
  std::string refusal_;  // set by the Run() thread before it stops
  std::atomic<int64_t> heartbeat_interval_ms_{1'000};

  std::mutex mu_;  // guards the stream pointer, the outbox and the runners
  grpc::ClientContext* context_ ABSL_GUARDED_BY(mu_) = nullptr;
  grpc::ClientReaderWriter<v1::WorkerMessage, v1::ServerMessage>* stream_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Status LoadOrMakeKey(bool registered);

  WorkerKeyPair key_;  // set by RegisterOrLoad, before the first message
  std::deque<v1::WorkerMessage> outbox_ ABSL_GUARDED_BY(mu_);  // usage and results awaiting ack
  std::unique_ptr<OutboxJournal> journal_;                     // the outbox on disk; set by RegisterOrLoad
  std::optional<StateDirLock> state_lock_;                     // held while running; set by RegisterOrLoad
  bool welcomed_ ABSL_GUARDED_BY(mu_) = false;                 // the server answered this stream's hello
  std::atomic<int64_t> last_contact_ms_{0};                    // the last message from a server
  std::atomic<bool> draining_{false};
  // Runs stopped past the grace period: their result is not reported (the job did not fail; the
  // scheduler requeues it, as for a worker that lost it).
  std::set<JobKey> abandoned_ ABSL_GUARDED_BY(mu_);
  std::map<JobKey, std::unique_ptr<JobRunner>> runners_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<ChallengeResponder> challenges_;  // made by Run, once the worker id is known
  // Container jobs: set up by Connect when the sandbox works; the worker id by RegisterOrLoad.
  std::unique_ptr<BwrapSandbox> sandbox_;
  std::unique_ptr<PodmanSandbox> podman_;
  std::unique_ptr<ArtifactTransfer> artifacts_;
  std::unique_ptr<JobLogSink> job_logs_;
  ContainerHost container_host_;
  RunnerOptions runner_options_;
  std::thread heartbeat_thread_;
};

}  // namespace tessera::worker
