#include "server/grpc_service.h"

#include <functional>
#include <memory>
#include <utility>

#include "absl/status/statusor.h"
#include "server/grpc_status.h"

namespace mgreg {
namespace {

// Runs `call` (request -> StatusOr<response>) and finishes the unary reactor with
// its result; on the pool unless `inline_call` (for calls served from memory).
template <typename Request, typename Response, typename Call>
grpc::ServerUnaryReactor* Unary(grpc::CallbackServerContext* ctx, ThreadPool* pool,
                                const Request* request, Response* response, Call call,
                                bool inline_call = false) {
  grpc::ServerUnaryReactor* reactor = ctx->DefaultReactor();
  auto work = [reactor, request, response, call = std::move(call)]() {
    absl::StatusOr<Response> result = call(*request);
    if (result.ok()) *response = std::move(*result);
    reactor->Finish(ToGrpcStatus(result.status()));
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

  SourceWriter(ThreadPool* pool, Opener open) : pool_(pool) {
    pool_->Submit([this, open = std::move(open)]() {
      absl::StatusOr<std::unique_ptr<MessageSource<Message>>> source = open();
      if (!source.ok()) {
        this->Finish(ToGrpcStatus(source.status()));
        return;
      }
      source_ = std::move(*source);
      Produce();
    });
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    pool_->Submit([this]() { Produce(); });
  }

  void OnDone() override { delete this; }

 private:
  void Produce() {
    absl::StatusOr<bool> more = source_->Next(&message_);
    if (!more.ok()) {
      this->Finish(ToGrpcStatus(more.status()));
    } else if (!*more) {
      this->Finish(grpc::Status::OK);
    } else {
      this->StartWrite(&message_);
    }
  }

  ThreadPool* const pool_;
  std::unique_ptr<MessageSource<Message>> source_;
  Message message_;
};

// Feeds PutFile messages into a FileSink, one at a time, on the pool.
class PutFileReader : public grpc::ServerReadReactor<v1::PutFileRequest> {
 public:
  PutFileReader(RegistryService* service, ThreadPool* pool, v1::PutFileResponse* response)
      : service_(service), pool_(pool), response_(response) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    pool_->Submit([this, ok]() {
      if (!ok) {
        FinishStream();
        return;
      }
      absl::Status status = Consume();
      if (!status.ok()) {
        Finish(ToGrpcStatus(status));
        return;
      }
      StartRead(&request_);
    });
  }

  void OnDone() override { delete this; }

 private:
  absl::Status Consume() {
    if (sink_ == nullptr) {
      if (!request_.has_header()) {
        return absl::InvalidArgumentError(
            "the first PutFile message must carry the header (upload_id, name, offset)");
      }
      absl::StatusOr<std::unique_ptr<FileSink>> sink =
          service_->OpenFileSink(request_.header());
      if (!sink.ok()) return sink.status();
      sink_ = std::move(*sink);
    } else if (request_.has_header()) {
      return absl::InvalidArgumentError(
          "only the first PutFile message may carry a header; open one stream per file");
    }
    return sink_->Append(request_.data());
  }

  // The client finished sending (or went away).
  void FinishStream() {
    if (sink_ == nullptr) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "PutFile stream ended before its header; send the header first"));
      return;
    }
    absl::StatusOr<v1::PutFileResponse> result = sink_->Finish();
    sink_.reset();
    if (result.ok()) *response_ = std::move(*result);
    Finish(ToGrpcStatus(result.status()));
  }

  RegistryService* const service_;
  ThreadPool* const pool_;
  v1::PutFileResponse* const response_;
  v1::PutFileRequest request_;
  std::unique_ptr<FileSink> sink_;
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

}  // namespace

grpc::ServerUnaryReactor* GrpcRegistryService::BeginUpload(
    grpc::CallbackServerContext* ctx, const v1::BeginUploadRequest* request,
    v1::Upload* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->BeginUpload(r); });
}

grpc::ServerReadReactor<v1::PutFileRequest>* GrpcRegistryService::PutFile(
    grpc::CallbackServerContext* /*ctx*/, v1::PutFileResponse* response) {
  return new PutFileReader(service_, pool_, response);
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetUpload(
    grpc::CallbackServerContext* ctx, const v1::GetUploadRequest* request,
    v1::Upload* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->GetUpload(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::CommitUpload(
    grpc::CallbackServerContext* ctx, const v1::CommitUploadRequest* request,
    v1::Checkpoint* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->CommitUpload(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::AbortUpload(
    grpc::CallbackServerContext* ctx, const v1::AbortUploadRequest* request,
    v1::AbortUploadResponse* response) {
  return Unary(ctx, pool_, request, response,
               Empty<v1::AbortUploadResponse, v1::AbortUploadRequest>(
                   [s = service_](const auto& r) { return s->AbortUpload(r); }));
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetLatestCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetLatestCheckpointRequest* request,
    v1::Checkpoint* response) {
  // Served from the store's in-memory latest pointers: no pool hop.
  return Unary(
      ctx, pool_, request, response,
      [s = service_](const auto& r) { return s->GetLatestCheckpoint(r); },
      /*inline_call=*/true);
}

grpc::ServerUnaryReactor* GrpcRegistryService::GetCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::GetCheckpointRequest* request,
    v1::Checkpoint* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->GetCheckpoint(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListModels(
    grpc::CallbackServerContext* ctx, const v1::ListModelsRequest* request,
    v1::ListModelsResponse* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->ListModels(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::ListCheckpoints(
    grpc::CallbackServerContext* ctx, const v1::ListCheckpointsRequest* request,
    v1::ListCheckpointsResponse* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->ListCheckpoints(r); });
}

grpc::ServerUnaryReactor* GrpcRegistryService::DeleteCheckpoint(
    grpc::CallbackServerContext* ctx, const v1::DeleteCheckpointRequest* request,
    v1::DeleteCheckpointResponse* response) {
  return Unary(ctx, pool_, request, response,
               [s = service_](const auto& r) { return s->DeleteCheckpoint(r); });
}

grpc::ServerWriteReactor<v1::FileChunk>* GrpcRegistryService::ReadFile(
    grpc::CallbackServerContext* /*ctx*/, const v1::ReadFileRequest* request) {
  return new SourceWriter<v1::FileChunk>(
      pool_, [s = service_, request]() { return s->ReadFile(*request); });
}

grpc::ServerWriteReactor<v1::MetaGraphChunk>* GrpcRegistryService::GetMetaGraph(
    grpc::CallbackServerContext* /*ctx*/, const v1::GetMetaGraphRequest* request) {
  return new SourceWriter<v1::MetaGraphChunk>(
      pool_, [s = service_, request]() { return s->GetMetaGraph(*request); });
}

}  // namespace mgreg
