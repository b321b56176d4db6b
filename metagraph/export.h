// Filtered export of a stored MetaGraphDef, exactly as TensorFlow's export_meta_graph
// does it (shared/tf/EXPORT_SEMANTICS.md: R1-R25 and the registry's own rules D1-D8).
//
// The model (E5): TensorFlow exports from a live graph, not from a stored MetaGraphDef;
// the TF-equivalent of "fetch the stored graph with options X" is
// import_meta_graph(stored) into an empty graph followed by Saver.export_meta_graph(X).
// These functions apply the export rules directly to the stored protos. Choices where
// TensorFlow's result depends on the exporting process, or where TensorFlow itself
// raises, are the D rules plus:
//   - R8/D6: an Enter/RefEnter frame_name outside the scope fails the export
//     (FAILED_PRECONDITION naming the node); so does a `_class` entry without '@' under a
//     scope, and (R18) an empty or multi-colon node input or saver_def name, on which
//     TensorFlow's _op_name raises.
//   - R11b: a stored collection named like the unbound-inputs collection is an ordinary
//     collection unless the export rewrites nodes (R1) and `unbound_inputs_col_name`
//     names it; then it is replaced by the new unbound list (absent if the list is
//     empty).
//   - R14/R13: stored collections with no values (or no kind) come back from import as
//     nothing and are omitted; a registered key stored with a kind other than bytes_list
//     makes TensorFlow's to_proto fail and is omitted (R14c).
//   - R18: without a stored saver_def, every saver scope is extraneous and the `savers`
//     collection, if asked for, is omitted (TensorFlow would build a brand-new Saver).
//   - R19/D2: meta_info_def keeps only the stored tensorflow_version/_git_version, the
//     stripped_op_list of D3 (recomputed from the exported graph with the stored list as
//     registry, always present) and stripped_default_attrs (true iff
//     strip_default_attrs).
//   - as_text alone changes only the encoding: the stored message in text format.
//
// Thread safety: pure functions; safe to call concurrently.
#ifndef MGREG_METAGRAPH_EXPORT_H_
#define MGREG_METAGRAPH_EXPORT_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace mgreg {

class CollectionKinds;  // metagraph/collection_kinds.h

// TensorFlow's export_meta_graph options, with TensorFlow's defaults.
struct ExportOptions {
  // nullopt = every collection of the graph (R12); [] = none; order and duplicates
  // matter.
  std::optional<std::vector<std::string>> collection_list;
  // "" = none. A raw string prefix (R3); stripping needs a following '/' (R4).
  std::string export_scope;
  bool clear_devices = false;
  bool strip_default_attrs = false;
  bool clear_extraneous_savers = false;
  // nullopt = no unbound-inputs collection (R11).
  std::optional<std::string> unbound_inputs_col_name = std::string("unbound_inputs");
  // Protobuf text format instead of binary (D8).
  bool as_text = false;
  // Collection kinds registered besides TensorFlow's 11 (D5): filtered and stripped by
  // export_scope like those (metagraph/collection_kinds.h). Null: none.
  std::shared_ptr<const CollectionKinds> collection_kinds;
};

struct ExportResult {
  // Serialized MetaGraphDef, binary (deterministic, D7) or text.
  std::string bytes;
  // Nodes in the exported graph_def.
  int64_t node_count = 0;
  // Keys of the exported collection_def, sorted.
  std::vector<std::string> collections;
};

// The export of a stored MetaGraphDef (its serialized bytes, binary or text) as
// TensorFlow's export_meta_graph(options) would produce it after import_meta_graph.
// With no option set, returns `stored` verbatim (D1); with only `as_text`, the stored
// message in text format. Uses a wire-level pass for export_scope / clear_devices /
// collection_list (byte-identical to ExportMetaGraphMessage), the message path otherwise.
// Returns FAILED_PRECONDITION naming the node where TensorFlow raises (D6),
// INVALID_ARGUMENT if `stored` is not a MetaGraphDef or `export_scope` is not a valid
// regular expression (TensorFlow splices it into one, R4).
absl::StatusOr<ExportResult> ExportMetaGraph(absl::string_view stored,
                                             const ExportOptions& options);

// Same on a parsed message (the reference path). With no option set, returns the
// deterministic serialization of `stored`.
absl::StatusOr<ExportResult> ExportMetaGraphMessage(
    const tensorflow::MetaGraphDef& stored, const ExportOptions& options);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_EXPORT_H_
