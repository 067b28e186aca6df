#include "services/server/reflection_v1_service.h"

#include <google/protobuf/descriptor.h>
#include <google/protobuf/descriptor.pb.h>
#include <grpcpp/impl/server_builder_option.h>
#include <grpcpp/impl/server_builder_plugin.h>
#include <grpcpp/impl/server_initializer.h>

#include <memory>
#include <set>

#include "absl/strings/str_cat.h"

namespace tessera::server {
namespace {

namespace reflection_v1 = grpc::reflection::v1;
using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;

// Appends `file` and, depth first, every file it imports, each once: the client builds a pool of
// its own from the answer, and a file whose imports are missing cannot be built.
void AddFileWithImports(const FileDescriptor* file, std::set<std::string>& seen, reflection_v1::FileDescriptorResponse& out) {
  if (!seen.insert(file->name()).second) return;
  google::protobuf::FileDescriptorProto proto;
  file->CopyTo(&proto);
  out.add_file_descriptor_proto(proto.SerializeAsString());
  for (int i = 0; i < file->dependency_count(); ++i) AddFileWithImports(file->dependency(i), seen, out);
}

grpc::Status NotFound(const char* what, const std::string& name) {
  return grpc::Status(grpc::StatusCode::NOT_FOUND, absl::StrCat(what, " '", name, "' not found"));
}

// The file a file_by_filename, file_containing_symbol or file_containing_extension request asks for.
grpc::Status FindFile(const reflection_v1::ServerReflectionRequest& request, const DescriptorPool& pool,
                      const FileDescriptor*& file) {
  using Case = reflection_v1::ServerReflectionRequest::MessageRequestCase;
  if (request.message_request_case() == Case::kFileByFilename) {
    file = pool.FindFileByName(request.file_by_filename());
    return file != nullptr ? grpc::Status::OK : NotFound("file", request.file_by_filename());
  }
  if (request.message_request_case() == Case::kFileContainingSymbol) {
    file = pool.FindFileContainingSymbol(request.file_containing_symbol());
    return file != nullptr ? grpc::Status::OK : NotFound("symbol", request.file_containing_symbol());
  }
  const reflection_v1::ExtensionRequest& extension = request.file_containing_extension();
  const google::protobuf::Descriptor* type = pool.FindMessageTypeByName(extension.containing_type());
  if (type == nullptr) return NotFound("type", extension.containing_type());
  const google::protobuf::FieldDescriptor* field = pool.FindExtensionByNumber(type, extension.extension_number());
  if (field == nullptr)
    return NotFound("extension", absl::StrCat(extension.containing_type(), "/", extension.extension_number()));
  file = field->file();
  return grpc::Status::OK;
}

grpc::Status ExtensionNumbers(const std::string& type_name, const DescriptorPool& pool,
                              reflection_v1::ExtensionNumberResponse& out) {
  const google::protobuf::Descriptor* type = pool.FindMessageTypeByName(type_name);
  if (type == nullptr) return NotFound("type", type_name);
  std::vector<const google::protobuf::FieldDescriptor*> extensions;
  pool.FindAllExtensions(type, &extensions);
  out.set_base_type_name(type->full_name());
  for (const google::protobuf::FieldDescriptor* extension : extensions) out.add_extension_number(extension->number());
  return grpc::Status::OK;
}

// One request's answer, always a response: a failure is error_response, and the stream goes on.
reflection_v1::ServerReflectionResponse Answer(const reflection_v1::ServerReflectionRequest& request,
                                               const std::vector<std::string>* services) {
  using Case = reflection_v1::ServerReflectionRequest::MessageRequestCase;
  const DescriptorPool& pool = *DescriptorPool::generated_pool();
  reflection_v1::ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  grpc::Status status;
  switch (request.message_request_case()) {
    case Case::kFileByFilename:
    case Case::kFileContainingSymbol:
    case Case::kFileContainingExtension: {
      const FileDescriptor* file = nullptr;
      status = FindFile(request, pool, file);
      std::set<std::string> seen;
      if (status.ok()) AddFileWithImports(file, seen, *response.mutable_file_descriptor_response());
      break;
    }
    case Case::kAllExtensionNumbersOfType:
      status =
          ExtensionNumbers(request.all_extension_numbers_of_type(), pool, *response.mutable_all_extension_numbers_response());
      break;
    case Case::kListServices:
      if (services == nullptr) {
        status = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the server is still starting");
        break;
      }
      for (const std::string& name : *services) response.mutable_list_services_response()->add_service()->set_name(name);
      break;
    default:
      status = grpc::Status(grpc::StatusCode::UNIMPLEMENTED, "the request sets no message_request this server knows");
  }
  if (!status.ok()) {
    response.mutable_error_response()->set_error_code(status.error_code());
    response.mutable_error_response()->set_error_message(status.error_message());
  }
  return response;
}

// Adds one plugin to one builder (no global plugin registry, unlike gRPC's reflection plugin).
class AddPluginOption final : public grpc::ServerBuilderOption {
 public:
  explicit AddPluginOption(std::unique_ptr<grpc::ServerBuilderPlugin> plugin) : plugin_(std::move(plugin)) {}
  void UpdateArguments(grpc::ChannelArguments*) override {}
  void UpdatePlugins(std::vector<std::unique_ptr<grpc::ServerBuilderPlugin>>* plugins) override {
    if (plugin_ != nullptr) plugins->push_back(std::move(plugin_));
  }

 private:
  std::unique_ptr<grpc::ServerBuilderPlugin> plugin_;
};

}  // namespace

// Hands the service the server's own record of what it hosts once it has started (its health
// service registers only then), as gRPC's reflection plugin does: a list kept by hand would drift.
class ReflectionV1Service::ServiceListPlugin final : public grpc::ServerBuilderPlugin {
 public:
  explicit ServiceListPlugin(ReflectionV1Service& service) : service_(service) {}
  std::string name() override { return "tessera_reflection_v1_service_list"; }
  void InitServer(grpc::ServerInitializer*) override {}
  void Finish(grpc::ServerInitializer* initializer) override { service_.services_.store(initializer->GetServiceList()); }
  void ChangeArguments(const std::string&, void*) override {}

 private:
  ReflectionV1Service& service_;
};

// Answers each request as it arrives, one write at a time; holds no thread while the client is idle.
class ReflectionV1Service::Stream final
    : public grpc::ServerBidiReactor<reflection_v1::ServerReflectionRequest, reflection_v1::ServerReflectionResponse> {
 public:
  explicit Stream(const ReflectionV1Service& service) : service_(service) { StartRead(&request_); }

  void OnReadDone(bool ok) override {
    if (!ok) {  // the client has half-closed (or is gone): nothing more to answer
      Finish(grpc::Status::OK);
      return;
    }
    response_ = Answer(request_, service_.services_.load());
    StartWrite(&response_);
  }
  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    StartRead(&request_);
  }
  void OnDone() override { delete this; }

 private:
  const ReflectionV1Service& service_;
  reflection_v1::ServerReflectionRequest request_;
  reflection_v1::ServerReflectionResponse response_;
};

void ReflectionV1Service::RegisterWith(grpc::ServerBuilder& builder) {
  builder.RegisterService(this);
  builder.SetOption(std::make_unique<AddPluginOption>(std::make_unique<ServiceListPlugin>(*this)));
}

grpc::ServerBidiReactor<reflection_v1::ServerReflectionRequest, reflection_v1::ServerReflectionResponse>*
ReflectionV1Service::ServerReflectionInfo(grpc::CallbackServerContext*) {
  return new Stream(*this);
}

}  // namespace tessera::server
