// export-cold (../shared/PERF.md): ExportMetaGraph with clear_devices + export_scope +
// collection_list on a >= 50 MB, >= 100k-node MetaGraphDef, against the floor of an arena
// parse + serialize of the same bytes, interleaved floor/scenario pairs, median ratio.
//
// The graph is generated in the shape of the real tfx Estimator graph
// (testdata/tf/tfx/.../model.ckpt-1000.meta) by GenerateMetaGraph (bench_util.h): top-
// level name scopes of very different sizes (linear, training, dnn, save, head, ...),
// nested scopes, `_output_shapes` on every node, `_class` colocation lists on ~15% of
// the nodes, explicit devices on ~10%, dtype attrs, small Const tensors,
// variables/savers/summaries collections.
//
// Usage: export_bench [--pairs N] [--nodes N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "bench/bench_util.h"
#include "google/protobuf/arena.h"
#include "metagraph/export.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace {

double Now() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

}  // namespace

int main(int argc, char** argv) {
  int pairs = 7;
  int nodes = 240000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--pairs") == 0) pairs = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--nodes") == 0) nodes = std::atoi(argv[i + 1]);
  }
  const std::string bytes = mgreg::bench::GenerateMetaGraph(nodes, 42);
  std::fprintf(stderr, "graph: %d nodes, %.1f MB\n", nodes, bytes.size() / 1e6);
  if (bytes.size() < 50'000'000 || nodes < 100'000) {
    std::fprintf(stderr,
                 "graph too small for export-cold (needs >= 50 MB, >= 100k nodes)\n");
    return 2;
  }

  mgreg::ExportOptions options;
  options.clear_devices = true;
  options.export_scope = "linear";
  options.collection_list = std::vector<std::string>{"variables", "trainable_variables",
                                                     "savers", "summaries", "train_op"};

  std::vector<double> ratios, floor_ms, scenario_ms;
  size_t out_size = 0;
  int64_t out_nodes = 0;
  for (int p = 0; p < pairs; ++p) {
    double t0 = Now();
    {
      google::protobuf::Arena arena;
      auto* m = google::protobuf::Arena::CreateMessage<tensorflow::MetaGraphDef>(&arena);
      if (!m->ParseFromString(bytes)) {
        std::fprintf(stderr, "floor: parse failed\n");
        return 2;
      }
      std::string out;
      m->SerializeToString(&out);
      if (out.size() != bytes.size()) {
        std::fprintf(stderr, "floor: unexpected size\n");
        return 2;
      }
    }
    double t1 = Now();
    auto result = mgreg::ExportMetaGraph(bytes, options);
    double t2 = Now();
    if (!result.ok()) {
      std::fprintf(stderr, "scenario: %s\n", result.status().ToString().c_str());
      return 2;
    }
    out_size = result->bytes.size();
    out_nodes = result->node_count;
    floor_ms.push_back((t1 - t0) * 1e3);
    scenario_ms.push_back((t2 - t1) * 1e3);
    ratios.push_back((t2 - t1) / (t1 - t0));
  }
  const double ratio = Median(ratios);
  const double target = 0.25;
  std::printf(
      "RESULT export-cold ratio=%.3f target=%.2f %s (floor arena parse+serialize median "
      "%.1f ms, export median %.1f ms, input %.1f MB / %d nodes, output %.1f MB / %lld "
      "nodes, %d pairs)\n",
      ratio, target, ratio <= target ? "PASS" : "MISS", Median(floor_ms),
      Median(scenario_ms), bytes.size() / 1e6, nodes, out_size / 1e6,
      static_cast<long long>(out_nodes), pairs);
  return 0;
}
