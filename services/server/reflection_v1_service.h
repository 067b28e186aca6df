// grpc.reflection.v1.ServerReflection, next to the system gRPC's v1alpha plugin: current clients
// (grpcurl, Postman, generated tooling) ask for v1 first, and gRPC 1.51 serves only v1alpha. The
// wire format is v1alpha's; the answers come from the generated descriptor pool, as gRPC's own
// (src/cpp/ext/proto_server_reflection.cc): each file with its dependencies, transitively, and
// error_response NOT_FOUND for a name the pool does not know.
//
//   ReflectionV1Service reflection;   // outlives the server
//   reflection.RegisterWith(builder);
//   std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
#pragma once

#include <grpcpp/server_builder.h>

#include <atomic>
#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace tessera::server {

class ReflectionV1Service final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // Registers the service with `builder`; list_services then names every service the built server
  // hosts (health and both reflections included), as the server itself records them.
  void RegisterWith(grpc::ServerBuilder& builder);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest, grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

 private:
  class ServiceListPlugin;
  class Stream;
  // The server's own list, set once it has started; null before (a call may arrive in between).
  std::atomic<const std::vector<std::string>*> services_{nullptr};
};

}  // namespace tessera::server
