#include "services/artifacts/blob_collector.h"

#include <spdlog/spdlog.h>

#include <chrono>

namespace tessera::artifacts {

BlobCollector::BlobCollector(ArtifactRepository& artifacts, int64_t interval_ms, int64_t grace_ms)
    : artifacts_(artifacts), interval_ms_(interval_ms), grace_ms_(grace_ms) {
  thread_ = std::thread([this] { Run(); });
}

BlobCollector::~BlobCollector() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void BlobCollector::Run() {
  for (;;) {
    {
      std::unique_lock lock(mu_);
      if (cv_.wait_for(lock, std::chrono::milliseconds(interval_ms_), [&] { return stop_; })) return;
    }
    absl::StatusOr<int> removed = artifacts_.CollectGarbage(grace_ms_);
    if (!removed.ok()) {
      spdlog::warn("artifact blob collector: {}", removed.status().ToString());
    } else if (*removed > 0) {
      spdlog::info("artifact blob collector: deleted {} unreferenced blob(s)", *removed);
    }
  }
}

}  // namespace tessera::artifacts
