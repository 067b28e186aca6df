// `tessera artifact put|get|ls|rm`: a customer's own bytes on the network (issue 18). `put` of a
// directory uploads it as a reproducible tar bundle (services/common/bundle.h); `get` resumes a
// broken download from its `.part` file and checks the digest before it keeps anything.
#include <fcntl.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "services/artifacts/artifact_service.h"
#include "services/cli/commands.h"
#include "services/cli/transfer_progress.h"
#include "services/common/artifact_upload.h"
#include "services/common/bundle.h"
#include "services/common/enum_names.h"
#include "services/common/sha256.h"
#include "tessera/v1/artifacts.grpc.pb.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::cli {
namespace {

namespace fs = std::filesystem;

constexpr int kDownloadTries = 5;

// "file", "bundle", "outputs", "checkpoint".
std::string KindName(v1::ArtifactKind kind) { return absl::AsciiStrToLower(StoredName(kind)); }

// A temporary file that is removed with this object.
struct TempFile {
  fs::path path;
  TempFile() {
    std::string pattern = (fs::temp_directory_path() / "tessera-bundle-XXXXXX.tar").string();
    const int fd = ::mkstemps(pattern.data(), 4);
    if (fd >= 0) {
      ::close(fd);
      path = pattern;
    }
  }
  ~TempFile() {
    std::error_code ec;
    if (!path.empty()) fs::remove(path, ec);
  }
};

grpc::Status LocalError(grpc::StatusCode code, const std::string& message) { return grpc::Status(code, message); }

// Uploads `file`, hashed as it is sent; the server checks both the size and the digest.
grpc::Status Upload(CliContext& ctx, const fs::path& file, const v1::UploadArtifactHeader& header, const std::string& shown,
                    v1::Artifact* artifact) {
  std::error_code ec;
  const auto size = static_cast<int64_t>(fs::file_size(file, ec));
  if (ec) return LocalError(grpc::StatusCode::NOT_FOUND, "cannot read " + file.string() + ": " + ec.message());
  auto stub = v1::ArtifactService::NewStub(ctx.Channel());
  grpc::ClientContext context;  // no deadline: a big upload takes as long as it takes
  TransferProgress progress("uploading", shown, size);
  grpc::Status s = UploadFile(*stub, context, header, file, [&](int64_t sent) { progress.Advance(sent); }, artifact);
  if (s.ok()) progress.Done("uploaded");
  return s;
}

void Put(CliContext& ctx, const std::string& path, const std::string& account, std::string name) {
  std::error_code ec;
  const fs::path source(path);
  if (!fs::exists(source, ec)) {
    ctx.exit_code = ReportError(LocalError(grpc::StatusCode::NOT_FOUND, path + ": no such file or directory"));
    return;
  }
  v1::UploadArtifactHeader header;
  header.set_account(account);
  TempFile bundle;
  fs::path file = source;
  if (fs::is_directory(source, ec)) {
    if (bundle.path.empty()) {
      ctx.exit_code = ReportError(LocalError(grpc::StatusCode::INTERNAL, "cannot create a temporary file for the bundle"));
      return;
    }
    absl::StatusOr<BundleStats> made = WriteBundle(source, bundle.path);
    if (!made.ok()) {
      ctx.exit_code = ReportError(LocalError(grpc::StatusCode::INVALID_ARGUMENT, std::string(made.status().message())));
      return;
    }
    std::cerr << "bundled " << path << ": " << made->files << " files, " << HumanBytes(made->bytes) << "\n";
    file = bundle.path;
    header.set_kind(v1::ARTIFACT_KIND_BUNDLE);
  } else {
    header.set_kind(v1::ARTIFACT_KIND_FILE);
  }
  if (name.empty()) name = fs::absolute(source).lexically_normal().filename().string();
  if (name.empty()) name = fs::absolute(source).lexically_normal().parent_path().filename().string();  // "dir/"
  header.set_name(name);
  v1::Artifact artifact;
  grpc::Status s = Upload(ctx, file, header, name, &artifact);
  ShowResult(ctx, s, artifact, [](const v1::Artifact& a) {
    std::cout << a.digest() << "  " << HumanBytes(a.size_bytes()) << "  " << KindName(a.kind()) << "  " << Printable(a.name()) << "\n";
  });
}

// Where `get` writes by default: the artifact's own file name, if it is a plain one; else its digest.
fs::path DefaultOutput(const v1::Artifact& artifact) {
  const fs::path name = fs::path(artifact.name()).filename();
  const std::string n = name.string();
  if (n.empty() || n == "." || n == ".." || n.find('/') != std::string::npos) return artifact.digest().substr(7);
  return artifact.kind() == v1::ARTIFACT_KIND_FILE ? name : fs::path(n + ".tar");
}

// One try: appends to `part` from its current size on, and feeds what it appends to `sha` (which
// has seen the part's earlier bytes). OK with the record once the stream ended.
grpc::Status DownloadOnce(CliContext& ctx, const v1::DownloadArtifactRequest& base, const fs::path& part, v1::Artifact* artifact,
                          Sha256& sha, std::unique_ptr<TransferProgress>& progress) {
  std::error_code ec;
  v1::DownloadArtifactRequest request = base;
  request.set_offset(fs::exists(part, ec) ? static_cast<int64_t>(fs::file_size(part, ec)) : 0);
  auto stub = v1::ArtifactService::NewStub(ctx.Channel());
  grpc::ClientContext context;
  auto reader = stub->DownloadArtifact(&context, request);
  std::ofstream out(part, std::ios::binary | std::ios::app);
  if (!out) return LocalError(grpc::StatusCode::INTERNAL, "cannot write " + part.string());
  v1::DownloadArtifactResponse message;
  while (reader->Read(&message)) {
    if (message.has_artifact()) {
      *artifact = message.artifact();
      if (progress == nullptr) {
        progress = std::make_unique<TransferProgress>("downloading", artifact->name().empty() ? artifact->digest() : artifact->name(),
                                                      artifact->size_bytes(), request.offset());
      }
    }
    out.write(message.chunk().data(), static_cast<std::streamsize>(message.chunk().size()));
    if (!out) {
      context.TryCancel();
      reader->Finish();
      return LocalError(grpc::StatusCode::INTERNAL, "cannot write " + part.string());
    }
    sha.Update(message.chunk());
    if (progress) progress->Advance(static_cast<int64_t>(message.chunk().size()));
  }
  out.close();  // the last buffered bytes reach the file now, or the call fails
  if (!out) return LocalError(grpc::StatusCode::INTERNAL, "cannot write " + part.string());
  return reader->Finish();
}

void Get(CliContext& ctx, const std::string& digest, const std::string& account, std::string output, const std::string& extract) {
  v1::DownloadArtifactRequest request;
  request.set_account(account);
  request.set_digest(digest);
  v1::Artifact artifact;
  {
    v1::GetArtifactRequest get;
    get.set_account(account);
    get.set_digest(digest);
    grpc::Status s = v1::ArtifactService::NewStub(ctx.Channel())->GetArtifact(ctx.Call().get(), get, &artifact);
    if (!s.ok()) {
      ctx.exit_code = ReportError(s);
      return;
    }
  }
  TempFile extracted_from;
  fs::path target = !extract.empty() ? extracted_from.path : output.empty() ? DefaultOutput(artifact) : fs::path(output);
  const fs::path part = target.string() + ".part";
  std::error_code ec;
  if (!extract.empty()) fs::remove(part, ec);
  if (fs::exists(part, ec) && static_cast<int64_t>(fs::file_size(part, ec)) > artifact.size_bytes()) fs::remove(part, ec);
  // Hashed as it arrives: a big download is not read back a second time to be checked.
  Sha256 sha;
  if (fs::exists(part, ec)) {
    if (absl::Status hashed = HashFileInto(part, sha); !hashed.ok()) {
      ctx.exit_code = ReportError(LocalError(grpc::StatusCode::INTERNAL, std::string(hashed.message()) + " (remove it to start over)"));
      return;
    }
  }
  std::unique_ptr<TransferProgress> progress;
  grpc::Status s;
  for (int attempt = 1; attempt <= kDownloadTries; ++attempt) {
    s = DownloadOnce(ctx, request, part, &artifact, sha, progress);
    if (s.ok() || s.error_code() != grpc::StatusCode::UNAVAILABLE) break;
    std::cerr << "download broke (" << s.error_message() << "); resuming, try " << attempt + 1 << " of " << kDownloadTries << "\n";
    std::this_thread::sleep_for(std::chrono::milliseconds(500 * attempt));
  }
  if (!s.ok()) {
    if (s.error_code() == grpc::StatusCode::UNAVAILABLE) std::cerr << "kept " << part.string() << ": run the same command to resume\n";
    ctx.exit_code = ReportError(s);
    return;
  }
  // The hash is of what was handed to the file; its size says that all of it is there.
  if (const auto size = fs::file_size(part, ec); ec || static_cast<int64_t>(size) != artifact.size_bytes()) {
    fs::remove(part, ec);
    ctx.exit_code = ReportError(LocalError(grpc::StatusCode::DATA_LOSS, "the downloaded file is not " +
                                                                            std::to_string(artifact.size_bytes()) + " bytes; nothing was kept"));
    return;
  }
  if (const std::string got = DigestName(sha.Finish()); got != artifact.digest()) {
    fs::remove(part, ec);
    ctx.exit_code = ReportError(
        LocalError(grpc::StatusCode::DATA_LOSS, "the downloaded bytes hash to " + got + ", not " + artifact.digest() + "; nothing was kept"));
    return;
  }
  fs::rename(part, target, ec);
  if (ec) {
    ctx.exit_code = ReportError(LocalError(grpc::StatusCode::INTERNAL, "cannot write " + target.string() + ": " + ec.message()));
    return;
  }
  if (progress) progress->Done("downloaded");
  if (!extract.empty()) {
    absl::StatusOr<BundleStats> unpacked = UnpackBundle(target, extract, {});
    if (!unpacked.ok()) {
      ctx.exit_code = ReportError(LocalError(grpc::StatusCode::INVALID_ARGUMENT, std::string(unpacked.status().message())));
      return;
    }
    target = extract;
    std::cerr << "unpacked " << unpacked->files << " files, " << HumanBytes(unpacked->bytes) << " into " << extract << "\n";
  }
  if (ctx.json()) {
    std::cout << ToJson(artifact) << "\n";
  } else {
    std::cout << artifact.digest() << "  " << HumanBytes(artifact.size_bytes()) << "  -> " << Printable(target.string()) << "\n";
  }
}

}  // namespace

void AddJobOutputsCommand(CLI::App& job, CliContext& ctx) {
  auto* outputs = job.add_subcommand(
      "outputs", "Download a finished container job's /job/outputs (or --checkpoint: its newest checkpoint) into a directory, digest-checked");
  auto job_id = std::make_shared<int64_t>(0);
  auto dir = std::make_shared<std::string>();
  outputs->add_option("job_id", *job_id)->required();
  auto checkpoint = std::make_shared<bool>(false);
  outputs->add_option("-o,--output-dir", *dir, "Where to unpack them (default ./job-<id>-outputs, or -checkpoint)");
  outputs->add_flag("--checkpoint", *checkpoint, "The job's newest saved /job/checkpoints instead (while it runs, or after)");
  outputs->callback([&ctx, job_id, dir, checkpoint] {
    if (*checkpoint) {
      v1::GetJobCheckpointRequest request;
      request.set_job_id(*job_id);
      v1::JobCheckpoint saved;
      grpc::Status s = v1::ArtifactService::NewStub(ctx.Channel())->GetJobCheckpoint(ctx.Call().get(), request, &saved);
      if (!s.ok()) {
        ctx.exit_code = ReportError(s);
        return;
      }
      if (!ctx.json()) {
        std::cout << "checkpoint of job " << *job_id << " saved by attempt " << saved.attempt() << " at " << UtcTime(saved.saved_at_ms())
                  << std::endl;
      }
      Get(ctx, saved.artifact().digest(), saved.artifact().account(), "",
          dir->empty() ? absl::StrCat("job-", *job_id, "-checkpoint") : *dir);
      return;
    }
    v1::GetJobRequest request;
    request.set_job_id(*job_id);
    v1::Job job;
    grpc::Status s = v1::JobService::NewStub(ctx.Channel())->GetJob(ctx.Call().get(), request, &job);
    if (!s.ok()) {
      ctx.exit_code = ReportError(s);
      return;
    }
    const std::string digest = job.result().container().outputs_digest();
    if (digest.empty()) {
      ctx.exit_code = ReportError(LocalError(
          grpc::StatusCode::FAILED_PRECONDITION,
          absl::StrCat("job ", *job_id, " has no outputs (", v1::JobState_Name(job.state()),
                       job.spec().has_container() ? "; a container job's outputs are stored when it SUCCEEDS with files in /job/outputs)"
                                                  : "; only container jobs leave outputs)")));
      return;
    }
    Get(ctx, digest, job.account(), "", dir->empty() ? absl::StrCat("job-", *job_id, "-outputs") : *dir);
  });
}

void AddArtifactCommands(CLI::App& app, CliContext& ctx) {
  auto* artifact = app.add_subcommand("artifact", "A customer's files on the network: datasets, code bundles, job outputs");
  artifact->require_subcommand(1);
  auto account = std::make_shared<std::string>();
  auto add_account = [account](CLI::App* sub) {
    sub->add_option("--account", *account, "Customer account (default: the API key's own; an admin names one)");
  };

  auto* put = artifact->add_subcommand("put", "Upload a file, or a directory as a tar bundle; prints its digest");
  auto path = std::make_shared<std::string>();
  auto name = std::make_shared<std::string>();
  put->add_option("path", *path, "File or directory")->required();
  put->add_option("--name", *name, "Name shown in listings (default: the file or directory name)");
  add_account(put);
  put->callback([&ctx, path, account, name] { Put(ctx, *path, *account, *name); });

  auto* get = artifact->add_subcommand("get", "Download an artifact (resumes a broken download; checks the digest)");
  auto digest = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  auto extract = std::make_shared<std::string>();
  get->add_option("digest", *digest, "sha256:…")->required();
  get->add_option("-O,--output-file", *output, "Where to write it (default: its name in the current directory)");
  get->add_option("--extract", *extract, "Unpack a bundle into this directory instead");
  add_account(get);
  get->callback([&ctx, digest, account, output, extract] { Get(ctx, *digest, *account, *output, *extract); });

  auto* ls = artifact->add_subcommand("ls", "List the account's artifacts, newest first, and its quota");
  add_account(ls);
  ls->callback([&ctx, account] {
    v1::ListArtifactsRequest request;
    request.set_account(*account);
    auto stub = v1::ArtifactService::NewStub(ctx.Channel());
    ShowPages<v1::ListArtifactsResponse>(
        ctx, request,
        [&](grpc::ClientContext* c, const v1::ListArtifactsRequest& r, v1::ListArtifactsResponse* out) { return stub->ListArtifacts(c, r, out); },
        [](v1::ListArtifactsResponse& r) { return r.mutable_artifacts(); },
        [](const v1::ListArtifactsResponse& r) {
          std::vector<std::vector<std::string>> rows;
          for (const v1::Artifact& a : r.artifacts()) {
            rows.push_back({a.digest(), HumanBytes(a.size_bytes()), KindName(a.kind()), a.name(),
                            a.job_id() == 0 ? "-" : std::to_string(a.job_id()), UtcTime(a.created_at_ms())});
          }
          PrintTable({"DIGEST", "SIZE", "KIND", "NAME", "JOB", "CREATED"}, rows);
          std::cout << r.artifacts_size() << " artifacts; " << HumanBytes(r.used_bytes()) << " of " << HumanBytes(r.quota_bytes())
                    << " quota used\n";
        });
  });

  auto* rm = artifact->add_subcommand("rm", "Delete an artifact (its bytes go once no account holds them)");
  auto rm_digest = std::make_shared<std::string>();
  rm->add_option("digest", *rm_digest, "sha256:…")->required();
  add_account(rm);
  rm->callback([&ctx, rm_digest, account] {
    v1::DeleteArtifactRequest request;
    request.set_account(*account);
    request.set_digest(*rm_digest);
    auto stub = v1::ArtifactService::NewStub(ctx.Channel());
    Show<v1::DeleteArtifactResponse>(
        ctx, [&](grpc::ClientContext* c, v1::DeleteArtifactResponse* out) { return stub->DeleteArtifact(c, request, out); },
        [&](const v1::DeleteArtifactResponse&) { std::cout << "deleted " << *rm_digest << "\n"; });
  });
}

}  // namespace tessera::cli
