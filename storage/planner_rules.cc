// The planner's checks of requests, and the contract's errors of reads and bad bytes
// (storage/planner.h). The mutation plans are in planner.cc.
#include <algorithm>
#include <filesystem>
#include <string>
#include <system_error>
#include <vector>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "storage/blob_key.h"
#include "storage/planner.h"

namespace mgreg::planner {

absl::Status ValidateChunkRef(const storage::ChunkRef& ref) {
  if (ref.sha256().size() != 32) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk digest is ", ref.sha256().size(),
                     " bytes; it must be the 32 raw bytes of a SHA-256"));
  }
  if (ref.size() == 0 || ref.size() > kMaxChunkBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("chunk ", ChunkName(ref.sha256()), " has size ", ref.size(),
                     "; chunks are 1 to ", kMaxChunkBytes, " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateChunkData(const storage::ChunkRef& ref, absl::string_view data) {
  if (data.size() > kMaxChunkBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "chunk of ", data.size(), " bytes is larger than the limit of ", kMaxChunkBytes,
        " bytes; cut files into chunks of at most that size"));
  }
  RETURN_IF_ERROR(ValidateChunkRef(ref));
  if (data.size() != ref.size()) {
    return absl::InvalidArgumentError(absl::StrCat("chunk ", ChunkName(ref.sha256()),
                                                   " says size ", ref.size(), " but has ",
                                                   data.size(), " bytes"));
  }
  return absl::OkStatus();
}

absl::Status ValidateCommitRequest(const CommitRequest& request, NewBlobs* new_blobs) {
  const storage::CheckpointRecord& record = request.record;
  RETURN_IF_ERROR(ValidateModelName(record.model()));
  RETURN_IF_ERROR(ValidateStep(record.step()));
  const std::string where = StepName(record.model(), record.step());
  if (record.files().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, " has no files; a checkpoint needs at least one"));
  }
  absl::flat_hash_set<std::string> named;
  for (int i = 0; i < record.files_size(); ++i) {
    const storage::FileRecord& f = record.files(i);
    if (f.name().empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": file ", i, " has no name"));
    }
    if (i > 0 && record.files(i - 1).name() >= f.name()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": files must be sorted by name without duplicates; '",
                       record.files(i - 1).name(), "' comes before '", f.name(), "'"));
    }
    if (f.size() < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": file '", f.name(), "' has negative size ", f.size()));
    }
    if (f.sha256().empty() && f.chunked_sha256().empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          where, ": file '", f.name(), "' has no digest; give sha256 or chunked_sha256"));
    }
    for (const std::string* digest : {&f.sha256(), &f.chunked_sha256()}) {
      if (!digest->empty() && !IsSha256Hex(*digest)) {
        return absl::InvalidArgumentError(
            absl::StrCat(where, ": file '", f.name(), "' digest '", *digest,
                         "' is not 64 lower-case hex characters"));
      }
    }
    named.insert(BlobKey(f));
  }
  new_blobs->clear();
  for (const storage::BlobRecord& blob : request.new_blobs) {
    const std::string key = BlobKey(blob);
    if (!IsBlobKey(key) ||
        (!blob.chunked_sha256().empty() && !IsSha256Hex(blob.chunked_sha256()))) {
      return absl::InvalidArgumentError(
          absl::StrCat("new blob digests '", blob.sha256(), "' / '",
                       blob.chunked_sha256(), "' are not 64 lower-case hex characters"));
    }
    if (!named.contains(key)) {
      return absl::InvalidArgumentError(
          absl::StrCat("new blob ", key, " is not named by any file of ", where));
    }
    int64_t total = 0;
    for (const storage::ChunkRef& c : blob.chunks()) {
      RETURN_IF_ERROR(ValidateChunkRef(c));
      total += c.size();
    }
    if (total != blob.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("new blob ", key, " has size ", blob.size(), " but its ",
                       blob.chunks_size(), " chunks add up to ", total, " bytes"));
    }
    auto [it, inserted] = new_blobs->emplace(key, &blob);
    if (!inserted && it->second->SerializeAsString() != blob.SerializeAsString()) {
      return absl::InvalidArgumentError(
          absl::StrCat("new blob ", key, " is listed twice with different chunks"));
    }
  }
  for (const storage::FileRecord& f : record.files()) {
    auto it = new_blobs->find(BlobKey(f));
    if (it != new_blobs->end() && it->second->size() != f.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": file '", f.name(), "' has size ", f.size(),
                       " but its blob has ", it->second->size(), " bytes"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> SameContent(const storage::CheckpointRecord& a,
                                 const storage::CheckpointRecord& b,
                                 const BlobLookup& blob_of) {
  if (a.basename() != b.basename() || a.files_size() != b.files_size()) return false;
  // A file's chunked digest: its record's, else its blob's (from the chunk list).
  auto chunked = [&](const storage::FileRecord& f) -> absl::StatusOr<std::string> {
    if (!f.chunked_sha256().empty()) return f.chunked_sha256();
    ASSIGN_OR_RETURN(std::optional<storage::BlobRecord> blob, blob_of(f));
    if (!blob.has_value()) return std::string();
    return BlobChunkedSha256(*blob).value_or("");
  };
  for (int i = 0; i < a.files_size(); ++i) {
    const storage::FileRecord& x = a.files(i);
    const storage::FileRecord& y = b.files(i);
    if (x.name() != y.name()) return false;
    const Sameness same = CompareFileDigests(x, y);
    if (same == Sameness::kDifferent) return false;
    if (same == Sameness::kUnknown) {
      ASSIGN_OR_RETURN(std::string cx, chunked(x));
      ASSIGN_OR_RETURN(std::string cy, chunked(y));
      if (cx.empty() || cx != cy) return false;
    }
  }
  return true;
}

absl::Status CheckReplace(const storage::ModelRecord& model,
                          const storage::CheckpointRecord& old, bool overwrite,
                          bool force) {
  const std::string where = StepName(old.model(), old.step());
  if (!overwrite) {
    return absl::AlreadyExistsError(absl::StrCat(
        where,
        " already exists with different files; push another step, delete it "
        "first, or replace it with --overwrite (BeginUploadRequest.overwrite)"));
  }
  if (force) return absl::OkStatus();
  std::vector<std::string> aliases;
  for (const auto& [alias, target] : model.aliases()) {
    if (target == old.step()) aliases.push_back(absl::StrCat("'", alias, "'"));
  }
  if (aliases.empty() && !old.pinned()) return absl::OkStatus();
  std::sort(aliases.begin(), aliases.end());
  std::string holders = old.pinned() ? "pinned" : "";
  if (!aliases.empty()) {
    absl::StrAppend(&holders, old.pinned() ? " and " : "", "named by alias",
                    aliases.size() > 1 ? "es " : " ", absl::StrJoin(aliases, ", "));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      where, " is ", holders,
      "; an overwrite would change it under them: to replace it anyway add --force to "
      "--overwrite (BeginUploadRequest.force, force=True in Python), or push another "
      "step"));
}

std::string StepName(absl::string_view model, int64_t step) {
  return absl::StrCat("step ", step, " of model '", model, "'");
}

std::string ChunkName(absl::string_view sha256_raw) {
  return BytesToHex(sha256_raw.substr(0, 8));
}

bool HasSettings(const storage::ModelRecord& model) {
  return model.has_retention() || !model.aliases().empty();
}

absl::Status ValidateBackupDir(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("no backup directory given");
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup directory '", dir, "' exists; name a new directory"));
  }
  const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the parent of backup directory '", dir, "' does not exist; create it first"));
  }
  return absl::OkStatus();
}

namespace {
// OUT_OF_RANGE if an event after `after_revision` is older than `oldest_available`.
absl::Status CheckEventsAvailable(int64_t after_revision, int64_t oldest_available) {
  if (after_revision >= oldest_available - 1) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(
      "events after revision ", after_revision,
      " are no longer kept; the oldest still available is revision ", oldest_available,
      ": resume from revision ", oldest_available, " or re-list"));
}
}  // namespace

absl::StatusOr<EventPage> CheckEventPage(int64_t after_revision, EventPage page) {
  if (after_revision >= page.current_revision) {
    page.events.clear();
    return page;
  }
  RETURN_IF_ERROR(CheckEventsAvailable(after_revision, page.oldest_revision == 0
                                                           ? page.current_revision + 1
                                                           : page.oldest_revision));
  // Events trimmed between the backend's reading of its head and of the events.
  if (page.events.empty()) {
    RETURN_IF_ERROR(CheckEventsAvailable(after_revision, page.current_revision + 1));
  } else {
    RETURN_IF_ERROR(CheckEventsAvailable(after_revision, page.events.front().revision()));
  }
  return page;
}

absl::Status StepNotFound(absl::string_view model, int64_t step) {
  return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
}

absl::Status NoCommittedCheckpoint(absl::string_view model) {
  return absl::NotFoundError(
      absl::StrCat("model '", model, "' has no committed checkpoint"));
}

absl::Status UnknownModel(absl::string_view model) {
  return absl::NotFoundError(
      absl::StrCat("model '", model, "' has no checkpoints and no settings"));
}

absl::Status UnknownBlob(absl::string_view hex) {
  return absl::NotFoundError(absl::StrCat("no stored file has digest ", hex));
}

absl::Status ChunkNotStored(absl::string_view raw) {
  if (raw.size() != 32) {
    return absl::NotFoundError("chunk digest is not 32 bytes; no such chunk");
  }
  return absl::NotFoundError(absl::StrCat("chunk ", ChunkName(raw), " is not stored"));
}

absl::Status ChunkToSend(absl::string_view raw) {
  return absl::NotFoundError(
      absl::StrCat("chunk ", ChunkName(raw), " is not stored; send its bytes"));
}

absl::Status ExistingChunkOfOtherSize(absl::string_view raw, uint32_t stored,
                                      uint32_t named) {
  return absl::InvalidArgumentError(
      absl::StrCat("chunk ", ChunkName(raw), " has ", stored, " bytes, not the ", named,
                   " the file needs at that offset; send the bytes instead"));
}

absl::Status ChunkSizeMismatch(absl::string_view raw, size_t stored, uint32_t expected) {
  return absl::DataLossError(absl::StrCat("chunk ", ChunkName(raw), " has ", stored,
                                          " bytes stored, expected ", expected));
}

absl::Status CannotBackUp(absl::string_view engine) {
  return absl::FailedPreconditionError(
      absl::StrCat(engine, " store cannot be backed up"));
}

absl::Status ForeignStagingArea() {
  return absl::InvalidArgumentError("the staging area belongs to another store");
}

absl::Status RegistryBusy(absl::string_view what) {
  return absl::AbortedError(absl::StrCat(
      what, ": other writers of the store kept changing it meanwhile; retry"));
}

absl::Status CorruptRecord(absl::string_view what) {
  return absl::InternalError(absl::StrCat("corrupt ", what, " record in the store"));
}

}  // namespace mgreg::planner
