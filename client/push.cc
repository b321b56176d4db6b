// Client::Push / PushSavedModel and the upload they run: find the local files of a prefix
// or a SavedModel directory, announce them (small ones digested first), send each while
// it is hashed, skipping what the server holds (whole files, then chunks), commit.
#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <filesystem>
#include <map>
#include <thread>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "client/client_impl.h"
#include "client/grpc_status.h"
#include "client/local_file.h"
#include "client/pipelined_upload.h"
#include "client/saved_model_dir.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "common/upload_limits.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/saved_model.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg {
namespace {

// Threads for hashing each of `files` files at once: the machine's cores, shared.
int HashThreads(size_t files) {
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  return std::max(1, cores / static_cast<int>(std::max<size_t>(files, 1)));
}

// Whether a file the upload does not list is announced by its size alone, its digest
// after its bytes: when it is larger than one pipeline window. A smaller one is hashed
// whole before its first byte is sent anyway, so its digest goes in the header, which
// lets the server find it whole.
bool DigestAfterBytes(int64_t size) { return size > kPipelineWindowBytes; }

}  // namespace
namespace fs = std::filesystem;

absl::StatusOr<LocalCheckpoint> FindLocalCheckpoint(const std::string& prefix) {
  ASSIGN_OR_RETURN(CheckpointPrefix parsed, ParseCheckpointPrefix(prefix));
  LocalCheckpoint out;
  out.directory = parsed.directory.empty() ? "." : parsed.directory;
  out.basename = parsed.basename;
  out.step = parsed.step;
  const std::string name = parsed.step.has_value()
                               ? CheckpointPrefixName(parsed.basename, *parsed.step)
                               : parsed.basename;
  const std::string stem = name + ".";
  std::error_code ec;
  fs::directory_iterator it(out.directory, ec);
  if (ec) {
    return absl::NotFoundError(
        absl::StrCat("no checkpoint at '", prefix, "': cannot list directory '",
                     out.directory, "' (", ec.message(), ") to find '",
                     (fs::path(out.directory) / name).string(), ".index'"));
  }
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    if (!absl::StartsWith(file, stem)) continue;
    const std::string suffix = file.substr(stem.size());
    if (suffix == "index" || suffix == "meta" ||
        (absl::StartsWith(suffix, "data-") && ValidateFileName(suffix).ok())) {
      out.files[suffix] = entry.path().string();
    }
  }
  const std::string where = (fs::path(out.directory) / name).string();
  if (out.files.count("index") == 0) {
    return absl::NotFoundError(
        absl::StrCat("no checkpoint at '", prefix, "': '", where,
                     ".index' does not exist; give the prefix TensorFlow saved, e.g. "
                     "dir/model.ckpt-1000"));
  }
  int data_files = 0;
  for (const auto& [suffix, unused] : out.files) {
    if (absl::StartsWith(suffix, "data-")) ++data_files;
  }
  if (data_files == 0) {
    return absl::NotFoundError(
        absl::StrCat("checkpoint '", where, "' has an .index but no .data-* file"));
  }
  return out;
}

absl::StatusOr<v1::PutFileResponse> Client::PutFile(const std::string& upload_id,
                                                    const std::string& name,
                                                    const std::string& path,
                                                    const ProgressFn& progress) {
  ASSIGN_OR_RETURN(v1::Upload upload, GetUpload(upload_id));
  const v1::UploadFile* state = nullptr;
  for (const v1::UploadFile& f : upload.files()) {
    if (f.file().name() == name) state = &f;
  }
  const FindChunksFn find_chunks = ChunkFinder(upload);
  absl::StatusOr<v1::PutFileResponse> put =
      SendFile(upload_id, name, path, state, /*digest_first=*/false, find_chunks,
               upload.accepts_existing_chunks(), progress, nullptr);
  std::error_code ec;
  if (state == nullptr && put.status().code() == absl::StatusCode::kInvalidArgument &&
      DigestAfterBytes(static_cast<int64_t>(fs::file_size(path, ec))) && !ec) {
    // A server older than final_chunked_sha256 wants the digest in the header of a file
    // the upload does not list (this one was sent without). A header wrong for another
    // reason fails again.
    put = SendFile(upload_id, name, path, state, /*digest_first=*/true, find_chunks,
                   upload.accepts_existing_chunks(), progress, nullptr);
  }
  return put;
}

FindChunksFn Client::ChunkFinder(const v1::Upload& upload) {
  if (upload.chunk_bytes() != kDigestPieceBytes) return nullptr;
  return
      [this, id = upload.upload_id()](
          const std::vector<std::string>& digests) -> absl::StatusOr<std::vector<bool>> {
        v1::FindChunksRequest request;
        request.set_upload_id(id);
        for (const std::string& d : digests) request.add_sha256(d);
        ASSIGN_OR_RETURN(const v1::FindChunksResponse found,
                         impl_->Call(&v1::Registry::Stub::FindChunks, request));
        std::vector<bool> held(digests.size(), false);
        for (size_t k = 0; k < held.size() && static_cast<int>(k) < found.present_size();
             ++k) {
          held[k] = found.present(static_cast<int>(k));
        }
        return held;
      };
}

namespace {

// PutFileStream over one gRPC PutFile call.
class GrpcPutFileStream : public PutFileStream {
 public:
  explicit GrpcPutFileStream(const Client::Impl& impl) {
    impl.PrepareContext(&ctx_, CallDeadline::kNone);
    writer_ = impl.stub->PutFile(&ctx_, &response_);
  }
  ~GrpcPutFileStream() override {
    if (!finished_) {
      ctx_.TryCancel();
      writer_->Finish().IgnoreError();
    }
  }
  bool Write(const v1::PutFileRequest& message) override {
    return writer_->Write(message);
  }
  absl::StatusOr<v1::PutFileResponse> Finish(bool writes_done) override {
    if (writes_done) writer_->WritesDone();
    finished_ = true;
    RETURN_IF_ERROR(FromGrpcStatus(writer_->Finish()));
    return response_;
  }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  v1::PutFileResponse response_;
  std::unique_ptr<grpc::ClientWriter<v1::PutFileRequest>> writer_;
  bool finished_ = false;
};

}  // namespace

absl::StatusOr<v1::PutFileResponse> Client::SendFile(
    const std::string& upload_id, const std::string& name, const std::string& path,
    const v1::UploadFile* state, bool digest_first, const FindChunksFn& find_chunks,
    bool batch_names, const ProgressFn& progress, PushStats* stats) {
  ASSIGN_OR_RETURN(LocalFile file, LocalFile::OpenForRead(path));
  v1::PutFileRequest::Header header;
  header.set_upload_id(upload_id);
  header.set_name(name);
  // An upload begun without a basename learns it from the first writer's file name.
  if (absl::StatusOr<CheckpointPrefix> local = ParseCheckpointPrefix(path); local.ok()) {
    header.set_basename(local->basename);
  }
  PipelinedSend send;
  send.size = file.size();
  if (state != nullptr) {
    send.size = state->file().size();
    send.offset = state->held_bytes();
    if (file.size() != send.size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "local file '", path, "' has ", file.size(), " bytes but the upload announced ",
          send.size, " for '", name, "'; the file changed since the upload began"));
    }
    send.send_final_digest =
        state->file().chunked_sha256().empty() && state->file().sha256().empty();
  } else if (digest_first || !DigestAfterBytes(file.size())) {
    // An upload begun without files learns this one from its header.
    ASSIGN_OR_RETURN(FileDigest digest, DigestFile(path, HashThreads(1)));
    header.set_size(digest.size);
    header.set_chunked_sha256(digest.chunked_sha256);
    send.size = digest.size;
  } else {
    header.set_size(file.size());
    send.send_final_digest = true;
  }
  send.threads = HashThreads(1);
  send.message_bytes = impl_->options.upload_message_bytes;
  send.find_chunks = find_chunks;
  send.existing_chunks_per_message = batch_names ? kMaxExistingChunksPerMessage : 1;
  send.progress = progress;
  send.stats = stats;
  GrpcPutFileStream stream(*impl_);
  ASSIGN_OR_RETURN(PipelinedSendResult sent,
                   SendFilePipelined(file, header, stream, send));
  return sent.response;
}

absl::StatusOr<v1::Checkpoint> Client::Push(const std::string& model,
                                            const std::string& prefix,
                                            const PushOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  std::error_code ec;
  if (fs::is_directory(prefix, ec)) {
    if (IsSavedModelDirectory(prefix)) return PushSavedModel(model, prefix, options);
    return absl::NotFoundError(absl::StrCat(
        "'", prefix, "' is a directory but not a SavedModel: neither '",
        (fs::path(prefix) / kSavedModelPb).string(), "' nor '",
        (fs::path(prefix) / kSavedModelPbtxt).string(),
        "' exists; give a SavedModel version directory, or a checkpoint prefix such as ",
        (fs::path(prefix) / "model.ckpt-1000").string(),
        " (its .index and .data-* files)"));
  }
  absl::StatusOr<LocalCheckpoint> found = FindLocalCheckpoint(prefix);
  if (found.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat(
        found.status().message(), " (or give a SavedModel version directory, holding ",
        kSavedModelPb, " or ", kSavedModelPbtxt, ")"));
  }
  if (!found.ok()) return found.status();
  LocalCheckpoint& local = *found;
  std::optional<int64_t> step = options.step.has_value() ? options.step : local.step;
  if (!step.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prefix '", prefix, "' has no step (no -<number> at its end); pass --step N"));
  }
  RETURN_IF_ERROR(ValidateStep(*step));
  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(*step);
  begin.set_basename(local.basename);
  return PushFiles(std::move(begin), local.files, options);
}

absl::StatusOr<v1::Checkpoint> Client::PushSavedModel(const std::string& model,
                                                      const std::string& dir,
                                                      const PushOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  ASSIGN_OR_RETURN(LocalSavedModel local, FindLocalSavedModel(dir));
  std::optional<int64_t> step = options.step.has_value() ? options.step : local.version;
  if (!step.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("SavedModel directory '", dir,
                     "' is not named by a version number (as in "
                     "/export/resnet/123); pass --step N"));
  }
  RETURN_IF_ERROR(ValidateStep(*step));
  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(*step);
  begin.set_kind(v1::SAVED_MODEL);
  return PushFiles(std::move(begin), local.files, options);
}

absl::StatusOr<v1::Checkpoint> Client::PushFiles(
    v1::BeginUploadRequest begin, const std::map<std::string, std::string>& local_files,
    const PushOptions& options) {
  PushStats stats;

  begin.set_overwrite(options.overwrite);
  begin.set_force(options.force);
  begin.mutable_metadata()->insert(options.metadata.begin(), options.metadata.end());
  std::vector<std::pair<std::string, std::string>> files(local_files.begin(),
                                                         local_files.end());
  std::vector<int64_t> sizes(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    ASSIGN_OR_RETURN(LocalFile file, LocalFile::OpenForRead(files[i].second));
    sizes[i] = file.size();
  }
  // Which files to digest before BeginUpload, so the server can say it holds them whole:
  // every file when the step exists already (the server then tells identical content,
  // already_committed, or refuses different content before anything is sent), else the
  // files of at most one pipeline window (.index, .meta, small shards): the pipeline
  // would hash all of such a file before sending its first byte anyway, so digesting it
  // first costs no time. The others are announced by size and hashed while they are
  // sent (client/pipelined_upload.h), their digest given at the end.
  absl::StatusOr<v1::Checkpoint> existing = GetCheckpoint(begin.model(), begin.step());
  if (!existing.ok() && existing.status().code() != absl::StatusCode::kNotFound) {
    return existing.status();
  }
  std::vector<bool> digest_first(files.size());
  for (size_t i = 0; i < files.size(); ++i) {
    digest_first[i] = existing.ok() || sizes[i] <= kPipelineWindowBytes;
  }
  // Digests those files, in parallel: the files at once, each file's 1 MiB pieces on its
  // share of the cores.
  auto digest = [&]() -> absl::Status {
    std::vector<size_t> which;
    for (size_t i = 0; i < files.size(); ++i) {
      if (digest_first[i]) which.push_back(i);
    }
    std::vector<absl::StatusOr<FileDigest>> digests(which.size(),
                                                    absl::UnknownError("not hashed"));
    const int per_file = HashThreads(which.size());
    std::vector<std::thread> workers;
    for (size_t j = 0; j < which.size(); ++j) {
      workers.emplace_back(
          [&, j]() { digests[j] = DigestFile(files[which[j]].second, per_file); });
    }
    for (std::thread& t : workers) t.join();
    for (size_t j = 0; j < which.size(); ++j) {
      if (!digests[j].ok()) return digests[j].status();
      if (digests[j]->size != sizes[which[j]]) {
        return absl::FailedPreconditionError(
            absl::StrCat("local file '", files[which[j]].second, "' changed size from ",
                         sizes[which[j]], " to ", digests[j]->size,
                         " bytes while being pushed; push it once it is written"));
      }
      v1::FileInfo* info = begin.mutable_files(static_cast<int>(which[j]));
      info->set_chunked_sha256(digests[j]->chunked_sha256);
    }
    return absl::OkStatus();
  };
  int64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    v1::FileInfo* info = begin.add_files();
    info->set_name(files[i].first);
    info->set_size(sizes[i]);
    total += sizes[i];
  }
  RETURN_IF_ERROR(digest());
  absl::StatusOr<v1::Upload> begun = BeginUpload(begin);
  const bool pipelined =
      std::find(digest_first.begin(), digest_first.end(), false) != digest_first.end();
  if (pipelined && (begun.status().code() == absl::StatusCode::kAlreadyExists ||
                    begun.status().code() == absl::StatusCode::kInvalidArgument)) {
    // The step appeared since GetCheckpoint (the server needs digests to tell identical
    // content), or a server older than final_chunked_sha256 wants every digest up
    // front: announce them all. A request wrong for another reason fails again.
    std::fill(digest_first.begin(), digest_first.end(), true);
    RETURN_IF_ERROR(digest());
    begun = BeginUpload(begin);
  }
  if (!begun.ok()) return begun.status();
  const v1::Upload& upload = *begun;
  int64_t done = 0;
  std::vector<const v1::UploadFile*> to_send;
  for (const v1::UploadFile& f : upload.files()) {
    // Complete: every byte held and a digest known (a file announced without one stays
    // incomplete until its writer gives it).
    const bool has_digest =
        !f.file().chunked_sha256().empty() || !f.file().sha256().empty();
    if (f.held_bytes() == f.file().size() && has_digest) {
      done += f.file().size();
      stats.bytes_deduplicated_files += f.file().size();
    } else {
      to_send.push_back(&f);
    }
  }
  if (options.progress) options.progress(done, total);

  // Chunk-level deduplication, for files the server does not hold whole: the pipeline
  // asks about each window's pieces as soon as they are hashed, when the server's chunks
  // are those pieces (its default 1 MiB). With another chunk size every byte is sent
  // (still one read and one hash pass).
  const FindChunksFn find_chunks =
      options.deduplicate_chunks ? ChunkFinder(upload) : FindChunksFn();

  for (const v1::UploadFile* f : to_send) {
    const int64_t base = done;
    ProgressFn file_progress;
    if (options.progress) {
      file_progress = [&options, base, total](int64_t file_done, int64_t) {
        options.progress(base + file_done, total);
      };
    }
    absl::StatusOr<v1::PutFileResponse> put =
        SendFile(upload.upload_id(), f->file().name(), local_files.at(f->file().name()),
                 f, /*digest_first=*/false, find_chunks, upload.accepts_existing_chunks(),
                 file_progress, &stats);
    if (!put.ok()) {
      // The put's error is the one to report; the server also expires the upload.
      AbortUpload(upload.upload_id()).IgnoreError();
      return put.status();
    }
    done += f->file().size();
  }
  absl::StatusOr<v1::Checkpoint> committed = CommitUpload(upload.upload_id());
  if (!committed.ok() &&
      committed.status().code() == absl::StatusCode::kFailedPrecondition) {
    // Incomplete or refused: the upload cannot be committed; the commit's error is the
    // one to report.
    AbortUpload(upload.upload_id()).IgnoreError();
  }
  if (options.stats != nullptr) *options.stats = stats;
  return committed;
}

}  // namespace mgreg
