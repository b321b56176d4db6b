#include "server/core/api_translation.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "metagraph/saved_model.h"
#include "server/core/api_errors.h"
#include "storage/blob_key.h"

namespace mgreg {
namespace {

absl::Status MalformedPageToken() {
  return absl::InvalidArgumentError(
      "page_token is malformed; pass next_page_token from the previous response");
}

}  // namespace

bool IsSavedModel(const storage::CheckpointRecord& record) {
  return record.kind() == storage::CheckpointRecord::SAVED_MODEL;
}

std::string GraphBlobKey(const storage::CheckpointRecord& record) {
  std::vector<std::string> names;
  for (const storage::FileRecord& f : record.files()) names.push_back(f.name());
  const std::string graph =
      IsSavedModel(record) ? SavedModelProtoName(names).value_or("") : "meta";
  for (const storage::FileRecord& f : record.files()) {
    if (f.name() == graph) return BlobKey(f);
  }
  return record.graph_sha256();
}

storage::FileRecord FileRecordOf(const v1::FileInfo& f) {
  storage::FileRecord out;
  out.set_name(f.name());
  out.set_size(f.size());
  out.set_sha256(f.sha256());
  out.set_chunked_sha256(f.chunked_sha256());
  return out;
}

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
    info->set_chunked_sha256(f.chunked_sha256());
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

v1::Checkpoint ToApi(const storage::CheckpointRecord& record,
                     const storage::ModelRecord& model) {
  v1::Checkpoint out = ToApi(record);
  std::vector<std::string> names;
  for (const auto& [name, step] : model.aliases()) {
    if (step == record.step()) names.push_back(name);
  }
  std::sort(names.begin(), names.end());
  for (std::string& n : names) out.add_aliases(std::move(n));
  return out;
}

absl::StatusOr<v1::Checkpoint> ToApiWithAliases(Store* store,
                                                const storage::CheckpointRecord& record) {
  absl::StatusOr<storage::ModelRecord> model = store->GetModel(record.model());
  if (!model.ok()) {
    // The step was just read; a model deleted meanwhile simply has no aliases.
    if (model.status().code() == absl::StatusCode::kNotFound) return ToApi(record);
    return model.status();
  }
  return ToApi(record, *model);
}

absl::StatusOr<v1::Model> ModelToApi(Store* store, absl::string_view model,
                                     const storage::RetentionPolicy& default_retention) {
  ASSIGN_OR_RETURN(storage::ModelRecord m, store->GetModel(model));
  v1::Model out;
  out.set_name(m.name().empty() ? std::string(model) : m.name());
  out.set_latest_step(m.latest_step());
  out.set_checkpoint_count(m.checkpoint_count());
  const storage::RetentionPolicy& policy =
      m.has_retention() ? m.retention() : default_retention;
  out.mutable_retention()->set_max_to_keep(policy.max_to_keep());
  out.mutable_retention()->set_keep_every_n_hours(policy.keep_every_n_hours());
  out.mutable_aliases()->insert(m.aliases().begin(), m.aliases().end());
  absl::StatusOr<StoreStats> stats = store->GetStats();
  if (stats.ok()) out.set_revision(stats->revision);
  return out;
}

absl::StatusOr<storage::CheckpointRecord> ResolveStep(Store* store,
                                                      absl::string_view model,
                                                      std::optional<int64_t> step,
                                                      absl::string_view alias) {
  RETURN_IF_ERROR(ValidateModelName(model));
  if (!alias.empty()) {
    if (step.has_value()) {
      return absl::InvalidArgumentError("give either a step or an alias, not both");
    }
    ASSIGN_OR_RETURN(storage::ModelRecord m, store->GetModel(model));
    auto it = m.aliases().find(std::string(alias));
    if (it == m.aliases().end()) {
      return absl::NotFoundError(absl::StrCat("model '", model, "' has no alias ",
                                              api_errors::Quote(alias),
                                              "; list them with mgreg alias list"));
    }
    step = it->second;
  }
  if (!step.has_value()) return store->GetLatest(model);
  RETURN_IF_ERROR(ValidateStep(*step));
  return store->GetCheckpoint(model, *step);
}

absl::StatusOr<int> PageSize(int32_t requested) {
  if (requested < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("page_size ", requested, " is negative; use 0 for the default"));
  }
  if (requested == 0) return kDefaultPageSize;
  return std::min<int>(requested, kMaxPageSize);
}

std::string EncodePageToken(absl::string_view listing, absl::string_view model,
                            absl::string_view last) {
  return absl::WebSafeBase64Escape(absl::StrCat(listing, "\n", model, "\n", last));
}

absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view listing,
                                            absl::string_view model) {
  std::string raw;
  if (!absl::WebSafeBase64Unescape(token, &raw)) return MalformedPageToken();
  std::vector<std::string> parts = absl::StrSplit(raw, absl::MaxSplits('\n', 2));
  if (parts.size() != 3) return MalformedPageToken();
  if (parts[0] != listing || parts[1] != model) {
    return absl::InvalidArgumentError(absl::StrCat(
        "page_token belongs to another listing; pass next_page_token from the previous ",
        listing, model.empty() ? "" : absl::StrCat(" of model '", model, "'"),
        " response"));
  }
  return parts[2];
}

absl::StatusOr<int64_t> DecodeStepPageToken(absl::string_view token,
                                            absl::string_view model) {
  ASSIGN_OR_RETURN(std::string last, DecodePageToken(token, "checkpoints", model));
  int64_t step = 0;
  if (!absl::SimpleAtoi(last, &step)) return MalformedPageToken();
  return step;
}

absl::Status ForEachCheckpoint(
    Store* store, absl::string_view model,
    const std::function<void(const storage::CheckpointRecord&)>& visit) {
  std::optional<int64_t> after;
  for (;;) {
    ASSIGN_OR_RETURN(std::vector<storage::CheckpointRecord> page,
                     store->ListCheckpoints(model, after, kMaxPageSize));
    for (const storage::CheckpointRecord& r : page) visit(r);
    if (static_cast<int>(page.size()) < kMaxPageSize) return absl::OkStatus();
    after = page.back().step();
  }
}

}  // namespace mgreg
