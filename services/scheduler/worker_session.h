// One worker's Connect stream on the server: a gRPC callback reactor plus a session handle that
// outlives it (WorkerSession, an interface the host sees). Other threads send through the session (thread-safe; one write in flight at a time,
// the rest queued up to a bound); the reactor hands every incoming message to a StreamHandler.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>

#include "absl/base/thread_annotations.h"
#include "tessera/v1/workers.pb.h"

namespace tessera::scheduler_host {

class WorkerStream;

// A worker's stream as the host sees it: what it sends down, closing it, and who is on it. The
// product's is a gRPC stream (GrpcWorkerSession); a test or the simulation may put its own behind it.
class WorkerSession {
 public:
  explicit WorkerSession(int64_t provider_account_id) : provider_account_id_(provider_account_id) {}
  virtual ~WorkerSession() = default;

  // Queues a message for the worker; false when the stream is closed or its queue is full.
  virtual bool Send(const v1::ServerMessage& message) = 0;
  // Ends the stream with `status` once queued messages are written. Idempotent.
  virtual void Close(const grpc::Status& status) = 0;
  // Whether Close was called: nothing the worker sends after that is handled, so a refused message
  // is never followed by a later one of the same stream (the agent resends both, in order).
  virtual bool closing() = 0;

  int64_t worker_id() const { return worker_id_.load(); }
  void set_worker_id(int64_t id) { worker_id_.store(id); }
  // The provider account whose API key opened the stream: its hello may name only that account's
  // workers. 0: an admin key, which may speak for any worker.
  int64_t provider_account_id() const { return provider_account_id_; }
  // The Ed25519 key the hello's worker registered; set, with the worker id, by the ingest thread
  // (the only one that reads it) when it accepts the hello.
  const std::string& public_key() const { return public_key_; }
  void set_public_key(std::string key) { public_key_ = std::move(key); }

 private:
  std::atomic<int64_t> worker_id_{0};
  const int64_t provider_account_id_;
  std::string public_key_;
};

// The session of a gRPC Connect stream: thread-safe sends, one write in flight at a time, the rest
// queued up to a bound.
class GrpcWorkerSession final : public WorkerSession {
 public:
  GrpcWorkerSession(WorkerStream* stream, int64_t provider_account_id) : WorkerSession(provider_account_id), stream_(stream) {}

  bool Send(const v1::ServerMessage& message) override;
  void Close(const grpc::Status& status) override;
  bool closing() override;

 private:
  friend class WorkerStream;
  static constexpr size_t kMaxQueuedMessages = 10'000;

  void WriteDone(bool ok);
  void Detach();
  void StartNextLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // Recursive: a gRPC reaction could in principle run inline inside StartWrite.
  std::recursive_mutex mu_;
  WorkerStream* stream_ ABSL_GUARDED_BY(mu_);
  std::deque<v1::ServerMessage> outbox_ ABSL_GUARDED_BY(mu_);
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool finishing_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
  grpc::Status final_status_ ABSL_GUARDED_BY(mu_);
};

class StreamHandler {
 public:
  virtual ~StreamHandler() = default;
  virtual void OnMessage(const std::shared_ptr<WorkerSession>& session, v1::WorkerMessage message) = 0;
  virtual void OnClosed(const std::shared_ptr<WorkerSession>& session) = 0;
};

class WorkerStream final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage> {
 public:
  // `slot` is held while the stream lives (the provider's open-stream quota) and released at its end.
  WorkerStream(StreamHandler& handler, int64_t provider_account_id, std::shared_ptr<void> slot);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  friend class GrpcWorkerSession;
  StreamHandler& handler_;
  std::shared_ptr<GrpcWorkerSession> session_;
  v1::WorkerMessage incoming_;
  std::shared_ptr<void> slot_;
};

// A stream refused before it starts (bad key, quota): finishes at once with `status`.
class RejectedStream final : public grpc::ServerBidiReactor<v1::WorkerMessage, v1::ServerMessage> {
 public:
  explicit RejectedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace tessera::scheduler_host
