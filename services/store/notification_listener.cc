#include "services/store/notification_listener.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <memory>
#include <pqxx/pqxx>

namespace tessera::store {
namespace {

class Receiver final : public pqxx::notification_receiver {
 public:
  Receiver(pqxx::connection_base& conn, const std::string& channel, const NotificationListener::Handler& handler)
      : pqxx::notification_receiver(conn, channel), handler_(handler) {}
  void operator()(const std::string& payload, int) override { handler_(channel(), payload); }

 private:
  const NotificationListener::Handler& handler_;
};

}  // namespace

NotificationListener::NotificationListener(std::string url, std::vector<std::string> channels, Handler handler,
                                           std::function<void()> on_listening)
    : url_(std::move(url)),
      channels_(std::move(channels)),
      handler_(std::move(handler)),
      on_listening_(std::move(on_listening)),
      thread_([this] { Run(); }) {}

NotificationListener::~NotificationListener() {
  stopping_ = true;
  thread_.join();
}

void NotificationListener::Run() {
  while (!stopping_) {
    try {
      pqxx::connection conn(url_);
      std::vector<std::unique_ptr<Receiver>> receivers;
      for (const std::string& channel : channels_) receivers.push_back(std::make_unique<Receiver>(conn, channel, handler_));
      // Each receiver's LISTEN has been executed: from here on every commit's NOTIFY is heard.
      if (on_listening_) on_listening_();
      while (!stopping_) conn.await_notification(0, 200'000);
    } catch (const std::exception& e) {
      if (stopping_) break;
      spdlog::warn("notification listener: {}; reconnecting", e.what());
      std::this_thread::sleep_for(std::chrono::milliseconds(500));
    }
  }
}

}  // namespace tessera::store
