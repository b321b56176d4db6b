#include "storage/backed_store.h"

#include <algorithm>
#include <functional>
#include <optional>
#include <utility>

#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "storage/consistency_check.h"
#include "storage/planner.h"
#include "storage/session_backend.h"
#include "storage/session_store.h"

namespace mgreg {
namespace {

using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;

// How many times a mutation is planned again after another process's write made its
// transaction stale, before the caller gets ABORTED.
constexpr int kMaxPlans = 16;

int64_t NowMicros() { return absl::ToUnixMicros(absl::Now()); }

// The planner's view of one plan: the backend's reads, remembering the version of the
// head it read. On an engine shared by several processes (RADOS) the planner's reads
// are not one snapshot: another process's write landing between two of them can make
// the view look broken (a step naming a blob just removed). Such a plan fails; if the
// store moved since the view's head, it is planned again rather than reported.
class PlanView : public RecordReader {
 public:
  explicit PlanView(Backend& backend) : backend_(backend) {}

  // True if a write was decided since this view read the head.
  bool Moved() {
    if (!version_.has_value() || *version_ == 0) return false;
    absl::StatusOr<Head> now = backend_.ReadHead();
    return now.ok() && now->version != *version_;
  }

  absl::StatusOr<Head> ReadHead() override {
    absl::StatusOr<Head> h = backend_.ReadHead();
    if (h.ok() && !version_.has_value()) version_ = h->version;
    return h;
  }
  absl::StatusOr<std::optional<ModelRecord>> ReadModel(absl::string_view m) override {
    return backend_.ReadModel(m);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadLatest(
      absl::string_view m) override {
    return backend_.ReadLatest(m);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpoint(absl::string_view m,
                                                                 int64_t step) override {
    return backend_.ReadCheckpoint(m, step);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view m, int64_t below) override {
    return backend_.ReadCheckpointBelow(m, below);
  }
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override {
    return backend_.ReadBlob(hex);
  }
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override {
    return backend_.ReadChunkEntry(raw);
  }

 private:
  Backend& backend_;
  std::optional<uint64_t> version_;
};

// Shared by the store and its staging areas, so an area outliving the store is safe.
class StoreCore {
 public:
  StoreCore(std::shared_ptr<Backend> backend, int64_t event_window)
      : backend_(std::move(backend)), planner_(event_window) {}

  Backend& backend() { return *backend_; }

  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      BackendStagingArea* area) {
    NewBlobs new_blobs;
    RETURN_IF_ERROR(planner::ValidateCommitRequest(request, &new_blobs));
    RETURN_IF_ERROR(backend_->ReadyToWrite());
    if (area != nullptr && !new_blobs.empty()) {
      std::vector<const BlobRecord*> blobs;
      for (const auto& [hex, blob] : new_blobs) blobs.push_back(blob);
      // Outside write_mu_, so commits of other steps do not wait for this.
      RETURN_IF_ERROR(area->PrepareCommit(blobs));
    }
    absl::MutexLock write(&write_mu_);
    for (int i = 0; i < kMaxPlans; ++i) {
      PlanView view(*backend_);
      absl::StatusOr<CommitPlan> planned =
          planner_.PlanCommit(view, request, new_blobs, area, NowMicros());
      if (!planned.ok() && i + 1 < kMaxPlans && view.Moved()) continue;
      ASSIGN_OR_RETURN(CommitPlan plan, std::move(planned));
      if (!plan.txn.has_value()) return std::move(plan.result);
      ASSIGN_OR_RETURN(ApplyResult applied, backend_->Apply(*plan.txn, area));
      if (!applied.stale) return std::move(plan.result);
    }
    return planner::RegistryBusy("committing");
  }

  // Plans with `plan(view, now)` (nullopt: nothing to change) and applies, under
  // write_mu_.
  // Fills *revision with the store's revision after it, if asked.
  template <typename PlanFn>
  absl::StatusOr<int64_t> Mutate(PlanFn plan, int64_t* revision = nullptr) {
    RETURN_IF_ERROR(backend_->ReadyToWrite());
    absl::MutexLock write(&write_mu_);
    for (int i = 0; i < kMaxPlans; ++i) {
      PlanView view(*backend_);
      absl::StatusOr<std::optional<Transaction>> txn = plan(view, NowMicros());
      if (!txn.ok() && i + 1 < kMaxPlans && view.Moved()) continue;
      RETURN_IF_ERROR(txn.status());
      if (!txn->has_value()) return 0;
      ASSIGN_OR_RETURN(ApplyResult applied, backend_->Apply(**txn, nullptr));
      if (applied.stale) continue;
      if (revision != nullptr) *revision = (*txn)->head_after.revision;
      return applied.freed_bytes;
    }
    return planner::RegistryBusy("writing");
  }

  const Planner& planner() const { return planner_; }

  void SetListener(std::function<void(const Event&)> listener) {
    absl::MutexLock write(&write_mu_);
    backend_->SetEventListener(std::move(listener));
  }

 private:
  const std::shared_ptr<Backend> backend_;
  const Planner planner_;
  // Serializes this process's writes: plan, then apply.
  absl::Mutex write_mu_;
};

// Wraps one upload's staged chunks with a mutex (BackendStagingArea is externally
// synchronized) and the contract's checks.
class BackedStagingArea : public StagingArea {
 public:
  BackedStagingArea(std::shared_ptr<StoreCore> core,
                    std::unique_ptr<BackendStagingArea> area)
      : core_(std::move(core)), area_(std::move(area)) {}
  ~BackedStagingArea() override {
    absl::MutexLock lock(&mu_);
    area_.reset();  // releases the holds
  }

  absl::Status PutChunk(const ChunkRef& ref, absl::string_view data) override {
    RETURN_IF_ERROR(planner::ValidateChunkData(ref, data));
    absl::MutexLock lock(&mu_);
    return area_->PutChunk(ref, data);
  }
  absl::Status HoldExistingChunk(const ChunkRef& ref) override {
    RETURN_IF_ERROR(planner::ValidateChunkRef(ref));
    absl::MutexLock lock(&mu_);
    ASSIGN_OR_RETURN(bool held, area_->HoldExistingChunk(ref));
    if (!held) return planner::ChunkToSend(ref.sha256());
    // The writer's size for it must be the stored one: a writer that names a chunk
    // instead of sending it may not have read its bytes back.
    ASSIGN_OR_RETURN(ChunkEntry stored, core_->backend().ReadChunkEntry(ref.sha256()));
    if (stored.refs > 0 && stored.size != ref.size()) {
      return planner::ExistingChunkOfOtherSize(ref.sha256(), stored.size, ref.size());
    }
    return absl::OkStatus();
  }
  absl::Status MakeDurable() override {
    std::function<absl::Status()> task;
    {
      absl::MutexLock lock(&mu_);
      task = area_->DurabilityTask();
    }
    return task == nullptr ? absl::OkStatus() : task();
  }
  absl::StatusOr<CommitResult> Commit(const CommitRequest& request) {
    absl::MutexLock lock(&mu_);
    return core_->Commit(request, area_.get());
  }
  const StoreCore* core() const { return core_.get(); }

 private:
  const std::shared_ptr<StoreCore> core_;
  absl::Mutex mu_;
  std::unique_ptr<BackendStagingArea> area_ ABSL_GUARDED_BY(mu_);
};

class BackedStore : public Store {
 public:
  explicit BackedStore(std::shared_ptr<StoreCore> core) : core_(std::move(core)) {
    if (std::shared_ptr<SessionBackend> shared = backend().session_backend()) {
      std::weak_ptr<StoreCore> weak = core_;
      sessions_ = NewSessionStore(
          std::move(shared),
          [weak](absl::string_view id) -> absl::StatusOr<std::shared_ptr<StagingArea>> {
            std::shared_ptr<StoreCore> core = weak.lock();
            if (core == nullptr) return absl::UnavailableError("the store is closed");
            return std::shared_ptr<StagingArea>(std::make_shared<BackedStagingArea>(
                core, core->backend().NewSessionArea(id)));
          });
    } else {
      sessions_ = NewLocalSessionStore(this);
    }
  }
  ~BackedStore() override { sessions_.reset(); }  // its staging areas use the store

  SessionStore& sessions() override { return *sessions_; }

  bool remote() const override { return core_->backend().remote(); }
  std::unique_ptr<StagingArea> NewStagingArea() override {
    return std::make_unique<BackedStagingArea>(core_, backend().NewStagingArea());
  }
  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      StagingArea* staging) override {
    if (staging == nullptr) return core_->Commit(request, nullptr);
    auto* area = dynamic_cast<BackedStagingArea*>(staging);
    if (area == nullptr || area->core() != core_.get()) {
      return planner::ForeignStagingArea();
    }
    return area->Commit(request);
  }
  absl::StatusOr<int64_t> DeleteCheckpoint(absl::string_view model,
                                           int64_t step) override {
    return core_->Mutate([&](RecordReader& view,
                             int64_t now) -> absl::StatusOr<std::optional<Transaction>> {
      return planner().PlanDelete(view, model, step, now);
    });
  }
  absl::StatusOr<CheckpointRecord> GetCheckpoint(absl::string_view model,
                                                 int64_t step) override {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r,
                     backend().ReadCheckpoint(model, step));
    if (!r.has_value()) return planner::StepNotFound(model, step);
    return std::move(*r);
  }
  absl::StatusOr<CheckpointRecord> GetLatest(absl::string_view model) override {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r, backend().ReadLatest(model));
    if (!r.has_value()) return planner::NoCommittedCheckpoint(model);
    return std::move(*r);
  }
  absl::Status VisitLatest(
      absl::string_view model,
      absl::FunctionRef<void(const CheckpointRecord&, const ModelRecord&)> visit)
      override {
    ASSIGN_OR_RETURN(bool found, backend().VisitLatest(model, visit));
    if (!found) return planner::NoCommittedCheckpoint(model);
    return absl::OkStatus();
  }
  absl::StatusOr<std::vector<ModelRecord>> ListModels(absl::string_view start_after,
                                                      int limit) override {
    return backend().ListModels(start_after, limit);
  }
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) override {
    ASSIGN_OR_RETURN(std::optional<ModelRecord> m, backend().ReadModel(model));
    if (!m.has_value() || m->checkpoint_count() == 0) {
      return planner::NoCommittedCheckpoint(model);
    }
    if (start_after.has_value() && *start_after == INT64_MAX) {
      return std::vector<CheckpointRecord>();
    }
    const int64_t first =
        start_after.has_value() ? std::max<int64_t>(*start_after + 1, 0) : 0;
    return backend().ListCheckpoints(model, first, limit);
  }
  absl::StatusOr<BlobRecord> GetBlob(absl::string_view sha256_hex) override {
    ASSIGN_OR_RETURN(std::optional<BlobEntry> b, backend().ReadBlob(sha256_hex));
    if (!b.has_value()) return planner::UnknownBlob(sha256_hex);
    return std::move(b->record);
  }
  absl::StatusOr<std::string> ReadChunk(const ChunkRef& ref) override {
    if (ref.sha256().size() != 32) return planner::ChunkNotStored(ref.sha256());
    ASSIGN_OR_RETURN(std::optional<std::string> bytes,
                     backend().ReadChunkBytes(ref.sha256()));
    if (!bytes.has_value()) return planner::ChunkNotStored(ref.sha256());
    if (ref.size() != 0 && bytes->size() != ref.size()) {
      return planner::ChunkSizeMismatch(ref.sha256(), bytes->size(), ref.size());
    }
    return std::move(*bytes);
  }
  absl::StatusOr<bool> HasChunk(const ChunkRef& ref) override {
    return backend().HasChunk(ref.sha256());
  }
  absl::StatusOr<StoreStats> GetStats() override {
    ASSIGN_OR_RETURN(Head head, backend().ReadHead());
    StoreStats s;
    s.models = head.models;
    s.checkpoints = head.checkpoints;
    s.blobs = head.blobs;
    s.chunks = head.chunks;
    s.chunk_bytes = head.chunk_bytes;
    s.revision = head.revision;
    RETURN_IF_ERROR(backend().EngineStats(&s));
    return s;
  }
  absl::StatusOr<CheckReport> Check() override {
    storage_internal::ConsistencyCheck check;
    RETURN_IF_ERROR(backend().Scan(&check));
    return check.Finish();
  }
  absl::Status Backup(const std::string& dir) override {
    RETURN_IF_ERROR(planner::ValidateBackupDir(dir));
    return backend().Backup(dir);
  }
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override {
    ASSIGN_OR_RETURN(EventPage page, backend().ReadEvents(after_revision, limit));
    return planner::CheckEventPage(after_revision, std::move(page));
  }
  void SetEventListener(std::function<void(const Event&)> listener) override {
    core_->SetListener(std::move(listener));
  }
  absl::StatusOr<int64_t> SetAlias(absl::string_view model, absl::string_view alias,
                                   int64_t step) override {
    int64_t revision = 0;
    RETURN_IF_ERROR(
        core_
            ->Mutate(
                [&](RecordReader& view,
                    int64_t now) -> absl::StatusOr<std::optional<Transaction>> {
                  return planner().PlanSetAlias(view, model, alias, step, now);
                },
                &revision)
            .status());
    return revision;
  }
  absl::StatusOr<int64_t> RemoveAlias(absl::string_view model,
                                      absl::string_view alias) override {
    int64_t revision = 0;
    RETURN_IF_ERROR(
        core_
            ->Mutate(
                [&](RecordReader& view,
                    int64_t now) -> absl::StatusOr<std::optional<Transaction>> {
                  return planner().PlanRemoveAlias(view, model, alias, now);
                },
                &revision)
            .status());
    return revision;
  }
  absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned) override {
    return core_
        ->Mutate([&](RecordReader& view, int64_t) {
          return planner().PlanSetPinned(view, model, step, pinned);
        })
        .status();
  }
  absl::StatusOr<ModelRecord> GetModel(absl::string_view model) override {
    ASSIGN_OR_RETURN(std::optional<ModelRecord> m, backend().ReadModel(model));
    if (!m.has_value()) return planner::UnknownModel(model);
    return std::move(*m);
  }
  absl::Status SetRetention(absl::string_view model,
                            const storage::RetentionPolicy& policy) override {
    return core_
        ->Mutate([&](RecordReader& view,
                     int64_t now) -> absl::StatusOr<std::optional<Transaction>> {
          return planner().PlanSetRetention(view, model, policy, now);
        })
        .status();
  }
  absl::StatusOr<int64_t> ApplyRetention(absl::string_view model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps,
                                         int64_t last_preserved_micros) override {
    return core_->Mutate([&](RecordReader& view,
                             int64_t now) -> absl::StatusOr<std::optional<Transaction>> {
      return planner().PlanApplyRetention(view, model, delete_steps, preserve_steps,
                                          last_preserved_micros, now);
    });
  }

 private:
  Backend& backend() { return core_->backend(); }
  const Planner& planner() const { return core_->planner(); }

  const std::shared_ptr<StoreCore> core_;
  std::unique_ptr<SessionStore> sessions_;
};

}  // namespace

std::unique_ptr<Store> NewBackedStore(std::shared_ptr<Backend> backend,
                                      int64_t event_window) {
  return std::make_unique<BackedStore>(
      std::make_shared<StoreCore>(std::move(backend), event_window));
}

}  // namespace mgreg
