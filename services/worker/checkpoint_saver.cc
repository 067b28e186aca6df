#include "services/worker/checkpoint_saver.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <functional>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "services/common/bundle.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

constexpr int kMaxDepth = 64;
constexpr int64_t kMaxEntries = 100'000;

struct Fd {
  int fd = -1;
  explicit Fd(int f) : fd(f) {}
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  ~Fd() {
    if (fd >= 0) ::close(fd);
  }
};

// An entry of a directory the job controls, as found by name under an open descriptor of it: every
// step opens a name below a descriptor already held, with O_NOFOLLOW, so a program that swaps a
// directory for a link while the agent walks can never lead it outside /job/checkpoints.
struct Entry {
  std::string relative;
  struct stat st {};
};

// The names in the directory `dir_fd` (sorted; "." and ".." left out).
std::vector<std::string> Names(int dir_fd) {
  std::vector<std::string> names;
  const int copy = ::dup(dir_fd);
  if (copy < 0) return names;
  DIR* d = ::fdopendir(copy);
  if (d == nullptr) {
    ::close(copy);
    return names;
  }
  while (const dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (name != "." && name != "..") names.push_back(name);
  }
  ::closedir(d);
  std::sort(names.begin(), names.end());
  return names;
}

// Calls visit(dir_fd, name, entry) for every committed entry below the open directory `dir_fd`,
// parents first; visit returns an error to stop. Bounded in depth and entries.
absl::Status Walk(int dir_fd, const std::string& prefix, int depth, int64_t& entries,
                  const std::function<absl::Status(int, const std::string&, const Entry&)>& visit) {
  if (depth > kMaxDepth) return absl::ResourceExhaustedError(absl::StrCat("/job/checkpoints is deeper than ", kMaxDepth, " levels"));
  for (const std::string& name : Names(dir_fd)) {
    if (UnfinishedCheckpointName(name)) continue;
    if (++entries > kMaxEntries) return absl::ResourceExhaustedError(absl::StrCat("/job/checkpoints holds more than ", kMaxEntries, " entries"));
    Entry entry;
    entry.relative = prefix.empty() ? name : prefix + "/" + name;
    if (::fstatat(dir_fd, name.c_str(), &entry.st, AT_SYMLINK_NOFOLLOW) != 0) continue;  // gone since it was listed
    if (absl::Status s = visit(dir_fd, name, entry); !s.ok()) return s;
    if (S_ISDIR(entry.st.st_mode)) {
      Fd sub(::openat(dir_fd, name.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
      if (sub.fd < 0) continue;  // replaced by something else since: not part of this save
      if (absl::Status s = Walk(sub.fd, entry.relative, depth + 1, entries, visit); !s.ok()) return s;
    }
  }
  return absl::OkStatus();
}

absl::Status WalkCommitted(const fs::path& dir, const std::function<absl::Status(int, const std::string&, const Entry&)>& visit) {
  Fd root(::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (root.fd < 0) return absl::InternalError(absl::StrCat("cannot open ", dir.string(), ": ", std::strerror(errno)));
  int64_t entries = 0;
  return Walk(root.fd, "", 0, entries, visit);
}

// The regular file `name` under `dir_fd` copied to `to`; false when it is no longer a regular file.
absl::StatusOr<bool> CopyFile(int dir_fd, const std::string& name, const fs::path& to, int64_t& budget) {
  Fd in(::openat(dir_fd, name.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC));
  if (in.fd < 0) return false;
  struct stat st {};
  if (::fstat(in.fd, &st) != 0 || !S_ISREG(st.st_mode)) return false;
  Fd out(::open(to.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, (st.st_mode & 0111) != 0 ? 0700 : 0600));
  if (out.fd < 0) return absl::InternalError(absl::StrCat("cannot write ", to.string(), ": ", std::strerror(errno)));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(in.fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return absl::InternalError(absl::StrCat("cannot read ", name, ": ", std::strerror(errno)));
    if (n == 0) return true;
    budget -= n;
    if (budget < 0) return absl::ResourceExhaustedError("/job/checkpoints holds more bytes than a checkpoint may");
    for (ssize_t done = 0; done < n;) {
      const ssize_t w = ::write(out.fd, buffer + done, static_cast<size_t>(n - done));
      if (w < 0 && errno == EINTR) continue;
      if (w < 0) return absl::InternalError(absl::StrCat("cannot write ", to.string(), ": ", std::strerror(errno)));
      done += w;
    }
  }
}

}  // namespace

bool UnfinishedCheckpointName(const std::string& name) {
  return name.empty() || name[0] == '.' || absl::EndsWith(name, ".tmp") || absl::EndsWith(name, ".part") ||
         absl::EndsWith(name, ".partial");
}

absl::StatusOr<std::string> CheckpointSaver::Fingerprint() const {
  std::string fingerprint;
  absl::Status walked = WalkCommitted(dir_, [&](int, const std::string&, const Entry& e) {
    absl::StrAppend(&fingerprint, e.relative, "\t", e.st.st_mode, "\t", e.st.st_size, "\t", e.st.st_ino, "\t", e.st.st_mtim.tv_sec, ".",
                    e.st.st_mtim.tv_nsec, "\n");
    return absl::OkStatus();
  });
  if (!walked.ok()) return walked;
  return fingerprint;
}

void CheckpointSaver::MarkSaved() {
  absl::StatusOr<std::string> now = Fingerprint();
  if (now.ok()) saved_ = *std::move(now);
}

absl::StatusOr<std::optional<v1::Artifact>> CheckpointSaver::Save() {
  absl::StatusOr<std::string> fingerprint = Fingerprint();
  if (!fingerprint.ok()) return fingerprint.status();
  if (fingerprint->empty() || *fingerprint == saved_) return std::nullopt;
  std::error_code ec;
  fs::remove_all(work_, ec);
  const fs::path tree = work_ / "tree";
  fs::create_directories(tree, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", tree.string(), ": ", ec.message()));
  fs::permissions(work_, fs::perms::owner_all, ec);  // the agent's own: no job sees it
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{work_};
  // The snapshot: each committed file's bytes read through a descriptor opened under its parent's
  // (never a path the program could redirect), directories and links as they are.
  int64_t budget = max_bytes_;
  absl::Status copied = WalkCommitted(dir_, [&](int dir_fd, const std::string& name, const Entry& e) -> absl::Status {
    const fs::path copy = tree / e.relative;
    std::error_code ec;
    if (S_ISDIR(e.st.st_mode)) {
      fs::create_directory(copy, ec);
    } else if (S_ISREG(e.st.st_mode)) {
      absl::StatusOr<bool> done = CopyFile(dir_fd, name, copy, budget);
      if (!done.ok()) return done.status();
    } else if (S_ISLNK(e.st.st_mode)) {
      char target[4096];
      const ssize_t n = ::readlinkat(dir_fd, name.c_str(), target, sizeof target - 1);
      if (n >= 0) fs::create_symlink(std::string(target, static_cast<size_t>(n)), copy, ec);
    } else {
      return absl::InvalidArgumentError(absl::StrCat("/job/checkpoints/", e.relative, ": only files, directories and links are saved"));
    }
    if (ec) return absl::InternalError(absl::StrCat("cannot snapshot ", e.relative, ": ", ec.message()));
    return absl::OkStatus();
  });
  if (!copied.ok()) return copied;
  const fs::path tar = work_ / "checkpoint.tar";
  absl::StatusOr<BundleStats> packed = WriteBundle(tree, tar, max_bytes_);
  if (!packed.ok()) return absl::Status(packed.status().code(), absl::StrCat("/job/checkpoints: ", packed.status().message()));
  absl::StatusOr<v1::Artifact> stored = artifacts_.Upload(lease_, tar, v1::ARTIFACT_KIND_CHECKPOINT, name_);
  if (!stored.ok()) return stored.status();
  saved_ = *std::move(fingerprint);
  return *std::move(stored);
}

}  // namespace tessera::worker
