// A worker's side of the artifact service (issue 18): a job's inputs and code fetched to files, its
// outputs and checkpoints stored, always under the lease the worker holds on that job. Downloads
// are digest-checked before they are kept.
#pragma once

#include <grpcpp/grpcpp.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "tessera/v1/artifacts.grpc.pb.h"

namespace tessera::worker {

class ArtifactTransfer {
 public:
  explicit ArtifactTransfer(std::shared_ptr<grpc::Channel> channel) : stub_(v1::ArtifactService::NewStub(std::move(channel))) {}

  // The artifact's bytes into `file` (replaced); DATA_LOSS when they do not hash to `digest`.
  // CANCELLED soon after `*cancel` turns true.
  absl::StatusOr<v1::Artifact> Download(const v1::JobLease& lease, const std::string& digest, const std::filesystem::path& file,
                                        const std::atomic<bool>* cancel = nullptr);
  // `file` stored as the job's `kind` (OUTPUTS or CHECKPOINT) artifact.
  absl::StatusOr<v1::Artifact> Upload(const v1::JobLease& lease, const std::filesystem::path& file, v1::ArtifactKind kind,
                                      const std::string& name);
  // The job's newest checkpoint; nullopt when it has saved none.
  absl::StatusOr<std::optional<v1::JobCheckpoint>> LatestCheckpoint(const v1::JobLease& lease);

 private:
  std::unique_ptr<v1::ArtifactService::Stub> stub_;
};

}  // namespace tessera::worker
