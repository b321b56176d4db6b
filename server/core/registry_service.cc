#include "server/core/registry_service.h"

#include <utility>

namespace mgreg {

RegistryService::RegistryService(Store* store, RegistryServiceOptions options)
    : options_(std::move(options)),
      memory_budget_(options_.memory_budget_bytes, "limits.memory_budget_bytes"),
      settings_(store, &options_),
      uploads_(store, &options_, &memory_budget_, &settings_),
      reads_(store, &options_, &memory_budget_),
      inspect_(store),
      admin_(store, &options_) {}

RegistryService::~RegistryService() = default;

// Uploads (upload_calls.cc).

absl::StatusOr<v1::Upload> RegistryService::BeginUpload(
    const v1::BeginUploadRequest& request, const ContentScope& scope,
    const std::string& writer) {
  return uploads_.BeginUpload(request, scope, writer);
}

absl::StatusOr<std::unique_ptr<FileSink>> RegistryService::OpenFileSink(
    const v1::PutFileRequest::Header& header, const ContentScope& scope) {
  return uploads_.OpenFileSink(header, scope);
}

absl::StatusOr<v1::Upload> RegistryService::GetUpload(
    const v1::GetUploadRequest& request) {
  return uploads_.GetUpload(request);
}

absl::StatusOr<v1::Checkpoint> RegistryService::CommitUpload(
    const v1::CommitUploadRequest& request) {
  return uploads_.CommitUpload(request);
}

absl::Status RegistryService::AbortUpload(const v1::AbortUploadRequest& request) {
  return uploads_.AbortUpload(request);
}

absl::StatusOr<v1::FindChunksResponse> RegistryService::FindChunks(
    const v1::FindChunksRequest& request, const ContentScope& scope) {
  return uploads_.FindChunks(request, scope);
}

std::vector<std::string> RegistryService::ExpireIdleUploads() {
  return uploads_.ExpireIdleUploads();
}

absl::StatusOr<std::string> RegistryService::UploadModel(absl::string_view upload_id) {
  return uploads_.UploadModel(upload_id);
}

size_t RegistryService::open_uploads() { return uploads_.open_uploads(); }

// Reads and watches (read_calls.cc).

absl::StatusOr<v1::Checkpoint> RegistryService::GetLatestCheckpoint(
    const v1::GetLatestCheckpointRequest& request) {
  return reads_.GetLatestCheckpoint(request);
}

absl::StatusOr<v1::Checkpoint> RegistryService::GetCheckpoint(
    const v1::GetCheckpointRequest& request) {
  return reads_.GetCheckpoint(request);
}

absl::StatusOr<v1::ListModelsResponse> RegistryService::ListModels(
    const v1::ListModelsRequest& request, const ModelFilter& visible) {
  return reads_.ListModels(request, visible);
}

absl::StatusOr<v1::ListCheckpointsResponse> RegistryService::ListCheckpoints(
    const v1::ListCheckpointsRequest& request) {
  return reads_.ListCheckpoints(request);
}

absl::StatusOr<std::unique_ptr<MessageSource<v1::FileChunk>>> RegistryService::ReadFile(
    const v1::ReadFileRequest& request) {
  return reads_.ReadFile(request);
}

absl::StatusOr<std::unique_ptr<MessageSource<v1::MetaGraphChunk>>>
RegistryService::GetMetaGraph(const v1::GetMetaGraphRequest& request) {
  return reads_.GetMetaGraph(request);
}

absl::StatusOr<v1::GetCollectionResponse> RegistryService::GetCollection(
    const v1::GetCollectionRequest& request) {
  return reads_.GetCollection(request);
}

absl::StatusOr<std::shared_ptr<WatchSubscription>> RegistryService::Watch(
    const v1::WatchCheckpointsRequest& request, std::function<void()> notify,
    ModelFilter visible) {
  return reads_.Watch(request, std::move(notify), std::move(visible));
}

void RegistryService::Unwatch(const std::shared_ptr<WatchSubscription>& subscription) {
  reads_.watch_hub().Unsubscribe(subscription);
}

void RegistryService::CloseWatches() { reads_.watch_hub().Close(); }

size_t RegistryService::watcher_count() { return reads_.watch_hub().watcher_count(); }

// Settings and deletes (settings_calls.cc).

absl::StatusOr<v1::Model> RegistryService::GetModel(const v1::GetModelRequest& request) {
  return settings_.GetModel(request);
}

absl::StatusOr<v1::Model> RegistryService::SetRetention(
    const v1::SetRetentionRequest& request) {
  return settings_.SetRetention(request);
}

absl::StatusOr<v1::Checkpoint> RegistryService::PinCheckpoint(
    const v1::PinCheckpointRequest& request) {
  return settings_.PinCheckpoint(request);
}

absl::StatusOr<v1::Model> RegistryService::SetAlias(const v1::SetAliasRequest& request) {
  return settings_.SetAlias(request);
}

absl::StatusOr<v1::Model> RegistryService::RemoveAlias(
    const v1::RemoveAliasRequest& request) {
  return settings_.RemoveAlias(request);
}

absl::StatusOr<v1::DeleteCheckpointResponse> RegistryService::DeleteCheckpoint(
    const v1::DeleteCheckpointRequest& request) {
  return settings_.DeleteCheckpoint(request);
}

// Inspection (inspect_calls.cc).

absl::StatusOr<v1::InspectCheckpointResponse> RegistryService::InspectCheckpoint(
    const v1::InspectCheckpointRequest& request) {
  return inspect_.InspectCheckpoint(request);
}

absl::StatusOr<tensorflow::CheckpointState> RegistryService::GetCheckpointState(
    const v1::GetCheckpointStateRequest& request) {
  return inspect_.GetCheckpointState(request);
}

// Administration (admin_calls.cc).

absl::StatusOr<v1::BackupResponse> RegistryService::Backup(
    const v1::BackupRequest& request) {
  return admin_.Backup(request);
}

absl::StatusOr<v1::CheckStoreResponse> RegistryService::CheckStore(
    const v1::CheckStoreRequest& request) {
  return admin_.CheckStore(request);
}

}  // namespace mgreg
