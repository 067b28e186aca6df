#include "services/worker/container_workload.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <future>
#include <thread>
#include <cerrno>
#include <cstring>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "spdlog/spdlog.h"
#include "services/common/bundle.h"
#include "services/worker/checkpoint_saver.h"
#include "services/worker/job_output.h"
#include "services/worker/secret_redactor.h"

namespace tessera::worker {
namespace {

namespace fs = std::filesystem;

constexpr auto kOutputDrain = std::chrono::seconds(2);
// The last lines of a stopped program come after its lease ended: the server takes them for 2 minutes.
constexpr auto kLogFinish = std::chrono::seconds(30);

// The number after `"key":` in a JSON line, if there is one.
std::optional<double> NumberAfter(const std::string& line, std::string_view key) {
  const size_t at = line.find(absl::StrCat("\"", std::string(key), "\""));
  if (at == std::string::npos) return std::nullopt;
  size_t colon = line.find(':', at);
  if (colon == std::string::npos) return std::nullopt;
  size_t end = line.find_first_of(",}", colon + 1);
  double value = 0;
  if (!absl::SimpleAtod(absl::StripAsciiWhitespace(line.substr(colon + 1, end - colon - 1)), &value)) return std::nullopt;
  return value;
}

// The last `max_bytes` of a regular file the job may have written or replaced: opened without
// following a link and without blocking (a FIFO), so a job cannot make the agent read /dev/zero,
// hang on a pipe, or fill its memory.
std::string ReadTail(const fs::path& path, size_t max_bytes) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return "";
  std::string out;
  struct stat st {};
  if (::fstat(fd, &st) == 0 && S_ISREG(st.st_mode)) {
    const off_t from = st.st_size > static_cast<off_t>(max_bytes) ? st.st_size - static_cast<off_t>(max_bytes) : 0;
    out.resize(static_cast<size_t>(st.st_size - from));
    const ssize_t n = ::pread(fd, out.data(), out.size(), from);
    out.resize(n > 0 ? static_cast<size_t>(n) : 0);
  }
  ::close(fd);
  return out;
}

absl::Status Errno(std::string_view what, const fs::path& path) {
  return absl::InternalError(absl::StrCat(std::string(what), " ", path.string(), ": ", std::strerror(errno)));
}

}  // namespace

absl::Status ContainerWorkload::Fetch(const fs::path& dir, const v1::JobLease& lease) {
  const v1::ContainerParams& c = assignment_.spec().container();
  const fs::path download = dir / "download.part";
  std::error_code ec;
  if (!c.code().empty()) {
    absl::StatusOr<v1::Artifact> code = host_.artifacts->Download(lease, c.code(), download, &cancel_flag());
    if (!code.ok()) return code.status();
    absl::StatusOr<BundleStats> unpacked = UnpackBundle(download, dir / "code", {});
    if (!unpacked.ok()) return absl::InvalidArgumentError(absl::StrCat("spec.container.code: ", unpacked.status().message()));
  }
  for (const v1::ContainerInput& in : c.inputs()) {
    const fs::path target = dir / "inputs" / in.path();  // a relative path without "..": checked at submit
    fs::create_directories(target.parent_path(), ec);
    absl::StatusOr<v1::Artifact> input = host_.artifacts->Download(lease, in.artifact(), download, &cancel_flag());
    if (!input.ok()) return input.status();
    if (input->kind() == v1::ARTIFACT_KIND_BUNDLE) {
      absl::StatusOr<BundleStats> unpacked = UnpackBundle(download, target, {});
      if (!unpacked.ok()) return absl::InvalidArgumentError(absl::StrCat("spec.container.inputs '", in.path(), "': ", unpacked.status().message()));
    } else {
      fs::rename(download, target, ec);
      if (ec) return absl::InternalError(absl::StrCat("cannot place input ", in.path(), ": ", ec.message()));
    }
  }
  fs::remove(download, ec);
  return absl::OkStatus();
}

absl::StatusOr<std::optional<v1::JobCheckpoint>> ContainerWorkload::Restore(const fs::path& dir, const v1::JobLease& lease) {
  absl::StatusOr<std::optional<v1::JobCheckpoint>> latest;
  absl::StatusOr<v1::Artifact> got;
  const fs::path download = dir / "download.part";
  // A server restarting is waited out a little; past that the attempt starts without its checkpoint.
  for (int tries = 1;; ++tries) {
    latest = host_.artifacts->LatestCheckpoint(lease);
    if (latest.ok() && !latest->has_value()) return latest;
    if (latest.ok()) got = host_.artifacts->Download(lease, (*latest)->artifact().digest(), download, &cancel_flag());
    const absl::Status s = latest.ok() ? got.status() : latest.status();
    if (s.ok()) break;
    const bool transient = s.code() == absl::StatusCode::kUnavailable || s.code() == absl::StatusCode::kDeadlineExceeded;
    if (!transient || tries == 3 || cancelled()) return s;
    std::this_thread::sleep_for(std::chrono::seconds(2));
  }
  absl::StatusOr<BundleStats> unpacked = UnpackBundle(download, dir / "checkpoints", {.max_bytes = host_.max_outputs_bytes, .max_entries = 100'000});
  if (!unpacked.ok()) return absl::DataLossError(absl::StrCat("checkpoint ", got->digest(), ": ", unpacked.status().message()));
  std::error_code ec;
  fs::remove(download, ec);
  // The program replaces and deletes what it restored.
  for (fs::recursive_directory_iterator it(dir / "checkpoints", ec), end; !ec && it != end; it.increment(ec)) {
    if (::lchown(it->path().c_str(), host_.uid, host_.gid) != 0) return Errno("chown", it->path());
  }
  return latest;
}

SandboxSpec ContainerWorkload::SpecFor(const fs::path& dir, const std::optional<v1::JobCheckpoint>& restored) const {
  const v1::ContainerParams& c = assignment_.spec().container();
  const int64_t gpus = std::max(1, assignment_.gpu_indexes_size());
  SandboxSpec spec;
  spec.name = absl::StrCat("job-", assignment_.job_id(), "-", assignment_.attempt());
  spec.image = c.image();
  spec.command.assign(c.command().begin(), c.command().end());
  spec.env.insert(c.env().begin(), c.env().end());
  spec.env["TESSERA_JOB_ID"] = std::to_string(assignment_.job_id());
  spec.env["TESSERA_ATTEMPT"] = std::to_string(assignment_.attempt());
  spec.env["TESSERA_PROGRESS_FILE"] = "/job/.tessera/progress";
  spec.env["TESSERA_CHECKPOINT_DIR"] = "/job/checkpoints";
  if (restored) spec.env["TESSERA_RESTORED_CHECKPOINT"] = restored->artifact().digest();
  std::vector<std::string> visible;
  for (uint32_t index : assignment_.gpu_indexes()) {
    visible.push_back(std::to_string(index));
    const std::string node = absl::StrCat("/dev/nvidia", index);
    std::error_code ec;
    if (fs::exists(node, ec)) spec.devices.push_back(node);
  }
  if (!spec.devices.empty()) {
    for (const char* shared : {"/dev/nvidiactl", "/dev/nvidia-uvm", "/dev/nvidia-uvm-tools"}) {
      std::error_code ec;
      if (fs::exists(shared, ec)) spec.devices.push_back(shared);
    }
  }
  spec.env["CUDA_VISIBLE_DEVICES"] = absl::StrJoin(visible, ",");
  spec.secrets.insert(c.secrets().begin(), c.secrets().end());
  spec.mounts = {{.host = dir / "code", .inside = "/job/code", .writable = false},
                 {.host = dir / "inputs", .inside = "/job/inputs", .writable = false},
                 {.host = dir / "outputs", .inside = "/job/outputs", .writable = true},
                 {.host = dir / "checkpoints", .inside = "/job/checkpoints", .writable = true},
                 {.host = dir / "meta", .inside = "/job/.tessera", .writable = true}};
  spec.network = c.network() && host_.network_allowed;
  spec.uid = host_.uid;
  spec.gid = host_.gid;
  spec.limits = {.memory_bytes = (c.memory_mib() > 0 ? static_cast<int64_t>(c.memory_mib()) : host_.memory_mib_per_gpu * gpus) << 20,
                 .max_pids = host_.max_pids,
                 .cpu_millicores = c.cpu_cores() > 0 ? int64_t{c.cpu_cores()} * 1000 : host_.cpu_millicores_per_gpu * gpus};
  return spec;
}

void ContainerWorkload::ReadProgress(const fs::path& file) {
  const std::string text = ReadTail(file, 4'096);  // the job's own file: never followed, never all of it
  std::string last;
  for (absl::string_view line : absl::StrSplit(text, '\n', absl::SkipWhitespace())) last = std::string(line);
  if (last.empty()) return;
  const std::optional<double> share = NumberAfter(last, "progress");
  const std::optional<double> loss = NumberAfter(last, "loss");
  WorkloadProgress progress = Progress();
  if (share) progress.progress_ppm = static_cast<uint32_t>(std::clamp(*share, 0.0, 1.0) * 1'000'000);
  if (loss) progress.loss = static_cast<float>(*loss);
  SetProgress(progress);
}

absl::StatusOr<v1::JobResult> ContainerWorkload::Run() {
  const v1::ContainerParams& c = assignment_.spec().container();
  if (host_.sandbox == nullptr || host_.artifacts == nullptr) {
    return absl::FailedPreconditionError("this worker runs no container jobs (its sandbox is off)");
  }
  Sandbox* sandbox = c.image().empty() ? host_.sandbox : host_.images;
  if (sandbox == nullptr) return absl::FailedPreconditionError("this worker runs no OCI images (podman is off here), only its process sandbox");
  if (c.network() && !host_.network_allowed) {
    return absl::FailedPreconditionError("the job asks for the network and this worker's provider does not allow it");
  }
  const fs::path dir = host_.jobs_dir / absl::StrCat("job-", assignment_.job_id(), "-", assignment_.attempt());
  std::error_code ec;
  // bubblewrap, running as the job user, must reach the attempt's directory to mount it, but no
  // job user may list the jobs there.
  fs::create_directories(host_.jobs_dir, ec);
  fs::permissions(host_.jobs_dir, fs::perms(0711), ec);
  fs::remove_all(dir, ec);
  for (const char* sub : {"code", "inputs", "outputs", "checkpoints", "meta"}) {
    fs::create_directories(dir / sub, ec);
    if (ec) return absl::InternalError(absl::StrCat("cannot create ", (dir / sub).string(), ": ", ec.message()));
  }
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{dir};
  fs::permissions(dir, fs::perms(0755), ec);
  for (const char* writable : {"outputs", "checkpoints", "meta"}) {
    if (::chown((dir / writable).c_str(), host_.uid, host_.gid) != 0) return Errno("chown", dir / writable);
  }
  v1::JobLease lease;
  lease.set_job_id(assignment_.job_id());
  lease.set_attempt(assignment_.attempt());
  lease.set_worker_id(assignment_.node_worker_ids_size() > static_cast<int>(assignment_.node_rank())
                          ? assignment_.node_worker_ids(static_cast<int>(assignment_.node_rank()))
                          : host_.worker_id);
  if (absl::Status fetched = Fetch(dir, lease); !fetched.ok()) return fetched;
  // A requeued attempt, on whatever worker, starts from the job's newest checkpoint; one that
  // cannot be had is not worth the job: the attempt starts without it, saying so.
  absl::StatusOr<std::optional<v1::JobCheckpoint>> restored = Restore(dir, lease);
  if (cancelled()) return absl::CancelledError("cancelled");
  std::string not_restored;
  if (!restored.ok()) {
    not_restored = std::string(restored.status().message());
    spdlog::warn("job {} attempt {}: starting without its checkpoint: {}", assignment_.job_id(), assignment_.attempt(), not_restored);
    restored = std::nullopt;
    fs::remove_all(dir / "checkpoints", ec);
    fs::create_directories(dir / "checkpoints", ec);
    if (::chown((dir / "checkpoints").c_str(), host_.uid, host_.gid) != 0) return Errno("chown", dir / "checkpoints");
  }

  static const SystemClock system_clock;
  const Clock& clock = host_.clock != nullptr ? *host_.clock : system_clock;
  const SecretRedactor redact(c.secrets());
  std::unique_ptr<JobLogShipper> shipper;
  if (host_.logs != nullptr) shipper = std::make_unique<JobLogShipper>(*host_.logs, lease, clock, LogShippingOptions{});
  absl::StatusOr<std::unique_ptr<JobOutput>> output = JobOutput::Open(clock, redact, shipper.get());
  if (!output.ok()) return output.status();
  CheckpointSaver saver(*host_.artifacts, lease, dir / "checkpoints", dir / "snapshot",
                        absl::StrCat("checkpoint of job ", assignment_.job_id(), " attempt ", assignment_.attempt()), host_.max_outputs_bytes);
  auto note = [&](const std::string& text) {
    if (shipper != nullptr) shipper->AddSystemLine(text);
  };
  if (!not_restored.empty()) note(absl::StrCat("the job's newest checkpoint could not be restored (", not_restored, "); starting without it"));
  if (*restored) {
    saver.MarkSaved();  // what was restored is not stored again
    note(absl::StrCat("restored checkpoint ", (*restored)->artifact().digest(), " (", (*restored)->artifact().size_bytes(),
                      " bytes) saved by attempt ", (*restored)->attempt()));
  }
  auto saved = [&](const absl::StatusOr<std::optional<v1::Artifact>>& s) {
    if (!s.ok()) {
      spdlog::warn("job {} attempt {}: checkpoint not saved: {}", assignment_.job_id(), assignment_.attempt(), std::string(s.status().message()));
      note(absl::StrCat("checkpoint not saved: ", s.status().message()));
    } else if (s->has_value()) {
      note(absl::StrCat("checkpoint saved: ", (*s)->digest(), " (", (*s)->size_bytes(), " bytes)"));
    }
  };
  const SandboxSpec spec = SpecFor(dir, *restored);
  absl::StatusOr<std::unique_ptr<SandboxProcess>> process = sandbox->Start(spec, (*output)->stdout_fd(), (*output)->stderr_fd());
  (*output)->Started();
  if (!process.ok()) return process.status();
  // One node of a spread job saves (rank 0, as in data-parallel training); every node restores it.
  const bool saves = assignment_.node_rank() == 0;
  const auto interval = std::chrono::seconds(saves ? c.checkpoint_interval_s() : 0);
  auto next_save = std::chrono::steady_clock::now() + interval;
  std::future<absl::StatusOr<std::optional<v1::Artifact>>> saving;  // a save runs beside the program
  auto meter = [&] {
    const CgroupUsage used = (*process)->Usage();
    WorkloadProgress p = Progress();
    p.cpu_ms = std::max(p.cpu_ms, used.cpu_usage_us / 1000);
    p.peak_memory_mib = std::max(p.peak_memory_mib, used.peak_memory_bytes >> 20);
    SetProgress(p);
  };
  while (!(*process)->Wait(std::chrono::milliseconds(200))) {
    ReadProgress(dir / "meta" / "progress");
    meter();
    if (cancelled()) (*process)->Stop(host_.stop_grace);
    if (saving.valid() && saving.wait_for(std::chrono::seconds(0)) == std::future_status::ready) saved(saving.get());
    if (interval.count() > 0 && !saving.valid() && std::chrono::steady_clock::now() >= next_save && !cancelled()) {
      saving = std::async(std::launch::async, [&saver] { return saver.Save(); });
      next_save = std::chrono::steady_clock::now() + interval;
    }
  }
  ReadProgress(dir / "meta" / "progress");
  meter();
  if (saving.valid()) saved(saving.get());
  const SandboxExit exit = (*process)->Exit();
  const bool stopped = cancelled() || exit.stopped;
  // A stopped program (preempted, drained, cancelled) saved what it could in its grace period.
  if (stopped && saves) saved(saver.Save());
  // Every line the program wrote is with the server before its result is: a reader that saw the
  // job end has seen its output.
  (*output)->Close(kOutputDrain);
  if (shipper != nullptr) shipper->Finish(kLogFinish);
  if (stopped) return absl::CancelledError("cancelled");
  if (exit.oom_killed) return absl::ResourceExhaustedError(absl::StrCat("out of memory (limit ", spec.limits.memory_bytes >> 20, " MiB)"));
  if (exit.signal != 0) return absl::AbortedError(absl::StrCat("killed by signal ", exit.signal, ": ", (*output)->Tail()));
  if (exit.exit_code != 0) return absl::AbortedError(absl::StrCat("exit code ", exit.exit_code, ": ", (*output)->Tail()));

  v1::JobResult result;
  v1::ContainerResult* out = result.mutable_container();
  out->set_exit_code(0);
  out->set_cpu_ms(exit.usage.cpu_usage_us / 1000);
  out->set_peak_memory_bytes(exit.usage.peak_memory_bytes);
  if (!fs::is_empty(dir / "outputs", ec)) {
    // Links are stored as links, never followed: what a job leaves pointing outside /job/outputs
    // carries no bytes from outside.
    absl::StatusOr<BundleStats> packed = WriteBundle(dir / "outputs", dir / "outputs.tar", host_.max_outputs_bytes);
    if (!packed.ok()) return absl::InvalidArgumentError(absl::StrCat("/job/outputs: ", packed.status().message()));
    absl::StatusOr<v1::Artifact> stored =
        host_.artifacts->Upload(lease, dir / "outputs.tar", v1::ARTIFACT_KIND_OUTPUTS, absl::StrCat("outputs of job ", assignment_.job_id()));
    if (!stored.ok()) return stored.status();
    out->set_outputs_digest(stored->digest());
    out->set_outputs_size_bytes(stored->size_bytes());
  }
  return result;
}

}  // namespace tessera::worker
