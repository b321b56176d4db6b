#include "tests/client/fake_registry.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sha256.h"

namespace mgreg::testing {

FakeRegistry::FakeRegistry() {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(this);
  server_ = builder.BuildAndStart();
  address_ = absl::StrCat("127.0.0.1:", port);
}

FakeRegistry::~FakeRegistry() {
  {
    absl::MutexLock lock(&mu_);
    shutting_down_ = true;
  }
  server_->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  server_->Wait();
}

void FakeRegistry::Answer(const std::string& model, int64_t step,
                          const std::string& basename,
                          const std::map<std::string, std::string>& files) {
  v1::Checkpoint c;
  c.set_model(model);
  c.set_step(step);
  c.set_basename(basename);
  int64_t total = 0;
  for (const auto& [name, data] : files) {
    v1::FileInfo* f = c.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(data.size()));
    f->set_sha256(Sha256Hex(data));
    total += static_cast<int64_t>(data.size());
  }
  c.set_total_bytes(total);
  AnswerRaw(c, files);
}

void FakeRegistry::AnswerRaw(const v1::Checkpoint& checkpoint,
                             const std::map<std::string, std::string>& contents) {
  absl::MutexLock lock(&mu_);
  answer_ = checkpoint;
  contents_ = contents;
}

void FakeRegistry::SendEvent(const v1::WatchEvent& event) {
  absl::MutexLock lock(&mu_);
  events_.push_back(event);
}

int FakeRegistry::resolves() const {
  absl::MutexLock lock(&mu_);
  return resolves_;
}

bool FakeRegistry::WaitForResolves(int n, absl::Duration timeout) const {
  absl::MutexLock lock(&mu_);
  auto reached = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return resolves_ >= n; };
  return mu_.AwaitWithTimeout(absl::Condition(&reached), timeout);
}

int FakeRegistry::reads() const {
  absl::MutexLock lock(&mu_);
  return reads_;
}

grpc::Status FakeRegistry::GetLatestCheckpoint(grpc::ServerContext*,
                                               const v1::GetLatestCheckpointRequest*,
                                               v1::Checkpoint* out) {
  absl::MutexLock lock(&mu_);
  ++resolves_;
  *out = answer_;
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::GetCheckpoint(grpc::ServerContext*,
                                         const v1::GetCheckpointRequest*,
                                         v1::Checkpoint* out) {
  absl::MutexLock lock(&mu_);
  ++resolves_;
  *out = answer_;
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::ReadFile(grpc::ServerContext*, const v1::ReadFileRequest* request,
                                    grpc::ServerWriter<v1::FileChunk>* writer) {
  v1::FileChunk chunk;
  {
    absl::MutexLock lock(&mu_);
    ++reads_;
    auto it = contents_.find(request->name());
    if (it == contents_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no file");
    chunk.set_data(it->second);
  }
  writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::GetMetaGraph(grpc::ServerContext*,
                                        const v1::GetMetaGraphRequest*,
                                        grpc::ServerWriter<v1::MetaGraphChunk>* writer) {
  v1::MetaGraphChunk chunk;
  {
    absl::MutexLock lock(&mu_);
    ++reads_;
    auto it = contents_.find("meta");
    if (it == contents_.end()) return grpc::Status(grpc::StatusCode::NOT_FOUND, "no meta");
    chunk.mutable_info()->set_step(answer_.step());
    chunk.mutable_info()->set_size(static_cast<int64_t>(it->second.size()));
    chunk.mutable_info()->set_sha256(Sha256Hex(it->second));
    chunk.set_data(it->second);
  }
  writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::WatchCheckpoints(grpc::ServerContext* ctx,
                                            const v1::WatchCheckpointsRequest*,
                                            grpc::ServerWriter<v1::WatchEvent>* writer) {
  size_t next = 0;
  {
    absl::MutexLock lock(&mu_);
    next = events_.size();  // only events sent from now on
  }
  v1::WatchEvent progress;
  progress.set_type(v1::WatchEvent::PROGRESS);
  if (!writer->Write(progress)) return grpc::Status::OK;
  while (!ctx->IsCancelled()) {
    v1::WatchEvent event;
    {
      absl::MutexLock lock(&mu_);
      auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
        return shutting_down_ || events_.size() > next;
      };
      // Wakes up now and then to notice a cancelled call.
      mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(50));
      if (shutting_down_) break;
      if (events_.size() <= next) continue;
      event = events_[next++];
    }
    if (!writer->Write(event)) break;
  }
  return grpc::Status::OK;
}

}  // namespace mgreg::testing
