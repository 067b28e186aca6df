// The default BlobStore: files under a directory (the server's data dir). A blob is
// `<root>/sha256/<first two hex digits>/<the other 62>`; an upload is written to a temporary file
// under `<root>/tmp`, fsync'ed, renamed into place and its directory fsync'ed, so a blob is either
// whole and durable or absent, whatever crashes when. Leftover temporary files (a crash mid-upload)
// are removed when the store is opened.
#pragma once

#include <filesystem>
#include <memory>

#include "services/artifacts/blob_store.h"

namespace tessera::artifacts {

class FileBlobStore final : public BlobStore {
 public:
  // Creates `root` and its subdirectories when missing.
  static absl::StatusOr<std::unique_ptr<FileBlobStore>> Open(const std::filesystem::path& root);

  absl::StatusOr<std::unique_ptr<BlobWriter>> Create() override;
  absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view digest, uint64_t offset) override;
  absl::StatusOr<bool> Exists(std::string_view digest) override;
  absl::Status Remove(std::string_view digest) override;

  // Where the blob of a canonical digest lives.
  std::filesystem::path PathOf(std::string_view canonical_digest) const;

 private:
  explicit FileBlobStore(std::filesystem::path root) : root_(std::move(root)) {}
  const std::filesystem::path root_;
};

}  // namespace tessera::artifacts
