#include "services/common/bundle.h"

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"

namespace tessera {
namespace {

namespace fs = std::filesystem;

constexpr size_t kBlock = size_t{1} << 20;

struct ArchiveWriteDeleter {
  void operator()(archive* a) const { archive_write_free(a); }
};
struct ArchiveReadDeleter {
  void operator()(archive* a) const { archive_read_free(a); }
};
struct EntryDeleter {
  void operator()(archive_entry* e) const { archive_entry_free(e); }
};
using ArchiveWriter = std::unique_ptr<archive, ArchiveWriteDeleter>;
using ArchiveReader = std::unique_ptr<archive, ArchiveReadDeleter>;
using Entry = std::unique_ptr<archive_entry, EntryDeleter>;

// libarchive's last error on `a`, never null.
std::string ErrorText(archive* a) {
  const char* message = a != nullptr ? archive_error_string(a) : nullptr;
  return message != nullptr ? message : "libarchive failed";
}

absl::Status ArchiveError(archive* a, const std::string& what) { return absl::InternalError(absl::StrCat(what, ": ", ErrorText(a))); }

absl::Status ErrnoError(int error, const std::string& what, const fs::path& path) {
  return absl::InternalError(absl::StrCat(what, " ", path.string(), ": ", std::strerror(error)));
}

// Whether `path` is relative and every component between its slashes passes `ok` (a trailing
// slash, as a directory entry has, leaves one empty last component, which is not offered).
template <typename Ok>
bool RelativeWithParts(std::string_view path, Ok&& ok) {
  if (path.empty() || path.front() == '/') return false;
  for (size_t start = 0; start < path.size();) {
    const size_t end = std::min(path.find('/', start), path.size());
    if (!ok(path.substr(start, end - start))) return false;
    start = end + 1;
  }
  return true;
}

// A path inside the tree: relative, and no component is "..", "." or empty.
bool Contained(std::string_view path) {
  return RelativeWithParts(path, [](std::string_view part) { return !part.empty() && part != "." && part != ".."; });
}

// A symbolic link may only point down its own directory: relative, with no ".." anywhere. Counting
// ".." against the link's depth is not enough: a link can pass through another link of the same
// tree ("d -> .", then "x -> d/d/../.."), so only links that never climb are safe to lay down.
bool TargetContained(std::string_view target) {
  return RelativeWithParts(target, [](std::string_view part) { return part != ".."; });
}

absl::Status WriteFileData(archive* a, const fs::path& path, int64_t size) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) return ErrnoError(errno, "cannot open", path);
  std::string block(kBlock, '\0');
  int64_t left = size;
  absl::Status status;
  while (left > 0) {
    const ssize_t n = ::read(fd, block.data(), std::min<int64_t>(left, kBlock));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      status = ErrnoError(errno, "cannot read", path);
      break;
    }
    if (n == 0) {
      status = absl::AbortedError(absl::StrCat(path.string(), " shrank while it was bundled; try again"));
      break;
    }
    if (archive_write_data(a, block.data(), static_cast<size_t>(n)) != n) {
      status = ArchiveError(a, "cannot write the bundle");
      break;
    }
    left -= n;
  }
  ::close(fd);
  return status;
}

}  // namespace

absl::StatusOr<BundleStats> WriteBundle(const fs::path& dir, const fs::path& tar_file, int64_t max_bytes) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) return absl::InvalidArgumentError(absl::StrCat(dir.string(), " is not a directory"));
  std::vector<std::string> paths;  // relative to dir
  for (fs::recursive_directory_iterator it(dir, fs::directory_options::none, ec), end; !ec && it != end; it.increment(ec)) {
    paths.push_back(it->path().lexically_relative(dir).generic_string());
  }
  if (ec) return absl::InternalError(absl::StrCat("cannot list ", dir.string(), ": ", ec.message()));
  std::sort(paths.begin(), paths.end());

  ArchiveWriter a(archive_write_new());
  if (a == nullptr || archive_write_set_format_pax_restricted(a.get()) != ARCHIVE_OK ||
      archive_write_open_filename(a.get(), tar_file.c_str()) != ARCHIVE_OK) {
    return ArchiveError(a.get(), absl::StrCat("cannot create ", tar_file.string()));
  }
  BundleStats stats;
  for (const std::string& relative : paths) {
    const fs::path path = dir / relative;
    struct stat st {};
    if (::lstat(path.c_str(), &st) != 0) return ErrnoError(errno, "cannot stat", path);
    Entry entry(archive_entry_new());
    archive_entry_set_pathname(entry.get(), relative.c_str());
    archive_entry_set_mtime(entry.get(), 0, 0);
    archive_entry_set_uid(entry.get(), 0);
    archive_entry_set_gid(entry.get(), 0);
    std::string target;
    if (S_ISREG(st.st_mode)) {
      archive_entry_set_filetype(entry.get(), AE_IFREG);
      archive_entry_set_perm(entry.get(), (st.st_mode & 0111) != 0 ? 0755 : 0644);
      archive_entry_set_size(entry.get(), st.st_size);
      ++stats.files;
      stats.bytes += st.st_size;
      if (stats.bytes > max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat("more than ", max_bytes, " bytes of files (at ", relative, ")"));
      }
    } else if (S_ISDIR(st.st_mode)) {
      archive_entry_set_filetype(entry.get(), AE_IFDIR);
      archive_entry_set_perm(entry.get(), 0755);
      ++stats.directories;
    } else if (S_ISLNK(st.st_mode)) {
      target = fs::read_symlink(path, ec).string();
      if (ec) return absl::InternalError(absl::StrCat("cannot read the link ", path.string(), ": ", ec.message()));
      // What UnpackBundle would refuse is refused here, naming it: a bundle always unpacks.
      if (!TargetContained(target)) {
        return absl::InvalidArgumentError(absl::StrCat(relative, ": a symbolic link to '", target,
                                                       "' cannot be bundled: a link may only point down its own directory"));
      }
      archive_entry_set_filetype(entry.get(), AE_IFLNK);
      archive_entry_set_perm(entry.get(), 0777);
      archive_entry_set_symlink(entry.get(), target.c_str());
      ++stats.symlinks;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(relative, ": only files, directories and symbolic links can be bundled"));
    }
    if (archive_write_header(a.get(), entry.get()) != ARCHIVE_OK) return ArchiveError(a.get(), "cannot write the bundle");
    if (S_ISREG(st.st_mode)) {
      if (absl::Status s = WriteFileData(a.get(), path, st.st_size); !s.ok()) return s;
    }
  }
  if (archive_write_close(a.get()) != ARCHIVE_OK) return ArchiveError(a.get(), "cannot finish the bundle");
  return stats;
}

absl::StatusOr<BundleStats> UnpackBundle(const fs::path& tar_file, const fs::path& into, const UnpackLimits& limits) {
  std::error_code ec;
  fs::create_directories(into, ec);
  // Entries are written by absolute path (no chdir in a threaded process), below a destination
  // with no symbolic link in it, so that any link libarchive meets on the way is the archive's.
  const fs::path dest = ec ? into : fs::canonical(into, ec);
  if (ec) return absl::InternalError(absl::StrCat("cannot create ", into.string(), ": ", ec.message()));
  ArchiveReader in(archive_read_new());
  archive_read_support_format_tar(in.get());
  if (archive_read_open_filename(in.get(), tar_file.c_str(), kBlock) != ARCHIVE_OK) {
    return absl::InvalidArgumentError(absl::StrCat("not a tar bundle: ", ErrorText(in.get())));
  }
  ArchiveWriter out(archive_write_disk_new());
  // Behind the checks below, libarchive refuses ".." and writing through a symbolic link.
  archive_write_disk_set_options(out.get(), ARCHIVE_EXTRACT_SECURE_NODOTDOT | ARCHIVE_EXTRACT_SECURE_SYMLINKS |
                                                ARCHIVE_EXTRACT_NO_OVERWRITE | ARCHIVE_EXTRACT_PERM);
  BundleStats stats;
  int64_t entries = 0;
  std::string block(kBlock, '\0');
  for (;;) {
    archive_entry* entry = nullptr;
    const int r = archive_read_next_header(in.get(), &entry);
    if (r == ARCHIVE_EOF) break;
    if (r != ARCHIVE_OK) return absl::InvalidArgumentError(absl::StrCat("a damaged tar bundle: ", ErrorText(in.get())));
    const char* raw = archive_entry_pathname(entry);
    const std::string name = raw != nullptr ? raw : "";
    auto refuse = [&](const std::string& why) { return absl::InvalidArgumentError(absl::StrCat("bundle entry '", name, "': ", why)); };
    if (++entries > limits.max_entries) {
      return absl::ResourceExhaustedError(absl::StrCat("the bundle has more than ", limits.max_entries, " entries"));
    }
    if (!Contained(name)) return refuse("an absolute path or one with '..' or '.' components is not unpacked");
    if (archive_entry_hardlink(entry) != nullptr) return refuse("hard links are not unpacked");
    const mode_t type = archive_entry_filetype(entry);
    if (type == AE_IFLNK) {
      const char* target = archive_entry_symlink(entry);
      if (target == nullptr || !TargetContained(target)) return refuse("a symbolic link may only point down its own directory (no '..', not absolute)");
      ++stats.symlinks;
    } else if (type == AE_IFREG) {
      ++stats.files;
      stats.bytes += archive_entry_size(entry);
      if (stats.bytes > limits.max_bytes) {
        return absl::ResourceExhaustedError(absl::StrCat("the bundle unpacks to more than ", limits.max_bytes, " bytes"));
      }
    } else if (type == AE_IFDIR) {
      ++stats.directories;
    } else {
      return refuse("only files, directories and symbolic links are unpacked");
    }
    const std::string full = (dest / name).string();
    archive_entry_set_pathname(entry, full.c_str());
    archive_entry_set_perm(entry, archive_entry_perm(entry) & 0777);  // no set-user-ID, set-group-ID or sticky bit
    archive_entry_set_uid(entry, getuid());
    archive_entry_set_gid(entry, getgid());
    if (archive_write_header(out.get(), entry) != ARCHIVE_OK) return refuse(ErrorText(out.get()));
    if (type == AE_IFREG) {
      for (;;) {
        const la_ssize_t n = archive_read_data(in.get(), block.data(), block.size());
        if (n < 0) return absl::InvalidArgumentError(absl::StrCat("a damaged tar bundle: ", ErrorText(in.get())));
        if (n == 0) break;
        if (archive_write_data(out.get(), block.data(), static_cast<size_t>(n)) != n) {
          return absl::InternalError(absl::StrCat("cannot write ", full, ": ", ErrorText(out.get())));
        }
      }
    }
    if (archive_write_finish_entry(out.get()) != ARCHIVE_OK) {
      return absl::InternalError(absl::StrCat("cannot write ", full, ": ", ErrorText(out.get())));
    }
  }
  if (archive_write_close(out.get()) != ARCHIVE_OK) return absl::InternalError(ErrorText(out.get()));
  return stats;
}

}  // namespace tessera
