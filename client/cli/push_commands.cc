// mgreg push, and the multi-writer upload (upload begin/put/status/commit/abort).
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "client/cli/command.h"
#include "client/cli/output.h"
#include "client/local_file.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"

namespace mgreg::cli {
namespace {

// --overwrite, and --force which only means something with it.
absl::Status OverwriteOptions(const ParsedOptions& o, bool* overwrite, bool* force) {
  *overwrite = o.Has("overwrite");
  *force = o.Has("force");
  if (*force && !*overwrite) {
    return absl::InvalidArgumentError(
        "--force only applies to --overwrite (replacing a pinned or aliased step); add "
        "--overwrite or drop --force");
  }
  return absl::OkStatus();
}

absl::Status Push(const std::vector<std::string>& args, Context& ctx) {
  const ParsedOptions& o = ctx.options();
  PushOptions options;
  ASSIGN_OR_RETURN(options.step, StepOption(o));
  RETURN_IF_ERROR(OverwriteOptions(o, &options.overwrite, &options.force));
  for (const std::string& kv : o.Values("meta")) {
    std::pair<std::string, std::string> p = absl::StrSplit(kv, absl::MaxSplits('=', 1));
    if (p.first.empty() || kv.find('=') == std::string::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("--meta '", kv, "' is not KEY=VALUE"));
    }
    options.metadata[p.first] = p.second;
  }
  options.progress = TerminalProgress(absl::StrCat("pushing ", args[0]), ctx.err());
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Checkpoint c, client->Push(args[0], args[1], options));
  if (ctx.json()) return ctx.PrintJson(c);
  ctx.out() << "pushed " << c.model()
            << (c.kind() == v1::SAVED_MODEL ? " version " : " step ") << c.step() << " ("
            << (c.kind() == v1::SAVED_MODEL ? "SavedModel, " : "")
            << HumanBytes(c.total_bytes()) << ", " << c.files_size() << " files)\n";
  return absl::OkStatus();
}

// The file name inside a checkpoint ("index", "data-00000-of-00001", "meta") of a local
// checkpoint file path.
absl::StatusOr<std::string> CheckpointFileSuffix(const std::string& path) {
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

// The files of a SavedModel upload: FILE arguments are paths inside `root` (all of its
// files when none is given), named by their path relative to it.
absl::StatusOr<std::map<std::string, std::string>> SavedModelFiles(
    const std::string& root, const std::vector<std::string>& files) {
  ASSIGN_OR_RETURN(LocalSavedModel local, FindLocalSavedModel(root));
  if (files.empty()) return local.files;
  std::map<std::string, std::string> out;
  const std::filesystem::path base = std::filesystem::path(local.directory);
  for (const std::string& file : files) {
    const std::string name = std::filesystem::path(file)
                                 .lexically_normal()
                                 .lexically_relative(base)
                                 .generic_string();
    auto it = local.files.find(name);
    if (it == local.files.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", file, "' is not a file of the SavedModel directory '", root,
                       "'; give paths inside it (e.g. ",
                       (base / "variables/variables.index").string(), ")"));
    }
    out.insert(*it);
  }
  return out;
}

absl::Status UploadBegin(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  const std::vector<std::string> files(args.begin() + 2, args.end());
  const std::optional<std::string> saved_model = ctx.options().Value("saved-model");
  // Without --basename: the files' prefix gives it, or (no files) the server learns it
  // from the first file put. A SavedModel has none.
  std::optional<std::string> basename = ctx.options().Value("basename");
  if (saved_model.has_value() && basename.has_value()) {
    return absl::InvalidArgumentError(
        "a SavedModel has no basename: give --saved-model DIR or --basename B, not both");
  }
  if (!basename.has_value() && !saved_model.has_value()) {
    for (const std::string& file : files) {
      ASSIGN_OR_RETURN(CheckpointPrefix prefix, ParseCheckpointPrefix(file));
      if (basename.has_value() && *basename != prefix.basename) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the files belong to different prefixes ('", *basename, "' and '",
            prefix.basename, "'); give the files of one checkpoint, or --basename"));
      }
      basename = prefix.basename;
    }
  }
  v1::BeginUploadRequest request;
  request.set_model(args[0]);
  ASSIGN_OR_RETURN(int64_t step, ParseStep(args[1]));
  request.set_step(step);
  request.set_basename(basename.value_or(""));
  bool overwrite = false;
  bool force = false;
  RETURN_IF_ERROR(OverwriteOptions(ctx.options(), &overwrite, &force));
  request.set_overwrite(overwrite);
  request.set_force(force);
  // name -> local path
  std::vector<std::pair<std::string, std::string>> named;
  if (saved_model.has_value()) {
    request.set_kind(v1::SAVED_MODEL);
    ASSIGN_OR_RETURN(const auto in_dir, SavedModelFiles(*saved_model, files));
    named.assign(in_dir.begin(), in_dir.end());
  } else {
    for (const std::string& file : files) {
      ASSIGN_OR_RETURN(std::string name, CheckpointFileSuffix(file));
      named.emplace_back(name, file);
    }
  }
  for (const auto& [name, file] : named) {
    ASSIGN_OR_RETURN(FileDigest digest, DigestFile(file));
    v1::FileInfo* f = request.add_files();
    f->set_name(name);
    f->set_size(digest.size);
    f->set_chunked_sha256(digest.chunked_sha256);
  }
  ASSIGN_OR_RETURN(v1::Upload upload, client->BeginUpload(request));
  if (ctx.json()) return ctx.PrintJson(upload);
  ctx.out() << upload.upload_id() << "\n";
  return absl::OkStatus();
}

absl::Status UploadPut(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  const std::string& id = args[0];
  // name -> local path, in the order given.
  std::vector<std::pair<std::string, std::string>> puts;
  if (std::optional<std::string> root = ctx.options().Value("saved-model")) {
    ASSIGN_OR_RETURN(const auto named,
                     SavedModelFiles(*root, {args.begin() + 1, args.end()}));
    puts.assign(named.begin(), named.end());
  } else {
    if (args.size() < 2) {
      return absl::InvalidArgumentError(
          "mgreg upload put needs the FILEs to send (or --saved-model DIR)");
    }
    for (size_t i = 1; i < args.size(); ++i) {
      ASSIGN_OR_RETURN(std::string name, CheckpointFileSuffix(args[i]));
      puts.emplace_back(name, args[i]);
    }
  }
  for (const auto& [name, path] : puts) {
    ASSIGN_OR_RETURN(
        v1::PutFileResponse r,
        client->PutFile(id, name, path,
                        TerminalProgress(absl::StrCat("sending ", name), ctx.err())));
    if (!ctx.json()) ctx.out() << name << ": " << r.held_bytes() << " bytes held\n";
  }
  if (ctx.json()) {
    ASSIGN_OR_RETURN(v1::Upload upload, client->GetUpload(id));
    return ctx.PrintJson(upload);
  }
  return absl::OkStatus();
}

absl::Status UploadStatus(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Upload upload, client->GetUpload(args[0]));
  if (ctx.json()) return ctx.PrintJson(upload);
  ctx.out() << "upload " << upload.upload_id() << " of " << upload.model() << " step "
            << upload.step() << "\n";
  for (const v1::UploadFile& f : upload.files()) {
    ctx.out() << absl::StrFormat("  %-22s %14d / %d bytes\n", f.file().name(),
                                 f.held_bytes(), f.file().size());
  }
  return absl::OkStatus();
}

absl::Status UploadCommit(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  ASSIGN_OR_RETURN(v1::Checkpoint c, client->CommitUpload(args[0]));
  if (ctx.json()) return ctx.PrintJson(c);
  ctx.out() << "committed " << c.model() << " step " << c.step() << "\n";
  return absl::OkStatus();
}

absl::Status UploadAbort(const std::vector<std::string>& args, Context& ctx) {
  ASSIGN_OR_RETURN(Client * client, ctx.Connect());
  RETURN_IF_ERROR(client->AbortUpload(args[0]));
  if (!ctx.json()) ctx.out() << "aborted " << args[0] << "\n";
  return absl::OkStatus();
}

}  // namespace

std::vector<Command> PushCommands() {
  const Option force_option = {"force", "",
                               "with --overwrite: also replace a pinned or aliased step"};
  const std::vector<Option> common = Join({{JsonOption()}, ConnectionOptions()});
  return {
      {"push", "MODEL PREFIX|DIR",
       "[--step N] [--overwrite [--force]] [--meta KEY=VALUE]...",
       "upload the checkpoint at PREFIX (dir/model.ckpt-1000), or the\n"
       "SavedModel version directory DIR (/export/resnet/123)",
       2, 2,
       Join({{{"step", "N",
               "store it as step N (default: the number PREFIX ends in, or DIR's name)"},
              {"overwrite", "", "replace the step if it exists with other content"},
              force_option,
              {"meta", "KEY=VALUE", "metadata stored with the step (repeatable)"}},
             common}),
       Push},
      {"upload begin", "MODEL STEP [FILE...]",
       "[--basename B | --saved-model DIR] [--overwrite [--force]]",
       "begin a multi-writer upload; prints its id. Without files\n"
       "the upload learns them, and the basename, from its writers",
       2, Command::kAnyNumber,
       Join({{{"basename", "B", "the checkpoint's basename (default: the files' prefix)"},
              {"saved-model", "DIR",
               "a SavedModel step: FILEs are paths in DIR (none: every file of DIR)"},
              {"overwrite", "", "replace the step if it exists with other content"},
              force_option},
             common}),
       UploadBegin},
      {"upload put", "ID [FILE...]", "[--saved-model DIR]",
       "send local checkpoint files\n(dir/model.ckpt-1000.index, .data-*, .meta), or "
       "files "
       "of a SavedModel",
       1, Command::kAnyNumber,
       Join({{{"saved-model", "DIR",
               "FILEs are paths in SavedModel directory DIR (none: every file of DIR)"}},
             common}),
       UploadPut},
      {"upload status", "ID", "", "the bytes the server holds of each file", 1, 1, common,
       UploadStatus},
      {"upload commit", "ID", "", "make the step visible, whole or not at all", 1, 1,
       common, UploadCommit},
      {"upload abort", "ID", "", "drop the upload and what it staged", 1, 1, common,
       UploadAbort},
  };
}

}  // namespace mgreg::cli
