// Deletes the bytes no artifact refers to any more: every `interval_ms`, one pass of
// ArtifactRepository::CollectGarbage, which keeps a blob for `grace_ms` after it was first seen
// unreferenced (a download in flight finishes, an upload of the same bytes takes it back).
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <thread>

#include "services/artifacts/artifact_repository.h"

namespace tessera::artifacts {

class BlobCollector {
 public:
  BlobCollector(ArtifactRepository& artifacts, int64_t interval_ms, int64_t grace_ms);
  ~BlobCollector();  // stops the thread; a pass in progress finishes first

 private:
  void Run();

  ArtifactRepository& artifacts_;
  const int64_t interval_ms_;
  const int64_t grace_ms_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace tessera::artifacts
