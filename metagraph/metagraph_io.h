// Parsing MetaGraphDefs (`.meta` files) and selecting one from a SavedModel
// (`saved_model.pb` / `.pbtxt`). Pure functions, thread-safe.
#ifndef MGREG_METAGRAPH_METAGRAPH_IO_H_
#define MGREG_METAGRAPH_METAGRAPH_IO_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace mgreg {

// Parses a MetaGraphDef: binary first, then protobuf text format (as TensorFlow's
// read_meta_graph_file does, EXPORT_SEMANTICS R24). A binary parse in which a declared
// top-level field arrives with the wrong wire type (e.g. a saved_model.pb) does not
// count. Returns INVALID_ARGUMENT saying why if neither works, or if the result is empty
// (no graph_def nodes and no meta_info_def, e.g. an empty or random file); the message
// says the file is not a MetaGraphDef.
absl::StatusOr<tensorflow::MetaGraphDef> ParseMetaGraph(absl::string_view bytes);

// Parses a SavedModel: binary (a parse in which a declared top-level field has the wrong
// wire type, e.g. a .meta file, does not count), else text format. Returns
// INVALID_ARGUMENT saying why if neither works or it holds no MetaGraphDef.
absl::StatusOr<tensorflow::SavedModel> ParseSavedModel(absl::string_view bytes);

// From a SavedModel (binary, else text format; a binary parse in which a declared
// top-level field has the wrong wire type, e.g. a .meta file, does not count), the
// MetaGraphDef whose meta_info_def.tags equals `tags` as a set (order and duplicates
// ignored), as TensorFlow's loader selects it. The first match wins.
// Returns INVALID_ARGUMENT if the bytes are not a SavedModel or hold no MetaGraphDef, and
// NOT_FOUND listing the available tag sets if none matches.
absl::StatusOr<tensorflow::MetaGraphDef> SelectMetaGraph(
    absl::string_view saved_model_bytes, const std::vector<std::string>& tags);

// The same selection on a parsed SavedModel (taken apart: the match is moved out).
absl::StatusOr<tensorflow::MetaGraphDef> SelectTaggedMetaGraph(
    tensorflow::SavedModel saved_model, const std::vector<std::string>& tags);

// The tag sets of a SavedModel's MetaGraphDefs for a message: "[serve] [serve, gpu]".
std::string DescribeTagSets(const tensorflow::SavedModel& saved_model);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_METAGRAPH_IO_H_
