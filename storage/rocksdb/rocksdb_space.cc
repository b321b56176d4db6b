// The RocksDB backend's upkeep: giving the disk back the bytes of deleted chunks, and
// resuming by itself after a full disk (rocksdb_backend.h, "Space" and "Failed
// writes").
#include <sys/statvfs.h>

#include <algorithm>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"
#include "rocksdb/metadata.h"
#include "rocksdb/options.h"
#include "storage/rocksdb/rocksdb_backend.h"

namespace mgreg::rocks {
namespace {

// A reclaim starts once no delete came for kReclaimQuiet (a retention run deletes
// step after step), and at most kReclaimMaxDelay after the first request waiting.
constexpr absl::Duration kReclaimQuiet = absl::Milliseconds(200);
constexpr absl::Duration kReclaimMaxDelay = absl::Seconds(2);
// How often the upkeep thread looks at its work.
constexpr absl::Duration kUpkeepTick = absl::Milliseconds(100);
// Blob GC runs when garbage is at least this share of all blob bytes (and at least
// kGcMinGarbageBytes), so the data dir stays within ~1.25x the live bytes; it rewrites
// the longest run of oldest blob files that is at least kGcFileGarbage garbage.
constexpr double kGcGarbageShare = 0.2;
constexpr uint64_t kGcMinGarbageBytes = uint64_t{8} << 20;
constexpr double kGcFileGarbage = 0.5;

int64_t Mib(int64_t bytes) { return (bytes + (1 << 20) - 1) >> 20; }

}  // namespace

int64_t FreeBytes(const std::string& path) {
  struct statvfs st;
  if (statvfs(path.c_str(), &st) != 0) return -1;
  return static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
}

std::string RocksBackend::RoomNeeded() const {
  const int64_t need = std::max<int64_t>(options_.min_free_bytes, RecoveryBufferBytes());
  const int64_t free_bytes = FreeBytes(db_->GetName());
  if (free_bytes < 0) {
    return absl::StrCat("writes need ", Mib(need), " MiB free on the data dir's disk");
  }
  return absl::StrCat("the data dir's disk has ", free_bytes >> 20,
                      " MiB free; writes go on once it has ", Mib(need),
                      " MiB: free at least ",
                      Mib(std::max<int64_t>(need - free_bytes, 0)), " MiB more");
}

absl::Status RocksBackend::Failed(const rocksdb::Status& s,
                                  absl::string_view what) const {
  absl::Status status = FromRocks(s, what);
  if (status.code() != absl::StatusCode::kResourceExhausted) return status;
  return absl::ResourceExhaustedError(absl::StrCat(status.message(), "; ", RoomNeeded()));
}

void RocksBackend::KeepRecoveryMemtable() {
  uint64_t entries = 0;
  rocksdb::ColumnFamilyHandle* unused = handles_[0];
  if (!db_->GetIntProperty(unused, rocksdb::DB::Properties::kNumEntriesActiveMemTable,
                           &entries) ||
      entries > 0) {
    return;
  }
  rocksdb::WriteOptions no_wal;
  no_wal.disableWAL = true;  // never touches the WAL writer
  // Fails while writes are stopped; the next tick tries again.
  db_->Delete(no_wal, unused, "recovery").PermitUncheckedError();
}

void RocksBackend::StartUpkeep() {
  KeepRecoveryMemtable();
  upkeep_ = std::thread([this] { UpkeepLoop(); });
}

void RocksBackend::StopUpkeep() {
  {
    absl::MutexLock lock(&upkeep_mu_);
    if (!upkeep_.joinable()) return;
    upkeep_stop_ = true;
    upkeep_cv_.SignalAll();
  }
  db_->DisableManualCompaction();  // a reclaim's compaction returns early
  upkeep_.join();
}

void RocksBackend::RequestReclaim() {
  absl::MutexLock lock(&upkeep_mu_);
  const absl::Time now = absl::Now();
  if (reclaim_first_ == absl::InfiniteFuture()) reclaim_first_ = now;
  reclaim_last_ = now;
}

void RocksBackend::UpkeepLoop() {
  while (true) {
    bool reclaim = false;
    {
      absl::MutexLock lock(&upkeep_mu_);
      upkeep_cv_.WaitWithTimeout(&upkeep_mu_, kUpkeepTick);
      if (upkeep_stop_) return;
      const absl::Time now = absl::Now();
      // A store that cannot write reclaims after it resumed.
      if (!needs_resume_.load() && reclaim_first_ != absl::InfiniteFuture() &&
          (now >= reclaim_last_ + kReclaimQuiet ||
           now >= reclaim_first_ + kReclaimMaxDelay)) {
        reclaim = true;
        reclaim_first_ = reclaim_last_ = absl::InfiniteFuture();
      }
    }
    if (!needs_resume_.load()) KeepRecoveryMemtable();
    // RocksDB recovered by itself: resume the store (collecting the chunks of the
    // writes that failed). Not before: a resume of ours while RocksDB's own recovery is
    // pending only races it.
    if (recovery_ != nullptr && recovery_->TakeRecovered() && needs_resume_.load()) {
      if (MaybeResume().ok()) RequestReclaim();
    }
    if (reclaim && !Reclaim().ok()) {
      RequestReclaim();  // again after the next pause (or once the store resumed)
    }
  }
}

absl::Status RocksBackend::Reclaim() {
  // The tombstones into SST files, where a compaction meets the chunks they delete;
  // both families, so that every WAL file becomes obsolete too.
  rocksdb::FlushOptions fo;
  fo.wait = true;
  fo.allow_write_stall = true;
  RETURN_IF_ERROR(
      Failed(Note(db_->Flush(fo, {meta_, chunks_})), "flushing deletes to disk"));
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForceOptimized;
  cro.allow_write_stall = true;
  rocksdb::Status s = db_->CompactRange(cro, chunks_, nullptr, nullptr);
  if (s.IsIOError()) Note(s);
  RETURN_IF_ERROR(Failed(s, "compacting the chunk index after deletes"));
  return CollectBlobGarbage();
}

absl::Status RocksBackend::CollectBlobGarbage() {
  rocksdb::ColumnFamilyMetaData meta;
  db_->GetColumnFamilyMetaData(chunks_, &meta);
  std::vector<rocksdb::BlobMetaData> files = meta.blob_files;
  std::sort(files.begin(), files.end(), [](const auto& a, const auto& b) {
    return a.blob_file_number < b.blob_file_number;
  });
  uint64_t total = 0, garbage = 0;
  for (const auto& f : files) {
    total += f.total_blob_bytes;
    garbage += f.garbage_blob_bytes;
  }
  if (garbage < kGcMinGarbageBytes || garbage < kGcGarbageShare * total) {
    return absl::OkStatus();
  }
  // The longest run of oldest files that is at least kGcFileGarbage garbage: the live
  // bytes copied out of it are at most the garbage it frees.
  size_t rewrite = 0;
  uint64_t run_total = 0, run_garbage = 0, copied = 0;
  for (size_t i = 0; i < files.size(); ++i) {
    run_total += files[i].total_blob_bytes;
    run_garbage += files[i].garbage_blob_bytes;
    if (run_garbage >= kGcFileGarbage * run_total) {
      rewrite = i + 1;
      copied = run_total - run_garbage;
    }
  }
  if (rewrite == 0) return absl::OkStatus();
  // The copies are written before the old files go: only with room for them.
  const int64_t free_bytes = FreeBytes(db_->GetName());
  if (free_bytes >= 0 && free_bytes < static_cast<int64_t>(copied) +
                                          std::max<int64_t>(options_.min_free_bytes,
                                                            RecoveryBufferBytes())) {
    return absl::OkStatus();
  }
  rocksdb::CompactRangeOptions cro;
  cro.bottommost_level_compaction = rocksdb::BottommostLevelCompaction::kForce;
  cro.allow_write_stall = true;
  cro.blob_garbage_collection_policy = rocksdb::BlobGarbageCollectionPolicy::kForce;
  // RocksDB rewrites the blobs of the files before index cutoff * count (sorted by
  // number); the half keeps the product off a rounding edge.
  cro.blob_garbage_collection_age_cutoff =
      rewrite >= files.size()
          ? 1.0
          : (static_cast<double>(rewrite) + 0.5) / static_cast<double>(files.size());
  rocksdb::Status s = db_->CompactRange(cro, chunks_, nullptr, nullptr);
  if (s.IsIOError()) Note(s);
  return Failed(s, "rewriting blob files mostly garbage");
}

}  // namespace mgreg::rocks
