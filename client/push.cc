// Client::Push / PushSavedModel and the upload they run: find the local files of a prefix
// or a SavedModel directory, digest them, let the server say what it holds (whole files,
// then chunks), send the rest, commit.
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
#include "client/saved_model_dir.h"
#include "common/names.h"
#include "common/status_macros.h"
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
  return PutFileChunks(upload_id, name, path, {}, 0, progress, nullptr);
}

absl::StatusOr<v1::PutFileResponse> Client::PutFileChunks(
    const std::string& upload_id, const std::string& name, const std::string& path,
    const std::vector<std::string>& chunks, int64_t chunk_bytes,
    const ProgressFn& progress, PushStats* stats) {
  ASSIGN_OR_RETURN(v1::Upload upload, GetUpload(upload_id));
  const v1::UploadFile* state = nullptr;
  for (const v1::UploadFile& f : upload.files()) {
    if (f.file().name() == name) state = &f;
  }
  ASSIGN_OR_RETURN(LocalFile file, LocalFile::OpenForRead(path));
  v1::PutFileRequest message;
  message.mutable_header()->set_upload_id(upload_id);
  message.mutable_header()->set_name(name);
  // An upload begun without a basename learns it from the first writer's file name.
  if (absl::StatusOr<CheckpointPrefix> local = ParseCheckpointPrefix(path); local.ok()) {
    message.mutable_header()->set_basename(local->basename);
  }
  int64_t size = file.size();
  int64_t offset = 0;
  if (state != nullptr) {
    size = state->file().size();
    offset = state->held_bytes();
    if (file.size() != size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "local file '", path, "' has ", file.size(), " bytes but the upload announced ",
          size, " for '", name, "'; the file changed since the upload began"));
    }
  } else {
    // An upload begun without files learns this one from its header.
    ASSIGN_OR_RETURN(FileDigest digest, DigestFile(path, HashThreads(1)));
    message.mutable_header()->set_size(digest.size);
    message.mutable_header()->set_chunked_sha256(digest.chunked_sha256);
  }
  message.mutable_header()->set_offset(offset);
  grpc::ClientContext ctx;
  impl_->PrepareContext(&ctx, CallDeadline::kNone);
  v1::PutFileResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::PutFileRequest>> writer =
      impl_->stub->PutFile(&ctx, &response);
  const int64_t message_bytes = static_cast<int64_t>(impl_->options.upload_message_bytes);
  int64_t pos = offset;
  std::string buffer;
  bool stream_ok = true;
  do {
    const int64_t chunk =
        chunk_bytes > 0 && pos % chunk_bytes == 0 ? pos / chunk_bytes : -1;
    if (chunk >= 0 && chunk < static_cast<int64_t>(chunks.size()) &&
        !chunks[static_cast<size_t>(chunk)].empty()) {
      // The server holds this chunk: name it instead of sending it.
      const int64_t n = std::min(chunk_bytes, size - pos);
      message.clear_data();
      message.set_existing_chunk(chunks[static_cast<size_t>(chunk)]);
      if (!writer->Write(message)) {
        stream_ok = false;
        break;
      }
      message.clear_existing_chunk();
      pos += n;
      if (stats != nullptr) stats->bytes_deduplicated_chunks += n;
    } else {
      // Bytes, never across a chunk boundary when chunks are named, so the next
      // existing chunk starts a message.
      int64_t want = std::min(size - pos, message_bytes);
      if (chunk_bytes > 0 && !chunks.empty()) {
        want = std::min(want, chunk_bytes - pos % chunk_bytes);
      }
      RETURN_IF_ERROR(file.ReadAt(pos, static_cast<size_t>(want), &buffer));
      message.set_data(std::move(buffer));
      buffer = std::string();
      if (!writer->Write(message)) {
        stream_ok = false;  // the server ended the call; Finish tells why
        break;
      }
      pos += want;
      if (stats != nullptr) stats->bytes_sent += want;
    }
    message.clear_header();
    if (progress) progress(pos, size);
  } while (pos < size);
  if (stream_ok) writer->WritesDone();
  RETURN_IF_ERROR(FromGrpcStatus(writer->Finish()));
  return response;
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
  // Digest every file first (in parallel: the files at once, each file's 1 MiB pieces on
  // its share of the cores), so the server can skip what it holds. The chunked digest
  // comes from the piece digests: one SHA-256 pass, and no other when the server's
  // chunks are those pieces (FindChunks below).
  std::vector<std::pair<std::string, std::string>> files(local_files.begin(),
                                                         local_files.end());
  std::vector<absl::StatusOr<FileDigest>> digests(files.size(),
                                                  absl::UnknownError("not hashed"));
  {
    const int per_file = HashThreads(files.size());
    std::vector<std::thread> workers;
    for (size_t i = 0; i < files.size(); ++i) {
      workers.emplace_back(
          [&, i]() { digests[i] = DigestFile(files[i].second, per_file); });
    }
    for (std::thread& t : workers) t.join();
  }
  int64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!digests[i].ok()) return digests[i].status();
    v1::FileInfo* info = begin.add_files();
    info->set_name(files[i].first);
    info->set_size(digests[i]->size);
    info->set_chunked_sha256(digests[i]->chunked_sha256);
    total += digests[i]->size;
  }
  // The pieces of each file, by name (for chunks of the pieces' size).
  std::map<std::string, const std::vector<std::string>*> pieces;
  for (size_t i = 0; i < files.size(); ++i) pieces[files[i].first] = &digests[i]->pieces;

  ASSIGN_OR_RETURN(v1::Upload upload, BeginUpload(begin));
  int64_t done = 0;
  std::vector<const v1::UploadFile*> to_send;
  for (const v1::UploadFile& f : upload.files()) {
    if (f.held_bytes() == f.file().size()) {
      done += f.file().size();
      stats.bytes_deduplicated_files += f.file().size();
    } else {
      to_send.push_back(&f);
    }
  }
  if (options.progress) options.progress(done, total);

  // Chunk-level deduplication, for files the server does not hold whole. A sample
  // (every 16th chunk) is asked about first; only if the server holds some of it are all
  // chunks asked about. With the server's default 1 MiB chunks their digests are the
  // pieces' already computed; with another chunk size hashing every chunk costs a
  // second read and SHA-256 of the file (spread over every core).
  std::vector<std::vector<std::string>> held_chunks(to_send.size());
  const int64_t chunk_bytes = upload.chunk_bytes();
  if (options.deduplicate_chunks && chunk_bytes > 0) {
    std::vector<size_t> candidates;
    for (size_t i = 0; i < to_send.size(); ++i) {
      if (to_send[i]->held_bytes() == 0 && to_send[i]->file().size() >= 2 * chunk_bytes) {
        candidates.push_back(i);
      }
    }
    // Which of `digests` (empty = not hashed) the server holds, by index.
    auto find = [&](const std::vector<std::string>& digests)
        -> absl::StatusOr<std::vector<std::string>> {
      v1::FindChunksRequest request;
      request.set_upload_id(upload.upload_id());
      std::vector<size_t> asked;
      for (size_t c = 0; c < digests.size(); ++c) {
        if (digests[c].empty()) continue;
        request.add_sha256(digests[c]);
        asked.push_back(c);
      }
      ASSIGN_OR_RETURN(const v1::FindChunksResponse found,
                       impl_->Call(&v1::Registry::Stub::FindChunks, request));
      std::vector<std::string> held(digests.size());
      for (size_t k = 0; k < asked.size() && static_cast<int>(k) < found.present_size();
           ++k) {
        if (found.present(static_cast<int>(k))) held[asked[k]] = digests[asked[k]];
      }
      return held;
    };
    // Hashes the candidates' chunks (every `stride`-th) in parallel: the files at once,
    // and each file's chunks on its share of the machine's cores.
    auto digest_all = [&](int64_t stride) {
      std::vector<absl::StatusOr<std::vector<std::string>>> out(
          to_send.size(), absl::UnknownError("not hashed"));
      if (chunk_bytes == kDigestPieceBytes) {
        for (size_t i : candidates) {
          std::vector<std::string> chunks = *pieces.at(to_send[i]->file().name());
          for (size_t c = 0; c < chunks.size(); ++c) {
            if (c % static_cast<size_t>(stride) != 0) chunks[c].clear();
          }
          out[i] = std::move(chunks);
        }
        return out;
      }
      const int per_file = HashThreads(candidates.size());
      std::vector<std::thread> workers;
      for (size_t i : candidates) {
        workers.emplace_back([&, i]() {
          out[i] = ChunkDigests(local_files.at(to_send[i]->file().name()), chunk_bytes,
                                stride, per_file);
        });
      }
      for (std::thread& t : workers) t.join();
      return out;
    };
    std::vector<size_t> promising;
    if (!candidates.empty()) {
      auto samples = digest_all(16);
      for (size_t i : candidates) {
        if (!samples[i].ok()) return samples[i].status();
        ASSIGN_OR_RETURN(std::vector<std::string> held, find(*samples[i]));
        for (const std::string& h : held) {
          if (!h.empty()) {
            promising.push_back(i);
            break;
          }
        }
      }
    }
    candidates = promising;
    if (!candidates.empty()) {
      auto digests = digest_all(1);
      for (size_t i : candidates) {
        if (!digests[i].ok()) return digests[i].status();
        ASSIGN_OR_RETURN(held_chunks[i], find(*digests[i]));
      }
    }
  }

  for (size_t i = 0; i < to_send.size(); ++i) {
    const v1::UploadFile& f = *to_send[i];
    const int64_t base = done;
    ProgressFn file_progress;
    if (options.progress) {
      file_progress = [&options, base, total](int64_t file_done, int64_t) {
        options.progress(base + file_done, total);
      };
    }
    absl::StatusOr<v1::PutFileResponse> put = PutFileChunks(
        upload.upload_id(), f.file().name(), local_files.at(f.file().name()),
        held_chunks[i], chunk_bytes, file_progress, &stats);
    if (!put.ok()) {
      // The put's error is the one to report; the server also expires the upload.
      AbortUpload(upload.upload_id()).IgnoreError();
      return put.status();
    }
    done += f.file().size();
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
