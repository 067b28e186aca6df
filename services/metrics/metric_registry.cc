#include "services/metrics/metric_registry.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <sstream>

namespace tessera::metrics {
namespace {

void AddTo(std::atomic<double>& target, double by) {
  double seen = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(seen, seen + by, std::memory_order_relaxed)) {
  }
}

// Prometheus' number format: integers without a fraction, +Inf/-Inf/NaN by name.
std::string Number(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  // The shortest of 15 or 17 digits that reads back the same: 0.0025, not 0.0025000000000000001.
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.15g", v);
  if (std::strtod(buf, nullptr) != v) std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string Labels(const std::vector<std::string>& names, const std::vector<std::string>& values, const std::string& extra_name = "",
                   const std::string& extra_value = "") {
  std::string out;
  for (size_t i = 0; i < names.size(); ++i) {
    out += out.empty() ? "{" : ",";
    out += names[i] + "=\"" + EscapeLabelValue(values[i]) + "\"";
  }
  if (!extra_name.empty()) {
    out += out.empty() ? "{" : ",";
    out += extra_name + "=\"" + extra_value + "\"";
  }
  if (!out.empty()) out += "}";
  return out;
}

}  // namespace

void Counter::Increment(double by) { AddTo(value_, by); }

void Gauge::Add(double by) { AddTo(value_, by); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  counts_[i].fetch_add(1, std::memory_order_relaxed);
  AddTo(sum_, v);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    out[i] = running;
  }
  return out;
}

std::vector<double> LatencyBuckets() { return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}; }

template <typename Child>
Child& Family<Child>::WithLabels(const std::vector<std::string>& values) {
  if (values.size() != label_names_.size()) std::abort();  // a caller's bug: every label has a value
  std::lock_guard lock(mu_);
  std::unique_ptr<Child>& child = children_[values];
  if (child == nullptr) child = make_();
  return *child;
}

template <typename Child>
void Family<Child>::ForEach(const std::function<void(const std::vector<std::string>&, const Child&)>& visit) const {
  std::lock_guard lock(mu_);
  for (const auto& [values, child] : children_) visit(values, *child);
}

template <typename Child>
void Family<Child>::ForEachMutable(const std::function<void(const std::vector<std::string>&, Child&)>& visit) {
  std::lock_guard lock(mu_);
  for (auto& [values, child] : children_) visit(values, *child);
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

MetricRegistry::Entry& MetricRegistry::Add(const std::string& name, const std::string& help, MetricType type) {
  std::lock_guard lock(mu_);
  auto [it, added] = entries_.try_emplace(name);
  if (!added) std::abort();  // one name, one family
  it->second.help = help;
  it->second.type = type;
  return it->second;
}

Family<Counter>& MetricRegistry::AddCounter(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  Entry& e = Add(name, help, MetricType::kCounter);
  e.counters = std::make_unique<Family<Counter>>(std::move(labels), [] { return std::make_unique<Counter>(); });
  return *e.counters;
}

Family<Gauge>& MetricRegistry::AddGauge(const std::string& name, const std::string& help, std::vector<std::string> labels) {
  Entry& e = Add(name, help, MetricType::kGauge);
  e.gauges = std::make_unique<Family<Gauge>>(std::move(labels), [] { return std::make_unique<Gauge>(); });
  return *e.gauges;
}

Family<Histogram>& MetricRegistry::AddHistogram(const std::string& name, const std::string& help, std::vector<std::string> labels,
                                                std::vector<double> bounds) {
  Entry& e = Add(name, help, MetricType::kHistogram);
  e.histograms = std::make_unique<Family<Histogram>>(std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); });
  return *e.histograms;
}

void MetricRegistry::OnScrape(std::function<void()> collect) {
  std::lock_guard lock(mu_);
  collectors_.push_back(std::move(collect));
}

std::string MetricRegistry::Exposition() const {
  std::vector<std::function<void()>> collectors;
  {
    std::lock_guard lock(mu_);
    collectors = collectors_;
  }
  for (const auto& collect : collectors) collect();
  std::ostringstream out;
  std::lock_guard lock(mu_);
  // Named, not a structured binding: the lambdas below use them, which clang 14 cannot capture.
  for (const auto& entry : entries_) {
    const std::string& name = entry.first;
    const Entry& e = entry.second;
    out << "# HELP " << name << " " << e.help << "\n";
    switch (e.type) {
      case MetricType::kCounter:
        out << "# TYPE " << name << " counter\n";
        e.counters->ForEach([&](const std::vector<std::string>& values, const Counter& c) {
          out << name << Labels(e.counters->label_names(), values) << " " << Number(c.value()) << "\n";
        });
        break;
      case MetricType::kGauge:
        out << "# TYPE " << name << " gauge\n";
        e.gauges->ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
          out << name << Labels(e.gauges->label_names(), values) << " " << Number(g.value()) << "\n";
        });
        break;
      case MetricType::kHistogram:
        out << "# TYPE " << name << " histogram\n";
        e.histograms->ForEach([&](const std::vector<std::string>& values, const Histogram& h) {
          const std::vector<uint64_t> counts = h.CumulativeCounts();
          const auto& names = e.histograms->label_names();
          for (size_t i = 0; i < counts.size(); ++i) {
            const std::string le = i < h.bounds().size() ? Number(h.bounds()[i]) : "+Inf";
            out << name << "_bucket" << Labels(names, values, "le", le) << " " << counts[i] << "\n";
          }
          out << name << "_sum" << Labels(names, values) << " " << Number(h.sum()) << "\n";
          out << name << "_count" << Labels(names, values) << " " << counts.back() << "\n";
        });
        break;
    }
  }
  return out.str();
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace tessera::metrics
