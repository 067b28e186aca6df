// `tessera job watch JOB`: follows a job's updates until it ends. A stream that breaks while the
// job goes on (a server restart, a failover, a network blip) is reopened after the last event seen,
// as `kubectl logs -f` users expect, for at most --reconnect-for-ms without a working stream; each
// state change is printed once.
#include <chrono>
#include <iostream>

#include "services/cli/commands.h"
#include "services/cli/stream_reconnect.h"
#include "services/common/job_state_machine.h"
#include "tessera/v1/jobs.grpc.pb.h"

namespace tessera::cli {
namespace {

void PrintUpdate(const CliContext& ctx, const v1::JobUpdate& update) {
  if (ctx.json()) {
    std::cout << ToJson(update) << std::endl;
    return;
  }
  std::cout << "job " << update.job_id() << "  " << JobStateName(update.state()) << "  attempt " << update.attempt();
  if (update.kind() == v1::JOB_UPDATE_KIND_PROGRESS) {
    std::cout << "  progress " << Percent(update.progress_ppm());
    if (update.loss() != 0) std::cout << "  loss " << update.loss();
  } else if (update.kind() == v1::JOB_UPDATE_KIND_ESCROW_LOW) {
    std::cout << "  WARNING " << update.message() << " (tessera job extend " << update.job_id() << " --by-ms N)";
  } else {
    std::cout << "  " << update.message();
  }
  std::cout << std::endl;
}

struct WatchState {
  int64_t after_event_id = 0;
  v1::JobState last = v1::JOB_STATE_UNSPECIFIED;
};

// One stream, read to its end.
grpc::Status WatchOnce(CliContext& ctx, v1::JobService::Stub& stub, int64_t job_id, WatchState& state, bool& received) {
  grpc::ClientContext context;  // no deadline: a watch lasts as long as the job
  v1::WatchJobRequest request;
  request.set_job_id(job_id);
  request.set_after_event_id(state.after_event_id);
  auto reader = stub.WatchJob(&context, request);
  v1::JobUpdate update;
  while (reader->Read(&update)) {
    received = true;
    if (IsTerminal(state.last)) continue;  // nothing follows a job's end (a server could race one)
    state.last = update.state();
    state.after_event_id = std::max(state.after_event_id, update.event_id());
    PrintUpdate(ctx, update);
  }
  return reader->Finish();
}

}  // namespace

void AddWatchCommand(CLI::App& job, CliContext& ctx) {
  auto* watch = job.add_subcommand("watch", "Follow a job live until it ends (exit 0 only if it SUCCEEDED)");
  auto job_id = std::make_shared<int64_t>(0);
  auto reconnect_for_ms = std::make_shared<int64_t>(300'000);
  watch->add_option("job_id", *job_id)->required();
  watch->add_option("--reconnect-for-ms", *reconnect_for_ms,
                    "How long to keep reconnecting after the stream breaks before giving up (default 5 min; 0: never)")
      ->check(CLI::NonNegativeNumber);
  watch->callback([&ctx, job_id, reconnect_for_ms] {
    std::shared_ptr<grpc::Channel> channel = ctx.Channel();
    auto stub = v1::JobService::NewStub(channel);
    WatchState state;
    const grpc::Status s = ReconnectingStream("watch", *channel, std::chrono::milliseconds(*reconnect_for_ms),
                                              [&](bool& received) { return WatchOnce(ctx, *stub, *job_id, state, received); });
    if (!s.ok()) {
      ctx.exit_code = ReportError(s);
      return;
    }
    ctx.exit_code = state.last == v1::JOB_STATE_SUCCEEDED ? 0 : 3;
  });
}

}  // namespace tessera::cli
