// Helpers for the export tests: small graph builders, TensorFlow's notion of MetaGraphDef
// equality (EXPORT_SEMANTICS §9: test_util.assert_meta_graph_protos_equal), and a runner
// that exports through both paths and checks they agree byte for byte.
#ifndef MGREG_TESTS_TESTING_EXPORT_TEST_UTIL_H_
#define MGREG_TESTS_TESTING_EXPORT_TEST_UTIL_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "metagraph/export.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/control_flow.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/queue_runner.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"

namespace mgreg::testing {

inline tensorflow::NodeDef* AddNode(tensorflow::MetaGraphDef* mg, const std::string& name,
                                    const std::string& op,
                                    const std::vector<std::string>& inputs = {},
                                    const std::string& device = "") {
  tensorflow::NodeDef* n = mg->mutable_graph_def()->add_node();
  n->set_name(name);
  n->set_op(op);
  for (const auto& i : inputs) n->add_input(i);
  n->set_device(device);
  return n;
}

inline void SetClass(tensorflow::NodeDef* n, const std::vector<std::string>& entries) {
  auto* list = (*n->mutable_attr())["_class"].mutable_list();
  for (const auto& e : entries) list->add_s(e);
}

inline void SetStringAttr(tensorflow::NodeDef* n, const std::string& key,
                          const std::string& value) {
  (*n->mutable_attr())[key].set_s(value);
}

inline void AddNodeList(tensorflow::MetaGraphDef* mg, const std::string& key,
                        const std::vector<std::string>& values) {
  auto* list = (*mg->mutable_collection_def())[key].mutable_node_list();
  for (const auto& v : values) list->add_value(v);
}

inline void AddBytes(tensorflow::MetaGraphDef* mg, const std::string& key,
                     const std::string& bytes) {
  (*mg->mutable_collection_def())[key].mutable_bytes_list()->add_value(bytes);
}

inline tensorflow::VariableDef Var(const std::string& name) {
  tensorflow::VariableDef v;
  v.set_variable_name(name + ":0");
  v.set_initializer_name(name + "/Assign");
  v.set_snapshot_name(name + "/read:0");
  v.set_initial_value_name(name + "/initial_value:0");
  v.set_trainable(true);
  return v;
}

inline tensorflow::SaverDef Saver(const std::string& scope) {
  tensorflow::SaverDef s;
  s.set_filename_tensor_name(scope + "/Const:0");
  s.set_save_tensor_name(scope + "/control_dependency:0");
  s.set_restore_op_name(scope + "/restore_all");
  s.set_max_to_keep(5);
  s.set_keep_checkpoint_every_n_hours(10000.0f);
  s.set_version(tensorflow::SaverDef::V2);
  return s;
}

inline std::string Serialize(const google::protobuf::Message& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

// Exports `stored` through ExportMetaGraphMessage and through ExportMetaGraph on its
// bytes, expects both to succeed with identical results, and returns the parsed output.
inline tensorflow::MetaGraphDef ExportBoth(const tensorflow::MetaGraphDef& stored,
                                           const ExportOptions& options,
                                           ExportResult* result_out = nullptr) {
  absl::StatusOr<ExportResult> by_message = ExportMetaGraphMessage(stored, options);
  EXPECT_TRUE(by_message.ok()) << by_message.status();
  absl::StatusOr<ExportResult> by_bytes = ExportMetaGraph(Serialize(stored), options);
  EXPECT_TRUE(by_bytes.ok()) << by_bytes.status();
  tensorflow::MetaGraphDef out;
  if (!by_message.ok() || !by_bytes.ok()) return out;
  EXPECT_EQ(by_message->bytes, by_bytes->bytes) << "fast path and message path differ";
  EXPECT_EQ(by_message->node_count, by_bytes->node_count);
  EXPECT_EQ(by_message->collections, by_bytes->collections);
  EXPECT_TRUE(out.ParseFromString(by_message->bytes));
  EXPECT_EQ(by_message->node_count, out.graph_def().node_size());
  if (result_out != nullptr) *result_out = *by_message;
  return out;
}

inline std::vector<std::string> NodeNames(const tensorflow::MetaGraphDef& mg) {
  std::vector<std::string> names;
  for (const auto& n : mg.graph_def().node()) names.push_back(n.name());
  return names;
}

inline const tensorflow::NodeDef* FindNode(const tensorflow::MetaGraphDef& mg,
                                           const std::string& name) {
  for (const auto& n : mg.graph_def().node()) {
    if (n.name() == name) return &n;
  }
  return nullptr;
}

template <typename Proto>
std::vector<Proto> ParseBytesList(const tensorflow::CollectionDef& def) {
  std::vector<Proto> out;
  for (const auto& b : def.bytes_list().value()) {
    Proto p;
    EXPECT_TRUE(p.ParseFromString(b));
    out.push_back(p);
  }
  return out;
}

// TensorFlow's equality of MetaGraphDefs (assert_meta_graph_protos_equal): same
// collection keys; registered collections compared element-wise after parsing; other
// collections exactly; graph_defs as sets of nodes by name (EqualGraphDef ignores node
// and attr order); every other field proto-equal. Returns "" if equal, else what differs.
inline std::string TfDifference(const tensorflow::MetaGraphDef& a,
                                const tensorflow::MetaGraphDef& b) {
  using google::protobuf::util::MessageDifferencer;
  std::set<std::string> ka, kb;
  for (const auto& [k, v] : a.collection_def()) ka.insert(k);
  for (const auto& [k, v] : b.collection_def()) kb.insert(k);
  if (ka != kb) {
    return absl::StrCat("collection keys differ: [", absl::StrJoin(ka, ","), "] vs [",
                        absl::StrJoin(kb, ","), "]");
  }
  static const std::map<std::string, int> kRegistered = {{"variables", 0},
                                                         {"trainable_variables", 0},
                                                         {"local_variables", 0},
                                                         {"model_variables", 0},
                                                         {"moving_average_variables", 0},
                                                         {"global_step", 0},
                                                         {"metric_variables", 0},
                                                         {"savers", 1},
                                                         {"queue_runners", 2},
                                                         {"cond_context", 3},
                                                         {"while_context", 4}};
  for (const auto& key : ka) {
    const auto& ca = a.collection_def().at(key);
    const auto& cb = b.collection_def().at(key);
    auto it = kRegistered.find(key);
    if (it != kRegistered.end() && ca.has_bytes_list() && cb.has_bytes_list()) {
      if (ca.bytes_list().value_size() != cb.bytes_list().value_size()) {
        return absl::StrCat("collection ", key, " sizes differ");
      }
      for (int i = 0; i < ca.bytes_list().value_size(); ++i) {
        std::unique_ptr<google::protobuf::Message> pa, pb;
        switch (it->second) {
          case 0:
            pa = std::make_unique<tensorflow::VariableDef>();
            break;
          case 1:
            pa = std::make_unique<tensorflow::SaverDef>();
            break;
          case 2:
            pa = std::make_unique<tensorflow::QueueRunnerDef>();
            break;
          case 3:
            pa = std::make_unique<tensorflow::CondContextDef>();
            break;
          default:
            pa = std::make_unique<tensorflow::WhileContextDef>();
        }
        pb.reset(pa->New());
        if (!pa->ParseFromString(ca.bytes_list().value(i)) ||
            !pb->ParseFromString(cb.bytes_list().value(i)) ||
            !MessageDifferencer::Equals(*pa, *pb)) {
          return absl::StrCat("collection ", key, " entry ", i, " differs");
        }
      }
    } else if (!MessageDifferencer::Equals(ca, cb)) {
      return absl::StrCat("collection ", key, " differs");
    }
  }
  std::map<std::string, const tensorflow::NodeDef*> na, nb;
  for (const auto& n : a.graph_def().node()) na[n.name()] = &n;
  for (const auto& n : b.graph_def().node()) nb[n.name()] = &n;
  if (na.size() != nb.size()) return "node counts differ";
  for (const auto& [name, node] : na) {
    auto it = nb.find(name);
    if (it == nb.end()) return absl::StrCat("node ", name, " missing");
    if (!MessageDifferencer::Equals(*node, *it->second)) {
      return absl::StrCat("node ", name, " differs");
    }
  }
  tensorflow::MetaGraphDef ra = a, rb = b;
  ra.clear_collection_def();
  rb.clear_collection_def();
  ra.mutable_graph_def()->clear_node();
  rb.mutable_graph_def()->clear_node();
  ra.mutable_graph_def()->clear_versions();
  rb.mutable_graph_def()->clear_versions();
  if (!MessageDifferencer::Equals(ra, rb)) return "other MetaGraphDef fields differ";
  return "";
}

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_EXPORT_TEST_UTIL_H_
