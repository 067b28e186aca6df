#include "services/worker/artifact_transfer.h"

#include <fstream>

#include "absl/strings/str_cat.h"
#include "services/common/artifact_upload.h"
#include "services/common/sha256.h"

namespace tessera::worker {
namespace {

absl::Status FromGrpc(const grpc::Status& s, std::string_view what) {
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()), absl::StrCat(std::string(what), ": ", s.error_message()));
}

}  // namespace

absl::StatusOr<v1::Artifact> ArtifactTransfer::Download(const v1::JobLease& lease, const std::string& digest,
                                                        const std::filesystem::path& file, const std::atomic<bool>* cancel) {
  absl::StatusOr<std::string> wanted = ParseDigest(digest);
  if (!wanted.ok()) return wanted.status();
  grpc::ClientContext context;
  // A stalled server must not hold the job forever: no input takes longer than this.
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::hours(6));
  v1::DownloadArtifactRequest request;
  request.set_digest(digest);
  *request.mutable_lease() = lease;
  auto reader = stub_->DownloadArtifact(&context, request);
  std::ofstream out(file, std::ios::binary | std::ios::trunc);
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", file.string()));
  Sha256 sha;
  v1::Artifact artifact;
  v1::DownloadArtifactResponse message;
  while (reader->Read(&message)) {
    if (cancel != nullptr && cancel->load()) {
      context.TryCancel();
      reader->Finish();
      return absl::CancelledError("cancelled");
    }
    if (message.has_artifact()) artifact = message.artifact();
    sha.Update(message.chunk());
    out.write(message.chunk().data(), static_cast<std::streamsize>(message.chunk().size()));
  }
  out.close();
  if (grpc::Status s = reader->Finish(); !s.ok()) return FromGrpc(s, absl::StrCat("artifact ", digest));
  if (!out) return absl::InternalError(absl::StrCat("cannot write ", file.string()));
  if (const std::string got = DigestName(sha.Finish()); got != *wanted) {
    return absl::DataLossError(absl::StrCat("artifact ", *wanted, " arrived as ", got));
  }
  return artifact;
}

absl::StatusOr<v1::Artifact> ArtifactTransfer::Upload(const v1::JobLease& lease, const std::filesystem::path& file, v1::ArtifactKind kind,
                                                      const std::string& name) {
  grpc::ClientContext context;
  v1::Artifact artifact;
  v1::UploadArtifactHeader header;
  header.set_name(name);
  header.set_kind(kind);
  *header.mutable_lease() = lease;
  if (grpc::Status s = UploadFile(*stub_, context, std::move(header), file, {}, &artifact); !s.ok()) {
    return FromGrpc(s, absl::StrCat("storing ", name));
  }
  return artifact;
}

absl::StatusOr<std::optional<v1::JobCheckpoint>> ArtifactTransfer::LatestCheckpoint(const v1::JobLease& lease) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::GetJobCheckpointRequest request;
  *request.mutable_lease() = lease;
  v1::JobCheckpoint checkpoint;
  const grpc::Status s = stub_->GetJobCheckpoint(&context, request, &checkpoint);
  if (s.error_code() == grpc::StatusCode::NOT_FOUND) return std::nullopt;
  if (!s.ok()) return FromGrpc(s, absl::StrCat("the checkpoint of job ", lease.job_id()));
  return checkpoint;
}

}  // namespace tessera::worker
