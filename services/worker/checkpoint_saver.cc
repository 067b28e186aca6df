#include "services/worker/checkpoint_saver.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/bundle.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

// Calls visit(path, relative, stat) for each committed entry below `dir`, parents first; false if
// the tree changed under the walk so that part of it could not be read.
template <typename Visit>
bool WalkCommitted(const fs::path& dir, Visit&& visit) {
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end;
  for (; !ec && it != end; it.increment(ec)) {
    struct stat st {};
    if (::lstat(it->path().c_str(), &st) != 0) continue;  // gone since it was listed: not part of this save
    if (UnfinishedCheckpointName(it->path().filename().string())) {
      if (S_ISDIR(st.st_mode)) it.disable_recursion_pending();
      continue;
    }
    visit(it->path(), it->path().lexically_relative(dir), st);
  }
  return !ec;
}

}  // namespace

bool UnfinishedCheckpointName(const std::string& name) {
  return name.empty() || name[0] == '.' || absl::EndsWith(name, ".tmp") || absl::EndsWith(name, ".part") ||
         absl::EndsWith(name, ".partial");
}

std::string CheckpointSaver::Fingerprint() const {
  std::string fingerprint;
  WalkCommitted(dir_, [&](const fs::path&, const fs::path& relative, const struct stat& st) {
    absl::StrAppend(&fingerprint, relative.string(), "\t", st.st_mode, "\t", st.st_size, "\t", st.st_ino, "\t", st.st_mtim.tv_sec, ".",
                    st.st_mtim.tv_nsec, "\n");
  });
  return fingerprint;
}

void CheckpointSaver::MarkSaved() { saved_ = Fingerprint(); }

absl::StatusOr<std::optional<v1::Artifact>> CheckpointSaver::Save() {
  const std::string fingerprint = Fingerprint();
  if (fingerprint.empty() || fingerprint == saved_) return std::nullopt;
  std::error_code ec;
  fs::remove_all(work_, ec);
  const fs::path tree = work_ / "tree";
  fs::create_directories(tree, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tree.string(), ": ", ec.message()));
  fs::permissions(work_, fs::perms::owner_all, ec);
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{work_};
  // The snapshot: each committed file as it is now (a hard link keeps the content a later rename
  // replaces), directories and links as they are.
  absl::Status failed;
  const bool whole = WalkCommitted(dir_, [&](const fs::path& path, const fs::path& relative, const struct stat& st) {
    if (!failed.ok()) return;
    const fs::path copy = tree / relative;
    std::error_code e;
    if (S_ISDIR(st.st_mode)) {
      fs::create_directories(copy, e);
    } else if (S_ISREG(st.st_mode)) {
      if (::link(path.c_str(), copy.c_str()) != 0 && errno != ENOENT) {
        failed = absl::InternalError(absl::StrCat("cannot snapshot ", relative.string(), ": ", std::strerror(errno)));
      }
    } else if (S_ISLNK(st.st_mode)) {
      const fs::path target = fs::read_symlink(path, e);
      if (!e) fs::create_symlink(target, copy, e);
    } else {
      failed = absl::InvalidArgumentError(absl::StrCat("/job/checkpoints/", relative.string(), ": only files, directories and links are saved"));
    }
    if (e) failed = absl::InternalError(absl::StrCat("cannot snapshot ", relative.string(), ": ", e.message()));
  });
  if (!failed.ok()) return failed;
  if (!whole) return absl::UnavailableError("/job/checkpoints changed while it was read; the next save takes it");
  const fs::path tar = work_ / "checkpoint.tar";
  absl::StatusOr<BundleStats> packed = WriteBundle(tree, tar, max_bytes_);
  if (!packed.ok()) return absl::Status(packed.status().code(), absl::StrCat("/job/checkpoints: ", packed.status().message()));
  absl::StatusOr<v1::Artifact> stored = artifacts_.Upload(lease_, tar, v1::ARTIFACT_KIND_CHECKPOINT, name_);
  if (!stored.ok()) return stored.status();
  saved_ = fingerprint;
  return *std::move(stored);
}

}  // namespace tessera::worker
