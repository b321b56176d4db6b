#include "server/core/inspect_calls.h"

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/saved_model.h"
#include "metagraph/tensor_bundle.h"
#include "metagraph/tensor_verify.h"
#include "server/core/api_errors.h"
#include "server/core/api_translation.h"
#include "server/core/content_reader.h"
#include "storage/blob_key.h"

namespace mgreg {

absl::StatusOr<v1::InspectCheckpointResponse> InspectCalls::InspectCheckpoint(
    const v1::InspectCheckpointRequest& request) {
  ASSIGN_OR_RETURN(storage::CheckpointRecord record,
                   ResolveStep(store_, request.model(),
                               request.has_step() ? std::optional<int64_t>(request.step())
                                                  : std::nullopt,
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
  ASSIGN_OR_RETURN(
      ContentReader index_reader,
      ContentReader::ForBlob(store_, BlobKey(*index_file),
                             absl::StrCat("file '", index_file->name(), "'")));
  ASSIGN_OR_RETURN(std::string index_bytes, index_reader.ReadAll());
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
  if (!request.verify()) return out;

  std::map<int, int64_t> shard_sizes;
  for (const auto& [shard, file] : shards) shard_sizes[shard] = file->size();
  // One shard's reader at a time (tensors come in offset order within a shard).
  int reader_shard = -1;
  std::optional<ContentReader> reader;
  auto read = [&](int shard, int64_t begin, int64_t size) -> absl::StatusOr<std::string> {
    if (shard != reader_shard) {
      const storage::FileRecord* file = shards.at(shard);
      ASSIGN_OR_RETURN(reader,
                       ContentReader::ForBlob(store_, BlobKey(*file),
                                              absl::StrCat("file '", file->name(), "'")));
      reader_shard = shard;
    }
    return reader->ReadRange(begin, size);
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
  return out;
}

absl::StatusOr<tensorflow::CheckpointState> InspectCalls::GetCheckpointState(
    const v1::GetCheckpointStateRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  ASSIGN_OR_RETURN(storage::CheckpointRecord latest, store_->GetLatest(request.model()));
  if (IsSavedModel(latest)) return api_errors::NoCheckpointState(request.model());
  ASSIGN_OR_RETURN(storage::ModelRecord model, store_->GetModel(request.model()));
  std::vector<std::string> prefixes;
  std::vector<double> timestamps;
  RETURN_IF_ERROR(
      ForEachCheckpoint(store_, request.model(), [&](const storage::CheckpointRecord& r) {
        // As CheckpointManager: steps kept forever by the every-N-hours rule leave the
        // list.
        if (r.preserved() || r.step() == latest.step() || IsSavedModel(r)) return;
        prefixes.push_back(CheckpointPrefixName(r.basename(), r.step()));
        timestamps.push_back(static_cast<double>(r.commit_time_micros()) / 1e6);
      }));
  prefixes.push_back(CheckpointPrefixName(latest.basename(), latest.step()));
  timestamps.push_back(static_cast<double>(latest.commit_time_micros()) / 1e6);
  std::optional<double> last_preserved;
  if (model.last_preserved_micros() > 0) {
    last_preserved = static_cast<double>(model.last_preserved_micros()) / 1e6;
  }
  return MakeCheckpointState(prefixes, timestamps, last_preserved);
}

}  // namespace mgreg
