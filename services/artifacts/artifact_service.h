// tessera.v1.ArtifactService: a customer's bytes in and out (issue 18). Uploads stream into a
// BlobWriter and are verified and recorded by the ArtifactRepository when the stream ends;
// downloads stream from a BlobReader from the requested offset. A customer key acts for its own
// account only; an admin names one. (Workers read a job's inputs and write its outputs through the
// lease-checked calls of the container runtime.)
#pragma once

#include "services/artifacts/artifact_repository.h"
#include "services/common/artifact_upload.h"
#include "services/auth/authenticator.h"
#include "tessera/v1/artifacts.grpc.pb.h"

namespace tessera::artifacts {

class ArtifactServiceImpl final : public v1::ArtifactService::Service {
 public:
  ArtifactServiceImpl(ArtifactRepository& artifacts, BlobStore& blobs, auth::Authenticator& auth)
      : artifacts_(artifacts), blobs_(blobs), auth_(auth) {}

  grpc::Status UploadArtifact(grpc::ServerContext*, grpc::ServerReader<v1::UploadArtifactRequest>*, v1::Artifact*) override;
  grpc::Status DownloadArtifact(grpc::ServerContext*, const v1::DownloadArtifactRequest*,
                                grpc::ServerWriter<v1::DownloadArtifactResponse>*) override;
  grpc::Status GetArtifact(grpc::ServerContext*, const v1::GetArtifactRequest*, v1::Artifact*) override;
  grpc::Status ListArtifacts(grpc::ServerContext*, const v1::ListArtifactsRequest*, v1::ListArtifactsResponse*) override;
  grpc::Status DeleteArtifact(grpc::ServerContext*, const v1::DeleteArtifactRequest*, v1::DeleteArtifactResponse*) override;
  grpc::Status GetJobCheckpoint(grpc::ServerContext*, const v1::GetJobCheckpointRequest*, v1::JobCheckpoint*) override;

 private:
  ArtifactRepository& artifacts_;
  BlobStore& blobs_;
  auth::Authenticator& auth_;
};

}  // namespace tessera::artifacts
