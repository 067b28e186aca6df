#include "services/common/artifact_upload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "services/common/sha256.h"

namespace tessera {
namespace {

// Closes a descriptor when the upload returns, however it returns.
struct Descriptor {
  int fd;
  ~Descriptor() {
    if (fd >= 0) ::close(fd);
  }
};

grpc::Status ReadError(const std::filesystem::path& file, int error) {
  return grpc::Status(error == ENOENT ? grpc::StatusCode::NOT_FOUND : grpc::StatusCode::INTERNAL,
                      absl::StrCat("cannot read ", file.string(), ": ", std::strerror(error)));
}

}  // namespace

grpc::Status UploadFile(v1::ArtifactService::StubInterface& stub, grpc::ClientContext& context, v1::UploadArtifactHeader header,
                        const std::filesystem::path& file, const std::function<void(int64_t)>& on_sent, v1::Artifact* artifact) {
  const Descriptor in{::open(file.c_str(), O_RDONLY | O_CLOEXEC)};
  if (in.fd < 0) return ReadError(file, errno);
  struct stat st {};
  if (::fstat(in.fd, &st) != 0) return ReadError(file, errno);
  // The kernel reads ahead further for a file read start to end.
  ::posix_fadvise(in.fd, 0, 0, POSIX_FADV_SEQUENTIAL);
  header.set_size_bytes(st.st_size);
  header.clear_digest();
  auto writer = stub.UploadArtifact(&context, artifact);
  v1::UploadArtifactRequest request;
  *request.mutable_header() = std::move(header);
  if (!writer->Write(request)) return writer->Finish();  // refused before the bytes (quota, lease): Finish says why
  Sha256 sha;
  std::string* chunk = request.mutable_chunk();
  for (;;) {
    chunk->resize(kMaxArtifactChunkBytes);
    ssize_t n = 0;
    do {
      n = ::read(in.fd, chunk->data(), chunk->size());
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      const int error = errno;
      context.TryCancel();
      writer->Finish();
      return ReadError(file, error);
    }
    if (n == 0) break;
    chunk->resize(static_cast<size_t>(n));
    sha.Update(*chunk);
    if (!writer->Write(request)) return writer->Finish();  // the server ended the call: Finish says why
    if (on_sent) on_sent(n);
  }
  request.set_digest(DigestName(sha.Finish()));
  writer->Write(request);
  writer->WritesDone();
  return writer->Finish();
}

}  // namespace tessera
