// Where the simulated world meets the product's scheduler host: the worker messages as the wire
// carries them (signed as the agent signs them), a server-side stream (SimSession, the host's
// WorkerSession) and the notifications other processes send the host (SimNotifications).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "services/common/worker_signing.h"
#include "services/scheduler/worker_session.h"
#include "services/store/notification_source.h"
#include "services/store/notifications.h"
#include "tests/sim/sim_model.h"

namespace tessera::sim {

// A simulated worker's message as its agent sends it: usage and results signed with `key`.
v1::WorkerMessage ToWire(const Message& m, const WorkerKeyPair& key);
// What the host sent, as the simulated agent reads it; nullopt for what it ignores (extensions,
// rendezvous, challenges).
std::optional<Message> FromWire(int64_t worker_id, int64_t conn, const v1::ServerMessage& message);

// The server's end of one simulated stream, as the host sees it.
class SimSession final : public scheduler_host::WorkerSession {
 public:
  SimSession(SimStreams& streams, int64_t conn, int64_t provider_account_id)
      : WorkerSession(provider_account_id), streams_(streams), conn_(conn) {}
  bool Send(const v1::ServerMessage& message) override { return streams_.ToWorker(conn_, message); }
  void Close(const grpc::Status& status) override { streams_.CloseFromServer(conn_, status); }
  bool closing() override { return streams_.StreamClosed(conn_); }
  int64_t conn() const { return conn_; }

 private:
  SimStreams& streams_;
  const int64_t conn_;
};

// NOTIFY as the host hears it, in process: what the simulated intake notifies reaches the current
// subscription, if any (a notification while the server is down reaches no one, as in PostgreSQL).
class SimNotifications final : public store::NotificationSource {
 public:
  std::unique_ptr<store::NotificationSubscription> Listen(std::vector<std::string> channels, Handler handler,
                                                          std::function<void()> on_listening) override;
  void Notify(const store::Notification& notification);

 private:
  class Subscription;
  Subscription* current_ = nullptr;
};

}  // namespace tessera::sim
