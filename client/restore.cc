// Client::Restore: a checkpoint into a directory TensorFlow loads as is. Every name the
// server answers is checked before anything is written, each file verified before it is
// renamed into place, and the directory's `checkpoint` state file switched last.
// Client::RestoreSavedModel: a SavedModel step into TF Serving's base path as one version
// directory, staged, verified and renamed into place whole (client/saved_model_dir.h).
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/checkpoint_dir.h"
#include "client/client.h"
#include "client/client_impl.h"
#include "client/grpc_status.h"
#include "client/local_file.h"
#include "client/saved_model_dir.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/checkpoint_state.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg {
namespace fs = std::filesystem;

absl::Status Client::DownloadFile(const v1::Checkpoint& checkpoint,
                                  const v1::FileInfo& file, const std::string& path,
                                  const ProgressFn& progress, int64_t progress_base,
                                  int64_t progress_total) {
  v1::ReadFileRequest request;
  request.set_model(checkpoint.model());
  request.set_step(checkpoint.step());
  request.set_name(file.name());
  grpc::ClientContext ctx;
  impl_->PrepareContext(&ctx, CallDeadline::kNone);
  std::unique_ptr<grpc::ClientReader<v1::FileChunk>> reader =
      impl_->stub->ReadFile(&ctx, request);
  const ExpectedDigest expected = ExpectedDigestOf(file.sha256(), file.chunked_sha256());
  ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path, expected.kind));
  v1::FileChunk chunk;
  int64_t received = 0;
  while (reader->Read(&chunk)) {
    RETURN_IF_ERROR(out.Append(chunk.data()));
    received += static_cast<int64_t>(chunk.data().size());
    if (progress) progress(progress_base + received, progress_total);
  }
  RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
  return out.Commit(file.size(), expected.hex);
}

absl::StatusOr<v1::Checkpoint> Client::Restore(const std::string& model,
                                               const std::string& dir,
                                               const RestoreOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError(
        "keep_last must be >= 0 (0 keeps every checkpoint)");
  }
  RETURN_IF_ERROR(EnsureWritableDirectory(dir));
  StepRef ref;
  ref.step = options.step;
  ref.alias = options.alias;
  ASSIGN_OR_RETURN(v1::Checkpoint checkpoint, ResolveCheckpoint(model, ref));
  if (checkpoint.kind() == v1::SAVED_MODEL)
    return RestoreVersion(checkpoint, dir, options);
  // Every name in the answer is checked before anything is written.
  using PathsByName = std::map<std::string, std::string>;
  ASSIGN_OR_RETURN(const PathsByName paths, RestoredFilePaths(dir, checkpoint));
  const std::string prefix =
      CheckpointPrefixName(checkpoint.basename(), checkpoint.step());
  const bool filter_graph = options.graph_options.ByteSizeLong() > 0;
  // The filtered graph first: it is small, and it is what fails when the graph cannot
  // be exported with these options (before gigabytes of shards are downloaded).
  std::vector<const v1::FileInfo*> order;
  for (const v1::FileInfo& file : checkpoint.files()) {
    if (file.name() == "meta" && filter_graph) {
      order.insert(order.begin(), &file);
    } else {
      order.push_back(&file);
    }
  }
  // Files this call creates are removed again if the restore fails, so a step that
  // cannot be restored leaves nothing behind.
  struct Created {
    std::vector<std::string> paths;
    bool keep = false;
    ~Created() {
      std::error_code ec;
      if (!keep)
        for (const std::string& p : paths) fs::remove(p, ec);
    }
  } created;
  const int64_t total = checkpoint.total_bytes();
  int64_t done = 0;
  for (const v1::FileInfo* file : order) {
    const std::string& path = paths.at(file->name());
    std::error_code ec;
    const bool existed = fs::exists(path, ec);
    if (file->name() == "meta" && filter_graph) {
      if (!existed) created.paths.push_back(path);
      RETURN_IF_ERROR(
          FetchGraph(model, checkpoint.step(), options.graph_options, path).status());
    } else if (!FileMatches(path, file->size(),
                            ExpectedDigestOf(file->sha256(), file->chunked_sha256()))) {
      if (!existed) created.paths.push_back(path);
      RETURN_IF_ERROR(
          DownloadFile(checkpoint, *file, path, options.progress, done, total));
    }
    done += file->size();
    if (options.progress) options.progress(done, total);
  }

  // Switch: the `checkpoint` state file names the restored prefix as the latest, after
  // the directory's own prefixes already listed whose files are still there. Renaming it
  // into place is the atomic moment; TensorFlow reading the directory sees the old
  // complete checkpoint or the new one.
  ListedCheckpoints listed = ReadListedCheckpoints(dir);
  if (!listed.foreign.empty() && options.on_warning) {
    options.on_warning(absl::StrCat((fs::path(dir) / "checkpoint").string(), " listed ",
                                    listed.foreign.size(), " checkpoint(s) outside ", dir,
                                    " (", absl::StrJoin(listed.foreign, ", "),
                                    "); they are not the directory's own: left in place, "
                                    "never deleted, and no longer "
                                    "listed"));
  }
  std::vector<std::string> prefixes;
  for (std::string& p : listed.own) {
    if (p != prefix) prefixes.push_back(std::move(p));
  }
  prefixes.push_back(prefix);
  std::vector<std::string> dropped;
  if (options.keep_last > 0 && prefixes.size() > static_cast<size_t>(options.keep_last)) {
    const size_t drop = prefixes.size() - static_cast<size_t>(options.keep_last);
    dropped.assign(prefixes.begin(),
                   prefixes.begin() + static_cast<std::ptrdiff_t>(drop));
    prefixes.erase(prefixes.begin(),
                   prefixes.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  const std::string state_path = (fs::path(dir) / "checkpoint").string();
  ASSIGN_OR_RETURN(AtomicFileWriter state,
                   AtomicFileWriter::Create(state_path, DigestKind::kSha256));
  const std::string text = FormatCheckpointState(MakeCheckpointState(prefixes));
  RETURN_IF_ERROR(state.Append(text));
  RETURN_IF_ERROR(state.Commit(static_cast<int64_t>(text.size()), Sha256Hex(text)));
  created.keep = true;
  // Only after the switch: the files of checkpoints no longer listed.
  for (const std::string& p : dropped) RemoveCheckpointFiles(dir, p);
  return checkpoint;
}

absl::StatusOr<v1::Checkpoint> Client::RestoreSavedModel(const std::string& model,
                                                         const std::string& base,
                                                         const RestoreOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError("keep_last must be >= 0 (0 keeps every version)");
  }
  RETURN_IF_ERROR(EnsureWritableDirectory(base));
  StepRef ref;
  ref.step = options.step;
  ref.alias = options.alias;
  ASSIGN_OR_RETURN(v1::Checkpoint checkpoint, ResolveCheckpoint(model, ref));
  if (checkpoint.kind() != v1::SAVED_MODEL) {
    return absl::FailedPreconditionError(absl::StrCat(
        "step ", checkpoint.step(), " of model '", model,
        "' is a checkpoint, not a "
        "SavedModel; restore it with mgreg restore / Client::Restore into a checkpoint "
        "directory"));
  }
  return RestoreVersion(checkpoint, base, options);
}

absl::StatusOr<v1::Checkpoint> Client::RestoreVersion(const v1::Checkpoint& checkpoint,
                                                      const std::string& base,
                                                      const RestoreOptions& options) {
  if (options.graph_options.ByteSizeLong() > 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step ", checkpoint.step(), " of model '", checkpoint.model(),
        "' is a SavedModel, restored as stored: graph options filter a checkpoint's "
        ".meta; "
        "drop them (a filtered MetaGraphDef of a SavedModel: mgreg graph --tags)"));
  }
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError("keep_last must be >= 0 (0 keeps every version)");
  }
  // Every name in the answer is checked before anything is written.
  RETURN_IF_ERROR(SavedModelFilePaths(base, checkpoint).status());
  const int64_t total = checkpoint.total_bytes();
  if (!VersionMatches(base, checkpoint)) {
    ASSIGN_OR_RETURN(StagedVersion staged,
                     StagedVersion::Create(base, checkpoint.step()));
    using PathsByName = std::map<std::string, std::string>;
    ASSIGN_OR_RETURN(const PathsByName paths,
                     SavedModelFilePaths(staged.path(), checkpoint));
    int64_t done = 0;
    for (const v1::FileInfo& file : checkpoint.files()) {
      const std::string& path = paths.at(file.name());
      RETURN_IF_ERROR(staged.MakeParents(path));
      RETURN_IF_ERROR(
          DownloadFile(checkpoint, file, path, options.progress, done, total));
      done += file.size();
    }
    RETURN_IF_ERROR(staged.Place());
  }
  if (options.progress) options.progress(total, total);
  // Only after the new version is in place: the versions beyond what is kept.
  std::vector<int64_t> others;
  for (int64_t v : ListVersions(base)) {
    if (v == checkpoint.step()) continue;
    if (v > checkpoint.step() && options.remove_newer_versions) {
      RETURN_IF_ERROR(RemoveVersion(base, v));
    } else {
      others.push_back(v);
    }
  }
  if (options.keep_last > 0 &&
      others.size() + 1 > static_cast<size_t>(options.keep_last)) {
    const size_t drop = others.size() + 1 - static_cast<size_t>(options.keep_last);
    for (size_t i = 0; i < drop; ++i) RETURN_IF_ERROR(RemoveVersion(base, others[i]));
  }
  return checkpoint;
}

}  // namespace mgreg
