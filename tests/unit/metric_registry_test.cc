// The Prometheus text exposition the metrics are scraped in (issue 19): what a family of each type
// writes, labels escaped, histogram buckets cumulative with +Inf, and updates from many threads.
#include <catch2/catch.hpp>

#include <thread>
#include <vector>

#include "services/metrics/metric_registry.h"

using namespace tessera::metrics;

TEST_CASE("each metric type writes the exposition format Prometheus reads", "[metrics]") {
  MetricRegistry registry;
  auto& rpcs = registry.AddCounter("tessera_rpc_requests_total", "RPCs served, by method and code", {"method", "code"});
  rpcs.WithLabels({"SubmitJob", "OK"}).Increment();
  rpcs.WithLabels({"SubmitJob", "OK"}).Increment(2);
  rpcs.WithLabels({"GetJob", "NOT_FOUND"}).Increment();
  registry.AddGauge("tessera_queue_jobs", "Jobs waiting", {"gpu_model"}).WithLabels({"H100 \"SXM\"\n"}).Set(7);
  auto& latency = registry.AddHistogram("tessera_round_duration_seconds", "A matching round", {}, {0.001, 0.0025, 1});
  latency.WithLabels({}).Observe(0.0005);
  latency.WithLabels({}).Observe(0.002);
  latency.WithLabels({}).Observe(5);
  int scrapes = 0;
  registry.OnScrape([&] { ++scrapes; });
  const std::string text = registry.Exposition();
  CHECK(scrapes == 1);
  CHECK(text ==
        "# HELP tessera_queue_jobs Jobs waiting\n"
        "# TYPE tessera_queue_jobs gauge\n"
        "tessera_queue_jobs{gpu_model=\"H100 \\\"SXM\\\"\\n\"} 7\n"
        "# HELP tessera_round_duration_seconds A matching round\n"
        "# TYPE tessera_round_duration_seconds histogram\n"
        "tessera_round_duration_seconds_bucket{le=\"0.001\"} 1\n"
        "tessera_round_duration_seconds_bucket{le=\"0.0025\"} 2\n"
        "tessera_round_duration_seconds_bucket{le=\"1\"} 2\n"
        "tessera_round_duration_seconds_bucket{le=\"+Inf\"} 3\n"
        "tessera_round_duration_seconds_sum 5.0025\n"
        "tessera_round_duration_seconds_count 3\n"
        "# HELP tessera_rpc_requests_total RPCs served, by method and code\n"
        "# TYPE tessera_rpc_requests_total counter\n"
        "tessera_rpc_requests_total{method=\"GetJob\",code=\"NOT_FOUND\"} 1\n"
        "tessera_rpc_requests_total{method=\"SubmitJob\",code=\"OK\"} 3\n");
}

TEST_CASE("counters and histograms count every update from many threads", "[metrics]") {
  MetricRegistry registry;
  Counter& counter = registry.AddCounter("c_total", "c").WithLabels({});
  Histogram& histogram = registry.AddHistogram("h_seconds", "h", {"t"}, LatencyBuckets()).WithLabels({"x"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10'000; ++i) {
        counter.Increment();
        histogram.Observe(0.01);
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(counter.value() == 40'000);
  CHECK(histogram.CumulativeCounts().back() == 40'000);
  CHECK(histogram.sum() == Approx(400.0));
}
