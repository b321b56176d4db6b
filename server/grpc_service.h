// The gRPC adapter: mgreg.v1.Registry on the callback API over RegistryService.
// Handlers only unpack, call and convert; blocking work runs on the ThreadPool, never
// on a reactor thread.
#ifndef MGREG_SERVER_GRPC_SERVICE_H_
#define MGREG_SERVER_GRPC_SERVICE_H_

#include "absl/time/time.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/call_guard.h"
#include "server/core/registry_service.h"
#include "server/put_file_streams.h"
#include "server/thread_pool.h"

namespace mgreg {

class GrpcRegistryService final : public v1::Registry::CallbackService {
 public:
  // `service`, `pool` and `guard` must outlive this object and every call it serves.
  // `guard` authorizes and records every call; null = allow all, record nothing.
  // A PutFile stream waiting longer than `put_idle_timeout` for its next message is
  // ended (zero: never).
  GrpcRegistryService(RegistryService* service, ThreadPool* pool,
                      CallGuard* guard = nullptr,
                      absl::Duration put_idle_timeout = absl::ZeroDuration());

  // Expires idle uploads (the service's TTL) and ends the PutFile streams writing
  // them, and ends PutFile streams idle past the bound. Called periodically.
  void ExpireIdle();

  grpc::ServerUnaryReactor* BeginUpload(grpc::CallbackServerContext* ctx,
                                        const v1::BeginUploadRequest* request,
                                        v1::Upload* response) override;
  grpc::ServerReadReactor<v1::PutFileRequest>* PutFile(
      grpc::CallbackServerContext* ctx, v1::PutFileResponse* response) override;
  grpc::ServerUnaryReactor* GetUpload(grpc::CallbackServerContext* ctx,
                                      const v1::GetUploadRequest* request,
                                      v1::Upload* response) override;
  grpc::ServerUnaryReactor* CommitUpload(grpc::CallbackServerContext* ctx,
                                         const v1::CommitUploadRequest* request,
                                         v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* AbortUpload(grpc::CallbackServerContext* ctx,
                                        const v1::AbortUploadRequest* request,
                                        v1::AbortUploadResponse* response) override;
  grpc::ServerUnaryReactor* GetLatestCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::GetLatestCheckpointRequest* request,
      v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* GetCheckpoint(grpc::CallbackServerContext* ctx,
                                          const v1::GetCheckpointRequest* request,
                                          v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* ctx,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;
  grpc::ServerUnaryReactor* ListCheckpoints(
      grpc::CallbackServerContext* ctx, const v1::ListCheckpointsRequest* request,
      v1::ListCheckpointsResponse* response) override;
  grpc::ServerUnaryReactor* DeleteCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::DeleteCheckpointRequest* request,
      v1::DeleteCheckpointResponse* response) override;
  grpc::ServerWriteReactor<v1::FileChunk>* ReadFile(
      grpc::CallbackServerContext* ctx, const v1::ReadFileRequest* request) override;
  grpc::ServerWriteReactor<v1::MetaGraphChunk>* GetMetaGraph(
      grpc::CallbackServerContext* ctx, const v1::GetMetaGraphRequest* request) override;
  grpc::ServerUnaryReactor* Backup(grpc::CallbackServerContext* ctx,
                                   const v1::BackupRequest* request,
                                   v1::BackupResponse* response) override;
  grpc::ServerUnaryReactor* GetCollection(grpc::CallbackServerContext* ctx,
                                          const v1::GetCollectionRequest* request,
                                          v1::GetCollectionResponse* response) override;
  grpc::ServerUnaryReactor* CheckStore(grpc::CallbackServerContext* ctx,
                                       const v1::CheckStoreRequest* request,
                                       v1::CheckStoreResponse* response) override;
  grpc::ServerUnaryReactor* FindChunks(grpc::CallbackServerContext* ctx,
                                       const v1::FindChunksRequest* request,
                                       v1::FindChunksResponse* response) override;
  grpc::ServerUnaryReactor* GetModel(grpc::CallbackServerContext* ctx,
                                     const v1::GetModelRequest* request,
                                     v1::Model* response) override;
  grpc::ServerUnaryReactor* SetRetention(grpc::CallbackServerContext* ctx,
                                         const v1::SetRetentionRequest* request,
                                         v1::Model* response) override;
  grpc::ServerUnaryReactor* PinCheckpoint(grpc::CallbackServerContext* ctx,
                                          const v1::PinCheckpointRequest* request,
                                          v1::Checkpoint* response) override;
  grpc::ServerUnaryReactor* SetAlias(grpc::CallbackServerContext* ctx,
                                     const v1::SetAliasRequest* request,
                                     v1::Model* response) override;
  grpc::ServerUnaryReactor* RemoveAlias(grpc::CallbackServerContext* ctx,
                                        const v1::RemoveAliasRequest* request,
                                        v1::Model* response) override;
  grpc::ServerUnaryReactor* InspectCheckpoint(
      grpc::CallbackServerContext* ctx, const v1::InspectCheckpointRequest* request,
      v1::InspectCheckpointResponse* response) override;
  grpc::ServerUnaryReactor* GetCheckpointState(
      grpc::CallbackServerContext* ctx, const v1::GetCheckpointStateRequest* request,
      tensorflow::CheckpointState* response) override;
  grpc::ServerWriteReactor<v1::WatchEvent>* WatchCheckpoints(
      grpc::CallbackServerContext* ctx,
      const v1::WatchCheckpointsRequest* request) override;

 private:
  RegistryService* const service_;
  ThreadPool* const pool_;
  CallGuard* const guard_;
  PutFileStreams put_streams_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_GRPC_SERVICE_H_
