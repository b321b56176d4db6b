#include "server/core/registry_service.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "server/core/api_errors.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/export.h"
#include "metagraph/export_options.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/collection_kinds.h"
#include "metagraph/collection_view.h"
#include "metagraph/metagraph_io.h"
#include "metagraph/relative_path.h"
#include "metagraph/retention.h"
#include "metagraph/saved_model.h"
#include "metagraph/tensor_bundle.h"
#include "metagraph/tensor_verify.h"
#include "storage/planner.h"

namespace mgreg {
namespace {

bool IsSavedModel(const storage::CheckpointRecord& record) {
  return record.kind() == storage::CheckpointRecord::SAVED_MODEL;
}

constexpr int kDefaultPageSize = 100;
constexpr int kMaxPageSize = 1000;

// The one translation from storage records to API messages.
v1::Checkpoint ToApi(const storage::CheckpointRecord& record) {
  v1::Checkpoint out;
  out.set_model(record.model());
  out.set_step(record.step());
  out.set_basename(record.basename());
  int64_t total = 0;
  for (const storage::FileRecord& f : record.files()) {
    v1::FileInfo* info = out.add_files();
    info->set_name(f.name());
    info->set_size(f.size());
    info->set_sha256(f.sha256());
    total += f.size();
  }
  out.mutable_commit_time()->set_seconds(record.commit_time_micros() / 1000000);
  out.mutable_commit_time()->set_nanos(
      static_cast<int32_t>(record.commit_time_micros() % 1000000) * 1000);
  out.mutable_metadata()->insert(record.metadata().begin(), record.metadata().end());
  out.set_graph_sha256(record.graph_sha256());
  out.set_revision(record.revision());
  out.set_total_bytes(total);
  out.set_pinned(record.pinned());
  out.set_preserved(record.preserved());
  out.set_kind(IsSavedModel(record) ? v1::SAVED_MODEL : v1::CHECKPOINT);
  return out;
}

absl::Status ValidateBasename(absl::string_view basename) {
  if (basename.empty()) {
    return absl::InvalidArgumentError(
        "basename is empty; give the checkpoint prefix's basename without its step, "
        "e.g. 'model.ckpt'");
  }
  if (basename.size() > 255 || basename == "." || basename == ".." ||
      basename == "checkpoint") {
    return absl::InvalidArgumentError(
        absl::StrCat("basename '", absl::CEscape(basename), "' cannot name a file"));
  }
  for (char c : basename) {
    if (c == '/' || c == '\0' || static_cast<unsigned char>(c) < 0x20) {
      return absl::InvalidArgumentError(absl::StrCat(
          "basename '", absl::CEscape(basename),
          "' contains '/' or a control character; give only the file name part, e.g. "
          "'model.ckpt'"));
    }
  }
  return absl::OkStatus();
}

// The longest file name a checkpoint can hold ("data-NNNNN-of-MMMMM").
constexpr size_t kLongestFileName = 19;
// What a restore adds to a file's name while writing it: the client writes
// ".<name>.mgreg-XXXXXX" and renames it into place (client/local_file.cc).
constexpr size_t kRestoreTempDecoration = 14;
// NAME_MAX of Linux file systems (ext4, xfs, btrfs, tmpfs).
constexpr size_t kMaxFileNameBytes = 255;

// Every file a restore writes, `<basename>-<step>.<file>` while being written under its
// temporary name, must fit kMaxFileNameBytes.
absl::Status ValidateRestoredNames(absl::string_view basename, int64_t step) {
  const size_t length = basename.size() + 1 + absl::StrCat(step).size() + 1 +
                        kLongestFileName + kRestoreTempDecoration;
  if (length > kMaxFileNameBytes) {
    return api_errors::RestoredNameTooLong(basename, step, "data-NNNNN-of-MMMMM", length,
                                           kMaxFileNameBytes);
  }
  return absl::OkStatus();
}

// User metadata stays small: it is in every listing of the model's steps.
absl::Status ValidateMetadata(const google::protobuf::Map<std::string, std::string>& m) {
  constexpr int64_t kMaxEntries = 64, kMaxKeyBytes = 256, kMaxBytes = 64 << 10;
  int64_t bytes = 0;
  bool key_too_long = false;
  for (const auto& [key, value] : m) {
    bytes += static_cast<int64_t>(key.size() + value.size());
    key_too_long = key_too_long || static_cast<int64_t>(key.size()) > kMaxKeyBytes;
  }
  if (static_cast<int64_t>(m.size()) > kMaxEntries || bytes > kMaxBytes || key_too_long) {
    return api_errors::MetadataTooLarge(static_cast<int64_t>(m.size()), bytes);
  }
  return absl::OkStatus();
}

// The server's size limits on an upload's files (all of them, announced or learned so
// far): the .meta's size and the total. `learned`: the last file came from a PutFile
// header.
absl::Status CheckUploadSizes(const std::vector<v1::FileInfo>& files,
                              const RegistryServiceOptions& options, bool learned) {
  int64_t total = 0;
  for (const v1::FileInfo& f : files) {
    if (f.size() < 0) continue;  // ValidateFiles names it
    if (__builtin_add_overflow(total, f.size(), &total)) {
      return api_errors::UploadSizesOverflow();
    }
    const bool graph_file =
        f.name() == "meta" || f.name() == kSavedModelPb || f.name() == kSavedModelPbtxt;
    if (graph_file && options.max_meta_bytes > 0 &&
        f.size() > options.max_meta_bytes) {
      return api_errors::MetaTooLarge(f.size(), options.max_meta_bytes);
    }
  }
  if (options.max_upload_bytes > 0 && total > options.max_upload_bytes) {
    return api_errors::UploadTooLarge(total, options.max_upload_bytes, learned);
  }
  return absl::OkStatus();
}

// Checks a step's files: names, sizes and digests (INVALID_ARGUMENT), then that an
// index and every data shard are there (`missing_code`: INVALID_ARGUMENT for a manifest
// announced at BeginUpload, FAILED_PRECONDITION at the commit of an upload that learned
// its files from its writers). SavedModel steps: ValidateSavedModelNames.
absl::Status ValidateFiles(const std::vector<v1::FileInfo>& files,
                           absl::StatusCode missing_code, v1::StepKind kind) {
  const bool saved_model = kind == v1::SAVED_MODEL;
  std::set<std::string> names;
  int num_shards = -1;
  std::set<int> shards;
  for (const v1::FileInfo& f : files) {
    if (saved_model) {
      RETURN_IF_ERROR(ValidateRelativePath(f.name(), "a SavedModel file name"));
    } else {
      RETURN_IF_ERROR(ValidateFileName(f.name()));
    }
    if (!names.insert(f.name()).second) {
      return absl::InvalidArgumentError(
          absl::StrCat("file '", f.name(), "' is announced twice"));
    }
    if (f.size() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("file '", f.name(), "' has a negative size ", f.size()));
    }
    if (!IsSha256Hex(f.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file '", f.name(), "': sha256 '", absl::CEscape(f.sha256()),
          "' is not 64 lower-case hex characters"));
    }
    if (f.size() == 0 && f.sha256() != Sha256Hex("")) {
      return absl::InvalidArgumentError(absl::StrCat(
          "file '", f.name(), "' is empty but its sha256 is not that of no bytes"));
    }
    if (!saved_model && absl::StartsWith(f.name(), "data-")) {
      ASSIGN_OR_RETURN(DataShard shard, ParseDataFileName(f.name()));
      if (num_shards >= 0 && shard.num_shards != num_shards) {
        return absl::InvalidArgumentError(absl::StrCat(
            "data files disagree on the shard count: '", f.name(), "' says ",
            shard.num_shards, ", another says ", num_shards));
      }
      num_shards = shard.num_shards;
      shards.insert(shard.shard);
    }
  }
  if (saved_model) {
    return ValidateSavedModelNames(std::vector<std::string>(names.begin(), names.end()),
                                   missing_code);
  }
  std::vector<std::string> missing;
  if (names.count("index") == 0) missing.push_back("index");
  if (num_shards < 0) missing.push_back("data-NNNNN-of-MMMMM");
  for (int i = 0; i < num_shards; ++i) {
    if (shards.count(i) == 0) missing.push_back(DataFileName(i, num_shards));
  }
  if (!missing.empty()) {
    return absl::Status(
        missing_code,
        absl::StrCat("the checkpoint is missing ", absl::StrJoin(missing, ", "),
                     "; a TensorFlow checkpoint needs its <prefix>.index and every "
                     "<prefix>.data-NNNNN-of-MMMMM shard: upload them"));
  }
  return absl::OkStatus();
}

// A step kind the server knows; a SavedModel upload names no basename.
absl::Status ValidateStepKind(const v1::BeginUploadRequest& request) {
  if (request.kind() != v1::STEP_KIND_UNSPECIFIED && request.kind() != v1::CHECKPOINT &&
      request.kind() != v1::SAVED_MODEL) {
    return absl::InvalidArgumentError(absl::StrCat(
        "step kind ", request.kind(), " is unknown; use CHECKPOINT or SAVED_MODEL"));
  }
  if (request.kind() == v1::SAVED_MODEL && !request.basename().empty()) {
    return absl::InvalidArgumentError(
        "a SavedModel upload has no basename (its files are named by their paths in the "
        "version directory); leave basename empty");
  }
  return absl::OkStatus();
}

bool SameFiles(const storage::CheckpointRecord& record,
               const v1::BeginUploadRequest& request) {
  if (record.basename() != request.basename()) return false;
  std::map<std::string, std::pair<int64_t, std::string>> want;
  for (const v1::FileInfo& f : request.files()) want[f.name()] = {f.size(), f.sha256()};
  if (want.size() != static_cast<size_t>(record.files_size())) return false;
  for (const storage::FileRecord& f : record.files()) {
    auto it = want.find(f.name());
    if (it == want.end() || it->second != std::make_pair(f.size(), f.sha256())) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<int> PageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", requested, " is negative; use 0 for the default"));
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min<int>(requested, kMaxPageSize);
}

// Page tokens are opaque to callers: "<listing>\n<model>\n<last item>", base64url.
std::string EncodePageToken(absl::string_view listing, absl::string_view model,
                            absl::string_view last) {
  return absl::WebSafeBase64Escape(absl::StrCat(listing, "\n", model, "\n", last));
}

// Returns the last item of the previous page, checking the token came from the same
// listing.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view listing,
                                            absl::string_view model) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) {
    return absl::InvalidArgumentError(
        "page_token is malformed; pass next_page_token from the previous response");
  }
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('\n', 2));
  if (parts.size() != 3) {
    return absl::InvalidArgumentError(
        "page_token is malformed; pass next_page_token from the previous response");
  }
  if (parts[0] != listing || parts[1] != model) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token belongs to another listing; pass next_page_token from the previous ",
        listing, model.empty() ? "" : absl::StrCat(" of model '", model, "'"),
        " response"));
  }
  return parts[2];
}

bool IsDefault(const v1::GraphOptions& o) {
  return o.ByteSizeLong() == 0;
}

// Streams a committed blob chunk by chunk, from an offset.
class BlobSource : public MessageSource<v1::FileChunk> {
 public:
  BlobSource(Store* store, storage::BlobRecord blob, v1::FileInfo info, int64_t offset)
      : store_(store), blob_(std::move(blob)), info_(std::move(info)), offset_(offset) {
    // Skip the chunks before the offset.
    while (next_chunk_ < blob_.chunks_size() &&
           chunk_start_ + blob_.chunks(next_chunk_).size() <= static_cast<uint64_t>(offset_)) {
      chunk_start_ += blob_.chunks(next_chunk_).size();
      ++next_chunk_;
    }
  }

  absl::StatusOr<bool> Next(v1::FileChunk* out) override {
    out->Clear();
    if (!sent_info_) {
      sent_info_ = true;
      *out->mutable_file() = info_;
      out->set_offset(offset_);
      if (next_chunk_ >= blob_.chunks_size()) return true;
    } else if (next_chunk_ >= blob_.chunks_size()) {
      return false;
    }
    const storage::ChunkRef& ref = blob_.chunks(next_chunk_);
    ASSIGN_OR_RETURN(std::string data, store_->ReadChunk(ref));
    if (data.size() != ref.size()) {
      return absl::DataLossError(absl::StrCat("a chunk of file '", info_.name(),
                                              "' has the wrong size in the store"));
    }
    const int64_t skip = offset_ - chunk_start_;
    if (skip > 0) data.erase(0, static_cast<size_t>(skip));
    out->set_offset(offset_);
    *out->mutable_data() = std::move(data);
    offset_ = chunk_start_ + ref.size();
    chunk_start_ = offset_;
    ++next_chunk_;
    return true;
  }

 private:
  Store* const store_;
  const storage::BlobRecord blob_;
  const v1::FileInfo info_;
  int64_t offset_;
  int64_t chunk_start_ = 0;
  int next_chunk_ = 0;
  bool sent_info_ = false;
};

// Streams a graph held in memory (an export) or a stored blob (verbatim).
class GraphSource : public MessageSource<v1::MetaGraphChunk> {
 public:
  // `memory` covers `exported` for as long as the stream holds it.
  GraphSource(v1::MetaGraphInfo info, std::shared_ptr<const CachedExport> exported,
              std::unique_ptr<BlobSource> verbatim, size_t chunk_bytes,
              MemoryReservation memory = MemoryReservation())
      : info_(std::move(info)),
        exported_(std::move(exported)),
        verbatim_(std::move(verbatim)),
        chunk_bytes_(chunk_bytes),
        memory_(std::move(memory)) {}

  absl::StatusOr<bool> Next(v1::MetaGraphChunk* out) override {
    out->Clear();
    if (verbatim_ != nullptr) {
      v1::FileChunk chunk;
      ASSIGN_OR_RETURN(bool more, verbatim_->Next(&chunk));
      if (!more) return false;
      *out->mutable_data() = std::move(*chunk.mutable_data());
    } else {
      if (sent_info_ && pos_ >= exported_->bytes.size()) return false;
      const size_t n = std::min(chunk_bytes_, exported_->bytes.size() - pos_);
      out->set_data(exported_->bytes.data() + pos_, n);
      pos_ += n;
    }
    if (!sent_info_) {
      sent_info_ = true;
      *out->mutable_info() = info_;
    }
    return true;
  }

 private:
  const v1::MetaGraphInfo info_;
  const std::shared_ptr<const CachedExport> exported_;
  const std::unique_ptr<BlobSource> verbatim_;
  const size_t chunk_bytes_;
  const MemoryReservation memory_;
  size_t pos_ = 0;
  bool sent_info_ = false;
};

}  // namespace

RegistryService::RegistryService(Store* store, RegistryServiceOptions options)
    : store_(store),
      options_(options),
      uploads_(store, std::min(options.upload_writer_lease, options.upload_ttl / 2)),
      export_cache_(options.export_cache_bytes),
      memory_budget_(options.memory_budget_bytes, "limits.memory_budget_bytes"),
      watch_hub_(store),
      reusable_(store) {}

RegistryService::~RegistryService() = default;

absl::StatusOr<v1::Upload> RegistryService::BeginUpload(
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
    RETURN_IF_ERROR(CheckUploadSizes(files, options_, /*learned=*/false));
  }

  bool already_committed = false;
  absl::StatusOr<storage::CheckpointRecord> existing =
      store_->GetCheckpoint(request.model(), request.step());
  if (existing.ok()) {
    already_committed = SameFiles(*existing, request);
    if (!already_committed) {
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
    RETURN_IF_ERROR(AddUploadFile(*session, f, scope));
  }
  RETURN_IF_ERROR(uploads_.Start(session));
  v1::Upload out = session->ToProto();
  out.set_already_committed(already_committed);
  out.set_chunk_bytes(static_cast<int64_t>(options_.chunk_bytes));
  return out;
}

absl::Status RegistryService::AddUploadFile(UploadSession& session, const v1::FileInfo& f,
                                            const ContentScope& scope) {
  UploadFileState& state = session.files[f.name()];
  const int64_t version = state.version;  // a learned entry replaced keeps its version
  state = UploadFileState();
  state.version = version;
  state.file.set_name(f.name());
  state.file.set_size(f.size());
  state.file.set_sha256(f.sha256());
  if (f.size() == 0) {
    state.complete = true;
    return absl::OkStatus();
  }
  // Content the store holds already is not sent again, if the caller may reuse it
  // (otherwise it sends the bytes, as if the store did not hold them: issue 11 item 6).
  absl::StatusOr<storage::BlobRecord> blob = store_->GetBlob(f.sha256());
  bool reuse = blob.ok() && blob->size() == f.size();
  if (reuse) {
    ASSIGN_OR_RETURN(reuse, reusable_.MayReuseFile(scope, f.sha256()));
  }
  if (reuse) {
    state.complete = true;
    state.already_stored = true;
    state.held = f.size();
  } else if (!blob.ok() && blob.status().code() != absl::StatusCode::kNotFound) {
    return blob.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FileSink>> RegistryService::OpenFileSink(
    const v1::PutFileRequest::Header& header, const ContentScope& scope) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(header.upload_id()));
  {
    absl::MutexLock lock(&session->mu);
    if (!header.basename().empty() && session->request().basename().empty() &&
        session->request().kind() != v1::SAVED_MODEL) {
      RETURN_IF_ERROR(ValidateBasename(header.basename()));
      RETURN_IF_ERROR(ValidateRestoredNames(header.basename(), session->request().step()));
      RETURN_IF_ERROR(session->LearnBasename(header.basename()));
    }
    auto it = session->files.find(header.name());
    bool relearn = false;
    if (it != session->files.end()) {
      const storage::FileRecord& known = it->second.file;
      const bool differs = (header.size() != 0 && header.size() != known.size()) ||
                           (!header.sha256().empty() && header.sha256() != known.sha256());
      if (differs && session->request().files().empty() && !it->second.complete &&
          !it->second.writing) {
        // A learned entry binds nobody until its file is complete: a writer whose
        // stream failed must not lock out the one that sends the real file.
        relearn = true;
      } else if (differs) {
        return absl::InvalidArgumentError(absl::StrCat(
            "file '", header.name(), "': the size or SHA-256 in the PutFile header differs "
            "from the manifest announced at BeginUpload"));
      }
    }
    if ((it == session->files.end() || relearn) && session->request().files().empty()) {
      // An upload begun without files learns each one from its writer.
      v1::FileInfo f;
      f.set_name(header.name());
      f.set_size(header.size());
      f.set_sha256(header.sha256());
      if (!IsSha256Hex(f.sha256())) {
        return absl::InvalidArgumentError(absl::StrCat(
            "file '", header.name(), "' is not in the upload's manifest yet: give its size "
            "and sha256 (64 lower-case hex) in the PutFile header"));
      }
      RETURN_IF_ERROR(ValidateFiles({f}, absl::StatusCode::kOk, session->request().kind()));
      std::vector<v1::FileInfo> all = {f};
      for (const auto& [name, state] : session->files) {
        if (name == header.name()) continue;  // relearned
        v1::FileInfo& known = all.emplace_back();
        known.set_name(name);
        known.set_size(state.file.size());
      }
      RETURN_IF_ERROR(CheckUploadSizes(all, options_, /*learned=*/true));
      RETURN_IF_ERROR(AddUploadFile(*session, f, scope));
      RETURN_IF_ERROR(session->SaveFile(header.name(), "", 0));
    }
  }
  UploadSession* raw = session.get();
  return OpenUploadFileSink(
      std::move(session), header.name(), header.offset(), options_.chunk_bytes, store_,
      uploads_.writer_lease(),
      // The sink holds the session, so `raw` lives as long as the predicate.
      [this, raw, scope](const std::string& sha256_raw) {
        return MayReuseChunk(*raw, scope, sha256_raw);
      });
}

absl::StatusOr<bool> RegistryService::MayReuseChunk(UploadSession& session,
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

absl::StatusOr<v1::Upload> RegistryService::GetUpload(const v1::GetUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  absl::MutexLock lock(&session->mu);
  return session->ToProto();
}

absl::StatusOr<std::string> RegistryService::ReadBlob(absl::string_view sha256_hex) {
  ASSIGN_OR_RETURN(storage::BlobRecord blob, store_->GetBlob(sha256_hex));
  std::string out;
  out.reserve(static_cast<size_t>(blob.size()));
  for (const storage::ChunkRef& ref : blob.chunks()) {
    ASSIGN_OR_RETURN(std::string data, store_->ReadChunk(ref));
    out += data;
  }
  return out;
}

absl::Status RegistryService::ValidateCheckpointFiles(const UploadSession& session) {
  // Reads a file of the upload, from its staged chunks or the store.
  auto read = [&](const UploadFileState& state) -> absl::StatusOr<std::string> {
    if (state.already_stored) return ReadBlob(state.file.sha256());
    std::string out;
    out.reserve(static_cast<size_t>(state.file.size()));
    for (const storage::ChunkRef& ref : state.chunks) {
      ASSIGN_OR_RETURN(std::string data, store_->ReadChunk(ref));
      out += data;
    }
    return out;
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
                memory, memory_budget_.Reserve(
                            RegistryServiceOptions::kValidateMemoryFactor * state.file.size(),
                            absl::StrCat("validating a ", state.file.size(), "-byte ", name),
                            absl::Seconds(30)));
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
        memory_budget_.Reserve(
            RegistryServiceOptions::kValidateMemoryFactor * it->second.file.size(),
            absl::StrCat("validating a ", it->second.file.size(), "-byte .meta"),
            absl::Seconds(30)));
    ASSIGN_OR_RETURN(std::string meta_bytes, read(it->second));
    absl::StatusOr<tensorflow::MetaGraphDef> graph = ParseMetaGraph(meta_bytes);
    if (!graph.ok()) return annotate("meta", graph.status());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Checkpoint> RegistryService::CommitUpload(
    const v1::CommitUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  std::string basename;
  {
    absl::MutexLock lock(&session->mu);
    std::vector<std::string> missing;
    for (const auto& [name, state] : session->files) {
      if (!state.complete) {
        missing.push_back(absl::StrCat(name, " (", state.held, " of ", state.file.size(),
                                       " bytes)"));
      } else if (state.writing) {
        missing.push_back(absl::StrCat(name, " (still being written)"));
      }
    }
    if (!missing.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("upload ", session->id(), " is not complete; send: ",
                       absl::StrJoin(missing, ", ")));
    }
    // Whole-file deduplication holds no reference: if the step that held a file was
    // deleted since, that file must be sent after all, and the upload stays open.
    std::vector<std::string> gone;
    for (auto& [name, state] : session->files) {
      if (!state.already_stored) continue;
      absl::StatusOr<storage::BlobRecord> blob = store_->GetBlob(state.file.sha256());
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
    }
    RETURN_IF_ERROR(ValidateFiles(files, absl::StatusCode::kFailedPrecondition,
                                  session->request().kind()));
    if (session->basename.empty() && session->request().kind() != v1::SAVED_MODEL) {
      return absl::FailedPreconditionError(absl::StrCat(
          "upload ", session->id(), " has no basename yet: no writer named its prefix; "
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
  RETURN_IF_ERROR(ValidateCheckpointFiles(*session));

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
  std::set<std::string> new_blob_digests;
  for (const auto& [name, state] : session->files) {  // sorted by name
    *record.add_files() = state.file;
    if (name == graph_file) record.set_graph_sha256(state.file.sha256());
    if (state.already_stored ||
        !new_blob_digests.insert(state.file.sha256()).second) {
      continue;
    }
    storage::BlobRecord& blob = commit.new_blobs.emplace_back();
    blob.set_sha256(state.file.sha256());
    blob.set_size(state.file.size());
    for (const storage::ChunkRef& ref : state.chunks) *blob.add_chunks() = ref;
  }
  ASSIGN_OR_RETURN(std::shared_ptr<StagingArea> staging, session->Staging());
  ASSIGN_OR_RETURN(CommitResult result, store_->Commit(commit, staging.get()));
  if (!result.unchanged) {
    // Retention never fails a commit: a step it could not delete now is deleted by the
    // next commit's retention, and nothing committed is lost either way.
    absl::Status retention = ApplyRetention(begin.model());
    (void)retention;
  }
  return ToApiWithAliases(result.record);
}

absl::Status RegistryService::AbortUpload(const v1::AbortUploadRequest& request) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session,
                   uploads_.Find(request.upload_id()));
  return uploads_.Remove(session->id());
}

std::vector<std::string> RegistryService::ExpireIdleUploads() {
  return uploads_.TakeIdle(absl::Now() - options_.upload_ttl);
}

absl::StatusOr<std::string> RegistryService::UploadModel(absl::string_view upload_id) {
  ASSIGN_OR_RETURN(std::shared_ptr<UploadSession> session, uploads_.Find(upload_id));
  return session->request().model();
}

size_t RegistryService::open_uploads() { return uploads_.open_count(); }

absl::StatusOr<v1::BackupResponse> RegistryService::Backup(const v1::BackupRequest& request) {
  if (request.dir().empty() || request.dir()[0] != '/') {
    return absl::InvalidArgumentError(
        "give the backup directory as an absolute path on the server's machine");
  }
  if (!options_.data_dir.empty()) {
    std::error_code ec;
    const std::filesystem::path data =
        std::filesystem::weakly_canonical(options_.data_dir, ec);
    const std::filesystem::path target = std::filesystem::weakly_canonical(request.dir(), ec);
    auto [d, t] = std::mismatch(data.begin(), data.end(), target.begin(), target.end());
    if (!ec && d == data.end()) {
      return api_errors::BackupIntoDataDir(request.dir(), options_.data_dir);
    }
  }
  absl::MutexLock lock(&backup_mu_);
  ASSIGN_OR_RETURN(StoreStats before, store_->GetStats());
  RETURN_IF_ERROR(store_->Backup(request.dir()));
  v1::BackupResponse out;
  out.set_dir(request.dir());
  out.set_revision(before.revision);
  out.set_checkpoints(before.checkpoints);
  return out;
}

absl::StatusOr<v1::CheckStoreResponse> RegistryService::CheckStore(
    const v1::CheckStoreRequest& /*request*/) {
  ASSIGN_OR_RETURN(CheckReport report, store_->Check());
  v1::CheckStoreResponse out;
  out.set_consistent(report.ok());
  for (std::string& p : report.problems) out.add_problems(std::move(p));
  out.set_models(report.models);
  out.set_checkpoints(report.checkpoints);
  out.set_files(report.files);
  out.set_blobs(report.blobs);
  out.set_chunks(report.chunks);
  out.set_chunk_bytes(report.chunk_bytes);
  out.set_staged_chunks(report.staged_chunks);
  out.set_events(report.events);
  out.set_revision(report.revision);
  return out;
}

absl::StatusOr<v1::Checkpoint> RegistryService::GetLatestCheckpoint(
    const v1::GetLatestCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  ASSIGN_OR_RETURN(storage::CheckpointRecord record, store_->GetLatest(request.model()));
  return ToApiWithAliases(record);
}

absl::StatusOr<v1::Checkpoint> RegistryService::GetCheckpoint(
    const v1::GetCheckpointRequest& request) {
  if (!request.alias().empty() && request.step() != 0) {
    return api_errors::StepAndAlias(request.step(), request.alias());
  }
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(request.model(),
                  request.alias().empty() ? std::optional<int64_t>(request.step())
                                          : std::nullopt,
                  request.alias()));
  return ToApiWithAliases(record);
}

absl::StatusOr<storage::CheckpointRecord> RegistryService::ResolveStep(
    absl::string_view model, std::optional<int64_t> step, absl::string_view alias) {
  RETURN_IF_ERROR(ValidateModelName(model));
  if (!alias.empty()) {
    if (step.has_value()) {
      return absl::InvalidArgumentError("give either a step or an alias, not both");
    }
    ASSIGN_OR_RETURN(storage::ModelRecord m, store_->GetModel(model));
    auto it = m.aliases().find(std::string(alias));
    if (it == m.aliases().end()) {
      return absl::NotFoundError(absl::StrCat("model '", model, "' has no alias ",
                                              api_errors::Quote(alias),
                                              "; list them with mgreg alias list"));
    }
    step = it->second;
  }
  if (!step.has_value()) return store_->GetLatest(model);
  RETURN_IF_ERROR(ValidateStep(*step));
  return store_->GetCheckpoint(model, *step);
}

absl::StatusOr<v1::Checkpoint> RegistryService::ToApiWithAliases(
    const storage::CheckpointRecord& record) {
  v1::Checkpoint out = ToApi(record);
  absl::StatusOr<storage::ModelRecord> model = store_->GetModel(record.model());
  if (!model.ok()) {
    // The step was just read; a model deleted meanwhile simply has no aliases.
    if (model.status().code() == absl::StatusCode::kNotFound) return out;
    return model.status();
  }
  std::vector<std::string> names;
  for (const auto& [name, step] : model->aliases()) {
    if (step == record.step()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (std::string& n : names) out.add_aliases(std::move(n));
  return out;
}

absl::StatusOr<v1::ListModelsResponse> RegistryService::ListModels(
    const v1::ListModelsRequest& request) {
  ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  const std::string& prefix = request.prefix();
  std::string start_after;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(start_after, DecodePageToken(request.page_token(), "models", prefix));
  } else if (!prefix.empty()) {
    if (absl::string_view(prefix).find_first_of(absl::string_view("\0\xff", 2)) !=
        absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "prefix may not contain the bytes 0x00 or 0xff; give the start of a model name");
    }
    // The greatest string below every name that starts with `prefix`: its last byte
    // one less, then 0xff, which no model name contains.
    start_after = prefix;
    start_after.back() = static_cast<char>(start_after.back() - 1);
    start_after += '\xff';
  }
  ASSIGN_OR_RETURN(std::vector<storage::ModelRecord> models,
                   store_->ListModels(start_after, page_size + 1));
  // Names are in bytewise order, so the prefix's models are one run.
  size_t matching = 0;
  while (matching < models.size() && absl::StartsWith(models[matching].name(), prefix)) {
    ++matching;
  }
  models.resize(matching);
  v1::ListModelsResponse out;
  for (int i = 0; i < static_cast<int>(models.size()) && i < page_size; ++i) {
    v1::ModelSummary* m = out.add_models();
    m->set_name(models[i].name());
    m->set_latest_step(models[i].latest_step());
    m->set_checkpoint_count(models[i].checkpoint_count());
  }
  if (static_cast<int>(models.size()) > page_size) {
    out.set_next_page_token(
        EncodePageToken("models", prefix, models[page_size - 1].name()));
  }
  return out;
}

absl::StatusOr<v1::ListCheckpointsResponse> RegistryService::ListCheckpoints(
    const v1::ListCheckpointsRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  std::optional<int64_t> start_after;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(std::string last,
                     DecodePageToken(request.page_token(), "checkpoints", request.model()));
    int64_t step = 0;
    if (!absl::SimpleAtoi(last, &step)) {
      return absl::InvalidArgumentError(
          "page_token is malformed; pass next_page_token from the previous response");
    }
    start_after = step;
  }
  ASSIGN_OR_RETURN(std::vector<storage::CheckpointRecord> records,
                   store_->ListCheckpoints(request.model(), start_after, page_size + 1));
  std::multimap<int64_t, std::string> aliases;  // step -> alias, sorted by name
  if (absl::StatusOr<storage::ModelRecord> m = store_->GetModel(request.model()); m.ok()) {
    std::map<std::string, int64_t> sorted(m->aliases().begin(), m->aliases().end());
    for (const auto& [name, step] : sorted) aliases.emplace(step, name);
  }
  // A page also ends once it holds kMaxPageBytes, so that steps with large metadata
  // (stored before it was capped) never make a response larger than a message may be.
  constexpr size_t kMaxPageBytes = 4 << 20;
  v1::ListCheckpointsResponse out;
  size_t page_bytes = 0;
  int taken = 0;
  for (; taken < static_cast<int>(records.size()) && taken < page_size; ++taken) {
    v1::Checkpoint c = ToApi(records[taken]);
    auto [first, last] = aliases.equal_range(records[taken].step());
    for (auto it = first; it != last; ++it) c.add_aliases(it->second);
    const size_t bytes = c.ByteSizeLong();
    if (taken > 0 && page_bytes + bytes > kMaxPageBytes) break;
    page_bytes += bytes;
    *out.add_checkpoints() = std::move(c);
  }
  if (static_cast<int>(records.size()) > taken) {
    out.set_next_page_token(EncodePageToken("checkpoints", request.model(),
                                            absl::StrCat(records[taken - 1].step())));
  }
  return out;
}

absl::StatusOr<v1::DeleteCheckpointResponse> RegistryService::DeleteCheckpoint(
    const v1::DeleteCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  ASSIGN_OR_RETURN(int64_t freed, store_->DeleteCheckpoint(request.model(), request.step()));
  v1::DeleteCheckpointResponse out;
  out.set_freed_bytes(freed);
  return out;
}

absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> RegistryService::ReadFile(
    const v1::ReadFileRequest& request) {
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(request.model(),
                  request.alias().empty() ? std::optional<int64_t>(request.step())
                                          : std::nullopt,
                  request.alias()));
  const storage::FileRecord* file = nullptr;
  for (const storage::FileRecord& f : record.files()) {
    if (f.name() == request.name()) file = &f;
  }
  if (file == nullptr) {
    std::vector<std::string> names;
    for (const storage::FileRecord& f : record.files()) names.push_back(f.name());
    return absl::NotFoundError(absl::StrCat(
        "step ", record.step(), " of model '", request.model(), "' has no file ",
        api_errors::Quote(request.name()), "; its files are: ", absl::StrJoin(names, ", ")));
  }
  if (request.offset() < 0 || request.offset() > file->size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", request.offset(),
                                              " is outside file '", file->name(),
                                              "' of ", file->size(), " bytes"));
  }
  ASSIGN_OR_RETURN(storage::BlobRecord blob, store_->GetBlob(file->sha256()));
  v1::FileInfo info;
  info.set_name(file->name());
  info.set_size(file->size());
  info.set_sha256(file->sha256());
  return std::unique_ptr<MessageSource<v1::FileChunk>>(
      new BlobSource(store_, std::move(blob), std::move(info), request.offset()));
}

absl::StatusOr<std::unique_ptr<MessageSource<v1::MetaGraphChunk>>>
RegistryService::GetMetaGraph(const v1::GetMetaGraphRequest& request) {
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(request.model(),
                  request.has_step() ? std::optional<int64_t>(request.step()) : std::nullopt,
                  request.alias()));
  const bool saved_model = IsSavedModel(record);
  if (!saved_model && !request.options().tags().empty()) {
    return api_errors::TagsOnCheckpoint(record.model(), record.step());
  }
  if (record.graph_sha256().empty()) {
    return api_errors::NoMetaGraph(record.model(), record.step());
  }
  v1::MetaGraphInfo info;
  info.set_step(record.step());
  info.set_kind(saved_model ? v1::SAVED_MODEL : v1::CHECKPOINT);
  const v1::GraphOptions& options = request.options();
  if (IsDefault(options)) {
    // EXPORT_SEMANTICS D1: no option, the stored bytes verbatim.
    ASSIGN_OR_RETURN(storage::BlobRecord blob, store_->GetBlob(record.graph_sha256()));
    info.set_size(blob.size());
    info.set_sha256(record.graph_sha256());
    v1::FileInfo file;
    file.set_name("meta");
    file.set_size(blob.size());
    file.set_sha256(record.graph_sha256());
    return std::unique_ptr<MessageSource<v1::MetaGraphChunk>>(new GraphSource(
        std::move(info), nullptr,
        std::make_unique<BlobSource>(store_, std::move(blob), std::move(file), 0),
        options_.chunk_bytes));
  }
  std::string options_key;
  options.SerializePartialToString(&options_key);
  const std::string cache_key = absl::StrCat(record.graph_sha256(), "/", options_key);
  std::shared_ptr<const CachedExport> exported = export_cache_.Lookup(cache_key);
  if (exported == nullptr) {
    // The export holds the stored bytes, the parsed graph and its output at once.
    ASSIGN_OR_RETURN(storage::BlobRecord blob, store_->GetBlob(record.graph_sha256()));
    ASSIGN_OR_RETURN(MemoryReservation working,
                     memory_budget_.Reserve(
                         RegistryServiceOptions::kExportMemoryFactor * blob.size(),
                         absl::StrCat("exporting a ", blob.size(), "-byte graph")));
    ASSIGN_OR_RETURN(std::string stored, ReadBlob(record.graph_sha256()));
    ExportOptions export_options = ExportOptionsFromApi(options);
    export_options.collection_kinds = options_.collection_kinds;
    ExportResult result;
    std::vector<std::string> tags;
    if (saved_model) {
      ASSIGN_OR_RETURN(
          SavedModelExport chosen,
          ExportSavedModelGraph(stored,
                                std::vector<std::string>(options.tags().begin(),
                                                         options.tags().end()),
                                export_options));
      result = std::move(chosen.result);
      tags = std::move(chosen.tags);
    } else {
      ASSIGN_OR_RETURN(result, ExportMetaGraph(stored, export_options));
    }
    auto value = std::make_shared<CachedExport>();
    value->tags = std::move(tags);
    value->sha256 = Sha256Hex(result.bytes);
    value->bytes = std::move(result.bytes);
    value->node_count = result.node_count;
    value->collections = std::move(result.collections);
    export_cache_.Insert(cache_key, value);
    exported = std::move(value);
  }
  // The stream keeps the export alive (also after the cache dropped it) until its
  // reader has taken it all, however slowly it reads.
  ASSIGN_OR_RETURN(MemoryReservation held,
                   memory_budget_.Reserve(static_cast<int64_t>(exported->bytes.size()),
                                          "streaming a filtered graph"));
  info.set_size(static_cast<int64_t>(exported->bytes.size()));
  info.set_sha256(exported->sha256);
  info.set_node_count(exported->node_count);
  for (const std::string& c : exported->collections) info.add_collections(c);
  for (const std::string& t : exported->tags) info.add_tags(t);
  return std::unique_ptr<MessageSource<v1::MetaGraphChunk>>(
      new GraphSource(std::move(info), std::move(exported), nullptr, options_.chunk_bytes,
                      std::move(held)));
}

absl::StatusOr<v1::FindChunksResponse> RegistryService::FindChunks(
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

absl::StatusOr<v1::Model> RegistryService::ModelToApi(absl::string_view model) {
  ASSIGN_OR_RETURN(storage::ModelRecord m, store_->GetModel(model));
  v1::Model out;
  out.set_name(m.name().empty() ? std::string(model) : m.name());
  out.set_latest_step(m.latest_step());
  out.set_checkpoint_count(m.checkpoint_count());
  const storage::RetentionPolicy& policy =
      m.has_retention() ? m.retention() : options_.default_retention;
  out.mutable_retention()->set_max_to_keep(policy.max_to_keep());
  out.mutable_retention()->set_keep_every_n_hours(policy.keep_every_n_hours());
  out.mutable_aliases()->insert(m.aliases().begin(), m.aliases().end());
  absl::StatusOr<StoreStats> stats = store_->GetStats();
  if (stats.ok()) out.set_revision(stats->revision);
  return out;
}

absl::StatusOr<v1::Model> RegistryService::GetModel(const v1::GetModelRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  return ModelToApi(request.model());
}

absl::StatusOr<v1::Model> RegistryService::SetRetention(
    const v1::SetRetentionRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  const v1::RetentionPolicy& p = request.retention();
  if (p.max_to_keep() < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "max_to_keep ", p.max_to_keep(), " is negative; use 0 to keep every step"));
  }
  if (!(p.keep_every_n_hours() >= 0) || std::isinf(p.keep_every_n_hours())) {
    return absl::InvalidArgumentError(absl::StrCat(
        "keep_every_n_hours ", p.keep_every_n_hours(),
        " is not a finite number >= 0; use 0 to preserve nothing"));
  }
  if (!request.allow_missing()) {
    // (Not atomic with the write below: a model whose last step is deleted meanwhile
    // keeps the policy as a settings-only record, as with allow_missing.)
    absl::StatusOr<storage::ModelRecord> known = store_->GetModel(request.model());
    if (!known.ok()) {
      return known.status().code() == absl::StatusCode::kNotFound
                 ? api_errors::RetentionOfUnknownModel(request.model())
                 : known.status();
    }
  }
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(p.max_to_keep());
  policy.set_keep_every_n_hours(p.keep_every_n_hours());
  RETURN_IF_ERROR(store_->SetRetention(request.model(), policy));
  RETURN_IF_ERROR(ApplyRetention(request.model()));
  return ModelToApi(request.model());
}

absl::Status RegistryService::ApplyRetention(absl::string_view model) {
  absl::MutexLock lock(&retention_mu_);
  absl::StatusOr<storage::ModelRecord> m = store_->GetModel(model);
  if (!m.ok()) {
    return m.status().code() == absl::StatusCode::kNotFound ? absl::OkStatus()
                                                            : m.status();
  }
  const storage::RetentionPolicy& policy =
      m->has_retention() ? m->retention() : options_.default_retention;
  if (policy.max_to_keep() <= 0) return absl::OkStatus();
  std::set<int64_t> aliased;
  for (const auto& [name, step] : m->aliases()) aliased.insert(step);
  std::vector<RetentionCandidate> candidates;
  std::optional<int64_t> after;
  for (;;) {
    absl::StatusOr<std::vector<storage::CheckpointRecord>> page =
        store_->ListCheckpoints(model, after, 1000);
    if (!page.ok()) {
      return page.status().code() == absl::StatusCode::kNotFound ? absl::OkStatus()
                                                                 : page.status();
    }
    for (const storage::CheckpointRecord& r : *page) {
      candidates.push_back({r.step(), r.commit_time_micros(), r.preserved(),
                            r.pinned() || aliased.count(r.step()) > 0});
    }
    if (page->size() < 1000) break;
    after = page->back().step();
  }
  // Like a CheckpointManager created just before the model's first save, when the
  // model never had a policy of its own.
  int64_t last_preserved = m->last_preserved_micros();
  if (last_preserved == 0 && !candidates.empty()) {
    last_preserved = std::min_element(candidates.begin(), candidates.end(),
                                      [](const auto& a, const auto& b) {
                                        return a.commit_time_micros < b.commit_time_micros;
                                      })
                         ->commit_time_micros -
                     1000000;
  }
  RetentionPlan plan = PlanRetention(std::move(candidates), policy.max_to_keep(),
                                     policy.keep_every_n_hours(), last_preserved);
  if (plan.delete_steps.empty() && plan.preserve_steps.empty()) return absl::OkStatus();
  return store_
      ->ApplyRetention(model, plan.delete_steps, plan.preserve_steps,
                       plan.last_preserved_micros)
      .status();
}

absl::StatusOr<v1::Checkpoint> RegistryService::PinCheckpoint(
    const v1::PinCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  RETURN_IF_ERROR(store_->SetPinned(request.model(), request.step(), request.pinned()));
  ASSIGN_OR_RETURN(storage::CheckpointRecord record,
                   store_->GetCheckpoint(request.model(), request.step()));
  ASSIGN_OR_RETURN(v1::Checkpoint out, ToApiWithAliases(record));
  if (!request.pinned()) {
    // An unpinned step may now be beyond max_to_keep (and go at once). As after a
    // commit, a failure here only leaves extra steps for the next retention pass.
    absl::Status retention = ApplyRetention(request.model());
    (void)retention;
  }
  return out;
}

namespace {

// Alias names are identifiers: [A-Za-z_][A-Za-z0-9_.-]*, at most 64 bytes.
absl::Status ValidateAlias(absl::string_view alias) {
  bool ok = !alias.empty() && alias.size() <= 64 &&
            (absl::ascii_isalpha(static_cast<unsigned char>(alias[0])) || alias[0] == '_');
  for (char c : alias) {
    ok = ok && (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                c == '-');
  }
  if (!ok) {
    return absl::InvalidArgumentError(absl::StrCat(
        "alias '", absl::CEscape(alias),
        "' is not an identifier: use a letter or '_' followed by letters, digits, '_', "
        "'.' or '-', at most 64 bytes (e.g. 'production')"));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<v1::Model> RegistryService::SetAlias(const v1::SetAliasRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateAlias(request.alias()));
  RETURN_IF_ERROR(ValidateStep(request.step()));
  RETURN_IF_ERROR(store_->SetAlias(request.model(), request.alias(), request.step()).status());
  return ModelToApi(request.model());
}

absl::StatusOr<v1::Model> RegistryService::RemoveAlias(
    const v1::RemoveAliasRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  RETURN_IF_ERROR(ValidateAlias(request.alias()));
  RETURN_IF_ERROR(store_->RemoveAlias(request.model(), request.alias()).status());
  // The step the alias protected may now be beyond max_to_keep.
  RETURN_IF_ERROR(ApplyRetention(request.model()));
  return ModelToApi(request.model());
}

absl::StatusOr<v1::GetCollectionResponse> RegistryService::GetCollection(
    const v1::GetCollectionRequest& request) {
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(request.model(),
                  request.has_step() ? std::optional<int64_t>(request.step()) : std::nullopt,
                  request.alias()));
  const bool saved_model = IsSavedModel(record);
  if (!saved_model && !request.tags().empty()) {
    return api_errors::TagsOnCheckpoint(record.model(), record.step());
  }
  if (record.graph_sha256().empty()) {
    return api_errors::NoMetaGraph(record.model(), record.step());
  }
  ASSIGN_OR_RETURN(storage::BlobRecord blob, store_->GetBlob(record.graph_sha256()));
  // The stored bytes and the collections parsed out of them.
  ASSIGN_OR_RETURN(MemoryReservation working,
                   memory_budget_.Reserve(2 * blob.size(),
                                          absl::StrCat("reading a collection of a ",
                                                       blob.size(), "-byte graph")));
  ASSIGN_OR_RETURN(std::string graph, ReadBlob(record.graph_sha256()));
  if (saved_model) {
    ASSIGN_OR_RETURN(SavedModelExport chosen,
                     ExportSavedModelGraph(
                         graph, std::vector<std::string>(request.tags().begin(),
                                                         request.tags().end()),
                         ExportOptions()));
    graph = std::move(chosen.result.bytes);
  }
  const CollectionKinds* kinds = options_.collection_kinds.get();
  v1::GetCollectionResponse out;
  out.set_step(record.step());
  out.set_key(request.key());
  ASSIGN_OR_RETURN(*out.mutable_json(), CollectionToJson(graph, request.key(), kinds));
  ASSIGN_OR_RETURN(*out.mutable_text(), CollectionToText(graph, request.key(), kinds));
  return out;
}

absl::StatusOr<v1::InspectCheckpointResponse> RegistryService::InspectCheckpoint(
    const v1::InspectCheckpointRequest& request) {
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(request.model(),
                  request.has_step() ? std::optional<int64_t>(request.step()) : std::nullopt,
                  request.alias()));
  // A SavedModel's variables bundle is variables/variables.{index,data-*}.
  const std::string bundle = IsSavedModel(record) ? kVariablesPrefix : "";
  std::map<int, const storage::FileRecord*> shards;
  const storage::FileRecord* index_file = nullptr;
  for (const storage::FileRecord& f : record.files()) {
    if (!absl::StartsWith(f.name(), bundle)) continue;
    const absl::string_view name = absl::string_view(f.name()).substr(bundle.size());
    if (name == "index") index_file = &f;
    if (absl::StartsWith(name, "data-")) {
      ASSIGN_OR_RETURN(DataShard shard, ParseDataFileName(name));
      shards[shard.shard] = &f;
    }
  }
  if (index_file == nullptr && IsSavedModel(record)) {
    // A SavedModel of constants only: no variables, nothing to list or verify.
    v1::InspectCheckpointResponse out;
    out.set_step(record.step());
    out.set_verified(request.verify());
    return out;
  }
  if (index_file == nullptr) {
    return absl::InternalError("the stored checkpoint has no index file");
  }
  ASSIGN_OR_RETURN(std::string index_bytes, ReadBlob(index_file->sha256()));
  ASSIGN_OR_RETURN(BundleIndex index, ReadBundleIndex(index_bytes));
  v1::InspectCheckpointResponse out;
  out.set_step(record.step());
  out.set_num_shards(index.header.num_shards());
  for (const auto& [name, entry] : index.entries) {
    v1::TensorInfoEntry* t = out.add_tensors();
    t->set_name(name);
    t->set_dtype(tensorflow::DataType_Name(entry.dtype()));
    if (entry.shape().unknown_rank()) t->add_shape(-1);
    for (const auto& d : entry.shape().dim()) t->add_shape(d.size());
    t->set_shard(entry.shard_id());
    t->set_offset(entry.offset());
    t->set_size(entry.size());
    t->set_slices(entry.slices_size());
  }
  if (request.verify()) {
    std::map<int, int64_t> shard_sizes;
    for (const auto& [shard, file] : shards) shard_sizes[shard] = file->size();
    // Each shard's blob, and the last chunk read of it (tensors come in offset order).
    int blob_shard = -1;
    storage::BlobRecord blob;
    std::vector<int64_t> chunk_starts;  // offset of each chunk in the data file
    std::string cached;
    int cached_index = -1;
    auto read = [&](int shard, int64_t begin, int64_t size) -> absl::StatusOr<std::string> {
      if (shard != blob_shard) {
        ASSIGN_OR_RETURN(blob, store_->GetBlob(shards.at(shard)->sha256()));
        blob_shard = shard;
        chunk_starts.clear();
        int64_t pos = 0;
        for (const storage::ChunkRef& ref : blob.chunks()) {
          chunk_starts.push_back(pos);
          pos += ref.size();
        }
        cached_index = -1;
      }
      const int64_t end = begin + size;
      std::string bytes;
      bytes.reserve(static_cast<size_t>(size));
      size_t i = static_cast<size_t>(
          std::upper_bound(chunk_starts.begin(), chunk_starts.end(), begin) -
          chunk_starts.begin());
      i = i == 0 ? 0 : i - 1;
      for (; i < chunk_starts.size() && chunk_starts[i] < end; ++i) {
        if (cached_index != static_cast<int>(i)) {
          ASSIGN_OR_RETURN(cached, store_->ReadChunk(blob.chunks(static_cast<int>(i))));
          cached_index = static_cast<int>(i);
        }
        const int64_t lo = std::max(begin, chunk_starts[i]) - chunk_starts[i];
        const int64_t hi =
            std::min<int64_t>(end, chunk_starts[i] + static_cast<int64_t>(cached.size())) -
            chunk_starts[i];
        if (hi > lo) bytes.append(cached, static_cast<size_t>(lo), static_cast<size_t>(hi - lo));
      }
      return bytes;
    };
    ASSIGN_OR_RETURN(auto verdicts, VerifyTensors(index, shard_sizes, read));
    bool all_ok = true;
    for (v1::TensorInfoEntry& t : *out.mutable_tensors()) {
      auto it = verdicts.find(t.name());
      if (it == verdicts.end()) continue;  // sliced tensors carry no CRC of their own
      t.set_verification(it->second);
      all_ok = all_ok && it->second == "ok";
    }
    out.set_verified(all_ok);
  }
  return out;
}

absl::StatusOr<tensorflow::CheckpointState> RegistryService::GetCheckpointState(
    const v1::GetCheckpointStateRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  ASSIGN_OR_RETURN(storage::CheckpointRecord latest, store_->GetLatest(request.model()));
  if (IsSavedModel(latest)) return api_errors::NoCheckpointState(request.model());
  ASSIGN_OR_RETURN(storage::ModelRecord model, store_->GetModel(request.model()));
  std::vector<std::string> prefixes;
  std::vector<double> timestamps;
  std::optional<int64_t> after;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<storage::CheckpointRecord> page,
                     store_->ListCheckpoints(request.model(), after, 1000));
    for (const storage::CheckpointRecord& r : page) {
      // As CheckpointManager: steps kept forever by the every-N-hours rule leave the list.
      if (r.preserved() || r.step() == latest.step() || IsSavedModel(r)) continue;
      prefixes.push_back(CheckpointPrefixName(r.basename(), r.step()));
      timestamps.push_back(static_cast<double>(r.commit_time_micros()) / 1e6);
    }
    if (page.size() < 1000) break;
    after = page.back().step();
  }
  prefixes.push_back(CheckpointPrefixName(latest.basename(), latest.step()));
  timestamps.push_back(static_cast<double>(latest.commit_time_micros()) / 1e6);
  std::optional<double> last_preserved;
  if (model.last_preserved_micros() > 0) {
    last_preserved = static_cast<double>(model.last_preserved_micros()) / 1e6;
  }
  return MakeCheckpointState(prefixes, timestamps, last_preserved);
}

absl::StatusOr<std::shared_ptr<WatchSubscription>> RegistryService::Watch(
    const v1::WatchCheckpointsRequest& request, std::function<void()> notify,
    std::function<bool(absl::string_view model)> visible) {
  WatchFilter filter;
  filter.model = request.model();
  filter.prefix = request.prefix();
  filter.all = request.all_models();
  filter.visible = std::move(visible);
  if (!filter.model.empty()) RETURN_IF_ERROR(ValidateModelName(filter.model));
  return watch_hub_.Subscribe(std::move(filter), request.since_revision(),
                              std::move(notify));
}

void RegistryService::Unwatch(const std::shared_ptr<WatchSubscription>& subscription) {
  watch_hub_.Unsubscribe(subscription);
}

void RegistryService::CloseWatches() { watch_hub_.Close(); }

size_t RegistryService::watcher_count() { return watch_hub_.watcher_count(); }

}  // namespace mgreg
