#include <catch2/catch.hpp>

#include <filesystem>

#include "services/cli/job_spec_file.h"
#include "services/intake/job_spec_validator.h"

using tessera::cli::ParseJobSpec;

TEST_CASE("YAML and JSON job specs parse to the same spec", "[cli]") {
  auto yaml = ParseJobSpec(
      "kind: train_mlp\ngpu_count: 1\ngpu_models: [CPU]\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 600000\n"
      "priority_class: PRIORITY_CLASS_SPOT\ntrain_mlp:\n  seed: 7\n  input_dim: 8\n  learning_rate_micros: 50000\n");
  REQUIRE(yaml.ok());
  CHECK(yaml->kind() == "train_mlp");
  CHECK(yaml->gpu_models(0) == "CPU");
  CHECK(yaml->bid_utok_per_gpu_hour() == 2'000'000);
  CHECK(yaml->priority_class() == tessera::v1::PRIORITY_CLASS_SPOT);
  CHECK(yaml->train_mlp().seed() == 7);
  auto json = ParseJobSpec(R"({"kind":"train_mlp","gpu_count":1,"gpu_models":["CPU"],"bid_utok_per_gpu_hour":"2000000",
    "max_duration_ms":600000,"priority_class":"PRIORITY_CLASS_SPOT","train_mlp":{"seed":7,"input_dim":8,"learning_rate_micros":50000}})");
  REQUIRE(json.ok());
  CHECK(json->SerializeAsString() == yaml->SerializeAsString());
}

TEST_CASE("a spec names its workload by its parameters; a file that also says kind: still reads", "[cli]") {
  const std::string body = "gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 600000\ngemm_bench:\n  n: 64\n  iterations: 2\n";
  auto modern = ParseJobSpec(body);
  REQUIRE(modern.ok());
  CHECK(modern->has_gemm_bench());
  CHECK(modern->kind().empty());
  CHECK(tessera::intake::ValidateJobSpec(*modern).ok());
  auto older = ParseJobSpec("kind: gemm_bench\n" + body);
  REQUIRE(older.ok());
  CHECK(tessera::intake::ValidateJobSpec(*older).ok());
  CHECK(older->gemm_bench().SerializeAsString() == modern->gemm_bench().SerializeAsString());
  // Two workloads in one file is an error, not the last one silently winning.
  auto two = ParseJobSpec(body + "sleep:\n  duration_ms: 5\n");
  REQUIRE_FALSE(two.ok());
  CHECK_THAT(std::string(two.status().message()), Catch::Contains("sleep"));
}

TEST_CASE("unknown fields and broken files are clear errors", "[cli]") {
  auto unknown = ParseJobSpec("kind: sleep\ngpu_cuont: 1\n");
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(std::string(unknown.status().message()), Catch::Contains("gpu_cuont"));
  CHECK_FALSE(ParseJobSpec("kind: [unclosed\n").ok());
}

TEST_CASE("a field given twice is refused in YAML and JSON, in either spelling, not silently overwritten", "[cli]") {
  const auto refused = [](const std::string& text) {
    absl::StatusOr<tessera::v1::JobSpec> spec = ParseJobSpec(text);
    REQUIRE(spec.status().code() == absl::StatusCode::kInvalidArgument);
    return std::string(spec.status().message());
  };
  CHECK_THAT(refused("kind: sleep\ngpu_count: 1\nbid_utok_per_gpu_hour: 5\ngpu_count: 64\n"),
             Catch::Contains("'gpu_count' is given twice (lines 2 and 4)"));
  CHECK_THAT(refused("kind: sleep\ngpu_count: 1\ngpuCount: 64\n"), Catch::Contains("'gpuCount' is given twice"));
  CHECK_THAT(refused("kind: train_mlp\ntrain_mlp:\n  seed: 1\n  seed: 2\n"), Catch::Contains("'seed' is given twice"));
  CHECK_THAT(refused(R"({"kind":"sleep","gpu_count":1,"gpu_count":64})"), Catch::Contains("'gpu_count' is given twice in one object"));
  CHECK_THAT(refused(R"({"kind":"sleep","gpu_count":1,"gpuCount":64})"), Catch::Contains("'gpuCount' is given twice"));
  CHECK_THAT(refused(R"({"kind":"sleep","gpu_count":1,"\u0067pu_count":64})"), Catch::Contains("given twice"));
  CHECK_THAT(refused(R"({"train_mlp":{"seed":1,"seed":2}})"), Catch::Contains("'seed' is given twice"));
  // The same key in sibling objects, or as a value, is not a repeat.
  CHECK(ParseJobSpec(R"({"kind":"gpu_count","gpu_models":["kind","kind"],"gpu_count":1})").ok());
  CHECK(ParseJobSpec("kind: kind\ngpu_models: [kind, kind]\n").ok());
}

TEST_CASE("a YAML alias bomb, a huge file and deep nesting are refused at once", "[cli]") {
  // 9 levels of 9 aliases: 387 million strings if expanded.
  std::string bomb = "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n";
  for (char level = 'b'; level <= 'i'; ++level) {
    const std::string prev = std::string(1, static_cast<char>(level - 1));
    bomb += std::string(1, level) + ": &" + level + " [";
    for (int i = 0; i < 9; ++i) bomb += (i ? ",*" : "*") + prev;
    bomb += "]\n";
  }
  REQUIRE(bomb.size() < 400);
  absl::StatusOr<tessera::v1::JobSpec> spec = ParseJobSpec(bomb);
  REQUIRE(spec.status().code() == absl::StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(spec.status().message()), Catch::Contains("YAML aliases"));

  CHECK_THAT(std::string(ParseJobSpec("kind: " + std::string(tessera::cli::kMaxSpecBytes, 'x')).status().message()),
             Catch::Contains("more than the limit"));
  CHECK_THAT(std::string(ParseJobSpec("kind: " + std::string(200, '[') + std::string(200, ']')).status().message()),
             Catch::Contains("nested deeper than 64"));
  CHECK_THAT(std::string(ParseJobSpec("{\"a\":" + std::string(200, '[') + std::string(200, ']') + "}").status().message()),
             Catch::Contains("nested deeper than 64"));
}

TEST_CASE("requirements parse from YAML, the compute capability as text", "[cli]") {
  auto spec = ParseJobSpec(
      "kind: sleep\ngpu_count: 6\nmin_gpu_memory_mib: 40960\nmin_compute_capability: 8.0\nregions: [eu-west, eu-central]\n"
      "min_reputation: 400\nplacement: GPU_PLACEMENT_SPREAD\nbid_utok_per_gpu_hour: 3000000\nmax_duration_ms: 600000\n"
      "sleep:\n  duration_ms: 5000\n");
  REQUIRE(spec.ok());
  CHECK(spec->min_gpu_memory_mib() == 40'960);
  CHECK(spec->min_compute_capability() == "8.0");
  CHECK(spec->regions_size() == 2);
  CHECK(spec->min_reputation() == 400);
  CHECK(spec->placement() == tessera::v1::GPU_PLACEMENT_SPREAD);
}

TEST_CASE("every example job spec parses and validates", "[cli]") {
  int seen = 0;
  for (const auto& entry : std::filesystem::directory_iterator(std::filesystem::path(TESSERA_SOURCE_DIR) / "examples")) {
    if (entry.is_directory()) continue;  // a customer's program with its data (examples/pytorch)
    INFO(entry.path().string());
    auto spec = tessera::cli::LoadJobSpecFile(entry.path().string());
    REQUIRE(spec.ok());
    CHECK(tessera::intake::ValidateJobSpec(*spec).ok());
    ++seen;
  }
  CHECK(seen >= 3);
}

TEST_CASE("a container spec reads from YAML: command, env and secrets maps, inputs", "[cli]") {
  auto spec = ParseJobSpec(
      "gpu_count: 1\nbid_utok_per_gpu_hour: 2000000\nmax_duration_ms: 3600000\ncontainer:\n"
      "  command: [python3, /job/code/train.py, --epochs, '20']\n  env: {BATCH: '64'}\n  secrets: {hf_token: abc}\n"
      "  inputs: [{artifact: 'sha256:" + std::string(64, 'a') + "', path: train.csv}]\n  code: 'sha256:" + std::string(64, 'b') +
      "'\n  checkpoint_interval_s: 60\n  cpu_cores: 4\n  memory_mib: 16384\n  network: false\n");
  INFO(spec.status().ToString());
  REQUIRE(spec.ok());
  CHECK(spec->container().command_size() == 4);
  CHECK(spec->container().env().at("BATCH") == "64");
  CHECK(spec->container().secrets().at("hf_token") == "abc");
  CHECK(spec->container().inputs(0).path() == "train.csv");
  CHECK(spec->container().memory_mib() == 16'384);
  tessera::v1::SubmitJobRequest request;
  request.set_account("acme");
  request.set_request_id("r1");
  *request.mutable_spec() = *spec;
  CHECK(tessera::intake::ValidateSubmitRequest(request).ok());
}
