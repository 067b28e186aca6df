#include <catch2/catch.hpp>

#include "services/common/compute_capability.h"
#include "services/intake/job_spec_validator.h"

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
  CHECK_THAT(ErrorOf(r), Catch::Contains("spec.workload: one of sleep, train_mlp, gemm_bench or allreduce_bench is required"));
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
