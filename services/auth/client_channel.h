// The client side of authentication: a channel that sends an API key with every call (a client
// interceptor adds "authorization: Bearer <key>" metadata), and the one way to read a key file.
// The CLI, the worker agent, the load generator and the tests all connect through it.
//
//   std::shared_ptr<grpc::Channel> ch = AuthenticatedChannel("127.0.0.1:7070", key);
#pragma once

#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace tessera::auth {

// `api_key` empty: no key is sent (the server answers UNAUTHENTICATED). `credentials` defaults to
// plaintext; pass grpc::SslCredentials(…) for a TLS server.
std::shared_ptr<grpc::Channel> AuthenticatedChannel(const std::string& target, const std::string& api_key,
                                                    std::shared_ptr<grpc::ChannelCredentials> credentials = nullptr,
                                                    const grpc::ChannelArguments& args = {});

inline constexpr size_t kMaxApiKeyBytes = 256;

// OK iff `key` can travel as an API key: one line of visible ASCII, at most kMaxApiKeyBytes. Every
// key from a flag, an environment variable or a file is checked before a channel carries it (gRPC
// aborts the process on an illegal header value). `source` names where it came from, for the error.
absl::Status ValidateApiKeyText(absl::string_view key, absl::string_view source);

// The key in `path`, surrounding white space removed and validated. NOT_FOUND / INVALID_ARGUMENT
// name the file.
absl::StatusOr<std::string> ReadApiKeyFile(const std::filesystem::path& path);

// Writes a key (or any secret) to `path` readable by its owner only (0600), atomically.
absl::Status WriteSecretFile(const std::filesystem::path& path, const std::string& secret);

}  // namespace tessera::auth
