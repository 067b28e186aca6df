// NCCL for the CUDA backend: its errors as statuses, and a communicator that the trainer or the
// all-reduce benchmark shares with a watchdog that may abort it at any moment.
#pragma once

#include <nccl.h>

#include <chrono>
#include <mutex>
#include <thread>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace tessera::kernels::gpu {

inline absl::Status NcclStatus(ncclResult_t e, const char* what) {
  if (e == ncclSuccess || e == ncclInProgress) return absl::OkStatus();
  return absl::InternalError(absl::StrCat("NCCL error in ", what, ": ", ncclGetErrorString(e)));
}

// A communicator shared by its trainer and the watchdog. Teardown is always ncclCommAbort: it
// never blocks (ncclCommDestroy can wait forever on a dead peer), and it is done exactly once.
// Abort frees the communicator, and NCCL allows one thread at a time on a communicator, so every
// NCCL call on it is made under mu_ and only while it is not aborted: the trainer's all-reduce can
// never be enqueued on a communicator the watchdog has just freed.
class Comm {
 public:
  explicit Comm(ncclComm_t comm) : comm_(comm) {}
  ~Comm() { Abort(); }
  void Abort() {
    std::lock_guard lock(mu_);
    if (comm_ != nullptr && !aborted_) (void)ncclCommAbort(comm_);
    aborted_ = true;
  }
  bool aborted() {
    std::lock_guard lock(mu_);
    return aborted_;
  }
  // Enqueues the in-place sum of `count` floats over every rank on `stream`; ABORTED once aborted.
  absl::Status AllReduceSum(float* buffer, size_t count, cudaStream_t stream) {
    std::lock_guard lock(mu_);
    if (aborted_) return absl::AbortedError("NCCL communicator aborted before ncclAllReduce");
    return NcclStatus(ncclAllReduce(buffer, buffer, count, ncclFloat, ncclSum, comm_, stream), "ncclAllReduce");
  }
  // The communicator's asynchronous state: ncclSuccess, ncclInProgress or an error.
  ncclResult_t AsyncError() {
    std::lock_guard lock(mu_);
    if (aborted_) return ncclInternalError;
    ncclResult_t e = ncclSuccess;
    if (ncclCommGetAsyncError(comm_, &e) != ncclSuccess) return ncclInternalError;
    return e;
  }

 private:
  std::mutex mu_;
  ncclComm_t comm_;      // freed by Abort; used only under mu_ while !aborted_
  bool aborted_ = false;  // guarded by mu_
};

// Non-blocking NCCL calls return before they are done: wait until the communicator settles.
inline absl::Status AwaitComm(Comm& comm, const char* what) {
  while (true) {
    const ncclResult_t e = comm.AsyncError();
    if (e == ncclSuccess) return absl::OkStatus();
    if (e != ncclInProgress) {
      return comm.aborted() ? absl::AbortedError(absl::StrCat("NCCL communicator aborted during ", what))
                            : NcclStatus(e, what);
    }
    std::this_thread::sleep_for(std::chrono::microseconds(50));
  }
}

}  // namespace tessera::kernels::gpu
