// Prometheus metrics (issue 19): counters, gauges and histograms in labelled families, written in
// the text exposition format (version 0.0.4) that Prometheus scrapes. Names follow Prometheus'
// conventions (a unit suffix, `_total` on counters, base units: seconds, bytes); label values come
// from bounded sets (a method, a state, a GPU model), never from ids. Updates are lock-free after a
// child's first use (an atomic each); a scrape takes the registry's lock.
//
//   MetricRegistry registry;
//   Counter& submitted = registry.AddCounter("tessera_jobs_submitted_total", "Jobs accepted", {"kind", "class"})
//                            .WithLabels({"container", "ON_DEMAND"});
//   submitted.Increment();
//   std::string text = registry.Exposition();
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace tessera::metrics {

class Counter {
 public:
  void Increment(double by = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double by);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);
  // Cumulative counts per bound (the last is +Inf), the sum and the count, as a scrape reads them.
  std::vector<uint64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // one per bound, and one for +Inf
  std::atomic<double> sum_{0};
};

// Seconds: from 1 ms to 10 s, what an RPC or a scheduling round takes.
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// One metric name and its children, one per label-value tuple.
template <typename Child>
class Family {
 public:
  Family(std::vector<std::string> label_names, std::function<std::unique_ptr<Child>()> make)
      : label_names_(std::move(label_names)), make_(std::move(make)) {}
  // The child for these values (as many as the family has labels), made on first use; the
  // reference stays valid as long as the registry.
  Child& WithLabels(const std::vector<std::string>& values);
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Each child with its label values, in label order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const Child&)>& visit) const;
  void ForEachMutable(const std::function<void(const std::vector<std::string>&, Child&)>& visit);

 private:
  const std::vector<std::string> label_names_;
  const std::function<std::unique_ptr<Child>()> make_;
  mutable std::mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<Child>> children_;
};

class MetricRegistry {
 public:
  // Registering a name twice is a programming error: it aborts.
  Family<Counter>& AddCounter(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family<Gauge>& AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels = {});
  Family<Histogram>& AddHistogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                  std::vector<double> bounds);
  // Called at each scrape before the families are written: for gauges read from elsewhere (the
  // database, the market), set there.
  void OnScrape(std::function<void()> collect);

  // The text exposition format, families in name order.
  std::string Exposition() const;

 private:
  struct Entry {
    std::string help;
    MetricType type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  Entry& Add(const std::string& name, const std::string& help, MetricType type);

  mutable std::mutex mu_;
  std::map<std::string, Entry> entries_;
  std::vector<std::function<void()>> collectors_;
};

// A label value as the exposition format writes it: backslash, double quote and newline escaped.
std::string EscapeLabelValue(const std::string& value);

}  // namespace tessera::metrics
