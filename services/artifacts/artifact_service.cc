#include "services/artifacts/artifact_service.h"

#include "absl/strings/str_cat.h"
#include "services/auth/access_policy.h"
#include "services/common/grpc_status.h"

namespace tessera::artifacts {
namespace {

// The account a call acts for: a customer's own (naming another is PERMISSION_DENIED, naming none
// means its own); an admin must name one.
absl::StatusOr<std::string> ActingAccount(const auth::Caller& caller, const std::string& requested, absl::string_view field) {
  absl::StatusOr<std::string> account = auth::ScopeAccountFilter(caller, field, requested);
  if (!account.ok()) return account.status();
  if (account->empty()) return absl::InvalidArgumentError(absl::StrCat(field, ": required (the customer account whose artifacts)"));
  return account;
}

// The repository names the upload's fields bare ("size_bytes: …"); on the wire they are the
// header's, but for a digest that came in the stream's last message.
absl::Status InHeader(const absl::Status& status, bool digest_trailing = false) {
  if (status.code() != absl::StatusCode::kInvalidArgument || FieldNamedBy(status.message()).empty()) return status;
  if (digest_trailing && FieldNamedBy(status.message()) == "digest") return status;
  return absl::InvalidArgumentError(absl::StrCat("header.", status.message()));
}

constexpr auto kCheckpointGrace = std::chrono::seconds(120);

}  // namespace

grpc::Status ArtifactServiceImpl::UploadArtifact(grpc::ServerContext* context, grpc::ServerReader<v1::UploadArtifactRequest>* reader,
                                                 v1::Artifact* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/UploadArtifact");
  v1::UploadArtifactRequest request;
  if (!reader->Read(&request)) return InvalidArgumentStatus("header: the stream ended before its header");
  if (!request.has_header()) return InvalidArgumentStatus("header: the first message must be the header, not a chunk");
  // A copy: the chunks are read into `request` below, which destroys the header it held.
  const v1::UploadArtifactHeader header = request.header();
  v1::ArtifactKind kind = header.kind() == v1::ARTIFACT_KIND_UNSPECIFIED ? v1::ARTIFACT_KIND_FILE : header.kind();
  absl::StatusOr<std::string> account;
  int64_t job_id = 0;
  uint32_t attempt = 0;
  if (caller->role == v1::ROLE_PROVIDER) {
    // A worker writes a job's outputs or checkpoint, for the job's customer, under its lease.
    if (kind != v1::ARTIFACT_KIND_OUTPUTS && kind != v1::ARTIFACT_KIND_CHECKPOINT) {
      return InvalidArgumentStatus("header.kind: a worker uploads OUTPUTS or CHECKPOINT");
    }
    // A stopped program saves its checkpoint in its grace period, after its lease ended.
    const auto grace = kind == v1::ARTIFACT_KIND_CHECKPOINT ? kCheckpointGrace : std::chrono::seconds(0);
    absl::StatusOr<LeasedJob> job = artifacts_.LeasedBy(caller->account_id, header.lease(), grace);
    if (!job.ok()) return ToGrpcStatus(job.status());
    account = job->account;
    job_id = header.lease().job_id();
    attempt = header.lease().attempt();
  } else {
    if (header.has_lease()) return InvalidArgumentStatus("header.lease: only a worker's key names a lease");
    account = ActingAccount(*caller, header.account(), "header.account");
    if (!account.ok()) return ToGrpcStatus(account.status());
    if (kind != v1::ARTIFACT_KIND_FILE && kind != v1::ARTIFACT_KIND_BUNDLE) {
      return InvalidArgumentStatus(absl::StrCat("header.kind: ", v1::ArtifactKind_Name(kind),
                                                " artifacts are written by the workers that run a job; upload FILE or BUNDLE"));
    }
  }
  for (char c : header.name()) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) return InvalidArgumentStatus("header.name: no control characters");
  }
  NewArtifact artifact{.account = *account, .digest = header.digest(), .size_bytes = header.size_bytes(),
                       .name = header.name(), .kind = kind, .job_id = job_id, .attempt = attempt};
  // Before a byte is read: the limits and the quota.
  if (absl::Status admitted = artifacts_.Admit(artifact); !admitted.ok()) return ToGrpcStatus(InHeader(admitted));
  absl::StatusOr<std::unique_ptr<BlobWriter>> writer = blobs_.Create();
  if (!writer.ok()) return ToGrpcStatus(writer.status());
  std::string trailing_digest;
  while (reader->Read(&request)) {
    if (!trailing_digest.empty()) return InvalidArgumentStatus("digest: the digest message must be the stream's last");
    if (request.has_header()) return InvalidArgumentStatus("header: only the first message is a header");
    if (request.part_case() == v1::UploadArtifactRequest::kDigest) {
      if (!header.digest().empty()) return InvalidArgumentStatus("digest: stated in the header already; state it once");
      if (request.digest().empty()) return InvalidArgumentStatus("digest: empty; expected sha256: and 64 hex digits");
      trailing_digest = request.digest();
      continue;
    }
    if (request.chunk().size() > kMaxArtifactChunkBytes) {
      return InvalidArgumentStatus(absl::StrCat("chunk: ", request.chunk().size(), " bytes; at most ", kMaxArtifactChunkBytes, " a message"));
    }
    if ((*writer)->size() + request.chunk().size() > static_cast<uint64_t>(header.size_bytes())) {
      return InvalidArgumentStatus(absl::StrCat("header.size_bytes: the upload stated ", header.size_bytes(),
                                                " bytes but sent more; nothing was stored"));
    }
    if (absl::Status s = (*writer)->Append(request.chunk()); !s.ok()) return ToGrpcStatus(s);
  }
  // A client that went away mid-stream also ends the reads: its bytes are not an upload.
  if (context->IsCancelled()) return grpc::Status(grpc::StatusCode::CANCELLED, "the upload was cancelled; nothing was stored");
  if (header.digest().empty()) {
    if (trailing_digest.empty()) {
      return InvalidArgumentStatus("digest: the upload stated no SHA-256, in its header or its last message; nothing was stored");
    }
    artifact.digest = trailing_digest;
  }
  absl::StatusOr<v1::Artifact> recorded = artifacts_.Record(artifact, **writer, caller->key_id);
  if (!recorded.ok()) return ToGrpcStatus(InHeader(recorded.status(), !trailing_digest.empty()));
  *response = *std::move(recorded);
  return grpc::Status::OK;
}

grpc::Status ArtifactServiceImpl::DownloadArtifact(grpc::ServerContext* context, const v1::DownloadArtifactRequest* request,
                                                   grpc::ServerWriter<v1::DownloadArtifactResponse>* writer) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/DownloadArtifact");
  absl::StatusOr<std::string> account;
  if (caller->role == v1::ROLE_PROVIDER) {
    // A worker reads what the job it holds a lease on names, and that job's checkpoints.
    absl::StatusOr<LeasedJob> job = artifacts_.LeasedBy(caller->account_id, request->lease());
    if (!job.ok()) return ToGrpcStatus(job.status());
    absl::StatusOr<bool> may = artifacts_.JobMayRead(job->account, request->lease().job_id(), job->spec, request->digest());
    if (!may.ok()) return ToGrpcStatus(may.status());
    if (!*may) {
      return ToGrpcStatus(absl::PermissionDeniedError(
          absl::StrCat("job ", request->lease().job_id(), " names no artifact ", request->digest(), " (its inputs, code, checkpoints)")));
    }
    account = job->account;
  } else {
    if (request->has_lease()) return InvalidArgumentStatus("lease: only a worker's key names a lease");
    account = ActingAccount(*caller, request->account(), "account");
    if (!account.ok()) return ToGrpcStatus(account.status());
  }
  absl::StatusOr<v1::Artifact> artifact = artifacts_.Get(*account, request->digest());
  if (!artifact.ok()) return ToGrpcStatus(artifact.status());
  if (request->offset() < 0 || request->offset() > artifact->size_bytes()) {
    return ToGrpcStatus(absl::OutOfRangeError(
        absl::StrCat("offset: ", request->offset(), " is outside the artifact's 0..", artifact->size_bytes(), " bytes")));
  }
  absl::StatusOr<std::unique_ptr<BlobReader>> blob = blobs_.Open(artifact->digest(), static_cast<uint64_t>(request->offset()));
  if (!blob.ok()) {
    // Recorded but unreadable: the store lost it, which is the server's fault, not the caller's.
    return ToGrpcStatus(absl::DataLossError(absl::StrCat("artifact ", artifact->digest(), " cannot be read: ", blob.status().message())));
  }
  v1::DownloadArtifactResponse message;
  *message.mutable_artifact() = *artifact;
  int64_t offset = request->offset();
  for (;;) {
    message.set_offset(offset);
    std::string* chunk = message.mutable_chunk();
    chunk->clear();
    absl::StatusOr<size_t> read = (*blob)->Read(kMaxArtifactChunkBytes, *chunk);
    if (!read.ok()) return ToGrpcStatus(read.status());
    const bool first = message.has_artifact();
    if (*read == 0 && !first) break;
    if (!writer->Write(message)) return grpc::Status::OK;  // the client went away
    offset += static_cast<int64_t>(*read);
    message.clear_artifact();
    if (*read == 0) break;
  }
  if (offset != artifact->size_bytes()) {
    return ToGrpcStatus(absl::DataLossError(absl::StrCat("artifact ", artifact->digest(), " ended at byte ", offset, " of ",
                                                         artifact->size_bytes())));
  }
  return grpc::Status::OK;
}

grpc::Status ArtifactServiceImpl::GetArtifact(grpc::ServerContext* context, const v1::GetArtifactRequest* request, v1::Artifact* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/GetArtifact");
  absl::StatusOr<std::string> account = ActingAccount(*caller, request->account(), "account");
  if (!account.ok()) return ToGrpcStatus(account.status());
  return Reply(artifacts_.Get(*account, request->digest()), response);
}

grpc::Status ArtifactServiceImpl::ListArtifacts(grpc::ServerContext* context, const v1::ListArtifactsRequest* request,
                                                v1::ListArtifactsResponse* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/ListArtifacts");
  absl::StatusOr<std::string> account = ActingAccount(*caller, request->account(), "account");
  if (!account.ok()) return ToGrpcStatus(account.status());
  absl::StatusOr<ArtifactPage> page = artifacts_.List(*account, request->page_token(), request->page_size());
  if (!page.ok()) return ToGrpcStatus(page.status());
  absl::StatusOr<int64_t> used = artifacts_.UsedBytes(*account);
  if (!used.ok()) return ToGrpcStatus(used.status());
  for (v1::Artifact& a : page->artifacts) *response->add_artifacts() = std::move(a);
  response->set_next_page_token(page->next_page_token);
  response->set_used_bytes(*used);
  response->set_quota_bytes(artifacts_.limits().account_quota_bytes);
  return grpc::Status::OK;
}

grpc::Status ArtifactServiceImpl::DeleteArtifact(grpc::ServerContext* context, const v1::DeleteArtifactRequest* request,
                                                 v1::DeleteArtifactResponse*) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/DeleteArtifact");
  absl::StatusOr<std::string> account = ActingAccount(*caller, request->account(), "account");
  if (!account.ok()) return ToGrpcStatus(account.status());
  return ToGrpcStatus(artifacts_.Delete(*account, request->digest(), caller->key_id));
}

grpc::Status ArtifactServiceImpl::GetJobCheckpoint(grpc::ServerContext* context, const v1::GetJobCheckpointRequest* request,
                                                   v1::JobCheckpoint* response) {
  TESSERA_AUTHORIZE(auth_, context, caller, "tessera.v1.ArtifactService/GetJobCheckpoint");
  int64_t job_id = request->job_id();
  if (caller->role == v1::ROLE_PROVIDER) {
    absl::StatusOr<LeasedJob> job = artifacts_.LeasedBy(caller->account_id, request->lease());
    if (!job.ok()) return ToGrpcStatus(job.status());
    job_id = request->lease().job_id();
  } else {
    if (request->has_lease()) return InvalidArgumentStatus("lease: only a worker's key names a lease");
    if (job_id <= 0) return InvalidArgumentStatus(absl::StrCat("job_id: a job's id (1 or more), got ", job_id));
  }
  absl::StatusOr<JobCheckpoint> latest = artifacts_.LatestCheckpoint(job_id);
  if (latest.ok() && caller->role != v1::ROLE_PROVIDER && !auth::MaySee(*caller, latest->account)) {
    latest = absl::NotFoundError(absl::StrCat("job ", job_id, " not found"));
  }
  if (!latest.ok()) return ToGrpcStatus(latest.status());
  if (!latest->checkpoint) return ToGrpcStatus(absl::NotFoundError(absl::StrCat("job ", job_id, " has saved no checkpoint")));
  *response = *std::move(latest->checkpoint);
  return grpc::Status::OK;
}

}  // namespace tessera::artifacts
