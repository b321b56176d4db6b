#include "tests/testing/fake_registry.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "common/sha256.h"

namespace mgreg::testing {

std::unique_ptr<grpc::Server> ServeOnLoopback(grpc::Service* service,
                                              std::string* address) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  *address = absl::StrCat("127.0.0.1:", port);
  return server;
}

FakeRegistry::FakeRegistry() { server_ = ServeOnLoopback(this, &address_); }

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

void FakeRegistry::FailWith(const grpc::Status& status) {
  absl::MutexLock lock(&mu_);
  fail_with_ = status;
}

void FakeRegistry::Stall(bool stall) {
  absl::MutexLock lock(&mu_);
  stall_ = stall;
}

std::vector<FakeRegistry::CallSeen> FakeRegistry::calls() const {
  absl::MutexLock lock(&mu_);
  return calls_;
}

void FakeRegistry::Record(const grpc::ServerContext& ctx, const std::string& method) {
  CallSeen seen;
  seen.method = method;
  const auto& metadata = ctx.client_metadata();
  if (auto it = metadata.find("authorization"); it != metadata.end()) {
    seen.authorization = std::string(it->second.data(), it->second.size());
  }
  const auto deadline = ctx.deadline();
  seen.has_deadline = deadline != std::chrono::system_clock::time_point::max();
  if (seen.has_deadline) {
    seen.time_left = absl::FromChrono(deadline) - absl::Now();
  }
  calls_.push_back(std::move(seen));
}

grpc::Status FakeRegistry::Resolve(grpc::ServerContext* ctx, const std::string& method,
                                   v1::Checkpoint* out) {
  absl::MutexLock lock(&mu_);
  Record(*ctx, method);
  ++resolves_;
  // Bounded, so a client that never gives up fails the test instead of hanging it.
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (stall_ && !shutting_down_ && !ctx->IsCancelled() && absl::Now() < give_up) {
    // Wakes up now and then to notice the caller giving up.
    mu_.AwaitWithTimeout(absl::Condition(&shutting_down_), absl::Milliseconds(10));
  }
  if (!fail_with_.ok()) return fail_with_;
  *out = answer_;
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::GetLatestCheckpoint(grpc::ServerContext* ctx,
                                               const v1::GetLatestCheckpointRequest*,
                                               v1::Checkpoint* out) {
  return Resolve(ctx, "GetLatestCheckpoint", out);
}

grpc::Status FakeRegistry::GetCheckpoint(grpc::ServerContext* ctx,
                                         const v1::GetCheckpointRequest*,
                                         v1::Checkpoint* out) {
  return Resolve(ctx, "GetCheckpoint", out);
}

grpc::Status FakeRegistry::ReadFile(grpc::ServerContext* ctx,
                                    const v1::ReadFileRequest* request,
                                    grpc::ServerWriter<v1::FileChunk>* writer) {
  v1::FileChunk chunk;
  {
    absl::MutexLock lock(&mu_);
    Record(*ctx, "ReadFile");
    ++reads_;
    auto it = contents_.find(request->name());
    if (it == contents_.end())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no file");
    chunk.set_data(it->second);
  }
  writer->Write(chunk);
  return grpc::Status::OK;
}

grpc::Status FakeRegistry::GetMetaGraph(grpc::ServerContext* ctx,
                                        const v1::GetMetaGraphRequest*,
                                        grpc::ServerWriter<v1::MetaGraphChunk>* writer) {
  v1::MetaGraphChunk chunk;
  {
    absl::MutexLock lock(&mu_);
    Record(*ctx, "GetMetaGraph");
    ++reads_;
    auto it = contents_.find("meta");
    if (it == contents_.end())
      return grpc::Status(grpc::StatusCode::NOT_FOUND, "no meta");
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
    Record(*ctx, "WatchCheckpoints");
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
