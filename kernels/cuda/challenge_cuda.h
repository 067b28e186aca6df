// Proof of GPU on CUDA (built only with CUDA): the challenge's int8 product on cuBLAS's int8 tensor
// cores in the layout of gpu_challenge_plan.h, or on the plain kernel for small odd sizes, timed as
// a batch of back-to-back products with CUDA events while the host's dispatch stays outside the
// window. Each device keeps its context, cuBLAS handle and stream from its first use (or WarmUp), so
// that a challenge's deadline pays for none of them, and devices run their challenges in parallel.
//
//   CudaChallenges challenges;
//   challenges.WarmUp({});                                   // at start: every visible device
//   absl::StatusOr<ChallengeRun> run = challenges.Run(spec, 3);
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/compute_backend.h"

namespace tessera::kernels {

class CudaChallenges {
 public:
  CudaChallenges();
  ~CudaChallenges();
  CudaChallenges(const CudaChallenges&) = delete;
  CudaChallenges& operator=(const CudaChallenges&) = delete;

  // Creates the state of `devices` (every visible device when empty), one thread per device, and
  // returns when all are done. A failure is kept and reported by that device's challenges.
  void WarmUp(const std::vector<uint32_t>& devices);
  // Thread-safe; one challenge at a time per device (a second waits: it would share the first's time).
  absl::StatusOr<ChallengeRun> Run(const ChallengeSpec& spec, uint32_t device);

 private:
  struct Device;
  Device& DeviceAt(uint32_t ordinal);

  std::mutex mu_;
  std::map<uint32_t, std::unique_ptr<Device>> devices_;  // guarded by mu_; a Device, once made, lives as long as this
};

}  // namespace tessera::kernels
