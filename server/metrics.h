// A small Prometheus instrumentation library: counters, gauges and histograms with
// fixed buckets, grouped in labelled families, rendered in the Prometheus text
// exposition format 0.0.4 (what GET /metrics serves). prometheus-cpp is not packaged
// for Debian 12, hence this.
//
// Thread safety: every method may be called concurrently. Observing a metric is
// lock-free; looking up a labelled child takes the family's mutex once (callers on hot
// paths keep the returned pointer, which stays valid as long as the registry).
#ifndef MGREG_SERVER_METRICS_H_
#define MGREG_SERVER_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace mgreg::metrics {

// A monotonically increasing value (name ends in _total).
class Counter {
 public:
  void Increment(double v = 1.0);
  // Sets the value of a counter whose total is kept elsewhere (e.g. the export cache's
  // hit count), copied at scrape time.
  void SetTotal(double total) { value_.store(total, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down.
class Gauge {
 public:
  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Counts observations into fixed buckets (upper bounds, ascending; +Inf is implicit).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double v);

  const std::vector<double>& bounds() const { return bounds_; }
  // Cumulative counts per bound, then the +Inf count (== count()).
  std::vector<uint64_t> CumulativeCounts() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }
  uint64_t count() const { return count_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // bounds_.size() + 1
  std::atomic<double> sum_{0.0};
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds, 0.5 ms .. 60 s.
std::vector<double> LatencyBuckets();

enum class MetricType { kCounter, kGauge, kHistogram };

// All metrics of one name, one child per combination of label values.
template <typename T>
class Family {
 public:
  using Factory = std::function<std::unique_ptr<T>()>;
  Family(std::vector<std::string> label_names, Factory factory)
      : label_names_(std::move(label_names)), factory_(std::move(factory)) {}

  // The child with these label values (as many as label names), created on first use.
  T* WithLabels(const std::vector<std::string>& values) {
    absl::MutexLock lock(&mu_);
    std::unique_ptr<T>& slot = children_[values];
    if (slot == nullptr) slot = factory_();
    return slot.get();
  }
  const std::vector<std::string>& label_names() const { return label_names_; }
  // Calls `fn(values, child)` for every child, in label order.
  void ForEach(const std::function<void(const std::vector<std::string>&, const T&)>& fn) {
    absl::MutexLock lock(&mu_);
    for (const auto& [values, child] : children_) fn(values, *child);
  }

 private:
  const std::vector<std::string> label_names_;
  const Factory factory_;
  absl::Mutex mu_;
  std::map<std::vector<std::string>, std::unique_ptr<T>> children_ ABSL_GUARDED_BY(mu_);
};

// Owns metric families and renders them. Names must match [a-zA-Z_:][a-zA-Z0-9_:]*
// and be registered once (a duplicate or malformed name aborts: it is a programming
// error, caught by the first test that builds the registry).
class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  Family<Counter>* AddCounter(const std::string& name, const std::string& help,
                              std::vector<std::string> labels = {});
  Family<Gauge>* AddGauge(const std::string& name, const std::string& help,
                          std::vector<std::string> labels = {});
  Family<Histogram>* AddHistogram(const std::string& name, const std::string& help,
                                  std::vector<double> bounds,
                                  std::vector<std::string> labels = {});

  // Runs before every Render (e.g. to copy store figures into gauges).
  void AddCollectHook(std::function<void()> hook);

  // The text exposition format 0.0.4 of every family, in registration order.
  std::string Render();

 private:
  struct Entry {
    std::string name;
    std::string help;
    MetricType type;
    std::unique_ptr<Family<Counter>> counters;
    std::unique_ptr<Family<Gauge>> gauges;
    std::unique_ptr<Family<Histogram>> histograms;
  };
  Entry* Add(const std::string& name, const std::string& help, MetricType type,
             const std::vector<std::string>& labels);

  absl::Mutex mu_;
  std::vector<std::unique_ptr<Entry>> entries_ ABSL_GUARDED_BY(mu_);
  std::vector<std::function<void()>> hooks_ ABSL_GUARDED_BY(mu_);
};

// Exposition helpers, exposed for tests.
// Escapes a label value: backslash, double quote and line feed.
std::string EscapeLabelValue(const std::string& value);
// Escapes HELP text: backslash and line feed.
std::string EscapeHelp(const std::string& help);
// A sample value: integers without a fraction, "+Inf", "-Inf", "NaN".
std::string FormatValue(double v);
bool IsValidMetricName(const std::string& name);
bool IsValidLabelName(const std::string& name);

}  // namespace mgreg::metrics

#endif  // MGREG_SERVER_METRICS_H_
