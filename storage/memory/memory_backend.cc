// The in-memory backend: records and chunk bytes in maps under one mutex; a transaction
// is applied under it. The rules are the planner's (storage/planner.h).
#include "storage/memory/memory_backend.h"

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
#include "common/status_macros.h"
#include "storage/backed_store.h"
#include "storage/backend.h"
#include "storage/planner.h"
#include "storage/store.h"

namespace mgreg {
namespace {

using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;

class MemoryBackend;

class MemoryArea : public BackendStagingArea {
 public:
  explicit MemoryArea(std::shared_ptr<MemoryBackend> backend)
      : backend_(std::move(backend)) {}
  ~MemoryArea() override;

  absl::Status PutChunk(const ChunkRef& ref, absl::string_view data) override;
  absl::StatusOr<bool> HoldExistingChunk(const ChunkRef& ref) override;
  bool Holds(absl::string_view raw) const override { return held_.contains(raw); }
  absl::Status PrepareCommit(const std::vector<const BlobRecord*>&) override {
    return absl::OkStatus();  // memory is as durable as it gets at once
  }

  const MemoryBackend* backend() const { return backend_.get(); }
  // The backend's mutex is held when these run.
  bool Release(const std::string& raw) { return held_.erase(raw) > 0; }

 private:
  const std::shared_ptr<MemoryBackend> backend_;
  absl::flat_hash_set<std::string> held_;
};

class MemoryBackend : public Backend, public std::enable_shared_from_this<MemoryBackend> {
 public:
  struct Chunk {
    std::string data;
    int64_t refs = 0;     // slots in committed blobs
    int64_t holders = 0;  // staging areas holding it
  };

  bool remote() const override { return false; }
  std::unique_ptr<BackendStagingArea> NewStagingArea() override {
    return std::make_unique<MemoryArea>(shared_from_this());
  }
  absl::Status ReadyToWrite() override { return absl::OkStatus(); }

  absl::StatusOr<Head> ReadHead() override {
    absl::MutexLock lock(&mu_);
    return head_;
  }
  absl::StatusOr<std::optional<ModelRecord>> ReadModel(absl::string_view model) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it == models_.end()) return std::optional<ModelRecord>();
    return std::optional<ModelRecord>(it->second.record);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadLatest(
      absl::string_view model) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it == models_.end() || it->second.steps.empty()) {
      return std::optional<CheckpointRecord>();
    }
    return std::optional<CheckpointRecord>(it->second.steps.rbegin()->second);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpoint(absl::string_view model,
                                                                 int64_t step) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it == models_.end()) return std::optional<CheckpointRecord>();
    auto s = it->second.steps.find(step);
    if (s == it->second.steps.end()) return std::optional<CheckpointRecord>();
    return std::optional<CheckpointRecord>(s->second);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view model, int64_t below) override {
    absl::MutexLock lock(&mu_);
    auto it = models_.find(model);
    if (it == models_.end()) return std::optional<CheckpointRecord>();
    auto s = it->second.steps.lower_bound(below);
    if (s == it->second.steps.begin()) return std::optional<CheckpointRecord>();
    return std::optional<CheckpointRecord>(std::prev(s)->second);
  }
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override {
    absl::MutexLock lock(&mu_);
    auto it = blobs_.find(hex);
    if (it == blobs_.end()) return std::optional<BlobEntry>();
    return std::optional<BlobEntry>(it->second);
  }
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override {
    absl::MutexLock lock(&mu_);
    auto it = chunks_.find(raw);
    if (it == chunks_.end() || it->second.refs == 0) return ChunkEntry{};
    return ChunkEntry{it->second.refs, static_cast<uint32_t>(it->second.data.size())};
  }

  absl::StatusOr<ApplyResult> Apply(const Transaction& txn,
                                    BackendStagingArea* committing) override {
    ApplyResult result;
    {
      absl::MutexLock lock(&mu_);
      // Checked first, so that a failed apply changes nothing.
      for (const ChunkWrite& c : txn.chunks) {
        if (c.refs_after > 0 && !chunks_.contains(c.raw)) {
          return absl::InternalError(
              absl::StrCat(txn.what, ": chunk ", planner::ChunkName(c.raw),
                           " is committed but its bytes are gone"));
        }
      }
      if (!txn.model.empty()) {
        if (txn.model_after.has_value()) {
          Model& m = models_[txn.model];
          m.record = *txn.model_after;
          for (int64_t step : txn.removed_steps) m.steps.erase(step);
          for (const CheckpointRecord& r : txn.put_checkpoints) m.steps[r.step()] = r;
        } else {
          models_.erase(txn.model);
        }
      }
      for (const BlobWrite& b : txn.blobs) {
        if (b.refs_after == 0) {
          blobs_.erase(b.hex);
          continue;
        }
        BlobEntry& e = blobs_[b.hex];
        if (b.created.has_value()) e.record = *b.created;
        e.refs = b.refs_after;
      }
      auto* area = static_cast<MemoryArea*>(committing);
      for (const ChunkWrite& c : txn.chunks) {
        auto it = chunks_.find(c.raw);
        if (it == chunks_.end()) continue;  // freed by an earlier apply of txn
        it->second.refs = c.refs_after;
        if (c.release_hold && area != nullptr && area->Release(c.raw)) {
          --it->second.holders;
        }
        if (it->second.refs == 0 && it->second.holders == 0) {
          result.freed_bytes += static_cast<int64_t>(it->second.data.size());
          chunks_.erase(it);
        }
      }
      for (const Event& e : txn.events) {
        if (events_.empty() || e.revision() > events_.back().revision()) {
          events_.push_back(e);
        }
      }
      while (!events_.empty() &&
             events_.front().revision() < txn.head_after.oldest_event) {
        events_.pop_front();
      }
      head_ = txn.head_after;
    }
    if (listener_) {
      for (const Event& e : txn.events) listener_(e);
    }
    return result;
  }

  void SetEventListener(std::function<void(const Event&)> listener) override {
    listener_ = std::move(listener);
  }

  absl::StatusOr<std::vector<ModelRecord>> ListModels(absl::string_view start_after,
                                                      int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<ModelRecord> out;
    for (auto it = models_.upper_bound(start_after); it != models_.end(); ++it) {
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      if (it->second.steps.empty()) continue;
      out.push_back(it->second.record);
    }
    return out;
  }
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(absl::string_view model,
                                                                int64_t first,
                                                                int limit) override {
    absl::MutexLock lock(&mu_);
    std::vector<CheckpointRecord> out;
    auto m = models_.find(model);
    if (m == models_.end()) return out;
    for (auto it = m->second.steps.lower_bound(first); it != m->second.steps.end();
         ++it) {
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      out.push_back(it->second);
    }
    return out;
  }
  absl::StatusOr<std::optional<std::string>> ReadChunkBytes(
      absl::string_view raw) override {
    absl::MutexLock lock(&mu_);
    auto it = chunks_.find(raw);
    if (it == chunks_.end()) return std::optional<std::string>();
    return std::optional<std::string>(it->second.data);
  }
  absl::StatusOr<bool> HasChunk(absl::string_view raw) override {
    absl::MutexLock lock(&mu_);
    return chunks_.contains(raw);
  }
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override {
    absl::MutexLock lock(&mu_);
    EventPage page;
    page.current_revision = head_.revision;
    page.oldest_revision = events_.empty() ? 0 : events_.front().revision();
    if (after_revision >= page.current_revision) return page;  // also keeps +1 in range
    // Retained events have consecutive revisions.
    const int64_t first = std::max<int64_t>(after_revision + 1, page.oldest_revision);
    if (events_.empty() || first > page.current_revision) return page;
    for (auto it = events_.begin() + (first - page.oldest_revision); it != events_.end();
         ++it) {
      if (limit > 0 && static_cast<int>(page.events.size()) >= limit) break;
      page.events.push_back(*it);
    }
    return page;
  }
  absl::Status EngineStats(StoreStats* stats) override {
    absl::MutexLock lock(&mu_);
    for (const auto& [raw, c] : chunks_) stats->staged_chunks += c.refs == 0 ? 1 : 0;
    return absl::OkStatus();
  }
  absl::Status Scan(RecordSink* sink) override {
    absl::MutexLock lock(&mu_);
    sink->SetRevision(head_.revision);
    for (const auto& [name, m] : models_) {
      sink->AddModel(m.record);
      for (const auto& [step, record] : m.steps) sink->AddCheckpoint(name, step, record);
    }
    for (const auto& [hex, b] : blobs_) sink->AddBlob(b.record, b.refs);
    for (const auto& [raw, c] : chunks_) {
      if (c.refs > 0) sink->AddChunkRefcount(raw, c.refs, c.data.size());
      sink->AddChunkBytes(raw, c.data);
      if (c.holders > 0) sink->AddHeld(raw);
    }
    for (const Event& e : events_) sink->AddEvent(e);
    sink->AddServedHead(head_);
    for (const auto& [name, m] : models_) {
      sink->AddServedModel(m.record, m.steps.empty() ? std::optional<CheckpointRecord>()
                                                     : m.steps.rbegin()->second);
    }
    return absl::OkStatus();
  }
  absl::Status Backup(const std::string& /*dir*/) override {
    return planner::CannotBackUp("in-memory");
  }

  // For MemoryArea.
  absl::Status Put(absl::flat_hash_set<std::string>* held, const ChunkRef& ref,
                   absl::string_view data) {
    absl::MutexLock lock(&mu_);
    if (held->contains(ref.sha256())) return absl::OkStatus();
    Chunk& c = chunks_[ref.sha256()];
    if (c.refs == 0 && c.holders == 0) c.data.assign(data.data(), data.size());
    ++c.holders;
    held->insert(ref.sha256());
    return absl::OkStatus();
  }
  bool Hold(absl::flat_hash_set<std::string>* held, const ChunkRef& ref) {
    absl::MutexLock lock(&mu_);
    if (held->contains(ref.sha256())) return true;
    auto it = chunks_.find(ref.sha256());
    if (it == chunks_.end()) return false;
    ++it->second.holders;
    held->insert(ref.sha256());
    return true;
  }
  void Release(const absl::flat_hash_set<std::string>& held) {
    absl::MutexLock lock(&mu_);
    for (const std::string& sha : held) {
      auto it = chunks_.find(sha);
      if (it == chunks_.end()) continue;
      if (--it->second.holders == 0 && it->second.refs == 0) chunks_.erase(it);
    }
  }

 private:
  struct Model {
    ModelRecord record;
    std::map<int64_t, CheckpointRecord> steps;
  };

  // Called from Apply, which the store never runs concurrently; set under its write
  // mutex.
  std::function<void(const Event&)> listener_;
  absl::Mutex mu_;
  Head head_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, Model, std::less<>> models_ ABSL_GUARDED_BY(mu_);
  // The newest events, consecutive revisions ending at head_.revision.
  std::deque<Event> events_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, BlobEntry> blobs_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Chunk> chunks_ ABSL_GUARDED_BY(mu_);
};

MemoryArea::~MemoryArea() { backend_->Release(held_); }

absl::Status MemoryArea::PutChunk(const ChunkRef& ref, absl::string_view data) {
  return backend_->Put(&held_, ref, data);
}

absl::StatusOr<bool> MemoryArea::HoldExistingChunk(const ChunkRef& ref) {
  return backend_->Hold(&held_, ref);
}

}  // namespace

std::shared_ptr<Backend> NewMemoryBackend() { return std::make_shared<MemoryBackend>(); }

std::unique_ptr<Store> NewMemoryStore(const MemoryStoreOptions& options) {
  return NewBackedStore(NewMemoryBackend(), options.event_window);
}

std::unique_ptr<Store> NewMemoryStore() { return NewMemoryStore(MemoryStoreOptions{}); }

}  // namespace mgreg
