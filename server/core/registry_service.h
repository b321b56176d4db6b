// The registry's rules, independent of any transport: validates requests, runs uploads,
// translates between API messages (mgreg.v1) and storage records, and reads graphs and
// files back. The gRPC adapter (grpc_service.h) only unpacks, calls and converts.
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
#include "metagraph/collection_kinds.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/export_cache.h"
#include "server/core/memory_budget.h"
#include "server/core/reusable_content.h"
#include "server/core/uploads.h"
#include "server/core/watch_hub.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"
#include "storage/store.h"

namespace mgreg {

struct RegistryServiceOptions {
  // Bytes per chunk of uploaded files (files are cut at multiples of it) and per
  // streamed message when reading.
  size_t chunk_bytes = 1u << 20;
  // Uploads idle for longer are aborted and their staged bytes collected.
  absl::Duration upload_ttl = absl::Hours(1);
  // How long a PutFile stream holds its file without a message; after that a stream on
  // any server sharing the store may take the file over (e.g. the first server died).
  // Capped at upload_ttl / 2, so that a writer's renewals keep its upload alive.
  absl::Duration upload_writer_lease = absl::Seconds(30);
  // Upper bound of the bytes kept by the filtered-export cache.
  size_t export_cache_bytes = 256u << 20;
  // Retention of models without a policy of their own (max_to_keep 0 keeps all).
  storage::RetentionPolicy default_retention;
  // Largest checkpoint (sum of its file sizes) an upload may hold, announced at
  // BeginUpload or learned from PutFile headers; 0 = no limit.
  int64_t max_upload_bytes = 0;
  // Largest .meta an upload may hold (its export holds it parsed); 0 = no limit.
  int64_t max_meta_bytes = kDefaultMaxMetaBytes;
  // Working memory of graph exports, .meta validation and server streams (see
  // MemoryBudget); 0 = no limit.
  int64_t memory_budget_bytes = kDefaultMemoryBudgetBytes;
  // The store's data dir (empty in memory): backups may not go inside it.
  std::string data_dir;
  // Collection kinds the config registers besides TensorFlow's (null: none): decoded by
  // GetCollection, filtered and stripped by GetMetaGraph's export_scope.
  std::shared_ptr<const CollectionKinds> collection_kinds;

  static constexpr int64_t kDefaultMaxMetaBytes = 128ll << 20;
  static constexpr int64_t kDefaultMemoryBudgetBytes = 1ll << 30;
  // Working memory an export reserves per byte of its stored .meta (the stored bytes,
  // the parsed graph and the output at once; measured below 4.5x, see README), and a
  // commit's .meta validation.
  static constexpr int64_t kExportMemoryFactor = 5;
  static constexpr int64_t kValidateMemoryFactor = 3;
};

// Produces the messages of a server stream one at a time.
template <typename Message>
class MessageSource {
 public:
  virtual ~MessageSource() = default;
  // Fills `out` and returns true, or returns false at the end of the stream.
  virtual absl::StatusOr<bool> Next(Message* out) = 0;
};

class RegistryService {
 public:
  // `store` must outlive the service.
  RegistryService(Store* store, RegistryServiceOptions options);
  ~RegistryService();

  // `scope` (here, in OpenFileSink and FindChunks) is what the caller may read: stored
  // content counts as held for it only if it may reuse it (see ReusableContent).
  // INVALID_ARGUMENT for a bad name, step, basename or manifest (no index, duplicate or
  // malformed file names, bad sizes or digests); ALREADY_EXISTS if the step exists with
  // other files and !overwrite.
  absl::StatusOr<v1::Upload> BeginUpload(
      const v1::BeginUploadRequest& request,
      const ContentScope& scope = ContentScope::Everything());
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
  // INVALID_ARGUMENT for a page token that is malformed or from another listing.
  absl::StatusOr<v1::ListModelsResponse> ListModels(const v1::ListModelsRequest& request);
  absl::StatusOr<v1::ListCheckpointsResponse> ListCheckpoints(
      const v1::ListCheckpointsRequest& request);
  absl::StatusOr<v1::DeleteCheckpointResponse> DeleteCheckpoint(
      const v1::DeleteCheckpointRequest& request);

  // NOT_FOUND for an unknown model, step or file; OUT_OF_RANGE for an offset past the end.
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
      std::function<bool(absl::string_view model)> visible = nullptr);
  void Unwatch(const std::shared_ptr<WatchSubscription>& subscription);
  // Ends every watch (server shutdown).
  void CloseWatches();
  size_t watcher_count();

  const ExportCache& export_cache() const { return export_cache_; }
  // The working-memory budget; the gRPC adapter reserves its streams' buffers from it.
  MemoryBudget& memory_budget() { return memory_budget_; }
  // What one server stream (ReadFile, GetMetaGraph) pins at most while its reader does
  // not read: the message being written and gRPC's serialized copy of it.
  int64_t stream_send_reservation() const {
    return 2 * static_cast<int64_t>(options_.chunk_bytes) + (256 << 10);
  }

 private:
  // The record of `step`, of the step `alias` names, or of the latest step when
  // neither is given. INVALID_ARGUMENT if both are given.
  absl::StatusOr<storage::CheckpointRecord> ResolveStep(absl::string_view model,
                                                        std::optional<int64_t> step,
                                                        absl::string_view alias = "");
  // The API form of a record, with its aliases.
  absl::StatusOr<v1::Checkpoint> ToApiWithAliases(const storage::CheckpointRecord& record);
  absl::StatusOr<v1::Model> ModelToApi(absl::string_view model);
  // Applies the model's retention policy (after a commit or a policy change).
  absl::Status ApplyRetention(absl::string_view model);
  absl::StatusOr<std::string> ReadBlob(absl::string_view sha256_hex);
  absl::Status ValidateCheckpointFiles(const UploadSession& session);
  // Adds an announced file to an upload; marks it complete if the store holds it and
  // `scope` may reuse it.
  absl::Status AddUploadFile(UploadSession& session, const v1::FileInfo& f,
                             const ContentScope& scope)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(session.mu);
  // True if `scope` may name the chunk (32-byte SHA-256) instead of sending it: the
  // store holds it, and a step `scope` may read, `session` itself or another open upload
  // `scope` began has it.
  absl::StatusOr<bool> MayReuseChunk(UploadSession& session, const ContentScope& scope,
                                     const std::string& sha256_raw);

  Store* const store_;
  const RegistryServiceOptions options_;
  UploadManager uploads_;
  ExportCache export_cache_;
  MemoryBudget memory_budget_;
  WatchHub watch_hub_;
  ReusableContent reusable_;
  // Serializes retention decisions per service (they read, then delete).
  absl::Mutex retention_mu_;
  // One backup at a time: a second one into the same directory then finds it exists.
  absl::Mutex backup_mu_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_REGISTRY_SERVICE_H_
