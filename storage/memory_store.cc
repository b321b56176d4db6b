// The in-memory Store: the same semantics as the RocksDB one (refcounts, staging,
// revision, idempotent commit, overwrite), with everything under one mutex.
#include <algorithm>
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
#include "storage/commit_plan.h"
#include "storage/store.h"

namespace mgreg {
namespace {

using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::ModelRecord;
using storage_internal::ChunkName;
using storage_internal::StepName;

class MemoryStagingArea;

// Shared by the store and its staging areas, so an area outliving the store is safe.
class MemoryCore {
 public:
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
    absl::MutexLock lock(&mu_);
    const CheckpointRecord* old = nullptr;
    auto m = models_.find(in.model());
    auto existing = m != models_.end() ? m->second.find(in.step())
                                       : std::map<int64_t, CheckpointRecord>::iterator();
    if (m != models_.end() && existing != m->second.end()) {
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
        return absl::FailedPreconditionError(absl::StrCat(
            "file '", f.name(), "' of ", StepName(in.model(), in.step()), " names blob ",
            f.sha256(), " which is neither stored nor among the new blobs"));
      }
      if (std::find(create.begin(), create.end(), n->second) == create.end()) {
        create.push_back(n->second);
      }
    }
    for (const BlobRecord* blob : create) {
      for (const ChunkRef& c : blob->chunks()) {
        auto it = chunks_.find(c.sha256());
        bool ok = it != chunks_.end() &&
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
    CheckpointRecord record = in;
    record.set_commit_time_micros(storage_internal::NowMicros());
    record.set_revision(++revision_);
    if (old != nullptr) {
      CheckpointRecord previous = *old;
      for (const auto& f : previous.files()) UnrefBlobLocked(f.sha256());
    }
    models_[in.model()][in.step()] = record;
    if (held != nullptr) {
      for (const BlobRecord* blob : create) {
        for (const ChunkRef& c : blob->chunks()) {
          if (held->erase(c.sha256()) > 0) ReleaseLocked(c.sha256());
        }
      }
    }
    return CommitResult{std::move(record), false};
  }

  absl::StatusOr<int64_t> Delete(absl::string_view model, int64_t step) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end() || m->second.find(step) == m->second.end()) {
      return NotFound(model, step);
    }
    auto it = m->second.find(step);
    CheckpointRecord gone = std::move(it->second);
    m->second.erase(it);
    if (m->second.empty()) models_.erase(m);
    int64_t freed = 0;
    for (const auto& f : gone.files()) freed += UnrefBlobLocked(f.sha256());
    ++revision_;
    return freed;
  }

  absl::StatusOr<CheckpointRecord> Get(absl::string_view model, int64_t step) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return NotFound(model, step);
    auto it = m->second.find(step);
    if (it == m->second.end()) return NotFound(model, step);
    return it->second;
  }

  absl::StatusOr<CheckpointRecord> Latest(absl::string_view model) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return NoModel(model);
    return m->second.rbegin()->second;
  }

  std::vector<ModelRecord> ListModels(absl::string_view start_after, int limit) {
    absl::MutexLock lock(&mu_);
    std::vector<ModelRecord> out;
    for (auto it = models_.upper_bound(start_after); it != models_.end(); ++it) {
      if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
      ModelRecord r;
      r.set_name(it->first);
      r.set_latest_step(it->second.rbegin()->first);
      r.set_checkpoint_count(static_cast<int64_t>(it->second.size()));
      out.push_back(std::move(r));
    }
    return out;
  }

  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) {
    absl::MutexLock lock(&mu_);
    auto m = models_.find(model);
    if (m == models_.end()) return NoModel(model);
    auto it = start_after.has_value() ? m->second.upper_bound(*start_after)
                                      : m->second.begin();
    std::vector<CheckpointRecord> out;
    for (; it != m->second.end(); ++it) {
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
    s.models = static_cast<int64_t>(models_.size());
    for (const auto& [name, steps] : models_) s.checkpoints += steps.size();
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

 private:
  static absl::Status NotFound(absl::string_view model, int64_t step) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  static absl::Status NoModel(absl::string_view model) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no committed checkpoint"));
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

  absl::Mutex mu_;
  std::map<std::string, std::map<int64_t, CheckpointRecord>, std::less<>> models_
      ABSL_GUARDED_BY(mu_);
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
  MemoryStore() : core_(std::make_shared<MemoryCore>()) {}

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

  absl::StatusOr<int64_t> DeleteCheckpoint(absl::string_view model, int64_t step) override {
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
  absl::StatusOr<bool> HasChunk(const ChunkRef& ref) override { return core_->HasChunk(ref); }
  absl::StatusOr<StoreStats> GetStats() override { return core_->Stats(); }
  absl::Status Backup(const std::string& /*dir*/) override {
    return absl::FailedPreconditionError("in-memory store cannot be backed up");
  }

 private:
  const std::shared_ptr<MemoryCore> core_;
};

}  // namespace

std::unique_ptr<Store> NewMemoryStore() { return std::make_unique<MemoryStore>(); }

}  // namespace mgreg
