// model-page-5000: GET /model?name=M (the web page of a model with 5,000 steps, each with
// two numeric metadata keys: the first 50 steps, three plots of 5,000 points each) on
// mgreg-server's HTTP listener, against its floor: listing the same 5,000 steps over
// gRPC (ListCheckpoints, pages of 1,000), the data the page is drawn from. Interleaved
// A B pairs (PERF.md); the server pinned to CPU 0, this process to CPU 1. The target
// (issue 19) is absolute: under 200 ms of server time per page, measured as the
// server's CPU time per request and as the wall time seen on loopback.
#include <cstdio>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"

namespace mgreg::bench {
namespace {

constexpr int kSteps = 5000;
constexpr int kPairs = 9;

int Main() {
  PinToCpu(1);
  const std::string tmp = MakeTempDir("web");
  auto server =
      StartServer(absl::StrCat(tmp, "/data"), {"--metrics-listen", "127.0.0.1:0"});
  const std::string http = MetricsAddress(*server);
  auto client = ConnectClient(server->address());
  // One small real checkpoint pushed as every step: its bytes are stored once, each
  // further step is a commit with its own metadata.
  const std::string prefix =
      WriteBenchCheckpoint(tmp, "model.ckpt", 1, 7, 1, 64 << 10, 4096);
  const double fill_start = Now();
  for (int i = 1; i <= kSteps; ++i) {
    PushOptions options;
    options.step = i * 100;
    options.metadata["loss"] = absl::StrFormat("%.6f", 2.0 / (1 + i * 0.01));
    options.metadata["accuracy"] = absl::StrFormat("%.6f", 1 - 1.0 / (1 + i * 0.01));
    CheckOk(client->Push("resnet", prefix, options).status(), "push");
  }
  std::printf("filled %d steps in %.1f s\n", kSteps, Now() - fill_start);

  auto floor_once = [&] {
    int listed = 0;
    std::string token;
    do {
      auto page = client->ListCheckpoints("resnet", 1000, token);
      CheckOk(page.status(), "ListCheckpoints");
      listed += page->checkpoints_size();
      token = page->next_page_token();
    } while (!token.empty());
    if (listed != kSteps)
      Die(absl::StrCat("listed ", listed, " steps, expected ", kSteps));
  };
  size_t page_bytes = 0;
  auto page_once = [&] {
    const std::string body = HttpGet(http, "/model?name=resnet");
    if (!absl::StrContains(body, "data-points=\"5000\"")) {
      Die("the model page lacks its 5000-point plots");
    }
    page_bytes = body.size();
  };
  // Warm both paths once.
  floor_once();
  page_once();

  std::vector<double> floor_ms, page_ms, page_cpu_ms, floor_cpu_ms, ratios;
  for (int i = 0; i < kPairs; ++i) {
    double cpu = CpuSeconds(server->pid());
    double t = Now();
    floor_once();
    floor_ms.push_back((Now() - t) * 1e3);
    floor_cpu_ms.push_back((CpuSeconds(server->pid()) - cpu) * 1e3);
    cpu = CpuSeconds(server->pid());
    t = Now();
    page_once();
    page_ms.push_back((Now() - t) * 1e3);
    page_cpu_ms.push_back((CpuSeconds(server->pid()) - cpu) * 1e3);
    ratios.push_back(page_ms.back() / floor_ms.back());
  }
  const std::string figures = absl::StrFormat(
      "page p50 %.1f ms wall, %.1f ms server CPU, %zu bytes of HTML; floor "
      "(ListCheckpoints "
      "of all %d steps) p50 %.1f ms wall, %.1f ms server CPU; page/floor %.2f",
      Median(page_ms), Median(page_cpu_ms), page_bytes, kSteps, Median(floor_ms),
      Median(floor_cpu_ms), Median(ratios));
  PrintAbsoluteResult("model-page-5000", "server_ms",
                      std::max(Median(page_ms), Median(page_cpu_ms)), 200, figures);
  server.reset();
  RemoveTree(tmp);
  return 0;
}

}  // namespace
}  // namespace mgreg::bench

int main() { return mgreg::bench::Main(); }
