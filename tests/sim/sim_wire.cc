#include "tests/sim/sim_wire.h"

#include <algorithm>

namespace tessera::sim {

v1::WorkerMessage ToWire(const Message& m, const WorkerKeyPair& key) {
  v1::WorkerMessage out;
  switch (m.kind) {
    case Message::kHello: {
      v1::Hello& hello = *out.mutable_hello();
      hello.set_worker_id(m.worker_id);
      hello.set_agent_version("tessera-sim");
      for (const auto& [job_id, attempt] : m.running) {
        v1::RunningJob& r = *hello.add_running();
        r.set_job_id(job_id);
        r.set_attempt(attempt);
      }
      for (const auto& [job_id, attempt] : m.lost) {
        v1::RunningJob& r = *hello.add_lost();
        r.set_job_id(job_id);
        r.set_attempt(attempt);
      }
      break;
    }
    case Message::kStarted:
      out.mutable_started()->set_job_id(m.job_id);
      out.mutable_started()->set_attempt(m.attempt);
      break;
    case Message::kUsage: {
      v1::UsageReport& u = *out.mutable_usage();
      u.set_job_id(m.job_id);
      u.set_attempt(m.attempt);
      u.set_seq(m.seq);
      u.set_gpu_ms(m.gpu_ms);
      u.set_measured_at_ms(m.measured_at_ms);
      SignUsage(key, m.worker_id, &u);
      break;
    }
    case Message::kFinished: {
      v1::JobFinished& f = *out.mutable_finished();
      f.set_job_id(m.job_id);
      f.set_attempt(m.attempt);
      f.set_succeeded(m.ok);
      f.set_last_usage_seq(m.seq);
      if (!m.ok) f.mutable_result()->set_error("the simulated kernel failed");
      SignFinished(key, m.worker_id, &f);
      break;
    }
    default:
      out.mutable_heartbeat()->set_sent_at_ms(m.measured_at_ms);
      break;
  }
  return out;
}

std::optional<Message> FromWire(int64_t worker_id, int64_t conn, const v1::ServerMessage& message) {
  Message m{.worker_id = worker_id, .conn = conn};
  switch (message.body_case()) {
    case v1::ServerMessage::kWelcome:
      m.kind = Message::kWelcome;
      return m;
    case v1::ServerMessage::kAssignment: {
      const v1::Assignment& a = message.assignment();
      m.kind = Message::kAssign;
      m.job_id = a.job_id();
      m.attempt = a.attempt();
      m.gpus.assign(a.gpu_indexes().begin(), a.gpu_indexes().end());
      m.work_ms = a.spec().sleep().duration_ms();
      return m;
    }
    case v1::ServerMessage::kCancel:
      m.kind = Message::kCancel;
      m.job_id = message.cancel().job_id();
      m.attempt = message.cancel().attempt();
      return m;
    case v1::ServerMessage::kUsageAck:
      m.kind = Message::kUsageAck;
      m.job_id = message.usage_ack().job_id();
      m.attempt = message.usage_ack().attempt();
      m.seq = message.usage_ack().through_seq();
      m.ok = message.usage_ack().accepted();
      return m;
    case v1::ServerMessage::kFinishedAck:
      m.kind = Message::kFinishedAck;
      m.job_id = message.finished_ack().job_id();
      m.attempt = message.finished_ack().attempt();
      return m;
    default:
      return std::nullopt;
  }
}

class SimNotifications::Subscription final : public store::NotificationSubscription {
 public:
  Subscription(SimNotifications& bus, std::vector<std::string> channels, Handler handler)
      : bus_(bus), channels_(std::move(channels)), handler_(std::move(handler)) {}
  ~Subscription() override {
    if (bus_.current_ == this) bus_.current_ = nullptr;
  }
  void Deliver(const store::Notification& n) {
    const std::string channel(store::ChannelOf(n));
    if (std::find(channels_.begin(), channels_.end(), channel) != channels_.end()) handler_(channel, store::EncodePayload(n));
  }

 private:
  SimNotifications& bus_;
  const std::vector<std::string> channels_;
  const Handler handler_;
};

std::unique_ptr<store::NotificationSubscription> SimNotifications::Listen(std::vector<std::string> channels, Handler handler,
                                                                          std::function<void()> on_listening) {
  auto subscription = std::make_unique<Subscription>(*this, std::move(channels), std::move(handler));
  current_ = subscription.get();
  if (on_listening) on_listening();  // listening at once: the host compares its queue with the store
  return subscription;
}

void SimNotifications::Notify(const store::Notification& notification) {
  if (current_ != nullptr) current_->Deliver(notification);
}

}  // namespace tessera::sim
