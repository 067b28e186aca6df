// Where a process hears what others notify it of (notifications.h), as an interface: PostgreSQL's
// LISTEN in the product (PostgresNotifications, notification_listener.h), an in-memory bus in the
// simulation. A subscription delivers each notification to its handler, and calls `on_listening`
// whenever it (re)starts listening: what was notified before then reached no one, so the consumer
// re-reads what it follows from the store of record.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace tessera::store {

// Listening while it lives; destroying it stops the deliveries.
class NotificationSubscription {
 public:
  virtual ~NotificationSubscription() = default;
};

class NotificationSource {
 public:
  using Handler = std::function<void(const std::string& channel, const std::string& payload)>;
  virtual ~NotificationSource() = default;
  virtual std::unique_ptr<NotificationSubscription> Listen(std::vector<std::string> channels, Handler handler,
                                                           std::function<void()> on_listening) = 0;
};

}  // namespace tessera::store
