// One way to stream a file into ArtifactService.UploadArtifact, for the CLI (`artifact put`) and
// the worker (a job's outputs and checkpoints): the file is read once, hashed as it is sent, and
// its SHA-256 goes in the stream's last message (a trailing digest). Stating it in the header
// instead would read a big file twice, once to hash it and once to send it.
//
//   v1::UploadArtifactHeader header;  header.set_kind(…); …    // no digest: it is computed
//   grpc::Status s = UploadFile(*stub, context, header, file, on_sent, &artifact);
#pragma once

#include <cstdint>
#include <filesystem>
#include <functional>

#include <grpcpp/grpcpp.h>

#include "tessera/v1/artifacts.grpc.pb.h"

namespace tessera {

// The most bytes one artifact message carries, either way.
inline constexpr size_t kMaxArtifactChunkBytes = size_t{1} << 20;

// Sends `file` under `header` (its size_bytes is set from the file; its digest left empty) and
// returns the server's status; `on_sent` (may be empty) hears each chunk's size once it is
// written. A file that cannot be read is NOT_FOUND or INTERNAL before anything is stored.
grpc::Status UploadFile(v1::ArtifactService::StubInterface& stub, grpc::ClientContext& context, v1::UploadArtifactHeader header,
                        const std::filesystem::path& file, const std::function<void(int64_t)>& on_sent, v1::Artifact* artifact);

}  // namespace tessera
