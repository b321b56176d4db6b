// The Prometheus exposition: format details, and the output checked by the real tools
// (promtool and the Python client's parser) where they are installed.
#include "server/metrics.h"

#include <unistd.h>

#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_metrics.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::metrics {
namespace {

using ::mgreg::testing::RunCommand;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::WriteFileOrDie;
using ::testing::HasSubstr;

TEST(MetricsTest, CounterWithLabelsRendersHelpTypeAndSample) {
  Registry r;
  r.AddCounter("mgreg_x_total", "calls", {"method", "code"})
      ->WithLabels({"Get", "OK"})
      ->Increment(3);
  EXPECT_EQ(r.Render(),
            "# HELP mgreg_x_total calls\n# TYPE mgreg_x_total counter\n"
            "mgreg_x_total{method=\"Get\",code=\"OK\"} 3\n");
}

TEST(MetricsTest, LabelValuesAndHelpAreEscaped) {
  EXPECT_EQ(EscapeLabelValue("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
  EXPECT_EQ(EscapeHelp("a\\b\nc\"d"), "a\\\\b\\nc\"d");
  Registry r;
  r.AddGauge("g", "line one\nline two", {"l"})->WithLabels({"q\"uote"})->Set(1.5);
  EXPECT_THAT(r.Render(), HasSubstr("# HELP g line one\\nline two\n"));
  EXPECT_THAT(r.Render(), HasSubstr("g{l=\"q\\\"uote\"} 1.5\n"));
}

TEST(MetricsTest, HistogramBucketsAreCumulativeWithInfSumAndCount) {
  Registry r;
  Histogram* h = r.AddHistogram("lat_seconds", "latency", {0.1, 1}, {})->WithLabels({});
  h->Observe(0.05);
  h->Observe(0.1);  // on the bound: counted in le="0.1"
  h->Observe(0.5);
  h->Observe(7);
  EXPECT_EQ(r.Render(),
            "# HELP lat_seconds latency\n# TYPE lat_seconds histogram\n"
            "lat_seconds_bucket{le=\"0.1\"} 2\n"
            "lat_seconds_bucket{le=\"1\"} 3\n"
            "lat_seconds_bucket{le=\"+Inf\"} 4\n"
            "lat_seconds_sum 7.65\n"
            "lat_seconds_count 4\n");
}

TEST(MetricsTest, ValuesFormatAsPrometheusReadsThem) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(12345678901), "12345678901");
  EXPECT_EQ(FormatValue(0.25), "0.25");
  EXPECT_EQ(FormatValue(1.0 / 0.0), "+Inf");
  EXPECT_EQ(FormatValue(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(FormatValue(0.0 / 0.0), "NaN");
}

TEST(MetricsTest, CountersNeverGoDown) {
  Counter c;
  c.Increment(2);
  c.Increment(-1);
  EXPECT_EQ(c.value(), 2);
}

TEST(MetricsTest, NamesAreValidated) {
  EXPECT_TRUE(IsValidMetricName("mgreg_a:b_total"));
  EXPECT_FALSE(IsValidMetricName("1abc"));
  EXPECT_FALSE(IsValidMetricName("a-b"));
  EXPECT_TRUE(IsValidLabelName("method"));
  EXPECT_FALSE(IsValidLabelName("__reserved"));
  EXPECT_FALSE(IsValidLabelName("a:b"));
}

// The server's own families, with a sample in every one and awkward label values.
std::string ServerExposition() {
  static ServerMetrics* const m = [] {
    auto* metrics = new ServerMetrics();
    metrics->RecordCall("GetLatestCheckpoint", "OK", absl::Milliseconds(2), 20, 300);
    metrics->RecordCall("GetLatestCheckpoint", "NOT_FOUND", absl::Microseconds(80), 20,
                        0);
    metrics->RecordCall("PutFile", "OK", absl::Seconds(3), 1 << 20, 10);
    metrics->RecordAuthFailure("UNAUTHENTICATED");
    metrics->registry()
        .AddCounter("mgreg_test_escaping_total", "escaping \\ check", {"v"})
        ->WithLabels({"quote\" back\\slash new\nline"})
        ->Increment();
    return metrics;
  }();
  return m->registry().Render();
}

TEST(MetricsTest, ServerExportsTheLogLinesStderrDidNotTake) {
  // common/log.h's LogLinesLost, read at every scrape (docs/reliability.md "Broken
  // pipes"); this process's stderr takes every line.
  EXPECT_NE(ServerExposition().find("\nmgreg_log_lines_lost_total 0\n"),
            std::string::npos)
      << ServerExposition();
}

TEST(MetricsTest, ServerExpositionPassesPromtoolCheckMetrics) {
  if (::access("/usr/bin/promtool", X_OK) != 0) {
    GTEST_SKIP() << "promtool not installed (Debian package prometheus; "
                    "scripts/install-deps.sh test installs it)";
  }
  TempDir tmp;
  WriteFileOrDie(tmp.Join("metrics.txt"), ServerExposition());
  auto r = RunCommand(
      {"/bin/sh", "-c",
       absl::StrCat("/usr/bin/promtool check metrics < ", tmp.Join("metrics.txt"))});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.out + r.err, "") << "promtool lint findings";
}

TEST(MetricsTest, ServerExpositionParsesWithPythonPrometheusClient) {
  auto probe = RunCommand({"/usr/bin/python3", "-c", "import prometheus_client"});
  if (probe.exit_code != 0) {
    GTEST_SKIP()
        << "python3-prometheus-client not installed (scripts/install-deps.sh test)";
  }
  TempDir tmp;
  WriteFileOrDie(tmp.Join("metrics.txt"), ServerExposition());
  const char* kScript = R"PY(
import sys
from prometheus_client.parser import text_string_to_metric_families
fams = {f.name: f for f in text_string_to_metric_families(open(sys.argv[1]).read())}
req = fams["mgreg_grpc_requests"]
assert req.type == "counter", req.type
by = {(s.labels["method"], s.labels["code"]): s.value for s in req.samples if s.name.endswith("_total")}
assert by[("GetLatestCheckpoint", "OK")] == 1.0, by
assert by[("GetLatestCheckpoint", "NOT_FOUND")] == 1.0, by
lat = fams["mgreg_grpc_request_duration_seconds"]
assert lat.type == "histogram"
count = [s for s in lat.samples if s.name.endswith("_count") and s.labels["method"] == "PutFile"]
assert count[0].value == 1.0
inf = [s for s in lat.samples if s.labels.get("le") == "+Inf" and s.labels["method"] == "PutFile"]
assert inf[0].value == 1.0
esc = [s for s in fams["mgreg_test_escaping"].samples if s.name.endswith("_total")][0]
assert esc.labels["v"] == 'quote" back\\slash new\nline', repr(esc.labels["v"])
assert fams["mgreg_watchers_connected"].type == "gauge"
print("ok", len(fams))
)PY";
  auto r = RunCommand({"/usr/bin/python3", "-c", kScript, tmp.Join("metrics.txt")});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("ok"));
}

}  // namespace
}  // namespace mgreg::metrics
