#include "services/scheduler/usage_screen.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace tessera::scheduler_host {
namespace {
__extension__ typedef __int128 Int128;
}  // namespace

bool PlausibleUsage(const v1::UsageReport& usage) {
  return usage.job_id() > 0 && usage.attempt() > 0 && usage.seq() >= 1 && usage.seq() <= static_cast<uint64_t>(INT64_MAX) &&
         usage.gpu_ms() >= 0 && usage.gpu_ms() <= kMaxGpuMsPerReport;
}

LeaseKey LeaseKeyOf(const UsageIn& u) { return {u.report.job_id(), u.report.attempt(), u.worker_id}; }
ReportKey ReportKeyOf(const UsageIn& u) { return {u.report.job_id(), u.report.attempt(), u.worker_id, u.report.seq()}; }
int64_t SeqOf(const v1::UsageReport& r) { return static_cast<int64_t>(std::min<uint64_t>(r.seq(), INT64_MAX)); }

void IngestTotals::Add(const v1::UsageReport& r) {
  last_seq = SeqOf(r);
  gpu_ms_reported += r.gpu_ms();
  if (r.avg_gpu_utilization_ppm() == 0 && r.energy_mj() == 0) return;  // no sampler on this device
  utilization_gpu_ms +=
      static_cast<int64_t>(static_cast<Int128>(std::min<uint32_t>(r.avg_gpu_utilization_ppm(), 1'000'000)) * r.gpu_ms() / 1'000'000);
  energy_mj += static_cast<int64_t>(std::min<uint64_t>(r.energy_mj(), INT64_MAX / 4));
  metered_gpu_ms += r.gpu_ms();
}

Verdict ScreenReport(const UsageIn& u, const IngestLease& lease, const IngestTotals& totals, int64_t now_ms,
                     const std::map<ReportKey, ReportContent>& stored, const std::map<ReportKey, ReportContent>& accepted,
                     std::string& reason, FraudSignal& signal) {
  const v1::UsageReport& r = u.report;
  auto flag = [&](const char* kind, std::string evidence) {
    signal = {.worker_id = u.worker_id, .kind = kind, .job_id = r.job_id(), .attempt = r.attempt(), .seq = r.seq(), .evidence = evidence};
    reason = std::move(evidence);
    return Verdict::kRefused;
  };
  if (!lease.exists) {
    return flag("UNLEASED_REPORT", absl::StrCat("no live lease of job ", r.job_id(), " attempt ", r.attempt(),
                                                " on this worker (it never held one)"));
  }
  const ReportKey key = ReportKeyOf(u);
  const ReportContent* kept = nullptr;
  if (auto earlier = accepted.find(key); earlier != accepted.end()) {
    kept = &earlier->second;
  } else if (auto found = stored.find(key); found != stored.end()) {
    kept = &found->second;
  }
  if (kept != nullptr) {
    if (*kept == ReportContent{r.signature(), r.gpu_ms()}) return Verdict::kDuplicate;
    return flag("REPLAYED_REPORT", absl::StrCat("seq ", r.seq(), " was already reported with other content"));
  }
  if (SeqOf(r) <= totals.last_seq) {
    return flag("REPLAYED_REPORT", absl::StrCat("seq ", r.seq(), " is not after the last stored seq ", totals.last_seq));
  }
  if (r.measured_at_ms() > now_ms + kMaxFutureMs) {
    return flag("FUTURE_DATED", absl::StrCat("measured_at_ms ", r.measured_at_ms(), " is ", r.measured_at_ms() - now_ms,
                                             " ms ahead of the server's clock (at most ", kMaxFutureMs, ")"));
  }
  const int64_t age_ms = std::max<int64_t>(0, now_ms - lease.created_at_ms);
  const Int128 most = static_cast<Int128>(age_ms + kClaimSlackMs) * lease.gpus * 101 / 100;
  if (static_cast<Int128>(totals.gpu_ms_reported) + r.gpu_ms() > most) {
    return flag("OVER_CLAIM", absl::StrCat(totals.gpu_ms_reported + r.gpu_ms(), " GPU-ms in total on a lease ", age_ms, " ms old with ",
                                           lease.gpus, " GPUs (at most ", static_cast<int64_t>(most), ")"));
  }
  return Verdict::kNew;
}

}  // namespace tessera::scheduler_host
