#include "services/auth/tls.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace tessera::auth {

absl::StatusOr<std::string> ReadFileText(const std::filesystem::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path.string(), ": ", std::strerror(errno)));
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentials(const ServerTlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  if (files.cert.empty()) {
    if (!files.client_ca.empty()) return absl::InvalidArgumentError("mutual TLS (a client CA) needs --tls-cert and --tls-key");
    return grpc::InsecureServerCredentials();
  }
  absl::StatusOr<std::string> cert = ReadFileText(files.cert);
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFileText(files.key);
  if (!key.ok()) return key.status();
  grpc::SslServerCredentialsOptions options(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  options.pem_key_cert_pairs.push_back({.private_key = *key, .cert_chain = *cert});
  if (!files.client_ca.empty()) {
    absl::StatusOr<std::string> ca = ReadFileText(files.client_ca);
    if (!ca.ok()) return ca.status();
    options.pem_root_certs = *ca;
    options.client_certificate_request = GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> ClientCredentials(const ClientTlsFiles& files) {
  if (files.cert.empty() != files.key.empty()) return absl::InvalidArgumentError("a client certificate and its key go together");
  if (files.ca.empty()) {
    if (!files.cert.empty()) return absl::InvalidArgumentError("a client certificate needs TLS: give the server's CA too");
    return grpc::InsecureChannelCredentials();
  }
  grpc::SslCredentialsOptions options;
  absl::StatusOr<std::string> ca = ReadFileText(files.ca);
  if (!ca.ok()) return ca.status();
  options.pem_root_certs = *ca;
  if (!files.cert.empty()) {
    absl::StatusOr<std::string> cert = ReadFileText(files.cert);
    if (!cert.ok()) return cert.status();
    absl::StatusOr<std::string> key = ReadFileText(files.key);
    if (!key.ok()) return key.status();
    options.pem_cert_chain = *cert;
    options.pem_private_key = *key;
  }
  return grpc::SslCredentials(options);
}

}  // namespace tessera::auth
