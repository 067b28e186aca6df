#include "services/auth/client_channel.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/auth/tls.h"

namespace tessera::auth {
namespace {

class ApiKeyInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit ApiKeyInterceptor(const std::string& header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  const std::string& header_;
};

class ApiKeyInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit ApiKeyInterceptorFactory(const std::string& api_key) : header_("Bearer " + api_key) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(grpc::experimental::ClientRpcInfo*) override {
    return new ApiKeyInterceptor(header_);
  }

 private:
  const std::string header_;  // outlives every interceptor: the channel owns the factory
};

}  // namespace

std::shared_ptr<grpc::Channel> AuthenticatedChannel(const std::string& target, const std::string& api_key,
                                                    std::shared_ptr<grpc::ChannelCredentials> credentials,
                                                    const grpc::ChannelArguments& args) {
  if (credentials == nullptr) credentials = grpc::InsecureChannelCredentials();
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!api_key.empty()) interceptors.push_back(std::make_unique<ApiKeyInterceptorFactory>(api_key));
  return grpc::experimental::CreateCustomChannelWithInterceptors(target, credentials, args, std::move(interceptors));
}

absl::Status ValidateApiKeyText(absl::string_view key, absl::string_view source) {
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat(source, " is empty"));
  if (key.size() > kMaxApiKeyBytes) {
    return absl::InvalidArgumentError(absl::StrCat(source, " holds ", key.size(), " bytes; an API key is at most ", kMaxApiKeyBytes));
  }
  for (size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c == '\n' || c == '\r') {
      return absl::InvalidArgumentError(absl::StrCat(source, " holds more than one line; it must hold exactly one API key (tsk_…)"));
    }
    // gRPC aborts on a header value outside visible ASCII, so nothing else may reach the channel.
    if (c < 0x21 || c > 0x7e) {
      return absl::InvalidArgumentError(absl::StrCat(source, " holds a character that cannot be in an API key (byte 0x",
                                                     absl::Hex(c, absl::kZeroPad2), " at offset ", i, ")"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReadApiKeyFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> text = ReadFileText(path);
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("cannot read the API key file: ", text.status().message()));
  std::string key(absl::StripAsciiWhitespace(*text));
  if (absl::Status s = ValidateApiKeyText(key, absl::StrCat("the API key file ", path.string())); !s.ok()) return s;
  return key;
}

absl::Status WriteSecretFile(const std::filesystem::path& path, const std::string& secret) {
  const std::string temp = path.string() + ".tmp";
  const int fd = ::open(temp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) return absl::InternalError(absl::StrCat("cannot create ", temp, ": ", std::strerror(errno)));
  const std::string line = secret + "\n";
  const bool written = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) && ::fsync(fd) == 0;
  ::close(fd);
  if (!written || ::rename(temp.c_str(), path.c_str()) != 0) {
    ::unlink(temp.c_str());
    return absl::InternalError(absl::StrCat("cannot write ", path.string(), ": ", std::strerror(errno)));
  }
  return absl::OkStatus();
}

}  // namespace tessera::auth
