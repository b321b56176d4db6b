#include "client/client.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <set>
#include <thread>
#include <utility>

#include <grpcpp/grpcpp.h>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "client/checkpoint_dir.h"
#include "client/grpc_status.h"
#include "client/local_file.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "metagraph/checkpoint_name.h"
#include "metagraph/checkpoint_state.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "mgreg/v1/registry.grpc.pb.h"

namespace mgreg {
namespace fs = std::filesystem;

namespace {

// Adds "authorization: Bearer <token>" to every call of a channel.
class TokenInterceptor : public grpc::experimental::Interceptor {
 public:
  explicit TokenInterceptor(const std::string* header) : header_(header) {}
  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    if (methods->QueryInterceptionHookPoint(
            grpc::experimental::InterceptionHookPoints::PRE_SEND_INITIAL_METADATA)) {
      methods->GetSendInitialMetadata()->insert({"authorization", *header_});
    }
    methods->Proceed();
  }

 private:
  const std::string* const header_;
};

class TokenInterceptorFactory
    : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit TokenInterceptorFactory(const std::string& token)
      : header_("Bearer " + token) {}
  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new TokenInterceptor(&header_);
  }

 private:
  const std::string header_;
};

}  // namespace

struct Client::Impl {
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Registry::Stub> stub;

  void SetDeadline(grpc::ClientContext* ctx) const {
    ctx->set_deadline(std::chrono::system_clock::now() +
                      absl::ToChronoMilliseconds(options.unary_timeout));
  }
};

absl::StatusOr<LocalCheckpoint> FindLocalCheckpoint(const std::string& prefix) {
  ASSIGN_OR_RETURN(CheckpointPrefix parsed, ParseCheckpointPrefix(prefix));
  LocalCheckpoint out;
  out.directory = parsed.directory.empty() ? "." : parsed.directory;
  out.basename = parsed.basename;
  out.step = parsed.step;
  const std::string name = parsed.step.has_value()
                               ? CheckpointPrefixName(parsed.basename, *parsed.step)
                               : parsed.basename;
  const std::string stem = name + ".";
  std::error_code ec;
  fs::directory_iterator it(out.directory, ec);
  if (ec) {
    return absl::NotFoundError(absl::StrCat(
        "no checkpoint at '", prefix, "': cannot list directory '", out.directory, "' (",
        ec.message(), ") to find '", (fs::path(out.directory) / name).string(), ".index'"));
  }
  for (const fs::directory_entry& entry : it) {
    const std::string file = entry.path().filename().string();
    if (!absl::StartsWith(file, stem)) continue;
    const std::string suffix = file.substr(stem.size());
    if (suffix == "index" || suffix == "meta" ||
        (absl::StartsWith(suffix, "data-") && ValidateFileName(suffix).ok())) {
      out.files[suffix] = entry.path().string();
    }
  }
  const std::string where = (fs::path(out.directory) / name).string();
  if (out.files.count("index") == 0) {
    return absl::NotFoundError(absl::StrCat(
        "no checkpoint at '", prefix, "': '", where,
        ".index' does not exist; give the prefix TensorFlow saved, e.g. "
        "dir/model.ckpt-1000"));
  }
  int data_files = 0;
  for (const auto& [suffix, unused] : out.files) {
    if (absl::StartsWith(suffix, "data-")) ++data_files;
  }
  if (data_files == 0) {
    return absl::NotFoundError(absl::StrCat("checkpoint '", where,
                                            "' has an .index but no .data-* file"));
  }
  return out;
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
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
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
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>>
      interceptors;
  if (!options.token.empty()) {
    interceptors.push_back(std::make_unique<TokenInterceptorFactory>(options.token));
  }
  client->impl_->channel = grpc::experimental::CreateCustomChannelWithInterceptors(
      options.target, credentials, args, std::move(interceptors));
  client->impl_->stub = v1::Registry::NewStub(client->impl_->channel);
  return client;
}

absl::StatusOr<v1::Upload> Client::BeginUpload(const v1::BeginUploadRequest& request) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::Upload out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->BeginUpload(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Upload> Client::GetUpload(const std::string& upload_id) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetUploadRequest request;
  request.set_upload_id(upload_id);
  v1::Upload out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetUpload(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Checkpoint> Client::CommitUpload(const std::string& upload_id) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::CommitUploadRequest request;
  request.set_upload_id(upload_id);
  v1::Checkpoint out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->CommitUpload(&ctx, request, &out)));
  return out;
}

absl::Status Client::AbortUpload(const std::string& upload_id) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::AbortUploadRequest request;
  request.set_upload_id(upload_id);
  v1::AbortUploadResponse out;
  return FromGrpcStatus(impl_->stub->AbortUpload(&ctx, request, &out));
}

absl::StatusOr<v1::PutFileResponse> Client::PutFile(const std::string& upload_id,
                                                    const std::string& name,
                                                    const std::string& path,
                                                    const ProgressFn& progress) {
  return PutFileChunks(upload_id, name, path, {}, 0, progress, nullptr);
}

absl::StatusOr<v1::PutFileResponse> Client::PutFileChunks(
    const std::string& upload_id, const std::string& name, const std::string& path,
    const std::vector<std::string>& chunks, int64_t chunk_bytes, const ProgressFn& progress,
    PushStats* stats) {
  ASSIGN_OR_RETURN(v1::Upload upload, GetUpload(upload_id));
  const v1::UploadFile* state = nullptr;
  for (const v1::UploadFile& f : upload.files()) {
    if (f.file().name() == name) state = &f;
  }
  ASSIGN_OR_RETURN(LocalFile file, LocalFile::OpenForRead(path));
  v1::PutFileRequest message;
  message.mutable_header()->set_upload_id(upload_id);
  message.mutable_header()->set_name(name);
  // An upload begun without a basename learns it from the first writer's file name.
  if (absl::StatusOr<CheckpointPrefix> local = ParseCheckpointPrefix(path); local.ok()) {
    message.mutable_header()->set_basename(local->basename);
  }
  int64_t size = file.size();
  int64_t offset = 0;
  if (state != nullptr) {
    size = state->file().size();
    offset = state->held_bytes();
    if (file.size() != size) {
      return absl::FailedPreconditionError(absl::StrCat(
          "local file '", path, "' has ", file.size(), " bytes but the upload announced ",
          size, " for '", name, "'; the file changed since the upload began"));
    }
  } else {
    // An upload begun without files learns this one from its header.
    ASSIGN_OR_RETURN(FileDigest digest, DigestFile(path));
    message.mutable_header()->set_size(digest.size);
    message.mutable_header()->set_sha256(digest.sha256);
  }
  message.mutable_header()->set_offset(offset);
  grpc::ClientContext ctx;
  v1::PutFileResponse response;
  std::unique_ptr<grpc::ClientWriter<v1::PutFileRequest>> writer =
      impl_->stub->PutFile(&ctx, &response);
  const int64_t message_bytes = static_cast<int64_t>(impl_->options.upload_message_bytes);
  int64_t pos = offset;
  std::string buffer;
  bool stream_ok = true;
  do {
    const int64_t chunk = chunk_bytes > 0 && pos % chunk_bytes == 0 ? pos / chunk_bytes : -1;
    if (chunk >= 0 && chunk < static_cast<int64_t>(chunks.size()) &&
        !chunks[static_cast<size_t>(chunk)].empty()) {
      // The server holds this chunk: name it instead of sending it.
      const int64_t n = std::min(chunk_bytes, size - pos);
      message.clear_data();
      message.set_existing_chunk(chunks[static_cast<size_t>(chunk)]);
      if (!writer->Write(message)) {
        stream_ok = false;
        break;
      }
      message.clear_existing_chunk();
      pos += n;
      if (stats != nullptr) stats->bytes_deduplicated_chunks += n;
    } else {
      // Bytes, never across a chunk boundary when chunks are named, so the next
      // existing chunk starts a message.
      int64_t want = std::min(size - pos, message_bytes);
      if (chunk_bytes > 0 && !chunks.empty()) {
        want = std::min(want, chunk_bytes - pos % chunk_bytes);
      }
      RETURN_IF_ERROR(file.ReadAt(pos, static_cast<size_t>(want), &buffer));
      message.set_data(std::move(buffer));
      buffer = std::string();
      if (!writer->Write(message)) {
        stream_ok = false;  // the server ended the call; Finish tells why
        break;
      }
      pos += want;
      if (stats != nullptr) stats->bytes_sent += want;
    }
    message.clear_header();
    if (progress) progress(pos, size);
  } while (pos < size);
  if (stream_ok) writer->WritesDone();
  RETURN_IF_ERROR(FromGrpcStatus(writer->Finish()));
  return response;
}

absl::StatusOr<v1::Checkpoint> Client::Push(const std::string& model,
                                            const std::string& prefix,
                                            const PushOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  ASSIGN_OR_RETURN(LocalCheckpoint local, FindLocalCheckpoint(prefix));
  std::optional<int64_t> step = options.step.has_value() ? options.step : local.step;
  if (!step.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "prefix '", prefix, "' has no step (no -<number> at its end); pass --step N"));
  }
  RETURN_IF_ERROR(ValidateStep(*step));
  PushStats stats;

  v1::BeginUploadRequest begin;
  begin.set_model(model);
  begin.set_step(*step);
  begin.set_basename(local.basename);
  begin.set_overwrite(options.overwrite);
  begin.mutable_metadata()->insert(options.metadata.begin(), options.metadata.end());
  // Digest every file first (in parallel), so the server can skip what it holds.
  std::vector<std::pair<std::string, std::string>> files(local.files.begin(),
                                                         local.files.end());
  std::vector<absl::StatusOr<FileDigest>> digests(files.size(),
                                                  absl::UnknownError("not hashed"));
  {
    std::vector<std::thread> workers;
    for (size_t i = 0; i < files.size(); ++i) {
      workers.emplace_back([&, i]() { digests[i] = DigestFile(files[i].second); });
    }
    for (std::thread& t : workers) t.join();
  }
  int64_t total = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    if (!digests[i].ok()) return digests[i].status();
    v1::FileInfo* info = begin.add_files();
    info->set_name(files[i].first);
    info->set_size(digests[i]->size);
    info->set_sha256(digests[i]->sha256);
    total += digests[i]->size;
  }

  ASSIGN_OR_RETURN(v1::Upload upload, BeginUpload(begin));
  int64_t done = 0;
  std::vector<const v1::UploadFile*> to_send;
  for (const v1::UploadFile& f : upload.files()) {
    if (f.held_bytes() == f.file().size()) {
      done += f.file().size();
      stats.bytes_deduplicated_files += f.file().size();
    } else {
      to_send.push_back(&f);
    }
  }
  if (options.progress) options.progress(done, total);

  // Chunk-level deduplication, for files the server does not hold whole. Hashing every
  // chunk costs a second read and SHA-256 of the file, so a sample (every 16th chunk)
  // is asked about first; only if the server holds some of it are all chunks hashed.
  std::vector<std::vector<std::string>> held_chunks(to_send.size());
  const int64_t chunk_bytes = upload.chunk_bytes();
  if (options.deduplicate_chunks && chunk_bytes > 0) {
    std::vector<size_t> candidates;
    for (size_t i = 0; i < to_send.size(); ++i) {
      if (to_send[i]->held_bytes() == 0 && to_send[i]->file().size() >= 2 * chunk_bytes) {
        candidates.push_back(i);
      }
    }
    // Which of `digests` (empty = not hashed) the server holds, by index.
    auto find = [&](const std::vector<std::string>& digests)
        -> absl::StatusOr<std::vector<std::string>> {
      v1::FindChunksRequest request;
      request.set_upload_id(upload.upload_id());
      std::vector<size_t> asked;
      for (size_t c = 0; c < digests.size(); ++c) {
        if (digests[c].empty()) continue;
        request.add_sha256(digests[c]);
        asked.push_back(c);
      }
      grpc::ClientContext ctx;
      impl_->SetDeadline(&ctx);
      v1::FindChunksResponse found;
      RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->FindChunks(&ctx, request, &found)));
      std::vector<std::string> held(digests.size());
      for (size_t k = 0; k < asked.size() && static_cast<int>(k) < found.present_size();
           ++k) {
        if (found.present(static_cast<int>(k))) held[asked[k]] = digests[asked[k]];
      }
      return held;
    };
    // Hashes the candidates' chunks (every `stride`-th) in parallel, one thread a file.
    auto digest_all = [&](int64_t stride) {
      std::vector<absl::StatusOr<std::vector<std::string>>> out(
          to_send.size(), absl::UnknownError("not hashed"));
      std::vector<std::thread> workers;
      for (size_t i : candidates) {
        workers.emplace_back([&, i]() {
          out[i] = ChunkDigests(local.files.at(to_send[i]->file().name()), chunk_bytes,
                                stride);
        });
      }
      for (std::thread& t : workers) t.join();
      return out;
    };
    std::vector<size_t> promising;
    if (!candidates.empty()) {
      auto samples = digest_all(16);
      for (size_t i : candidates) {
        if (!samples[i].ok()) return samples[i].status();
        ASSIGN_OR_RETURN(std::vector<std::string> held, find(*samples[i]));
        for (const std::string& h : held) {
          if (!h.empty()) {
            promising.push_back(i);
            break;
          }
        }
      }
    }
    candidates = promising;
    if (!candidates.empty()) {
      auto digests = digest_all(1);
      for (size_t i : candidates) {
        if (!digests[i].ok()) return digests[i].status();
        ASSIGN_OR_RETURN(held_chunks[i], find(*digests[i]));
      }
    }
  }

  for (size_t i = 0; i < to_send.size(); ++i) {
    const v1::UploadFile& f = *to_send[i];
    const int64_t base = done;
    ProgressFn file_progress;
    if (options.progress) {
      file_progress = [&options, base, total](int64_t file_done, int64_t) {
        options.progress(base + file_done, total);
      };
    }
    absl::StatusOr<v1::PutFileResponse> put = PutFileChunks(
        upload.upload_id(), f.file().name(), local.files.at(f.file().name()),
        held_chunks[i], chunk_bytes, file_progress, &stats);
    if (!put.ok()) {
      (void)AbortUpload(upload.upload_id());
      return put.status();
    }
    done += f.file().size();
  }
  absl::StatusOr<v1::Checkpoint> committed = CommitUpload(upload.upload_id());
  if (!committed.ok() && committed.status().code() == absl::StatusCode::kFailedPrecondition) {
    (void)AbortUpload(upload.upload_id());
  }
  if (options.stats != nullptr) *options.stats = stats;
  return committed;
}

absl::StatusOr<v1::Checkpoint> Client::GetLatestCheckpoint(const std::string& model) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetLatestCheckpointRequest request;
  request.set_model(model);
  v1::Checkpoint out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetLatestCheckpoint(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Checkpoint> Client::GetCheckpoint(const std::string& model,
                                                     int64_t step) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  v1::Checkpoint out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetCheckpoint(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::ListModelsResponse> Client::ListModels(int page_size,
                                                          const std::string& page_token) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::ListModelsRequest request;
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  v1::ListModelsResponse out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->ListModels(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::ListCheckpointsResponse> Client::ListCheckpoints(
    const std::string& model, int page_size, const std::string& page_token) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::ListCheckpointsRequest request;
  request.set_model(model);
  request.set_page_size(page_size);
  request.set_page_token(page_token);
  v1::ListCheckpointsResponse out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->ListCheckpoints(&ctx, request, &out)));
  return out;
}

absl::StatusOr<int64_t> Client::DeleteCheckpoint(const std::string& model, int64_t step) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::DeleteCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  v1::DeleteCheckpointResponse out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->DeleteCheckpoint(&ctx, request, &out)));
  return out.freed_bytes();
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
  ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(out_path));
  ASSIGN_OR_RETURN(v1::MetaGraphInfo info,
                   StreamGraph(model, step, options,
                               [&out](absl::string_view data) { return out.Append(data); }));
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
  if (static_cast<int64_t>(out->size()) != info.size() || Sha256Hex(*out) != info.sha256()) {
    return absl::DataLossError(
        "the graph received does not match the size and SHA-256 the server announced; retry");
  }
  return info;
}

absl::Status Client::DownloadFile(const v1::Checkpoint& checkpoint,
                                  const v1::FileInfo& file, const std::string& path,
                                  const ProgressFn& progress, int64_t progress_base,
                                  int64_t progress_total) {
  v1::ReadFileRequest request;
  request.set_model(checkpoint.model());
  request.set_step(checkpoint.step());
  request.set_name(file.name());
  grpc::ClientContext ctx;
  std::unique_ptr<grpc::ClientReader<v1::FileChunk>> reader =
      impl_->stub->ReadFile(&ctx, request);
  ASSIGN_OR_RETURN(AtomicFileWriter out, AtomicFileWriter::Create(path));
  v1::FileChunk chunk;
  int64_t received = 0;
  while (reader->Read(&chunk)) {
    RETURN_IF_ERROR(out.Append(chunk.data()));
    received += static_cast<int64_t>(chunk.data().size());
    if (progress) progress(progress_base + received, progress_total);
  }
  RETURN_IF_ERROR(FromGrpcStatus(reader->Finish()));
  return out.Commit(file.size(), file.sha256());
}

absl::StatusOr<v1::Checkpoint> Client::ResolveCheckpoint(const std::string& model,
                                                         const StepRef& ref) {
  if (ref.alias.empty() && !ref.step.has_value()) return GetLatestCheckpoint(model);
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetCheckpointRequest request;
  request.set_model(model);
  if (ref.alias.empty()) {
    request.set_step(*ref.step);
  } else {
    request.set_alias(ref.alias);
  }
  v1::Checkpoint out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetCheckpoint(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Checkpoint> Client::Restore(const std::string& model,
                                               const std::string& dir,
                                               const RestoreOptions& options) {
  RETURN_IF_ERROR(ValidateModelName(model));
  if (options.keep_last < 0) {
    return absl::InvalidArgumentError("keep_last must be >= 0 (0 keeps every checkpoint)");
  }
  RETURN_IF_ERROR(EnsureWritableDirectory(dir));
  StepRef ref;
  ref.step = options.step;
  ref.alias = options.alias;
  ASSIGN_OR_RETURN(v1::Checkpoint checkpoint, ResolveCheckpoint(model, ref));
  // Every name in the answer is checked before anything is written.
  using PathsByName = std::map<std::string, std::string>;
  ASSIGN_OR_RETURN(const PathsByName paths, RestoredFilePaths(dir, checkpoint));
  const std::string prefix = CheckpointPrefixName(checkpoint.basename(), checkpoint.step());
  const bool filter_graph = options.graph_options.ByteSizeLong() > 0;
  // The filtered graph first: it is small, and it is what fails when the graph cannot
  // be exported with these options (before gigabytes of shards are downloaded).
  std::vector<const v1::FileInfo*> order;
  for (const v1::FileInfo& file : checkpoint.files()) {
    if (file.name() == "meta" && filter_graph) {
      order.insert(order.begin(), &file);
    } else {
      order.push_back(&file);
    }
  }
  // Files this call creates are removed again if the restore fails, so a step that
  // cannot be restored leaves nothing behind.
  struct Created {
    std::vector<std::string> paths;
    bool keep = false;
    ~Created() {
      std::error_code ec;
      if (!keep) for (const std::string& p : paths) fs::remove(p, ec);
    }
  } created;
  const int64_t total = checkpoint.total_bytes();
  int64_t done = 0;
  for (const v1::FileInfo* file : order) {
    const std::string& path = paths.at(file->name());
    std::error_code ec;
    const bool existed = fs::exists(path, ec);
    if (file->name() == "meta" && filter_graph) {
      if (!existed) created.paths.push_back(path);
      RETURN_IF_ERROR(
          FetchGraph(model, checkpoint.step(), options.graph_options, path).status());
    } else if (!FileMatches(path, file->size(), file->sha256())) {
      if (!existed) created.paths.push_back(path);
      RETURN_IF_ERROR(DownloadFile(checkpoint, *file, path, options.progress, done, total));
    }
    done += file->size();
    if (options.progress) options.progress(done, total);
  }

  // Switch: the `checkpoint` state file names the restored prefix as the latest, after
  // the directory's own prefixes already listed whose files are still there. Renaming it
  // into place is the atomic moment; TensorFlow reading the directory sees the old
  // complete checkpoint or the new one.
  ListedCheckpoints listed = ReadListedCheckpoints(dir);
  if (!listed.foreign.empty() && options.on_warning) {
    options.on_warning(absl::StrCat(
        (fs::path(dir) / "checkpoint").string(), " listed ", listed.foreign.size(),
        " checkpoint(s) outside ", dir, " (", absl::StrJoin(listed.foreign, ", "),
        "); they are not the directory's own: left in place, never deleted, and no longer "
        "listed"));
  }
  std::vector<std::string> prefixes;
  for (std::string& p : listed.own) {
    if (p != prefix) prefixes.push_back(std::move(p));
  }
  prefixes.push_back(prefix);
  std::vector<std::string> dropped;
  if (options.keep_last > 0 && prefixes.size() > static_cast<size_t>(options.keep_last)) {
    const size_t drop = prefixes.size() - static_cast<size_t>(options.keep_last);
    dropped.assign(prefixes.begin(), prefixes.begin() + static_cast<std::ptrdiff_t>(drop));
    prefixes.erase(prefixes.begin(), prefixes.begin() + static_cast<std::ptrdiff_t>(drop));
  }
  const std::string state_path = (fs::path(dir) / "checkpoint").string();
  ASSIGN_OR_RETURN(AtomicFileWriter state, AtomicFileWriter::Create(state_path));
  const std::string text = FormatCheckpointState(MakeCheckpointState(prefixes));
  RETURN_IF_ERROR(state.Append(text));
  RETURN_IF_ERROR(state.Commit(static_cast<int64_t>(text.size()), Sha256Hex(text)));
  created.keep = true;
  // Only after the switch: the files of checkpoints no longer listed.
  for (const std::string& p : dropped) RemoveCheckpointFiles(dir, p);
  return checkpoint;
}

absl::StatusOr<v1::Model> Client::GetModel(const std::string& model) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetModelRequest request;
  request.set_model(model);
  v1::Model out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetModel(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Model> Client::SetRetention(const std::string& model, int max_to_keep,
                                               double keep_every_n_hours,
                                               bool allow_missing) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::SetRetentionRequest request;
  request.set_model(model);
  request.mutable_retention()->set_max_to_keep(max_to_keep);
  request.mutable_retention()->set_keep_every_n_hours(keep_every_n_hours);
  request.set_allow_missing(allow_missing);
  v1::Model out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->SetRetention(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Checkpoint> Client::PinCheckpoint(const std::string& model, int64_t step,
                                                     bool pinned) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::PinCheckpointRequest request;
  request.set_model(model);
  request.set_step(step);
  request.set_pinned(pinned);
  v1::Checkpoint out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->PinCheckpoint(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Model> Client::SetAlias(const std::string& model,
                                           const std::string& alias, int64_t step) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::SetAliasRequest request;
  request.set_model(model);
  request.set_alias(alias);
  request.set_step(step);
  v1::Model out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->SetAlias(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::Model> Client::RemoveAlias(const std::string& model,
                                              const std::string& alias) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::RemoveAliasRequest request;
  request.set_model(model);
  request.set_alias(alias);
  v1::Model out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->RemoveAlias(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::InspectCheckpointResponse> Client::InspectCheckpoint(
    const std::string& model, const StepRef& step, bool verify) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::InspectCheckpointRequest request;
  request.set_model(model);
  if (step.step.has_value()) request.set_step(*step.step);
  request.set_alias(step.alias);
  request.set_verify(verify);
  v1::InspectCheckpointResponse out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->InspectCheckpoint(&ctx, request, &out)));
  return out;
}

absl::StatusOr<tensorflow::CheckpointState> Client::GetCheckpointState(
    const std::string& model) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::GetCheckpointStateRequest request;
  request.set_model(model);
  tensorflow::CheckpointState out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->GetCheckpointState(&ctx, request, &out)));
  return out;
}

namespace {

class GrpcWatchStream : public WatchStream {
 public:
  GrpcWatchStream(v1::Registry::Stub* stub, const v1::WatchCheckpointsRequest& request)
      : reader_(stub->WatchCheckpoints(&ctx_, request)) {}
  bool Next(v1::WatchEvent* event) override { return reader_->Read(event); }
  absl::Status Finish() override { return FromGrpcStatus(reader_->Finish()); }
  void Cancel() override { ctx_.TryCancel(); }

 private:
  grpc::ClientContext ctx_;
  std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader_;
};

}  // namespace

std::unique_ptr<WatchStream> Client::Watch(const v1::WatchCheckpointsRequest& request) {
  return std::make_unique<GrpcWatchStream>(impl_->stub.get(), request);
}

absl::StatusOr<std::string> Client::CheckHealth(const std::string& service) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(service);
  grpc::health::v1::HealthCheckResponse response;
  RETURN_IF_ERROR(FromGrpcStatus(
      grpc::health::v1::Health::NewStub(impl_->channel)->Check(&ctx, request, &response)));
  return grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
}

absl::StatusOr<v1::BackupResponse> Client::Backup(const std::string& dir) {
  grpc::ClientContext ctx;
  impl_->SetDeadline(&ctx);
  v1::BackupRequest request;
  request.set_dir(dir);
  v1::BackupResponse out;
  RETURN_IF_ERROR(FromGrpcStatus(impl_->stub->Backup(&ctx, request, &out)));
  return out;
}

absl::StatusOr<v1::CheckStoreResponse> Client::CheckStore() {
  grpc::ClientContext ctx;
  v1::CheckStoreResponse out;
  RETURN_IF_ERROR(
      FromGrpcStatus(impl_->stub->CheckStore(&ctx, v1::CheckStoreRequest(), &out)));
  return out;
}

}  // namespace mgreg
