// Client: the channel, and every call that is not a push or a restore. Each unary RPC
// goes through Impl::Call (client_impl.h): one context, deadline, token and status
// conversion for all of them.
#include "client/client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <functional>
#include <utility>

#include "client/client_impl.h"
#include "client/grpc_status.h"
#include "client/local_file.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg {

void Client::Impl::PrepareContext(grpc::ClientContext* ctx, CallDeadline deadline) const {
  if (!options.token.empty())
    ctx->AddMetadata("authorization", "Bearer " + options.token);
  if (deadline == CallDeadline::kUnary) {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(options.unary_timeout));
  }
}

Client::Client(const ClientOptions& options) : impl_(std::make_unique<Impl>()) {
  impl_->options = options;
}

Client::~Client() = default;

absl::StatusOr<std::unique_ptr<Client>> Client::Connect(const ClientOptions& options) {
  if (options.target.empty()) {
    return absl::InvalidArgumentError("no server address; pass --server host:port");
  }
  std::unique_ptr<Client> client(new Client(options));
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_message_bytes);
  args.SetMaxSendMessageSize(options.max_message_bytes);
  // Keepalive during calls (issue 11 item 8): a watch or transfer on a connection whose
  // server host vanished fails within ~80 s instead of hanging; the server accepts pings
  // every 10 s or more.
  args.SetInt(GRPC_ARG_KEEPALIVE_TIME_MS, 60000);
  args.SetInt(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 20000);
  args.SetInt(GRPC_ARG_HTTP2_MAX_PINGS_WITHOUT_DATA, 0);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (options.use_tls) {
    if (options.cert_pem.empty() != options.key_pem.empty()) {
      return absl::InvalidArgumentError(
          "a client certificate needs both --cert and --key (PEM files)");
    }
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.ca_cert_pem;
    ssl.pem_cert_chain = options.cert_pem;
    ssl.pem_private_key = options.key_pem;
    credentials = grpc::SslCredentials(ssl);
  }
  client->impl_->channel = grpc::CreateCustomChannel(options.target, credentials, args);
  client->impl_->stub = v1::Registry::NewStub(client->impl_->channel);
  return client;
}

absl::StatusOr<v1::Upload> Client::BeginUpload(const v1::BeginUploadRequest& request) {
  return impl_->Call(&v1::Registry::Stub::BeginUpload, request);
}

absl::StatusOr<v1::Upload> Client::GetUpload(const std::string& upload_id) {
  v1::GetUploadRequest request;
  request.set_upload_id(upload_id);
  return impl_->Call(&v1::Registry::Stub::GetUpload, request);
}

absl::StatusOr<v1::Checkpoint> Client::CommitUpload(const std::string& upload_id) {
  v1::CommitUploadRequest request;
  request.set_upload_id(upload_id);
  return impl_->Call(&v1::Registry::Stub::CommitUpload, request);
}

absl::Status Client::AbortUpload(const std::string& upload_id) {
  v1::AbortUploadRequest request;
  request.set_upload_id(upload_id);
  return impl_->Call(&v1::Registry::Stub::AbortUpload, request).status();
}

absl::StatusOr<v1::Checkpoint> Client::GetLatestCheckpoint(const std::string& model) {
  v1::GetLatestCheckpointRequest request;
  request.set_model(model);
  return impl_->Call(&v1::Registry::Stub::GetLatestCheckpoint, request);
}

absl::StatusOr<v1::Checkpoint> Client::GetCheckpoint(const std::string& model,
                                                     int64_t step) {
  v1::GetCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  return impl_->Call(&v1::Registry::Stub::GetCheckpoint, request);
}

absl::StatusOr<v1::Checkpoint> Client::ResolveCheckpoint(const std::string& model,
                                                         const StepRef& ref) {
  if (ref.alias.empty() && !ref.step.has_value()) return GetLatestCheckpoint(model);
  v1::GetCheckpointRequest request;
  request.set_model(model);
  if (ref.alias.empty()) {
    request.set_step(*ref.step);
  } else {
    request.set_alias(ref.alias);
  }
  return impl_->Call(&v1::Registry::Stub::GetCheckpoint, request);
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels(int page_size,
                                                          const std::string& page_token) {
  v1::ListModelsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  return impl_->Call(&v1::Registry::Stub::ListModels, request);
}

absl::StatusOr<v1::ListCheckpointsResponse> Client::ListCheckpoints(
    const std::string& model, int page_size, const std::string& page_token) {
  v1::ListCheckpointsRequest request;
  request.set_model(model);
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  return impl_->Call(&v1::Registry::Stub::ListCheckpoints, request);
}

absl::StatusOr<int64_t> Client::DeleteCheckpoint(const std::string& model, int64_t step) {
  v1::DeleteCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  ASSIGN_OR_RETURN(v1::DeleteCheckpointResponse response,
                   impl_->Call(&v1::Registry::Stub::DeleteCheckpoint, request));
  return response.freed_bytes();
}

absl::StatusOr<v1::MetaGraphInfo> Client::StreamGraph(
    const std::string& model, const StepRef& step, const v1::GraphOptions& options,
    const std::function<absl::Status(absl::string_view)>& sink) {
  v1::GetMetaGraphRequest request;
  request.set_model(model);
  if (step.step.has_value()) request.set_step(*step.step);
  request.set_alias(step.alias);
  *request.mutable_options() = options;
  grpc::ClientContext ctx;
  impl_->PrepareContext(&ctx, CallDeadline::kNone);
  std::unique_ptr<grpc::ClientReader<v1::MetaGraphChunk>> reader =
      impl_->stub->GetMetaGraph(&ctx, request);
  v1::MetaGraphChunk chunk;
  v1::MetaGraphInfo info;
  bool have_info = false;
  absl::Status sink_status;
  while (reader->Read(&chunk)) {
    if (chunk.has_info()) {
      info = chunk.info();
      have_info = true;
    }
    sink_status = sink(chunk.data());
    if (!sink_status.ok()) {
      ctx.TryCancel();
      break;
    }
  }
  absl::Status status = FromGrpcStatus(reader->Finish());
  RETURN_IF_ERROR(sink_status);
  RETURN_IF_ERROR(status);
  if (!have_info) {
    return absl::DataLossError("the server's graph stream carried no header; retry");
  }
  return info;
}

absl::StatusOr<v1::MetaGraphInfo> Client::FetchGraph(const std::string& model,
                                                     const StepRef& step,
                                                     const v1::GraphOptions& options,
                                                     const std::string& out_path) {
  // MetaGraphInfo gives the whole-file SHA-256 of the (exported) graph.
  ASSIGN_OR_RETURN(AtomicFileWriter out,
                   AtomicFileWriter::Create(out_path, DigestKind::kSha256));
  ASSIGN_OR_RETURN(v1::MetaGraphInfo info,
                   StreamGraph(model, step, options, [&out](absl::string_view data) {
                     return out.Append(data);
                   }));
  RETURN_IF_ERROR(out.Commit(info.size(), info.sha256()));
  return info;
}

absl::StatusOr<v1::MetaGraphInfo> Client::FetchGraphBytes(const std::string& model,
                                                          const StepRef& step,
                                                          const v1::GraphOptions& options,
                                                          std::string* out) {
  out->clear();
  ASSIGN_OR_RETURN(v1::MetaGraphInfo info,
                   StreamGraph(model, step, options, [out](absl::string_view data) {
                     out->append(data.data(), data.size());
                     return absl::OkStatus();
                   }));
  if (static_cast<int64_t>(out->size()) != info.size() ||
      Sha256Hex(*out) != info.sha256()) {
    return absl::DataLossError(
        "the graph received does not match the size and SHA-256 the server announced; "
        "retry");
  }
  return info;
}

absl::StatusOr<v1::Model> Client::GetModel(const std::string& model) {
  v1::GetModelRequest request;
  request.set_model(model);
  return impl_->Call(&v1::Registry::Stub::GetModel, request);
}

absl::StatusOr<v1::Model> Client::SetRetention(const std::string& model, int max_to_keep,
                                               double keep_every_n_hours,
                                               bool allow_missing) {
  v1::SetRetentionRequest request;
  request.set_model(model);
  request.mutable_retention()->set_max_to_keep(max_to_keep);
  request.mutable_retention()->set_keep_every_n_hours(keep_every_n_hours);
  request.set_allow_missing(allow_missing);
  return impl_->Call(&v1::Registry::Stub::SetRetention, request);
}

absl::StatusOr<v1::Checkpoint> Client::PinCheckpoint(const std::string& model,
                                                     int64_t step, bool pinned) {
  v1::PinCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  request.set_pinned(pinned);
  return impl_->Call(&v1::Registry::Stub::PinCheckpoint, request);
}

absl::StatusOr<v1::Model> Client::SetAlias(const std::string& model,
                                           const std::string& alias, int64_t step) {
  v1::SetAliasRequest request;
  request.set_model(model);
  request.set_alias(alias);
  request.set_step(step);
  return impl_->Call(&v1::Registry::Stub::SetAlias, request);
}

absl::StatusOr<v1::Model> Client::RemoveAlias(const std::string& model,
                                              const std::string& alias) {
  v1::RemoveAliasRequest request;
  request.set_model(model);
  request.set_alias(alias);
  return impl_->Call(&v1::Registry::Stub::RemoveAlias, request);
}

absl::StatusOr<v1::InspectCheckpointResponse> Client::InspectCheckpoint(
    const std::string& model, const StepRef& step, bool verify) {
  v1::InspectCheckpointRequest request;
  request.set_model(model);
  if (step.step.has_value()) request.set_step(*step.step);
  request.set_alias(step.alias);
  request.set_verify(verify);
  return impl_->Call(&v1::Registry::Stub::InspectCheckpoint, request);
}

absl::StatusOr<tensorflow::CheckpointState> Client::GetCheckpointState(
    const std::string& model) {
  v1::GetCheckpointStateRequest request;
  request.set_model(model);
  return impl_->Call(&v1::Registry::Stub::GetCheckpointState, request);
}

absl::StatusOr<v1::GetCollectionResponse> Client::GetCollection(
    const std::string& model, const StepRef& step, const std::string& key,
    const std::vector<std::string>& tags) {
  v1::GetCollectionRequest request;
  request.set_model(model);
  if (step.step.has_value()) request.set_step(*step.step);
  request.set_alias(step.alias);
  request.set_key(key);
  for (const std::string& tag : tags) request.add_tags(tag);
  return impl_->Call(&v1::Registry::Stub::GetCollection, request);
}

namespace {

class GrpcWatchStream : public WatchStream {
 public:
  GrpcWatchStream(const Client::Impl& impl, const v1::WatchCheckpointsRequest& request) {
    impl.PrepareContext(&ctx_, CallDeadline::kNone);
    reader_ = impl.stub->WatchCheckpoints(&ctx_, request);
  }
  bool Next(v1::WatchEvent* event) override { return reader_->Read(event); }
  absl::Status Finish() override { return FromGrpcStatus(reader_->Finish()); }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader_;
};

}  // namespace

std::unique_ptr<WatchStream> Client::Watch(const v1::WatchCheckpointsRequest& request) {
  return std::make_unique<GrpcWatchStream>(*impl_, request);
}

absl::StatusOr<std::string> Client::CheckHealth(const std::string& service) {
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  std::unique_ptr<grpc::health::v1::Health::Stub> health =
      grpc::health::v1::Health::NewStub(impl_->channel);
  ASSIGN_OR_RETURN(
      grpc::health::v1::HealthCheckResponse response,
      impl_->Unary(health.get(), &grpc::health::v1::Health::Stub::Check, request));
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

absl::StatusOr<v1::BackupResponse> Client::Backup(const std::string& dir) {
  v1::BackupRequest request;
  request.set_dir(dir);
  return impl_->Call(&v1::Registry::Stub::Backup, request);
}

absl::StatusOr<v1::CheckStoreResponse> Client::CheckStore() {
  // No deadline: the check reads the whole store.
  return impl_->Call(&v1::Registry::Stub::CheckStore, v1::CheckStoreRequest(),
                     CallDeadline::kNone);
}

}  // namespace mgreg
