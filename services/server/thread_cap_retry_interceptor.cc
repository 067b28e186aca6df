#include "services/server/thread_cap_retry_interceptor.h"

#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>

#include "absl/strings/str_cat.h"
#include "services/common/grpc_status.h"

namespace tessera::server {
namespace {

using grpc::experimental::InterceptionHookPoints;

// What the server's refusals add up to, shared by every call's interceptor.
struct Refusals {
  std::atomic<int64_t> total{0};
  std::atomic<int64_t> last_log_ms{0};
};

class ThreadCapRetryInterceptor final : public grpc::experimental::Interceptor {
 public:
  ThreadCapRetryInterceptor(int max_rpc_threads, Refusals& refusals) : max_rpc_threads_(max_rpc_threads), refusals_(refusals) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(InterceptionHookPoints::PRE_SEND_STATUS)) {
      const grpc::Status status = methods->GetSendStatus();
      // Only the library's own refusal: it alone has this code, this message and no details.
      if (status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED && status.error_details().empty() &&
          status.error_message() == kGrpcThreadpoolExhausted) {
        methods->ModifySendStatus(ToGrpcStatus(ResourceExhaustedWithRetry(
            absl::StrCat("all ", max_rpc_threads_, " RPC threads of this server are busy (--max-rpc-threads)"),
            kThreadCapRetryAfterMs)));
        LogRefusal();
      }
    }
    methods->Proceed();
  }

 private:
  // One line per 10 s at most: a saturated server refuses many calls a second.
  void LogRefusal() {
    const int64_t total = refusals_.total.fetch_add(1) + 1;
    const int64_t now_ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
    int64_t last = refusals_.last_log_ms.load();
    if (now_ms - last >= 10'000 && refusals_.last_log_ms.compare_exchange_strong(last, now_ms)) {
      spdlog::warn("refused a call: all {} RPC threads busy ({} refused since start); raise --max-rpc-threads if this persists",
                   max_rpc_threads_, total);
    }
  }

  const int max_rpc_threads_;
  Refusals& refusals_;
};

class ThreadCapRetryInterceptorFactory final : public grpc::experimental::ServerInterceptorFactoryInterface {
 public:
  explicit ThreadCapRetryInterceptorFactory(int max_rpc_threads) : max_rpc_threads_(max_rpc_threads) {}

  grpc::experimental::Interceptor* CreateServerInterceptor(grpc::experimental::ServerRpcInfo* /*info*/) override {
    return new ThreadCapRetryInterceptor(max_rpc_threads_, refusals_);
  }

 private:
  const int max_rpc_threads_;
  Refusals refusals_;
};

}  // namespace

std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> ThreadCapRetryInterceptors(
    int max_rpc_threads) {
  std::vector<std::unique_ptr<grpc::experimental::ServerInterceptorFactoryInterface>> creators;
  creators.push_back(std::make_unique<ThreadCapRetryInterceptorFactory>(max_rpc_threads));
  return creators;
}

}  // namespace tessera::server
