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

absl::StatusOr<std::string> ReadApiKeyFile(const std::filesystem::path& path) {
  absl::StatusOr<std::string> text = ReadFileText(path);
  if (!text.ok()) return absl::NotFoundError(absl::StrCat("cannot read the API key file: ", text.status().message()));
  std::string key(absl::StripAsciiWhitespace(*text));
  if (key.empty()) return absl::InvalidArgumentError(absl::StrCat("the API key file ", path.string(), " is empty"));
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
