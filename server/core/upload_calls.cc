#include "server/core/upload_calls.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/metagraph_io.h"
#include "metagraph/saved_model.h"
#include "metagraph/tensor_bundle.h"
#include "server/core/api_errors.h"
#include "server/core/api_translation.h"
#include "server/core/content_reader.h"
#include "server/core/validation.h"
#include "storage/blob_key.h"
#include "storage/planner.h"

namespace mgreg {

UploadCalls::UploadCalls(Store* store, const RegistryServiceOptions* options,
                         MemoryBudget* memory, SettingsCalls* settings)
    : store_(store),
      options_(options),
      memory_(memory),
      settings_(settings),
      uploads_(store, std::min(options->upload_writer_lease, options->upload_ttl / 2)),
      quota_(options->max_open_uploads, options->max_concurrent_uploads_per_writer),
      reusable_(store) {}

absl::StatusOr<v1::Upload> UploadCalls::BeginUpload(const v1::BeginUploadRequest& request,
                                                    const ContentScope& scope,
                                                    const std::string& writer) {
  RETURN_IF_ERROR(
      quota_.Admit(writer, uploads_.open_count(),
                   [this](absl::string_view id) { return uploads_.Find(id).ok(); }));
  absl::StatusOr<v1::Upload> upload = BeginAdmitted(request, scope);
  quota_.Finish(writer, upload);
  return upload;
}

absl::StatusOr<v1::Upload> UploadCalls::BeginAdmitted(
    const v1::BeginUploadRequest& request, const ContentScope& scope) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  RETURN_IF_ERROR(ValidateStepKind(request));
  // Without files, the basename may come from the first writer (PutFile header).
  if (request.kind() != v1::SAVED_MODEL &&
      (!request.basename().empty() || !request.files().empty())) {
    RETURN_IF_ERROR(ValidateBasename(request.basename()));
    RETURN_IF_ERROR(ValidateRestoredNames(request.basename(), request.step()));
  }
  RETURN_IF_ERROR(ValidateMetadata(request.metadata()));
  if (!request.files().empty()) {
    // Without files the upload learns its manifest from its writers (PutFile headers).
    const std::vector<v1::FileInfo> files(request.files().begin(), request.files().end());
    RETURN_IF_ERROR(
        ValidateFiles(files, absl::StatusCode::kInvalidArgument, request.kind()));
    RETURN_IF_ERROR(CheckUploadSizes(files, options_->max_meta_bytes,
                                     options_->max_upload_bytes, /*learned=*/false));
  }

  bool already_committed = false;
  absl::StatusOr<storage::CheckpointRecord> existing =
      store_->GetCheckpoint(request.model(), request.step());
  if (existing.ok()) {
    ASSIGN_OR_RETURN(
        const Sameness same,
        SameFiles(*existing, request,
                  [this](const storage::FileRecord& f)
                      -> absl::StatusOr<std::optional<storage::BlobRecord>> {
                    absl::StatusOr<storage::BlobRecord> blob =
                        store_->GetBlob(BlobKey(f));
                    if (blob.ok()) return *std::move(blob);
                    if (blob.status().code() == absl::StatusCode::kNotFound) {
                      return std::nullopt;
                    }
                    return blob.status();
                  }));
    already_committed = same == Sameness::kSame;
    // kUnknown (a file announced without a digest): the commit decides, as for a
    // step committed while this upload is open.
    if (same == Sameness::kDifferent) {
      // Refused now rather than after the bytes are sent; Commit checks it again.
      absl::StatusOr<storage::ModelRecord> model = store_->GetModel(request.model());
      if (!model.ok() && model.status().code() != absl::StatusCode::kNotFound) {
        return model.status();
      }
      RETURN_IF_ERROR(planner::CheckReplace(model.value_or(storage::ModelRecord()),
                                            *existing, request.overwrite(),
                                            request.force()));
    }
  } else if (existing.status().code() != absl::StatusCode::kNotFound) {
    return existing.status();
  }

  std::shared_ptr<UploadSession> session =
      uploads_.New(request, scope.everything ? "" : scope.key);
  absl::MutexLock lock(&session->mu);
  for (const v1::FileInfo& f : request.files()) {
    const storage::FileRecord* same_as = nullptr;
    if (already_committed) {
      for (const storage::FileRecord& r : existing->files()) {
        if (r.name() == f.name()) same_as = &r;
      }
    }
    RETURN_IF_ERROR(AddUploadFile(*session, f, same_as, scope));
  }
  RETURN_IF_ERROR(uploads_.Start(session));
  v1::Upload out = Describe(*session);
  out.set_already_committed(already_committed);
  return out;
}

v1::Upload UploadCalls::Describe(const UploadSession& session) const {
  v1::Upload out = session.ToProto();
  out.set_chunk_bytes(static_cast<int64_t>(options_->chunk_bytes));
  out.set_accepts_existing_chunks(true);
  return out;
}

absl::Status UploadCalls::AddUploadFile(UploadSession& session, const v1::FileInfo& f,
                                        const storage::FileRecord* same_as,
                                        const ContentScope& scope) {
  UploadFileState& state = session.files[f.name()];
  const int64_t version = state.version;  // a learned entry replaced keeps its version
  state = UploadFileState();
  state.version = version;
  state.file = FileRecordOf(f);
  if (same_as != nullptr) {
    if (state.file.sha256().empty()) state.file.set_sha256(same_as->sha256());
    if (state.file.chunked_sha256().empty()) {
      state.file.set_chunked_sha256(same_as->chunked_sha256());
    }
  }
  if (f.size() == 0) {
    // Both digests of no bytes are the SHA-256 of no bytes (ValidateFileDigests).
    state.file.set_chunked_sha256(Sha256Hex(""));
    state.complete = true;
    return absl::OkStatus();
  }
  // A file announced without a digest cannot be found in the store: its bytes come,
  // and its writer gives the digest at the end.
  if (state.file.sha256().empty() && state.file.chunked_sha256().empty()) {
    state.announced_without_digest = true;
    return absl::OkStatus();
  }
  // Content the store holds already is not sent again, if the caller may reuse it
  // (otherwise it sends the bytes, as if the store did not hold them: issue 11 item 6).
  const std::string key = BlobKey(state.file);
  absl::StatusOr<storage::BlobRecord> blob = store_->GetBlob(key);
  std::optional<std::string> stored_chunked;
  if (blob.ok()) stored_chunked = BlobChunkedSha256(*blob);
  // Found by one digest, the content must match the other one given too.
  bool reuse = blob.ok() && blob->size() == f.size() &&
               (f.chunked_sha256().empty() || stored_chunked == f.chunked_sha256());
  if (reuse) {
    ASSIGN_OR_RETURN(reuse, reusable_.MayReuseFile(scope, key));
  }
  if (reuse) {
    if (stored_chunked.has_value()) state.file.set_chunked_sha256(*stored_chunked);
    state.complete = true;
    state.already_stored = true;
    state.held = f.size();
  } else if (!blob.ok() && blob.status().code() != absl::StatusCode::kNotFound) {
    return blob.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileSink>> UploadCalls::OpenFileSink(
    const v1::PutFileRequest::Header& header, const ContentScope& scope) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(header.upload_id()));
  {
    absl::MutexLock lock(&session->mu);
    if (!header.basename().empty() && session->request().basename().empty() &&
        session->request().kind() != v1::SAVED_MODEL) {
      RETURN_IF_ERROR(ValidateBasename(header.basename()));
      RETURN_IF_ERROR(
          ValidateRestoredNames(header.basename(), session->request().step()));
      RETURN_IF_ERROR(session->LearnBasename(header.basename()));
    }
    auto it = session->files.find(header.name());
    const bool learning = session->request().files().empty();
    bool relearn = false;
    if (it != session->files.end()) {
      const storage::FileRecord& known = it->second.file;
      // A digest the header gives differs when the entry has one of that kind. For a
      // manifest announced at BeginUpload the sink checks the digests
      // (OpenUploadFileSink).
      const auto digest_differs = [&](const std::string& given,
                                      const std::string& known) {
        return learning && !given.empty() && !known.empty() && given != known;
      };
      const bool differs =
          (header.size() != 0 && header.size() != known.size()) ||
          digest_differs(header.sha256(), known.sha256()) ||
          digest_differs(header.chunked_sha256(), known.chunked_sha256());
      if (differs && learning && !it->second.complete && !it->second.writing) {
        // A learned entry binds nobody until its file is complete: a writer whose
        // stream failed must not lock out the one that sends the real file.
        relearn = true;
      } else if (differs) {
        return absl::InvalidArgumentError(absl::StrCat(
            "file '", header.name(), "': the size ", header.size(),
            " or a digest in the PutFile header differs from the file's entry in the "
            "upload (size ",
            known.size(),
            ", announced at BeginUpload or by its first writer); send that file, or "
            "begin a new upload"));
      }
    }
    if ((it == session->files.end() || relearn) && learning) {
      // An upload begun without files learns each one from its writer: its size, and
      // its digests if the header gives them (else its writer gives the chunked one at
      // the end, PutFileRequest.final_chunked_sha256).
      v1::FileInfo f;
      f.set_name(header.name());
      f.set_size(header.size());
      f.set_sha256(header.sha256());
      f.set_chunked_sha256(header.chunked_sha256());
      RETURN_IF_ERROR(
          ValidateFiles({f}, absl::StatusCode::kOk, session->request().kind()));
      std::vector<v1::FileInfo> all = {f};
      for (const auto& [name, state] : session->files) {
        if (name == header.name()) continue;  // relearned
        v1::FileInfo& known = all.emplace_back();
        known.set_name(name);
        known.set_size(state.file.size());
      }
      RETURN_IF_ERROR(CheckUploadSizes(all, options_->max_meta_bytes,
                                       options_->max_upload_bytes, /*learned=*/true));
      RETURN_IF_ERROR(AddUploadFile(*session, f, nullptr, scope));
      RETURN_IF_ERROR(session->SaveFile(header.name(), "", 0));
    }
  }
  UploadSession* raw = session.get();
  return OpenUploadFileSink(
      std::move(session), header.name(), header.offset(), options_->chunk_bytes, store_,
      uploads_.writer_lease(),
      // The sink holds the session, so `raw` lives as long as the predicate.
      [this, raw, scope](const std::string& sha256_raw) {
        return MayReuseChunk(*raw, scope, sha256_raw);
      },
      GivenDigests{header.sha256(), header.chunked_sha256()});
}

absl::StatusOr<bool> UploadCalls::MayReuseChunk(UploadSession& session,
                                                const ContentScope& scope,
                                                const std::string& sha256_raw) {
  storage::ChunkRef ref;
  ref.set_sha256(sha256_raw);
  ASSIGN_OR_RETURN(bool held, store_->HasChunk(ref));
  if (!held || scope.everything) return held;
  {
    // The upload's own chunks (a file repeating a chunk it already sent).
    absl::MutexLock lock(&session.mu);
    for (const auto& [name, state] : session.files) {
      for (const storage::ChunkRef& c : state.chunks) {
        if (c.sha256() == sha256_raw) return true;
      }
    }
  }
  // The chunks the same principal's other open uploads hold (parallel pushes).
  ASSIGN_OR_RETURN(bool owner_holds, uploads_.OwnerHoldsChunk(scope.key, sha256_raw));
  if (owner_holds) return true;
  return reusable_.MayReuseChunk(scope, sha256_raw);
}

absl::StatusOr<v1::Upload> UploadCalls::GetUpload(const v1::GetUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  absl::MutexLock lock(&session->mu);
  return Describe(*session);
}

absl::Status UploadCalls::ValidateContents(const UploadSession& session,
                                           std::string* graph_sha256) {
  // Reads a file of the upload, from its staged chunks or the store.
  auto read = [&](const UploadFileState& state) -> absl::StatusOr<std::string> {
    const std::string what = absl::StrCat("file '", state.file.name(), "'");
    if (state.already_stored) {
      ASSIGN_OR_RETURN(ContentReader reader,
                       ContentReader::ForBlob(store_, BlobKey(state.file), what));
      return reader.ReadAll();
    }
    return ContentReader(store_, state.chunks, what).ReadAll();
  };
  // The graph's digest as the API gives it (Checkpoint.graph_sha256): the whole-file
  // SHA-256, computed here from the bytes parsed anyway when the writer gave only the
  // chunked one.
  graph_sha256->clear();
  auto note_graph = [graph_sha256](const UploadFileState& state,
                                   absl::string_view bytes) {
    *graph_sha256 = state.file.sha256().empty() ? Sha256Hex(bytes) : state.file.sha256();
  };
  auto annotate = [](absl::string_view file, const absl::Status& s) {
    return absl::Status(s.code(), absl::StrCat("file '", file, "': ", s.message()));
  };
  if (session.request().kind() == v1::SAVED_MODEL) {
    std::map<std::string, int64_t> sizes;
    for (const auto& [name, state] : session.files) sizes[name] = state.file.size();
    std::optional<MemoryReservation> memory;
    return ValidateSavedModelContents(
        sizes, [&](const std::string& name) -> absl::StatusOr<std::string> {
          const UploadFileState& state = session.files.at(name);
          if (name == kSavedModelPb || name == kSavedModelPbtxt) {
            // As for a .meta: the proto is parsed whole; wait a while for memory.
            ASSIGN_OR_RETURN(
                memory,
                memory_->Reserve(
                    RegistryServiceOptions::kValidateMemoryFactor * state.file.size(),
                    absl::StrCat("validating a ", state.file.size(), "-byte ", name),
                    absl::Seconds(30)));
            ASSIGN_OR_RETURN(std::string bytes, read(state));
            note_graph(state, bytes);
            return bytes;
          }
          return read(state);
        });
  }

  std::map<int, int64_t> shard_sizes;
  int num_data_files = 0;
  for (const auto& [name, state] : session.files) {
    if (absl::StartsWith(name, "data-")) {
      ASSIGN_OR_RETURN(DataShard shard, ParseDataFileName(name));
      shard_sizes[shard.shard] = state.file.size();
      ++num_data_files;
    }
  }
  {
    ASSIGN_OR_RETURN(std::string index_bytes, read(session.files.at("index")));
    absl::StatusOr<BundleIndex> index = ReadBundleIndex(index_bytes);
    if (!index.ok()) return annotate("index", index.status());
    if (absl::Status s = ValidateBundle(*index, num_data_files, shard_sizes); !s.ok()) {
      return annotate("index", s);
    }
  }
  if (auto it = session.files.find("meta"); it != session.files.end()) {
    // A commit waits a while for memory rather than fail: the upload's bytes are here.
    ASSIGN_OR_RETURN(
        MemoryReservation memory,
        memory_->Reserve(
            RegistryServiceOptions::kValidateMemoryFactor * it->second.file.size(),
            absl::StrCat("validating a ", it->second.file.size(), "-byte .meta"),
            absl::Seconds(30)));
    ASSIGN_OR_RETURN(std::string meta_bytes, read(it->second));
    note_graph(it->second, meta_bytes);
    absl::StatusOr<tensorflow::MetaGraphDef> graph = ParseMetaGraph(meta_bytes);
    if (!graph.ok()) return annotate("meta", graph.status());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Checkpoint> UploadCalls::CommitUpload(
    const v1::CommitUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  std::string basename;
  {
    absl::MutexLock lock(&session->mu);
    std::vector<std::string> missing;
    for (const auto& [name, state] : session->files) {
      if (!state.complete && state.held == state.file.size() &&
          state.file.sha256().empty() && state.file.chunked_sha256().empty()) {
        missing.push_back(absl::StrCat(
            name, " (every byte held but no digest: send a PutFile of it at offset ",
            state.held, " with final_chunked_sha256, its chunked SHA-256, and no data)"));
      } else if (!state.complete) {
        missing.push_back(
            absl::StrCat(name, " (", state.held, " of ", state.file.size(), " bytes)"));
      } else if (state.writing) {
        missing.push_back(absl::StrCat(name, " (still being written)"));
      }
    }
    if (!missing.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("upload ", session->id(),
                       " is not complete; send: ", absl::StrJoin(missing, ", ")));
    }
    // Whole-file deduplication holds no reference: if the step that held a file was
    // deleted since, that file must be sent after all, and the upload stays open.
    std::vector<std::string> gone;
    for (auto& [name, state] : session->files) {
      if (!state.already_stored) continue;
      absl::StatusOr<storage::BlobRecord> blob = store_->GetBlob(BlobKey(state.file));
      if (blob.ok()) continue;
      if (blob.status().code() != absl::StatusCode::kNotFound) return blob.status();
      state.already_stored = false;
      state.complete = false;
      state.held = 0;
      RETURN_IF_ERROR(session->SaveFile(name, "", 0));
      gone.push_back(name);
    }
    if (!gone.empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload ", session->id(), " is not complete: the server no longer holds ",
          absl::StrJoin(gone, ", "),
          " (the step it came from was deleted meanwhile); send them"));
    }
    std::vector<v1::FileInfo> files;
    for (const auto& [name, state] : session->files) {
      v1::FileInfo& f = files.emplace_back();
      f.set_name(name);
      f.set_size(state.file.size());
      f.set_sha256(state.file.sha256());
      f.set_chunked_sha256(state.file.chunked_sha256());
    }
    RETURN_IF_ERROR(ValidateFiles(files, absl::StatusCode::kFailedPrecondition,
                                  session->request().kind()));
    if (session->basename.empty() && session->request().kind() != v1::SAVED_MODEL) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload ", session->id(),
          " has no basename yet: no writer named its prefix; "
          "put a file with mgreg upload put, or begin the upload with --basename"));
    }
    basename = session->basename;
    // No more writes (on any server): the file states are final from here on. One
    // commit wins; a second finds the upload closed (FAILED_PRECONDITION).
    RETURN_IF_ERROR(session->Close());
  }
  // Whatever happens next, the upload is over; its staged chunks go with it.
  struct Closer {
    UploadManager* uploads;
    std::string id;
    // Best effort: an upload this fails to end expires (its chunks with it).
    ~Closer() { uploads->Remove(id).IgnoreError(); }
  } closer{&uploads_, session->id()};

  const v1::BeginUploadRequest& begin = session->request();
  std::string graph_sha256;
  RETURN_IF_ERROR(ValidateContents(*session, &graph_sha256));

  CommitRequest commit;
  commit.overwrite = begin.overwrite();
  commit.force = begin.force();
  storage::CheckpointRecord& record = commit.record;
  record.set_model(begin.model());
  record.set_step(begin.step());
  record.set_basename(basename);
  const bool saved_model = begin.kind() == v1::SAVED_MODEL;
  if (saved_model) record.set_kind(storage::CheckpointRecord::SAVED_MODEL);
  std::vector<std::string> names;
  for (const auto& [name, state] : session->files) names.push_back(name);
  const std::string graph_file =
      saved_model ? SavedModelProtoName(names).value_or("") : std::string("meta");
  record.mutable_metadata()->insert(begin.metadata().begin(), begin.metadata().end());
  std::set<std::string> new_blob_keys;
  for (const auto& [name, state] : session->files) {  // sorted by name
    *record.add_files() = state.file;
    if (name == graph_file) record.set_graph_sha256(graph_sha256);
    if (state.already_stored || !new_blob_keys.insert(BlobKey(state.file)).second) {
      continue;
    }
    storage::BlobRecord& blob = commit.new_blobs.emplace_back();
    blob.set_sha256(state.file.sha256());
    blob.set_chunked_sha256(state.file.chunked_sha256());
    blob.set_size(state.file.size());
    for (const storage::ChunkRef& ref : state.chunks) *blob.add_chunks() = ref;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<StagingArea> staging, session->Staging());
  ASSIGN_OR_RETURN(CommitResult result, store_->Commit(commit, staging.get()));
  if (!result.unchanged) {
    // Retention never fails a commit: a step it could not delete now is deleted by the
    // next commit's retention, and nothing committed is lost either way.
    settings_->ApplyRetention(begin.model()).IgnoreError();
  }
  return ToApiWithAliases(store_, result.record);
}

absl::Status UploadCalls::AbortUpload(const v1::AbortUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  return uploads_.Remove(session->id());
}

absl::StatusOr<v1::FindChunksResponse> UploadCalls::FindChunks(
    const v1::FindChunksRequest& request, const ContentScope& scope) {
  constexpr int kMaxChunks = 100000;
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  if (request.sha256_size() > kMaxChunks) {
    return absl::InvalidArgumentError(absl::StrCat(
        "FindChunks takes at most ", kMaxChunks, " digests; split the request"));
  }
  v1::FindChunksResponse out;
  for (const std::string& sha : request.sha256()) {
    if (sha.size() != 32) {
      return absl::InvalidArgumentError(
          "FindChunks digests are 32 raw bytes (SHA-256), not hex");
    }
    ASSIGN_OR_RETURN(bool present, MayReuseChunk(*session, scope, sha));
    out.add_present(present);
  }
  return out;
}

std::vector<std::string> UploadCalls::ExpireIdleUploads() {
  return uploads_.TakeIdle(absl::Now() - options_->upload_ttl);
}

absl::StatusOr<std::string> UploadCalls::UploadModel(absl::string_view upload_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session, uploads_.Find(upload_id));
  return session->request().model();
}

}  // namespace mgreg
