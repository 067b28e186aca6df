// The worker's job runner with a fake GPU sampler and real time (short sleep jobs): metering,
// the max-duration stop and its extension, and cancel.
#include <catch2/catch.hpp>

#include <chrono>
#include <mutex>
#include <thread>

#include "services/worker/device_inventory.h"
#include "services/worker/job_runner.h"

using namespace tessera;
using worker::GpuSample;
using worker::JobRunner;

namespace {

class Collected final : public worker::JobReporter {
 public:
  void Send(v1::WorkerMessage m) override {
    std::lock_guard lock(mu_);
    messages_.push_back(std::move(m));
  }
  std::vector<v1::WorkerMessage> messages() {
    std::lock_guard lock(mu_);
    return messages_;
  }
  std::vector<v1::UsageReport> usage() {
    std::vector<v1::UsageReport> out;
    for (const auto& m : messages()) {
      if (m.has_usage()) out.push_back(m.usage());
    }
    return out;
  }
  int64_t GpuMs() {
    int64_t total = 0;
    for (const auto& u : usage()) total += u.gpu_ms();
    return total;
  }
  std::optional<v1::JobFinished> Finished() {
    for (const auto& m : messages()) {
      if (m.has_finished()) return m.finished();
    }
    return std::nullopt;
  }

 private:
  std::mutex mu_;
  std::vector<v1::WorkerMessage> messages_;
};

// GPU 0 has an energy counter that grows 100 mJ per read; GPU 1 has none and draws 200 W.
class FakeSampler final : public worker::GpuSampler {
 public:
  std::string_view Name() const override { return "fake"; }
  std::optional<GpuSample> Sample(uint32_t index) override {
    if (index == 0) {
      counter_ += 100;
      return GpuSample{.utilization_pct = 50, .memory_used_mib = 1'000, .power_mw = 0, .energy_mj = counter_};
    }
    return GpuSample{.utilization_pct = 100, .memory_used_mib = 3'000, .power_mw = 200'000, .energy_mj = std::nullopt};
  }

 private:
  uint64_t counter_ = 5'000'000;  // since the driver loaded: only differences count
};

v1::Assignment SleepAssignment(int64_t sleep_ms, int64_t max_duration_ms, int gpus) {
  v1::Assignment a;
  a.set_job_id(7);
  a.set_attempt(1);
  a.mutable_spec()->set_kind("sleep");
  a.mutable_spec()->set_gpu_count(static_cast<uint32_t>(gpus));
  a.mutable_spec()->set_max_duration_ms(max_duration_ms);
  a.mutable_spec()->mutable_sleep()->set_duration_ms(sleep_ms);
  for (int i = 0; i < gpus; ++i) a.add_gpu_indexes(static_cast<uint32_t>(i));
  return a;
}

// Runs until the runner reports its finish, at most `timeout`.
bool WaitFinished(JobRunner& runner, std::chrono::milliseconds timeout) {
  const auto until = std::chrono::steady_clock::now() + timeout;
  while (!runner.finished() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return runner.finished();
}

}  // namespace

TEST_CASE("usage reports carry the sampler's utilization, peak memory and energy", "[worker]") {
  Collected out;
  FakeSampler sampler;
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  JobRunner runner(SleepAssignment(300, 10'000, 2), out, *backend, clock,
                   worker::RunnerOptions{.usage_interval_ms = 50, .sampler = &sampler});
  REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
  REQUIRE(out.Finished().has_value());
  CHECK(out.Finished()->succeeded());
  const std::vector<v1::UsageReport> usage = out.usage();
  REQUIRE(usage.size() >= 3);
  uint64_t energy = 0;
  for (size_t i = 0; i < usage.size(); ++i) {
    CHECK(usage[i].seq() == i + 1);
    CHECK(usage[i].avg_gpu_utilization_ppm() == 750'000);  // (50% + 100%) / 2
    CHECK(usage[i].peak_gpu_memory_mib() == 3'000);
    energy += usage[i].energy_mj();
  }
  CHECK(out.GpuMs() >= 600);   // 2 GPUs × 300 ms
  CHECK(out.GpuMs() <= 1'000);
  // GPU 0: 100 mJ per read after the first; GPU 1: 200 W over ~300 ms ≈ 60,000 mJ.
  const uint64_t reads_after_first = usage.size();
  CHECK(energy >= 100 * reads_after_first + 200 * 250);
  CHECK(energy <= 100 * (reads_after_first + 1) + 200 * 1'000);
}

TEST_CASE("without a sampler a report carries GPU-ms only", "[worker]") {
  Collected out;
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  JobRunner runner(SleepAssignment(100, 10'000, 1), out, *backend, clock, worker::RunnerOptions{.usage_interval_ms = 20, .sampler = nullptr});
  REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
  for (const auto& u : out.usage()) {
    CHECK(u.avg_gpu_utilization_ppm() == 0);
    CHECK(u.energy_mj() == 0);
  }
  CHECK(out.GpuMs() >= 100);
}

TEST_CASE("a job past its limit is stopped, says why and is billed to the limit; an extension lets it finish",
          "[worker]") {
  Collected out;
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  SECTION("stopped") {
    JobRunner runner(SleepAssignment(5'000, 200, 1), out, *backend, clock, worker::RunnerOptions{.usage_interval_ms = 20, .sampler = nullptr});
    REQUIRE(WaitFinished(runner, std::chrono::seconds(3)));
    REQUIRE(out.Finished().has_value());
    CHECK_FALSE(out.Finished()->succeeded());
    CHECK_THAT(out.Finished()->result().error(), Catch::Contains("escrow is exhausted at max_duration_ms 200"));
    CHECK(out.GpuMs() <= 200);
    CHECK(out.GpuMs() >= 150);
  }
  SECTION("extended in time") {
    JobRunner runner(SleepAssignment(400, 200, 1), out, *backend, clock, worker::RunnerOptions{.usage_interval_ms = 20, .sampler = nullptr});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    runner.Extend(1'000);
    REQUIRE(WaitFinished(runner, std::chrono::seconds(3)));
    REQUIRE(out.Finished().has_value());
    CHECK(out.Finished()->succeeded());
    CHECK(out.GpuMs() >= 400);
  }
}

TEST_CASE("a cancel stops a job within a second and says why", "[worker]") {
  Collected out;
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  JobRunner runner(SleepAssignment(60'000, 120'000, 1), out, *backend, clock, worker::RunnerOptions{.usage_interval_ms = 50, .sampler = nullptr});
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  const auto cancelled_at = std::chrono::steady_clock::now();
  runner.Cancel("customer asked");
  REQUIRE(WaitFinished(runner, std::chrono::seconds(1)));
  CHECK(std::chrono::steady_clock::now() - cancelled_at < std::chrono::seconds(1));
  REQUIRE(out.Finished().has_value());
  CHECK_FALSE(out.Finished()->succeeded());
  CHECK_THAT(out.Finished()->result().error(), Catch::Contains("cancelled: customer asked"));
}

TEST_CASE("a multi-worker training job offers its communicator id at node rank 0 and waits for it elsewhere", "[worker]") {
  v1::Assignment a;
  a.set_job_id(9);
  a.set_attempt(1);
  a.mutable_spec()->set_kind("train_mlp");
  a.mutable_spec()->set_gpu_count(2);
  a.mutable_spec()->set_max_duration_ms(60'000);
  v1::TrainMlpParams* p = a.mutable_spec()->mutable_train_mlp();
  p->set_seed(1);
  p->set_input_dim(4);
  p->set_hidden_dim(8);
  p->set_output_dim(1);
  p->set_samples(64);
  p->set_batch_size(16);
  p->set_epochs(2);
  p->set_learning_rate_micros(50'000);
  a.add_gpu_indexes(0);
  a.add_node_worker_ids(100);
  a.add_node_worker_ids(200);
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  const worker::RunnerOptions options{.usage_interval_ms = 20, .sampler = nullptr, .rendezvous_timeout_ms = 300};
  SECTION("rank 0 offers 128 unguessable bytes and trains") {
    Collected out;
    JobRunner runner(a, out, *backend, clock, options);
    REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
    CHECK(out.Finished()->succeeded());
    std::vector<v1::RendezvousOffer> offers;
    for (const auto& m : out.messages()) {
      if (m.has_rendezvous_offer()) offers.push_back(m.rendezvous_offer());
    }
    REQUIRE(offers.size() == 1);
    CHECK(offers[0].job_id() == 9);
    CHECK(offers[0].unique_id().size() == 128);
  }
  SECTION("rank 1 trains once the id arrives") {
    a.set_node_rank(1);
    Collected out;
    JobRunner runner(a, out, *backend, clock, options);
    v1::Rendezvous r;
    r.set_job_id(9);
    r.set_attempt(1);
    r.set_unique_id(std::string(128, 'x'));
    r.add_node_gpu_counts(1);
    r.add_node_gpu_counts(1);
    runner.OnRendezvous(r);
    REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
    CHECK(out.Finished()->succeeded());
  }
  SECTION("rank 1 stops waiting at once when the job is cancelled") {
    a.set_node_rank(1);
    Collected out;
    JobRunner runner(a, out, *backend, clock, {.usage_interval_ms = 20, .sampler = nullptr, .rendezvous_timeout_ms = 60'000});
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const auto cancelled_at = std::chrono::steady_clock::now();
    runner.Cancel("customer asked");
    REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
    CHECK(std::chrono::steady_clock::now() - cancelled_at < std::chrono::seconds(2));
    CHECK_THAT(out.Finished()->result().error(), Catch::Contains("cancelled: customer asked"));
  }
  SECTION("rank 1 fails cleanly when it never arrives") {
    a.set_node_rank(1);
    Collected out;
    JobRunner runner(a, out, *backend, clock, options);
    REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
    CHECK_FALSE(out.Finished()->succeeded());
    CHECK_THAT(out.Finished()->result().error(), Catch::Contains("no rendezvous from node rank 0 within 300 ms"));
  }
}

TEST_CASE("a training job's progress carries its loss, and its outputs come back as train_mlp", "[worker]") {
  v1::Assignment a;
  a.set_job_id(11);
  a.set_attempt(1);
  a.mutable_spec()->set_gpu_count(1);
  a.mutable_spec()->set_max_duration_ms(60'000);
  v1::TrainMlpParams* p = a.mutable_spec()->mutable_train_mlp();
  p->set_seed(3);
  p->set_input_dim(8);
  p->set_hidden_dim(64);
  p->set_output_dim(2);
  p->set_samples(4'096);
  p->set_batch_size(16);
  p->set_epochs(40);
  p->set_learning_rate_micros(20'000);
  a.add_gpu_indexes(0);
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  Collected out;
  JobRunner runner(a, out, *backend, clock, {.usage_interval_ms = 5, .sampler = nullptr, .rendezvous_timeout_ms = 1'000});
  REQUIRE(WaitFinished(runner, std::chrono::seconds(30)));
  const std::optional<v1::JobFinished> finished = out.Finished();
  REQUIRE(finished->succeeded());
  const v1::JobResult& result = finished->result();
  REQUIRE(result.has_train_mlp());
  CHECK(result.train_mlp().final_loss() < result.train_mlp().initial_loss());
  CHECK(result.train_mlp().weights_sha256().size() == 64);
  std::vector<v1::JobProgress> progress;
  for (const auto& m : out.messages()) {
    if (m.has_progress()) progress.push_back(m.progress());
  }
  REQUIRE_FALSE(progress.empty());
  for (size_t i = 1; i < progress.size(); ++i) CHECK(progress[i].progress_ppm() >= progress[i - 1].progress_ppm());
  // The last progress is where it ended: all epochs, the final loss.
  CHECK(progress.back().progress_ppm() == 1'000'000);
  CHECK(progress.back().loss() == Approx(result.train_mlp().final_loss()));
}

TEST_CASE("allreduce_bench on a CPU worker fails with the reason, not a crash", "[worker]") {
  v1::Assignment a = SleepAssignment(0, 60'000, 1);
  a.mutable_spec()->set_kind("allreduce_bench");
  a.mutable_spec()->clear_sleep();
  a.mutable_spec()->mutable_allreduce_bench()->set_megabytes(1);
  a.mutable_spec()->mutable_allreduce_bench()->set_iterations(1);
  Collected out;
  SystemClock clock;
  auto backend = kernels::MakeCpuBackend();
  JobRunner runner(a, out, *backend, clock, worker::RunnerOptions{.usage_interval_ms = 20, .sampler = nullptr});
  REQUIRE(WaitFinished(runner, std::chrono::seconds(5)));
  CHECK_FALSE(out.Finished()->succeeded());
  CHECK_THAT(out.Finished()->result().error(), Catch::Contains("allreduce_bench measures NVIDIA GPUs' interconnect"));
}

TEST_CASE("the CUDA inventory becomes the worker's offer: model names, capability, topology", "[worker]") {
  const std::vector<kernels::CudaDevice> cuda = {
      {.ordinal = 0, .name = "NVIDIA H100 80GB HBM3", .uuid = "GPU-aaaaaaaa-0000-0000-0000-000000000000", .pci_bus_id = "0000:1B:00.0",
       .memory_mib = 81'559, .compute_major = 9, .compute_minor = 0, .peers = {1, 2}},
      {.ordinal = 1, .name = "NVIDIA H100 80GB HBM3", .uuid = "GPU-bbbbbbbb-0000-0000-0000-000000000000", .pci_bus_id = "0000:43:00.0",
       .memory_mib = 81'559, .compute_major = 9, .compute_minor = 0, .peers = {0, 2}},
      {.ordinal = 2, .name = "NVIDIA H100 80GB HBM3", .uuid = "GPU-cccccccc-0000-0000-0000-000000000000", .pci_bus_id = "0000:52:00.0",
       .memory_mib = 81'559, .compute_major = 9, .compute_minor = 0, .peers = {0, 1}},
  };
  const std::vector<v1::Gpu> all = worker::GpuDevices(cuda, 0);
  REQUIRE(all.size() == 3);
  CHECK(all[1].index() == 1);
  CHECK(all[1].model() == "H100");
  CHECK(all[1].compute_capability() == "9.0");
  CHECK(all[1].memory_mib() == 81'559);
  CHECK(all[1].pci_bus_id() == "0000:43:00.0");
  CHECK(std::vector<uint32_t>(all[1].peer_indexes().begin(), all[1].peer_indexes().end()) == std::vector<uint32_t>{0, 2});
  // Offering two of three: no GPU names a peer that is not offered.
  const std::vector<v1::Gpu> two = worker::GpuDevices(cuda, 2);
  REQUIRE(two.size() == 2);
  CHECK(std::vector<uint32_t>(two[0].peer_indexes().begin(), two[0].peer_indexes().end()) == std::vector<uint32_t>{1});
}
