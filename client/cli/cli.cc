#include "client/cli/cli.h"

#include <pthread.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <iostream>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <google/protobuf/util/json_util.h>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/local_file.h"
#include "client/sync.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/collection_view.h"
#include "metagraph/export.h"
#include "metagraph/export_options.h"
#include "metagraph/metagraph_io.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"

namespace mgreg {
namespace {

constexpr char kUsage[] =
    R"(usage: mgreg [--server HOST:PORT] COMMAND [ARGS] [--json]

commands:
  push MODEL PREFIX [--step N] [--overwrite] [--meta KEY=VALUE]...
                      upload the checkpoint at PREFIX (dir/model.ckpt-1000)
  latest MODEL        the latest step and its files
  list [MODEL]        models, or the steps of one model
  graph MODEL [--step N | --alias A] [GRAPH OPTIONS] -o FILE
                      fetch the (filtered) MetaGraphDef
  restore MODEL DIR [--step N | --alias A] [GRAPH OPTIONS] [--keep K]
                      write the checkpoint into DIR so TensorFlow loads it as is
  sync MODEL DIR [--alias A | --latest] [GRAPH OPTIONS] [--keep K] [--once]
                      keep DIR holding the newest (or aliased) step, switched
                      atomically as steps land; runs until interrupted
  export IN -o OUT [--tags T1,T2] [GRAPH OPTIONS]
                      filter a local .meta or saved_model.pb, no server
  collection MODEL KEY [--step N | --alias A]
                      print one collection of the stored graph (e.g. hparams)
  inspect MODEL [--step N | --alias A] [--verify]
                      the tensors of a checkpoint; --verify checks each CRC32C
  watch MODEL | --prefix P | --all [--since REV] [--count N]
                      print committed, deleted and alias events as they happen
  delete MODEL STEP   delete a step
  retention MODEL [--max-to-keep N] [--keep-every-n-hours H] [--allow-missing]
                      show or set the retention policy (CheckpointManager's);
                      --allow-missing sets it before the model's first push
  pin MODEL STEP / unpin MODEL STEP
                      protect a step from retention, or stop protecting it
  alias set MODEL NAME STEP / alias rm MODEL NAME / alias list MODEL
                      named pointers to steps
  state MODEL         TensorFlow's CheckpointState of the model (text format)
  upload begin MODEL STEP [--basename B] [FILE...]   (prints the upload id; without
                      files the upload learns them, and the basename, from its writers)
  upload put ID FILE...   upload status ID   upload commit ID   upload abort ID
                      the multi-writer upload; FILE is a local checkpoint file
                      (dir/model.ckpt-1000.index, .data-*, .meta)
  admin backup DIR    consistent copy of the server's store into DIR (a new directory
                      on the server's machine); restore: mgreg-server --data-dir DIR
  admin health [--service S]
                      the server's grpc.health.v1 status; exit 0 only if SERVING
  admin check         verify the store's invariants (refcounts, missing or leaked
                      chunks, model records, aliases, events); exit 1 on any problem

graph options (TensorFlow's export_meta_graph):
  --clear-devices  --export-scope S  --collection K (repeatable)  --no-collections
  --strip-default-attrs  --clear-extraneous-savers  --unbound-inputs-col NAME
  --as-text

--server defaults to $MGREG_SERVER, else 127.0.0.1:8470. Every read command takes --json.
--token T (default $MGREG_TOKEN) sends a bearer token. --ca-cert FILE connects with TLS
(trusting FILE's CAs; --tls alone uses the system roots); --cert FILE --key FILE present
a client certificate (mutual TLS).
)";

// A command line split into positional arguments and options.
struct Args {
  std::vector<std::string> positional;
  std::map<std::string, std::vector<std::string>> values;
  std::set<std::string> flags;

  bool Has(const std::string& flag) const { return flags.count(flag) > 0; }
  std::optional<std::string> Value(const std::string& name) const {
    auto it = values.find(name);
    if (it == values.end() || it->second.empty()) return std::nullopt;
    return it->second.back();
  }
};

const std::set<std::string>& ValueOptions() {
  static const auto* kSet = new std::set<std::string>{
      "server", "step", "meta", "export-scope", "collection", "unbound-inputs-col",
      "tags", "basename", "o", "output", "token", "ca-cert", "cert", "key", "service",
      "alias", "keep", "prefix", "since", "count", "max-to-keep", "keep-every-n-hours"};
  return *kSet;
}
const std::set<std::string>& FlagOptions() {
  static const auto* kSet = new std::set<std::string>{
      "json", "overwrite", "clear-devices", "strip-default-attrs",
      "clear-extraneous-savers", "as-text", "no-collections", "help", "h", "tls",
      "verify", "all", "latest", "once", "allow-missing"};
  return *kSet;
}

absl::StatusOr<Args> ParseArgs(const std::vector<std::string>& argv) {
  Args args;
  for (size_t i = 0; i < argv.size(); ++i) {
    const std::string& a = argv[i];
    if (a == "--") {
      args.positional.insert(args.positional.end(), argv.begin() + i + 1, argv.end());
      break;
    }
    if (a.size() < 2 || a[0] != '-' || a == "-") {
      args.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(a[1] == '-' ? 2 : 1);
    std::optional<std::string> value;
    if (size_t eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (FlagOptions().count(name)) {
      if (value.has_value()) {
        return absl::InvalidArgumentError(absl::StrCat("--", name, " takes no value"));
      }
      args.flags.insert(name);
    } else if (ValueOptions().count(name)) {
      if (!value.has_value()) {
        if (i + 1 >= argv.size()) {
          return absl::InvalidArgumentError(absl::StrCat("--", name, " needs a value"));
        }
        value = argv[++i];
      }
      args.values[name == "output" ? "o" : name].push_back(*value);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown option '", a, "'; run 'mgreg help' for the options"));
    }
  }
  return args;
}

absl::StatusOr<int64_t> ParseStepText(absl::string_view text) {
  int64_t step = 0;
  if (!absl::SimpleAtoi(text, &step)) {
    return absl::InvalidArgumentError(
        absl::StrCat("step '", text, "' is not an integer"));
  }
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", step, " is negative; steps are integers >= 0"));
  }
  return step;
}

absl::StatusOr<std::optional<int64_t>> OptionalStep(const Args& args) {
  std::optional<std::string> text = args.Value("step");
  if (!text.has_value()) return std::optional<int64_t>();
  ASSIGN_OR_RETURN(int64_t step, ParseStepText(*text));
  return std::optional<int64_t>(step);
}

// --step N or --alias NAME (not both); neither names the latest step.
absl::StatusOr<StepRef> StepRefFrom(const Args& args) {
  ASSIGN_OR_RETURN(std::optional<int64_t> step, OptionalStep(args));
  std::optional<std::string> alias = args.Value("alias");
  if (step.has_value() && alias.has_value()) {
    return absl::InvalidArgumentError("give --step or --alias, not both");
  }
  if (alias.has_value()) return StepRef::Alias(*alias);
  return StepRef(step);
}

v1::GraphOptions GraphOptionsFrom(const Args& args) {
  v1::GraphOptions o;
  if (auto it = args.values.find("collection"); it != args.values.end()) {
    for (const std::string& k : it->second) o.add_collection_list(k);
    o.set_has_collection_list(true);
  }
  if (args.Has("no-collections")) o.set_has_collection_list(true);
  if (auto s = args.Value("export-scope")) o.set_export_scope(*s);
  o.set_clear_devices(args.Has("clear-devices"));
  o.set_strip_default_attrs(args.Has("strip-default-attrs"));
  o.set_clear_extraneous_savers(args.Has("clear-extraneous-savers"));
  if (auto s = args.Value("unbound-inputs-col")) {
    if (s->empty()) {
      o.set_no_unbound_inputs_col(true);
    } else {
      o.set_unbound_inputs_col_name(*s);
    }
  }
  o.set_as_text(args.Has("as-text"));
  return o;
}

std::string Json(const google::protobuf::Message& m) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(m, &out, options);
  return out;
}

std::string HumanBytes(int64_t n) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  return u == 0 ? absl::StrCat(n, " B") : absl::StrFormat("%.1f %s", v, units[u]);
}

std::string FormatTime(const google::protobuf::Timestamp& t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ",
                          absl::FromUnixSeconds(t.seconds()) + absl::Nanoseconds(t.nanos()),
                          absl::UTCTimeZone());
}

void PrintCheckpoint(const v1::Checkpoint& c, std::ostream& out) {
  out << "model      " << c.model() << "\n"
      << "step       " << c.step() << "\n"
      << "basename   " << c.basename() << "\n"
      << "committed  " << FormatTime(c.commit_time()) << "\n"
      << "revision   " << c.revision() << "\n"
      << "size       " << HumanBytes(c.total_bytes()) << " in " << c.files_size()
      << " files\n";
  for (const v1::FileInfo& f : c.files()) {
    out << absl::StrFormat("  %-22s %14d  sha256:%s\n", f.name(), f.size(), f.sha256());
  }
  if (!c.graph_sha256().empty()) out << "graph      sha256:" << c.graph_sha256() << "\n";
  for (const auto& [k, v] : c.metadata()) out << "metadata   " << k << "=" << v << "\n";
}

// Progress on a terminal only: "\r<what> 42% 1.2 GiB / 2.9 GiB 310.0 MiB/s".
ProgressFn TerminalProgress(const std::string& what, std::ostream& err) {
  if (!::isatty(STDERR_FILENO)) return nullptr;
  const absl::Time start = absl::Now();
  auto last = std::make_shared<absl::Time>(absl::InfinitePast());
  return [what, start, last, &err](int64_t done, int64_t total) {
    const absl::Time now = absl::Now();
    if (done < total && now - *last < absl::Milliseconds(200)) return;
    *last = now;
    const double secs = absl::ToDoubleSeconds(now - start);
    const int pct = total > 0 ? static_cast<int>(100 * done / total) : 100;
    err << "\r" << what << " " << pct << "% " << HumanBytes(done) << " / "
        << HumanBytes(total);
    if (secs > 0.05) {
      err << " " << HumanBytes(static_cast<int64_t>(static_cast<double>(done) / secs))
          << "/s";
    }
    err << "   " << (done >= total ? "\n" : "") << std::flush;
  };
}

class Cli {
 public:
  Cli(const Args& args, std::ostream& out, std::ostream& err)
      : args_(args), out_(out), err_(err) {}

  absl::Status Run(const std::string& command, const std::vector<std::string>& rest) {
    rest_ = rest;
    if (command == "push") return Push();
    if (command == "latest") return Latest();
    if (command == "list") return List();
    if (command == "graph") return Graph();
    if (command == "restore") return Restore();
    if (command == "export") return Export();
    if (command == "collection") return Collection();
    if (command == "delete") return Delete();
    if (command == "upload") return Upload();
    if (command == "admin") return Admin();
    if (command == "inspect") return Inspect();
    if (command == "watch") return Watch();
    if (command == "retention") return Retention();
    if (command == "pin" || command == "unpin") return Pin(command == "pin");
    if (command == "alias") return Alias();
    if (command == "state") return State();
    if (command == "sync") return Sync();
    return UsageError();
  }

 private:
  bool ArgCount(size_t min, size_t max) const {
    return rest_.size() >= min && rest_.size() <= max;
  }

 public:
  // True if the last Run failed because the command line was wrong.
  bool usage_error() const { return usage_error_; }

 private:
  absl::Status UsageError() {
    usage_error_ = true;
    return absl::InvalidArgumentError("wrong arguments");
  }

  absl::StatusOr<Client*> Connect() {
    if (client_ == nullptr) {
      ClientOptions options;
      if (auto s = args_.Value("server")) {
        options.target = *s;
      } else if (const char* env = std::getenv("MGREG_SERVER"); env && *env) {
        options.target = env;
      }
      if (auto t = args_.Value("token")) {
        options.token = *t;
      } else if (const char* env = std::getenv("MGREG_TOKEN"); env && *env) {
        options.token = env;
      }
      options.use_tls = args_.Has("tls") || args_.Value("ca-cert").has_value() ||
                        args_.Value("cert").has_value();
      for (auto [flag, pem] : {std::pair<const char*, std::string*>{"ca-cert",
                                                                    &options.ca_cert_pem},
                               {"cert", &options.cert_pem},
                               {"key", &options.key_pem}}) {
        if (auto path = args_.Value(flag)) {
          absl::StatusOr<std::string> text = ReadWholeFile(*path);
          if (!text.ok()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "--", flag, " '", *path, "': ", text.status().message()));
          }
          *pem = std::move(*text);
        }
      }
      ASSIGN_OR_RETURN(client_, Client::Connect(options));
    }
    return client_.get();
  }

  bool json() const { return args_.Has("json"); }
  // True when the output goes to a person: the process's stdout, a terminal.
  bool OutIsTerminal() const { return &out_ == &std::cout && ::isatty(STDOUT_FILENO); }

  absl::Status Push() {
    if (!ArgCount(2, 2)) return UsageError();
    PushOptions options;
    ASSIGN_OR_RETURN(options.step, OptionalStep(args_));
    options.overwrite = args_.Has("overwrite");
    if (auto it = args_.values.find("meta"); it != args_.values.end()) {
      for (const std::string& kv : it->second) {
        std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
        if (p.first.empty() || kv.find('=') == std::string::npos) {
          return absl::InvalidArgumentError(
              absl::StrCat("--meta '", kv, "' is not KEY=VALUE"));
        }
        options.metadata[p.first] = p.second;
      }
    }
    options.progress = TerminalProgress(absl::StrCat("pushing ", rest_[0]), err_);
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(v1::Checkpoint c, client->Push(rest_[0], rest_[1], options));
    if (json()) {
      out_ << Json(c);
    } else {
      out_ << "pushed " << c.model() << " step " << c.step() << " ("
           << HumanBytes(c.total_bytes()) << ", " << c.files_size() << " files)\n";
    }
    return absl::OkStatus();
  }

  absl::Status Latest() {
    if (!ArgCount(1, 1)) return UsageError();
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(v1::Checkpoint c, client->GetLatestCheckpoint(rest_[0]));
    if (json()) {
      out_ << Json(c);
    } else {
      PrintCheckpoint(c, out_);
    }
    return absl::OkStatus();
  }

  absl::Status List() {
    if (!ArgCount(0, 1)) return UsageError();
    ASSIGN_OR_RETURN(Client * client, Connect());
    std::string token;
    if (rest_.empty()) {
      v1::ListModelsResponse all;
      do {
        ASSIGN_OR_RETURN(v1::ListModelsResponse page, client->ListModels(1000, token));
        all.mutable_models()->MergeFrom(page.models());
        token = page.next_page_token();
      } while (!token.empty());
      if (json()) {
        out_ << Json(all);  // an empty registry: "models": []
      } else if (all.models().empty()) {
        // Said to a person only: a script reading the (empty) list gets no line.
        if (OutIsTerminal()) out_ << "no models yet (mgreg push MODEL PREFIX adds one)\n";
      } else {
        for (const v1::ModelSummary& m : all.models()) {
          out_ << absl::StrFormat("%-40s latest %-12d %d steps\n", m.name(), m.latest_step(),
                                  m.checkpoint_count());
        }
      }
      return absl::OkStatus();
    }
    v1::ListCheckpointsResponse all;
    do {
      ASSIGN_OR_RETURN(v1::ListCheckpointsResponse page,
                       client->ListCheckpoints(rest_[0], 1000, token));
      all.mutable_checkpoints()->MergeFrom(page.checkpoints());
      token = page.next_page_token();
    } while (!token.empty());
    if (json()) {
      out_ << Json(all);
    } else {
      for (const v1::Checkpoint& c : all.checkpoints()) {
        out_ << absl::StrFormat("%-12d %s  %10s  %d files\n", c.step(),
                                FormatTime(c.commit_time()), HumanBytes(c.total_bytes()),
                                c.files_size());
      }
    }
    return absl::OkStatus();
  }

  absl::Status Graph() {
    if (!ArgCount(1, 1)) return UsageError();
    std::optional<std::string> path = args_.Value("o");
    if (!path.has_value()) {
      return absl::InvalidArgumentError("mgreg graph needs -o FILE for the MetaGraphDef");
    }
    ASSIGN_OR_RETURN(StepRef step, StepRefFrom(args_));
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(v1::MetaGraphInfo info,
                     client->FetchGraph(rest_[0], step, GraphOptionsFrom(args_), *path));
    if (json()) {
      out_ << Json(info);
    } else {
      out_ << "wrote " << *path << " (" << HumanBytes(info.size()) << ", step "
           << info.step();
      if (!info.collections().empty() || info.node_count() > 0) {
        out_ << ", " << info.node_count() << " nodes, collections: "
             << absl::StrJoin(info.collections(), ",");
      }
      out_ << ")\n";
    }
    return absl::OkStatus();
  }

  absl::Status Restore() {
    if (!ArgCount(2, 2)) return UsageError();
    RestoreOptions options;
    ASSIGN_OR_RETURN(StepRef step, StepRefFrom(args_));
    options.step = step.step;
    options.alias = step.alias;
    ASSIGN_OR_RETURN(options.keep_last, IntOption("keep", 0));
    options.graph_options = GraphOptionsFrom(args_);
    options.progress = TerminalProgress(absl::StrCat("restoring ", rest_[0]), err_);
    std::ostream& err = err_;
    options.on_warning = [&err](const std::string& message) {
      err << "mgreg restore: warning: " << message << "\n";
    };
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(v1::Checkpoint c, client->Restore(rest_[0], rest_[1], options));
    if (json()) {
      out_ << Json(c);
    } else {
      out_ << "restored " << c.model() << " step " << c.step() << " into " << rest_[1]
           << " as " << c.basename() << "-" << c.step() << "\n";
    }
    return absl::OkStatus();
  }

  absl::Status Export() {
    if (!ArgCount(1, 1)) return UsageError();
    std::optional<std::string> path = args_.Value("o");
    if (!path.has_value()) {
      return absl::InvalidArgumentError("mgreg export needs -o OUT for the result");
    }
    ASSIGN_OR_RETURN(std::string input, ReadWholeFile(rest_[0]));
    const ExportOptions options = ExportOptionsFromApi(GraphOptionsFrom(args_));
    ExportResult result;
    if (auto tags = args_.Value("tags")) {
      std::vector<std::string> tag_list = absl::StrSplit(*tags, ',', absl::SkipEmpty());
      ASSIGN_OR_RETURN(tensorflow::MetaGraphDef graph, SelectMetaGraph(input, tag_list));
      ASSIGN_OR_RETURN(result, ExportMetaGraphMessage(graph, options));
    } else {
      absl::StatusOr<tensorflow::MetaGraphDef> parsed = ParseMetaGraph(input);
      if (!parsed.ok()) {
        tensorflow::SavedModel saved_model;
        if (saved_model.ParseFromString(input) && saved_model.meta_graphs_size() > 0) {
          return absl::InvalidArgumentError(absl::StrCat(
              "'", rest_[0], "' is a SavedModel; pass --tags (e.g. --tags serve) to "
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
    ASSIGN_OR_RETURN(AtomicFileWriter writer, AtomicFileWriter::Create(*path));
    RETURN_IF_ERROR(writer.Append(result.bytes));
    RETURN_IF_ERROR(writer.Commit(static_cast<int64_t>(result.bytes.size()),
                                  Sha256Hex(result.bytes)));
    if (json()) {
      v1::MetaGraphInfo info;
      info.set_size(static_cast<int64_t>(result.bytes.size()));
      info.set_sha256(Sha256Hex(result.bytes));
      info.set_node_count(result.node_count);
      for (const std::string& c : result.collections) info.add_collections(c);
      out_ << Json(info);
    } else {
      out_ << "wrote " << *path << " (" << HumanBytes(result.bytes.size()) << ", "
           << result.node_count << " nodes, collections: "
           << absl::StrJoin(result.collections, ",") << ")\n";
    }
    return absl::OkStatus();
  }

  absl::Status Collection() {
    if (!ArgCount(2, 2)) return UsageError();
    ASSIGN_OR_RETURN(StepRef step, StepRefFrom(args_));
    ASSIGN_OR_RETURN(Client * client, Connect());
    std::string graph;
    RETURN_IF_ERROR(
        client->FetchGraphBytes(rest_[0], step, v1::GraphOptions(), &graph).status());
    if (json()) {
      ASSIGN_OR_RETURN(std::string text, CollectionToJson(graph, rest_[1]));
      out_ << text << "\n";
    } else {
      ASSIGN_OR_RETURN(std::string text, CollectionToText(graph, rest_[1]));
      out_ << text;
    }
    return absl::OkStatus();
  }

  absl::Status Delete() {
    if (!ArgCount(2, 2)) return UsageError();
    ASSIGN_OR_RETURN(int64_t step, ParseStepText(rest_[1]));
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(int64_t freed, client->DeleteCheckpoint(rest_[0], step));
    if (json()) {
      v1::DeleteCheckpointResponse r;
      r.set_freed_bytes(freed);
      out_ << Json(r);
    } else {
      out_ << "deleted " << rest_[0] << " step " << step << " (" << HumanBytes(freed)
           << " freed)\n";
    }
    return absl::OkStatus();
  }

  // The file name inside a checkpoint ("index", "data-00000-of-00001", "meta") of a
  // local checkpoint file path.
  static absl::StatusOr<std::string> CheckpointFileSuffix(const std::string& path) {
    const std::string file = std::filesystem::path(path).filename().string();
    for (const char* suffix : {".index", ".meta"}) {
      if (absl::EndsWith(file, suffix)) return std::string(suffix + 1);
    }
    if (size_t pos = file.rfind(".data-"); pos != std::string::npos) {
      return file.substr(pos + 1);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' is not a checkpoint file (.index, .meta or .data-NNNNN-of-MMMMM)"));
  }

  absl::Status Upload() {
    if (rest_.empty()) return UsageError();
    const std::string sub = rest_[0];
    rest_.erase(rest_.begin());
    ASSIGN_OR_RETURN(Client * client, Connect());
    if (sub == "begin") {
      if (rest_.size() < 2) return UsageError();
      // Without --basename: the files' prefix gives it, or (no files) the server learns
      // it from the first file put.
      std::optional<std::string> basename = args_.Value("basename");
      if (!basename.has_value()) {
        for (size_t i = 2; i < rest_.size(); ++i) {
          ASSIGN_OR_RETURN(CheckpointPrefix prefix, ParseCheckpointPrefix(rest_[i]));
          if (basename.has_value() && *basename != prefix.basename) {
            return absl::InvalidArgumentError(absl::StrCat(
                "the files belong to different prefixes ('", *basename, "' and '",
                prefix.basename, "'); give the files of one checkpoint, or --basename"));
          }
          basename = prefix.basename;
        }
      }
      v1::BeginUploadRequest request;
      request.set_model(rest_[0]);
      ASSIGN_OR_RETURN(int64_t step, ParseStepText(rest_[1]));
      request.set_step(step);
      request.set_basename(basename.value_or(""));
      request.set_overwrite(args_.Has("overwrite"));
      for (size_t i = 2; i < rest_.size(); ++i) {
        ASSIGN_OR_RETURN(std::string name, CheckpointFileSuffix(rest_[i]));
        ASSIGN_OR_RETURN(FileDigest digest, DigestFile(rest_[i]));
        v1::FileInfo* f = request.add_files();
        f->set_name(name);
        f->set_size(digest.size);
        f->set_sha256(digest.sha256);
      }
      ASSIGN_OR_RETURN(v1::Upload upload, client->BeginUpload(request));
      if (json()) {
        out_ << Json(upload);
      } else {
        out_ << upload.upload_id() << "\n";
      }
      return absl::OkStatus();
    }
    if (rest_.empty()) return UsageError();
    const std::string id = rest_[0];
    if (sub == "put") {
      if (rest_.size() < 2) return UsageError();
      for (size_t i = 1; i < rest_.size(); ++i) {
        ASSIGN_OR_RETURN(std::string name, CheckpointFileSuffix(rest_[i]));
        ASSIGN_OR_RETURN(
            v1::PutFileResponse r,
            client->PutFile(id, name, rest_[i],
                            TerminalProgress(absl::StrCat("sending ", name), err_)));
        if (!json()) out_ << name << ": " << r.held_bytes() << " bytes held\n";
      }
      if (json()) {
        ASSIGN_OR_RETURN(v1::Upload upload, client->GetUpload(id));
        out_ << Json(upload);
      }
      return absl::OkStatus();
    }
    if (rest_.size() != 1) return UsageError();
    if (sub == "status") {
      ASSIGN_OR_RETURN(v1::Upload upload, client->GetUpload(id));
      if (json()) {
        out_ << Json(upload);
      } else {
        out_ << "upload " << upload.upload_id() << " of " << upload.model() << " step "
             << upload.step() << "\n";
        for (const v1::UploadFile& f : upload.files()) {
          out_ << absl::StrFormat("  %-22s %14d / %d bytes\n", f.file().name(),
                                  f.held_bytes(), f.file().size());
        }
      }
      return absl::OkStatus();
    }
    if (sub == "commit") {
      ASSIGN_OR_RETURN(v1::Checkpoint c, client->CommitUpload(id));
      if (json()) {
        out_ << Json(c);
      } else {
        out_ << "committed " << c.model() << " step " << c.step() << "\n";
      }
      return absl::OkStatus();
    }
    if (sub == "abort") {
      RETURN_IF_ERROR(client->AbortUpload(id));
      if (!json()) out_ << "aborted " << id << "\n";
      return absl::OkStatus();
    }
    return UsageError();
  }

  absl::Status Admin() {
    if (rest_.empty()) return UsageError();
    const std::string sub = rest_[0];
    if (sub == "backup") {
      if (rest_.size() != 2) return UsageError();
      ASSIGN_OR_RETURN(Client * client, Connect());
      ASSIGN_OR_RETURN(v1::BackupResponse r, client->Backup(rest_[1]));
      if (json()) {
        out_ << Json(r);
      } else {
        out_ << "backed up " << r.checkpoints() << " steps (revision " << r.revision()
             << ") into " << r.dir() << " on the server\n";
      }
      return absl::OkStatus();
    }
    if (sub == "check") {
      if (rest_.size() != 1) return UsageError();
      ASSIGN_OR_RETURN(Client * client, Connect());
      ASSIGN_OR_RETURN(v1::CheckStoreResponse r, client->CheckStore());
      if (json()) {
        out_ << Json(r);
      } else {
        out_ << (r.consistent() ? "consistent" : "INCONSISTENT") << ": " << r.models()
             << " models, " << r.checkpoints() << " steps, " << r.files() << " files, "
             << r.blobs() << " blobs, " << r.chunks() << " chunks ("
             << HumanBytes(r.chunk_bytes()) << "), " << r.staged_chunks()
             << " chunks in open uploads, " << r.events() << " events, revision "
             << r.revision() << "\n";
        for (const std::string& p : r.problems()) out_ << "problem: " << p << "\n";
      }
      if (!r.consistent()) {
        return absl::DataLossError(absl::StrCat("the store has ", r.problems_size(),
                                                " inconsistencies (listed above)"));
      }
      return absl::OkStatus();
    }
    if (sub == "health") {
      if (rest_.size() != 1) return UsageError();
      ASSIGN_OR_RETURN(Client * client, Connect());
      ASSIGN_OR_RETURN(std::string status, client->CheckHealth(args_.Value("service").value_or("")));
      out_ << (json() ? absl::StrCat("{\"status\": \"", status, "\"}") : status) << "\n";
      if (status != "SERVING") {
        return absl::UnavailableError(absl::StrCat("the server reports ", status));
      }
      return absl::OkStatus();
    }
    return UsageError();
  }

  // An integer option, `fallback` when absent; INVALID_ARGUMENT if not an integer >= 0.
  absl::StatusOr<int> IntOption(const std::string& name, int fallback) const {
    std::optional<std::string> text = args_.Value(name);
    if (!text.has_value()) return fallback;
    int value = 0;
    if (!absl::SimpleAtoi(*text, &value) || value < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, " '", *text, "' is not an integer >= 0"));
    }
    return value;
  }

  absl::Status Inspect() {
    if (!ArgCount(1, 1)) return UsageError();
    ASSIGN_OR_RETURN(StepRef step, StepRefFrom(args_));
    ASSIGN_OR_RETURN(Client * client, Connect());
    const bool verify = args_.Has("verify");
    ASSIGN_OR_RETURN(v1::InspectCheckpointResponse r,
                     client->InspectCheckpoint(rest_[0], step, verify));
    if (json()) {
      out_ << Json(r);
    } else {
      out_ << "step " << r.step() << ", " << r.tensors_size() << " tensors in "
           << r.num_shards() << " shard(s)\n";
      for (const v1::TensorInfoEntry& t : r.tensors()) {
        out_ << absl::StrFormat("  %-50s %-10s [%s] shard %d offset %d size %d%s\n",
                                t.name(), t.dtype(), absl::StrJoin(t.shape(), ","),
                                t.shard(), t.offset(), t.size(),
                                t.verification().empty() ? "" : "  " + t.verification());
      }
      if (verify) out_ << (r.verified() ? "all tensors verified\n" : "VERIFICATION FAILED\n");
    }
    if (verify && !r.verified()) {
      return absl::DataLossError("some tensors do not match their CRC32C (listed above)");
    }
    return absl::OkStatus();
  }

  absl::Status Watch() {
    if (!ArgCount(0, 1)) return UsageError();
    v1::WatchCheckpointsRequest request;
    if (!rest_.empty()) request.set_model(rest_[0]);
    if (auto p = args_.Value("prefix")) request.set_prefix(*p);
    request.set_all_models(args_.Has("all"));
    request.set_since_revision(-1);
    if (auto since = args_.Value("since")) {
      int64_t rev = 0;
      if (!absl::SimpleAtoi(*since, &rev) || rev < 0) {
        return absl::InvalidArgumentError(
            absl::StrCat("--since '", *since, "' is not a revision (an integer >= 0)"));
      }
      request.set_since_revision(rev);
    }
    ASSIGN_OR_RETURN(int count, IntOption("count", 0));
    ASSIGN_OR_RETURN(Client * client, Connect());
    std::unique_ptr<WatchStream> stream = client->Watch(request);
    v1::WatchEvent event;
    int seen = 0;
    while (stream->Next(&event)) {
      if (event.type() == v1::WatchEvent::PROGRESS) continue;
      if (json()) {
        google::protobuf::util::JsonPrintOptions options;
        options.preserve_proto_field_names = true;
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(event, &line, options);
        out_ << line << "\n";
      } else {
        out_ << "revision " << event.revision() << " "
             << v1::WatchEvent::Type_Name(event.type()) << " " << event.model()
             << " step " << event.step();
        if (!event.alias().empty()) out_ << " alias " << event.alias();
        out_ << " at " << FormatTime(event.time()) << "\n";
      }
      out_ << std::flush;
      if (count > 0 && ++seen >= count) {
        stream->Cancel();
        stream->Finish().IgnoreError();
        return absl::OkStatus();
      }
    }
    return stream->Finish();
  }

  absl::Status Retention() {
    if (!ArgCount(1, 1)) return UsageError();
    ASSIGN_OR_RETURN(Client * client, Connect());
    v1::Model model;
    if (args_.Value("max-to-keep").has_value() ||
        args_.Value("keep-every-n-hours").has_value()) {
      ASSIGN_OR_RETURN(int max_to_keep, IntOption("max-to-keep", 0));
      double hours = 0;
      if (auto h = args_.Value("keep-every-n-hours")) {
        if (!absl::SimpleAtod(*h, &hours) || !(hours >= 0)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "--keep-every-n-hours '", *h, "' is not a number >= 0"));
        }
      }
      ASSIGN_OR_RETURN(model, client->SetRetention(rest_[0], max_to_keep, hours,
                                                   args_.Has("allow-missing")));
    } else {
      ASSIGN_OR_RETURN(model, client->GetModel(rest_[0]));
    }
    if (json()) {
      out_ << Json(model.retention());
    } else {
      out_ << "model " << rest_[0] << ": max_to_keep "
           << model.retention().max_to_keep() << " (0 = keep all), keep_every_n_hours "
           << model.retention().keep_every_n_hours() << " (0 = none)\n";
    }
    return absl::OkStatus();
  }

  absl::Status Pin(bool pinned) {
    if (!ArgCount(2, 2)) return UsageError();
    ASSIGN_OR_RETURN(int64_t step, ParseStepText(rest_[1]));
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(v1::Checkpoint c, client->PinCheckpoint(rest_[0], step, pinned));
    if (json()) {
      out_ << Json(c);
    } else {
      out_ << (pinned ? "pinned " : "unpinned ") << c.model() << " step " << c.step() << "\n";
    }
    return absl::OkStatus();
  }

  absl::Status Alias() {
    if (rest_.empty()) return UsageError();
    const std::string sub = rest_[0];
    rest_.erase(rest_.begin());
    ASSIGN_OR_RETURN(Client * client, Connect());
    v1::Model model;
    if (sub == "set") {
      if (!ArgCount(3, 3)) return UsageError();
      ASSIGN_OR_RETURN(int64_t step, ParseStepText(rest_[2]));
      ASSIGN_OR_RETURN(model, client->SetAlias(rest_[0], rest_[1], step));
    } else if (sub == "rm") {
      if (!ArgCount(2, 2)) return UsageError();
      ASSIGN_OR_RETURN(model, client->RemoveAlias(rest_[0], rest_[1]));
    } else if (sub == "list") {
      if (!ArgCount(1, 1)) return UsageError();
      ASSIGN_OR_RETURN(model, client->GetModel(rest_[0]));
    } else {
      return UsageError();
    }
    if (json()) {
      out_ << Json(model);
    } else {
      std::map<std::string, int64_t> sorted(model.aliases().begin(), model.aliases().end());
      for (const auto& [name, step] : sorted) out_ << name << " -> " << step << "\n";
    }
    return absl::OkStatus();
  }

  absl::Status State() {
    if (!ArgCount(1, 1)) return UsageError();
    ASSIGN_OR_RETURN(Client * client, Connect());
    ASSIGN_OR_RETURN(tensorflow::CheckpointState state, client->GetCheckpointState(rest_[0]));
    out_ << (json() ? Json(state) : FormatCheckpointState(state));
    return absl::OkStatus();
  }

  absl::Status Sync() {
    if (!ArgCount(2, 2)) return UsageError();
    SyncOptions options;
    if (auto alias = args_.Value("alias")) options.alias = *alias;
    if (args_.Has("latest") && !options.alias.empty()) {
      return absl::InvalidArgumentError("give --alias or --latest, not both");
    }
    if (args_.Value("step").has_value()) {
      return absl::InvalidArgumentError(
          "mgreg sync follows the latest step or an alias; use mgreg restore for one step");
    }
    ASSIGN_OR_RETURN(options.keep, IntOption("keep", 2));
    options.graph_options = GraphOptionsFrom(args_);
    std::ostream& out = out_;
    const bool as_json = json();
    options.on_switch = [&out, as_json](const v1::Checkpoint& c) {
      if (as_json) {
        google::protobuf::util::JsonPrintOptions o;
        o.preserve_proto_field_names = true;
        std::string line;
        (void)google::protobuf::util::MessageToJsonString(c, &line, o);
        out << line << "\n";
      } else {
        out << "switched to " << c.model() << " step " << c.step() << "\n";
      }
      out << std::flush;
    };
    std::ostream& err = err_;
    options.on_retry = [&err](const absl::Status& s) {
      err << "mgreg sync: " << absl::StatusCodeToString(s.code()) << ": " << s.message()
          << " (retrying)\n";
    };
    options.on_warning = [&err](const std::string& message) {
      err << "mgreg sync: warning: " << message << "\n";
    };
    // Set by on_skip: what the directory keeps serving is said there.
    const CheckpointSync* syncer = nullptr;
    bool skipped = false;
    const std::string dir = rest_[1];
    options.on_skip = [&err, &syncer, &skipped, dir](const v1::Checkpoint& c,
                                                     const absl::Status& s) {
      skipped = true;
      const int64_t current = syncer == nullptr ? -1 : syncer->current_step();
      err << "mgreg sync: skipping " << c.model() << " step " << c.step() << ": "
          << absl::StatusCodeToString(s.code()) << ": " << s.message() << "; " << dir
          << (current >= 0 ? absl::StrCat(" keeps step ", current)
                           : std::string(" holds no step yet"))
          << ", the next step that lands is tried\n"
          << std::flush;
    };
    if (args_.Has("once")) {
      ASSIGN_OR_RETURN(Client * client, Connect());
      CheckpointSync sync(client, rest_[0], dir, options);
      syncer = &sync;
      absl::StatusOr<v1::Checkpoint> synced = sync.SyncOnce();
      // A step that cannot be restored is reported (above); the directory still
      // serving a complete step is success.
      if (!synced.ok() && skipped && sync.current_step() >= 0) return absl::OkStatus();
      return synced.status();
    }
    // Stop cleanly on SIGINT/SIGTERM: blocked before any thread starts (gRPC's too),
    // then waited for by one thread.
    sigset_t stop_signals;
    sigemptyset(&stop_signals);
    sigaddset(&stop_signals, SIGINT);
    sigaddset(&stop_signals, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
    ASSIGN_OR_RETURN(Client * client, Connect());
    CheckpointSync sync(client, rest_[0], dir, options);
    syncer = &sync;
    std::thread stopper([&sync, stop_signals]() {
      int sig = 0;
      sigwait(&stop_signals, &sig);
      sync.Stop();
    });
    absl::Status status = sync.Run();
    if (!status.ok()) {
      // The stopper still waits for a signal: send it one so it can be joined.
      pthread_kill(stopper.native_handle(), SIGTERM);
    }
    stopper.join();
    return status;
  }

  const Args& args_;
  std::ostream& out_;
  std::ostream& err_;
  std::vector<std::string> rest_;
  std::unique_ptr<Client> client_;
  bool usage_error_ = false;
};

}  // namespace

int RunCli(const std::vector<std::string>& argv, std::ostream& out, std::ostream& err) {
  absl::StatusOr<Args> args = ParseArgs(argv);
  if (!args.ok()) {
    err << "mgreg: " << args.status().message() << "\n";
    return 2;
  }
  if (args->positional.empty() || args->Has("help") || args->Has("h") ||
      args->positional[0] == "help") {
    (args->positional.empty() ? err : out) << kUsage;
    return args->positional.empty() ? 2 : 0;
  }
  const std::string command = args->positional[0];
  std::vector<std::string> rest(args->positional.begin() + 1, args->positional.end());
  Cli cli(*args, out, err);
  absl::Status status = cli.Run(command, rest);
  if (cli.usage_error()) {
    err << "mgreg: wrong arguments for '" << command << "'\n\n" << kUsage;
    return 2;
  }
  if (!status.ok()) {
    err << "mgreg " << command << ": " << absl::StatusCodeToString(status.code()) << ": "
        << status.message() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace mgreg
