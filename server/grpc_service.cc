#include "server/grpc_service.h"

#include <functional>
#include <memory>
#include <type_traits>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "server/core/api_errors.h"
#include "server/grpc_status.h"

namespace mgreg {
namespace {

// Calls `call` with the request, and with the caller's grant name if it takes one.
template <typename Response, typename Request, typename Call>
absl::StatusOr<Response> Invoke(const Call& call, const Request& request,
                                const std::string& principal) {
  if constexpr (std::is_invocable_v<Call, const Request&, const std::string&>) {
    return call(request, principal);
  } else {
    return call(request);
  }
}

// Authorizes the call for `scope`, runs `call` (request -> StatusOr<response>),
// finishes the unary reactor with its result and records the call as `method`; on the
// pool unless `inline_call` (for calls served from memory: run where they arrive, so
// they wait for no worker and skip CallGuard::CheckQueueWait).
template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, ThreadPool* pool,
                                CallGuard* guard, const char* method, CallScope scope,
                                const Request* request, Response* response, Call call,
                                bool inline_call = false) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  const absl::Time start = absl::Now();
  auto work = [reactor, ctx, guard, method, scope = std::move(scope), start, request,
               response, call = std::move(call), inline_call]() {
    const absl::Status waited =
        inline_call ? absl::OkStatus() : guard->CheckQueueWait(ctx, start);
    absl::StatusOr<std::string> principal =
        waited.ok() ? guard->Authorize(ctx, scope) : absl::StatusOr<std::string>(waited);
    absl::StatusOr<Response> result = principal.ok()
                                          ? Invoke<Response>(call, *request, *principal)
                                          : absl::StatusOr<Response>(principal.status());
    if (result.ok()) *response = std::move(*result);
    const grpc::Status status = ToGrpcStatus(result.status());
    guard->Done(method, status, start, static_cast<int64_t>(request->ByteSizeLong()),
                result.ok() ? static_cast<int64_t>(response->ByteSizeLong()) : 0);
    reactor->Finish(status);
  };
  if (inline_call) {
    work();
  } else {
    pool->Submit(std::move(work));
  }
  return reactor;
}

// Writes the messages of a MessageSource, producing each one on the pool.
template <typename Message>
class SourceWriter : public grpc::ServerWriteReactor<Message> {
 public:
  using Opener = std::function<absl::StatusOr<std::unique_ptr<MessageSource<Message>>>()>;

  // Authorizes `scope` on `ctx`, then opens the source; records the call as `method`.
  // The stream holds `service`'s stream_send_reservation() of its memory budget.
  SourceWriter(grpc::CallbackServerContext* ctx, RegistryService* service,
               ThreadPool* pool, CallGuard* guard, const char* method, CallScope scope,
               int64_t bytes_in, Opener open)
      : pool_(pool), guard_(guard), method_(method), bytes_in_(bytes_in) {
    if (absl::Status admit = slot_.Acquire(guard_); !admit.ok()) {
      FinishWith(ToGrpcStatus(admit));
      return;
    }
    absl::StatusOr<MemoryReservation> memory = service->memory_budget().Reserve(
        service->stream_send_reservation(), absl::StrCat(method, " (one more stream)"));
    if (!memory.ok()) {
      FinishWith(ToGrpcStatus(memory.status()));
      return;
    }
    memory_ = std::move(*memory);
    pool_->Submit([this, ctx, scope = std::move(scope), open = std::move(open)]() {
      absl::StatusOr<std::string> principal = guard_->Authorize(ctx, scope);
      if (!principal.ok()) {
        FinishWith(ToGrpcStatus(principal.status()));
        return;
      }
      absl::StatusOr<std::unique_ptr<MessageSource<Message>>> source = open();
      if (!source.ok()) {
        FinishWith(ToGrpcStatus(source.status()));
        return;
      }
      source_ = std::move(*source);
      Produce();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      FinishWith(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    pool_->Submit([this]() { Produce(); });
  }

  void OnDone() override { delete this; }

 private:
  void Produce() {
    absl::StatusOr<bool> more = source_->Next(&message_);
    if (!more.ok()) {
      FinishWith(ToGrpcStatus(more.status()));
    } else if (!*more) {
      FinishWith(grpc::Status::OK);
    } else {
      bytes_out_ += static_cast<int64_t>(message_.ByteSizeLong());
      this->StartWrite(&message_);
    }
  }

  void FinishWith(const grpc::Status& status) {
    guard_->Done(method_, status, start_, bytes_in_, bytes_out_);
    this->Finish(status);
  }

  ThreadPool* const pool_;
  CallGuard* const guard_;
  const char* const method_;
  const absl::Time start_ = absl::Now();
  const int64_t bytes_in_;
  StreamSlot slot_;
  MemoryReservation memory_;
  int64_t bytes_out_ = 0;
  std::unique_ptr<MessageSource<Message>> source_;
  Message message_;
};

// Streams a watch: events are pulled from the subscription on the pool whenever no
// write is in flight; an idle watcher holds no thread and is woken by the hub.
class WatchWriter : public grpc::ServerWriteReactor<v1::WatchEvent> {
 public:
  WatchWriter(grpc::CallbackServerContext* ctx, RegistryService* service,
              ThreadPool* pool, CallGuard* guard,
              const v1::WatchCheckpointsRequest* request)
      : core_(std::make_shared<Core>()) {
    core_->reactor = this;
    core_->pool = pool;
    core_->guard = guard;
    core_->service = service;
    std::shared_ptr<Core> core = core_;
    if (absl::Status admit = slot_.Acquire(guard); !admit.ok()) {
      absl::MutexLock lock(&core->mu);
      core->FinishLocked(ToGrpcStatus(admit));
      return;
    }
    CallScope scope{Action::kRead,
                    request->all_models()      ? ""
                    : request->model().empty() ? request->prefix()
                                               : request->model(),
                    ""};
    pool->Submit([core, ctx, scope, request]() {
      absl::StatusOr<std::string> principal = core->guard->Authorize(ctx, scope);
      absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
          absl::UnknownError("not subscribed");
      if (!principal.ok()) {
        sub = principal.status();
      } else {
        // A token limited to some models sees only their events, also when watching a
        // prefix or every model.
        sub = core->service->Watch(
            *request,
            [weak = std::weak_ptr<Core>(core)]() {
              if (auto c = weak.lock()) Core::Schedule(c);
            },
            core->guard->VisibleModels(*principal));
      }
      absl::MutexLock lock(&core->mu);
      if (!sub.ok()) {
        core->FinishLocked(ToGrpcStatus(sub.status()));
        return;
      }
      core->subscription = std::move(*sub);
      core->PumpLocked();
    });
  }

  void OnWriteDone(bool ok) override {
    std::shared_ptr<Core> core = core_;
    absl::MutexLock lock(&core->mu);
    core->writing = false;
    if (!ok) {
      core->FinishLocked(
          grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    Core::Schedule(core);
  }

  void OnCancel() override {
    absl::MutexLock lock(&core_->mu);
    core_->FinishLocked(
        grpc::Status(grpc::StatusCode::CANCELLED, "the watch was cancelled"));
  }

  void OnDone() override {
    std::shared_ptr<WatchSubscription> sub;
    {
      absl::MutexLock lock(&core_->mu);
      core_->reactor = nullptr;
      sub = std::move(core_->subscription);
    }
    if (sub != nullptr) core_->service->Unwatch(sub);
    delete this;
  }

 private:
  // State shared with pool tasks and the hub's wake-ups, which may outlive the reactor.
  struct Core {
    absl::Mutex mu;
    WatchWriter* reactor ABSL_GUARDED_BY(mu) = nullptr;
    ThreadPool* pool = nullptr;
    CallGuard* guard = nullptr;
    RegistryService* service = nullptr;
    std::shared_ptr<WatchSubscription> subscription ABSL_GUARDED_BY(mu);
    v1::WatchEvent message ABSL_GUARDED_BY(mu);
    bool writing ABSL_GUARDED_BY(mu) = false;
    bool finished ABSL_GUARDED_BY(mu) = false;
    const absl::Time start = absl::Now();
    int64_t bytes_out ABSL_GUARDED_BY(mu) = 0;

    static void Schedule(const std::shared_ptr<Core>& core) {
      core->pool->Submit([core]() {
        absl::MutexLock lock(&core->mu);
        core->PumpLocked();
      });
    }

    // Starts the next write if none is in flight and an event is available.
    void PumpLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finished || writing || subscription == nullptr) return;
      absl::StatusOr<std::optional<v1::WatchEvent>> next = subscription->Next();
      if (!next.ok()) {
        FinishLocked(ToGrpcStatus(next.status()));
        return;
      }
      if (!next->has_value()) return;  // the hub wakes us when there is more
      message = std::move(**next);
      bytes_out += static_cast<int64_t>(message.ByteSizeLong());
      writing = true;
      reactor->StartWrite(&message);
    }

    void FinishLocked(const grpc::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
      if (reactor == nullptr || finished) return;
      finished = true;
      guard->Done("WatchCheckpoints", status, start, 0, bytes_out);
      reactor->Finish(status);
    }
  };

  const std::shared_ptr<Core> core_;
  StreamSlot slot_;
};

// Wraps a Status-returning call as StatusOr<Response> with an empty response.
template <typename Response, typename Request, typename Call>
auto Empty(Call call) {
  return [call = std::move(call)](const Request& r) -> absl::StatusOr<Response> {
    absl::Status s = call(r);
    if (!s.ok()) return s;
    return Response();
  };
}

CallScope ModelScope(Action action, const std::string& model) {
  return CallScope{action, model, ""};
}

CallScope UploadScope(Action action, const std::string& upload_id) {
  return CallScope{action, "", upload_id};
}

// The guard of a service built without one: no authorization, no metrics.
CallGuard* NoGuard() {
  static CallGuard* const kGuard = new CallGuard(nullptr, nullptr, nullptr, CallLimits());
  return kGuard;
}

}  // namespace

GrpcRegistryService::GrpcRegistryService(RegistryService* service, ThreadPool* pool,
                                         CallGuard* guard,
                                         absl::Duration put_idle_timeout)
    : service_(service),
      pool_(pool),
      guard_(guard != nullptr ? guard : NoGuard()),
      put_streams_(put_idle_timeout) {}

void GrpcRegistryService::ExpireIdle() {
  for (const std::string& id : service_->ExpireIdleUploads()) {
    put_streams_.EndUpload(
        id, api_errors::UploadExpiredUnderWriter(id, service_->upload_ttl()));
  }
  put_streams_.EndIdle(absl::Now());
}

grpc::ServerUnaryReactor* GrpcRegistryService::BeginUpload(
    grpc::CallbackServerContext* ctx, const v1::BeginUploadRequest* request,
    v1::Upload* response) {
  return Unary(ctx, pool_, guard_, "BeginUpload",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_, g = guard_, ctx](
                   const v1::BeginUploadRequest& r,
                   const std::string& grant) -> absl::StatusOr<v1::Upload> {
                 return s->BeginUpload(r, g->ReuseScope(grant),
                                       g->UploadPrincipal(ctx, grant));
               });
}

grpc::ServerReadReactor<v1::PutFileRequest>* GrpcRegistryService::PutFile(
    grpc::CallbackServerContext* ctx, v1::PutFileResponse* response) {
  return put_streams_.Start(ctx, service_, pool_, guard_, response);
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetUpload(
    grpc::CallbackServerContext* ctx, const v1::GetUploadRequest* request,
    v1::Upload* response) {
  return Unary(ctx, pool_, guard_, "GetUpload",
               UploadScope(Action::kRead, request->upload_id()), request, response,
               [s = service_](const auto& r) { return s->GetUpload(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::CommitUpload(
    grpc::CallbackServerContext* ctx, const v1::CommitUploadRequest* request,
    v1::Checkpoint* response) {
  return Unary(ctx, pool_, guard_, "CommitUpload",
               UploadScope(Action::kWrite, request->upload_id()), request, response,
               [s = service_](const auto& r) { return s->CommitUpload(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::AbortUpload(
    grpc::CallbackServerContext* ctx, const v1::AbortUploadRequest* request,
    v1::AbortUploadResponse* response) {
  return Unary(ctx, pool_, guard_, "AbortUpload",
               UploadScope(Action::kWrite, request->upload_id()), request, response,
               Empty<v1::AbortUploadResponse, v1::AbortUploadRequest>(
                   [s = service_, streams = &put_streams_](const auto& r) {
                     absl::Status aborted = s->AbortUpload(r);
                     // A writer of the upload learns it now, even one that sends nothing.
                     if (aborted.ok()) {
                       streams->EndUpload(
                           r.upload_id(),
                           api_errors::UploadAbortedUnderWriter(r.upload_id()));
                     }
                     return aborted;
                   }));
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetLatestCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetLatestCheckpointRequest* request,
    v1::Checkpoint* response) {
  // Served from the store's in-memory latest pointers: no pool hop.
  return Unary(
      ctx, pool_, guard_, "GetLatestCheckpoint",
      ModelScope(Action::kRead, request->model()), request, response,
      [s = service_](const auto& r) { return s->GetLatestCheckpoint(r); },
      /*inline_call=*/true);
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointRequest* request,
    v1::Checkpoint* response) {
  return Unary(ctx, pool_, guard_, "GetCheckpoint",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->GetCheckpoint(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListModels(
    grpc::CallbackServerContext* ctx, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  // Any reader may list; a token limited to model prefixes sees only its models.
  return Unary(ctx, pool_, guard_, "ListModels", CallScope{Action::kRead, "", ""},
               request, response,
               [s = service_, g = guard_](const v1::ListModelsRequest& r,
                                          const std::string& principal) {
                 return s->ListModels(r, g->VisibleModels(principal));
               });
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListCheckpoints(
    grpc::CallbackServerContext* ctx, const v1::ListCheckpointsRequest* request,
    v1::ListCheckpointsResponse* response) {
  return Unary(ctx, pool_, guard_, "ListCheckpoints",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->ListCheckpoints(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::DeleteCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::DeleteCheckpointRequest* request,
    v1::DeleteCheckpointResponse* response) {
  return Unary(ctx, pool_, guard_, "DeleteCheckpoint",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_](const auto& r) { return s->DeleteCheckpoint(r); });
}

grpc::ServerWriteReactor<v1::FileChunk>* GrpcRegistryService::ReadFile(
    grpc::CallbackServerContext* ctx, const v1::ReadFileRequest* request) {
  return new SourceWriter<v1::FileChunk>(
      ctx, service_, pool_, guard_, "ReadFile",
      ModelScope(Action::kRead, request->model()),
      static_cast<int64_t>(request->ByteSizeLong()),
      [s = service_, request]() { return s->ReadFile(*request); });
}

grpc::ServerWriteReactor<v1::MetaGraphChunk>* GrpcRegistryService::GetMetaGraph(
    grpc::CallbackServerContext* ctx, const v1::GetMetaGraphRequest* request) {
  return new SourceWriter<v1::MetaGraphChunk>(
      ctx, service_, pool_, guard_, "GetMetaGraph",
      ModelScope(Action::kRead, request->model()),
      static_cast<int64_t>(request->ByteSizeLong()),
      [s = service_, request]() { return s->GetMetaGraph(*request); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::Backup(grpc::CallbackServerContext* ctx,
                                                      const v1::BackupRequest* request,
                                                      v1::BackupResponse* response) {
  return Unary(ctx, pool_, guard_, "Backup", CallScope{Action::kAdmin, "", ""}, request,
               response, [s = service_](const auto& r) { return s->Backup(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::CheckStore(
    grpc::CallbackServerContext* ctx, const v1::CheckStoreRequest* request,
    v1::CheckStoreResponse* response) {
  return Unary(ctx, pool_, guard_, "CheckStore", CallScope{Action::kAdmin, "", ""},
               request, response,
               [s = service_](const auto& r) { return s->CheckStore(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::FindChunks(
    grpc::CallbackServerContext* ctx, const v1::FindChunksRequest* request,
    v1::FindChunksResponse* response) {
  return Unary(ctx, pool_, guard_, "FindChunks",
               UploadScope(Action::kWrite, request->upload_id()), request, response,
               [s = service_, g = guard_](const v1::FindChunksRequest& r,
                                          const std::string& grant) {
                 return s->FindChunks(r, g->ReuseScope(grant));
               });
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetModel(
    grpc::CallbackServerContext* ctx, const v1::GetModelRequest* request,
    v1::Model* response) {
  return Unary(ctx, pool_, guard_, "GetModel",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->GetModel(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::SetRetention(
    grpc::CallbackServerContext* ctx, const v1::SetRetentionRequest* request,
    v1::Model* response) {
  return Unary(ctx, pool_, guard_, "SetRetention",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_](const auto& r) { return s->SetRetention(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::PinCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::PinCheckpointRequest* request,
    v1::Checkpoint* response) {
  return Unary(ctx, pool_, guard_, "PinCheckpoint",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_](const auto& r) { return s->PinCheckpoint(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::SetAlias(
    grpc::CallbackServerContext* ctx, const v1::SetAliasRequest* request,
    v1::Model* response) {
  return Unary(ctx, pool_, guard_, "SetAlias",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_](const auto& r) { return s->SetAlias(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::RemoveAlias(
    grpc::CallbackServerContext* ctx, const v1::RemoveAliasRequest* request,
    v1::Model* response) {
  return Unary(ctx, pool_, guard_, "RemoveAlias",
               ModelScope(Action::kWrite, request->model()), request, response,
               [s = service_](const auto& r) { return s->RemoveAlias(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::InspectCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::InspectCheckpointRequest* request,
    v1::InspectCheckpointResponse* response) {
  return Unary(ctx, pool_, guard_, "InspectCheckpoint",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->InspectCheckpoint(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetCheckpointState(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointStateRequest* request,
    tensorflow::CheckpointState* response) {
  return Unary(ctx, pool_, guard_, "GetCheckpointState",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->GetCheckpointState(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetCollection(
    grpc::CallbackServerContext* ctx, const v1::GetCollectionRequest* request,
    v1::GetCollectionResponse* response) {
  return Unary(ctx, pool_, guard_, "GetCollection",
               ModelScope(Action::kRead, request->model()), request, response,
               [s = service_](const auto& r) { return s->GetCollection(r); });
}

grpc::ServerWriteReactor<v1::WatchEvent>* GrpcRegistryService::WatchCheckpoints(
    grpc::CallbackServerContext* ctx, const v1::WatchCheckpointsRequest* request) {
  return new WatchWriter(ctx, service_, pool_, guard_, request);
}

}  // namespace mgreg
