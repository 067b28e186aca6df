// Listens for PostgreSQL NOTIFY on a dedicated connection and hands each payload to a callback on
// the listener's own thread. Reconnects after a lost connection. A notification sent before the
// LISTEN took effect (at start, or while reconnecting) is never heard: `on_listening` runs on the
// listener's thread each time the LISTENs are in place, for the consumer to re-read what it
// follows from PostgreSQL then.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "services/store/notification_source.h"

namespace tessera::store {

class NotificationListener final : public NotificationSubscription {
 public:
  using Handler = NotificationSource::Handler;

  NotificationListener(std::string url, std::vector<std::string> channels, Handler handler,
                       std::function<void()> on_listening = {});
  ~NotificationListener() override;
  NotificationListener(const NotificationListener&) = delete;
  NotificationListener& operator=(const NotificationListener&) = delete;

 private:
  void Run();

  const std::string url_;
  const std::vector<std::string> channels_;
  const Handler handler_;
  const std::function<void()> on_listening_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

// The product's NotificationSource: a NotificationListener on its own connection per subscription.
class PostgresNotifications final : public NotificationSource {
 public:
  explicit PostgresNotifications(std::string url) : url_(std::move(url)) {}
  std::unique_ptr<NotificationSubscription> Listen(std::vector<std::string> channels, Handler handler,
                                                   std::function<void()> on_listening) override {
    return std::make_unique<NotificationListener>(url_, std::move(channels), std::move(handler), std::move(on_listening));
  }

 private:
  const std::string url_;
};

}  // namespace tessera::store
