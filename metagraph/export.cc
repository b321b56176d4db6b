// The message path of the filtered export (the reference), R18 and R21, and the entry
// point that picks the wire-level fast path where it applies.
#include "metagraph/export.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "metagraph/export_internal.h"
#include "metagraph/metagraph_io.h"
#include "tensorflow/core/framework/op_def.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"

namespace mgreg {
namespace {

using export_internal::Scope;

constexpr absl::string_view kSaveAndRestoreOps[] = {
    "SaveV2",    "Save",    "SaveSlice",    "LegacySave",    "LegacySaveSlice",
    "RestoreV2", "Restore", "RestoreSlice", "LegacyRestore", "LegacyRestoreSlice"};

// meta_graph._op_name: raises on an empty name or more than one ':'.
absl::StatusOr<std::string> OpName(absl::string_view tensor_name,
                                   absl::string_view what) {
  if (tensor_name.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " is empty, on which TensorFlow's clear_extraneous_savers fails"));
  }
  if (tensor_name.front() == '^') tensor_name.remove_prefix(1);
  size_t colon = tensor_name.find(':');
  if (colon == absl::string_view::npos) return std::string(tensor_name);
  if (tensor_name.find(':', colon + 1) != absl::string_view::npos) {
    return absl::FailedPreconditionError(absl::StrCat(
        what, " '", tensor_name,
        "' has more than one ':', on which TensorFlow's clear_extraneous_savers fails"));
  }
  return std::string(tensor_name.substr(0, colon));
}

// meta_graph._get_scope (the caller has checked that the name is not empty).
std::string ScopeOf(absl::string_view name) {
  if (!name.empty() && name.front() == '^') name.remove_prefix(1);
  size_t slash = name.rfind('/');
  return slash == absl::string_view::npos ? "" : std::string(name.substr(0, slash));
}

// _find_extraneous_saver_nodes (R18): names of the nodes in saver scopes other than the
// scope(s) of saver_def.
absl::StatusOr<absl::flat_hash_set<std::string>> ExtraneousSaverNodes(
    const tensorflow::MetaGraphDef& stored) {
  const tensorflow::GraphDef& graph = stored.graph_def();
  absl::flat_hash_set<std::string> saver_nodes;
  for (const auto& node : graph.node()) {
    for (const auto& input : node.input()) {
      RETURN_IF_ERROR(
          OpName(input, absl::StrCat("an input of node '", node.name(), "'")).status());
    }
    for (absl::string_view op : kSaveAndRestoreOps) {
      if (node.op() == op) saver_nodes.insert(node.name());
    }
  }
  absl::flat_hash_set<std::string> retained;
  if (stored.has_saver_def()) {
    ASSIGN_OR_RETURN(std::string save_op, OpName(stored.saver_def().save_tensor_name(),
                                                 "saver_def.save_tensor_name"));
    ASSIGN_OR_RETURN(std::string restore_op, OpName(stored.saver_def().restore_op_name(),
                                                    "saver_def.restore_op_name"));
    for (const std::string* op : {&restore_op, &save_op}) {
      if (op->empty()) {
        return absl::FailedPreconditionError(
            "saver_def names an empty op, on which TensorFlow's clear_extraneous_savers "
            "fails");
      }
      retained.insert(ScopeOf(*op) + "/");
    }
  }
  absl::flat_hash_set<std::string> scopes;
  for (const std::string& name : saver_nodes) {
    std::string scope = ScopeOf(name);
    if (saver_nodes.contains(scope)) continue;
    scope += "/";
    if (!retained.contains(scope)) scopes.insert(std::move(scope));
  }
  absl::flat_hash_set<std::string> excluded;
  if (scopes.empty()) return excluded;
  for (const auto& node : graph.node()) {
    for (const std::string& scope : scopes) {
      if (absl::StartsWith(node.name(), scope)) {
        excluded.insert(node.name());
        break;
      }
    }
  }
  return excluded;
}

// C++ AreAttrValuesEqual as TensorFlow's strip_default_attrs uses it: types compare by
// value, functions by name and attrs, everything else by deterministic bytes.
bool AttrValuesEqual(const tensorflow::AttrValue& a, const tensorflow::AttrValue& b) {
  if (a.type() != b.type()) return false;
  if (a.type() != tensorflow::DT_INVALID && b.type() != tensorflow::DT_INVALID)
    return true;
  if (a.has_func() != b.has_func()) return false;
  if (a.has_func()) {
    if (a.func().name() != b.func().name()) return false;
    if (a.func().attr().size() != b.func().attr().size()) return false;
    for (const auto& [k, v] : a.func().attr()) {
      auto it = b.func().attr().find(k);
      if (it == b.func().attr().end() || !AttrValuesEqual(v, it->second)) return false;
    }
    return true;
  }
  return export_internal::SerializeDeterministic(a) ==
         export_internal::SerializeDeterministic(b);
}

// strip_graph_default_valued_attrs (R21) with the stored stripped_op_list as the op
// registry (D4).
void StripDefaultAttrs(const tensorflow::OpList& registry, tensorflow::GraphDef* graph) {
  absl::flat_hash_map<absl::string_view, const tensorflow::OpDef*> ops;
  for (const auto& op : registry.op()) ops.try_emplace(op.name(), &op);
  absl::flat_hash_set<std::string> functions;
  for (const auto& f : graph->library().function())
    functions.insert(f.signature().name());
  auto strip = [&](tensorflow::NodeDef* node) {
    if (functions.contains(node->op())) return;
    auto it = ops.find(node->op());
    if (it == ops.end()) return;
    std::vector<std::string> doomed;
    for (const auto& [name, value] : node->attr()) {
      for (const auto& def : it->second->attr()) {
        if (def.name() != name) continue;
        if (def.has_default_value() && AttrValuesEqual(value, def.default_value())) {
          doomed.push_back(name);
        }
        break;
      }
    }
    for (const std::string& name : doomed) node->mutable_attr()->erase(name);
  };
  for (auto& node : *graph->mutable_node()) strip(&node);
  for (auto& f : *graph->mutable_library()->mutable_function()) {
    for (auto& node : *f.mutable_node_def()) strip(&node);
  }
}

}  // namespace

absl::StatusOr<ExportResult> ExportMetaGraphMessage(
    const tensorflow::MetaGraphDef& stored, const ExportOptions& options) {
  ExportResult result;
  if (export_internal::IsNoop(options)) {
    RETURN_IF_ERROR(export_internal::FinishResult(stored, options.as_text, &result));
    return result;
  }
  ASSIGN_OR_RETURN(Scope scope, Scope::Create(options.export_scope));
  const bool rewritten = export_internal::RewritesNodes(options);

  absl::flat_hash_set<std::string> exclude;
  if (options.clear_extraneous_savers) {
    ASSIGN_OR_RETURN(exclude, ExtraneousSaverNodes(stored));
  }

  tensorflow::MetaGraphDef out;
  tensorflow::GraphDef* graph = out.mutable_graph_def();
  std::vector<std::string> unbound;
  if (rewritten) {
    // R2: a new GraphDef from versions + library, then the selected nodes in order.
    *graph->mutable_versions() = stored.graph_def().versions();
    *graph->mutable_library() = stored.graph_def().library();
    for (const auto& node : stored.graph_def().node()) {
      if (exclude.contains(node.name()) || !scope.Includes(node.name())) continue;
      RETURN_IF_ERROR(export_internal::TransformNode(node, scope, options.clear_devices,
                                                     graph->add_node(), &unbound));
    }
  } else {
    *graph = stored.graph_def();
  }
  absl::flat_hash_set<std::string> node_ops;
  for (const auto& node : graph->node()) node_ops.insert(node.op());
  RETURN_IF_ERROR(export_internal::BuildNonGraphFields(stored, options, scope, rewritten,
                                                       &exclude, unbound, node_ops,
                                                       graph->library(), &out));
  if (options.strip_default_attrs) {
    StripDefaultAttrs(stored.meta_info_def().stripped_op_list(), graph);
    out.mutable_meta_info_def()->set_stripped_default_attrs(true);
  }
  RETURN_IF_ERROR(export_internal::FinishResult(out, options.as_text, &result));
  return result;
}

absl::StatusOr<ExportResult> ExportMetaGraph(absl::string_view stored,
                                             const ExportOptions& options) {
  if (export_internal::IsNoop(options) && !options.as_text) {
    // D1: verbatim. Still check that it is a MetaGraphDef and count what it holds.
    ExportResult result;
    if (!export_internal::ScanCounts(stored, &result)) {
      ASSIGN_OR_RETURN(tensorflow::MetaGraphDef parsed, ParseMetaGraph(stored));
      RETURN_IF_ERROR(export_internal::FinishResult(parsed, false, &result));
    }
    result.bytes = std::string(stored);
    return result;
  }
  ExportResult result;
  if (std::optional<absl::Status> fast =
          export_internal::TryFastExport(stored, options, &result)) {
    if (!fast->ok()) return *fast;
    return result;
  }
  ASSIGN_OR_RETURN(tensorflow::MetaGraphDef parsed, ParseMetaGraph(stored));
  return ExportMetaGraphMessage(parsed, options);
}

}  // namespace mgreg
