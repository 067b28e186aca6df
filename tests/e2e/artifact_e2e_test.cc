// Artifacts end to end with real processes (issue 18): the CLI puts a file and a directory, lists,
// gets them back digest-checked (a bundle unpacked), shows progress as plain lines when piped, and
// deletes; a server SIGKILLed in the middle of an upload leaves no partial blob visible.
#include <catch2/catch.hpp>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "services/auth/client_channel.h"
#include "services/common/sha256.h"
#include "tessera/v1/artifacts.grpc.pb.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/files.h"

using namespace tessera;
using namespace tessera::testing;
namespace fs = std::filesystem;

namespace {

int FilesUnder(const fs::path& root) {
  int n = 0;
  for (const auto& e : fs::recursive_directory_iterator(root)) n += e.is_regular_file() ? 1 : 0;
  return n;
}

}  // namespace

TEST_CASE("artifact put, ls, get and rm from the CLI: a file, a directory as a bundle", "[e2e][artifacts]") {
  Cluster c;
  c.OpenMarket();
  std::string data(5 << 20, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) % 253);
  WriteAll(c.dir() + "/in/train.csv", data);
  WriteAll(c.dir() + "/in/src/train.py", "print('epoch 1')\n");
  WriteAll(c.dir() + "/in/src/lib/util.py", "X = 1\n");

  const std::vector<std::string> as_acme = {"--account", "acme"};
  auto with_account = [&](std::vector<std::string> args) {
    args.insert(args.end(), as_acme.begin(), as_acme.end());
    return args;
  };
  // Piped, the progress is plain lines on stderr; stdout has the digest first.
  std::vector<std::string> put = {kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(),
                                  "artifact",        "put",      c.dir() + "/in/train.csv", "--account", "acme"};
  const CommandResult put_file = RunWithStderr(put);
  INFO(put_file.out);
  REQUIRE(put_file.exit_code == 0);
  CHECK_THAT(put_file.out, Catch::Contains("uploading train.csv: 25% (") && Catch::Contains("uploaded train.csv: 5.0 MiB in"));
  CHECK_THAT(put_file.out, Catch::Contains(DigestOf(data) + "  5.0 MiB  file  train.csv"));
  CHECK(put_file.out.find('\r') == std::string::npos);  // no terminal redraws in a log

  const CommandResult put_dir = c.Cli(with_account({"-o", "json", "artifact", "put", c.dir() + "/in/src", "--name", "code"}));
  const auto bundle = FromJson<v1::Artifact>(put_dir.out);
  CHECK(bundle.kind() == v1::ARTIFACT_KIND_BUNDLE);
  CHECK(bundle.name() == "code");
  // The same directory again is the same bytes: nothing new is stored.
  CHECK(FromJson<v1::Artifact>(c.Cli(with_account({"-o", "json", "artifact", "put", c.dir() + "/in/src", "--name", "code"})).out).digest() ==
        bundle.digest());

  const std::string listed = c.Cli(with_account({"artifact", "ls"})).out;
  CHECK_THAT(listed, Catch::Contains(DigestOf(data)) && Catch::Contains(bundle.digest()) && Catch::Contains("2 artifacts; 5.0 MiB"));

  c.Cli(with_account({"artifact", "get", DigestOf(data), "-O", c.dir() + "/out.csv"}));
  CHECK(ReadAll(c.dir() + "/out.csv") == data);
  CHECK_FALSE(fs::exists(c.dir() + "/out.csv.part"));
  // A download that broke part way resumes from its .part file (here: its first MiB, as it was).
  WriteAll(c.dir() + "/resumed.csv.part", data.substr(0, 1 << 20));
  const CommandResult resumed =
      RunWithStderr({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "artifact", "get", DigestOf(data),
                     "-O", c.dir() + "/resumed.csv", "--account", "acme"});
  INFO(resumed.out);
  CHECK(resumed.exit_code == 0);
  CHECK_THAT(resumed.out, Catch::Contains("resuming at 1.0 MiB") && Catch::Contains("downloaded train.csv: 4.0 MiB"));
  CHECK(ReadAll(c.dir() + "/resumed.csv") == data);
  // A .part that is not a prefix of the artifact is caught by the digest and nothing is kept.
  WriteAll(c.dir() + "/bad.csv.part", std::string(1 << 20, 'x'));
  const CommandResult damaged = c.Cli(with_account({"artifact", "get", DigestOf(data), "-O", c.dir() + "/bad.csv"}), false);
  CHECK(damaged.exit_code == 1);
  CHECK_FALSE(fs::exists(c.dir() + "/bad.csv"));
  CHECK_FALSE(fs::exists(c.dir() + "/bad.csv.part"));

  c.Cli(with_account({"artifact", "get", bundle.digest(), "--extract", c.dir() + "/code"}));
  CHECK(ReadAll(c.dir() + "/code/train.py") == "print('epoch 1')\n");
  CHECK(ReadAll(c.dir() + "/code/lib/util.py") == "X = 1\n");

  c.Cli(with_account({"artifact", "rm", DigestOf(data)}));
  const CommandResult gone = c.Cli(with_account({"artifact", "get", DigestOf(data), "-O", c.dir() + "/gone.csv"}), false);
  CHECK(gone.exit_code == 1);
  const CommandResult missing = RunWithStderr({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "artifact",
                                               "put", c.dir() + "/nope", "--account", "acme"});
  CHECK(missing.exit_code == 1);
  CHECK_THAT(missing.out, Catch::Contains("no such file or directory"));
}

TEST_CASE("a server SIGKILLed in the middle of an upload leaves no partial blob", "[e2e][artifacts][crash]") {
  Cluster c;
  c.OpenMarket();
  const std::string data(4 << 20, 'z');
  {
    std::string key = ReadAll(c.AdminKeyFile());
    while (!key.empty() && key.back() == '\n') key.pop_back();
    auto channel = auth::AuthenticatedChannel(c.address(), key);
    auto stub = v1::ArtifactService::NewStub(channel);
    grpc::ClientContext context;
    v1::Artifact artifact;
    auto writer = stub->UploadArtifact(&context, &artifact);
    v1::UploadArtifactRequest request;
    request.mutable_header()->set_account("acme");
    request.mutable_header()->set_size_bytes(static_cast<int64_t>(data.size()));
    request.mutable_header()->set_digest(DigestOf(data));
    REQUIRE(writer->Write(request));
    request.set_chunk(data.substr(0, 1 << 20));
    REQUIRE(writer->Write(request));
    REQUIRE(writer->Write(request));
    // Half the bytes are in the server's temp file; the server dies now.
    const fs::path tmp = c.dir() + "/data/artifacts/tmp";
    for (int i = 0; i < 100 && (fs::is_empty(tmp) || fs::file_size(fs::directory_iterator(tmp)->path()) < (2u << 20)); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    CHECK(FilesUnder(tmp) == 1);
    c.KillAndRestartServer();
    CHECK_FALSE(writer->Finish().ok());
  }
  CHECK(FilesUnder(c.dir() + "/data/artifacts") == 0);  // the restart cleared the temp file
  CHECK(c.Sql("SELECT count(*) FROM artifacts") == "0");
  CHECK(c.Sql("SELECT count(*) FROM blobs") == "0");
  const CommandResult get = c.Cli({"artifact", "get", DigestOf(data), "--account", "acme", "-O", c.dir() + "/x"}, false);
  CHECK(get.exit_code == 1);
}
