#include <catch2/catch.hpp>

#include "services/common/compute_capability.h"
#include "services/intake/job_spec_validator.h"

#include <functional>

using namespace tessera;

namespace {

v1::SubmitJobRequest ValidSleep() {
  v1::SubmitJobRequest r;
  r.set_account("acme");
  r.set_request_id("req-1");
  v1::JobSpec* s = r.mutable_spec();
  s->set_kind("sleep");
  s->set_gpu_count(1);
  s->set_bid_utok_per_gpu_hour(1'000'000);
  s->set_max_duration_ms(60'000);
  s->mutable_sleep()->set_duration_ms(1'000);
  return r;
}

std::string ErrorOf(const v1::SubmitJobRequest& r) {
  absl::Status s = intake::ValidateSubmitRequest(r);
  REQUIRE(s.code() == absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

}  // namespace

TEST_CASE("a valid spec passes", "[validator]") { CHECK(intake::ValidateSubmitRequest(ValidSleep()).ok()); }

TEST_CASE("kind may be left out; when given it must name the workload that is set", "[validator]") {
  auto r = ValidSleep();
  r.mutable_spec()->clear_kind();
  CHECK(intake::ValidateSubmitRequest(r).ok());
  r.mutable_spec()->set_kind("train_mlp");
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.sleep must not be set for kind train_mlp"));
  r.mutable_spec()->clear_kind();
  r.mutable_spec()->clear_workload();
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.workload: one of sleep, train_mlp, gemm_bench, allreduce_bench or container is required"));
}

TEST_CASE("bad specs are rejected with a message naming the field", "[validator]") {
  auto r = ValidSleep();
  SECTION("zero GPUs") {
    r.mutable_spec()->set_gpu_count(0);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gpu_count"));
  }
  SECTION("more than 64 GPUs") {
    r.mutable_spec()->set_gpu_count(65);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gpu_count"));
  }
  SECTION("negative price") {
    r.mutable_spec()->set_bid_utok_per_gpu_hour(-5);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.bid_utok_per_gpu_hour must be positive, got -5"));
  }
  SECTION("unknown kind") {
    r.mutable_spec()->set_kind("mine_bitcoin");
    CHECK_THAT(ErrorOf(r), Catch::Contains("unknown job kind 'mine_bitcoin'"));
  }
  SECTION("spec over 64 KiB") {
    for (int i = 0; i < 1'200; ++i) r.mutable_spec()->add_gpu_models(std::string(60, 'x'));
    CHECK_THAT(ErrorOf(r), Catch::Contains("the limit is 65536"));
  }
  SECTION("missing params for the kind") {
    r.mutable_spec()->clear_sleep();
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.sleep is required"));
  }
  SECTION("sleep longer than any job may run (longer than its own limit is allowed: ExtendJob)") {
    r.mutable_spec()->mutable_sleep()->set_duration_ms(31LL * 24 * 3'600'000);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.sleep.duration_ms must be between 0 and 2592000000"));
    r.mutable_spec()->mutable_sleep()->set_duration_ms(r.spec().max_duration_ms() + 1);
    CHECK(intake::ValidateSubmitRequest(r).ok());
  }
  SECTION("bad request id") {
    r.set_request_id("");
    CHECK_THAT(ErrorOf(r), Catch::Contains("request_id"));
  }
  SECTION("bad account name") {
    r.set_account("Robert'); DROP TABLE jobs;--");
    CHECK_THAT(ErrorOf(r), Catch::Contains("account must be"));
  }
  SECTION("zero duration") {
    r.mutable_spec()->set_max_duration_ms(0);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.max_duration_ms"));
  }
  SECTION("a hold that rounds to nothing (found by fuzz_job_spec: 1 µT/GPU-h for 1 ms)") {
    r.mutable_spec()->set_bid_utok_per_gpu_hour(1);
    r.mutable_spec()->set_max_duration_ms(1);
    CHECK_THAT(ErrorOf(r), Catch::Contains("is 0 µT (1 × 1 × 1): raise the bid or the duration"));
    r.mutable_spec()->set_max_duration_ms(3'600'000);  // 1 µT: the least a job may hold
    CHECK(intake::ValidateSubmitRequest(r).ok());
  }
}

TEST_CASE("train_mlp bounds are checked", "[validator]") {
  auto r = ValidSleep();
  r.mutable_spec()->set_kind("train_mlp");
  r.mutable_spec()->clear_sleep();
  v1::TrainMlpParams* p = r.mutable_spec()->mutable_train_mlp();
  p->set_seed(1);
  p->set_input_dim(8);
  p->set_hidden_dim(16);
  p->set_output_dim(1);
  p->set_samples(256);
  p->set_batch_size(32);
  p->set_epochs(5);
  p->set_learning_rate_micros(50'000);
  CHECK(intake::ValidateSubmitRequest(r).ok());
  p->set_batch_size(512);
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.train_mlp.batch_size"));
}

TEST_CASE("requirements on GPUs and workers are checked", "[validator]") {
  auto r = ValidSleep();
  r.mutable_spec()->set_min_gpu_memory_mib(40'000);
  r.mutable_spec()->set_min_compute_capability("8.0");
  r.mutable_spec()->add_regions("eu-west");
  r.mutable_spec()->set_min_reputation(700);
  r.mutable_spec()->set_placement(v1::GPU_PLACEMENT_SPREAD);
  CHECK(intake::ValidateSubmitRequest(r).ok());
  SECTION("capability not major.minor") {
    r.mutable_spec()->set_min_compute_capability("ampere");
    CHECK(ErrorOf(r) == "spec.min_compute_capability must be \"major.minor\" such as \"8.0\" or \"12.1\", got 'ampere'");
  }
  SECTION("reputation out of range") {
    r.mutable_spec()->set_min_reputation(1'001);
    CHECK(ErrorOf(r) == "spec.min_reputation must be between 0 and 1000, got 1001");
  }
  SECTION("an empty region") {
    r.mutable_spec()->add_regions("");
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.regions"));
  }
  SECTION("memory beyond any device") {
    r.mutable_spec()->set_min_gpu_memory_mib(1ULL << 40);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.min_gpu_memory_mib must be at most"));
  }
  SECTION("an unknown placement") {
    r.mutable_spec()->set_placement(static_cast<v1::GpuPlacement>(7));
    CHECK(ErrorOf(r) == "spec.placement is not a known placement");
  }
}

TEST_CASE("compute capabilities parse to major x 10 + minor", "[validator]") {
  CHECK(ParseComputeCapability("f", "9.0").value() == 90);
  CHECK(ParseComputeCapability("f", "12.1").value() == 121);
  CHECK(ParseComputeCapability("f", "0.0").value() == 0);
  for (const char* bad : {"", "9", "9.", ".0", "9.10", "a.b", "123.0", "9.0.1"}) {
    INFO(bad);
    CHECK(ParseComputeCapability("f", bad).status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("gemm_bench specs are checked field by field", "[validator]") {
  v1::SubmitJobRequest r = ValidSleep();
  r.mutable_spec()->set_kind("gemm_bench");
  r.mutable_spec()->clear_sleep();
  v1::GemmBenchParams* p = r.mutable_spec()->mutable_gemm_bench();
  p->set_n(1'024);
  p->set_iterations(10);
  p->set_precision("bf16");
  CHECK(intake::ValidateSubmitRequest(r).ok());
  SECTION("n") {
    p->set_n(8);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gemm_bench.n must be between 16 and 16384, got 8"));
  }
  SECTION("iterations") {
    p->set_iterations(0);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gemm_bench.iterations must be between 1 and 10000"));
  }
  SECTION("precision") {
    p->set_precision("fp8");
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gemm_bench.precision must be fp32 or bf16, got 'fp8'"));
  }
  SECTION("its parameters, and only those") {
    r.mutable_spec()->mutable_sleep()->set_duration_ms(5);
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.sleep must not be set for kind gemm_bench"));
    r.mutable_spec()->clear_sleep();
    r.mutable_spec()->clear_gemm_bench();
    CHECK_THAT(ErrorOf(r), Catch::Contains("spec.gemm_bench is required for kind gemm_bench"));
  }
}

TEST_CASE("allreduce_bench specs are checked", "[validator]") {
  v1::SubmitJobRequest r = ValidSleep();
  r.mutable_spec()->set_kind("allreduce_bench");
  r.mutable_spec()->clear_sleep();
  r.mutable_spec()->set_gpu_count(8);
  r.mutable_spec()->mutable_allreduce_bench()->set_megabytes(256);
  r.mutable_spec()->mutable_allreduce_bench()->set_iterations(20);
  CHECK(intake::ValidateSubmitRequest(r).ok());
  r.mutable_spec()->mutable_allreduce_bench()->set_megabytes(0);
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.allreduce_bench.megabytes must be between 1 and 4096, got 0"));
  r.mutable_spec()->mutable_allreduce_bench()->set_megabytes(1);
  r.mutable_spec()->mutable_allreduce_bench()->set_iterations(5'000);
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.allreduce_bench.iterations must be between 1 and 1000"));
}

namespace {

v1::SubmitJobRequest ValidContainer() {
  v1::SubmitJobRequest r = ValidSleep();
  r.mutable_spec()->clear_kind();
  v1::ContainerParams* c = r.mutable_spec()->mutable_container();
  c->add_command("python3");
  c->add_command("/job/code/train.py");
  (*c->mutable_env())["BATCH"] = "64";
  (*c->mutable_secrets())["hf_token"] = "hf_s3cr3t";
  v1::ContainerInput* in = c->add_inputs();
  in->set_artifact("sha256:" + std::string(64, 'a'));
  in->set_path("data/train.csv");
  c->set_code(std::string(64, 'b'));  // bare hex, as sha256sum prints it
  c->set_checkpoint_interval_s(60);
  c->set_cpu_cores(4);
  c->set_memory_mib(16'384);
  return r;
}

}  // namespace

TEST_CASE("a container spec is checked field by field, naming the field and never a secret's value", "[validator]") {
  CHECK(intake::ValidateSubmitRequest(ValidContainer()).ok());
  v1::SubmitJobRequest with_image = ValidContainer();
  with_image.mutable_spec()->mutable_container()->set_image("localhost/trainer:1");
  CHECK(intake::ValidateSubmitRequest(with_image).ok());
  with_image.mutable_spec()->mutable_container()->set_image("registry.example/team/img@sha256:0123abcd");
  CHECK(intake::ValidateSubmitRequest(with_image).ok());
  struct Case {
    std::function<void(v1::ContainerParams&)> spoil;
    std::string error;
  };
  const std::vector<Case> cases = {
      {[](v1::ContainerParams& c) { c.clear_command(); }, "spec.container.command: required"},
      {[](v1::ContainerParams& c) { c.set_command(0, ""); }, "spec.container.command: required"},
      {[](v1::ContainerParams& c) { c.set_command(1, std::string("a\0b", 3)); }, "spec.container.command[1]: at most 4096 bytes, no NUL"},
      {[](v1::ContainerParams& c) { (*c.mutable_env())["1BAD"] = "x"; }, "spec.container.env['1BAD']: a name is"},
      {[](v1::ContainerParams& c) { (*c.mutable_env())["TESSERA_JOB_ID"] = "7"; }, "spec.container.env['TESSERA_JOB_ID']: TESSERA_*"},
      {[](v1::ContainerParams& c) { (*c.mutable_secrets())["../../etc/passwd"] = "x"; },
       "spec.container.secrets: '../../etc/passwd' is not a valid file name"},
      {[](v1::ContainerParams& c) { (*c.mutable_secrets())["big"] = std::string(16 * 1024 + 1, 'x'); },
       "spec.container.secrets['big']: at most 16 KiB"},
      {[](v1::ContainerParams& c) { c.mutable_inputs(0)->set_path("../escape.csv"); },
       "spec.container.inputs[0].path: '../escape.csv' must be a relative path under /job/inputs"},
      {[](v1::ContainerParams& c) { c.mutable_inputs(0)->set_path("/etc/passwd"); }, "spec.container.inputs[0].path"},
      {[](v1::ContainerParams& c) { c.mutable_inputs(0)->set_path("a//b"); }, "spec.container.inputs[0].path"},
      {[](v1::ContainerParams& c) { *c.add_inputs() = c.inputs(0); }, "spec.container.inputs[1].path: 'data/train.csv' is used by another"},
      {[](v1::ContainerParams& c) {
         *c.add_inputs() = c.inputs(0);
         c.mutable_inputs(1)->set_path("data/train.csv/x");
       },
       "spec.container.inputs: 'data/train.csv/x' lies inside another input, 'data/train.csv'"},
      {[](v1::ContainerParams& c) { c.mutable_inputs(0)->set_artifact("train.csv"); }, "spec.container.inputs[0].artifact: 'train.csv' is not a digest"},
      {[](v1::ContainerParams& c) { c.set_code("sha256:xyz"); }, "spec.container.code: 'sha256:xyz' is not a digest"},
      {[](v1::ContainerParams& c) { c.set_checkpoint_interval_s(86'401); }, "spec.container.checkpoint_interval_s must be between 0 and 86400"},
      {[](v1::ContainerParams& c) { c.set_cpu_cores(1'025); }, "spec.container.cpu_cores must be between 0 and 1024"},
      {[](v1::ContainerParams& c) { c.set_memory_mib((uint64_t{4} << 20) + 1); }, "spec.container.memory_mib must be between"},
      {[](v1::ContainerParams& c) { c.set_image("my image"); }, "spec.container.image: at most 256 printable characters"},
      {[](v1::ContainerParams& c) { c.set_image("--privileged"); }, "spec.container.image: '--privileged' is not an image reference"},
      {[](v1::ContainerParams& c) { c.set_image("localhost/trainer:1;rm"); }, "spec.container.image: 'localhost/trainer:1;rm' is not an image"},
      {[](v1::ContainerParams& c) { c.set_image("trainer:1"); }, "spec.container.image: 'trainer:1' is not an image reference"},
      {[](v1::ContainerParams& c) { c.set_image("localhost/trainer"); }, "spec.container.image: 'localhost/trainer' is not an image"},
      {[](v1::ContainerParams& c) { c.set_image("8e365751dcd4"); }, "spec.container.image: '8e365751dcd4' is not an image reference"},
  };
  for (const Case& c : cases) {
    v1::SubmitJobRequest r = ValidContainer();
    c.spoil(*r.mutable_spec()->mutable_container());
    const std::string error = ErrorOf(r);
    INFO(error);
    CHECK_THAT(error, Catch::StartsWith(c.error));
    CHECK(error.find("hf_s3cr3t") == std::string::npos);
  }
}
