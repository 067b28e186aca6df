// TLS for the gRPC ports, from PEM files: the server's certificate and key, and optionally a
// client CA, which makes the port mutual TLS (a client must present a certificate that CA signed,
// or the handshake fails before any call). Clients verify the server against a CA file and may
// present a certificate of their own (the worker agent on an mTLS worker port).
//
//   ServerTlsFiles files{.cert = "server.pem", .key = "server.key", .client_ca = "workers-ca.pem"};
//   absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds = ServerCredentials(files);
#pragma once

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace tessera::auth {

struct ServerTlsFiles {
  std::filesystem::path cert;       // empty: plaintext
  std::filesystem::path key;
  std::filesystem::path client_ca;  // non-empty: require and verify client certificates (mTLS)
};

// Plaintext when `files.cert` is empty; INVALID_ARGUMENT for a half-given pair or a client CA
// without a server certificate; NOT_FOUND for an unreadable file.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const ServerTlsFiles& files);

struct ClientTlsFiles {
  std::filesystem::path ca;    // empty: plaintext
  std::filesystem::path cert;  // the client's own certificate, for an mTLS port
  std::filesystem::path key;
};

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(const ClientTlsFiles& files);

// A whole file, for PEM material.
absl::StatusOr<std::string> ReadFileText(const std::filesystem::path& path);

}  // namespace tessera::auth
