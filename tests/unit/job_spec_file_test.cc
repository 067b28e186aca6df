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

TEST_CASE("unknown fields and broken files are clear errors", "[cli]") {
  auto unknown = ParseJobSpec("kind: sleep\ngpu_cuont: 1\n");
  REQUIRE_FALSE(unknown.ok());
  CHECK_THAT(std::string(unknown.status().message()), Catch::Contains("gpu_cuont"));
  CHECK_FALSE(ParseJobSpec("kind: [unclosed\n").ok());
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
    INFO(entry.path().string());
    auto spec = tessera::cli::LoadJobSpecFile(entry.path().string());
    REQUIRE(spec.ok());
    CHECK(tessera::intake::ValidateJobSpec(*spec).ok());
    ++seen;
  }
  CHECK(seen >= 3);
}
