// The HTTP port Prometheus scrapes (`--metrics-listen`): GET /metrics answers the registry's text
// exposition; nothing else is served there. On its own port, so that it can be firewalled apart
// from the API, as node_exporter's is.
#pragma once

#include <memory>
#include <string>
#include <thread>

#include "absl/status/statusor.h"
#include "services/metrics/metric_registry.h"

namespace httplib {
class Server;
}

namespace tessera::metrics {

class MetricsHttpServer {
 public:
  // Listens on `listen` ("127.0.0.1:9464", "0.0.0.0:9464"; port 0 picks one) and serves in a thread
  // of its own. FAILED_PRECONDITION naming the flag and the address when it cannot listen (the port
  // in use).
  static absl::StatusOr<std::unique_ptr<MetricsHttpServer>> Start(const std::string& listen, const MetricRegistry& registry,
                                                                   const std::string& flag = "--metrics-listen");
  ~MetricsHttpServer();
  int port() const { return port_; }

 private:
  MetricsHttpServer() = default;
  std::unique_ptr<httplib::Server> http_;
  std::thread thread_;
  int port_ = 0;
};

}  // namespace tessera::metrics
