#include "storage/commit_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"

namespace mgreg::storage_internal {

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

absl::Status ValidateCommitRequest(
    const CommitRequest& request,
    absl::flat_hash_map<std::string, const storage::BlobRecord*>* new_blobs) {
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
    if (!IsSha256Hex(f.sha256())) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": file '", f.name(), "' digest '", f.sha256(),
                       "' is not 64 lower-case hex characters"));
    }
    named.insert(f.sha256());
  }
  new_blobs->clear();
  for (const storage::BlobRecord& blob : request.new_blobs) {
    if (!IsSha256Hex(blob.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "new blob digest '", blob.sha256(), "' is not 64 lower-case hex characters"));
    }
    if (!named.contains(blob.sha256())) {
      return absl::InvalidArgumentError(absl::StrCat(
          "new blob ", blob.sha256(), " is not named by any file of ", where));
    }
    int64_t total = 0;
    for (const storage::ChunkRef& c : blob.chunks()) {
      RETURN_IF_ERROR(ValidateChunkRef(c));
      total += c.size();
    }
    if (total != blob.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat("new blob ", blob.sha256(), " has size ", blob.size(), " but its ",
                       blob.chunks_size(), " chunks add up to ", total, " bytes"));
    }
    auto [it, inserted] = new_blobs->emplace(blob.sha256(), &blob);
    if (!inserted && it->second->SerializeAsString() != blob.SerializeAsString()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "new blob ", blob.sha256(), " is listed twice with different chunks"));
    }
  }
  for (const storage::FileRecord& f : record.files()) {
    auto it = new_blobs->find(f.sha256());
    if (it != new_blobs->end() && it->second->size() != f.size()) {
      return absl::InvalidArgumentError(
          absl::StrCat(where, ": file '", f.name(), "' has size ", f.size(),
                       " but its blob has ", it->second->size(), " bytes"));
    }
  }
  return absl::OkStatus();
}

bool SameContent(const storage::CheckpointRecord& a, const storage::CheckpointRecord& b) {
  if (a.basename() != b.basename() || a.files_size() != b.files_size()) return false;
  for (int i = 0; i < a.files_size(); ++i) {
    const storage::FileRecord& x = a.files(i);
    const storage::FileRecord& y = b.files(i);
    if (x.name() != y.name() || x.size() != y.size() || x.sha256() != y.sha256()) {
      return false;
    }
  }
  return true;
}

std::string StepName(absl::string_view model, int64_t step) {
  return absl::StrCat("step ", step, " of model '", model, "'");
}

std::string ChunkName(absl::string_view sha256_raw) {
  return BytesToHex(sha256_raw.substr(0, 8));
}

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

bool HasSettings(const storage::ModelRecord& model) {
  return model.has_retention() || !model.aliases().empty();
}

storage::Event MakeEvent(storage::Event::Type type, absl::string_view model, int64_t step,
                         absl::string_view alias, int64_t time_micros) {
  storage::Event e;
  e.set_type(type);
  e.set_model(std::string(model));
  e.set_step(step);
  e.set_alias(std::string(alias));
  e.set_time_micros(time_micros);
  return e;
}

absl::Status CheckNoAliasNames(const storage::ModelRecord& model, int64_t step) {
  std::vector<std::string> names;
  for (const auto& [alias, target] : model.aliases()) {
    if (target == step) names.push_back(absl::StrCat("'", alias, "'"));
  }
  if (names.empty()) return absl::OkStatus();
  std::sort(names.begin(), names.end());
  return absl::FailedPreconditionError(
      absl::StrCat(StepName(model.name(), step), " is named by alias ",
                   absl::StrJoin(names, ", "), "; move or remove the alias first"));
}

std::vector<int64_t> RetentionCandidates(const storage::ModelRecord& model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps) {
  absl::flat_hash_set<int64_t> keep(preserve_steps.begin(), preserve_steps.end());
  for (const auto& [alias, target] : model.aliases()) keep.insert(target);
  std::vector<int64_t> out;
  for (int64_t step : delete_steps) {
    if (!keep.contains(step)) out.push_back(step);
  }
  std::sort(out.begin(), out.end());
  out.erase(std::unique(out.begin(), out.end()), out.end());
  return out;
}

absl::Status CheckEventsAvailable(int64_t after_revision, int64_t oldest_available) {
  if (after_revision >= oldest_available - 1) return absl::OkStatus();
  return absl::OutOfRangeError(absl::StrCat(
      "events after revision ", after_revision,
      " are no longer kept; the oldest still available is revision ", oldest_available,
      ": resume from revision ", oldest_available, " or re-list"));
}

absl::Status UnknownModel(absl::string_view model) {
  return absl::NotFoundError(
      absl::StrCat("model '", model, "' has no checkpoints and no settings"));
}

}  // namespace mgreg::storage_internal
