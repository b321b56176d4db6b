// mgreg export: filter a local .meta or saved_model.pb, with no server.
#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "client/local_file.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/export.h"
#include "metagraph/export_options.h"
#include "metagraph/metagraph_io.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace mgreg::cli {
namespace {

absl::Status Export(const std::vector<std::string>& args, Context& ctx) {
  std::optional<std::string> path = ctx.options().Value("o");
  if (!path.has_value()) {
    return absl::InvalidArgumentError("mgreg export needs -o OUT for the result");
  }
  ASSIGN_OR_RETURN(std::string input, ReadWholeFile(args[0]));
  const ExportOptions options = ExportOptionsFromApi(GraphOptionsFrom(ctx.options()));
  ExportResult result;
  if (auto tags = ctx.options().Value("tags")) {
    std::vector<std::string> tag_list = absl::StrSplit(*tags, ',', absl::SkipEmpty());
    ASSIGN_OR_RETURN(tensorflow::MetaGraphDef graph, SelectMetaGraph(input, tag_list));
    ASSIGN_OR_RETURN(result, ExportMetaGraphMessage(graph, options));
  } else {
    absl::StatusOr<tensorflow::MetaGraphDef> parsed = ParseMetaGraph(input);
    if (!parsed.ok()) {
      tensorflow::SavedModel saved_model;
      if (saved_model.ParseFromString(input) && saved_model.meta_graphs_size() > 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("'", args[0],
                         "' is a SavedModel; pass --tags (e.g. --tags serve) to "
                         "choose its MetaGraphDef"));
      }
      return parsed.status();
    }
    // The same export the server runs on stored bytes: with no option, the input
    // verbatim (rule D1), whatever order its map entries were written in.
    ASSIGN_OR_RETURN(result, ExportMetaGraph(input, options));
    if (result.bytes == input) {  // verbatim: describe the input itself
      result.node_count = parsed->graph_def().node_size();
      result.collections.clear();
      for (const auto& [key, unused] : parsed->collection_def()) {
        result.collections.push_back(key);
      }
      std::sort(result.collections.begin(), result.collections.end());
    }
  }
  ASSIGN_OR_RETURN(AtomicFileWriter writer,
                   AtomicFileWriter::Create(*path, DigestKind::kSha256));
  RETURN_IF_ERROR(writer.Append(result.bytes));
  RETURN_IF_ERROR(
      writer.Commit(static_cast<int64_t>(result.bytes.size()), Sha256Hex(result.bytes)));
  if (ctx.json()) {
    v1::MetaGraphInfo info;
    info.set_size(static_cast<int64_t>(result.bytes.size()));
    info.set_sha256(Sha256Hex(result.bytes));
    info.set_node_count(result.node_count);
    for (const std::string& c : result.collections) info.add_collections(c);
    return ctx.PrintJson(info);
  }
  ctx.out() << "wrote " << *path << " (" << HumanBytes(result.bytes.size()) << ", "
            << result.node_count
            << " nodes, collections: " << absl::StrJoin(result.collections, ",") << ")\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> ExportCommands() {
  return {
      {"export", "IN", "-o OUT [--tags T1,T2] [GRAPH OPTIONS]",
       "filter a local .meta or saved_model.pb, no server", 1, 1,
       Join({{{"o", "OUT", "write the result to OUT (required)", {"output"}},
              {"tags", "T1,T2", "the MetaGraphDef of a SavedModel with these tags"}},
             GraphOptions(),
             {JsonOption()}}),
       Export},
  };
}

}  // namespace mgreg::cli
