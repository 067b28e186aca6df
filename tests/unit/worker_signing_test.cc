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

TEST_CASE("a result's signature covers its outcome and its whole result", "[signing]") {
  const WorkerKeyPair key = WorkerKeyPair::FromSeed("seed");
  CHECK(key.public_key == WorkerKeyPair::FromSeed("seed").public_key);  // deterministic from a seed
  v1::JobFinished f;
  f.set_job_id(5);
  f.set_attempt(1);
  f.set_succeeded(true);
  f.set_last_usage_seq(12);
  f.mutable_result()->set_final_loss(0.25f);
  SignFinished(key, 3, &f);
  CHECK(VerifyFinished(key.public_key, 3, f));
  for (auto tamper : std::vector<std::function<void(v1::JobFinished&)>>{
           [](v1::JobFinished& x) { x.set_succeeded(false); }, [](v1::JobFinished& x) { x.set_last_usage_seq(11); },
           [](v1::JobFinished& x) { x.mutable_result()->set_final_loss(0.01f); }, [](v1::JobFinished& x) { x.set_attempt(2); }}) {
    v1::JobFinished changed = f;
    tamper(changed);
    CHECK_FALSE(VerifyFinished(key.public_key, 3, changed));
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
