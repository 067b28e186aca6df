// libFuzzer target: a usage report off a worker's stream through the scheduler's checks, in the
// gateway's order: the shape check (PlausibleUsage), the Ed25519 signature (VerifyUsage), then the
// store-free screen (ScreenReport) against a lease and stored reports the fuzzer also picks, within
// what the server's own records allow. Properties: only the signature the worker's key makes
// verifies, and never under another worker's id; every verdict is the one the rules give; a refusal
// says why; accepting the report keeps the lease's total within its wall-time bound.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <string>

#include "base/check.h"
#include "services/common/worker_signing.h"
#include "services/scheduler/usage_screen.h"

namespace {

using tessera::scheduler_host::IngestLease;
using tessera::scheduler_host::IngestTotals;
using tessera::scheduler_host::ReportContent;
using tessera::scheduler_host::ReportKey;
using tessera::scheduler_host::UsageIn;
using tessera::scheduler_host::Verdict;
namespace screen = tessera::scheduler_host;

__extension__ typedef __int128 Int128;

constexpr int64_t kMaxLeaseAgeMs = 31LL * 24 * 3600 * 1000;  // a lease outlives no job's longest duration

const tessera::WorkerKeyPair& WorkerKey() {
  static const tessera::WorkerKeyPair key = tessera::WorkerKeyPair::FromSeed(std::string(32, 'w'));
  return key;
}

Int128 MostGpuMs(int64_t age_ms, int64_t gpus) { return static_cast<Int128>(age_ms + screen::kClaimSlackMs) * gpus * 101 / 100; }

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  const int64_t worker_id = in.ConsumeIntegralInRange<int64_t>(1, int64_t{1} << 40);
  const std::string other_key = in.ConsumeRandomLengthString(80);
  tessera::v1::UsageReport report;
  if (!report.ParseFromString(in.ConsumeRandomLengthString(512))) return 0;

  // A malformed or foreign public key never verifies anything and never crashes.
  if (other_key != WorkerKey().public_key) TESSERA_CHECK(!tessera::VerifyUsage(other_key, worker_id, report));
  if (!screen::PlausibleUsage(report)) return 0;

  tessera::v1::UsageReport signed_report = report;
  tessera::SignUsage(WorkerKey(), worker_id, &signed_report);
  const bool genuine = report.signature() == signed_report.signature();  // Ed25519 signing is deterministic
  TESSERA_CHECK(tessera::VerifyUsage(WorkerKey().public_key, worker_id, report) == genuine);
  TESSERA_CHECK(tessera::VerifyUsage(WorkerKey().public_key, worker_id, signed_report));
  TESSERA_CHECK(!tessera::VerifyUsage(WorkerKey().public_key, worker_id + 1, signed_report));

  // The server's side: its clock, the lease it recorded and the totals it kept for it.
  const int64_t now_ms = in.ConsumeIntegralInRange<int64_t>(0, int64_t{1} << 45);
  IngestLease lease;
  lease.exists = in.ConsumeBool();
  lease.created_at_ms = now_ms - in.ConsumeIntegralInRange<int64_t>(0, kMaxLeaseAgeMs);
  lease.gpus = in.ConsumeIntegralInRange<int64_t>(1, 64);
  const int64_t age_ms = std::max<int64_t>(0, now_ms - lease.created_at_ms);
  IngestTotals totals;
  totals.last_seq = in.ConsumeIntegralInRange<int64_t>(0, INT64_MAX);
  totals.gpu_ms_reported = in.ConsumeIntegralInRange<int64_t>(0, static_cast<int64_t>(MostGpuMs(age_ms, lease.gpus)));
  const UsageIn u{.worker_id = worker_id, .report = signed_report};
  std::map<ReportKey, ReportContent> stored, accepted;
  switch (in.ConsumeIntegralInRange(0, 3)) {
    case 1: stored[screen::ReportKeyOf(u)] = {signed_report.signature(), signed_report.gpu_ms()}; break;
    case 2: accepted[screen::ReportKeyOf(u)] = {signed_report.signature(), signed_report.gpu_ms() ^ 1}; break;
    case 3: stored[screen::ReportKeyOf(u)] = {in.ConsumeRandomLengthString(64), signed_report.gpu_ms()}; break;
    default: break;
  }

  std::string reason;
  tessera::scheduler_host::FraudSignal signal;
  const Verdict verdict = screen::ScreenReport(u, lease, totals, now_ms, stored, accepted, reason, signal);
  const ReportKey key = screen::ReportKeyOf(u);
  const ReportContent* kept = accepted.count(key) ? &accepted.at(key) : stored.count(key) ? &stored.at(key) : nullptr;
  switch (verdict) {
    case Verdict::kRefused:
      TESSERA_CHECK(!reason.empty() && !signal.kind.empty() && signal.worker_id == worker_id);
      break;
    case Verdict::kDuplicate:
      TESSERA_CHECK(lease.exists && kept != nullptr && *kept == ReportContent(signed_report.signature(), signed_report.gpu_ms()));
      break;
    case Verdict::kNew:
      TESSERA_CHECK(lease.exists && kept == nullptr);
      TESSERA_CHECK(screen::SeqOf(signed_report) > totals.last_seq);
      TESSERA_CHECK(signed_report.measured_at_ms() <= now_ms + screen::kMaxFutureMs);
      totals.Add(signed_report);
      TESSERA_CHECK(totals.gpu_ms_reported <= MostGpuMs(age_ms, lease.gpus));
      TESSERA_CHECK(totals.metered_gpu_ms <= totals.gpu_ms_reported && totals.utilization_gpu_ms <= totals.metered_gpu_ms);
      break;
  }
  if (!lease.exists) TESSERA_CHECK(verdict == Verdict::kRefused && signal.kind == "UNLEASED_REPORT");
  return 0;
}
