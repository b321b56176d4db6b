// The RocksDB backend, internal to storage/rocksdb/. The only code of the project that
// includes rocksdb/ (with the test-only storage/testing/).
//
// Two column families:
//  - "meta": small records, keyed by a one-byte kind:
//      'C' model '\0' be64(step) -> CheckpointRecord   ('\0' cannot occur in a model
//                                                         name, so a prefix scan lists
//                                                         one model's steps in order)
//      'M' model                 -> ModelRecord
//      'B' blob sha256 hex       -> BlobRecord
//      'b' blob sha256 hex       -> fixed64 refcount (files naming the blob)
//      'K' chunk sha256 (raw)    -> fixed64 refcount (blob slots listing it), fixed32
//      size 'S' chunk sha256 (raw)    -> fixed32 size: staging marker, chunk written but
//      not
//                                   (or no longer) referenced by a committed blob
//      'R'                       -> fixed64 store revision (= the newest event's)
//      'F'                       -> format tag, identifies an mgreg store
//      'E' be64(revision)        -> Event; the newest event_window of them, with
//                                   consecutive revisions (a store created before events
//                                   existed has none below its first new revision)
//    A ModelRecord ('M') exists while the model has steps or settings (retention,
//    aliases); with settings only, its checkpoint_count is 0 and it has no 'C' keys.
//  - "chunks": chunk bytes keyed by the raw 32-byte SHA-256, in integrated BlobDB
//    files, no compression.
//
// Applying a transaction is one synced WriteBatch of its absolute values; the figures
// and model summaries GetLatest, ListModels and GetStats serve are kept in memory and
// replaced by the transaction's after it is written.
//
// Durability. Chunks of 64 KiB and more are written without the WAL (the bytes would
// otherwise be written twice); the commit that first references them flushes the
// chunk family first (PrepareCommit), if it still holds unflushed staged data. Smaller
// chunks go through the (unsynced) WAL, so committing a small step costs one synced WAL
// write and no flush.
//
// Garbage collection. Every staged chunk gets its 'S' marker before its bytes are
// written: with the WAL, in the same batch; without, as a WAL write just before the
// bytes (when RocksDB flushes one column family of several it first syncs the WALs
// written before, so a durable chunk always has a durable marker). The transaction that
// commits a chunk deletes the marker. At open, every marker left over names a chunk of
// an aborted upload: it is deleted unless a committed blob references it. Chunk values
// are never read for this (with integrated BlobDB in RocksDB 7.8, iterating the chunk
// family would load every value).
//
// Space (rocksdb_space.cc). A deleted chunk is a tombstone in the chunk family; its
// bytes stay in their blob file until a compaction drops the chunk's blob index and
// counts the bytes as garbage, and a blob file goes only once all of it is garbage.
// So every write that deletes chunk bytes (a delete, a retention run, an aborted
// upload, the collection at open or after a failed write) asks the upkeep thread for a
// reclaim: once deletes pause (kReclaimQuiet, at most kReclaimMaxDelay after the
// first), it flushes both families (the WAL files go too) and compacts the whole chunk
// index to the last level. Blob files left entirely garbage are deleted then, within a
// few seconds of the delete. Garbage sharing a blob file with chunks still referenced
// (deduplicated steps) stays until that file is rewritten: when garbage is at least
// kGcGarbageShare of all blob bytes, the reclaim rewrites the oldest blob files that
// are at least half garbage (forced blob GC with an age cutoff), so copying never
// costs more bytes than it frees. The chunk index is ~70 bytes per chunk, so a reclaim
// costs little more than the flushes.
//
// Failed writes. After a write or flush fails (a full disk), RocksDB stops accepting
// writes (a background error). ReadyToWrite (before every mutation) and PutChunk call
// MaybeResume: once a write has failed it asks RocksDB to resume (DB::Resume, which
// flushes what it holds and fails again while the disk is still full), then collects
// the chunks of staging writes that failed meanwhile. RocksDB resumes by itself after
// a full disk (its SstFileManager polls every 5 s) once the disk has the largest write
// buffer free (RecoveryBufferBytes()); the RecoveryListener then has the upkeep thread
// collect those chunks and reclaim, so the store recovers without a write or a
// restart. The reserve (min_free_bytes) must be at least RecoveryBufferBytes(), which
// OpenRocksDbBackend checks. A failure RocksDB cannot resume from (an I/O error other
// than a full disk) leaves the store read-only until it is reopened (UNAVAILABLE).
#ifndef MGREG_STORAGE_ROCKSDB_ROCKSDB_BACKEND_H_
#define MGREG_STORAGE_ROCKSDB_ROCKSDB_BACKEND_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "rocksdb/db.h"
#include "rocksdb/env.h"
#include "rocksdb/listener.h"
#include "rocksdb/status.h"
#include "rocksdb/write_batch.h"
#include "storage/backend.h"

namespace mgreg::rocks {

// The one RocksDB -> absl conversion. `what` says, in the caller's terms, what the
// store was doing.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what);

// ---- Keys and values. -------------------------------------------------------------
void PutFixed64(std::string* out, uint64_t v);
void PutFixed32(std::string* out, uint32_t v);
uint64_t GetFixed64(const char* p);
uint32_t GetFixed32(const char* p);
std::string CheckpointPrefix(absl::string_view model);
std::string CheckpointKey(absl::string_view model, int64_t step);
std::string ModelKey(absl::string_view model);
std::string BlobKey(absl::string_view hex);
std::string BlobRefKey(absl::string_view hex);
std::string ChunkRefKey(absl::string_view raw);
std::string StagedKey(absl::string_view raw);
std::string EventKey(int64_t revision);
int64_t EventKeyRevision(rocksdb::Slice key);
inline constexpr char kFormatKey[] = "F";
inline constexpr char kFormatTag[] = "mgreg-store-1";
inline constexpr char kRevisionKey[] = "R";

// A chunk some live staging area holds.
struct Staged {
  int holders = 0;
  uint32_t size = 0;
  // Not referenced by a committed blob: it has an 'S' marker.
  bool uncommitted = false;
  // A PutChunk is writing the bytes; others wait on stage_cv_.
  bool writing = false;
  // Order of the write that put the bytes in the chunk memtable without WAL; 0 if
  // they are durable without a flush.
  uint64_t put_seq = 0;
  // RocksBackend::resume_epoch_ when the bytes were written: a chunk staged before a
  // recovery from a failed write is checked to still be there before it is committed.
  uint64_t resume_epoch = 0;
};

// Bytes the data dir's disk must have free before RocksDB clears a full-disk error by
// itself: its SstFileManager waits for the largest write buffer of the column families
// (the chunk family's). OpenRocksDbBackend refuses a reserve below it.
int64_t RecoveryBufferBytes();

// True if files in the directory `dir` can be written with O_DIRECT (not on tmpfs, for
// one): probed with an unnamed file and one aligned 4 KiB write.
bool DirectWritesWork(const std::string& dir);

// Free bytes of the file system holding `path` for this process; -1 if unknown.
int64_t FreeBytes(const std::string& path);

// Tells the upkeep thread that RocksDB cleared a background error by itself (its
// SstFileManager's recovery from a full disk, once RecoveryBufferBytes() are free).
class RecoveryListener : public rocksdb::EventListener {
 public:
  void OnErrorRecoveryEnd(const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (info.new_bg_error.ok()) recovered_.store(true);
  }
  // True once after each recovery.
  bool TakeRecovered() { return recovered_.exchange(false); }

 private:
  std::atomic<bool> recovered_{false};
};

struct RocksOptions {
  bool sync = true;
  int64_t event_window = 100000;
  int64_t min_free_bytes = 0;
};

class RocksBackend;

// One upload's chunks: the holds of the RocksBackend's staging state.
class RocksArea : public BackendStagingArea {
 public:
  explicit RocksArea(std::shared_ptr<RocksBackend> backend);
  ~RocksArea() override;

  absl::Status PutChunk(const storage::ChunkRef& ref, absl::string_view data) override;
  absl::StatusOr<bool> HoldExistingChunk(const storage::ChunkRef& ref) override;
  bool Holds(absl::string_view raw) const override { return held_.contains(raw); }
  absl::Status PrepareCommit(
      const std::vector<const storage::BlobRecord*>& new_blobs) override;
  std::function<absl::Status()> DurabilityTask() override;

  // For RocksBackend::Apply, which runs while the area's owner holds it.
  absl::flat_hash_set<std::string>* held() { return &held_; }

 private:
  const std::shared_ptr<RocksBackend> backend_;
  absl::flat_hash_set<std::string> held_;
};

class RocksBackend : public Backend, public std::enable_shared_from_this<RocksBackend> {
 public:
  // `env` (may be null) outlives the database.
  RocksBackend(std::shared_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
               std::vector<rocksdb::ColumnFamilyHandle*> handles,
               const RocksOptions& options);
  ~RocksBackend() override;

  // Open-time work: format check, in-memory state, event trim, garbage collection.
  absl::Status Load(bool fresh);

  // ---- Upkeep (rocksdb_space.cc). ----------------------------------------------------
  // Starts the thread that reclaims space and resumes after a full disk (after Load).
  void StartUpkeep();
  // The listener given to DB::Open; before Load.
  void SetRecoveryListener(std::shared_ptr<RecoveryListener> listener) {
    recovery_ = std::move(listener);
  }
  // Asks for a reclaim: chunk bytes were deleted. Cheap; any lock may be held.
  void RequestReclaim();
  // Flushes, compacts the chunk index and rewrites blob files mostly garbage (see
  // "Space"). Returns the first error; the upkeep thread runs it, tests call it.
  absl::Status Reclaim();

  // Backend.
  bool remote() const override { return false; }
  std::unique_ptr<BackendStagingArea> NewStagingArea() override;
  absl::Status ReadyToWrite() override { return MaybeResume(); }
  absl::StatusOr<Head> ReadHead() override;
  absl::StatusOr<std::optional<storage::ModelRecord>> ReadModel(
      absl::string_view model) override;
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadLatest(
      absl::string_view model) override;
  // Lends the records kept in memory, under the state lock (no copy).
  absl::StatusOr<bool> VisitLatest(
      absl::string_view model, absl::FunctionRef<void(const storage::CheckpointRecord&,
                                                      const storage::ModelRecord&)>
                                   visit) override;
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpoint(
      absl::string_view model, int64_t step) override;
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view model, int64_t below) override;
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override;
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override;
  absl::StatusOr<ApplyResult> Apply(const Transaction& txn,
                                    BackendStagingArea* committing) override;
  void SetEventListener(std::function<void(const storage::Event&)> listener) override;
  absl::StatusOr<std::vector<storage::ModelRecord>> ListModels(
      absl::string_view start_after, int limit) override;
  absl::StatusOr<std::vector<storage::CheckpointRecord>> ListCheckpoints(
      absl::string_view model, int64_t first, int limit) override;
  absl::StatusOr<std::optional<std::string>> ReadChunkBytes(
      absl::string_view raw) override;
  absl::StatusOr<bool> HasChunk(absl::string_view raw) override;
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override;
  absl::Status EngineStats(StoreStats* stats) override;
  absl::Status Scan(RecordSink* sink) override;
  absl::Status Backup(const std::string& dir) override;

  // ---- Staging (rocksdb_staging.cc), for RocksArea. --------------------------------
  absl::Status PutChunk(absl::flat_hash_set<std::string>* held,
                        const storage::ChunkRef& ref, absl::string_view data);
  absl::StatusOr<bool> HoldExisting(absl::flat_hash_set<std::string>* held,
                                    const storage::ChunkRef& ref);
  void Release(const absl::flat_hash_set<std::string>& held);
  // Flush and re-check of the chunks a commit through `held` creates blobs of.
  absl::Status PrepareCommit(const std::vector<const storage::BlobRecord*>& new_blobs,
                             const absl::flat_hash_set<std::string>& held);
  // The write order (put_seq) up to which the chunk family must be flushed for every
  // uncommitted chunk of `held` to be durable; 0 if they are.
  uint64_t FlushNeeded(const absl::flat_hash_set<std::string>& held)
      ABSL_LOCKS_EXCLUDED(stage_mu_);
  // Makes every staged chunk written up to put_seq `need` durable.
  absl::Status EnsureFlushed(uint64_t need);
  // After a flush (which starts a new WAL file): one small synced write into the new
  // WAL, so that the commit which usually follows appends to a file whose first block
  // is allocated and whose directory entry is synced (RocksDB fsyncs the WAL dir at the
  // first synced write into a new WAL): otherwise that commit pays both
  // (bench/storage_bench store-commit-latency). Errors go where Note puts them.
  void StartFreshWal();

 private:
  struct ModelState {
    storage::ModelRecord model;
    storage::CheckpointRecord latest;  // empty while the model has no steps
  };

  // True if `held` already holds the chunk, or it is staged by another area (then
  // `held` joins its holders); waits while another area is still writing it.
  bool JoinStagedLocked(absl::flat_hash_set<std::string>* held, const std::string& sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu_);
  void ReleaseLocked(const std::string& sha, rocksdb::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu_);
  // Reads a meta key; nullopt if absent.
  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key,
                                                     absl::string_view what);
  absl::StatusOr<ChunkEntry> GetChunkRefs(absl::string_view raw);
  // DATA_LOSS if a chunk of `new_blobs` that `held` staged before a recovery from a
  // failed write is no longer stored intact (so a commit never references it).
  absl::Status VerifyStagedBeforeRecovery(
      const std::vector<const storage::BlobRecord*>& new_blobs,
      const absl::flat_hash_set<std::string>& held) ABSL_LOCKS_EXCLUDED(stage_mu_);
  // Keeps an entry (a no-WAL delete of a key nothing reads) in the memtable of the
  // default family, which holds nothing else. DB::Resume replaces a WAL whose write
  // failed only when it switches a non-empty memtable; with every memtable empty (just
  // after a reclaim's flush) RocksDB 7.8 resumed keeping the failed WAL writer, and the
  // next write aborted the process in WritableFileWriter::
  // AssertFalseAndGetStatusForPrevError (fault_server_test, traced with gdb). Called
  // at open, after each resume, and by every upkeep tick.
  void KeepRecoveryMemtable();
  // Stops the upkeep thread (and a compaction it runs); before the database closes.
  void StopUpkeep() ABSL_LOCKS_EXCLUDED(upkeep_mu_);
  void UpkeepLoop() ABSL_LOCKS_EXCLUDED(upkeep_mu_);
  // If the blob files hold enough garbage, rewrites the oldest ones mostly garbage.
  absl::Status CollectBlobGarbage();
  // What the disk needs for writes to go on: "the disk has F MiB free; ... at least D
  // MiB more". The one place the room a full disk needs is written.
  std::string RoomNeeded() const;
  // FromRocks, with the room needed when `s` is a full disk.
  absl::Status Failed(const rocksdb::Status& s, absl::string_view what) const;
  // RESOURCE_EXHAUSTED while the data dir's file system has less than min_free_bytes
  // free. A full disk met inside RocksDB is worse than a refused upload: Debian's
  // librocksdb 7.8 is built with assertions, and a real ENOSPC while a push was being
  // committed was seen to abort the server (an assert in
  // WritableFileWriter::AssertFalseAndGetStatusForPrevError; disk_full_e2e_test).
  absl::Status CheckFreeSpace() const;
  // See "Failed writes" above. Called with no lock held. Returns the error that still
  // stops writes, if any.
  absl::Status MaybeResume() ABSL_LOCKS_EXCLUDED(apply_mu_, stage_mu_);
  // Remembers that a write failed, so the next mutation resumes first.
  rocksdb::Status Note(rocksdb::Status s);
  // Deletes the markers (and bytes) of chunks whose staging write failed, unless a
  // staging area holds them again or a committed blob references them.
  void CollectOrphans() ABSL_LOCKS_EXCLUDED(apply_mu_, stage_mu_);

  absl::Mutex upkeep_mu_;
  absl::CondVar upkeep_cv_;
  std::thread upkeep_;
  bool upkeep_stop_ ABSL_GUARDED_BY(upkeep_mu_) = false;
  // When the oldest and the newest unserved reclaim request came; InfiniteFuture: none.
  absl::Time reclaim_first_ ABSL_GUARDED_BY(upkeep_mu_) = absl::InfiniteFuture();
  absl::Time reclaim_last_ ABSL_GUARDED_BY(upkeep_mu_) = absl::InfiniteFuture();

  std::shared_ptr<RecoveryListener> recovery_;

  std::atomic<bool> needs_resume_{false};
  absl::Mutex resume_mu_;
  absl::Mutex failure_mu_;
  rocksdb::Status last_failure_ ABSL_GUARDED_BY(failure_mu_);

  // The Env the store was opened on, if any (OpenRocksDbBackend): outlives the
  // database.
  const std::shared_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
  const RocksOptions options_;

  // Serializes applies, staging releases and orphan collection (they all change
  // markers and refcounts). The event listener runs under it, after state_mu_ and
  // stage_mu_ are released. Lock order: apply_mu_, then stage_mu_, then state_mu_.
  absl::Mutex apply_mu_;
  std::function<void(const storage::Event&)> listener_ ABSL_GUARDED_BY(apply_mu_);

  absl::Mutex stage_mu_;
  absl::CondVar stage_cv_;
  absl::flat_hash_map<std::string, Staged> staged_ ABSL_GUARDED_BY(stage_mu_);
  int64_t staged_uncommitted_ ABSL_GUARDED_BY(stage_mu_) = 0;
  // Chunks whose staging write (or release) failed: their markers may remain.
  absl::flat_hash_set<std::string> orphans_ ABSL_GUARDED_BY(stage_mu_);
  uint64_t put_seq_ ABSL_GUARDED_BY(stage_mu_) = 0;
  // How many times the store resumed after a failed write.
  uint64_t resume_epoch_ ABSL_GUARDED_BY(stage_mu_) = 0;

  absl::Mutex flush_mu_;
  uint64_t flushed_seq_ ABSL_GUARDED_BY(flush_mu_) = 0;

  // What GetLatest, ListModels and GetStats serve from memory.
  absl::Mutex state_mu_;
  std::map<std::string, ModelState, std::less<>> models_ ABSL_GUARDED_BY(state_mu_);
  Head head_ ABSL_GUARDED_BY(state_mu_);
};

}  // namespace mgreg::rocks

#endif  // MGREG_STORAGE_ROCKSDB_ROCKSDB_BACKEND_H_
