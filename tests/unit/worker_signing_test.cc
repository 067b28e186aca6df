// The canonical encodings a worker signs, and Ed25519 over them: any change of any signed field,
// another worker's id, another key or no signature at all fails verification.
#include <catch2/catch.hpp>

#include <functional>

#include "services/common/worker_signing.h"

namespace tessera {
namespace {

v1::UsageReport SampleUsage() {
  v1::UsageReport r;
  r.set_job_id(42);
  r.set_attempt(2);
  r.set_seq(7);
  r.set_gpu_ms(3'600);
  r.set_measured_at_ms(1'764'000'000'000);
  r.set_avg_gpu_utilization_ppm(870'000);
  r.set_peak_gpu_memory_mib(40'000);
  r.set_energy_mj(1'234'567);
  return r;
}

TEST_CASE("a usage report's encoding is fixed: domain, then big-endian fields in order", "[signing]") {
  const std::string bytes = CanonicalUsage(0x0102030405060708, SampleUsage());
  REQUIRE(bytes.size() == 17 + 8 + 8 + 4 + 8 + 8 + 8 + 4 + 8 + 8);
  CHECK(bytes.substr(0, 17) == std::string("tessera/usage/v1\0", 17));
  CHECK(bytes.substr(17, 8) == std::string("\x01\x02\x03\x04\x05\x06\x07\x08", 8));
  CHECK(bytes.substr(25, 8) == std::string("\0\0\0\0\0\0\0\x2a", 8));  // job 42
}

TEST_CASE("every signed field of a usage report is covered by its signature", "[signing]") {
  const WorkerKeyPair key = WorkerKeyPair::Generate();
  v1::UsageReport signed_report = SampleUsage();
  SignUsage(key, 9, &signed_report);
  REQUIRE(signed_report.signature().size() == kSignatureBytes);
  CHECK(VerifyUsage(key.public_key, 9, signed_report));

  const std::vector<std::function<void(v1::UsageReport&)>> tampers = {
      [](v1::UsageReport& r) { r.set_job_id(43); },
      [](v1::UsageReport& r) { r.set_attempt(3); },
      [](v1::UsageReport& r) { r.set_seq(8); },
      [](v1::UsageReport& r) { r.set_gpu_ms(36'000); },
      [](v1::UsageReport& r) { r.set_measured_at_ms(r.measured_at_ms() + 1); },
      [](v1::UsageReport& r) { r.set_avg_gpu_utilization_ppm(1'000'000); },
      [](v1::UsageReport& r) { r.set_peak_gpu_memory_mib(80'000); },
      [](v1::UsageReport& r) { r.set_energy_mj(1); },
      [](v1::UsageReport& r) { r.set_cpu_ms(1); },
      [](v1::UsageReport& r) { r.set_peak_memory_mib(1); },
      [](v1::UsageReport& r) { (*r.mutable_signature())[5] ^= 1; },
      [](v1::UsageReport& r) { r.clear_signature(); },
  };
  for (size_t i = 0; i < tampers.size(); ++i) {
    INFO("tamper " << i);
    v1::UsageReport r = signed_report;
    tampers[i](r);
    CHECK_FALSE(VerifyUsage(key.public_key, 9, r));
  }
  CHECK_FALSE(VerifyUsage(key.public_key, 10, signed_report));                         // another worker's id
  CHECK_FALSE(VerifyUsage(WorkerKeyPair::Generate().public_key, 9, signed_report));    // another key
  CHECK_FALSE(VerifyUsage("", 9, signed_report));                                      // no registered key
  CHECK_FALSE(VerifyUsage(key.public_key.substr(1), 9, signed_report));
}

TEST_CASE("a report with the host's share is signed as v2, covering it; one without keeps v1 as older workers sign it", "[signing]") {
  v1::UsageReport r = SampleUsage();
  r.set_cpu_ms(1'500);
  r.set_peak_memory_mib(512);
  const std::string bytes = CanonicalUsage(1, r);
  REQUIRE(bytes.size() == 17 + 8 + 8 + 4 + 8 + 8 + 8 + 4 + 8 + 8 + 8 + 8);
  CHECK(bytes.substr(0, 17) == std::string("tessera/usage/v2\0", 17));
  CHECK(bytes.substr(bytes.size() - 16) == std::string("\0\0\0\0\0\0\x05\xdc\0\0\0\0\0\0\x02\0", 16));
  const WorkerKeyPair key = WorkerKeyPair::Generate();
  SignUsage(key, 1, &r);
  CHECK(VerifyUsage(key.public_key, 1, r));
  v1::UsageReport tampered = r;
  tampered.set_cpu_ms(0);
  tampered.set_peak_memory_mib(0);  // posing as a v1 report under the v2 signature
  CHECK_FALSE(VerifyUsage(key.public_key, 1, tampered));
}

TEST_CASE("a result's signature covers its outcome and its whole result", "[signing]") {
  const WorkerKeyPair key = WorkerKeyPair::FromSeed("seed");
  CHECK(key.public_key == WorkerKeyPair::FromSeed("seed").public_key);  // deterministic from a seed
  v1::JobFinished f;
  f.set_job_id(5);
  f.set_attempt(1);
  f.set_succeeded(true);
  f.set_last_usage_seq(12);
  f.mutable_result()->mutable_train_mlp()->set_final_loss(0.25f);
  SignFinished(key, 3, &f);
  CHECK(VerifyFinished(key.public_key, 3, f));
  for (auto tamper : std::vector<std::function<void(v1::JobFinished&)>>{
           [](v1::JobFinished& x) { x.set_succeeded(false); }, [](v1::JobFinished& x) { x.set_last_usage_seq(11); },
           [](v1::JobFinished& x) { x.mutable_result()->mutable_train_mlp()->set_final_loss(0.01f); }, [](v1::JobFinished& x) { x.set_attempt(2); }}) {
    v1::JobFinished changed = f;
    tamper(changed);
    CHECK_FALSE(VerifyFinished(key.public_key, 3, changed));
  }
}

TEST_CASE("a challenge answer's signatures cover every GPU's root and time, and every opened row", "[signing][challenge]") {
  const WorkerKeyPair key = WorkerKeyPair::FromSeed("seed");
  v1::ChallengeCommit c;
  c.set_challenge_id(9);
  for (uint32_t i = 0; i < 2; ++i) {
    v1::GpuCommitment* g = c.add_gpus();
    g->set_gpu_index(i);
    g->set_root(std::string(32, static_cast<char>('a' + i)));
    g->set_elapsed_us(1'000 + i);
  }
  SignChallengeCommit(key, 3, &c);
  CHECK(VerifyChallengeCommit(key.public_key, 3, c));
  CHECK_FALSE(VerifyChallengeCommit(key.public_key, 4, c));  // another worker's
  for (auto tamper : std::vector<std::function<void(v1::ChallengeCommit&)>>{
           [](v1::ChallengeCommit& x) { x.set_challenge_id(10); }, [](v1::ChallengeCommit& x) { x.mutable_gpus(1)->set_elapsed_us(1); },
           [](v1::ChallengeCommit& x) { (*x.mutable_gpus(0)->mutable_root())[31] ^= 1; },
           [](v1::ChallengeCommit& x) { x.mutable_gpus(1)->set_gpu_index(5); }, [](v1::ChallengeCommit& x) { x.mutable_gpus()->RemoveLast(); },
           [](v1::ChallengeCommit& x) { x.clear_signature(); }}) {
    v1::ChallengeCommit changed = c;
    tamper(changed);
    CHECK_FALSE(VerifyChallengeCommit(key.public_key, 3, changed));
  }

  v1::ChallengeOpening o;
  o.set_challenge_id(9);
  o.set_gpu_index(1);
  for (uint32_t row : {4u, 2u}) {
    v1::OpenedRow* r = o.add_rows();
    r->set_row(row);
    for (int32_t v : {-5, 7, 1 << 20}) r->add_values(v);
  }
  SignChallengeOpening(key, 3, &o);
  CHECK(VerifyChallengeOpening(key.public_key, 3, o));
  for (auto tamper : std::vector<std::function<void(v1::ChallengeOpening&)>>{
           [](v1::ChallengeOpening& x) { x.set_gpu_index(0); }, [](v1::ChallengeOpening& x) { x.mutable_rows(1)->set_row(3); },
           [](v1::ChallengeOpening& x) { x.mutable_rows(0)->set_values(2, 0); }, [](v1::ChallengeOpening& x) { x.mutable_rows()->SwapElements(0, 1); }}) {
    v1::ChallengeOpening changed = o;
    tamper(changed);
    CHECK_FALSE(VerifyChallengeOpening(key.public_key, 3, changed));
  }
}

TEST_CASE("a key pair comes back from its 64-byte secret key", "[signing]") {
  const WorkerKeyPair key = WorkerKeyPair::Generate();
  absl::StatusOr<WorkerKeyPair> again = WorkerKeyPair::FromSecretKey(key.secret_key);
  REQUIRE(again.ok());
  CHECK(again->public_key == key.public_key);
  CHECK(absl::IsInvalidArgument(WorkerKeyPair::FromSecretKey("short").status()));
}

}  // namespace
}  // namespace tessera
