// SavedModel steps (a TF Serving version directory stored as one step): which files make
// one, the checks a push must pass, and the choice of a MetaGraphDef by tag set. Pure
// functions: files are read through a callback. Thread-safe.
//
// A SavedModel step's files are named by their paths inside the version directory:
// "saved_model.pb" (or "saved_model.pbtxt"), "variables/variables.index",
// "variables/variables.data-NNNNN-of-MMMMM", "assets/<file>", "assets.extra/<file>",
// "fingerprint.pb", and whatever else the directory held.
#ifndef MGREG_METAGRAPH_SAVED_MODEL_H_
#define MGREG_METAGRAPH_SAVED_MODEL_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "metagraph/export.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace mgreg {

inline constexpr char kSavedModelPb[] = "saved_model.pb";
inline constexpr char kSavedModelPbtxt[] = "saved_model.pbtxt";
// The variables bundle: this prefix + "index" / "data-NNNNN-of-MMMMM".
inline constexpr char kVariablesPrefix[] = "variables/variables.";
// Where asset_file_def filenames live.
inline constexpr char kAssetsDirectory[] = "assets/";

// The SavedModel proto among a step's file names: saved_model.pb if present (TensorFlow's
// loader prefers it), else saved_model.pbtxt; nullopt if neither.
std::optional<std::string> SavedModelProtoName(const std::vector<std::string>& names);

// Checks a SavedModel step's file names: each a relative path inside the version
// directory (ValidateRelativePath: no "..", no absolute path, no empty segment), and
// the files the directory must hold: saved_model.pb or saved_model.pbtxt, and when any
// variables/variables.* file is there, variables/variables.index and every
// variables/variables.data-NNNNN-of-MMMMM shard of one shard count. A SavedModel without
// variables (constants only) is valid.
// Returns INVALID_ARGUMENT for a bad name or disagreeing shard counts, and
// `missing_code` naming every missing file and what to upload.
absl::Status ValidateSavedModelNames(const std::vector<std::string>& names,
                                     absl::StatusCode missing_code);

// Reads one file of the step being validated, by name.
using ReadStepFile = std::function<absl::StatusOr<std::string>(const std::string& name)>;

// Checks a complete SavedModel step's contents (its names already passed
// ValidateSavedModelNames; `sizes` maps every file name to its size): the SavedModel
// proto parses (binary or text) with at least one MetaGraphDef, the variables bundle's
// index matches its shards (ValidateBundle, as for checkpoints), and every asset named
// by a MetaGraphDef's asset_file_def (or, in TF 1.x SavedModels, its
// "saved_model_assets" collection) is a file under assets/.
// Returns INVALID_ARGUMENT beginning "file '<name>': " saying what to change.
absl::Status ValidateSavedModelContents(const std::map<std::string, int64_t>& sizes,
                                        const ReadStepFile& read);

// The MetaGraphDef with tag set `tags` (order and duplicates ignored; NOT_FOUND listing
// the tag sets present if none matches), or with `tags` empty the SavedModel's only
// MetaGraphDef (INVALID_ARGUMENT listing the tag sets when there are several).
absl::StatusOr<tensorflow::MetaGraphDef> ChooseMetaGraph(
    tensorflow::SavedModel saved_model, const std::vector<std::string>& tags);

// A MetaGraphDef of a stored SavedModel proto, exported: ChooseMetaGraph(tags), then
// ExportMetaGraph on its deterministic serialization, so that every export rule applies
// exactly as to a checkpoint's .meta (with no option the chosen MetaGraphDef as stored).
struct SavedModelExport {
  ExportResult result;
  // The tag set of the chosen MetaGraphDef, as stored.
  std::vector<std::string> tags;
};
// Errors of ParseSavedModel (INVALID_ARGUMENT), ChooseMetaGraph and ExportMetaGraph.
absl::StatusOr<SavedModelExport> ExportSavedModelGraph(
    absl::string_view saved_model_bytes, const std::vector<std::string>& tags,
    const ExportOptions& options);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_SAVED_MODEL_H_
