// Listens for PostgreSQL NOTIFY on a dedicated connection and hands each payload to a callback on
// the listener's own thread. Reconnects after a lost connection. A notification sent before the
// LISTEN took effect (at start, or while reconnecting) is never heard: `on_listening` runs on the
// listener's thread each time the LISTENs are in place, for the consumer to re-read what it
// follows from PostgreSQL then.
#pragma once

#include <atomic>
#include <functional>
#include <string>
#include <thread>
#include <vector>

namespace tessera::store {

class NotificationListener {
 public:
  using Handler = std::function<void(const std::string& channel, const std::string& payload)>;

  NotificationListener(std::string url, std::vector<std::string> channels, Handler handler,
                       std::function<void()> on_listening = {});
  ~NotificationListener();
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

}  // namespace tessera::store
