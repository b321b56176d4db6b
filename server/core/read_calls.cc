#include "server/core/read_calls.h"

#include <algorithm>
#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/collection_kinds.h"
#include "metagraph/collection_view.h"
#include "metagraph/export.h"
#include "metagraph/export_options.h"
#include "metagraph/saved_model.h"
#include "server/core/api_errors.h"
#include "server/core/api_translation.h"
#include "server/core/content_reader.h"
#include "storage/blob_key.h"

namespace mgreg {
namespace {

// Streams a stored file from an offset: the first message carries the file's info and
// the offset, then one message per chunk (the first one cut at the offset).
class FileSource : public MessageSource<v1::FileChunk> {
 public:
  FileSource(ContentReader reader, v1::FileInfo info, int64_t offset)
      : reader_(std::move(reader)), info_(std::move(info)) {
    reader_.Seek(offset);
  }

  absl::StatusOr<bool> Next(v1::FileChunk* out) override {
    out->Clear();
    const bool first = !sent_info_;
    if (first) {
      sent_info_ = true;
      *out->mutable_file() = info_;
      out->set_offset(reader_.position());
    }
    if (reader_.at_end()) return first;
    out->set_offset(reader_.position());
    ASSIGN_OR_RETURN(*out->mutable_data(), reader_.ReadToChunkEnd());
    return true;
  }

 private:
  ContentReader reader_;
  const v1::FileInfo info_;
  bool sent_info_ = false;
};

// Streams a graph held in memory (an export) or a stored blob (verbatim); the first
// message carries its info.
class GraphSource : public MessageSource<v1::MetaGraphChunk> {
 public:
  // Verbatim, the stored bytes.
  GraphSource(v1::MetaGraphInfo info, ContentReader stored)
      : info_(std::move(info)), stored_(std::move(stored)), chunk_bytes_(0) {}
  // An export; `memory` covers it for as long as the stream holds it.
  GraphSource(v1::MetaGraphInfo info, std::shared_ptr<const CachedExport> exported,
              size_t chunk_bytes, MemoryReservation memory)
      : info_(std::move(info)),
        exported_(std::move(exported)),
        chunk_bytes_(chunk_bytes),
        memory_(std::move(memory)) {}

  absl::StatusOr<bool> Next(v1::MetaGraphChunk* out) override {
    out->Clear();
    if (stored_.has_value()) {
      if (sent_info_ && stored_->at_end()) return false;
      if (!stored_->at_end()) {
        ASSIGN_OR_RETURN(*out->mutable_data(), stored_->ReadToChunkEnd());
      }
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
  std::optional<ContentReader> stored_;
  const std::shared_ptr<const CachedExport> exported_;
  const size_t chunk_bytes_;
  const MemoryReservation memory_;
  size_t pos_ = 0;
  bool sent_info_ = false;
};

bool IsDefault(const v1::GraphOptions& o) { return o.ByteSizeLong() == 0; }

}  // namespace

absl::StatusOr<v1::Checkpoint> ReadCalls::GetLatestCheckpoint(
    const v1::GetLatestCheckpointRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  // Built from the store's records in place: neither is copied (issue 17, latest).
  v1::Checkpoint out;
  RETURN_IF_ERROR(store_->VisitLatest(
      request.model(),
      [&out](const storage::CheckpointRecord& latest, const storage::ModelRecord& model) {
        out = ToApi(latest, model);
      }));
  return out;
}

absl::StatusOr<v1::Checkpoint> ReadCalls::GetCheckpoint(
    const v1::GetCheckpointRequest& request) {
  if (!request.alias().empty() && request.step() != 0) {
    return api_errors::StepAndAlias(request.step(), request.alias());
  }
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(
          store_, request.model(),
          request.alias().empty() ? std::optional<int64_t>(request.step()) : std::nullopt,
          request.alias()));
  return ToApiWithAliases(store_, record);
}

absl::StatusOr<v1::ListModelsResponse> ReadCalls::ListModels(
    const v1::ListModelsRequest& request, const ModelFilter& visible) {
  ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  const std::string& prefix = request.prefix();
  std::string start_after;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(start_after,
                     DecodePageToken(request.page_token(), "models", prefix));
  } else if (!prefix.empty()) {
    if (absl::string_view(prefix).find_first_of(absl::string_view("\0\xff", 2)) !=
        absl::string_view::npos) {
      return absl::InvalidArgumentError(
          "prefix may not contain the bytes 0x00 or 0xff; give the start of a model "
          "name");
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
  // A caller that may not see every model gets a page of the ones it may see: it may
  // hold fewer than page_size, and its token stays valid.
  for (int i = 0; i < static_cast<int>(models.size()) && i < page_size; ++i) {
    if (!Visible(visible, models[i].name())) continue;
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

absl::StatusOr<v1::ListCheckpointsResponse> ReadCalls::ListCheckpoints(
    const v1::ListCheckpointsRequest& request) {
  RETURN_IF_ERROR(ValidateModelName(request.model()));
  ASSIGN_OR_RETURN(int page_size, PageSize(request.page_size()));
  std::optional<int64_t> start_after;
  if (!request.page_token().empty()) {
    ASSIGN_OR_RETURN(start_after,
                     DecodeStepPageToken(request.page_token(), request.model()));
  }
  ASSIGN_OR_RETURN(std::vector<storage::CheckpointRecord> records,
                   store_->ListCheckpoints(request.model(), start_after, page_size + 1));
  std::multimap<int64_t, std::string> aliases;  // step -> alias, sorted by name
  if (absl::StatusOr<storage::ModelRecord> m = store_->GetModel(request.model());
      m.ok()) {
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

absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> ReadCalls::ReadFile(
    const v1::ReadFileRequest& request) {
  ASSIGN_OR_RETURN(
      storage::CheckpointRecord record,
      ResolveStep(
          store_, request.model(),
          request.alias().empty() ? std::optional<int64_t>(request.step()) : std::nullopt,
          request.alias()));
  const storage::FileRecord* file = nullptr;
  for (const storage::FileRecord& f : record.files()) {
    if (f.name() == request.name()) file = &f;
  }
  if (file == nullptr) {
    std::vector<std::string> names;
    for (const storage::FileRecord& f : record.files()) names.push_back(f.name());
    return absl::NotFoundError(
        absl::StrCat("step ", record.step(), " of model '", request.model(),
                     "' has no file ", api_errors::Quote(request.name()),
                     "; its files are: ", absl::StrJoin(names, ", ")));
  }
  if (request.offset() < 0 || request.offset() > file->size()) {
    return absl::OutOfRangeError(absl::StrCat("offset ", request.offset(),
                                              " is outside file '", file->name(), "' of ",
                                              file->size(), " bytes"));
  }
  ASSIGN_OR_RETURN(ContentReader reader,
                   ContentReader::ForBlob(store_, BlobKey(*file),
                                          absl::StrCat("file '", file->name(), "'")));
  v1::FileInfo info;
  info.set_name(file->name());
  info.set_size(file->size());
  info.set_sha256(file->sha256());
  info.set_chunked_sha256(file->chunked_sha256());
  return std::unique_ptr<MessageSource<v1::FileChunk>>(
      new FileSource(std::move(reader), std::move(info), request.offset()));
}

absl::StatusOr<std::unique_ptr<MessageSource<v1::MetaGraphChunk>>>
ReadCalls::GetMetaGraph(const v1::GetMetaGraphRequest& request) {
  ASSIGN_OR_RETURN(storage::CheckpointRecord record,
                   ResolveStep(store_, request.model(),
                               request.has_step() ? std::optional<int64_t>(request.step())
                                                  : std::nullopt,
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
  if (IsDefault(request.options())) {
    // EXPORT_SEMANTICS D1: no option, the stored bytes verbatim.
    ASSIGN_OR_RETURN(ContentReader stored,
                     ContentReader::ForBlob(store_, GraphBlobKey(record), "file 'meta'"));
    info.set_size(stored.size());
    info.set_sha256(record.graph_sha256());
    return std::unique_ptr<MessageSource<v1::MetaGraphChunk>>(
        new GraphSource(std::move(info), std::move(stored)));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<const CachedExport> exported,
                   Export(record, request.options()));
  // The stream keeps the export alive (also after the cache dropped it) until its
  // reader has taken it all, however slowly it reads.
  ASSIGN_OR_RETURN(MemoryReservation held,
                   memory_->Reserve(static_cast<int64_t>(exported->bytes.size()),
                                    "streaming a filtered graph"));
  info.set_size(static_cast<int64_t>(exported->bytes.size()));
  info.set_sha256(exported->sha256);
  info.set_node_count(exported->node_count);
  for (const std::string& c : exported->collections) info.add_collections(c);
  for (const std::string& t : exported->tags) info.add_tags(t);
  return std::unique_ptr<MessageSource<v1::MetaGraphChunk>>(new GraphSource(
      std::move(info), std::move(exported), options_->chunk_bytes, std::move(held)));
}

absl::StatusOr<std::shared_ptr<const CachedExport>> ReadCalls::Export(
    const storage::CheckpointRecord& record, const v1::GraphOptions& options) {
  std::string options_key;
  options.SerializePartialToString(&options_key);
  const std::string cache_key = absl::StrCat(record.graph_sha256(), "/", options_key);
  if (std::shared_ptr<const CachedExport> cached = export_cache_.Lookup(cache_key)) {
    return cached;
  }
  // The export holds the stored bytes, the parsed graph and its output at once.
  ASSIGN_OR_RETURN(ContentReader reader,
                   ContentReader::ForBlob(store_, GraphBlobKey(record), "file 'meta'"));
  ASSIGN_OR_RETURN(
      MemoryReservation working,
      memory_->Reserve(RegistryServiceOptions::kExportMemoryFactor * reader.size(),
                       absl::StrCat("exporting a ", reader.size(), "-byte graph")));
  ASSIGN_OR_RETURN(std::string stored, reader.ReadAll());
  ExportOptions export_options = ExportOptionsFromApi(options);
  export_options.collection_kinds = options_->collection_kinds;
  ExportResult result;
  std::vector<std::string> tags;
  if (IsSavedModel(record)) {
    ASSIGN_OR_RETURN(
        SavedModelExport chosen,
        ExportSavedModelGraph(
            stored,
            std::vector<std::string>(options.tags().begin(), options.tags().end()),
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
  return value;
}

absl::StatusOr<v1::GetCollectionResponse> ReadCalls::GetCollection(
    const v1::GetCollectionRequest& request) {
  ASSIGN_OR_RETURN(storage::CheckpointRecord record,
                   ResolveStep(store_, request.model(),
                               request.has_step() ? std::optional<int64_t>(request.step())
                                                  : std::nullopt,
                               request.alias()));
  const bool saved_model = IsSavedModel(record);
  if (!saved_model && !request.tags().empty()) {
    return api_errors::TagsOnCheckpoint(record.model(), record.step());
  }
  if (record.graph_sha256().empty()) {
    return api_errors::NoMetaGraph(record.model(), record.step());
  }
  ASSIGN_OR_RETURN(ContentReader reader,
                   ContentReader::ForBlob(store_, GraphBlobKey(record), "file 'meta'"));
  // The stored bytes and the collections parsed out of them.
  ASSIGN_OR_RETURN(
      MemoryReservation working,
      memory_->Reserve(2 * reader.size(), absl::StrCat("reading a collection of a ",
                                                       reader.size(), "-byte graph")));
  ASSIGN_OR_RETURN(std::string graph, reader.ReadAll());
  if (saved_model) {
    ASSIGN_OR_RETURN(
        SavedModelExport chosen,
        ExportSavedModelGraph(
            graph, std::vector<std::string>(request.tags().begin(), request.tags().end()),
            ExportOptions()));
    graph = std::move(chosen.result.bytes);
  }
  const CollectionKinds* kinds = options_->collection_kinds.get();
  v1::GetCollectionResponse out;
  out.set_step(record.step());
  out.set_key(request.key());
  ASSIGN_OR_RETURN(*out.mutable_json(), CollectionToJson(graph, request.key(), kinds));
  ASSIGN_OR_RETURN(*out.mutable_text(), CollectionToText(graph, request.key(), kinds));
  return out;
}

absl::StatusOr<std::shared_ptr<WatchSubscription>> ReadCalls::Watch(
    const v1::WatchCheckpointsRequest& request, std::function<void()> notify,
    ModelFilter visible) {
  WatchFilter filter;
  filter.model = request.model();
  filter.prefix = request.prefix();
  filter.all = request.all_models();
  filter.visible = std::move(visible);
  if (!filter.model.empty()) RETURN_IF_ERROR(ValidateModelName(filter.model));
  return watch_hub_.Subscribe(std::move(filter), request.since_revision(),
                              std::move(notify));
}

}  // namespace mgreg
