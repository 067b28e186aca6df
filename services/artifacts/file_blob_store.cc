#include "services/artifacts/file_blob_store.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <system_error>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/common/sha256.h"

namespace tessera::artifacts {
namespace {


// A failed system call as a status: a full disk is RESOURCE_EXHAUSTED (the caller may retry
// later), anything else INTERNAL.
absl::Status Errno(std::string_view what, const std::filesystem::path& path, int error) {
  const std::string message = absl::StrCat(std::string(what), " ", path.string(), ": ", std::strerror(error));
  if (error == ENOSPC || error == EDQUOT) return absl::ResourceExhaustedError(message);
  return absl::InternalError(message);
}

absl::Status WriteAll(int fd, std::string_view bytes, const std::filesystem::path& path) {
  while (!bytes.empty()) {
    const ssize_t n = ::write(fd, bytes.data(), bytes.size());
    if (n < 0) {
      if (errno == EINTR) continue;
      return Errno("write", path, errno);
    }
    bytes.remove_prefix(static_cast<size_t>(n));
  }
  return absl::OkStatus();
}

// Makes a rename or unlink in `dir` durable.
absl::Status SyncDirectory(const std::filesystem::path& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return Errno("open", dir, errno);
  const int rc = ::fsync(fd);
  const int error = errno;
  ::close(fd);
  return rc == 0 ? absl::OkStatus() : Errno("fsync", dir, error);
}

std::filesystem::path BlobPath(const std::filesystem::path& root, std::string_view canonical_digest) {
  const std::string_view hex = canonical_digest.substr(kDigestPrefix.size());
  return root / "sha256" / std::string(hex.substr(0, 2)) / std::string(hex.substr(2));
}

class FileBlobWriter final : public BlobWriter {
 public:
  // It holds the store's root, not the store: it may outlive it.
  FileBlobWriter(std::filesystem::path root, int fd, std::filesystem::path temp) : root_(std::move(root)), fd_(fd), temp_(std::move(temp)) {
  }
  ~FileBlobWriter() override { Discard(); }

  absl::Status Append(std::string_view bytes) override {
    if (fd_ < 0) return absl::FailedPreconditionError("the upload is already committed or discarded");
    // A failed write may have left part of the chunk in the file: the upload cannot be trusted any
    // more, so it is discarded (the client starts it again).
    if (absl::Status s = WriteAll(fd_, bytes, temp_); !s.ok()) {
      Discard();
      return s;
    }
    hash_.Update(bytes);
    size_ += bytes.size();
    // Starts the disk writing now, in the background, so that Commit's fsync waits for the last
    // few MiB rather than the whole upload (1 GiB left to write back takes most of a second).
    if (size_ - written_back_ >= kWriteBackEvery) {
      ::sync_file_range(fd_, static_cast<off_t>(written_back_), static_cast<off_t>(size_ - written_back_), SYNC_FILE_RANGE_WRITE);
      written_back_ = size_;
    }
    return absl::OkStatus();
  }

  uint64_t size() const override { return size_; }

  absl::Status Commit(uint64_t expected_size, std::string_view expected_digest) override {
    if (fd_ < 0) return absl::FailedPreconditionError("the upload is already committed or discarded");
    absl::StatusOr<std::string> expected = ParseDigest(expected_digest);
    if (!expected.ok()) {
      Discard();
      return expected.status();
    }
    const std::string actual = DigestName(hash_.Finish());
    if (size_ != expected_size) {
      Discard();
      return absl::InvalidArgumentError(absl::StrCat("size_bytes: the upload stated ", expected_size, " bytes but sent ", size_,
                                                     "; nothing was stored"));
    }
    if (actual != *expected) {
      Discard();
      return absl::InvalidArgumentError(absl::StrCat("digest: the upload stated ", *expected, " but its bytes hash to ", actual,
                                                     "; nothing was stored"));
    }
    struct stat st {};
    if (::fstat(fd_, &st) != 0 || static_cast<uint64_t>(st.st_size) != size_) {
      Discard();
      return absl::InternalError(absl::StrCat("upload file ", temp_.string(), " does not hold the ", size_, " bytes written"));
    }
    if (::fsync(fd_) != 0) {
      const int error = errno;
      Discard();
      return Errno("fsync", temp_, error);
    }
    ::close(fd_);
    fd_ = -1;
    const std::filesystem::path target = BlobPath(root_, actual);
    std::error_code ec;
    const bool new_directory = std::filesystem::create_directories(target.parent_path(), ec);
    if (ec) {
      Discard();
      return Errno("mkdir", target.parent_path(), ec.value());
    }
    // A new fan-out directory's own entry must be durable too.
    if (new_directory) {
      if (absl::Status s = SyncDirectory(target.parent_path().parent_path()); !s.ok()) {
        Discard();
        return s;
      }
    }
    // rename() replaces an existing blob of the same digest with the same bytes: deduplicated.
    if (::rename(temp_.c_str(), target.c_str()) != 0) {
      const int error = errno;
      Discard();
      return Errno("rename", target, error);
    }
    temp_.clear();
    // Failing here, the blob is in place but perhaps not durable: the caller records nothing, and
    // an unrecorded blob is only an orphan the collector never sees (the same bytes uploaded again
    // replace it).
    return SyncDirectory(target.parent_path());
  }

 private:
  void Discard() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
    if (!temp_.empty()) ::unlink(temp_.c_str());
    temp_.clear();
  }

  const std::filesystem::path root_;
  int fd_;
  std::filesystem::path temp_;
  static constexpr uint64_t kWriteBackEvery = uint64_t{8} << 20;

  Sha256 hash_;
  uint64_t size_ = 0;
  uint64_t written_back_ = 0;  // bytes whose write-back has been started
};

class FileBlobReader final : public BlobReader {
 public:
  FileBlobReader(int fd, uint64_t size, std::filesystem::path path) : fd_(fd), size_(size), path_(std::move(path)) {}
  ~FileBlobReader() override { ::close(fd_); }

  absl::StatusOr<size_t> Read(size_t max_bytes, std::string& out) override {
    const size_t before = out.size();
    out.resize(before + max_bytes);
    while (true) {
      const ssize_t n = ::read(fd_, out.data() + before, max_bytes);
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) {
        const int error = errno;
        out.resize(before);
        return Errno("read", path_, error);
      }
      out.resize(before + static_cast<size_t>(n));
      return static_cast<size_t>(n);
    }
  }

  uint64_t size() const override { return size_; }

 private:
  const int fd_;
  const uint64_t size_;
  const std::filesystem::path path_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<FileBlobStore>> FileBlobStore::Open(const std::filesystem::path& root) {
  std::error_code ec;
  for (const char* sub : {"sha256", "tmp"}) {
    std::filesystem::create_directories(root / sub, ec);
    if (ec) return Errno("mkdir", root / sub, ec.value());
  }
  // Uploads a crash interrupted: never committed, so nobody refers to them.
  for (std::filesystem::directory_iterator it(root / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    std::filesystem::remove(it->path(), ec);
  }
  if (ec) return Errno("clear", root / "tmp", ec.value());
  return std::unique_ptr<FileBlobStore>(new FileBlobStore(root));
}

std::filesystem::path FileBlobStore::PathOf(std::string_view canonical_digest) const { return BlobPath(root_, canonical_digest); }

absl::StatusOr<std::unique_ptr<BlobWriter>> FileBlobStore::Create() {
  std::string temp = (root_ / "tmp" / "upload-XXXXXX").string();
  const int fd = ::mkostemp(temp.data(), O_CLOEXEC);
  if (fd < 0) return Errno("create", temp, errno);
  return std::make_unique<FileBlobWriter>(root_, fd, temp);
}

absl::StatusOr<std::unique_ptr<BlobReader>> FileBlobStore::Open(std::string_view digest, uint64_t offset) {
  absl::StatusOr<std::string> canonical = ParseDigest(digest);
  if (!canonical.ok()) return canonical.status();
  const std::filesystem::path path = PathOf(*canonical);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    if (errno == ENOENT) return absl::NotFoundError(absl::StrCat("no blob ", *canonical));
    return Errno("open", path, errno);
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    const int error = errno;
    ::close(fd);
    return Errno("stat", path, error);
  }
  const auto size = static_cast<uint64_t>(st.st_size);
  if (offset > size) {
    ::close(fd);
    return absl::OutOfRangeError(absl::StrCat("offset: ", offset, " is past the end of ", *canonical, " (", size, " bytes)"));
  }
  if (::lseek(fd, static_cast<off_t>(offset), SEEK_SET) < 0) {
    const int error = errno;
    ::close(fd);
    return Errno("seek", path, error);
  }
  return std::make_unique<FileBlobReader>(fd, size, path);
}

absl::StatusOr<bool> FileBlobStore::Exists(std::string_view digest) {
  absl::StatusOr<std::string> canonical = ParseDigest(digest);
  if (!canonical.ok()) return canonical.status();
  std::error_code ec;
  const bool exists = std::filesystem::exists(PathOf(*canonical), ec);
  if (ec) return Errno("stat", PathOf(*canonical), ec.value());
  return exists;
}

absl::Status FileBlobStore::Remove(std::string_view digest) {
  absl::StatusOr<std::string> canonical = ParseDigest(digest);
  if (!canonical.ok()) return canonical.status();
  const std::filesystem::path path = PathOf(*canonical);
  if (::unlink(path.c_str()) != 0) {
    if (errno == ENOENT) return absl::OkStatus();
    return Errno("unlink", path, errno);
  }
  return SyncDirectory(path.parent_path());
}

}  // namespace tessera::artifacts
