// The registry's rules, independent of any transport: a facade over one class per
// group of calls (upload_calls.h, read_calls.h, settings_calls.h, inspect_calls.h,
// admin_calls.h), which share request validation (validation.h), the translation
// between storage records and API messages (api_translation.h) and one reader of
// chunked content (content_reader.h). The gRPC adapter (server/grpc_service.h) only
// unpacks, calls and converts.
//
// Thread safety: all methods may be called concurrently. A FileSink or MessageSource is
// used by one thread at a time.
#ifndef MGREG_SERVER_CORE_REGISTRY_SERVICE_H_
#define MGREG_SERVER_CORE_REGISTRY_SERVICE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/admin_calls.h"
#include "server/core/export_cache.h"
#include "server/core/inspect_calls.h"
#include "server/core/memory_budget.h"
#include "server/core/read_calls.h"
#include "server/core/reusable_content.h"
#include "server/core/service_options.h"
#include "server/core/settings_calls.h"
#include "server/core/upload_calls.h"
#include "server/core/upload_file_sink.h"
#include "server/core/uploads.h"
#include "server/core/watch_hub.h"
#include "storage/store.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"

namespace mgreg {

class RegistryService {
 public:
  // `store` must outlive the service.
  RegistryService(Store* store, RegistryServiceOptions options);
  ~RegistryService();

  // `scope` (here, in OpenFileSink and FindChunks) is what the caller may read: stored
  // content counts as held for it only if it may reuse it (see ReusableContent).
  // `writer` is who counts as one writer for max_concurrent_uploads_per_writer.
  // RESOURCE_EXHAUSTED if the service holds max_open_uploads open uploads or `writer`
  // max_concurrent_uploads_per_writer (UploadQuota); INVALID_ARGUMENT for a bad name,
  // step, basename or manifest (no index, duplicate or malformed file names, bad sizes
  // or digests); ALREADY_EXISTS if the step exists with other files and !overwrite.
  absl::StatusOr<v1::Upload> BeginUpload(
      const v1::BeginUploadRequest& request,
      const ContentScope& scope = ContentScope::Everything(),
      const std::string& writer = "");
  // NOT_FOUND for an unknown or expired upload or a file not in its manifest;
  // FAILED_PRECONDITION if the file is being written by another stream or the offset is
  // neither 0 nor the bytes the server holds.
  absl::StatusOr<std::unique_ptr<FileSink>> OpenFileSink(
      const v1::PutFileRequest::Header& header,
      const ContentScope& scope = ContentScope::Everything());
  absl::StatusOr<v1::Upload> GetUpload(const v1::GetUploadRequest& request);
  // FAILED_PRECONDITION listing incomplete files (the upload stays open);
  // INVALID_ARGUMENT naming the file if validation fails; ALREADY_EXISTS.
  absl::StatusOr<v1::Checkpoint> CommitUpload(const v1::CommitUploadRequest& request);
  absl::Status AbortUpload(const v1::AbortUploadRequest& request);

  absl::StatusOr<v1::Checkpoint> GetLatestCheckpoint(
      const v1::GetLatestCheckpointRequest& request);
  absl::StatusOr<v1::Checkpoint> GetCheckpoint(const v1::GetCheckpointRequest& request);
  // Only the models `visible` accepts (null: all); a page may then hold fewer than
  // page_size, and its token stays valid. INVALID_ARGUMENT for a page token that is
  // malformed or from another listing.
  absl::StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& request,
                                                    const ModelFilter& visible = nullptr);
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(
      const v1::ListCheckpointsRequest& request);
  absl::StatusOr<v1::DeleteCheckpointResponse> DeleteCheckpoint(
      const v1::DeleteCheckpointRequest& request);

  // NOT_FOUND for an unknown model, step or file; OUT_OF_RANGE for an offset past the
  // end.
  absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> ReadFile(
      const v1::ReadFileRequest& request);
  // NOT_FOUND if the step has no .meta; FAILED_PRECONDITION where TensorFlow's export
  // raises (EXPORT_SEMANTICS D6).
  absl::StatusOr<std::unique_ptr<MessageSource<v1::MetaGraphChunk>>> GetMetaGraph(
      const v1::GetMetaGraphRequest& request);
  // One collection decoded (TensorFlow's registered kinds and options.collection_kinds).
  // NOT_FOUND if the step has no graph or the graph no such collection (listing its
  // keys); INVALID_ARGUMENT for tags on a checkpoint, or a SavedModel whose graphs the
  // tags do not choose one of.
  absl::StatusOr<v1::GetCollectionResponse> GetCollection(
      const v1::GetCollectionRequest& request);

  // Aborts uploads idle for longer than the TTL. Returns the ids of those aborted.
  std::vector<std::string> ExpireIdleUploads();
  absl::Duration upload_ttl() const { return options_.upload_ttl; }

  // The model of an open upload (for authorizing calls that name only the upload).
  // NOT_FOUND if no such upload is open.
  absl::StatusOr<std::string> UploadModel(absl::string_view upload_id);
  // How many uploads are open.
  size_t open_uploads();

  // Admin: a consistent copy of the store in `request.dir` (Store::Backup's errors).
  absl::StatusOr<v1::BackupResponse> Backup(const v1::BackupRequest& request);
  // Admin: Store::Check's report (inconsistencies are in the response, not errors).
  absl::StatusOr<v1::CheckStoreResponse> CheckStore(const v1::CheckStoreRequest& request);

  // Which chunks the store holds that `scope` may reuse (a step it may read, the upload
  // itself or another open upload `scope` began has them), for a writer's chunk-level
  // deduplication.
  // NOT_FOUND for an unknown upload; INVALID_ARGUMENT for a digest that is not 32 bytes
  // or more than 100000 of them.
  absl::StatusOr<v1::FindChunksResponse> FindChunks(
      const v1::FindChunksRequest& request,
      const ContentScope& scope = ContentScope::Everything());

  // NOT_FOUND if the store knows nothing of the model.
  absl::StatusOr<v1::Model> GetModel(const v1::GetModelRequest& request);
  // Sets the policy and applies it at once. INVALID_ARGUMENT for a negative
  // max_to_keep or keep_every_n_hours; NOT_FOUND if the store knows nothing of the
  // model (no step, no settings) and !allow_missing.
  absl::StatusOr<v1::Model> SetRetention(const v1::SetRetentionRequest& request);
  // NOT_FOUND for an unknown model or step.
  absl::StatusOr<v1::Checkpoint> PinCheckpoint(const v1::PinCheckpointRequest& request);
  // INVALID_ARGUMENT for an alias that is not an identifier; NOT_FOUND for an unknown
  // model or step (SetAlias) or alias (RemoveAlias).
  absl::StatusOr<v1::Model> SetAlias(const v1::SetAliasRequest& request);
  absl::StatusOr<v1::Model> RemoveAlias(const v1::RemoveAliasRequest& request);
  // NOT_FOUND for an unknown model, step or alias; INVALID_ARGUMENT for an .index that
  // cannot be read.
  absl::StatusOr<v1::InspectCheckpointResponse> InspectCheckpoint(
      const v1::InspectCheckpointRequest& request);
  // NOT_FOUND if the model has no step.
  absl::StatusOr<tensorflow::CheckpointState> GetCheckpointState(
      const v1::GetCheckpointStateRequest& request);

  // Starts a watch (see WatchHub::Subscribe); only events of models `visible` accepts
  // are delivered (null: all). INVALID_ARGUMENT for a bad request, NOT_FOUND for an
  // unknown model, OUT_OF_RANGE for a revision no longer retained.
  absl::StatusOr<std::shared_ptr<WatchSubscription>> Watch(
      const v1::WatchCheckpointsRequest& request, std::function<void()> notify,
      ModelFilter visible = nullptr);
  void Unwatch(const std::shared_ptr<WatchSubscription>& subscription);
  // Ends every watch (server shutdown).
  void CloseWatches();
  size_t watcher_count();

  const ExportCache& export_cache() const { return reads_.export_cache(); }
  // The working-memory budget; the gRPC adapter reserves its streams' buffers from it.
  MemoryBudget& memory_budget() { return memory_budget_; }
  // What one server stream (ReadFile, GetMetaGraph) pins at most while its reader does
  // not read: the message being written and gRPC's serialized copy of it.
  int64_t stream_send_reservation() const {
    return 2 * static_cast<int64_t>(options_.chunk_bytes) + (256 << 10);
  }

 private:
  const RegistryServiceOptions options_;
  MemoryBudget memory_budget_;
  SettingsCalls settings_;
  UploadCalls uploads_;
  ReadCalls reads_;
  InspectCalls inspect_;
  AdminCalls admin_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_REGISTRY_SERVICE_H_
