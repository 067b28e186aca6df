// The workload oneof and the results' two layouts: what a spec names, and a result written before
// JobResult.outputs (by an older agent, or stored for a job that finished before) read in the new one.
#include <catch2/catch.hpp>

#include "services/common/worker_signing.h"
#include "services/common/workloads.h"

using namespace tessera;

namespace {

// A result in the layout before `outputs`, field by field as the older code wrote it.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
v1::JobResult LegacyTrainResult() {
  v1::JobResult r;
  r.set_initial_loss(1.5);
  r.set_final_loss(0.25);
  r.set_weights_sha256(std::string(64, 'a'));
  return r;
}
v1::JobResult LegacyGemmResult() {
  v1::JobResult r;
  r.set_achieved_tflops(0.004);
  r.set_timed_seconds(0.5);
  r.set_backend("cpu");
  r.set_checksum(12.5);
  return r;
}
v1::JobResult LegacyAllReduceResult() {
  v1::JobResult r;
  r.set_algorithm_gbps(180);
  r.set_bus_gbps(315);
  r.set_timed_seconds(0.2);
  r.set_backend("cuda");
  return r;
}
#pragma GCC diagnostic pop

v1::JobResult ReadBack(std::string_view kind, const v1::JobResult& stored) {
  v1::JobResult r;
  REQUIRE(r.ParseFromString(stored.SerializeAsString()));
  UpgradeLegacyResult(kind, &r);
  return r;
}

}  // namespace

TEST_CASE("a spec's kind is its workload's name", "[workloads]") {
  v1::JobSpec spec;
  CHECK(WorkloadKind(spec).empty());
  spec.mutable_sleep();
  CHECK(WorkloadKind(spec) == "sleep");
  spec.mutable_allreduce_bench();  // a oneof: the later member replaces the earlier
  CHECK(WorkloadKind(spec) == "allreduce_bench");
  CHECK_FALSE(spec.has_sleep());
  spec.mutable_container();
  CHECK(WorkloadKind(spec) == "container");
  for (std::string_view kind : kWorkloadKinds) CHECK(IsWorkloadKind(kind));
  CHECK_FALSE(IsWorkloadKind("render"));
  CHECK_FALSE(IsWorkloadKind(""));
}

TEST_CASE("a spec written by a client before the oneof reads the same", "[workloads]") {
  // Field 1 (kind) and field 11 (train_mlp) as an older client encodes them: the oneof kept the numbers.
  v1::JobSpec old_client;
  old_client.set_kind("train_mlp");
  old_client.mutable_train_mlp()->set_epochs(3);
  v1::JobSpec read;
  REQUIRE(read.ParseFromString(old_client.SerializeAsString()));
  CHECK(WorkloadKind(read) == "train_mlp");
  CHECK(read.train_mlp().epochs() == 3);
}

TEST_CASE("results in the layout before outputs move into the workload's member", "[workloads]") {
  const v1::JobResult train = ReadBack("train_mlp", LegacyTrainResult());
  REQUIRE(train.has_train_mlp());
  CHECK(train.train_mlp().initial_loss() == 1.5);
  CHECK(train.train_mlp().final_loss() == 0.25);
  CHECK(train.train_mlp().weights_sha256() == std::string(64, 'a'));

  const v1::JobResult gemm = ReadBack("gemm_bench", LegacyGemmResult());
  REQUIRE(gemm.has_gemm_bench());
  CHECK(gemm.gemm_bench().achieved_tflops() == 0.004);
  CHECK(gemm.gemm_bench().timed_seconds() == 0.5);
  CHECK(gemm.gemm_bench().backend() == "cpu");
  CHECK(gemm.gemm_bench().checksum() == 12.5);

  const v1::JobResult allreduce = ReadBack("allreduce_bench", LegacyAllReduceResult());
  REQUIRE(allreduce.has_allreduce_bench());
  CHECK(allreduce.allreduce_bench().algorithm_gbps() == 180);
  CHECK(allreduce.allreduce_bench().bus_gbps() == 315);
  CHECK(allreduce.allreduce_bench().backend() == "cuda");

  // The flat fields are gone: what a client reads has one shape.
  for (const v1::JobResult* r : {&train, &gemm, &allreduce}) {
    v1::JobResult only_outputs;
    switch (r->outputs_case()) {
      case v1::JobResult::kTrainMlp: *only_outputs.mutable_train_mlp() = r->train_mlp(); break;
      case v1::JobResult::kGemmBench: *only_outputs.mutable_gemm_bench() = r->gemm_bench(); break;
      case v1::JobResult::kAllreduceBench: *only_outputs.mutable_allreduce_bench() = r->allreduce_bench(); break;
      case v1::JobResult::kContainer:  // no container result was ever flat
      case v1::JobResult::OUTPUTS_NOT_SET: FAIL("no outputs");
    }
    CHECK(r->SerializeAsString() == only_outputs.SerializeAsString());
  }
}

TEST_CASE("a failure, a sleep and a result already in the new layout are left as they are", "[workloads]") {
  v1::JobResult failed;
  failed.set_error("out of memory");
  CHECK(ReadBack("train_mlp", failed).SerializeAsString() == failed.SerializeAsString());
  CHECK(ReadBack("sleep", v1::JobResult()).ByteSizeLong() == 0);
  v1::JobResult current;
  current.mutable_gemm_bench()->set_achieved_tflops(0.0);  // a zero measurement stays a gemm_bench result
  CHECK(ReadBack("gemm_bench", current).has_gemm_bench());
  // A run stopped at its limit after its kernel finished kept its figures beside the error: a
  // failure has no outputs.
  v1::JobResult stopped = LegacyTrainResult();
  stopped.set_error("stopped: the escrow is exhausted");
  const v1::JobResult read = ReadBack("train_mlp", stopped);
  CHECK_FALSE(read.has_train_mlp());
  CHECK(read.error() == "stopped: the escrow is exhausted");
  v1::JobResult only_error;
  only_error.set_error("stopped: the escrow is exhausted");
  CHECK(read.SerializeAsString() == only_error.SerializeAsString());
  // An allreduce result that measured nothing is still an allreduce result (its kind says so).
  v1::JobResult zero = LegacyAllReduceResult();
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
  zero.set_algorithm_gbps(0);
  zero.set_bus_gbps(0);
#pragma GCC diagnostic pop
  CHECK(ReadBack("allreduce_bench", zero).allreduce_bench().backend() == "cuda");
}

TEST_CASE("a result an older agent signed still verifies: the flat fields are known, so they serialize as it did", "[workloads]") {
  const WorkerKeyPair key = WorkerKeyPair::FromSeed("older agent");
  v1::JobFinished f;
  f.set_job_id(5);
  f.set_attempt(1);
  f.set_last_usage_seq(3);
  *f.mutable_result() = LegacyTrainResult();
  f.mutable_result()->set_error("stopped: the escrow is exhausted");  // field 4 between the old fields
  SignFinished(key, 2, &f);
  v1::JobFinished received;
  REQUIRE(received.ParseFromString(f.SerializeAsString()));
  CHECK(VerifyFinished(key.public_key, 2, received));
}

TEST_CASE("a container spec's secrets show as redacted, by name", "[workloads]") {
  v1::JobSpec spec;
  (*spec.mutable_container()->mutable_secrets())["hf_token"] = "hf_s3cr3t";
  (*spec.mutable_container()->mutable_env())["BATCH"] = "64";
  RedactSecrets(&spec);
  CHECK(spec.container().secrets().at("hf_token") == "<redacted>");
  CHECK(spec.container().env().at("BATCH") == "64");
  v1::JobSpec sleep;
  sleep.mutable_sleep()->set_duration_ms(5);
  RedactSecrets(&sleep);
  CHECK(sleep.sleep().duration_ms() == 5);
}
