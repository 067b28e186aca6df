// Where artifact bytes live (issue 18): content-addressed blobs, named by the SHA-256 of their
// content. The artifact service keeps metadata and ownership in PostgreSQL and the bytes behind
// this interface: a directory of files by default (FileBlobStore), an S3-compatible bucket later.
//
//   absl::StatusOr<std::unique_ptr<BlobWriter>> w = store.Create();
//   (*w)->Append(chunk);  …                                   // as the upload's chunks arrive
//   absl::Status s = (*w)->Commit(stated_size, "sha256:…");   // verified, then durable; else nothing kept
//   absl::StatusOr<std::unique_ptr<BlobReader>> r = store.Open("sha256:…", resume_offset);
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "services/common/sha256.h"

namespace tessera::artifacts {

// A blob is named by its content's digest: DigestName, DigestOf and ParseDigest (sha256.h).
using tessera::DigestName;
using tessera::DigestOf;
using tessera::ParseDigest;

// One upload in progress. Destroyed without a successful Commit, it leaves nothing behind.
class BlobWriter {
 public:
  virtual ~BlobWriter() = default;
  virtual absl::Status Append(std::string_view bytes) = 0;
  virtual uint64_t size() const = 0;
  // The bytes must be `expected_size` long and hash to `expected_digest` (what the client stated);
  // then they are stored under that digest, durably, before this returns (a blob already stored
  // under it is kept: same digest, same bytes). On a mismatch nothing is stored and the status is
  // INVALID_ARGUMENT naming `size_bytes` or `digest` with both values. A writer commits once.
  virtual absl::Status Commit(uint64_t expected_size, std::string_view expected_digest) = 0;
};

// A stored blob read from an offset on.
class BlobReader {
 public:
  virtual ~BlobReader() = default;
  // Appends up to `max_bytes` to `out`; returns how many (0 at the end).
  virtual absl::StatusOr<size_t> Read(size_t max_bytes, std::string& out) = 0;
  virtual uint64_t size() const = 0;  // the whole blob's
};

class BlobStore {
 public:
  virtual ~BlobStore() = default;
  virtual absl::StatusOr<std::unique_ptr<BlobWriter>> Create() = 0;
  // NOT_FOUND when no blob has that digest; OUT_OF_RANGE when `offset` is past its end.
  virtual absl::StatusOr<std::unique_ptr<BlobReader>> Open(std::string_view digest, uint64_t offset) = 0;
  virtual absl::StatusOr<bool> Exists(std::string_view digest) = 0;
  // Idempotent: removing a blob that is not there is OK.
  virtual absl::Status Remove(std::string_view digest) = 0;
};

}  // namespace tessera::artifacts
