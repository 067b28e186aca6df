#include "services/metrics/metrics_http_server.h"

#include <httplib.h>
#include <sys/socket.h>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace tessera::metrics {

absl::StatusOr<std::unique_ptr<MetricsHttpServer>> MetricsHttpServer::Start(const std::string& listen, const MetricRegistry& registry,
                                                                             const std::string& flag) {
  const size_t colon = listen.rfind(':');
  int port = -1;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(absl::StrCat(flag, ": '", listen, "' is not HOST:PORT"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') host = host.substr(1, host.size() - 2);  // [::1]
  std::unique_ptr<MetricsHttpServer> server(new MetricsHttpServer());
  server->http_ = std::make_unique<httplib::Server>();
  // cpp-httplib's default also sets SO_REUSEPORT, with which a second server would share a port in
  // use (and Prometheus would scrape either at random); SO_REUSEADDR alone still allows a restart.
  server->http_->set_socket_options([](int sock) {
    int yes = 1;
    ::setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
  });
  server->http_->Get("/metrics", [&registry](const httplib::Request&, httplib::Response& response) {
    response.set_content(registry.Exposition(), "text/plain; version=0.0.4; charset=utf-8");
  });
  const int bound = port == 0 ? server->http_->bind_to_any_port(host) : (server->http_->bind_to_port(host, port) ? port : -1);
  if (bound <= 0) {
    return absl::FailedPreconditionError(absl::StrCat(flag, ": cannot listen on ", listen, " (is the port in use, or the address not this machine's?)"));
  }
  server->port_ = bound;
  httplib::Server* http = server->http_.get();
  server->thread_ = std::thread([http] { http->listen_after_bind(); });
  return server;
}

MetricsHttpServer::~MetricsHttpServer() {
  if (http_) http_->stop();
  if (thread_.joinable()) thread_.join();
}

}  // namespace tessera::metrics
