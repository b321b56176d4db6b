#include "metagraph/metagraph_io.h"

#include <algorithm>
#include <functional>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/unknown_field_set.h"
#include "metagraph/text_format.h"

namespace mgreg {
namespace {

// Parses `bytes` into `*m` as binary, else as text format. On failure returns why the
// text parse failed ("" on success).
bool ParseBinaryOrText(
    absl::string_view bytes, google::protobuf::Message* m,
    const std::function<bool(const google::protobuf::Message&)>& plausible,
    std::string* text_error) {
  if (m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size())) && plausible(*m)) {
    return true;
  }
  m->Clear();
  std::optional<TextFormatError> error = ParseTextFormat(bytes, m);
  if (!error.has_value()) return true;
  m->Clear();
  *text_error = error->ToString();
  return false;
}

// True if a top-level field that the schema declares arrived with another wire type (and
// so ended up among the unknown fields): the bytes are some other message. A .meta and a
// saved_model.pb each binary-parse as the other this way. Unknown fields with new numbers
// (a newer TensorFlow) are fine.
bool HasWireTypeMismatch(const google::protobuf::Message& m) {
  const google::protobuf::UnknownFieldSet& unknown =
      m.GetReflection()->GetUnknownFields(m);
  for (int i = 0; i < unknown.field_count(); ++i) {
    if (m.GetDescriptor()->FindFieldByNumber(unknown.field(i).number()) != nullptr)
      return true;
  }
  return false;
}

bool HasContent(const tensorflow::MetaGraphDef& mg) {
  return mg.graph_def().node_size() > 0 || mg.has_meta_info_def();
}

std::string TagSet(const google::protobuf::RepeatedPtrField<std::string>& tags) {
  std::set<std::string> sorted(tags.begin(), tags.end());
  return absl::StrCat("[", absl::StrJoin(sorted, ", "), "]");
}

}  // namespace

absl::StatusOr<tensorflow::MetaGraphDef> ParseMetaGraph(absl::string_view bytes) {
  if (bytes.empty()) {
    return absl::InvalidArgumentError("the file is empty, so it is not a MetaGraphDef");
  }
  tensorflow::MetaGraphDef mg;
  std::string text_error;
  const bool parsed = ParseBinaryOrText(
      bytes, &mg,
      [](const google::protobuf::Message& m) {
        return HasContent(static_cast<const tensorflow::MetaGraphDef&>(m)) &&
               !HasWireTypeMismatch(m);
      },
      &text_error);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file is not a MetaGraphDef: it is neither a binary "
                     "MetaGraphDef with a graph "
                     "or meta_info_def nor text format (",
                     text_error, ")"));
  }
  if (!HasContent(mg)) {
    return absl::InvalidArgumentError(
        "the file is not a MetaGraphDef: it parses, but has no graph_def nodes and no "
        "meta_info_def");
  }
  return mg;
}

absl::StatusOr<tensorflow::SavedModel> ParseSavedModel(
    absl::string_view saved_model_bytes) {
  tensorflow::SavedModel sm;
  std::string text_error;
  const bool parsed = ParseBinaryOrText(
      saved_model_bytes, &sm,
      [](const google::protobuf::Message& m) {
        return static_cast<const tensorflow::SavedModel&>(m).meta_graphs_size() > 0 &&
               !HasWireTypeMismatch(m);
      },
      &text_error);
  if (!parsed) {
    return absl::InvalidArgumentError(
        absl::StrCat("the file is not a SavedModel: it is neither a binary SavedModel "
                     "with meta_graphs "
                     "nor text format (",
                     text_error, ")"));
  }
  if (sm.meta_graphs_size() == 0) {
    return absl::InvalidArgumentError("the SavedModel holds no MetaGraphDef");
  }
  return sm;
}

absl::StatusOr<tensorflow::MetaGraphDef> SelectMetaGraph(
    absl::string_view saved_model_bytes, const std::vector<std::string>& tags) {
  ASSIGN_OR_RETURN(tensorflow::SavedModel sm, ParseSavedModel(saved_model_bytes));
  return SelectTaggedMetaGraph(std::move(sm), tags);
}

absl::StatusOr<tensorflow::MetaGraphDef> SelectTaggedMetaGraph(
    tensorflow::SavedModel sm, const std::vector<std::string>& tags) {
  const std::set<std::string> wanted(tags.begin(), tags.end());
  for (tensorflow::MetaGraphDef& mg : *sm.mutable_meta_graphs()) {
    const auto& have = mg.meta_info_def().tags();
    if (std::set<std::string>(have.begin(), have.end()) == wanted) return std::move(mg);
  }
  return absl::NotFoundError(absl::StrCat(
      "the SavedModel has no MetaGraphDef with tags [", absl::StrJoin(wanted, ", "),
      "]; available tag sets: ", DescribeTagSets(sm)));
}

std::string DescribeTagSets(const tensorflow::SavedModel& sm) {
  std::vector<std::string> sets;
  for (const tensorflow::MetaGraphDef& mg : sm.meta_graphs()) {
    sets.push_back(TagSet(mg.meta_info_def().tags()));
  }
  return absl::StrJoin(sets, " ");
}

}  // namespace mgreg
