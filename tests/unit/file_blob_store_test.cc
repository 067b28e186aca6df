// The artifact store's blobs on disk (issue 18): an upload is kept only when its size and digest
// are what the client stated, durably and deduplicated; reads resume from an offset.
#include <catch2/catch.hpp>

#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "services/artifacts/file_blob_store.h"

using namespace tessera::artifacts;

namespace {

struct TempRoot {
  std::filesystem::path path;
  TempRoot() {
    char tmpl[] = "/tmp/tessera-blobs-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempRoot() { std::filesystem::remove_all(path); }
  size_t FilesUnder(const std::string& sub) const {
    size_t n = 0;
    for (const auto& e : std::filesystem::recursive_directory_iterator(path / sub)) n += e.is_regular_file();
    return n;
  }
};

std::string ReadAll(BlobStore& store, const std::string& digest, uint64_t offset, size_t chunk) {
  auto reader = store.Open(digest, offset);
  REQUIRE(reader.ok());
  std::string out;
  while (true) {
    auto n = (*reader)->Read(chunk, out);
    REQUIRE(n.ok());
    if (*n == 0) break;
  }
  return out;
}

}  // namespace

TEST_CASE("a blob uploaded in chunks is stored under its digest and read back from any offset", "[unit][artifacts]") {
  TempRoot root;
  auto store = FileBlobStore::Open(root.path);
  REQUIRE(store.ok());
  std::string content;
  for (int i = 0; i < 100'000; ++i) content += static_cast<char>('a' + i % 26);
  auto writer = (*store)->Create();
  REQUIRE(writer.ok());
  for (size_t at = 0; at < content.size(); at += 7'000) REQUIRE((*writer)->Append(std::string_view(content).substr(at, 7'000)).ok());
  CHECK((*writer)->size() == content.size());
  const std::string digest = DigestOf(content);
  REQUIRE((*writer)->Commit(content.size(), digest).ok());
  CHECK(root.FilesUnder("tmp") == 0);
  CHECK(std::filesystem::exists((*store)->PathOf(digest)));
  CHECK((*store)->Exists(digest).value());

  CHECK(ReadAll(**store, digest, 0, 4'096) == content);
  CHECK(ReadAll(**store, digest, 65'536, 1'000) == content.substr(65'536));  // a resumed download
  CHECK(ReadAll(**store, digest, content.size(), 10).empty());
  CHECK((*store)->Open(digest, content.size() + 1).status().code() == absl::StatusCode::kOutOfRange);
  // Upper-case hex names the same blob.
  std::string upper = digest;
  for (size_t i = 7; i < upper.size(); ++i) upper[i] = static_cast<char>(std::toupper(static_cast<unsigned char>(upper[i])));
  CHECK((*store)->Exists(upper).value());
}

TEST_CASE("an upload whose size or digest is not the stated one stores nothing", "[unit][artifacts]") {
  TempRoot root;
  auto store = FileBlobStore::Open(root.path);
  REQUIRE(store.ok());
  const std::string content = "model weights";

  auto wrong_size = (*store)->Create();
  REQUIRE(wrong_size.ok());
  REQUIRE((*wrong_size)->Append(content).ok());
  const absl::Status size_status = (*wrong_size)->Commit(content.size() + 1, DigestOf(content));
  CHECK(size_status.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(size_status.message()), Catch::StartsWith("size_bytes:") && Catch::Contains("nothing was stored"));

  auto wrong_digest = (*store)->Create();
  REQUIRE(wrong_digest.ok());
  REQUIRE((*wrong_digest)->Append(content).ok());
  const absl::Status digest_status = (*wrong_digest)->Commit(content.size(), DigestOf("other bytes"));
  CHECK(digest_status.code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(digest_status.message()), Catch::StartsWith("digest:") && Catch::Contains(DigestOf(content)));
  CHECK((*wrong_digest)->Commit(content.size(), DigestOf(content)).code() == absl::StatusCode::kFailedPrecondition);  // once

  auto malformed = (*store)->Create();
  REQUIRE(malformed.ok());
  REQUIRE((*malformed)->Append(content).ok());
  CHECK((*malformed)->Commit(content.size(), "md5:abc").code() == absl::StatusCode::kInvalidArgument);

  CHECK(root.FilesUnder("sha256") == 0);
  CHECK(root.FilesUnder("tmp") == 0);
  CHECK_FALSE((*store)->Exists(DigestOf(content)).value());
  CHECK((*store)->Open(DigestOf(content), 0).status().code() == absl::StatusCode::kNotFound);
}

TEST_CASE("the same content uploaded twice is one blob; an abandoned upload leaves nothing", "[unit][artifacts]") {
  TempRoot root;
  auto store = FileBlobStore::Open(root.path);
  REQUIRE(store.ok());
  const std::string content = "train.csv rows";
  for (int i = 0; i < 2; ++i) {
    auto w = (*store)->Create();
    REQUIRE(w.ok());
    REQUIRE((*w)->Append(content).ok());
    REQUIRE((*w)->Commit(content.size(), DigestOf(content)).ok());
  }
  CHECK(root.FilesUnder("sha256") == 1);
  {
    auto abandoned = (*store)->Create();
    REQUIRE(abandoned.ok());
    REQUIRE((*abandoned)->Append("half an upload").ok());
    CHECK(root.FilesUnder("tmp") == 1);
  }
  CHECK(root.FilesUnder("tmp") == 0);
  REQUIRE((*store)->Remove(DigestOf(content)).ok());
  CHECK((*store)->Remove(DigestOf(content)).ok());  // idempotent
  CHECK(root.FilesUnder("sha256") == 0);
}

TEST_CASE("a crash's leftover upload is cleared when the store opens; digests are checked", "[unit][artifacts]") {
  TempRoot root;
  std::filesystem::create_directories(root.path / "tmp");
  std::ofstream(root.path / "tmp" / "upload-crashed") << "partial";
  auto store = FileBlobStore::Open(root.path);
  REQUIRE(store.ok());
  CHECK(root.FilesUnder("tmp") == 0);

  CHECK(ParseDigest("sha256:" + std::string(64, 'A')).value() == "sha256:" + std::string(64, 'a'));
  CHECK(ParseDigest(std::string(64, 'b')).value() == "sha256:" + std::string(64, 'b'));  // as sha256sum prints it
  for (const std::string& bad : std::vector<std::string>{"", "sha256:", "sha256:abc", "sha1:" + std::string(64, 'a'), "sha256:" + std::string(64, 'g'),
                                "sha256:" + std::string(65, 'a')}) {
    INFO(bad);
    const absl::StatusOr<std::string> parsed = ParseDigest(bad, "inputs[0].artifact");
    CHECK(parsed.status().code() == absl::StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(parsed.status().message()), Catch::StartsWith("inputs[0].artifact:"));
  }
  CHECK((*store)->Open("../../etc/passwd", 0).status().code() == absl::StatusCode::kInvalidArgument);
}
