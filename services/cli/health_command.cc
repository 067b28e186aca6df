// `tessera health [--service S]`: the standard grpc.health.v1 check, for probes and scripts; exit 0
// iff SERVING. With --tls-ca (and --tls-server-name when the certificate names another host) it
// checks a TLS port too, which Kubernetes' built-in gRPC probe cannot.
#include <grpcpp/generic/generic_stub.h>

#include <condition_variable>
#include <iostream>
#include <mutex>
#include <optional>

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>
#include <google/protobuf/wire_format_lite.h>

#include "services/cli/commands.h"

namespace tessera::cli {
namespace {

// grpc.health.v1.HealthCheckRequest{service} and the status of a HealthCheckResponse, by hand:
// the messages are two fields, and this binary carries no copy of health.proto.
std::string HealthRequest(const std::string& service) {
  std::string out;
  if (service.empty()) return out;
  google::protobuf::io::StringOutputStream stream(&out);
  google::protobuf::io::CodedOutputStream coded(&stream);
  coded.WriteTag(10);  // field 1, length-delimited
  coded.WriteVarint32(static_cast<uint32_t>(service.size()));
  coded.WriteString(service);
  return out;
}

uint32_t HealthStatus(const std::string& response) {
  google::protobuf::io::CodedInputStream in(reinterpret_cast<const uint8_t*>(response.data()), static_cast<int>(response.size()));
  uint32_t status = 0;  // UNKNOWN
  while (uint32_t tag = in.ReadTag()) {
    if (tag == 8) {
      if (!in.ReadVarint32(&status)) break;
    } else if (!google::protobuf::internal::WireFormatLite::SkipField(&in, tag)) {
      break;
    }
  }
  return status;
}

}  // namespace

void AddHealthCommand(CLI::App& app, CliContext& ctx) {
  auto* health = app.add_subcommand("health", "Ask a server's grpc.health.v1 service; exit 0 iff SERVING");
  auto service = std::make_shared<std::string>();
  health->add_option("--service", *service, "A service's status (e.g. tessera.v1.WorkerService: SERVING only on the leader)");
  health->callback([&ctx, service] {
    const std::string request = HealthRequest(*service);
    grpc::Slice slice(request.data(), request.size());
    grpc::ByteBuffer request_bytes(&slice, 1), response_bytes;
    grpc::GenericStub generic(ctx.Channel());
    auto call = ctx.Call();
    std::mutex mu;
    std::condition_variable cv;
    std::optional<grpc::Status> status;
    generic.UnaryCall(call.get(), "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request_bytes, &response_bytes,
                      [&](grpc::Status s) {
                        std::lock_guard lock(mu);
                        status = s;
                        cv.notify_one();
                      });
    std::unique_lock lock(mu);
    cv.wait(lock, [&] { return status.has_value(); });
    if (!status->ok()) {
      ctx.exit_code = ReportError(*status);
      return;
    }
    std::vector<grpc::Slice> slices;
    (void)response_bytes.Dump(&slices);
    std::string response;
    for (const grpc::Slice& s : slices) response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    const uint32_t serving = HealthStatus(response);
    static const char* const kNames[] = {"UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"};
    std::cout << (serving < 4 ? kNames[serving] : "UNKNOWN") << "\n";
    ctx.exit_code = serving == 1 ? 0 : 1;
  });
}

}  // namespace tessera::cli
