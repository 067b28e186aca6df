// A customer's own program end to end (issue 18), with real processes: its code and data uploaded
// with the CLI, a container job run by a real agent in its bubblewrap sandbox, its progress, its
// outputs stored as an artifact and downloaded, and a failing program's exit code and last lines
// (its secret redacted) in the job's error. Where this machine cannot make sandboxes (the chroot of
// ../shared/tools/fresh-debian), the agent offers no container jobs, and the test says SKIPPED.
#include <catch2/catch.hpp>

#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "services/worker/sandbox/bwrap_sandbox.h"
#include "services/worker/sandbox/podman_sandbox.h"
#include "tests/support/e2e_cluster.h"
#include "tests/support/files.h"

using namespace tessera;
using namespace tessera::testing;

namespace {

bool SandboxHere() {
  static const absl::Status probe = worker::BwrapSandbox().Probe();
  if (probe.ok()) return true;
  const char* required = std::getenv("TESSERA_REQUIRE_SANDBOX");
  if (required != nullptr && std::string(required) != "0") FAIL("TESSERA_REQUIRE_SANDBOX is set, but " << probe.message());
  WARN("SKIPPED (" << probe.message() << ")");
  return false;
}

// Whether podman runs here with the test image made (scripts/make-test-image.sh).
bool PodmanHere() {
  static const absl::Status probe = [] {
    absl::Status s = worker::PodmanSandbox({.state_dir = "/tmp/tessera-e2e-podman"}).Probe();
    if (!s.ok()) return s;
    if (std::system((std::string(TESSERA_SOURCE_DIR) + "/scripts/make-test-image.sh >/dev/null").c_str()) != 0) {
      return absl::FailedPreconditionError("scripts/make-test-image.sh failed");
    }
    return absl::OkStatus();
  }();
  if (probe.ok()) return true;
  const char* required = std::getenv("TESSERA_REQUIRE_SANDBOX");
  if (required != nullptr && std::string(required) != "0") FAIL("TESSERA_REQUIRE_SANDBOX is set, but " << probe.message());
  WARN("SKIPPED podman (" << probe.message() << ")");
  return false;
}

std::string Field(const std::string& out, const std::string& prefix) {
  const size_t at = out.find(prefix);
  REQUIRE(at != std::string::npos);
  return out.substr(at, out.find_first_of(" \n", at) - at);
}

}  // namespace

TEST_CASE("a customer's program runs in the sandbox: its code and data in, its progress, its outputs out", "[e2e][container]") {
  if (!SandboxHere()) return;
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  WriteAll(c.dir() + "/src/train.py",
           "import json, os, sys\n"
           "rows = open('/job/inputs/data/train.csv').read().split()\n"
           "print('rows', len(rows), 'batch', os.environ['BATCH'], 'user', os.getuid())\n"
           "token = open('/run/secrets/token').read()\n"
           "with open(os.environ['TESSERA_PROGRESS_FILE'], 'a') as p:\n"
           "    p.write(json.dumps({'progress': 0.5, 'loss': 0.25}) + '\\n')\n"
           "os.makedirs('/job/outputs/model', exist_ok=True)\n"
           "open('/job/outputs/model/weights.txt', 'w').write('sum=%d\\n' % sum(int(r) for r in rows))\n"
           "print('token length', len(token))\n");
  WriteAll(c.dir() + "/train.csv", "1\n2\n3\n4\n");
  const std::string code = Field(c.Cli({"artifact", "put", c.dir() + "/src", "--name", "code", "--account", "acme"}).out, "sha256:");
  const std::string data = Field(c.Cli({"artifact", "put", c.dir() + "/train.csv", "--account", "acme"}).out, "sha256:");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  command: [python3, /job/code/train.py]\n  env: {BATCH: '64'}\n  secrets: {token: hunter2}\n"
                               "  inputs: [{artifact: '" + data + "', path: data/train.csv}]\n  code: '" + code + "'\n"
                               "  memory_mib: 512\n  cpu_cores: 1\n",
                               "container-1");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED; },
                                 60'000);
  INFO(done.result().error());
  REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.result().container().exit_code() == 0);
  CHECK(done.result().container().peak_memory_bytes() > 0);
  CHECK(done.spec().container().secrets().at("token") == "<redacted>");
  const std::string outputs = done.result().container().outputs_digest();
  REQUIRE_FALSE(outputs.empty());
  const CommandResult fetched = RunWithStderr({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "job",
                                               "outputs", std::to_string(job), "-o", c.dir() + "/got"});
  INFO(fetched.out);
  CHECK(fetched.exit_code == 0);
  CHECK_THAT(fetched.out, Catch::Contains("downloaded outputs of job " + std::to_string(job)) && Catch::Contains("unpacked 1 files"));
  CHECK(ReadAll(c.dir() + "/got/model/weights.txt") == "sum=10\n");
  const std::string listed = c.Cli({"artifact", "ls", "--account", "acme"}).out;
  CHECK_THAT(listed, Catch::Contains(outputs) && Catch::Contains("outputs of job " + std::to_string(job)));
  // The invoice shows the host's share the job's cgroup measured (its memory, at least Python's).
  v1::Invoice invoice;
  for (int i = 0; i < 50; ++i) {
    invoice = FromJson<v1::Invoice>(c.Cli({"-o", "json", "billing", "invoice", std::to_string(job)}).out);
    if (invoice.final()) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(invoice.lines_size() == 1);
  CHECK(invoice.lines(0).peak_memory_mib() > 0);
  CHECK(invoice.lines(0).peak_memory_mib() <= 512);
  CHECK(invoice.lines(0).cpu_ms() > 0);
}

TEST_CASE("a failing program's job is FAILED with its exit code and last lines, its secret redacted, and not retried",
          "[e2e][container]") {
  if (!SandboxHere()) return;
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  command: [sh, -c, 'echo loading; echo \"token is $(cat /run/secrets/token)\"; echo boom >&2; exit 3']\n"
                               "  secrets: {token: hunter2}\n",
                               "container-fails");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_FAILED; }, 60'000);
  CHECK(done.result().error() == "exit code 3: loading\ntoken is <redacted>\nboom");
  CHECK(done.attempt() == 1);
  const CommandResult none = c.Cli({"job", "outputs", std::to_string(job)}, false);
  CHECK(none.exit_code == 1);
}

TEST_CASE("a job that leaves links out of /job/outputs, or tries the machine, gets nothing out of it", "[e2e][container]") {
  if (!SandboxHere()) return;
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  command: [sh, -c, 'cat /etc/shadow; ls ../../; echo ok > /job/outputs/ok; ln -s /etc/shadow /job/outputs/leak']\n",
                               "container-links");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_FAILED || j.state() == v1::JOB_STATE_SUCCEEDED; },
                                 60'000);
  CHECK(done.state() == v1::JOB_STATE_FAILED);
  // The error names the link as the job sees it, nothing of the worker's own paths.
  CHECK(done.result().error() ==
        "/job/outputs: leak: a symbolic link to '/etc/shadow' cannot be bundled: a link may only point down its own directory");
  CHECK(done.result().container().outputs_digest().empty());
}

TEST_CASE("a program's stdout and stderr are the job's logs, followed live and read after, its secret redacted", "[e2e][container][logs]") {
  if (!SandboxHere()) return;
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  command: [sh, -c, 'for i in $(seq 1 30); do echo \"step $i\"; sleep 0.05; done;"
                               " echo \"token=$(cat /run/secrets/token)\"; echo careful >&2']\n"
                               "  secrets: {token: hunter2-s3cret}\n",
                               "container-logs");
  // A follower started before the program prints its first line gets every line, once, and ends with the job.
  testing::ChildProcess follower({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "job", "logs",
                                  std::to_string(job), "-f"},
                                 c.dir() + "/follow.log");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED; },
                                 60'000);
  INFO(done.result().error());
  REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
  const int status = follower.Wait(30'000);
  CHECK(status == 0);
  const std::string followed = ReadAll(c.dir() + "/follow.log");
  INFO(followed);
  CHECK_THAT(followed, Catch::StartsWith("── attempt 1 ──\nstep 1\nstep 2\n"));
  CHECK_THAT(followed, Catch::Contains("step 30\ntoken=<redacted>\n") && Catch::Contains("careful"));
  CHECK_THAT(followed, !Catch::Contains("hunter2-s3cret"));
  // Read after: stdout to stdout, stderr to stderr, with timestamps; the last lines only; as JSON.
  const CommandResult out = c.Cli({"job", "logs", std::to_string(job), "-t"});
  CHECK_THAT(out.out, Catch::Contains("Z step 1\n") && !Catch::Contains("careful"));
  const CommandResult both = RunWithStderr({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "job", "logs",
                                            std::to_string(job), "--tail", "2"});
  CHECK(both.out == "── attempt 1 ──\ntoken=<redacted>\ncareful\n");
  const CommandResult json = c.Cli({"-o", "json", "job", "logs", std::to_string(job), "--tail", "1"});
  CHECK_THAT(json.out, Catch::Contains("\"stream\":\"LOG_STREAM_STDERR\"") && Catch::Contains("\"text\":\"careful\""));
  CHECK(c.Sql("SELECT count(*) FROM job_logs WHERE closed AND job_id = " + std::to_string(job)) == "1");
}

TEST_CASE("a lost worker costs a job only the steps since its last checkpoint: the next attempt resumes from it", "[e2e][container][checkpoints]") {
  if (!SandboxHere()) return;
  Cluster c;
  c.OpenMarket();
  c.StartWorker("w1", "1000000");
  WriteAll(c.dir() + "/src/train.py",
           "import os, time\n"
           "d = os.environ['TESSERA_CHECKPOINT_DIR']\n"
           "step = int(open(d + '/step').read()) if os.path.exists(d + '/step') else 0\n"
           "print('resumed' if os.path.exists(d + '/step') else 'fresh', 'at step', step,\n"
           "      'restored', os.environ.get('TESSERA_RESTORED_CHECKPOINT', 'none'), flush=True)\n"
           "if os.path.exists(d + '/half.pt.tmp'): print('HALF-WRITTEN CHECKPOINT RESTORED', flush=True)\n"
           "open(d + '/half.pt.tmp', 'w').write('never committed')\n"
           "while step < 60:\n"
           "    time.sleep(0.1)\n"
           "    step += 1\n"
           "    with open(d + '/step.tmp', 'w') as f: f.write(str(step))\n"
           "    os.replace(d + '/step.tmp', d + '/step')\n"
           "    print('step', step, flush=True)\n"
           "open('/job/outputs/final', 'w').write(str(step))\n");
  const std::string code = Field(c.Cli({"artifact", "put", c.dir() + "/src", "--name", "code", "--account", "acme"}).out, "sha256:");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  command: [python3, /job/code/train.py]\n  code: '" + code + "'\n  checkpoint_interval_s: 1\n",
                               "container-resume");
  const std::string id = std::to_string(job);
  // Mid-training, with at least one checkpoint saved, the worker dies without a word.
  for (int i = 0; i < 300 && c.Sql("SELECT count(*) FROM job_checkpoints WHERE job_id = " + id) == "0"; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  REQUIRE(c.Sql("SELECT count(*) FROM job_checkpoints WHERE job_id = " + id) != "0");
  c.worker("w1").Signal(SIGKILL);
  c.worker("w1").Wait(10'000);
  c.StartWorker("w2", "1000000");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED; },
                                 90'000);
  INFO(done.result().error());
  REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.attempt() == 2);
  const std::string logs = c.Cli({"job", "logs", id}).out;
  INFO(logs);
  CHECK_THAT(logs, Catch::Contains("── attempt 1 ──\nfresh at step 0 restored none\n"));
  CHECK_THAT(logs, Catch::Contains("[tessera] checkpoint saved: sha256:"));
  CHECK_THAT(logs, Catch::Contains("── attempt 2 ──\n[tessera] restored checkpoint sha256:"));
  CHECK_THAT(logs, Catch::Contains("resumed at step ") && Catch::Contains("step 60\n"));
  CHECK_THAT(logs, !Catch::Contains("HALF-WRITTEN"));
  // Attempt 2 started where the checkpoint left attempt 1, not from 0.
  const size_t at = logs.find("resumed at step ");
  REQUIRE(at != std::string::npos);
  CHECK(std::stoi(logs.substr(at + 16)) > 0);
  // The newest checkpoint, downloadable by the customer, holds only what was committed.
  const CommandResult got = c.Cli({"job", "outputs", id, "--checkpoint", "-o", c.dir() + "/ckpt"});
  CHECK_THAT(got.out, Catch::Contains("checkpoint of job " + id + " saved by attempt"));
  CHECK(std::filesystem::exists(c.dir() + "/ckpt/step"));
  CHECK_FALSE(std::filesystem::exists(c.dir() + "/ckpt/half.pt.tmp"));
}

TEST_CASE("a job naming an OCI image runs in it with podman; a worker without podman is never given one", "[e2e][container][podman]") {
  if (!SandboxHere() || !PodmanHere()) return;
  Cluster c;
  c.OpenMarket();
  // Only a worker that runs no images, first: the job waits, saying why.
  c.StartWorker("w-no-images", "1000000", "", {"--no-images"});
  WriteAll(c.dir() + "/train.csv", "1\n2\n3\n4\n");
  const std::string data = Field(c.Cli({"artifact", "put", c.dir() + "/train.csv", "--account", "acme"}).out, "sha256:");
  const int64_t job = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                               "  image: localhost/tessera-tools:1\n"
                               "  command: [python3, -c, \"import os, sys; rows = open('/job/inputs/train.csv').read().split(); "
                               "open('/job/outputs/sum.txt', 'w').write(str(sum(map(int, rows)))); "
                               "print('in', open('/etc/os-release').read() if os.path.exists('/etc/os-release') else 'the image', os.getuid(), "
                               "open('/run/secrets/token').read())\"]\n"
                               "  secrets: {token: hunter2}\n"
                               "  inputs: [{artifact: '" + data + "', path: train.csv}]\n  memory_mib: 512\n",
                               "image-1");
  const v1::Job waiting = c.WaitFor(job, [](const v1::Job& j) { return !j.wait_reason().empty(); }, 30'000);
  CHECK(waiting.state() == v1::JOB_STATE_QUEUED);
  CHECK_THAT(waiting.wait_reason(), Catch::Contains("container_oci"));
  // A worker with podman takes it.
  c.StartWorker("w-images", "1000000");
  const v1::Job done = c.WaitFor(job, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_SUCCEEDED || j.state() == v1::JOB_STATE_FAILED; },
                                 90'000);
  INFO(done.result().error());
  REQUIRE(done.state() == v1::JOB_STATE_SUCCEEDED);
  CHECK(done.result().container().peak_memory_bytes() > 0);
  const CommandResult logs = RunWithStderr({kBin + "/tessera", "--server", c.address(), "--api-key-file", c.AdminKeyFile(), "job", "logs",
                                            std::to_string(job)});
  CHECK_THAT(logs.out, Catch::Contains("in the image 65534 <redacted>"));  // the image's /etc, not the host's
  REQUIRE(c.Cli({"job", "outputs", std::to_string(job), "-o", c.dir() + "/got"}).exit_code == 0);
  CHECK(ReadAll(c.dir() + "/got/sum.txt") == "10");
  // An image no worker holds: the job fails at once saying so (nothing is pulled).
  const int64_t missing = c.Submit("gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 120000\ncontainer:\n"
                                   "  image: localhost/not-imported:1\n  command: ['true']\n",
                                   "image-missing");
  const v1::Job failed = c.WaitFor(missing, [](const v1::Job& j) { return j.state() == v1::JOB_STATE_FAILED; }, 60'000);
  CHECK_THAT(failed.result().error(), Catch::Contains("image 'localhost/not-imported:1' is not on this worker"));
}
