// The in-memory Store: the same semantics as the RocksDB one (refcounts, staging,
// revision, idempotent commit, overwrite, events, aliases, pins, retention), with all
// state under one mutex and writes serialized by another.
#include <algorithm>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/names.h"
#include "common/status_macros.h"
#include "storage/commit_plan.h"
#include "storage/consistency_check.h"
#include "storage/store.h"

namespace mgreg {
namespace {

using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;
using storage_internal::ChunkName;
using storage_internal::StepName;

class MemoryStagingArea;

// Shared by the store and its staging areas, so an area outliving the store is safe.
class MemoryCore {
 public:
  explicit MemoryCore(int64_t event_window)
      : event_window_(std::max<int64_t>(event_window, 1)) {}

  struct Chunk {
    std::string data;
    int64_t refs = 0;     // slots in committed blobs
    int64_t holders = 0;  // staging areas holding it
  };
  struct Blob {
    BlobRecord record;
    int64_t refs = 0;  // files of committed checkpoints
  };

  absl::Status PutChunk(absl::flat_hash_set<std::string>* held, const ChunkRef& ref,
                        absl::string_view data) {
    RETURN_IF_ERROR(storage_internal::ValidateChunkData(ref, data));
    absl::MutexLock lock(&mu_);
    if (held->contains(ref.sha256())) return absl::OkStatus();
    Chunk& c = chunks_[ref.sha256()];
    if (c.refs == 0 && c.holders == 0) c.data.assign(data.data(), data.size());
    ++c.holders;
    held->insert(ref.sha256());
    return absl::OkStatus();
  }

  absl::Status HoldExisting(absl::flat_hash_set<std::string>* held, const ChunkRef& ref) {
    absl::MutexLock lock(&mu_);
    if (held->contains(ref.sha256())) return absl::OkStatus();
    auto it = chunks_.find(ref.sha256());
    if (it == chunks_.end()) {
      return absl::NotFoundError(absl::StrCat("chunk ", ChunkName(ref.sha256()),
                                              " is not stored; send its bytes"));
    }
    ++it->second.holders;
    held->insert(ref.sha256());
    return absl::OkStatus();
  }

  void Release(const absl::flat_hash_set<std::string>& held) {
    absl::MutexLock lock(&mu_);
    for (const std::string& sha : held) ReleaseLocked(sha);
  }

  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      absl::flat_hash_set<std::string>* held) {
    absl::flat_hash_map<std::string, const BlobRecord*> new_blobs;
    RETURN_IF_ERROR(storage_internal::ValidateCommitRequest(request, &new_blobs));
    const CheckpointRecord& in = request.record;
    absl::MutexLock write(&write_mu_);
    std::vector<Event> events;
    CheckpointRecord record;
    {
      absl::MutexLock lock(&mu_);
      const CheckpointRecord* old = nullptr;
      auto m = models_.find(in.model());
      if (m != models_.end()) {
        auto existing = m->second.steps.find(in.step());
        if (existing != m->second.steps.end()) {
          if (storage_internal::SameContent(existing->second, in)) {
            return CommitResult{existing->second, true};
          }
          if (!request.overwrite) {
            return absl::AlreadyExistsError(absl::StrCat(
                StepName(in.model(), in.step()),
                " already exists with other files; push a new step or ask to overwrite"));
          }
          old = &existing->second;
        }
      }

      // Which blobs to create, and check that everything they need is here.
      std::vector<const BlobRecord*> create;
      for (const auto& f : in.files()) {
        auto b = blobs_.find(f.sha256());
        if (b != blobs_.end()) {
          if (b->second.record.size() != f.size()) {
            return absl::InvalidArgumentError(absl::StrCat(
                "file '", f.name(), "' has size ", f.size(), " but the stored blob ",
                f.sha256(), " has ", b->second.record.size(), " bytes"));
          }
          continue;
        }
        auto n = new_blobs.find(f.sha256());
        if (n == new_blobs.end()) {
          return absl::FailedPreconditionError(
              absl::StrCat("file '", f.name(), "' of ", StepName(in.model(), in.step()),
                           " names blob ", f.sha256(),
                           " which is neither stored nor among the new blobs"));
        }
        if (std::find(create.begin(), create.end(), n->second) == create.end()) {
          create.push_back(n->second);
        }
      }
      for (const BlobRecord* blob : create) {
        for (const ChunkRef& c : blob->chunks()) {
          auto it = chunks_.find(c.sha256());
          bool ok =
              it != chunks_.end() &&
              (it->second.refs > 0 || (held != nullptr && held->contains(c.sha256())));
          if (!ok) {
            return absl::FailedPreconditionError(absl::StrCat(
                "blob ", blob->sha256(), " lists chunk ", ChunkName(c.sha256()),
                " which is neither stored nor staged in this upload; send it first"));
          }
        }
      }

      // Apply: new blobs, references of the new record, then drop the old record's.
      for (const BlobRecord* blob : create) {
        blobs_[blob->sha256()].record = *blob;
        for (const ChunkRef& c : blob->chunks()) ++chunks_[c.sha256()].refs;
      }
      for (const auto& f : in.files()) ++blobs_[f.sha256()].refs;
      record = in;
      record.set_commit_time_micros(storage_internal::NowMicros());
      record.set_revision(revision_ + 1);
      record.set_pinned(old != nullptr && old->pinned());
      record.set_preserved(old != nullptr && old->preserved());
      if (old != nullptr) {
        CheckpointRecord previous = *old;
        for (const auto& f : previous.files()) UnrefBlobLocked(f.sha256());
      }
      Model& model = models_[in.model()];
      model.record.set_name(in.model());
      model.steps[in.step()] = record;
      if (held != nullptr) {
        for (const BlobRecord* blob : create) {
          for (const ChunkRef& c : blob->chunks()) {
            if (held->erase(c.sha256()) > 0) ReleaseLocked(c.sha256());
          }
        }
      }
      AppendEventLocked(
          storage_internal::MakeEvent(Event::COMMITTED, in.model(), in.step(), "",
                                      record.commit_time_micros()),
          &events);
    }
    NotifyLocked(events);
    return CommitResult{std::move(record), false};
  }

  absl::StatusOr<int64_t> Delete(absl::string_view model, int64_t step) {
    absl::MutexLock write(&write_mu_);
    std::vector<Event> events;
    int64_t freed = 0;
    {
      absl::MutexLock lock(&mu_);
      auto m = models_.find(model);
      if (m == models_.end() || m->second.steps.find(step) == m->second.steps.end()) {
        return NotFound(model, step);
      }
      RETURN_IF_ERROR(storage_internal::CheckNoAliasNames(m->second.record, step));
      freed = DeleteStepLocked(m, step, storage_internal::NowMicros(), &events);
      EraseIfEmptyLocked(m);
    }
    NotifyLocked(events);
    return freed;
  }

  absl::StatusOr<int64_t> ApplyRetention(absl::string_view model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps,
                                         int64_t last_preserved_micros) {
    absl::MutexLock write(&write_mu_);
    std::vector<Event> events;
    int64_t freed = 0;
    {
      absl::MutexLock lock(&mu_);
      auto m = models_.find(model);
      if (m == models_.end()) return storage_internal::UnknownModel(model);
      for (int64_t step : preserve_steps) {
        auto it = m->second.steps.find(step);
        if (it != m->second.steps.end()) it->second.set_preserved(true);
      }
      m->second.record.set_last_preserved_micros(last_preserved_micros);
      const int64_t now = storage_internal::NowMicros();
      for (int64_t step : storage_internal::RetentionCandidates(
               m->second.record, delete_steps, preserve_steps)) {
        auto it = m->second.steps.find(step);
        if (it == m->second.steps.end() || it->second.pinned()) continue;
        freed += DeleteStepLocked(m, step, now, &events);
      }
      EraseIfEmptyLocked(m);
    }
    NotifyLocked(events);
    return freed;
  }

  absl::StatusOr<int64_t> SetAlias(absl::string_view model, absl::string_view alias,
                                   int64_t step) {
    absl::MutexLock write(&write_mu_);
    std::vector<Event> events;
    {
      absl::MutexLock lock(&mu_);
      auto m = models_.find(model);
      if (m == models_.end() || m->second.steps.find(step) == m->second.steps.end()) {
        return NotFound(model, step);
      }
      (*m->second.record.mutable_aliases())[std::string(alias)] = step;
      AppendEventLocked(storage_internal::MakeEvent(Event::ALIAS_SET, model, step, alias,
                                                    storage_internal::NowMicros()),
                        &events);
    }
    NotifyLocked(events);
    return events.back().revision();
  }

  absl::StatusOr<int64_t> RemoveAlias(absl::string_view model, absl::string_view alias) {
    absl::MutexLock write(&write_mu_);
    std::vector<Event> events;
    {
      absl::MutexLock lock(&mu_);
      auto m = models_.find(model);
      if (m == models_.end() ||
          m->second.record.aliases().count(std::string(alias)) == 0) {
        return absl::NotFoundError(
            absl::StrCat("model '", model, "' has no alias '", alias, "'"));
      }
      auto* aliases = m->second.record.mutable_aliases();
      const int64_t step = aliases->at(std::string(alias));
      aliases->erase(std::string(alias));
      AppendEventLocked(storage_internal::MakeEvent(Event::ALIAS_REMOVED, model, step,
                                                    alias, storage_internal::NowMicros()),
                        &events);
      EraseIfEmptyLocked(m);
    }
    NotifyLocked(events);
    return events.back().revision();
  }

  absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned) {
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return NotFound(model, step);
    auto it = m->second.steps.find(step);
    if (it == m->second.steps.end()) return NotFound(model, step);
    it->second.set_pinned(pinned);
    return absl::OkStatus();
  }

  absl::StatusOr<ModelRecord> GetModel(absl::string_view model) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return storage_internal::UnknownModel(model);
    return RecordOf(m->second);
  }

  absl::Status SetRetention(absl::string_view model,
                            const storage::RetentionPolicy& policy) {
    RETURN_IF_ERROR(ValidateModelName(model));
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    Model& m = models_[std::string(model)];
    m.record.set_name(std::string(model));
    if (!m.record.has_retention()) {
      m.record.set_last_preserved_micros(storage_internal::NowMicros());
    }
    *m.record.mutable_retention() = policy;
    return absl::OkStatus();
  }

  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) {
    absl::MutexLock lock(&mu_);
    EventPage page;
    page.current_revision = revision_;
    page.oldest_revision = events_.empty() ? 0 : events_.front().revision();
    if (after_revision >= revision_) return page;
    RETURN_IF_ERROR(storage_internal::CheckEventsAvailable(
        after_revision, events_.empty() ? revision_ + 1 : events_.front().revision()));
    // Retained events have consecutive revisions.
    auto it =
        events_.begin() + (std::max<int64_t>(after_revision + 1, page.oldest_revision) -
                           page.oldest_revision);
    for (; it != events_.end(); ++it) {
      if (limit > 0 && static_cast<int>(page.events.size()) >= limit) break;
      page.events.push_back(*it);
    }
    return page;
  }

  void SetListener(std::function<void(const Event&)> listener) {
    absl::MutexLock write(&write_mu_);
    listener_ = std::move(listener);
  }

  absl::StatusOr<CheckpointRecord> Get(absl::string_view model, int64_t step) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return NotFound(model, step);
    auto it = m->second.steps.find(step);
    if (it == m->second.steps.end()) return NotFound(model, step);
    return it->second;
  }

  absl::StatusOr<CheckpointRecord> Latest(absl::string_view model) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end() || m->second.steps.empty()) return NoModel(model);
    return m->second.steps.rbegin()->second;
  }

  std::vector<ModelRecord> ListModels(absl::string_view start_after, int limit) {
    absl::MutexLock lock(&mu_);
    std::vector<ModelRecord> out;
    for (auto it = models_.upper_bound(start_after); it != models_.end(); ++it) {
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      if (it->second.steps.empty()) continue;
      out.push_back(RecordOf(it->second));
    }
    return out;
  }

  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end() || m->second.steps.empty()) return NoModel(model);
    auto it = start_after.has_value() ? m->second.steps.upper_bound(*start_after)
                                      : m->second.steps.begin();
    std::vector<CheckpointRecord> out;
    for (; it != m->second.steps.end(); ++it) {
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      out.push_back(it->second);
    }
    return out;
  }

  absl::StatusOr<BlobRecord> GetBlob(absl::string_view sha256_hex) {
    absl::MutexLock lock(&mu_);
    auto it = blobs_.find(sha256_hex);
    if (it == blobs_.end()) {
      return absl::NotFoundError(absl::StrCat("no stored file has digest ", sha256_hex));
    }
    return it->second.record;
  }

  absl::StatusOr<std::string> ReadChunk(const ChunkRef& ref) {
    absl::MutexLock lock(&mu_);
    auto it = chunks_.find(ref.sha256());
    if (it == chunks_.end()) {
      return absl::NotFoundError(
          absl::StrCat("chunk ", ChunkName(ref.sha256()), " is not stored"));
    }
    return it->second.data;
  }

  bool HasChunk(const ChunkRef& ref) {
    absl::MutexLock lock(&mu_);
    return chunks_.contains(ref.sha256());
  }

  StoreStats Stats() {
    absl::MutexLock lock(&mu_);
    StoreStats s;
    for (const auto& [name, m] : models_) {
      if (m.steps.empty()) continue;
      ++s.models;
      s.checkpoints += static_cast<int64_t>(m.steps.size());
    }
    s.blobs = static_cast<int64_t>(blobs_.size());
    for (const auto& [sha, c] : chunks_) {
      if (c.refs > 0) {
        ++s.chunks;
        s.chunk_bytes += static_cast<int64_t>(c.data.size());
      } else {
        ++s.staged_chunks;
      }
    }
    s.revision = revision_;
    return s;
  }

  CheckReport Check() {
    absl::MutexLock write(&write_mu_);
    absl::MutexLock lock(&mu_);
    storage_internal::ConsistencyCheck check;
    check.SetRevision(revision_);
    for (const auto& [name, m] : models_) {
      check.AddModel(RecordOf(m));
      for (const auto& [step, record] : m.steps) check.AddCheckpoint(name, step, record);
    }
    for (const auto& [sha, b] : blobs_) check.AddBlob(b.record, b.refs);
    for (const auto& [sha, c] : chunks_) {
      if (c.refs > 0) check.AddChunkRefcount(sha, c.refs, c.data.size());
      check.AddChunkBytes(sha, c.data);
      if (c.holders > 0) check.AddHeld(sha);
    }
    for (const Event& e : events_) check.AddEvent(e);
    return check.Finish();
  }

 private:
  static absl::Status NotFound(absl::string_view model, int64_t step) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  static absl::Status NoModel(absl::string_view model) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no committed checkpoint"));
  }

  // A model: its settings (name, retention, last_preserved_micros, aliases; the latest
  // step and count are derived from `steps`) and its steps. It exists while it has
  // steps or settings.
  struct Model {
    ModelRecord record;
    std::map<int64_t, CheckpointRecord> steps;
  };
  using ModelMap = std::map<std::string, Model, std::less<>>;

  static ModelRecord RecordOf(const Model& m) {
    ModelRecord r = m.record;
    r.set_latest_step(m.steps.empty() ? 0 : m.steps.rbegin()->first);
    r.set_checkpoint_count(static_cast<int64_t>(m.steps.size()));
    return r;
  }

  void EraseIfEmptyLocked(ModelMap::iterator m) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    if (m->second.steps.empty() && !storage_internal::HasSettings(m->second.record)) {
      models_.erase(m);
    }
  }

  // Bumps the revision, stamps `e` with it, keeps it in the window and in `*out` (for
  // the listener).
  void AppendEventLocked(Event e, std::vector<Event>* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    e.set_revision(++revision_);
    events_.push_back(e);
    while (static_cast<int64_t>(events_.size()) > event_window_) events_.pop_front();
    out->push_back(std::move(e));
  }

  // The one way a step goes: DeleteCheckpoint and ApplyRetention both come here. Drops
  // the step and its references and appends its DELETED event; the caller then calls
  // EraseIfEmptyLocked. Returns the chunk bytes freed.
  int64_t DeleteStepLocked(ModelMap::iterator m, int64_t step, int64_t now,
                           std::vector<Event>* events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = m->second.steps.find(step);
    CheckpointRecord gone = std::move(it->second);
    m->second.steps.erase(it);
    int64_t freed = 0;
    for (const auto& f : gone.files()) freed += UnrefBlobLocked(f.sha256());
    AppendEventLocked(
        storage_internal::MakeEvent(Event::DELETED, m->first, step, "", now), events);
    return freed;
  }

  void NotifyLocked(const std::vector<Event>& events)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(write_mu_) {
    if (!listener_) return;
    for (const Event& e : events) listener_(e);
  }

  void ReleaseLocked(const std::string& sha) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto it = chunks_.find(sha);
    if (it == chunks_.end()) return;
    if (--it->second.holders == 0 && it->second.refs == 0) chunks_.erase(it);
  }

  // Drops one file reference to a blob; frees the blob and its unused chunks when it
  // was the last. Returns the chunk bytes freed.
  int64_t UnrefBlobLocked(const std::string& sha) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    auto b = blobs_.find(sha);
    if (b == blobs_.end() || --b->second.refs > 0) return 0;
    int64_t freed = 0;
    for (const ChunkRef& c : b->second.record.chunks()) {
      auto it = chunks_.find(c.sha256());
      if (it == chunks_.end()) continue;
      if (--it->second.refs == 0 && it->second.holders == 0) {
        freed += static_cast<int64_t>(it->second.data.size());
        chunks_.erase(it);
      }
    }
    blobs_.erase(b);
    return freed;
  }

  const int64_t event_window_;
  // Serializes writes, so events reach the listener in revision order; the listener
  // runs under it but not under mu_, so it may read the store. Lock order: a staging
  // area's mutex, write_mu_, mu_.
  absl::Mutex write_mu_;
  std::function<void(const Event&)> listener_ ABSL_GUARDED_BY(write_mu_);
  absl::Mutex mu_;
  ModelMap models_ ABSL_GUARDED_BY(mu_);
  // The newest events, consecutive revisions ending at revision_.
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Blob> blobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Chunk> chunks_ ABSL_GUARDED_BY(mu_);
  int64_t revision_ ABSL_GUARDED_BY(mu_) = 0;
};

class MemoryStagingArea : public StagingArea {
 public:
  explicit MemoryStagingArea(std::shared_ptr<MemoryCore> core) : core_(std::move(core)) {}
  ~MemoryStagingArea() override {
    absl::MutexLock lock(&mu_);
    core_->Release(held_);
  }

  absl::Status PutChunk(const ChunkRef& ref, absl::string_view data) override {
    absl::MutexLock lock(&mu_);
    return core_->PutChunk(&held_, ref, data);
  }
  absl::Status HoldExistingChunk(const ChunkRef& ref) override {
    absl::MutexLock lock(&mu_);
    return core_->HoldExisting(&held_, ref);
  }

  absl::StatusOr<CommitResult> Commit(const CommitRequest& request) {
    absl::MutexLock lock(&mu_);
    return core_->Commit(request, &held_);
  }
  const MemoryCore* core() const { return core_.get(); }

 private:
  const std::shared_ptr<MemoryCore> core_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

class MemoryStore : public Store {
 public:
  explicit MemoryStore(const MemoryStoreOptions& options)
      : core_(std::make_shared<MemoryCore>(options.event_window)) {}

  std::unique_ptr<StagingArea> NewStagingArea() override {
    return std::make_unique<MemoryStagingArea>(core_);
  }

  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      StagingArea* staging) override {
    if (staging == nullptr) return core_->Commit(request, nullptr);
    auto* area = dynamic_cast<MemoryStagingArea*>(staging);
    if (area == nullptr || area->core() != core_.get()) {
      return absl::InvalidArgumentError("the staging area belongs to another store");
    }
    return area->Commit(request);
  }

  absl::StatusOr<int64_t> DeleteCheckpoint(absl::string_view model,
                                           int64_t step) override {
    return core_->Delete(model, step);
  }
  absl::StatusOr<CheckpointRecord> GetCheckpoint(absl::string_view model,
                                                 int64_t step) override {
    return core_->Get(model, step);
  }
  absl::StatusOr<CheckpointRecord> GetLatest(absl::string_view model) override {
    return core_->Latest(model);
  }
  absl::StatusOr<std::vector<ModelRecord>> ListModels(absl::string_view start_after,
                                                      int limit) override {
    return core_->ListModels(start_after, limit);
  }
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) override {
    return core_->ListCheckpoints(model, start_after, limit);
  }
  absl::StatusOr<BlobRecord> GetBlob(absl::string_view sha256_hex) override {
    return core_->GetBlob(sha256_hex);
  }
  absl::StatusOr<std::string> ReadChunk(const ChunkRef& ref) override {
    return core_->ReadChunk(ref);
  }
  absl::StatusOr<bool> HasChunk(const ChunkRef& ref) override {
    return core_->HasChunk(ref);
  }
  absl::StatusOr<StoreStats> GetStats() override { return core_->Stats(); }
  absl::StatusOr<CheckReport> Check() override { return core_->Check(); }
  absl::Status Backup(const std::string& /*dir*/) override {
    return absl::FailedPreconditionError("in-memory store cannot be backed up");
  }
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override {
    return core_->ReadEvents(after_revision, limit);
  }
  void SetEventListener(std::function<void(const Event&)> listener) override {
    core_->SetListener(std::move(listener));
  }
  absl::StatusOr<int64_t> SetAlias(absl::string_view model, absl::string_view alias,
                                   int64_t step) override {
    return core_->SetAlias(model, alias, step);
  }
  absl::StatusOr<int64_t> RemoveAlias(absl::string_view model,
                                      absl::string_view alias) override {
    return core_->RemoveAlias(model, alias);
  }
  absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned) override {
    return core_->SetPinned(model, step, pinned);
  }
  absl::StatusOr<ModelRecord> GetModel(absl::string_view model) override {
    return core_->GetModel(model);
  }
  absl::Status SetRetention(absl::string_view model,
                            const storage::RetentionPolicy& policy) override {
    return core_->SetRetention(model, policy);
  }
  absl::StatusOr<int64_t> ApplyRetention(absl::string_view model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps,
                                         int64_t last_preserved_micros) override {
    return core_->ApplyRetention(model, delete_steps, preserve_steps,
                                 last_preserved_micros);
  }

 private:
  const std::shared_ptr<MemoryCore> core_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore(const MemoryStoreOptions& options) {
  return std::make_unique<MemoryStore>(options);
}

std::unique_ptr<Store> NewMemoryStore() { return NewMemoryStore(MemoryStoreOptions{}); }

}  // namespace mgreg
