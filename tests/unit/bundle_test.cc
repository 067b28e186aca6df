// Tar bundles (services/common/bundle.h): a tree round-trips; the same tree gives the same bytes
// whatever its times; and a hostile archive, built here entry by entry, never writes outside its
// destination, through a link, or a set-user-ID file.
#include <archive.h>
#include <archive_entry.h>
#include <catch2/catch.hpp>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "services/common/bundle.h"
#include "services/common/sha256.h"
#include "tests/support/files.h"

using namespace tessera;
using testing::ReadAll;
using testing::TempDir;
using testing::WriteAll;
namespace fs = std::filesystem;

namespace {

// One entry of a hand-made archive.
struct RawEntry {
  std::string path;
  mode_t type = AE_IFREG;
  mode_t perm = 0644;
  std::string content;
  std::string link;      // a symlink's target
  std::string hardlink;  // a hard link's target
};

RawEntry File(std::string path, std::string content, mode_t perm = 0644) {
  RawEntry e;
  e.path = std::move(path);
  e.content = std::move(content);
  e.perm = perm;
  return e;
}
RawEntry Link(std::string path, std::string target) {
  RawEntry e;
  e.path = std::move(path);
  e.type = AE_IFLNK;
  e.perm = 0777;
  e.link = std::move(target);
  return e;
}
RawEntry HardLink(std::string path, std::string target) {
  RawEntry e;
  e.path = std::move(path);
  e.hardlink = std::move(target);
  return e;
}
RawEntry Special(std::string path, mode_t type) {
  RawEntry e;
  e.path = std::move(path);
  e.type = type;
  return e;
}

void WriteRawTar(const fs::path& file, const std::vector<RawEntry>& entries) {
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  REQUIRE(archive_write_open_filename(a, file.c_str()) == ARCHIVE_OK);
  for (const RawEntry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, e.perm);
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.content.size()));
    if (!e.link.empty()) archive_entry_set_symlink(entry, e.link.c_str());
    if (!e.hardlink.empty()) archive_entry_set_hardlink(entry, e.hardlink.c_str());
    REQUIRE(archive_write_header(a, entry) == ARCHIVE_OK);
    if (!e.content.empty()) archive_write_data(a, e.content.data(), e.content.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
}

}  // namespace

TEST_CASE("a directory bundles and unpacks to the same tree, the same bytes whatever its times", "[bundle]") {
  TempDir dir;
  const fs::path src = dir.path / "src";
  WriteAll(src / "train.py", "print('hello')\n");
  WriteAll(src / "lib" / "model.py", "class Model: pass\n");
  WriteAll(src / "run.sh", "#!/bin/sh\nexec python3 train.py\n");
  fs::permissions(src / "run.sh", fs::perms::owner_exec, fs::perm_options::add);
  fs::create_directories(src / "empty");
  fs::create_symlink("lib/model.py", src / "model-link.py");

  absl::StatusOr<BundleStats> made = WriteBundle(src, dir.path / "a.tar");
  REQUIRE(made.ok());
  CHECK(made->files == 3);
  CHECK(made->directories == 2);
  CHECK(made->symlinks == 1);
  CHECK(made->bytes == 15 + 18 + 32);

  // Times and the order files were made in do not change the bytes.
  fs::last_write_time(src / "train.py", fs::file_time_type::clock::now() - std::chrono::hours(48));
  REQUIRE(WriteBundle(src, dir.path / "b.tar").ok());
  CHECK(Sha256OfFile(dir.path / "a.tar").value() == Sha256OfFile(dir.path / "b.tar").value());

  absl::StatusOr<BundleStats> unpacked = UnpackBundle(dir.path / "a.tar", dir.path / "out", {});
  INFO(unpacked.status().ToString());
  REQUIRE(unpacked.ok());
  CHECK(unpacked->files == 3);
  CHECK(ReadAll(dir.path / "out" / "train.py") == "print('hello')\n");
  CHECK(ReadAll(dir.path / "out" / "lib" / "model.py") == "class Model: pass\n");
  CHECK(fs::is_directory(dir.path / "out" / "empty"));
  CHECK(fs::read_symlink(dir.path / "out" / "model-link.py") == "lib/model.py");
  CHECK((fs::status(dir.path / "out" / "run.sh").permissions() & fs::perms::owner_exec) != fs::perms::none);
  CHECK((fs::status(dir.path / "out" / "train.py").permissions() & fs::perms::owner_exec) == fs::perms::none);
}

TEST_CASE("a link out of the directory cannot be bundled, so what is written always unpacks", "[bundle]") {
  TempDir dir;
  WriteAll(dir.path / "src" / "ok.txt", "x");
  fs::create_symlink("/etc/shadow", dir.path / "src" / "leak");
  absl::StatusOr<BundleStats> made = WriteBundle(dir.path / "src", dir.path / "a.tar");
  CHECK(made.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(made.status().message()), Catch::Contains("leak") && Catch::Contains("may only point down its own directory"));
  fs::remove(dir.path / "src" / "leak");
  fs::create_directories(dir.path / "src" / "sub");
  fs::create_symlink("../../../etc/passwd", dir.path / "src" / "sub" / "up");
  CHECK(WriteBundle(dir.path / "src", dir.path / "a.tar").status().code() == absl::StatusCode::kInvalidArgument);
  fs::remove(dir.path / "src" / "sub" / "up");
  fs::create_symlink("../ok.txt", dir.path / "src" / "sub" / "sideways");  // inside, but it climbs: refused
  CHECK(WriteBundle(dir.path / "src", dir.path / "a.tar").status().code() == absl::StatusCode::kInvalidArgument);
  fs::remove(dir.path / "src" / "sub" / "sideways");
  fs::create_symlink("sub/deeper.txt", dir.path / "src" / "down");
  CHECK(WriteBundle(dir.path / "src", dir.path / "a.tar").ok());
  CHECK(WriteBundle(dir.path / "src", dir.path / "b.tar", /*max_bytes=*/0).status().code() == absl::StatusCode::kResourceExhausted);
}

TEST_CASE("a FIFO cannot be bundled", "[bundle]") {
  TempDir dir;
  fs::create_directories(dir.path / "src");
  REQUIRE(mkfifo((dir.path / "src" / "pipe").c_str(), 0644) == 0);
  absl::StatusOr<BundleStats> made = WriteBundle(dir.path / "src", dir.path / "a.tar");
  CHECK(made.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(made.status().message()), Catch::Contains("pipe"));
}

TEST_CASE("a hostile bundle is refused entry by entry and writes nothing outside its destination", "[bundle]") {
  TempDir dir;
  const fs::path dest = dir.path / "dest";
  struct Case {
    std::string what;
    std::vector<RawEntry> entries;
    std::string refused;  // the entry the error names
  };
  const std::vector<Case> cases = {
      {"climbs out", {File("../escaped", "x")}, "../escaped"},
      {"climbs out deeper", {File("a/../../escaped", "x")}, "a/../../escaped"},
      {"absolute", {File(dir.path.string() + "/escaped", "x")}, "/escaped"},
      {"a symlink out", {Link("link", "../../etc/passwd")}, "link"},
      {"an absolute symlink", {Link("link", "/etc/shadow")}, "link"},
      {"a hard link", {HardLink("hard", "/etc/shadow")}, "hard"},
      {"a device", {Special("dev", AE_IFCHR)}, "dev"},
      {"a FIFO", {Special("fifo", AE_IFIFO)}, "fifo"},
      // A link that stays inside, then a file written through it: libarchive's secure-symlinks
      // check refuses to write under a link the archive made.
      {"through a link", {Link("sub", "."), File("sub/x", "x")}, "sub/x"},
      // Each link checked alone against its own depth stays inside; chained, they leave.
      {"a chain of links", {Link("d", "."), Link("x", "d/d/d/d/../../../../etc")}, "x"},
      {"a directory entry's link", {Link("a/", "..")}, "a/"},
      {"a link that climbs and comes back", {Link("sub/l", "../sub/f")}, "sub/l"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    fs::remove_all(dest);
    const fs::path tar = dir.path / "hostile.tar";
    WriteRawTar(tar, c.entries);
    absl::StatusOr<BundleStats> unpacked = UnpackBundle(tar, dest, {});
    CHECK(unpacked.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(unpacked.status().message()), Catch::Contains(c.refused));
    CHECK_FALSE(fs::exists(dir.path / "escaped"));
    CHECK_FALSE(fs::exists(dest.parent_path().parent_path() / "escaped"));
  }
}

TEST_CASE("a set-user-ID file unpacks without its set-ID bits, and the limits hold", "[bundle]") {
  TempDir dir;
  const fs::path tar = dir.path / "suid.tar";
  WriteRawTar(tar, {File("tool", "#!/bin/sh\n", 06755)});
  REQUIRE(UnpackBundle(tar, dir.path / "out", {}).ok());
  struct stat st {};
  REQUIRE(::stat((dir.path / "out" / "tool").c_str(), &st) == 0);
  CHECK((st.st_mode & (S_ISUID | S_ISGID | S_ISVTX)) == 0);
  CHECK((st.st_mode & 0100) != 0);

  WriteRawTar(tar, {File("a", std::string(600, 'a')), File("b", std::string(600, 'b'))});
  CHECK(UnpackBundle(tar, dir.path / "big", {.max_bytes = 1'000, .max_entries = 10}).status().code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(UnpackBundle(tar, dir.path / "many", {.max_bytes = 10'000, .max_entries = 1}).status().code() ==
        absl::StatusCode::kResourceExhausted);
  CHECK(UnpackBundle(dir.path / "suid.tar.missing", dir.path / "x", {}).status().code() == absl::StatusCode::kInvalidArgument);
}
