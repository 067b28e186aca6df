// `tessera job submit|get|list|cancel|extend|watch|outputs|logs`.
#include <sodium.h>

#include <cstdio>
#include <iostream>

#include "absl/strings/str_format.h"
#include "services/cli/commands.h"
#include "services/cli/job_spec_file.h"
#include "services/common/job_state_machine.h"
#include "services/common/workloads.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::cli {
namespace {

std::string RandomRequestId() {
  unsigned char bytes[12];
  randombytes_buf(bytes, sizeof bytes);
  char hex[sizeof bytes * 2 + 1];
  sodium_bin2hex(hex, sizeof hex, bytes, sizeof bytes);
  return std::string("req-") + hex;
}

// The job's requirements in one line ("H100|A100, >= 40000 MiB, cc >= 8.0, in eu-west, spread"),
// empty when it accepts any GPU.
std::string Requirements(const v1::JobSpec& spec) {
  std::vector<std::string> parts;
  auto joined = [](const auto& list, const char* sep) {
    std::string out;
    for (const std::string& item : list) out += (out.empty() ? "" : sep) + item;
    return out;
  };
  if (spec.gpu_models_size() > 0) parts.push_back(joined(spec.gpu_models(), "|"));
  if (spec.min_gpu_memory_mib() > 0) parts.push_back(">= " + std::to_string(spec.min_gpu_memory_mib()) + " MiB");
  if (!spec.min_compute_capability().empty()) parts.push_back("cc >= " + spec.min_compute_capability());
  if (spec.regions_size() > 0) parts.push_back("in " + joined(spec.regions(), "|"));
  if (spec.min_reputation() > 0) parts.push_back("reputation >= " + std::to_string(spec.min_reputation()));
  if (spec.placement() == v1::GPU_PLACEMENT_SPREAD) parts.push_back("spread over workers");
  return joined(parts, ", ");
}

// Throughput at the scale it has: a CPU's few GFLOP/s are not "0.000 TFLOP/s".
std::string FormatFlops(double tflops) {
  if (tflops >= 1.0) return absl::StrFormat("%.1f TFLOP/s", tflops);
  if (tflops >= 1e-3) return absl::StrFormat("%.1f GFLOP/s", tflops * 1e3);
  return absl::StrFormat("%.1f MFLOP/s", tflops * 1e6);
}

void PrintJob(const v1::Job& job) {
  std::vector<std::vector<std::string>> rows = {
      {"job", std::to_string(job.job_id())},
      {"account", job.account()},
      {"kind", std::string(WorkloadKind(job.spec()))},
      {"state", std::string(JobStateName(job.state()))},
      {"gpus", std::to_string(job.spec().gpu_count())},
      {"bid", std::to_string(job.bid_utok_per_gpu_hour()) + " µT/GPU-h (" + std::string(PriorityClassName(job.priority_class())) + ")"},
      {"hold", FormatTokens(job.hold_utok()) + " tokens (" + std::string(HoldStateName(job.hold_state())) + ")"},
      {"limit", std::to_string(job.max_duration_ms()) + " ms"},
      {"attempt", std::to_string(job.attempt()) + " of " + std::to_string(job.max_attempts())},
      {"worker", job.worker_id() ? std::to_string(job.worker_id()) : "-"},
      {"price", job.price_utok_per_gpu_hour() ? std::to_string(job.price_utok_per_gpu_hour()) + " µT/GPU-h" : "-"},
      {"usage", std::to_string(job.gpu_ms_total()) + " GPU-ms"},
      {"charged", FormatTokens(job.charged_utok()) + " tokens"},
      {"progress", Percent(job.progress_ppm())},
  };
  if (const std::string r = Requirements(job.spec()); !r.empty()) rows.insert(rows.begin() + 5, {"requires", r});
  if (job.spec().has_container()) {
    const v1::ContainerParams& c = job.spec().container();
    std::string command;
    for (const std::string& arg : c.command()) command += (command.empty() ? "" : " ") + arg;
    rows.push_back({"command", command});
    rows.push_back({"runtime", c.image().empty() ? "process sandbox" : "image " + c.image()});
    if (!c.code().empty()) rows.push_back({"code", c.code() + " at /job/code"});
    for (const v1::ContainerInput& in : c.inputs()) rows.push_back({"input", in.artifact() + " at /job/inputs/" + in.path()});
    std::string secrets;
    for (const auto& [name, value] : c.secrets()) secrets += (secrets.empty() ? "" : ", ") + name;
    if (!secrets.empty()) rows.push_back({"secrets", secrets + " (values never shown)"});
  }
  if (!job.wait_reason().empty()) rows.push_back({"waiting", job.wait_reason()});
  const v1::JobResult& result = job.result();
  if (result.has_train_mlp()) {
    rows.push_back({"loss", std::to_string(result.train_mlp().initial_loss()) + " -> " + std::to_string(result.train_mlp().final_loss())});
    rows.push_back({"weights", "sha256:" + result.train_mlp().weights_sha256()});
  }
  if (result.has_gemm_bench()) {
    const v1::GemmBenchResult& g = result.gemm_bench();
    rows.push_back({"throughput", absl::StrFormat("%s on %s (%.3f s timed)", FormatFlops(g.achieved_tflops()), g.backend(), g.timed_seconds())});
  }
  if (result.has_allreduce_bench()) {
    const v1::AllReduceBenchResult& a = result.allreduce_bench();
    rows.push_back({"bandwidth", absl::StrFormat("%.1f GB/s bus, %.1f GB/s algorithm on %s", a.bus_gbps(), a.algorithm_gbps(), a.backend())});
  }
  if (job.has_result() && !job.result().error().empty()) rows.push_back({"error", job.result().error()});
  PrintTable({"FIELD", "VALUE"}, rows);
}

template <typename Fn>
void WithStub(CliContext& ctx, Fn&& fn) {
  auto stub = v1::JobService::NewStub(ctx.Channel());
  grpc::Status s = fn(*stub);
  if (!s.ok()) ctx.exit_code = ReportError(s);
}

void AddSubmit(CLI::App& job, CliContext& ctx) {
  auto* submit = job.add_subcommand("submit", "Submit a job from a YAML or JSON spec file");
  auto file = std::make_shared<std::string>();
  auto account = std::make_shared<std::string>();
  auto request_id = std::make_shared<std::string>();
  submit->add_option("-f,--file", *file, "Job spec (YAML or JSON, fields of tessera.v1.JobSpec)")->required();
  submit->add_option("--account", *account, "Customer account that pays")->required();
  submit->add_option("--request-id", *request_id, "Idempotency key; a retry with the same key returns the same job");
  submit->callback([&ctx, file, account, request_id] {
    absl::StatusOr<v1::JobSpec> spec = LoadJobSpecFile(*file);
    if (!spec.ok()) {
      std::cerr << "error: " << spec.status().message() << "\n";
      ctx.exit_code = 2;
      return;
    }
    v1::SubmitJobRequest request;
    request.set_account(*account);
    request.set_request_id(request_id->empty() ? RandomRequestId() : *request_id);
    *request.mutable_spec() = *std::move(spec);
    WithStub(ctx, [&](v1::JobService::Stub& stub) {
      v1::SubmitJobResponse response;
      grpc::Status s = stub.SubmitJob(ctx.Call().get(), request, &response);
      if (s.ok() && ctx.json()) std::cout << ToJson(response) << "\n";
      if (s.ok() && !ctx.json()) {
        std::cout << (response.deduplicated() ? "already submitted: job " : "submitted job ") << response.job().job_id()
                  << " (hold " << FormatTokens(response.job().hold_utok()) << " tokens, bid "
                  << response.job().bid_utok_per_gpu_hour() << " µT/GPU-h, "
                  << PriorityClassName(response.job().priority_class()) << ")\n";
      }
      return s;
    });
  });
}

void AddGetListCancel(CLI::App& job, CliContext& ctx) {
  auto job_id = std::make_shared<int64_t>(0);
  auto* get = job.add_subcommand("get", "Show one job (and why it waits, if queued)");
  get->add_option("job_id", *job_id)->required();
  get->callback([&ctx, job_id] {
    WithStub(ctx, [&](v1::JobService::Stub& stub) {
      v1::GetJobRequest request;
      request.set_job_id(*job_id);
      v1::Job response;
      grpc::Status s = stub.GetJob(ctx.Call().get(), request, &response);
      if (s.ok()) ctx.json() ? void(std::cout << ToJson(response) << "\n") : PrintJob(response);
      return s;
    });
  });

  auto* cancel = job.add_subcommand("cancel", "Cancel a job; unspent escrow returns to the account");
  cancel->add_option("job_id", *job_id)->required();
  cancel->callback([&ctx, job_id] {
    WithStub(ctx, [&](v1::JobService::Stub& stub) {
      v1::CancelJobRequest request;
      request.set_job_id(*job_id);
      v1::Job response;
      grpc::Status s = stub.CancelJob(ctx.Call().get(), request, &response);
      if (s.ok()) ctx.json() ? void(std::cout << ToJson(response) << "\n") : void(std::cout << "cancelled job " << *job_id << "\n");
      return s;
    });
  });

  auto* extend = job.add_subcommand("extend", "Give a running job more time: raise max_duration_ms and hold the difference");
  auto additional_ms = std::make_shared<int64_t>(0);
  auto request_id = std::make_shared<std::string>();
  extend->add_option("job_id", *job_id)->required();
  extend->add_option("--by-ms", *additional_ms, "Run time to add, milliseconds")->required();
  extend->add_option("--request-id", *request_id, "A retry with the same id extends once (default: random)");
  extend->callback([&ctx, job_id, additional_ms, request_id] {
    WithStub(ctx, [&](v1::JobService::Stub& stub) {
      v1::ExtendJobRequest request;
      request.set_job_id(*job_id);
      request.set_additional_duration_ms(*additional_ms);
      request.set_request_id(request_id->empty() ? RandomIdempotencyKey() : *request_id);
      v1::Job response;
      grpc::Status s = stub.ExtendJob(ctx.Call().get(), request, &response);
      if (s.ok()) {
        ctx.json() ? void(std::cout << ToJson(response) << "\n")
                   : void(std::cout << "job " << *job_id << " may now run " << response.max_duration_ms() << " ms; "
                                    << FormatTokens(response.hold_utok()) << " tokens held\n");
      }
      return s;
    });
  });

  auto* list = job.add_subcommand("list", "List an account's jobs, newest first");
  auto account = std::make_shared<std::string>();
  auto state = std::make_shared<std::string>();
  auto limit = std::make_shared<uint32_t>(50);
  list->add_option("--account", *account)->required();
  list->add_option("--state", *state, "QUEUED, ASSIGNED, RUNNING, SUCCEEDED, FAILED or CANCELLED");
  list->add_option("--limit", *limit, "At most this many jobs");
  list->callback([&ctx, account, state, limit] {
    v1::ListJobsRequest request;
    request.set_account(*account);
    if (!state->empty()) {
      std::optional<v1::JobState> parsed = ParseJobState(*state);
      if (!parsed) {
        std::cerr << "error: --state: unknown state '" << *state << "'\n";
        ctx.exit_code = 2;
        return;
      }
      request.set_state(*parsed);
    }
    request.set_page_size(std::min<uint32_t>(*limit, 500));
    WithStub(ctx, [&](v1::JobService::Stub& stub) {
      v1::ListJobsResponse response;
      grpc::Status s = stub.ListJobs(ctx.Call().get(), request, &response);
      if (!s.ok()) return s;
      if (ctx.json()) {
        std::cout << ToJson(response) << "\n";
        return s;
      }
      std::vector<std::vector<std::string>> rows;
      for (const v1::Job& j : response.jobs()) {
        rows.push_back({std::to_string(j.job_id()), std::string(WorkloadKind(j.spec())), std::string(JobStateName(j.state())),
                        std::to_string(j.spec().gpu_count()), Percent(j.progress_ppm()), FormatTokens(j.charged_utok()),
                        j.wait_reason()});
      }
      PrintTable({"ID", "KIND", "STATE", "GPUS", "PROGRESS", "CHARGED", "WAITING"}, rows);
      return s;
    });
  });
}

}  // namespace

void AddJobCommands(CLI::App& app, CliContext& ctx) {
  CLI::App* job = app.add_subcommand("job", "Submit and follow training jobs")->require_subcommand(1);
  AddSubmit(*job, ctx);
  AddGetListCancel(*job, ctx);
  AddWatchCommand(*job, ctx);
  AddJobOutputsCommand(*job, ctx);
  AddJobLogsCommand(*job, ctx);
}

}  // namespace tessera::cli
