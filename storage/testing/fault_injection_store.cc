#include "storage/testing/fault_injection_store.h"

#include <utility>

#include "rocksdb/env.h"
#include "rocksdb/file_system.h"
#include "rocksdb/io_status.h"
#include "storage/session_backend.h"

namespace mgreg {

// ---- FaultInjectionStore. -----------------------------------------------------------

namespace {

// Forwards to the base store's area; PutChunk and HoldExistingChunk obey kPutChunk.
class FaultStagingArea : public StagingArea {
 public:
  FaultStagingArea(FaultInjectionStore* store, std::unique_ptr<StagingArea> base)
      : store_(store), base_(std::move(base)) {}

  absl::Status PutChunk(const storage::ChunkRef& ref, absl::string_view data) override {
    FaultInjectionStore::Decision d = store_->Decide(FaultOp::kPutChunk);
    if (!d.status.ok() && !d.after) return d.status;
    absl::Status s = base_->PutChunk(ref, data);
    return d.status.ok() ? s : d.status;
  }
  absl::Status HoldExistingChunk(const storage::ChunkRef& ref) override {
    FaultInjectionStore::Decision d = store_->Decide(FaultOp::kPutChunk);
    if (!d.status.ok() && !d.after) return d.status;
    absl::Status s = base_->HoldExistingChunk(ref);
    return d.status.ok() ? s : d.status;
  }
  absl::Status MakeDurable() override { return base_->MakeDurable(); }
  StagingArea* base() { return base_.get(); }

 private:
  FaultInjectionStore* const store_;
  const std::unique_ptr<StagingArea> base_;
};

template <typename T>
T FailWith(const absl::Status& s) {
  return T(s);
}
template <>
absl::Status FailWith<absl::Status>(const absl::Status& s) {
  return s;
}

}  // namespace

FaultInjectionStore::FaultInjectionStore(std::unique_ptr<Store> base)
    : base_(std::move(base)), sessions_(NewLocalSessionStore(this)) {}
FaultInjectionStore::~FaultInjectionStore() { sessions_.reset(); }

void FaultInjectionStore::FailNext(FaultOp op, absl::Status status, int count,
                                   bool after) {
  absl::MutexLock lock(&mu_);
  faults_[op] = Fault{std::move(status), count, after};
}

void FaultInjectionStore::Clear(FaultOp op) {
  absl::MutexLock lock(&mu_);
  faults_.erase(op);
}

void FaultInjectionStore::ClearAll() {
  absl::MutexLock lock(&mu_);
  faults_.clear();
}

FaultInjectionStore::Decision FaultInjectionStore::Decide(FaultOp op) {
  absl::MutexLock lock(&mu_);
  auto it = faults_.find(op);
  if (it == faults_.end() || it->second.status.ok()) return Decision{};
  Decision d{it->second.status, it->second.after};
  if (it->second.remaining > 0 && --it->second.remaining == 0) faults_.erase(it);
  injected_.fetch_add(1);
  return d;
}

template <typename T, typename Call>
T FaultInjectionStore::Run(FaultOp op, Call call) {
  Decision d = Decide(op);
  if (!d.status.ok() && !d.after) return FailWith<T>(d.status);
  T result = call();
  if (!d.status.ok()) return FailWith<T>(d.status);
  return result;
}

std::unique_ptr<StagingArea> FaultInjectionStore::NewStagingArea() {
  return std::make_unique<FaultStagingArea>(this, base_->NewStagingArea());
}

absl::StatusOr<CommitResult> FaultInjectionStore::Commit(const CommitRequest& request,
                                                         StagingArea* staging) {
  StagingArea* base_area = staging;
  if (auto* area = dynamic_cast<FaultStagingArea*>(staging)) base_area = area->base();
  return Run<absl::StatusOr<CommitResult>>(
      FaultOp::kCommit, [&]() { return base_->Commit(request, base_area); });
}

absl::StatusOr<int64_t> FaultInjectionStore::DeleteCheckpoint(absl::string_view model,
                                                              int64_t step) {
  return Run<absl::StatusOr<int64_t>>(
      FaultOp::kDelete, [&]() { return base_->DeleteCheckpoint(model, step); });
}

absl::StatusOr<storage::CheckpointRecord> FaultInjectionStore::GetCheckpoint(
    absl::string_view model, int64_t step) {
  return Run<absl::StatusOr<storage::CheckpointRecord>>(
      FaultOp::kReadRecord, [&]() { return base_->GetCheckpoint(model, step); });
}

absl::StatusOr<storage::CheckpointRecord> FaultInjectionStore::GetLatest(
    absl::string_view model) {
  return Run<absl::StatusOr<storage::CheckpointRecord>>(
      FaultOp::kReadRecord, [&]() { return base_->GetLatest(model); });
}

absl::Status FaultInjectionStore::VisitLatest(
    absl::string_view model,
    absl::FunctionRef<void(const storage::CheckpointRecord&, const storage::ModelRecord&)>
        visit) {
  return Run<absl::Status>(FaultOp::kReadRecord,
                           [&]() { return base_->VisitLatest(model, visit); });
}

absl::StatusOr<std::vector<storage::ModelRecord>> FaultInjectionStore::ListModels(
    absl::string_view start_after, int limit) {
  return Run<absl::StatusOr<std::vector<storage::ModelRecord>>>(
      FaultOp::kReadRecord, [&]() { return base_->ListModels(start_after, limit); });
}

absl::StatusOr<std::vector<storage::CheckpointRecord>>
FaultInjectionStore::ListCheckpoints(absl::string_view model,
                                     std::optional<int64_t> start_after, int limit) {
  return Run<absl::StatusOr<std::vector<storage::CheckpointRecord>>>(
      FaultOp::kReadRecord,
      [&]() { return base_->ListCheckpoints(model, start_after, limit); });
}

absl::StatusOr<storage::BlobRecord> FaultInjectionStore::GetBlob(
    absl::string_view sha256_hex) {
  return Run<absl::StatusOr<storage::BlobRecord>>(
      FaultOp::kReadRecord, [&]() { return base_->GetBlob(sha256_hex); });
}

absl::StatusOr<std::string> FaultInjectionStore::ReadChunk(const storage::ChunkRef& ref) {
  return Run<absl::StatusOr<std::string>>(FaultOp::kReadChunk,
                                          [&]() { return base_->ReadChunk(ref); });
}

absl::StatusOr<bool> FaultInjectionStore::HasChunk(const storage::ChunkRef& ref) {
  return base_->HasChunk(ref);
}

absl::StatusOr<StoreStats> FaultInjectionStore::GetStats() { return base_->GetStats(); }

absl::StatusOr<CheckReport> FaultInjectionStore::Check() { return base_->Check(); }

absl::Status FaultInjectionStore::Backup(const std::string& dir) {
  return base_->Backup(dir);
}

absl::StatusOr<EventPage> FaultInjectionStore::ReadEvents(int64_t after_revision,
                                                          int limit) {
  return base_->ReadEvents(after_revision, limit);
}

void FaultInjectionStore::SetEventListener(
    std::function<void(const storage::Event&)> listener) {
  base_->SetEventListener(std::move(listener));
}

absl::StatusOr<int64_t> FaultInjectionStore::SetAlias(absl::string_view model,
                                                      absl::string_view alias,
                                                      int64_t step) {
  return Run<absl::StatusOr<int64_t>>(
      FaultOp::kModelSettings, [&]() { return base_->SetAlias(model, alias, step); });
}

absl::StatusOr<int64_t> FaultInjectionStore::RemoveAlias(absl::string_view model,
                                                         absl::string_view alias) {
  return Run<absl::StatusOr<int64_t>>(FaultOp::kModelSettings,
                                      [&]() { return base_->RemoveAlias(model, alias); });
}

absl::Status FaultInjectionStore::SetPinned(absl::string_view model, int64_t step,
                                            bool pinned) {
  return Run<absl::Status>(FaultOp::kModelSettings,
                           [&]() { return base_->SetPinned(model, step, pinned); });
}

absl::StatusOr<storage::ModelRecord> FaultInjectionStore::GetModel(
    absl::string_view model) {
  return Run<absl::StatusOr<storage::ModelRecord>>(
      FaultOp::kReadRecord, [&]() { return base_->GetModel(model); });
}

absl::Status FaultInjectionStore::SetRetention(absl::string_view model,
                                               const storage::RetentionPolicy& policy) {
  return Run<absl::Status>(FaultOp::kModelSettings,
                           [&]() { return base_->SetRetention(model, policy); });
}

absl::StatusOr<int64_t> FaultInjectionStore::ApplyRetention(
    absl::string_view model, const std::vector<int64_t>& delete_steps,
    const std::vector<int64_t>& preserve_steps, int64_t last_preserved_micros) {
  return Run<absl::StatusOr<int64_t>>(FaultOp::kDelete, [&]() {
    return base_->ApplyRetention(model, delete_steps, preserve_steps,
                                 last_preserved_micros);
  });
}

// ---- FaultInjectionFileSystem. ------------------------------------------------------

struct FaultInjectionFileSystem::State {
  std::atomic<int64_t> budget{-1};  // bytes still allowed; < 0: unlimited
  std::atomic<bool> fail_syncs{false};
  std::atomic<bool> fail_reads{false};
  std::atomic<int64_t> injected{0};
  std::atomic<int64_t> appended{0};

  rocksdb::IOStatus Append(size_t n) {
    int64_t left = budget.load();
    while (left >= 0) {
      if (static_cast<int64_t>(n) > left) {
        injected.fetch_add(1);
        return rocksdb::IOStatus::NoSpace("injected: the disk is full");
      }
      if (budget.compare_exchange_weak(left, left - static_cast<int64_t>(n))) break;
    }
    appended.fetch_add(static_cast<int64_t>(n));
    return rocksdb::IOStatus::OK();
  }
  rocksdb::IOStatus Sync() {
    if (!fail_syncs.load()) return rocksdb::IOStatus::OK();
    injected.fetch_add(1);
    return rocksdb::IOStatus::IOError("injected: sync failed");
  }
  rocksdb::IOStatus Read() {
    if (!fail_reads.load()) return rocksdb::IOStatus::OK();
    injected.fetch_add(1);
    return rocksdb::IOStatus::IOError("injected: read failed");
  }
};

namespace {

using rocksdb::IODebugContext;
using rocksdb::IOOptions;
using rocksdb::IOStatus;
using rocksdb::Slice;

class FaultWritableFile : public rocksdb::FSWritableFileOwnerWrapper {
 public:
  FaultWritableFile(std::unique_ptr<rocksdb::FSWritableFile> f,
                    std::shared_ptr<FaultInjectionFileSystem::State> state)
      : FSWritableFileOwnerWrapper(std::move(f)), state_(std::move(state)) {}

  IOStatus Append(const Slice& data, const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = state_->Append(data.size());
    return s.ok() ? target()->Append(data, o, dbg) : s;
  }
  IOStatus Append(const Slice& data, const IOOptions& o,
                  const rocksdb::DataVerificationInfo& v, IODebugContext* dbg) override {
    IOStatus s = state_->Append(data.size());
    return s.ok() ? target()->Append(data, o, v, dbg) : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            IODebugContext* dbg) override {
    IOStatus s = state_->Append(data.size());
    return s.ok() ? target()->PositionedAppend(data, offset, o, dbg) : s;
  }
  IOStatus PositionedAppend(const Slice& data, uint64_t offset, const IOOptions& o,
                            const rocksdb::DataVerificationInfo& v,
                            IODebugContext* dbg) override {
    IOStatus s = state_->Append(data.size());
    return s.ok() ? target()->PositionedAppend(data, offset, o, v, dbg) : s;
  }
  IOStatus Sync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = state_->Sync();
    return s.ok() ? target()->Sync(o, dbg) : s;
  }
  IOStatus Fsync(const IOOptions& o, IODebugContext* dbg) override {
    IOStatus s = state_->Sync();
    return s.ok() ? target()->Fsync(o, dbg) : s;
  }
  IOStatus RangeSync(uint64_t offset, uint64_t nbytes, const IOOptions& o,
                     IODebugContext* dbg) override {
    IOStatus s = state_->Sync();
    return s.ok() ? target()->RangeSync(offset, nbytes, o, dbg) : s;
  }

 private:
  const std::shared_ptr<FaultInjectionFileSystem::State> state_;
};

class FaultRandomAccessFile : public rocksdb::FSRandomAccessFileOwnerWrapper {
 public:
  FaultRandomAccessFile(std::unique_ptr<rocksdb::FSRandomAccessFile> f,
                        std::shared_ptr<FaultInjectionFileSystem::State> state)
      : FSRandomAccessFileOwnerWrapper(std::move(f)), state_(std::move(state)) {}

  IOStatus Read(uint64_t offset, size_t n, const IOOptions& o, Slice* result,
                char* scratch, IODebugContext* dbg) const override {
    IOStatus s = state_->Read();
    return s.ok() ? target()->Read(offset, n, o, result, scratch, dbg) : s;
  }
  IOStatus MultiRead(rocksdb::FSReadRequest* reqs, size_t num_reqs, const IOOptions& o,
                     IODebugContext* dbg) override {
    IOStatus s = state_->Read();
    if (s.ok()) return target()->MultiRead(reqs, num_reqs, o, dbg);
    for (size_t i = 0; i < num_reqs; ++i) reqs[i].status = s;
    return s;
  }

 private:
  const std::shared_ptr<FaultInjectionFileSystem::State> state_;
};

class FaultFileSystem : public rocksdb::FileSystemWrapper {
 public:
  explicit FaultFileSystem(std::shared_ptr<FaultInjectionFileSystem::State> state)
      : FileSystemWrapper(rocksdb::FileSystem::Default()), state_(std::move(state)) {}

  const char* Name() const override { return "MgregFaultInjectionFileSystem"; }

  IOStatus NewWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                           std::unique_ptr<rocksdb::FSWritableFile>* r,
                           IODebugContext* dbg) override {
    IOStatus s = target()->NewWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(*r), state_);
    return s;
  }
  IOStatus ReopenWritableFile(const std::string& f, const rocksdb::FileOptions& o,
                              std::unique_ptr<rocksdb::FSWritableFile>* r,
                              IODebugContext* dbg) override {
    IOStatus s = target()->ReopenWritableFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(*r), state_);
    return s;
  }
  IOStatus ReuseWritableFile(const std::string& f, const std::string& old,
                             const rocksdb::FileOptions& o,
                             std::unique_ptr<rocksdb::FSWritableFile>* r,
                             IODebugContext* dbg) override {
    IOStatus s = target()->ReuseWritableFile(f, old, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultWritableFile>(std::move(*r), state_);
    return s;
  }
  IOStatus NewRandomAccessFile(const std::string& f, const rocksdb::FileOptions& o,
                               std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
                               IODebugContext* dbg) override {
    IOStatus s = target()->NewRandomAccessFile(f, o, r, dbg);
    if (s.ok()) *r = std::make_unique<FaultRandomAccessFile>(std::move(*r), state_);
    return s;
  }

 private:
  const std::shared_ptr<FaultInjectionFileSystem::State> state_;
};

}  // namespace

FaultInjectionFileSystem::FaultInjectionFileSystem()
    : state_(std::make_shared<State>()),
      env_(rocksdb::NewCompositeEnv(std::make_shared<FaultFileSystem>(state_))) {}

FaultInjectionFileSystem::~FaultInjectionFileSystem() = default;

std::shared_ptr<rocksdb::Env> FaultInjectionFileSystem::env() { return env_; }

void FaultInjectionFileSystem::SetWriteBudget(int64_t bytes) {
  state_->budget.store(bytes < 0 ? -1 : bytes);
}

void FaultInjectionFileSystem::FailSyncs(bool fail) { state_->fail_syncs.store(fail); }

void FaultInjectionFileSystem::FailReads(bool fail) { state_->fail_reads.store(fail); }

int64_t FaultInjectionFileSystem::faults_injected() const {
  return state_->injected.load();
}

int64_t FaultInjectionFileSystem::bytes_appended() const {
  return state_->appended.load();
}

}  // namespace mgreg
