// Building blocks of the filtered export shared by the message path (export.cc) and the
// wire-level fast path (export_fast.cc). Not part of the public interface.
#ifndef MGREG_METAGRAPH_EXPORT_INTERNAL_H_
#define MGREG_METAGRAPH_EXPORT_INTERNAL_H_

#include <memory>
#include <optional>
#include <regex>
#include <string>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "metagraph/export.h"
#include "tensorflow/core/framework/graph.pb.h"
#include "tensorflow/core/framework/node_def.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace mgreg::export_internal {

inline constexpr absl::string_view kUnboundInputPrefix = "$unbound_inputs_";

// An export_scope compiled for TensorFlow's two uses of it: the raw prefix test of
// _should_include_node (R3) and the regular expression of ops.strip_name_scope (R4).
class Scope {
 public:
  // INVALID_ARGUMENT if the scope is not a valid regular expression (TensorFlow raises
  // re.error when it splices such a scope into its pattern).
  static absl::StatusOr<Scope> Create(absl::string_view scope);

  bool empty() const { return raw_.empty(); }
  const std::string& raw() const { return raw_; }

  // `not export_scope or name.startswith(export_scope)`.
  bool Covers(absl::string_view name) const;
  // R3 without exclusions: unbound names always, else Covers().
  bool Includes(absl::string_view name) const;

  // ops.strip_name_scope(name, scope) (R4).
  std::string Strip(absl::string_view name) const;
  // Appends Strip(name) to *out.
  void AppendStripped(absl::string_view name, std::string* out) const;

 private:
  // Length of the match of the scope pattern at name[pos...], or npos.
  size_t MatchPatternAt(absl::string_view name, size_t pos) const;

  std::string raw_;
  std::string pattern_;  // raw_ minus one trailing '/'
  bool simple_ = true;   // pattern_ has only literal characters and '.'
  std::shared_ptr<const std::regex> regex_;  // when !simple_
};

// Node input rewriting of _node_def (R6): appends the rewritten input to *out and, if it
// is unbound, to *unbound.
void AppendRewrittenInput(const Scope& scope, absl::string_view input, std::string* out,
                          std::vector<std::string>* unbound);

// The `_class` colocation list of R7 after filtering/stripping. FAILED_PRECONDITION
// naming `node_name` for an entry without '@' under a scope.
absl::StatusOr<std::vector<std::string>> RewriteClassList(
    const Scope& scope, absl::string_view node_name,
    const std::vector<absl::string_view>& entries);

// The new frame_name of R8. FAILED_PRECONDITION naming `node_name` if it lies outside the
// scope (D6).
absl::StatusOr<std::string> RewriteFrameName(const Scope& scope,
                                             absl::string_view node_name,
                                             absl::string_view frame_name);

bool IsEnterOp(absl::string_view op);

// _node_def (R5-R10) on a message; appends unbound inputs to *unbound.
absl::Status TransformNode(const tensorflow::NodeDef& in, const Scope& scope,
                           bool clear_devices, tensorflow::NodeDef* out,
                           std::vector<std::string>* unbound);

// Ops used by a graph whose nodes use `node_ops` (R20 ops_used_by_graph_def: plus the
// ops of library functions reachable by op name, minus function names), looked up in
// `registry` in sorted order; unknown ops are skipped (D3).
tensorflow::OpList StrippedOpList(const tensorflow::OpList& registry,
                                  const absl::flat_hash_set<std::string>& node_ops,
                                  const tensorflow::FunctionDefLibrary& library);

// Everything of the exported MetaGraphDef except graph_def: meta_info_def (R19-R21, D2,
// D3), saver_def (R17), collection_def (R11-R16, R18). `stored` supplies the stored
// meta_info_def, saver_def and collection_def; `exported_graph` is the exported graph_def
// (for D3); `rewritten` says whether R1 triggered; `exclude` the R18 node names (or
// null).
absl::Status BuildNonGraphFields(const tensorflow::MetaGraphDef& stored,
                                 const ExportOptions& options, const Scope& scope,
                                 bool rewritten,
                                 const absl::flat_hash_set<std::string>* exclude,
                                 const std::vector<std::string>& unbound,
                                 const absl::flat_hash_set<std::string>& node_ops,
                                 const tensorflow::FunctionDefLibrary& library,
                                 tensorflow::MetaGraphDef* out);

// A new, empty message of the proto registered for a collection key (the 11 keys of R15,
// D5), or null if the key is not registered.
std::unique_ptr<google::protobuf::Message> NewRegisteredProto(absl::string_view key);

// The collection_def fields (MetaGraphDef field 4) of a binary MetaGraphDef, as raw bytes
// that parse as a MetaGraphDef holding only them. False if the bytes do not walk as a
// binary MetaGraphDef.
bool CollectionFieldsFromWire(absl::string_view stored, std::string* fields);

// True if R1 triggers (node rewriting).
bool RewritesNodes(const ExportOptions& options);
// True if no option but possibly as_text is set (D1).
bool IsNoop(const ExportOptions& options);

// Deterministic binary serialization (D7).
std::string SerializeDeterministic(const google::protobuf::MessageLite& message);

// Fills bytes (binary or text), node_count and collections of *result from `out`.
absl::Status FinishResult(const tensorflow::MetaGraphDef& out, bool as_text,
                          ExportResult* result);

// For D1: a wire-level walk of a binary MetaGraphDef that fills node_count and
// collections of *result. False if the bytes do not look like a binary MetaGraphDef with
// a meta_info_def or nodes (the caller then parses them, e.g. as text).
bool ScanCounts(absl::string_view stored, ExportResult* result);

// The wire-level fast path. Returns std::nullopt (and leaves *result alone) if it does
// not apply to these options or this input, so the caller must use the message path.
std::optional<absl::Status> TryFastExport(absl::string_view stored,
                                          const ExportOptions& options,
                                          ExportResult* result);

}  // namespace mgreg::export_internal

#endif  // MGREG_METAGRAPH_EXPORT_INTERNAL_H_
