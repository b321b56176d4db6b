#include "server/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/log.h"

namespace mgreg::metrics {
namespace {

void AtomicAdd(std::atomic<double>* a, double v) {
  double old = a->load(std::memory_order_relaxed);
  while (!a->compare_exchange_weak(old, old + v, std::memory_order_relaxed)) {
  }
}

// `{a="x",b="y"}` or "" with no labels; `extra` appends one more pair (le="...").
std::string LabelSet(const std::vector<std::string>& names,
                     const std::vector<std::string>& values,
                     const std::string& extra_name, const std::string& extra_value) {
  std::vector<std::string> parts;
  for (size_t i = 0; i < names.size() && i < values.size(); ++i) {
    parts.push_back(absl::StrCat(names[i], "=\"", EscapeLabelValue(values[i]), "\""));
  }
  if (!extra_name.empty()) {
    parts.push_back(absl::StrCat(extra_name, "=\"", EscapeLabelValue(extra_value), "\""));
  }
  if (parts.empty()) return "";
  return absl::StrCat("{", absl::StrJoin(parts, ","), "}");
}

const char* TypeName(MetricType t) {
  switch (t) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

}  // namespace

void Counter::Increment(double v) {
  if (v < 0) return;  // counters never go down
  AtomicAdd(&value_, v);
}

void Gauge::Add(double v) { AtomicAdd(&value_, v); }

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)),
      buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i].store(0);
}

void Histogram::Observe(double v) {
  size_t i = 0;
  while (i < bounds_.size() && v > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(&sum_, v);
  count_.fetch_add(1, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> out(bounds_.size() + 1);
  uint64_t total = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    total += buckets_[i].load(std::memory_order_relaxed);
    out[i] = total;
  }
  return out;
}

std::vector<double> LatencyBuckets() {
  return {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
          0.25,   0.5,   1,      2.5,   5,    10,    30,   60};
}

std::string EscapeLabelValue(const std::string& value) {
  std::string out;
  out.reserve(value.size());
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

std::string EscapeHelp(const std::string& help) {
  std::string out;
  for (char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string FormatValue(double v) {
  if (std::isnan(v)) return "NaN";
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  if (v == std::floor(v) && std::fabs(v) < 1e15) {
    return absl::StrCat(static_cast<int64_t>(v));
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the shortest text that reads back as the same double.
  for (int precision = 1; precision <= 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

bool IsValidMetricName(const std::string& name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

bool IsValidLabelName(const std::string& name) {
  if (name.empty() || name.rfind("__", 0) == 0) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!(alpha || (i > 0 && digit))) return false;
  }
  return true;
}

Registry::Entry* Registry::Add(const std::string& name, const std::string& help,
                               MetricType type, const std::vector<std::string>& labels) {
  bool ok = IsValidMetricName(name);
  for (const std::string& l : labels) {
    ok = ok && IsValidLabelName(l) && !(type == MetricType::kHistogram && l == "le");
  }
  absl::MutexLock lock(&mu_);
  for (const auto& e : entries_) ok = ok && e->name != name;
  if (!ok) {
    LogError("metrics: invalid or duplicate metric '", name, "'");
    std::abort();
  }
  auto entry = std::make_unique<Entry>();
  entry->name = name;
  entry->help = help;
  entry->type = type;
  entries_.push_back(std::move(entry));
  return entries_.back().get();
}

Family<Counter>* Registry::AddCounter(const std::string& name, const std::string& help,
                                      std::vector<std::string> labels) {
  Entry* e = Add(name, help, MetricType::kCounter, labels);
  e->counters = std::make_unique<Family<Counter>>(
      std::move(labels), [] { return std::make_unique<Counter>(); });
  return e->counters.get();
}

Family<Gauge>* Registry::AddGauge(const std::string& name, const std::string& help,
                                  std::vector<std::string> labels) {
  Entry* e = Add(name, help, MetricType::kGauge, labels);
  e->gauges = std::make_unique<Family<Gauge>>(std::move(labels),
                                              [] { return std::make_unique<Gauge>(); });
  return e->gauges.get();
}

Family<Histogram>* Registry::AddHistogram(const std::string& name,
                                          const std::string& help,
                                          std::vector<double> bounds,
                                          std::vector<std::string> labels) {
  Entry* e = Add(name, help, MetricType::kHistogram, labels);
  e->histograms = std::make_unique<Family<Histogram>>(
      std::move(labels), [bounds] { return std::make_unique<Histogram>(bounds); });
  return e->histograms.get();
}

void Registry::AddCollectHook(std::function<void()> hook) {
  absl::MutexLock lock(&mu_);
  hooks_.push_back(std::move(hook));
}

std::string Registry::Render() {
  std::vector<std::function<void()>> hooks;
  {
    absl::MutexLock lock(&mu_);
    hooks = hooks_;
  }
  for (const auto& hook : hooks) hook();

  absl::MutexLock lock(&mu_);
  std::string out;
  for (const auto& e : entries_) {
    absl::StrAppend(&out, "# HELP ", e->name, " ", EscapeHelp(e->help), "\n");
    absl::StrAppend(&out, "# TYPE ", e->name, " ", TypeName(e->type), "\n");
    switch (e->type) {
      case MetricType::kCounter:
        e->counters->ForEach(
            [&](const std::vector<std::string>& values, const Counter& c) {
              absl::StrAppend(&out, e->name,
                              LabelSet(e->counters->label_names(), values, "", ""), " ",
                              FormatValue(c.value()), "\n");
            });
        break;
      case MetricType::kGauge:
        e->gauges->ForEach([&](const std::vector<std::string>& values, const Gauge& g) {
          absl::StrAppend(&out, e->name,
                          LabelSet(e->gauges->label_names(), values, "", ""), " ",
                          FormatValue(g.value()), "\n");
        });
        break;
      case MetricType::kHistogram:
        e->histograms->ForEach(
            [&](const std::vector<std::string>& values, const Histogram& h) {
              const std::vector<std::string>& names = e->histograms->label_names();
              const std::vector<uint64_t> cumulative = h.CumulativeCounts();
              for (size_t i = 0; i < h.bounds().size(); ++i) {
                absl::StrAppend(&out, e->name, "_bucket",
                                LabelSet(names, values, "le", FormatValue(h.bounds()[i])),
                                " ", cumulative[i], "\n");
              }
              // Read the total from the buckets so that +Inf == _count within one scrape.
              const uint64_t total = cumulative.back();
              absl::StrAppend(&out, e->name, "_bucket",
                              LabelSet(names, values, "le", "+Inf"), " ", total, "\n");
              absl::StrAppend(&out, e->name, "_sum", LabelSet(names, values, "", ""), " ",
                              FormatValue(h.sum()), "\n");
              absl::StrAppend(&out, e->name, "_count", LabelSet(names, values, "", ""),
                              " ", total, "\n");
            });
        break;
    }
  }
  return out;
}

}  // namespace mgreg::metrics
