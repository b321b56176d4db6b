// export-cold (../shared/PERF.md): ExportMetaGraph with clear_devices + export_scope +
// collection_list on a >= 50 MB, >= 100k-node MetaGraphDef, against the floor of an arena
// parse + serialize of the same bytes, interleaved floor/scenario pairs, median ratio.
//
// The graph is generated in the shape of the real tfx Estimator graph
// (testdata/tf/tfx/.../model.ckpt-1000.meta): top-level name scopes of very different
// sizes (linear, training, dnn, save, head, ...), nested scopes, `_output_shapes` on
// every node, `_class` colocation lists on ~15% of the nodes, explicit devices on ~10%,
// dtype attrs, small Const tensors, variables/savers/summaries collections.
//
// Usage: export_bench [--pairs N] [--nodes N]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "google/protobuf/arena.h"
#include "metagraph/export.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"

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

struct ScopeShare {
  const char* name;
  int weight;  // relative node count, as in the tfx graph
};

// Top-level scopes and their relative sizes in the tfx graph (DATA.md).
constexpr ScopeShare kScopes[] = {
    {"linear", 826},
    {"training", 694},
    {"dnn", 231},
    {"save", 143},
    {"head", 116},
    {"report_uninitialized_variables", 90},
    {"report_uninitialized_variables_1", 90},
    {"zero_fraction", 59},
    {"list_files", 25},
    {"gradients", 200},
};

constexpr const char* kOps[] = {"Identity", "Add",   "MatMul",         "Mul", "Reshape",
                                "ConcatV2", "Const", "ReadVariableOp", "Sum", "Cast"};

std::string Generate(int nodes, std::mt19937_64* rng) {
  tensorflow::MetaGraphDef mg;
  auto* info = mg.mutable_meta_info_def();
  info->set_tensorflow_version("2.9.0-dev20220227");
  info->set_tensorflow_git_version("v1.12.1-72101-g000000");
  for (const char* op : kOps) {
    auto* def = info->mutable_stripped_op_list()->add_op();
    def->set_name(op);
    auto* attr = def->add_attr();
    attr->set_name("T");
    attr->set_type("type");
  }
  auto* graph = mg.mutable_graph_def();
  graph->mutable_versions()->set_producer(1054);
  graph->mutable_versions()->set_min_consumer(12);

  int total_weight = 0;
  for (const auto& s : kScopes) total_weight += s.weight;
  std::vector<std::string> names;
  names.reserve(nodes);
  std::uniform_int_distribution<int> pick_weight(0, total_weight - 1);
  std::uniform_int_distribution<int> pct(0, 99);
  for (int i = 0; i < nodes; ++i) {
    int w = pick_weight(*rng);
    const char* top = kScopes[0].name;
    for (const auto& s : kScopes) {
      if (w < s.weight) {
        top = s.name;
        break;
      }
      w -= s.weight;
    }
    const char* op = kOps[(*rng)() % (sizeof(kOps) / sizeof(kOps[0]))];
    std::string name = absl::StrCat(top, "/layer_", (*rng)() % 12, "/block_",
                                    (*rng)() % 40, "/", op, "_", i);
    tensorflow::NodeDef* n = graph->add_node();
    n->set_name(name);
    n->set_op(op);
    int inputs = i == 0 ? 0 : 1 + static_cast<int>((*rng)() % 3);
    for (int k = 0; k < inputs; ++k) {
      // Mostly nearby nodes (same scope), sometimes far away (other scopes).
      int j = pct(*rng) < 80 ? std::max(0, i - 1 - static_cast<int>((*rng)() % 20))
                             : static_cast<int>((*rng)() % i);
      std::string in = names[j];
      if (pct(*rng) < 10)
        in = "^" + in;
      else if (pct(*rng) < 20)
        in += ":1";
      n->add_input(in);
    }
    if (pct(*rng) < 10)
      n->set_device(pct(*rng) < 50 ? "/device:CPU:0"
                                   : "/job:ps/replica:0/task:1/device:GPU:0");
    (*n->mutable_attr())["T"].set_type(tensorflow::DT_FLOAT);
    auto* shapes = (*n->mutable_attr())["_output_shapes"].mutable_list();
    for (int s = 0; s < 1 + static_cast<int>((*rng)() % 2); ++s) {
      auto* shape = shapes->add_shape();
      for (int d = 0; d < 2; ++d)
        shape->add_dim()->set_size(d == 0 ? -1 : 64 + (*rng)() % 64);
    }
    if (pct(*rng) < 15) {
      (*n->mutable_attr())["_class"].mutable_list()->add_s(
          absl::StrCat("loc:@", names.empty() ? name : names[(*rng)() % names.size()]));
    }
    if (std::strcmp(op, "Const") == 0) {
      auto* t = (*n->mutable_attr())["value"].mutable_tensor();
      t->set_dtype(tensorflow::DT_FLOAT);
      t->mutable_tensor_shape()->add_dim()->set_size(32);
      std::string content(128, '\0');
      for (char& c : content) c = static_cast<char>((*rng)());
      t->set_tensor_content(content);
    }
    names.push_back(std::move(name));
  }

  auto& collections = *mg.mutable_collection_def();
  for (int v = 0; v < 2000; ++v) {
    tensorflow::VariableDef var;
    const char* top = kScopes[v % 3].name;
    std::string base = absl::StrCat(top, "/layer_", v % 12, "/kernel_", v);
    var.set_variable_name(base + ":0");
    var.set_initializer_name(base + "/Assign");
    var.set_snapshot_name(base + "/Read/ReadVariableOp:0");
    var.set_initial_value_name(base + "/Initializer/zeros:0");
    var.set_trainable(true);
    var.set_is_resource(true);
    std::string bytes = var.SerializeAsString();
    collections["variables"].mutable_bytes_list()->add_value(bytes);
    collections["trainable_variables"].mutable_bytes_list()->add_value(bytes);
  }
  tensorflow::SaverDef saver;
  saver.set_filename_tensor_name("save/Const:0");
  saver.set_save_tensor_name("save/Identity:0");
  saver.set_restore_op_name("save/restore_all");
  saver.set_max_to_keep(5);
  saver.set_sharded(true);
  saver.set_version(tensorflow::SaverDef::V2);
  *mg.mutable_saver_def() = saver;
  collections["savers"].mutable_bytes_list()->add_value(saver.SerializeAsString());
  for (int s = 0; s < 200; ++s) {
    collections["summaries"].mutable_node_list()->add_value(
        names[(s * 7919) % names.size()] + ":0");
  }
  collections["train_op"].mutable_node_list()->add_value(names.back());
  return mg.SerializeAsString();
}

}  // namespace

int main(int argc, char** argv) {
  int pairs = 7;
  int nodes = 240000;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (std::strcmp(argv[i], "--pairs") == 0) pairs = std::atoi(argv[i + 1]);
    if (std::strcmp(argv[i], "--nodes") == 0) nodes = std::atoi(argv[i + 1]);
  }
  std::mt19937_64 rng(42);
  const std::string bytes = Generate(nodes, &rng);
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
