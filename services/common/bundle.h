// A directory as one artifact (issue 18): a code bundle a customer uploads, the outputs and the
// checkpoints a job leaves. The format is a POSIX (pax) tar archive, written reproducibly (entries
// in path order, times zeroed, no owners; a mode only says whether a file is executable), so the
// same tree always gives the same bytes and the same digest, and uploading it again stores nothing.
//
// Unpacking treats the archive as hostile (a customer's bundle lands on a provider's machine, a
// worker's outputs on a customer's): an entry that is absolute, climbs out with "..", is a hard
// link, a device or a FIFO, or a symbolic link that is absolute or has a ".." in its target (links
// may only point down their own directory, so no chain of them can leave the tree) is refused with
// its name; set-user-ID, set-group-ID and sticky bits are dropped; nothing is written outside `dest`,
// and never through a symbolic link the archive made.
//
//   absl::StatusOr<BundleStats> made = WriteBundle("./src", "/tmp/code.tar");
//   absl::StatusOr<BundleStats> got = UnpackBundle("/tmp/code.tar", "/job/code", {});
#pragma once

#include <cstdint>
#include <filesystem>

#include "absl/status/statusor.h"

namespace tessera {

struct BundleStats {
  int64_t files = 0;        // regular files
  int64_t bytes = 0;        // their contents
  int64_t directories = 0;
  int64_t symlinks = 0;
};

struct UnpackLimits {
  int64_t max_bytes = int64_t{64} << 30;  // all files' contents together
  int64_t max_entries = 1'000'000;
};

// Writes `dir`'s tree (regular files, directories, symbolic links as links, never followed) to
// `tar_file`. A FIFO, socket or device in it, or a link that is absolute or has a ".." in its
// target, is INVALID_ARGUMENT naming it: what UnpackBundle refuses is never written. More than
// `max_bytes` of file contents is RESOURCE_EXHAUSTED (a job's outputs on the worker's disk).
absl::StatusOr<BundleStats> WriteBundle(const std::filesystem::path& dir, const std::filesystem::path& tar_file,
                                        int64_t max_bytes = int64_t{1} << 50);

// Unpacks `tar_file` into `dest` (created if missing). INVALID_ARGUMENT naming the first entry
// refused (see above); RESOURCE_EXHAUSTED past a limit. On an error part of the tree may be
// written: callers unpack into a directory of their own and remove it.
absl::StatusOr<BundleStats> UnpackBundle(const std::filesystem::path& tar_file, const std::filesystem::path& dest,
                                         const UnpackLimits& limits);

}  // namespace tessera
