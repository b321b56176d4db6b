// The RocksDB backend's staging: chunks written before their commit, their markers,
// the flush a commit waits for, and recovery after a failed write (rocksdb_backend.h).
#include <algorithm>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "rocksdb/options.h"
#include "storage/planner.h"
#include "storage/rocksdb/rocksdb_backend.h"

namespace mgreg::rocks {
namespace {

using planner::ChunkName;
using storage::BlobRecord;
using storage::ChunkRef;

// Chunks smaller than this go through the WAL and need no flush before the commit.
constexpr size_t kWalChunkBytes = 64 << 10;
// How long a commit waits for its staged chunks to be flushed before it gives up.
constexpr absl::Duration kFlushConfirmTimeout = absl::Seconds(30);

}  // namespace

RocksArea::RocksArea(std::shared_ptr<RocksBackend> backend)
    : backend_(std::move(backend)) {}

RocksArea::~RocksArea() { backend_->Release(held_); }

absl::Status RocksArea::PutChunk(const ChunkRef& ref, absl::string_view data) {
  return backend_->PutChunk(&held_, ref, data);
}

absl::StatusOr<bool> RocksArea::HoldExistingChunk(const ChunkRef& ref) {
  return backend_->HoldExisting(&held_, ref);
}

absl::Status RocksArea::PrepareCommit(const std::vector<const BlobRecord*>& new_blobs) {
  return backend_->PrepareCommit(new_blobs, held_);
}

std::function<absl::Status()> RocksArea::DurabilityTask() {
  const uint64_t need = backend_->FlushNeeded(held_);
  if (need == 0) return nullptr;
  return [backend = backend_, need] {
    RETURN_IF_ERROR(backend->EnsureFlushed(need));
    backend->StartFreshWal();
    return absl::OkStatus();
  };
}

void RocksBackend::StartFreshWal() {
  if (!options_.sync) return;  // commits do not sync the WAL either
  rocksdb::WriteBatch batch;
  batch.Delete(handles_[0], "wal");  // the default family: nothing reads it
  rocksdb::WriteOptions synced;
  synced.sync = true;
  // A failure stops writes and is reported to the next writer (MaybeResume).
  Note(db_->Write(synced, &batch)).PermitUncheckedError();
}

uint64_t RocksBackend::FlushNeeded(const absl::flat_hash_set<std::string>& held) {
  uint64_t need = 0;
  {
    absl::MutexLock lock(&stage_mu_);
    for (const std::string& sha : held) {
      auto it = staged_.find(sha);
      if (it != staged_.end() && it->second.uncommitted) {
        need = std::max(need, it->second.put_seq);
      }
    }
  }
  // Not under stage_mu_: EnsureFlushed takes flush_mu_ first, then stage_mu_.
  absl::MutexLock flush(&flush_mu_);
  return need > flushed_seq_ ? need : 0;
}

std::unique_ptr<BackendStagingArea> RocksBackend::NewStagingArea() {
  return std::make_unique<RocksArea>(shared_from_this());
}

absl::Status RocksBackend::PrepareCommit(const std::vector<const BlobRecord*>& new_blobs,
                                         const absl::flat_hash_set<std::string>& held) {
  uint64_t need = 0;
  {
    absl::MutexLock lock(&stage_mu_);
    for (const BlobRecord* blob : new_blobs) {
      for (const ChunkRef& c : blob->chunks()) {
        if (!held.contains(c.sha256())) continue;
        auto it = staged_.find(c.sha256());
        if (it != staged_.end() && it->second.uncommitted) {
          need = std::max(need, it->second.put_seq);
        }
      }
    }
  }
  RETURN_IF_ERROR(EnsureFlushed(need));
  return VerifyStagedBeforeRecovery(new_blobs, held);
}

rocksdb::Status RocksBackend::Note(rocksdb::Status s) {
  if (!s.ok() && !s.IsNotFound() && !s.IsBusy()) {
    absl::MutexLock failure(&failure_mu_);
    last_failure_ = s;
    needs_resume_.store(true);
  }
  return s;
}

bool RocksBackend::JoinStagedLocked(absl::flat_hash_set<std::string>* held,
                                    const std::string& sha) {
  if (held->contains(sha)) return true;
  while (true) {
    auto it = staged_.find(sha);
    if (it == staged_.end()) return false;
    if (!it->second.writing) {
      ++it->second.holders;
      held->insert(sha);
      return true;
    }
    stage_cv_.Wait(&stage_mu_);  // another area is writing it: wait for its outcome
  }
}

absl::Status RocksBackend::PutChunk(absl::flat_hash_set<std::string>* held,
                                    const ChunkRef& ref, absl::string_view data) {
  RETURN_IF_ERROR(MaybeResume());
  const std::string& sha = ref.sha256();
  absl::MutexLock lock(&stage_mu_);
  if (JoinStagedLocked(held, sha)) return absl::OkStatus();
  ASSIGN_OR_RETURN(ChunkEntry refs, GetChunkRefs(sha));
  if (refs.refs > 0) {  // committed already: hold it, write nothing
    Staged& s = staged_[sha];
    s.holders = 1;
    s.size = refs.size;
    held->insert(sha);
    return absl::OkStatus();
  }
  RETURN_IF_ERROR(CheckFreeSpace());
  Staged& fresh = staged_[sha];
  fresh.writing = true;
  fresh.uncommitted = true;
  fresh.size = ref.size();

  stage_mu_.Unlock();
  std::string marker;
  PutFixed32(&marker, ref.size());
  rocksdb::Status s;
  const bool via_wal = data.size() < kWalChunkBytes;
  if (via_wal) {
    rocksdb::WriteBatch batch;
    batch.Put(meta_, StagedKey(sha), marker);
    batch.Put(chunks_, sha, rocksdb::Slice(data.data(), data.size()));
    s = Note(db_->Write(rocksdb::WriteOptions(), &batch));
  } else {
    rocksdb::WriteBatch mark;
    mark.Put(meta_, StagedKey(sha), marker);
    s = Note(db_->Write(rocksdb::WriteOptions(), &mark));
    if (s.ok()) {
      rocksdb::WriteOptions no_wal;
      no_wal.disableWAL = true;
      s = Note(db_->Put(no_wal, chunks_, sha, rocksdb::Slice(data.data(), data.size())));
    }
  }
  stage_mu_.Lock();

  Staged& entry = staged_[sha];
  entry.writing = false;
  stage_cv_.SignalAll();
  if (!s.ok()) {
    // The marker, if written, lets the next open (or the next resume) collect
    // whatever reached the disk.
    staged_.erase(sha);
    orphans_.insert(sha);
    return Failed(s, absl::StrCat("storing chunk ", ChunkName(sha)));
  }
  entry.holders = 1;
  entry.put_seq = via_wal ? 0 : ++put_seq_;
  entry.resume_epoch = resume_epoch_;
  ++staged_uncommitted_;
  held->insert(sha);
  return absl::OkStatus();
}

absl::StatusOr<bool> RocksBackend::HoldExisting(absl::flat_hash_set<std::string>* held,
                                                const ChunkRef& ref) {
  const std::string& sha = ref.sha256();
  absl::MutexLock lock(&stage_mu_);
  if (JoinStagedLocked(held, sha)) return true;
  ASSIGN_OR_RETURN(ChunkEntry refs, GetChunkRefs(sha));
  if (refs.refs == 0) return false;
  Staged& s = staged_[sha];
  s.holders = 1;
  s.size = refs.size;
  held->insert(sha);
  return true;
}

void RocksBackend::ReleaseLocked(const std::string& sha, rocksdb::WriteBatch* batch) {
  auto it = staged_.find(sha);
  if (it == staged_.end() || --it->second.holders > 0) return;
  if (it->second.uncommitted) {
    batch->Delete(chunks_, sha);
    batch->Delete(meta_, StagedKey(sha));
    --staged_uncommitted_;
    RequestReclaim();
  }
  staged_.erase(it);
}

void RocksBackend::Release(const absl::flat_hash_set<std::string>& held) {
  if (held.empty()) return;
  // A store that cannot write now keeps the markers; they are collected later.
  MaybeResume().IgnoreError();
  absl::MutexLock apply(&apply_mu_);
  absl::MutexLock lock(&stage_mu_);
  rocksdb::WriteBatch batch;
  for (const std::string& sha : held) ReleaseLocked(sha, &batch);
  if (batch.Count() > 0) {
    // Not synced: if this is lost, the markers come back and the next open collects.
    // A failure here has no caller to go to; the next resume or open collects.
    if (!Note(db_->Write(rocksdb::WriteOptions(), &batch)).ok()) {
      for (const std::string& sha : held) {
        if (!staged_.contains(sha)) orphans_.insert(sha);
      }
    }
  }
}

absl::Status RocksBackend::CheckFreeSpace() const {
  if (options_.min_free_bytes <= 0) return absl::OkStatus();
  const int64_t free_bytes = FreeBytes(db_->GetName());
  if (free_bytes < 0 || free_bytes >= options_.min_free_bytes) {
    return absl::OkStatus();  // enough, or unknown
  }
  return absl::ResourceExhaustedError(absl::StrCat(
      "new uploaded bytes refused: less free space than the ",
      options_.min_free_bytes >> 20, " MiB kept in reserve (--min-free-bytes); ",
      RoomNeeded(),
      " (free space in the data dir or delete steps: uploads resume once there is "
      "room; reads, commits of uploaded bytes and deletes go on)"));
}

absl::Status RocksBackend::EnsureFlushed(uint64_t need) {
  if (need == 0) return absl::OkStatus();
  absl::MutexLock lock(&flush_mu_);
  if (flushed_seq_ >= need) return absl::OkStatus();
  uint64_t upto;
  {
    absl::MutexLock stage(&stage_mu_);
    upto = put_seq_;
  }
  rocksdb::FlushOptions fo;
  fo.wait = true;
  fo.allow_write_stall = true;
  // DB::Flush can return OK before its flush is installed: right after DB::Resume,
  // RocksDB 7.8 was seen returning at once while the flush job ran, and a close then
  // cancelled the job and dropped the chunks (DiskFaultTest). So the flush counts only
  // once the chunk family has no immutable memtable left: the memtable our Flush
  // switched out is flushed (later ones hold only later writes).
  const absl::Time deadline = absl::Now() + kFlushConfirmTimeout;
  while (true) {
    RETURN_IF_ERROR(
        FromRocks(Note(db_->Flush(fo, chunks_)), "making staged chunks durable"));
    const absl::Time retry = std::min(deadline, absl::Now() + absl::Seconds(1));
    uint64_t pending = 1;
    while (db_->GetIntProperty(chunks_, rocksdb::DB::Properties::kNumImmutableMemTable,
                               &pending) &&
           pending > 0 && absl::Now() < retry) {
      absl::SleepFor(absl::Milliseconds(1));
    }
    if (pending == 0) break;
    if (absl::Now() >= deadline) {
      return absl::UnavailableError(
          absl::StrCat("staged chunks were not flushed to disk within ",
                       absl::FormatDuration(kFlushConfirmTimeout),
                       "; nothing was committed: retry the commit"));
    }
    // Not flushed yet (a failed background flush keeps its memtable): flush again,
    // which also reports a background error that stopped writes.
  }
  flushed_seq_ = upto;
  return absl::OkStatus();
}

absl::Status RocksBackend::VerifyStagedBeforeRecovery(
    const std::vector<const BlobRecord*>& new_blobs,
    const absl::flat_hash_set<std::string>& held) {
  std::vector<std::string> suspects;
  {
    absl::MutexLock lock(&stage_mu_);
    for (const BlobRecord* blob : new_blobs) {
      for (const ChunkRef& c : blob->chunks()) {
        auto it = staged_.find(c.sha256());
        if (held.contains(c.sha256()) && it != staged_.end() && it->second.uncommitted &&
            it->second.resume_epoch < resume_epoch_) {
          suspects.push_back(c.sha256());
        }
      }
    }
  }
  // Rare (only after a failed write): read the bytes back rather than trust a write
  // that went through RocksDB's recovery.
  for (const std::string& sha : suspects) {
    rocksdb::PinnableSlice value;
    rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), chunks_, sha, &value);
    if (s.ok() && Sha256Raw(absl::string_view(value.data(), value.size())) == sha) {
      absl::MutexLock lock(&stage_mu_);
      auto it = staged_.find(sha);
      if (it != staged_.end()) it->second.resume_epoch = resume_epoch_;
      continue;
    }
    if (!s.ok() && !s.IsNotFound()) return FromRocks(s, "re-reading a staged chunk");
    return absl::DataLossError(absl::StrCat(
        "chunk ", ChunkName(sha),
        " staged before the store recovered from a failed write (disk full?) was lost; "
        "nothing was committed: upload the files again"));
  }
  return absl::OkStatus();
}

absl::Status RocksBackend::MaybeResume() {
  if (!needs_resume_.load()) return absl::OkStatus();
  {
    absl::MutexLock lock(&resume_mu_);
    if (!needs_resume_.load()) return absl::OkStatus();
    // A no-op unless RocksDB stopped writes; fails again while the disk is still full.
    // Busy: RocksDB's own recovery is running; wait for it a little.
    // RocksDB's own recovery polls every few seconds; until it succeeds the failure
    // that stopped writes is what the caller gets.
    rocksdb::Status s = db_->Resume();
    for (int i = 0; s.IsBusy() && i < 5; ++i) {
      absl::SleepFor(absl::Milliseconds(10));
      s = db_->Resume();
    }
    if (s.IsBusy()) {
      absl::MutexLock failure(&failure_mu_);
      return Failed(last_failure_,
                    "writing while the store recovers from a failed write");
    }
    RETURN_IF_ERROR(Failed(s, "recovering from a failed write"));
    KeepRecoveryMemtable();  // Resume flushed it
    needs_resume_.store(false);
    absl::MutexLock stage(&stage_mu_);
    ++resume_epoch_;
  }
  CollectOrphans();
  return absl::OkStatus();
}

void RocksBackend::CollectOrphans() {
  absl::MutexLock apply(&apply_mu_);
  absl::MutexLock stage(&stage_mu_);
  if (orphans_.empty()) return;
  rocksdb::WriteBatch batch;
  for (const std::string& sha : orphans_) {
    if (staged_.contains(sha)) continue;  // staged again: its holder owns the marker
    absl::StatusOr<ChunkEntry> refs = GetChunkRefs(sha);
    if (!refs.ok()) return;  // try again after the next failure, or at open
    if (refs->refs == 0) batch.Delete(chunks_, sha);
    batch.Delete(meta_, StagedKey(sha));
  }
  if (batch.Count() == 0 || Note(db_->Write(rocksdb::WriteOptions(), &batch)).ok()) {
    orphans_.clear();
    if (batch.Count() > 0) RequestReclaim();
  }
}

}  // namespace mgreg::rocks
