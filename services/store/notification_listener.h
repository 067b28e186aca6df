// Listens for PostgreSQL NOTIFY on a dedicated connection and hands each payload to a callback on
// the listener's own thread. Reconnects after a lost connection (a notification sent meanwhile is
// lost, so consumers also poll on a timer).
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

  NotificationListener(std::string url, std::vector<std::string> channels, Handler handler);
  ~NotificationListener();
  NotificationListener(const NotificationListener&) = delete;
  NotificationListener& operator=(const NotificationListener&) = delete;

 private:
  void Run();

  const std::string url_;
  const std::vector<std::string> channels_;
  const Handler handler_;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
};

}  // namespace tessera::store
