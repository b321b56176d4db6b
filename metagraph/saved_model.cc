#include "metagraph/saved_model.h"

#include <cstring>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/status_macros.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/metagraph_io.h"
#include "metagraph/relative_path.h"
#include "metagraph/tensor_bundle.h"

namespace mgreg {
namespace {

absl::Status InFile(absl::string_view name, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat("file '", name, "': ", s.message()));
}

// The variables bundle's files among `names`: whether the index is there, the shard
// count the data file names agree on (-1: no data file) and the shards present.
// INVALID_ARGUMENT if a data file name is malformed or the counts disagree.
struct VariablesFiles {
  bool has_index = false;
  int num_shards = -1;
  std::set<int> shards;
  bool any = false;
};

absl::StatusOr<VariablesFiles> FindVariables(const std::vector<std::string>& names) {
  VariablesFiles out;
  const std::string index = absl::StrCat(kVariablesPrefix, "index");
  for (const std::string& name : names) {
    if (!absl::StartsWith(name, kVariablesPrefix)) continue;
    out.any = true;
    if (name == index) {
      out.has_index = true;
      continue;
    }
    const absl::string_view suffix =
        absl::string_view(name).substr(strlen(kVariablesPrefix));
    if (!absl::StartsWith(suffix, "data-")) continue;
    absl::StatusOr<DataShard> shard = ParseDataFileName(suffix);
    if (!shard.ok()) return InFile(name, shard.status());
    if (out.num_shards >= 0 && shard->num_shards != out.num_shards) {
      return absl::InvalidArgumentError(
          absl::StrCat("the variables data files disagree on the shard count: '", name,
                       "' says ", shard->num_shards, ", another says ", out.num_shards,
                       "; push one complete variables bundle"));
    }
    out.num_shards = shard->num_shards;
    out.shards.insert(shard->shard);
  }
  return out;
}

// The assets a MetaGraphDef names: its asset_file_def, and (SavedModels of TensorFlow
// 1.x before asset_file_def existed) the AssetFileDefs packed as Any in the
// "saved_model_assets" collection, which TensorFlow's loader still reads.
std::vector<tensorflow::AssetFileDef> AssetFiles(const tensorflow::MetaGraphDef& mg) {
  std::vector<tensorflow::AssetFileDef> out(mg.asset_file_def().begin(),
                                            mg.asset_file_def().end());
  auto it = mg.collection_def().find("saved_model_assets");
  if (it == mg.collection_def().end()) return out;
  for (const google::protobuf::Any& any : it->second.any_list().value()) {
    tensorflow::AssetFileDef asset;
    if (absl::EndsWith(any.type_url(), "/tensorflow.AssetFileDef") &&
        asset.ParseFromString(any.value())) {
      out.push_back(std::move(asset));
    }
  }
  return out;
}

}  // namespace

std::optional<std::string> SavedModelProtoName(const std::vector<std::string>& names) {
  std::optional<std::string> found;
  for (const std::string& name : names) {
    if (name == kSavedModelPb) return name;
    if (name == kSavedModelPbtxt) found = name;
  }
  return found;
}

absl::Status ValidateSavedModelNames(const std::vector<std::string>& names,
                                     absl::StatusCode missing_code) {
  for (const std::string& name : names) {
    RETURN_IF_ERROR(ValidateRelativePath(name, "a SavedModel file name"));
  }
  ASSIGN_OR_RETURN(VariablesFiles variables, FindVariables(names));
  std::vector<std::string> missing;
  if (!SavedModelProtoName(names).has_value()) {
    missing.push_back("saved_model.pb (or saved_model.pbtxt)");
  }
  if (variables.any) {
    if (!variables.has_index) missing.push_back(absl::StrCat(kVariablesPrefix, "index"));
    if (variables.num_shards < 0) {
      missing.push_back(absl::StrCat(kVariablesPrefix, "data-NNNNN-of-MMMMM"));
    }
    for (int i = 0; i < variables.num_shards; ++i) {
      if (variables.shards.count(i) == 0) {
        missing.push_back(
            absl::StrCat(kVariablesPrefix, DataFileName(i, variables.num_shards)));
      }
    }
  }
  if (!missing.empty()) {
    return absl::Status(
        missing_code,
        absl::StrCat("the SavedModel is missing ", absl::StrJoin(missing, ", "),
                     "; a SavedModel directory needs its saved_model.pb and, if it has "
                     "variables, variables/variables.index with every "
                     "variables/variables.data-NNNNN-of-MMMMM shard: upload them"));
  }
  return absl::OkStatus();
}

absl::Status ValidateSavedModelContents(const std::map<std::string, int64_t>& sizes,
                                        const ReadStepFile& read) {
  std::vector<std::string> names;
  for (const auto& [name, size] : sizes) names.push_back(name);
  const std::optional<std::string> proto_name = SavedModelProtoName(names);
  if (!proto_name.has_value()) {
    return absl::InvalidArgumentError(
        "the SavedModel has no saved_model.pb or saved_model.pbtxt; upload it");
  }
  tensorflow::SavedModel saved_model;
  {
    ASSIGN_OR_RETURN(std::string bytes, read(*proto_name));
    absl::StatusOr<tensorflow::SavedModel> parsed = ParseSavedModel(bytes);
    if (!parsed.ok()) {
      return InFile(*proto_name,
                    absl::InvalidArgumentError(absl::StrCat(
                        parsed.status().message(),
                        "; push the saved_model.pb that tf.saved_model.save wrote")));
    }
    saved_model = std::move(*parsed);
  }

  ASSIGN_OR_RETURN(VariablesFiles variables, FindVariables(names));
  if (variables.has_index) {
    const std::string index_name = absl::StrCat(kVariablesPrefix, "index");
    std::map<int, int64_t> shard_sizes;
    for (int shard : variables.shards) {
      shard_sizes[shard] = sizes.at(
          absl::StrCat(kVariablesPrefix, DataFileName(shard, variables.num_shards)));
    }
    ASSIGN_OR_RETURN(std::string index_bytes, read(index_name));
    absl::StatusOr<BundleIndex> index = ReadBundleIndex(index_bytes);
    if (!index.ok()) return InFile(index_name, index.status());
    if (absl::Status s = ValidateBundle(*index, static_cast<int>(variables.shards.size()),
                                        shard_sizes);
        !s.ok()) {
      return InFile(index_name, s);
    }
  }

  for (const tensorflow::MetaGraphDef& mg : saved_model.meta_graphs()) {
    for (const tensorflow::AssetFileDef& asset : AssetFiles(mg)) {
      const std::string path = absl::StrCat(kAssetsDirectory, asset.filename());
      if (absl::Status s =
              ValidateRelativePath(asset.filename(), "an asset_file_def filename");
          !s.ok()) {
        return InFile(*proto_name, s);
      }
      if (sizes.count(path) == 0) {
        std::set<std::string> tags(mg.meta_info_def().tags().begin(),
                                   mg.meta_info_def().tags().end());
        return InFile(
            *proto_name,
            absl::InvalidArgumentError(absl::StrCat(
                "the MetaGraphDef tagged [", absl::StrJoin(tags, ", "), "] names asset '",
                asset.filename(), "' but the upload has no '", path,
                "'; push the version directory with its assets/ folder")));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<tensorflow::MetaGraphDef> ChooseMetaGraph(
    tensorflow::SavedModel saved_model, const std::vector<std::string>& tags) {
  if (!tags.empty()) return SelectTaggedMetaGraph(std::move(saved_model), tags);
  if (saved_model.meta_graphs_size() == 1) {
    return std::move(*saved_model.mutable_meta_graphs(0));
  }
  return absl::InvalidArgumentError(
      absl::StrCat("the SavedModel holds ", saved_model.meta_graphs_size(),
                   " MetaGraphDefs; choose one by its tags (--tags), one of: ",
                   DescribeTagSets(saved_model)));
}

absl::StatusOr<SavedModelExport> ExportSavedModelGraph(
    absl::string_view saved_model_bytes, const std::vector<std::string>& tags,
    const ExportOptions& options) {
  ASSIGN_OR_RETURN(tensorflow::SavedModel saved_model,
                   ParseSavedModel(saved_model_bytes));
  ASSIGN_OR_RETURN(tensorflow::MetaGraphDef graph,
                   ChooseMetaGraph(std::move(saved_model), tags));
  SavedModelExport out;
  out.tags.assign(graph.meta_info_def().tags().begin(),
                  graph.meta_info_def().tags().end());
  std::string serialized;
  {
    google::protobuf::io::StringOutputStream stream(&serialized);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    graph.SerializeToCodedStream(&coded);
  }
  graph.Clear();
  ASSIGN_OR_RETURN(out.result, ExportMetaGraph(serialized, options));
  return out;
}

}  // namespace mgreg
