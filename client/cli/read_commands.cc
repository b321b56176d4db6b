// The read commands: latest, list, graph, collection, inspect, watch, state.
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_state.h"

namespace mgreg::cli {
namespace {

absl::Status Latest(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Checkpoint c, client->GetLatestCheckpoint(args[0]));
  if (ctx.json()) return ctx.PrintJson(c);
  PrintCheckpoint(c, ctx.out());
  return absl::OkStatus();
}

absl::Status ListModels(Client* client, Context& ctx) {
  v1::ListModelsResponse all;
  std::string token;
  do {
    ASSIGN_OR_RETURN(v1::ListModelsResponse page, client->ListModels(1000, token));
    all.mutable_models()->MergeFrom(page.models());
    token = page.next_page_token();
  } while (!token.empty());
  if (ctx.json()) return ctx.PrintJson(all);  // an empty registry: "models": []
  if (all.models().empty()) {
    // Said to a person only: a script reading the (empty) list gets no line.
    if (ctx.OutIsTerminal()) {
      ctx.out() << "no models yet (mgreg push MODEL PREFIX adds one)\n";
    }
    return absl::OkStatus();
  }
  for (const v1::ModelSummary& m : all.models()) {
    ctx.out() << absl::StrFormat("%-40s latest %-12d %d steps\n", m.name(),
                                 m.latest_step(), m.checkpoint_count());
  }
  return absl::OkStatus();
}

absl::Status List(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  if (args.empty()) return ListModels(client, ctx);
  v1::ListCheckpointsResponse all;
  std::string token;
  do {
    ASSIGN_OR_RETURN(v1::ListCheckpointsResponse page,
                     client->ListCheckpoints(args[0], 1000, token));
    all.mutable_checkpoints()->MergeFrom(page.checkpoints());
    token = page.next_page_token();
  } while (!token.empty());
  if (ctx.json()) return ctx.PrintJson(all);
  for (const v1::Checkpoint& c : all.checkpoints()) {
    ctx.out() << absl::StrFormat("%-12d %s  %10s  %d files%s\n", c.step(),
                                 FormatTime(c.commit_time()), HumanBytes(c.total_bytes()),
                                 c.files_size(),
                                 c.kind() == v1::SAVED_MODEL ? "  SavedModel" : "");
  }
  return absl::OkStatus();
}

absl::Status Graph(const std::vector<std::string>& args, Context& ctx) {
  std::optional<std::string> path = ctx.options().Value("o");
  if (!path.has_value()) {
    return absl::InvalidArgumentError("mgreg graph needs -o FILE for the MetaGraphDef");
  }
  ASSIGN_OR_RETURN(StepRef step, StepRefOption(ctx.options()));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(
      v1::MetaGraphInfo info,
      client->FetchGraph(args[0], step, GraphOptionsFrom(ctx.options()), *path));
  if (ctx.json()) return ctx.PrintJson(info);
  ctx.out() << "wrote " << *path << " (" << HumanBytes(info.size()) << ", step "
            << info.step();
  if (info.kind() == v1::SAVED_MODEL) {
    ctx.out() << (info.tags().empty() ? ", the stored SavedModel"
                                      : absl::StrCat(", SavedModel MetaGraphDef tags ",
                                                     absl::StrJoin(info.tags(), ",")));
  }
  if (!info.collections().empty() || info.node_count() > 0) {
    ctx.out() << ", " << info.node_count()
              << " nodes, collections: " << absl::StrJoin(info.collections(), ",");
  }
  ctx.out() << ")\n";
  return absl::OkStatus();
}

absl::Status Collection(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(StepRef step, StepRefOption(ctx.options()));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  // Decoded by the server, which knows the collection kinds its config registers;
  // --tags chooses a SavedModel's MetaGraphDef.
  const v1::GraphOptions graph_options = GraphOptionsFrom(ctx.options());
  ASSIGN_OR_RETURN(
      v1::GetCollectionResponse collection,
      client->GetCollection(args[0], step, args[1],
                            {graph_options.tags().begin(), graph_options.tags().end()}));
  if (ctx.json()) {
    ctx.out() << collection.json() << "\n";
  } else {
    ctx.out() << collection.text();
  }
  return absl::OkStatus();
}

absl::Status Inspect(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(StepRef step, StepRefOption(ctx.options()));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  const bool verify = ctx.options().Has("verify");
  ASSIGN_OR_RETURN(v1::InspectCheckpointResponse r,
                   client->InspectCheckpoint(args[0], step, verify));
  if (ctx.json()) {
    RETURN_IF_ERROR(ctx.PrintJson(r));
  } else {
    ctx.out() << "step " << r.step() << ", " << r.tensors_size() << " tensors in "
              << r.num_shards() << " shard(s)\n";
    for (const v1::TensorInfoEntry& t : r.tensors()) {
      ctx.out() << absl::StrFormat(
          "  %-50s %-10s [%s] shard %d offset %d size %d%s\n", t.name(), t.dtype(),
          absl::StrJoin(t.shape(), ","), t.shard(), t.offset(), t.size(),
          t.verification().empty() ? "" : "  " + t.verification());
    }
    if (verify) {
      ctx.out() << (r.verified() ? "all tensors verified\n" : "VERIFICATION FAILED\n");
    }
  }
  if (verify && !r.verified()) {
    return absl::DataLossError("some tensors do not match their CRC32C (listed above)");
  }
  return absl::OkStatus();
}

absl::Status Watch(const std::vector<std::string>& args, Context& ctx) {
  const ParsedOptions& o = ctx.options();
  v1::WatchCheckpointsRequest request;
  if (!args.empty()) request.set_model(args[0]);
  if (auto p = o.Value("prefix")) request.set_prefix(*p);
  request.set_all_models(o.Has("all"));
  request.set_since_revision(-1);
  if (auto since = o.Value("since")) {
    int64_t rev = 0;
    if (!absl::SimpleAtoi(*since, &rev) || rev < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--since '", *since, "' is not a revision (an integer >= 0)"));
    }
    request.set_since_revision(rev);
  }
  ASSIGN_OR_RETURN(int count, IntOption(o, "count", 0));
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  std::unique_ptr<WatchStream> stream = client->Watch(request);
  v1::WatchEvent event;
  int seen = 0;
  while (stream->Next(&event)) {
    if (event.type() == v1::WatchEvent::PROGRESS) continue;
    if (ctx.json()) {
      if (absl::Status printed = ctx.PrintJsonLine(event); !printed.ok()) {
        stream->Cancel();
        stream->Finish()
            .IgnoreError();  // ended here: the print error is the one to report
        return printed;
      }
    } else {
      ctx.out() << "revision " << event.revision() << " "
                << v1::WatchEvent::Type_Name(event.type()) << " " << event.model()
                << " step " << event.step();
      if (!event.alias().empty()) ctx.out() << " alias " << event.alias();
      if (event.replaced()) ctx.out() << " (replaced)";
      ctx.out() << " at " << FormatTime(event.time()) << "\n" << std::flush;
    }
    if (count > 0 && ++seen >= count) {
      stream->Cancel();
      stream->Finish().IgnoreError();  // CANCELLED, by us: the count was reached
      return absl::OkStatus();
    }
  }
  return stream->Finish();
}

absl::Status State(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(tensorflow::CheckpointState state,
                   client->GetCheckpointState(args[0]));
  if (ctx.json()) return ctx.PrintJson(state);
  ctx.out() << FormatCheckpointState(state);
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> ReadCommands() {
  const std::vector<Option> common = Join({{JsonOption()}, ConnectionOptions()});
  return {
      {"latest", "MODEL", "", "the latest step and its files", 1, 1, common, Latest},
      {"list", "[MODEL]", "", "models, or the steps of one model", 0, 1, common, List},
      {"graph", "MODEL", "[--step N | --alias A] [--tags T1,T2] [GRAPH OPTIONS] -o FILE",
       "fetch the (filtered) MetaGraphDef", 1, 1,
       Join({{{"o", "FILE", "write the MetaGraphDef to FILE (required)", {"output"}},
              TagsOption()},
             StepOrAliasOptions(),
             GraphOptions(),
             common}),
       Graph},
      {"collection", "MODEL KEY", "[--step N | --alias A] [--tags T1,T2]",
       "print one collection of the stored graph (e.g. hparams)", 2, 2,
       Join({StepOrAliasOptions(), {TagsOption()}, common}), Collection},
      {"inspect", "MODEL", "[--step N | --alias A] [--verify]",
       "the tensors of a checkpoint; --verify checks each CRC32C", 1, 1,
       Join(
           {StepOrAliasOptions(),
            {{"verify", "", "check every tensor's CRC32C; exit 1 if one does not match"}},
            common}),
       Inspect},
      {"watch", "[MODEL]", "| --prefix P | --all [--since REV] [--count N]",
       "print committed, deleted and alias events as they happen", 0, 1,
       Join({{{"prefix", "P", "watch every model whose name starts with P"},
              {"all", "", "watch every model"},
              {"since", "REV", "replay the events after store revision REV first"},
              {"count", "N", "stop after N events (0: never)"}},
             common}),
       Watch},
      {"state", "MODEL", "", "TensorFlow's CheckpointState of the model (text format)", 1,
       1, common, State},
  };
}

}  // namespace mgreg::cli
