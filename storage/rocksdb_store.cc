// The RocksDB-backed Store. The only file of the project that includes rocksdb/.
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
// Durability. Chunks of 64 KiB and more are written without the WAL (the bytes would
// otherwise be written twice); the commit that first references them flushes the
// chunk family first, if it still holds unflushed staged data. Smaller chunks go
// through the (unsynced) WAL, so committing a small step costs one synced WAL write
// and no flush. The commit is one synced WriteBatch.
//
// Garbage collection. Every staged chunk gets its 'S' marker before its bytes are
// written: with the WAL, in the same batch; without, as a WAL write just before the
// bytes (when RocksDB flushes one column family of several it first syncs the WALs
// written before, so a durable chunk always has a durable marker). The commit that
// references a chunk deletes the marker in its batch. At open, every marker left over
// names a chunk of an aborted upload: it is deleted unless a committed blob references
// it. Chunk values are never read for this (with integrated BlobDB in RocksDB 7.8,
// iterating the chunk family would load every value).
//
// Failed writes. After a write or flush fails (a full disk), RocksDB stops accepting
// writes (a background error). Every mutation first calls MaybeResume: once a write
// has failed it asks RocksDB to resume (DB::Resume, which flushes what it holds and
// fails again while the disk is still full), then collects the chunks of staging
// writes that failed meanwhile. So commits succeed again once space is freed, without
// a restart. A failure RocksDB cannot resume from (an I/O error other than a full
// disk) leaves the store read-only until it is reopened (UNAVAILABLE).
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "common/names.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "rocksdb/db.h"
#include "rocksdb/iterator.h"
#include "rocksdb/options.h"
#include "rocksdb/env.h"
#include "rocksdb/slice.h"
#include "rocksdb/snapshot.h"
#include "rocksdb/status.h"
#include "rocksdb/table.h"
#include "rocksdb/utilities/checkpoint.h"
#include "rocksdb/write_batch.h"
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

constexpr char kMetaFamily[] = "meta";
constexpr char kChunkFamily[] = "chunks";
constexpr char kFormatKey[] = "F";
constexpr char kFormatTag[] = "mgreg-store-1";
constexpr char kRevisionKey[] = "R";
// Chunks smaller than this go through the WAL and need no flush before the commit.
constexpr size_t kWalChunkBytes = 64 << 10;
// How long a commit waits for its staged chunks to be flushed before it gives up.
constexpr absl::Duration kFlushConfirmTimeout = absl::Seconds(30);

// ---- The one RocksDB -> absl conversion. -----------------------------------------
// `what` says, in the caller's terms, what the store was doing.
absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  const std::string detail = s.ToString();
  switch (s.code()) {
    case rocksdb::Status::kOk:
      return absl::OkStatus();
    case rocksdb::Status::kNotFound:
      return absl::NotFoundError(absl::StrCat(what, ": not found"));
    case rocksdb::Status::kCorruption:
      return absl::DataLossError(absl::StrCat(
          what, ": stored data failed its checksum; restore the data dir from a backup (",
          detail, ")"));
    case rocksdb::Status::kIOError:
      if (s.subcode() == rocksdb::Status::kNoSpace ||
          s.subcode() == rocksdb::Status::kSpaceLimit) {
        return absl::ResourceExhaustedError(absl::StrCat(
            "disk full while ", what,
            "; free space in the data dir (writes resume once there is room; reads go "
            "on meanwhile) (",
            detail, ")"));
      }
      // RocksDB reports its LOCK file held as a plain IOError ("While lock file",
      // "lock hold by current process").
      if (absl::StrContains(detail, "lock file") ||
          absl::StrContains(detail, "lock hold")) {
        return absl::FailedPreconditionError(absl::StrCat(
            what, ": data dir in use by another process; stop it or use another dir (",
            detail, ")"));
      }
      return absl::UnavailableError(absl::StrCat(
          what, ": I/O error; check the disk and reopen the store (", detail, ")"));
    case rocksdb::Status::kBusy:
      return absl::FailedPreconditionError(
          absl::StrCat(what, ": data dir in use by another process (", detail, ")"));
    case rocksdb::Status::kIncomplete:
    case rocksdb::Status::kShutdownInProgress:
    case rocksdb::Status::kTryAgain:
      return absl::UnavailableError(absl::StrCat(
          what, ": the store is shutting down or busy; retry (", detail, ")"));
    case rocksdb::Status::kTimedOut:
      return absl::DeadlineExceededError(
          absl::StrCat(what, ": timed out (", detail, ")"));
    case rocksdb::Status::kAborted:
      return absl::AbortedError(absl::StrCat(what, ": aborted (", detail, ")"));
    case rocksdb::Status::kCompactionTooLarge:
      return absl::ResourceExhaustedError(
          absl::StrCat(what, ": out of space for compaction (", detail, ")"));
    case rocksdb::Status::kNotSupported:
    case rocksdb::Status::kInvalidArgument:
    case rocksdb::Status::kMergeInProgress:
    case rocksdb::Status::kExpired:
    case rocksdb::Status::kColumnFamilyDropped:
      return absl::InternalError(
          absl::StrCat(what, ": internal store error (", detail, ")"));
    case rocksdb::Status::kMaxCode:
      break;
  }
  return absl::UnknownError(absl::StrCat(what, ": ", detail));
}

// ---- Keys and values. ---------------------------------------------------------------
void PutFixed64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
void PutFixed32(std::string* out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}
uint64_t GetFixed64(const char* p) {
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}
uint32_t GetFixed32(const char* p) {
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<unsigned char>(p[i]);
  return v;
}

std::string CheckpointPrefix(absl::string_view model) {
  std::string k;
  k.reserve(model.size() + 10);
  k.push_back('C');
  k.append(model.data(), model.size());
  k.push_back('\0');
  return k;
}
std::string CheckpointKey(absl::string_view model, int64_t step) {
  std::string k = CheckpointPrefix(model);
  const uint64_t s = static_cast<uint64_t>(step);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(s >> (8 * i)));
  return k;
}
std::string ModelKey(absl::string_view model) { return absl::StrCat("M", model); }
std::string BlobKey(absl::string_view hex) { return absl::StrCat("B", hex); }
std::string BlobRefKey(absl::string_view hex) { return absl::StrCat("b", hex); }
std::string ChunkRefKey(absl::string_view raw) { return absl::StrCat("K", raw); }
std::string StagedKey(absl::string_view raw) { return absl::StrCat("S", raw); }
std::string EventKey(int64_t revision) {
  std::string k(1, 'E');
  const uint64_t r = static_cast<uint64_t>(revision);
  for (int i = 7; i >= 0; --i) k.push_back(static_cast<char>(r >> (8 * i)));
  return k;
}
int64_t EventKeyRevision(rocksdb::Slice key) {
  uint64_t r = 0;
  for (size_t i = 1; i < 9 && i < key.size(); ++i) {
    r = (r << 8) | static_cast<unsigned char>(key[i]);
  }
  return static_cast<int64_t>(r);
}

struct ChunkRefValue {
  int64_t refs = 0;
  uint32_t size = 0;
};
std::string EncodeChunkRef(const ChunkRefValue& v) {
  std::string out;
  PutFixed64(&out, static_cast<uint64_t>(v.refs));
  PutFixed32(&out, v.size);
  return out;
}

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
  // RocksCore::resume_epoch_ when the bytes were written: a chunk staged before a
  // recovery from a failed write is checked to still be there before it is committed.
  uint64_t resume_epoch = 0;
};

struct ModelState {
  ModelRecord model;
  CheckpointRecord latest;  // empty while the model has no steps
};

// One serialized write to one model, built under commit_mu_ (RocksCore::BeginWrite,
// then the operation, then RocksCore::FinishWrite).
struct ModelWrite {
  std::string name;
  ModelRecord model;  // the record as the write leaves it
  int64_t count_before = 0;
  int64_t revision_before = 0;
  int64_t event_oldest_before = 0;
  // Steps this write puts (their newest version) and deletes.
  std::map<int64_t, CheckpointRecord> put_steps;
  absl::flat_hash_set<int64_t> deleted_steps;
  // Blob reference changes, and the blobs the write creates.
  absl::flat_hash_map<std::string, int64_t> blob_delta;
  std::vector<const BlobRecord*> created_blobs;
  std::vector<Event> events;  // stamped with consecutive revisions by AddEvent
  rocksdb::WriteBatch batch;

  void AddEvent(Event e) {
    e.set_revision(revision_before + static_cast<int64_t>(events.size()) + 1);
    events.push_back(std::move(e));
  }
  int64_t revision_after() const {
    return revision_before + static_cast<int64_t>(events.size());
  }
};

class RocksStagingArea;

// The open database, shared by the store and its staging areas.
class RocksCore {
 public:
  RocksCore(std::shared_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
            std::vector<rocksdb::ColumnFamilyHandle*> handles, bool sync,
            int64_t event_window, int64_t min_free_bytes)
      : env_(std::move(env)),
        db_(std::move(db)),
        handles_(std::move(handles)),
        sync_(sync),
        event_window_(std::max<int64_t>(event_window, 1)),
        min_free_bytes_(min_free_bytes) {
    meta_ = handles_[1];
    chunks_ = handles_[2];
  }

  ~RocksCore() {
    for (rocksdb::ColumnFamilyHandle* h : handles_) db_->DestroyColumnFamilyHandle(h);
    db_->Close().PermitUncheckedError();
  }

  // Open-time work: format check, in-memory state, garbage collection.
  absl::Status Load(bool fresh);

  absl::Status PutChunk(absl::flat_hash_set<std::string>* held, const ChunkRef& ref,
                        absl::string_view data);
  absl::Status HoldExisting(absl::flat_hash_set<std::string>* held, const ChunkRef& ref);
  // True if `held` already holds the chunk, or it is staged by another area (then
  // `held` joins its holders); waits while another area is still writing it.
  bool JoinStagedLocked(absl::flat_hash_set<std::string>* held, const std::string& sha)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu_);
  void Release(const absl::flat_hash_set<std::string>& held);
  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      absl::flat_hash_set<std::string>* held);
  absl::StatusOr<int64_t> Delete(absl::string_view model, int64_t step);
  absl::StatusOr<CheckpointRecord> Get(absl::string_view model, int64_t step);
  absl::StatusOr<CheckpointRecord> Latest(absl::string_view model);
  std::vector<ModelRecord> ListModels(absl::string_view start_after, int limit);
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit);
  absl::StatusOr<BlobRecord> GetBlob(absl::string_view sha256_hex);
  absl::StatusOr<std::string> ReadChunk(const ChunkRef& ref);
  absl::StatusOr<bool> HasChunk(const ChunkRef& ref);
  StoreStats Stats();
  absl::StatusOr<CheckReport> Check();
  absl::Status Backup(const std::string& dir);
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit);
  void SetListener(std::function<void(const Event&)> listener);
  absl::StatusOr<int64_t> SetAlias(absl::string_view model, absl::string_view alias,
                                   int64_t step);
  absl::StatusOr<int64_t> RemoveAlias(absl::string_view model, absl::string_view alias);
  absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned);
  absl::StatusOr<ModelRecord> GetModel(absl::string_view model);
  absl::Status SetRetention(absl::string_view model,
                            const storage::RetentionPolicy& policy);
  absl::StatusOr<int64_t> ApplyRetention(absl::string_view model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps,
                                         int64_t last_preserved_micros);

 private:
  // The write path shared by every mutation (see the file comment).
  ModelWrite BeginWrite(absl::string_view model)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // The stored record of a step: from this write if it put the step, else from the
  // database; nullopt if it does not exist (or this write deleted it).
  absl::StatusOr<std::optional<CheckpointRecord>> ReadStep(const ModelWrite& w,
                                                           int64_t step);
  void PutStep(ModelWrite* w, const CheckpointRecord& record);
  // Deletes a step exactly as DeleteCheckpoint does: its key, its blob references, one
  // DELETED event. `gone` is its stored record.
  void AddStepDeletion(ModelWrite* w, const CheckpointRecord& gone, int64_t now);
  // Completes, writes and publishes `w`; returns the chunk bytes freed.
  absl::StatusOr<int64_t> FinishWrite(ModelWrite* w, absl::string_view what)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_);
  // The highest step of w's model that remains after w; nullopt if none does.
  absl::StatusOr<std::optional<CheckpointRecord>> FindLatest(const ModelWrite& w);
  // Reads a meta key; nullopt if absent.
  absl::StatusOr<std::optional<std::string>> GetMeta(const std::string& key,
                                                     absl::string_view what);
  absl::StatusOr<ChunkRefValue> GetChunkRefs(absl::string_view raw);
  absl::StatusOr<int64_t> GetBlobRefs(absl::string_view hex);
  absl::StatusOr<std::optional<BlobRecord>> GetBlobRecord(absl::string_view hex);

  // Makes every staged chunk written up to put_seq `need` durable.
  absl::Status EnsureFlushed(uint64_t need);
  // RESOURCE_EXHAUSTED while the data dir's file system has less than min_free_bytes_
  // free. A full disk met inside RocksDB is worse than a refused upload: Debian's
  // librocksdb 7.8 is built with assertions, and a real ENOSPC while a push was being
  // committed was seen to abort the server (an assert in
  // WritableFileWriter::AssertFalseAndGetStatusForPrevError; disk_full_e2e_test).
  absl::Status CheckFreeSpace() const;

  // Applies blob reference changes to `batch`: creates `created` blobs, adds `delta`
  // to each blob's refcount, frees blobs and chunks that drop to zero (a freed chunk
  // some staging area still holds keeps its bytes and gets its marker back).
  struct RefChanges {
    int64_t blobs = 0, chunks = 0, chunk_bytes = 0;  // net change of the counters
    int64_t freed_bytes = 0;
    std::vector<std::string> committed_chunks;  // 0 -> >0
    std::vector<std::string> restaged_chunks;   // >0 -> 0, still held
  };
  absl::Status ApplyRefs(const absl::flat_hash_map<std::string, int64_t>& delta,
                         const std::vector<const BlobRecord*>& created,
                         rocksdb::WriteBatch* batch, RefChanges* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(commit_mu_, stage_mu_);
  // After a successful write of `c`.
  void NoteRefChanges(const RefChanges& c) ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu_);
  void ReleaseLocked(const std::string& sha, rocksdb::WriteBatch* batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stage_mu_);

  absl::Status Write(rocksdb::WriteBatch* batch, absl::string_view what) {
    rocksdb::WriteOptions wo;
    wo.sync = sync_;
    return FromRocks(Note(db_->Write(wo, batch)), what);
  }

 public:
  // See "Failed writes" in the file comment. Called at the start of every mutation,
  // with no lock held. Returns the error that still stops writes, if any.
  absl::Status MaybeResume() ABSL_LOCKS_EXCLUDED(commit_mu_, stage_mu_);
  // DATA_LOSS if a chunk of `new_blobs` that `held` staged before a recovery from a
  // failed write is no longer stored intact (so a commit never references it).
  absl::Status VerifyStagedBeforeRecovery(
      const absl::flat_hash_map<std::string, const BlobRecord*>& new_blobs,
      const absl::flat_hash_set<std::string>& held) ABSL_LOCKS_EXCLUDED(stage_mu_);

 private:
  // Remembers that a write failed, so the next mutation resumes first.
  rocksdb::Status Note(rocksdb::Status s) {
    if (!s.ok() && !s.IsNotFound() && !s.IsBusy()) {
      absl::MutexLock failure(&failure_mu_);
      last_failure_ = s;
      needs_resume_.store(true);
    }
    return s;
  }
  // Deletes the markers (and bytes) of chunks whose staging write failed, unless a
  // staging area holds them again or a committed blob references them.
  void CollectOrphans() ABSL_LOCKS_EXCLUDED(commit_mu_, stage_mu_);

  std::atomic<bool> needs_resume_{false};
  absl::Mutex resume_mu_;
  absl::Mutex failure_mu_;
  rocksdb::Status last_failure_ ABSL_GUARDED_BY(failure_mu_);

  // The test Env, if any (RocksDbStoreOptions::env): outlives the database.
  const std::shared_ptr<rocksdb::Env> env_;
  std::unique_ptr<rocksdb::DB> db_;
  std::vector<rocksdb::ColumnFamilyHandle*> handles_;
  rocksdb::ColumnFamilyHandle* meta_ = nullptr;
  rocksdb::ColumnFamilyHandle* chunks_ = nullptr;
  const bool sync_;

  const int64_t event_window_;
  const int64_t min_free_bytes_;

  // Serializes commits, deletes, every other model write and staging releases
  // (refcounts and model records are read-modify-write). The event listener runs
  // under it, after state_mu_ and stage_mu_ are released.
  // Lock order: commit_mu_, then stage_mu_, then state_mu_.
  absl::Mutex commit_mu_;
  std::function<void(const Event&)> listener_ ABSL_GUARDED_BY(commit_mu_);

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
  int64_t revision_ ABSL_GUARDED_BY(state_mu_) = 0;
  // The revision of the oldest retained event; revision_ + 1 if none is retained.
  // Events [event_oldest_, revision_] are all stored.
  int64_t event_oldest_ ABSL_GUARDED_BY(state_mu_) = 1;
  // Models with at least one step (those ListModels lists).
  int64_t listed_models_ ABSL_GUARDED_BY(state_mu_) = 0;
  int64_t checkpoints_ ABSL_GUARDED_BY(state_mu_) = 0;
  int64_t blobs_ ABSL_GUARDED_BY(state_mu_) = 0;
  int64_t chunks_count_ ABSL_GUARDED_BY(state_mu_) = 0;
  int64_t chunk_bytes_ ABSL_GUARDED_BY(state_mu_) = 0;
};

absl::Status CorruptRecord(absl::string_view what) {
  return absl::InternalError(absl::StrCat("corrupt ", what, " record in the store"));
}

absl::StatusOr<std::optional<std::string>> RocksCore::GetMeta(const std::string& key,
                                                              absl::string_view what) {
  std::string value;
  rocksdb::Status s = db_->Get(rocksdb::ReadOptions(), meta_, key, &value);
  if (s.IsNotFound()) return std::optional<std::string>();
  RETURN_IF_ERROR(FromRocks(s, what));
  return std::optional<std::string>(std::move(value));
}

absl::StatusOr<ChunkRefValue> RocksCore::GetChunkRefs(absl::string_view raw) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(ChunkRefKey(raw), "reading a chunk refcount"));
  ChunkRefValue out;
  if (!v.has_value()) return out;
  if (v->size() != 12) return CorruptRecord("chunk refcount");
  out.refs = static_cast<int64_t>(GetFixed64(v->data()));
  out.size = GetFixed32(v->data() + 8);
  return out;
}

absl::StatusOr<int64_t> RocksCore::GetBlobRefs(absl::string_view hex) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(BlobRefKey(hex), "reading a blob refcount"));
  if (!v.has_value()) return 0;
  if (v->size() != 8) return CorruptRecord("blob refcount");
  return static_cast<int64_t>(GetFixed64(v->data()));
}

absl::StatusOr<std::optional<BlobRecord>> RocksCore::GetBlobRecord(
    absl::string_view hex) {
  ASSIGN_OR_RETURN(std::optional<std::string> v, GetMeta(BlobKey(hex), "reading a blob"));
  if (!v.has_value()) return std::optional<BlobRecord>();
  BlobRecord r;
  if (!r.ParseFromString(*v)) return CorruptRecord("blob");
  return std::optional<BlobRecord>(std::move(r));
}

absl::Status RocksCore::Load(bool fresh) {
  ASSIGN_OR_RETURN(std::optional<std::string> tag,
                   GetMeta(kFormatKey, "opening the store"));
  if (!tag.has_value()) {
    if (!fresh) {
      return absl::FailedPreconditionError(
          "the data dir holds a RocksDB database that is not an mgreg store");
    }
    rocksdb::WriteBatch batch;
    batch.Put(meta_, kFormatKey, kFormatTag);
    PutFixed64(&tag.emplace(), 0);
    batch.Put(meta_, kRevisionKey, *tag);
    rocksdb::WriteOptions wo;
    wo.sync = true;
    RETURN_IF_ERROR(FromRocks(db_->Write(wo, &batch), "creating the store"));
  } else if (*tag != kFormatTag) {
    return absl::FailedPreconditionError(
        absl::StrCat("the data dir holds an mgreg store of format '", *tag,
                     "'; this build reads '", kFormatTag, "'"));
  }

  absl::MutexLock state(&state_mu_);
  ASSIGN_OR_RETURN(std::optional<std::string> rev,
                   GetMeta(kRevisionKey, "opening the store"));
  if (!rev.has_value() || rev->size() != 8) return CorruptRecord("revision");
  revision_ = static_cast<int64_t>(GetFixed64(rev->data()));

  // Scans [prefix, prefix+1) of the meta family.
  auto scan = [&](char prefix, auto&& fn) -> absl::Status {
    const std::string lo(1, prefix), hi(1, static_cast<char>(prefix + 1));
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    ro.fill_cache = false;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    for (it->Seek(lo); it->Valid(); it->Next()) {
      RETURN_IF_ERROR(fn(it->key(), it->value()));
    }
    return FromRocks(it->status(), "opening the store");
  };

  RETURN_IF_ERROR(
      scan('M', [&](rocksdb::Slice key, rocksdb::Slice value) -> absl::Status {
        ModelState m;
        if (!m.model.ParseFromArray(value.data(), static_cast<int>(value.size()))) {
          return CorruptRecord("model");
        }
        if (m.model.checkpoint_count() > 0) {
          ASSIGN_OR_RETURN(std::optional<std::string> latest,
                           GetMeta(CheckpointKey(m.model.name(), m.model.latest_step()),
                                   "opening the store"));
          if (!latest.has_value() || !m.latest.ParseFromString(*latest)) {
            return CorruptRecord("latest checkpoint");
          }
          ++listed_models_;
        }
        checkpoints_ += m.model.checkpoint_count();
        models_.emplace(key.ToString().substr(1), std::move(m));
        return absl::OkStatus();
      }));
  RETURN_IF_ERROR(scan('b', [&](rocksdb::Slice, rocksdb::Slice) -> absl::Status {
    ++blobs_;
    return absl::OkStatus();
  }));
  RETURN_IF_ERROR(scan('K', [&](rocksdb::Slice, rocksdb::Slice value) -> absl::Status {
    if (value.size() != 12) return CorruptRecord("chunk refcount");
    ++chunks_count_;
    chunk_bytes_ += GetFixed32(value.data() + 8);
    return absl::OkStatus();
  }));

  // The oldest retained event; trim to the window (it may have shrunk since the last
  // open). Only the first key is read.
  event_oldest_ = revision_ + 1;
  {
    const std::string lo(1, 'E'), hi(1, 'F');
    rocksdb::Slice upper(hi);
    rocksdb::ReadOptions ro;
    ro.iterate_upper_bound = &upper;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
    it->Seek(lo);
    if (it->Valid()) event_oldest_ = EventKeyRevision(it->key());
    RETURN_IF_ERROR(FromRocks(it->status(), "opening the store"));
  }
  if (event_oldest_ > revision_ + 1) return CorruptRecord("event");
  if (revision_ - event_oldest_ + 1 > event_window_) {
    rocksdb::WriteBatch trim;
    for (; event_oldest_ <= revision_ - event_window_; ++event_oldest_) {
      trim.Delete(meta_, EventKey(event_oldest_));
    }
    // Not synced: if lost, the next open trims again.
    RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &trim),
                              "trimming the event log to its window"));
  }

  // Collect the chunks of uploads that were never committed.
  rocksdb::WriteBatch gc;
  RETURN_IF_ERROR(scan('S', [&](rocksdb::Slice key, rocksdb::Slice) -> absl::Status {
    const std::string raw = key.ToString().substr(1);
    ASSIGN_OR_RETURN(ChunkRefValue refs, GetChunkRefs(raw));
    if (refs.refs == 0) gc.Delete(chunks_, raw);
    gc.Delete(meta_, key);
    return absl::OkStatus();
  }));
  if (gc.Count() > 0) {
    RETURN_IF_ERROR(FromRocks(db_->Write(rocksdb::WriteOptions(), &gc),
                              "collecting chunks of aborted uploads"));
  }
  return absl::OkStatus();
}

bool RocksCore::JoinStagedLocked(absl::flat_hash_set<std::string>* held,
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

absl::Status RocksCore::PutChunk(absl::flat_hash_set<std::string>* held,
                                 const ChunkRef& ref, absl::string_view data) {
  RETURN_IF_ERROR(storage_internal::ValidateChunkData(ref, data));
  RETURN_IF_ERROR(MaybeResume());
  const std::string& sha = ref.sha256();
  absl::MutexLock lock(&stage_mu_);
  if (JoinStagedLocked(held, sha)) return absl::OkStatus();
  ASSIGN_OR_RETURN(ChunkRefValue refs, GetChunkRefs(sha));
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
    return FromRocks(s, absl::StrCat("storing chunk ", ChunkName(sha)));
  }
  entry.holders = 1;
  entry.put_seq = via_wal ? 0 : ++put_seq_;
  entry.resume_epoch = resume_epoch_;
  ++staged_uncommitted_;
  held->insert(sha);
  return absl::OkStatus();
}

absl::Status RocksCore::HoldExisting(absl::flat_hash_set<std::string>* held,
                                     const ChunkRef& ref) {
  const std::string& sha = ref.sha256();
  absl::MutexLock lock(&stage_mu_);
  if (JoinStagedLocked(held, sha)) return absl::OkStatus();
  ASSIGN_OR_RETURN(ChunkRefValue refs, GetChunkRefs(sha));
  if (refs.refs == 0) {
    return absl::NotFoundError(
        absl::StrCat("chunk ", ChunkName(sha), " is not stored; send its bytes"));
  }
  Staged& s = staged_[sha];
  s.holders = 1;
  s.size = refs.size;
  held->insert(sha);
  return absl::OkStatus();
}

void RocksCore::ReleaseLocked(const std::string& sha, rocksdb::WriteBatch* batch) {
  auto it = staged_.find(sha);
  if (it == staged_.end() || --it->second.holders > 0) return;
  if (it->second.uncommitted) {
    batch->Delete(chunks_, sha);
    batch->Delete(meta_, StagedKey(sha));
    --staged_uncommitted_;
  }
  staged_.erase(it);
}

void RocksCore::Release(const absl::flat_hash_set<std::string>& held) {
  if (held.empty()) return;
  // A store that cannot write now keeps the markers; they are collected later.
  MaybeResume().IgnoreError();
  absl::MutexLock commit(&commit_mu_);
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

absl::Status RocksCore::CheckFreeSpace() const {
  if (min_free_bytes_ <= 0) return absl::OkStatus();
  struct statvfs st;
  if (statvfs(db_->GetName().c_str(), &st) != 0) return absl::OkStatus();  // unknown
  const int64_t free_bytes =
      static_cast<int64_t>(st.f_bavail) * static_cast<int64_t>(st.f_frsize);
  if (free_bytes >= min_free_bytes_) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "the data dir's disk has ", free_bytes >> 20, " MiB free, less than the ",
      min_free_bytes_ >> 20,
      " MiB kept in reserve (--min-free-bytes); free space in the data dir (uploads "
      "resume once there is room; reads, commits of uploaded bytes and deletes go on)"));
}

absl::Status RocksCore::EnsureFlushed(uint64_t need) {
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
      return absl::UnavailableError(absl::StrCat(
          "staged chunks were not flushed to disk within ",
          absl::FormatDuration(kFlushConfirmTimeout),
          "; nothing was committed: retry the commit"));
    }
    // Not flushed yet (a failed background flush keeps its memtable): flush again,
    // which also reports a background error that stopped writes.
  }
  flushed_seq_ = upto;
  return absl::OkStatus();
}

absl::Status RocksCore::ApplyRefs(const absl::flat_hash_map<std::string, int64_t>& delta,
                                  const std::vector<const BlobRecord*>& created,
                                  rocksdb::WriteBatch* batch, RefChanges* out) {
  absl::flat_hash_map<std::string, int64_t> chunk_delta;
  absl::flat_hash_map<std::string, uint32_t> chunk_size;
  absl::flat_hash_set<std::string> created_set;
  for (const BlobRecord* b : created) {
    created_set.insert(b->sha256());
    batch->Put(meta_, BlobKey(b->sha256()), b->SerializeAsString());
    ++out->blobs;
    for (const ChunkRef& c : b->chunks()) {
      ++chunk_delta[c.sha256()];
      chunk_size[c.sha256()] = c.size();
    }
  }
  for (const auto& [hex, d] : delta) {
    if (d == 0) continue;
    int64_t refs = 0;
    if (!created_set.contains(hex)) {
      ASSIGN_OR_RETURN(refs, GetBlobRefs(hex));
    }
    const int64_t now = refs + d;
    if (now < 0) return CorruptRecord("blob refcount");
    if (now > 0) {
      std::string v;
      PutFixed64(&v, static_cast<uint64_t>(now));
      batch->Put(meta_, BlobRefKey(hex), v);
      continue;
    }
    ASSIGN_OR_RETURN(std::optional<BlobRecord> blob, GetBlobRecord(hex));
    if (!blob.has_value()) return CorruptRecord("blob");
    batch->Delete(meta_, BlobKey(hex));
    batch->Delete(meta_, BlobRefKey(hex));
    --out->blobs;
    for (const ChunkRef& c : blob->chunks()) {
      --chunk_delta[c.sha256()];
      chunk_size[c.sha256()] = c.size();
    }
  }
  for (const auto& [raw, d] : chunk_delta) {
    if (d == 0) continue;
    ASSIGN_OR_RETURN(ChunkRefValue v, GetChunkRefs(raw));
    if (v.refs == 0) v.size = chunk_size[raw];
    const int64_t before = v.refs;
    v.refs += d;
    if (v.refs < 0) return CorruptRecord("chunk refcount");
    if (v.refs > 0) {
      batch->Put(meta_, ChunkRefKey(raw), EncodeChunkRef(v));
      if (before == 0) {
        batch->Delete(meta_, StagedKey(raw));
        out->committed_chunks.push_back(raw);
        ++out->chunks;
        out->chunk_bytes += v.size;
      }
      continue;
    }
    batch->Delete(meta_, ChunkRefKey(raw));
    --out->chunks;
    out->chunk_bytes -= v.size;
    auto held = staged_.find(raw);
    if (held != staged_.end()) {
      std::string marker;
      PutFixed32(&marker, v.size);
      batch->Put(meta_, StagedKey(raw), marker);
      out->restaged_chunks.push_back(raw);
    } else {
      batch->Delete(chunks_, raw);
      out->freed_bytes += v.size;
    }
  }
  return absl::OkStatus();
}

void RocksCore::NoteRefChanges(const RefChanges& c) {
  for (const std::string& raw : c.committed_chunks) {
    auto it = staged_.find(raw);
    if (it != staged_.end() && it->second.uncommitted) {
      it->second.uncommitted = false;
      it->second.put_seq = 0;
      --staged_uncommitted_;
    }
  }
  for (const std::string& raw : c.restaged_chunks) {
    auto it = staged_.find(raw);
    if (it != staged_.end() && !it->second.uncommitted) {
      it->second.uncommitted = true;
      it->second.put_seq = 0;  // its bytes were durable when it was committed
      ++staged_uncommitted_;
    }
  }
}

absl::StatusOr<CommitResult> RocksCore::Commit(const CommitRequest& request,
                                               absl::flat_hash_set<std::string>* held) {
  absl::flat_hash_map<std::string, const BlobRecord*> new_blobs;
  RETURN_IF_ERROR(storage_internal::ValidateCommitRequest(request, &new_blobs));
  RETURN_IF_ERROR(MaybeResume());
  const CheckpointRecord& in = request.record;
  const std::string where = StepName(in.model(), in.step());

  // Make the staged chunks this commit may reference durable, outside commit_mu_ so
  // that commits of other steps do not wait for this flush.
  if (held != nullptr && !new_blobs.empty()) {
    uint64_t need = 0;
    {
      absl::MutexLock lock(&stage_mu_);
      for (const auto& [hex, blob] : new_blobs) {
        for (const ChunkRef& c : blob->chunks()) {
          if (!held->contains(c.sha256())) continue;
          auto it = staged_.find(c.sha256());
          if (it != staged_.end() && it->second.uncommitted) {
            need = std::max(need, it->second.put_seq);
          }
        }
      }
    }
    RETURN_IF_ERROR(EnsureFlushed(need));
    RETURN_IF_ERROR(VerifyStagedBeforeRecovery(new_blobs, *held));
  }

  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(in.model());
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> old, ReadStep(w, in.step()));
  if (old.has_value()) {
    if (storage_internal::SameContent(*old, in)) return CommitResult{*old, true};
    if (!request.overwrite) {
      return absl::AlreadyExistsError(absl::StrCat(
          where,
          " already exists with other files; push a new step or ask to overwrite"));
    }
  }

  // Which blobs to create; everything they need must be here. (Chunk refcounts change
  // only under commit_mu_, and `held` cannot change while its area is in this call.)
  absl::flat_hash_set<std::string> seen;
  for (const auto& f : in.files()) {
    if (!seen.insert(f.sha256()).second) continue;
    ASSIGN_OR_RETURN(std::optional<BlobRecord> stored, GetBlobRecord(f.sha256()));
    if (stored.has_value()) {
      if (stored->size() != f.size()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "file '", f.name(), "' has size ", f.size(), " but the stored blob ",
            f.sha256(), " has ", stored->size(), " bytes"));
      }
      continue;
    }
    auto n = new_blobs.find(f.sha256());
    if (n == new_blobs.end()) {
      return absl::FailedPreconditionError(
          absl::StrCat("file '", f.name(), "' of ", where, " names blob ", f.sha256(),
                       " which is neither stored nor among the new blobs"));
    }
    w.created_blobs.push_back(n->second);
  }
  for (const BlobRecord* blob : w.created_blobs) {
    for (const ChunkRef& c : blob->chunks()) {
      bool ok = held != nullptr && held->contains(c.sha256());
      if (!ok) {
        ASSIGN_OR_RETURN(ChunkRefValue v, GetChunkRefs(c.sha256()));
        ok = v.refs > 0;
      }
      if (!ok) {
        return absl::FailedPreconditionError(absl::StrCat(
            "blob ", blob->sha256(), " lists chunk ", ChunkName(c.sha256()),
            " which is neither stored nor staged in this upload; send it first"));
      }
    }
  }

  for (const auto& f : in.files()) ++w.blob_delta[f.sha256()];
  if (old.has_value()) {
    for (const auto& f : old->files()) --w.blob_delta[f.sha256()];
  }
  if (w.model.checkpoint_count() == 0) {
    w.model.set_latest_step(in.step());
  } else {
    w.model.set_latest_step(std::max(w.model.latest_step(), in.step()));
  }
  if (!old.has_value()) w.model.set_checkpoint_count(w.model.checkpoint_count() + 1);

  CheckpointRecord record = in;
  record.set_commit_time_micros(storage_internal::NowMicros());
  record.set_revision(w.revision_before + 1);
  record.set_pinned(old.has_value() && old->pinned());
  record.set_preserved(old.has_value() && old->preserved());
  PutStep(&w, record);
  w.AddEvent(storage_internal::MakeEvent(Event::COMMITTED, in.model(), in.step(), "",
                                         record.commit_time_micros()));
  RETURN_IF_ERROR(FinishWrite(&w, absl::StrCat("committing ", where)).status());
  if (held != nullptr) {
    absl::MutexLock stage(&stage_mu_);
    rocksdb::WriteBatch release;
    for (const BlobRecord* blob : w.created_blobs) {
      for (const ChunkRef& c : blob->chunks()) {
        if (held->erase(c.sha256()) > 0) ReleaseLocked(c.sha256(), &release);
      }
    }
    // The chunks were just committed, so releasing them deletes nothing.
  }
  return CommitResult{std::move(record), false};
}

ModelWrite RocksCore::BeginWrite(absl::string_view model) {
  ModelWrite w;
  w.name = std::string(model);
  absl::ReaderMutexLock state(&state_mu_);
  w.revision_before = revision_;
  w.event_oldest_before = event_oldest_;
  auto it = models_.find(model);
  if (it != models_.end()) {
    w.model = it->second.model;
    w.count_before = w.model.checkpoint_count();
  } else {
    w.model.set_name(w.name);
  }
  return w;
}

absl::StatusOr<std::optional<CheckpointRecord>> RocksCore::ReadStep(const ModelWrite& w,
                                                                    int64_t step) {
  if (w.deleted_steps.contains(step)) return std::optional<CheckpointRecord>();
  auto put = w.put_steps.find(step);
  if (put != w.put_steps.end()) return std::optional<CheckpointRecord>(put->second);
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(CheckpointKey(w.name, step), "reading a checkpoint"));
  if (!v.has_value()) return std::optional<CheckpointRecord>();
  CheckpointRecord r;
  if (!r.ParseFromString(*v)) return CorruptRecord("checkpoint");
  return std::optional<CheckpointRecord>(std::move(r));
}

void RocksCore::PutStep(ModelWrite* w, const CheckpointRecord& record) {
  w->batch.Put(meta_, CheckpointKey(w->name, record.step()), record.SerializeAsString());
  w->put_steps[record.step()] = record;
}

void RocksCore::AddStepDeletion(ModelWrite* w, const CheckpointRecord& gone,
                                int64_t now) {
  w->batch.Delete(meta_, CheckpointKey(w->name, gone.step()));
  w->put_steps.erase(gone.step());
  w->deleted_steps.insert(gone.step());
  for (const auto& f : gone.files()) --w->blob_delta[f.sha256()];
  w->model.set_checkpoint_count(w->model.checkpoint_count() - 1);
  w->AddEvent(storage_internal::MakeEvent(Event::DELETED, w->name, gone.step(), "", now));
}

absl::StatusOr<std::optional<CheckpointRecord>> RocksCore::FindLatest(
    const ModelWrite& w) {
  // Steps this write puts are not in the database yet, and its deleted steps still are.
  std::optional<CheckpointRecord> best;
  if (!w.put_steps.empty()) best = w.put_steps.rbegin()->second;
  const std::string lower = CheckpointPrefix(w.name);
  std::string upper = lower;
  upper.back() = '\x01';
  rocksdb::Slice lo(lower), hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lo;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  for (it->SeekToLast(); it->Valid(); it->Prev()) {
    CheckpointRecord r;
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("checkpoint");
    }
    if (best.has_value() && best->step() >= r.step()) break;
    if (w.deleted_steps.contains(r.step())) continue;
    auto put = w.put_steps.find(r.step());
    best = put != w.put_steps.end() ? put->second : std::move(r);
    break;
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "finding the latest step"));
  return best;
}

absl::StatusOr<int64_t> RocksCore::FinishWrite(ModelWrite* w, absl::string_view what) {
  // The latest step.
  std::optional<CheckpointRecord> latest;
  const bool has_steps = w->model.checkpoint_count() > 0;
  if (!has_steps) {
    w->model.set_latest_step(0);
  } else if (w->deleted_steps.contains(w->model.latest_step())) {
    ASSIGN_OR_RETURN(latest, FindLatest(*w));
    if (!latest.has_value()) return CorruptRecord("model");
    w->model.set_latest_step(latest->step());
  } else {
    auto put = w->put_steps.find(w->model.latest_step());
    if (put != w->put_steps.end()) latest = put->second;
  }
  const bool keep_record = has_steps || storage_internal::HasSettings(w->model);
  if (keep_record) {
    w->batch.Put(meta_, ModelKey(w->name), w->model.SerializeAsString());
  } else {
    w->batch.Delete(meta_, ModelKey(w->name));
  }

  // Events, the window, the revision.
  int64_t event_oldest = w->event_oldest_before;
  const int64_t revision = w->revision_after();
  if (!w->events.empty()) {
    for (const Event& e : w->events) {
      w->batch.Put(meta_, EventKey(e.revision()), e.SerializeAsString());
    }
    for (; event_oldest <= revision - event_window_; ++event_oldest) {
      w->batch.Delete(meta_, EventKey(event_oldest));
    }
    std::string rev;
    PutFixed64(&rev, static_cast<uint64_t>(revision));
    w->batch.Put(meta_, kRevisionKey, rev);
  }

  RefChanges changes;
  {
    absl::MutexLock stage(&stage_mu_);
    RETURN_IF_ERROR(ApplyRefs(w->blob_delta, w->created_blobs, &w->batch, &changes));
    RETURN_IF_ERROR(Write(&w->batch, what));
    NoteRefChanges(changes);
    absl::MutexLock state(&state_mu_);
    revision_ = revision;
    event_oldest_ = event_oldest;
    checkpoints_ += w->model.checkpoint_count() - w->count_before;
    listed_models_ += (has_steps ? 1 : 0) - (w->count_before > 0 ? 1 : 0);
    blobs_ += changes.blobs;
    chunks_count_ += changes.chunks;
    chunk_bytes_ += changes.chunk_bytes;
    if (!keep_record) {
      models_.erase(w->name);
    } else {
      ModelState& m = models_[w->name];
      m.model = w->model;
      if (!has_steps) {
        m.latest.Clear();
      } else if (latest.has_value()) {
        m.latest = std::move(*latest);
      }
    }
  }
  if (listener_) {
    for (const Event& e : w->events) listener_(e);
  }
  return changes.freed_bytes;
}

absl::StatusOr<int64_t> RocksCore::Delete(absl::string_view model, int64_t step) {
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> gone, ReadStep(w, step));
  if (!gone.has_value()) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  if (w.count_before == 0) return CorruptRecord("model");
  RETURN_IF_ERROR(storage_internal::CheckNoAliasNames(w.model, step));
  AddStepDeletion(&w, *gone, storage_internal::NowMicros());
  return FinishWrite(&w, absl::StrCat("deleting ", StepName(model, step)));
}

absl::StatusOr<int64_t> RocksCore::ApplyRetention(
    absl::string_view model, const std::vector<int64_t>& delete_steps,
    const std::vector<int64_t>& preserve_steps, int64_t last_preserved_micros) {
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  if (w.count_before == 0 && !storage_internal::HasSettings(w.model)) {
    return storage_internal::UnknownModel(model);
  }
  for (int64_t step : preserve_steps) {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r, ReadStep(w, step));
    if (!r.has_value() || r->preserved()) continue;
    r->set_preserved(true);
    PutStep(&w, *r);
  }
  w.model.set_last_preserved_micros(last_preserved_micros);
  const int64_t now = storage_internal::NowMicros();
  for (int64_t step :
       storage_internal::RetentionCandidates(w.model, delete_steps, preserve_steps)) {
    ASSIGN_OR_RETURN(std::optional<CheckpointRecord> gone, ReadStep(w, step));
    if (!gone.has_value() || gone->pinned()) continue;
    AddStepDeletion(&w, *gone, now);
  }
  return FinishWrite(&w, absl::StrCat("applying retention to model '", model, "'"));
}

absl::StatusOr<int64_t> RocksCore::SetAlias(absl::string_view model,
                                            absl::string_view alias, int64_t step) {
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> target, ReadStep(w, step));
  if (!target.has_value()) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  (*w.model.mutable_aliases())[std::string(alias)] = step;
  w.AddEvent(storage_internal::MakeEvent(Event::ALIAS_SET, model, step, alias,
                                         storage_internal::NowMicros()));
  RETURN_IF_ERROR(
      FinishWrite(&w, absl::StrCat("setting alias '", alias, "' of model '", model, "'"))
          .status());
  return w.revision_after();
}

absl::StatusOr<int64_t> RocksCore::RemoveAlias(absl::string_view model,
                                               absl::string_view alias) {
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  auto* aliases = w.model.mutable_aliases();
  auto it = aliases->find(std::string(alias));
  if (it == aliases->end()) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no alias '", alias, "'"));
  }
  const int64_t step = it->second;
  aliases->erase(it);
  w.AddEvent(storage_internal::MakeEvent(Event::ALIAS_REMOVED, model, step, alias,
                                         storage_internal::NowMicros()));
  RETURN_IF_ERROR(
      FinishWrite(&w, absl::StrCat("removing alias '", alias, "' of model '", model, "'"))
          .status());
  return w.revision_after();
}

absl::Status RocksCore::SetPinned(absl::string_view model, int64_t step, bool pinned) {
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  ASSIGN_OR_RETURN(std::optional<CheckpointRecord> r, ReadStep(w, step));
  if (!r.has_value()) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  if (r->pinned() == pinned) return absl::OkStatus();
  r->set_pinned(pinned);
  PutStep(&w, *r);
  return FinishWrite(
             &w, absl::StrCat(pinned ? "pinning " : "unpinning ", StepName(model, step)))
      .status();
}

absl::Status RocksCore::SetRetention(absl::string_view model,
                                     const storage::RetentionPolicy& policy) {
  RETURN_IF_ERROR(ValidateModelName(model));
  RETURN_IF_ERROR(MaybeResume());
  absl::MutexLock commit(&commit_mu_);
  ModelWrite w = BeginWrite(model);
  if (!w.model.has_retention()) {
    w.model.set_last_preserved_micros(storage_internal::NowMicros());
  }
  *w.model.mutable_retention() = policy;
  return FinishWrite(&w, absl::StrCat("setting the retention of model '", model, "'"))
      .status();
}

absl::StatusOr<ModelRecord> RocksCore::GetModel(absl::string_view model) {
  absl::ReaderMutexLock state(&state_mu_);
  auto it = models_.find(model);
  if (it == models_.end()) return storage_internal::UnknownModel(model);
  return it->second.model;
}

void RocksCore::SetListener(std::function<void(const Event&)> listener) {
  absl::MutexLock commit(&commit_mu_);
  listener_ = std::move(listener);
}

absl::StatusOr<EventPage> RocksCore::ReadEvents(int64_t after_revision, int limit) {
  EventPage page;
  int64_t oldest;
  {
    absl::ReaderMutexLock state(&state_mu_);
    page.current_revision = revision_;
    oldest = event_oldest_;
  }
  page.oldest_revision = oldest <= page.current_revision ? oldest : 0;
  if (after_revision >= page.current_revision) return page;
  RETURN_IF_ERROR(storage_internal::CheckEventsAvailable(after_revision, oldest));
  // Events up to current_revision are all written; a write after the state was read
  // may have trimmed the first ones, which the iterator (one consistent view) shows.
  const int64_t first = std::max(after_revision + 1, oldest);
  const std::string lo = EventKey(first), hi = EventKey(page.current_revision + 1);
  rocksdb::Slice upper(hi);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &upper;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  int64_t expect = first;
  for (it->Seek(lo); it->Valid(); it->Next()) {
    if (limit > 0 && static_cast<int>(page.events.size()) >= limit) break;
    Event& e = page.events.emplace_back();
    if (!e.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("event");
    }
    if (e.revision() != expect) {
      if (expect != first) return CorruptRecord("event");
      return storage_internal::CheckEventsAvailable(after_revision, e.revision());
    }
    ++expect;
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "reading events"));
  if (page.events.empty()) {
    // All of them were trimmed meanwhile.
    return storage_internal::CheckEventsAvailable(after_revision,
                                                  page.current_revision + 1);
  }
  return page;
}

absl::StatusOr<CheckpointRecord> RocksCore::Get(absl::string_view model, int64_t step) {
  ASSIGN_OR_RETURN(std::optional<std::string> v,
                   GetMeta(CheckpointKey(model, step), "reading a checkpoint"));
  if (!v.has_value()) {
    return absl::NotFoundError(absl::StrCat(StepName(model, step), " does not exist"));
  }
  CheckpointRecord r;
  if (!r.ParseFromString(*v)) return CorruptRecord("checkpoint");
  return r;
}

absl::StatusOr<CheckpointRecord> RocksCore::Latest(absl::string_view model) {
  absl::ReaderMutexLock state(&state_mu_);
  auto it = models_.find(model);
  if (it == models_.end() || it->second.model.checkpoint_count() == 0) {
    return absl::NotFoundError(
        absl::StrCat("model '", model, "' has no committed checkpoint"));
  }
  return it->second.latest;
}

std::vector<ModelRecord> RocksCore::ListModels(absl::string_view start_after, int limit) {
  absl::ReaderMutexLock state(&state_mu_);
  std::vector<ModelRecord> out;
  for (auto it = models_.upper_bound(start_after); it != models_.end(); ++it) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    if (it->second.model.checkpoint_count() == 0) continue;
    out.push_back(it->second.model);
  }
  return out;
}

absl::StatusOr<std::vector<CheckpointRecord>> RocksCore::ListCheckpoints(
    absl::string_view model, std::optional<int64_t> start_after, int limit) {
  {
    absl::ReaderMutexLock state(&state_mu_);
    auto it = models_.find(model);
    if (it == models_.end() || it->second.model.checkpoint_count() == 0) {
      return absl::NotFoundError(
          absl::StrCat("model '", model, "' has no committed checkpoint"));
    }
  }
  std::vector<CheckpointRecord> out;
  if (start_after.has_value() && *start_after == INT64_MAX) return out;
  const std::string prefix = CheckpointPrefix(model);
  std::string upper = prefix;
  upper.back() = '\x01';
  rocksdb::Slice hi(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_upper_bound = &hi;
  std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, meta_));
  const int64_t first =
      start_after.has_value() ? std::max<int64_t>(*start_after + 1, 0) : 0;
  for (it->Seek(CheckpointKey(model, first)); it->Valid(); it->Next()) {
    if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
    CheckpointRecord& r = out.emplace_back();
    if (!r.ParseFromArray(it->value().data(), static_cast<int>(it->value().size()))) {
      return CorruptRecord("checkpoint");
    }
  }
  RETURN_IF_ERROR(FromRocks(it->status(), "listing checkpoints"));
  return out;
}

absl::StatusOr<BlobRecord> RocksCore::GetBlob(absl::string_view sha256_hex) {
  ASSIGN_OR_RETURN(std::optional<BlobRecord> b, GetBlobRecord(sha256_hex));
  if (!b.has_value()) {
    return absl::NotFoundError(absl::StrCat("no stored file has digest ", sha256_hex));
  }
  return std::move(*b);
}

absl::StatusOr<std::string> RocksCore::ReadChunk(const ChunkRef& ref) {
  if (ref.sha256().size() != 32) {
    return absl::NotFoundError("chunk digest is not 32 bytes; no such chunk");
  }
  // Chunk bytes are verified end to end by SHA-256 (the restoring client checks every
  // file's digest), so RocksDB's software CRC32C of each blob is skipped: it was half
  // the server's CPU when streaming (measured by bench/pull_bench).
  rocksdb::ReadOptions read_options;
  read_options.verify_checksums = false;
  rocksdb::PinnableSlice value;
  rocksdb::Status s = db_->Get(read_options, chunks_, ref.sha256(), &value);
  if (s.IsNotFound()) {
    return absl::NotFoundError(
        absl::StrCat("chunk ", ChunkName(ref.sha256()), " is not stored"));
  }
  RETURN_IF_ERROR(FromRocks(s, absl::StrCat("reading chunk ", ChunkName(ref.sha256()))));
  if (ref.size() != 0 && value.size() != ref.size()) {
    return absl::DataLossError(absl::StrCat("chunk ", ChunkName(ref.sha256()), " has ",
                                            value.size(), " bytes stored, expected ",
                                            ref.size()));
  }
  return value.ToString();
}

absl::StatusOr<bool> RocksCore::HasChunk(const ChunkRef& ref) {
  {
    absl::MutexLock lock(&stage_mu_);
    auto it = staged_.find(ref.sha256());
    if (it != staged_.end() && !it->second.writing) return true;
  }
  ASSIGN_OR_RETURN(ChunkRefValue v, GetChunkRefs(ref.sha256()));
  return v.refs > 0;
}

StoreStats RocksCore::Stats() {
  StoreStats s;
  {
    absl::ReaderMutexLock state(&state_mu_);
    s.models = listed_models_;
    s.checkpoints = checkpoints_;
    s.blobs = blobs_;
    s.chunks = chunks_count_;
    s.chunk_bytes = chunk_bytes_;
    s.revision = revision_;
  }
  {
    absl::MutexLock lock(&stage_mu_);
    s.staged_chunks = staged_uncommitted_;
  }
  for (rocksdb::ColumnFamilyHandle* h : handles_) {
    uint64_t v = 0;
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kTotalBlobFileSize, &v)) {
      s.blob_file_bytes += static_cast<int64_t>(v);
    }
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kEstimatePendingCompactionBytes,
                            &v)) {
      s.pending_compaction_bytes += static_cast<int64_t>(v);
    }
    if (db_->GetIntProperty(h, rocksdb::DB::Properties::kLiveSstFilesSize, &v)) {
      s.live_sst_bytes += static_cast<int64_t>(v);
    }
  }
  return s;
}

absl::Status RocksCore::Backup(const std::string& dir) {
  if (dir.empty()) return absl::InvalidArgumentError("no backup directory given");
  std::error_code ec;
  if (std::filesystem::exists(dir, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("backup directory '", dir, "' exists; name a new directory"));
  }
  const std::filesystem::path parent = std::filesystem::path(dir).parent_path();
  if (!parent.empty() && !std::filesystem::is_directory(parent, ec)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the parent of backup directory '", dir, "' does not exist; create it first"));
  }
  // A RocksDB checkpoint: flushes the memtables, then hard-links (or copies) the live
  // files of every column family and the WAL, a consistent point-in-time copy.
  rocksdb::Checkpoint* raw = nullptr;
  RETURN_IF_ERROR(
      FromRocks(rocksdb::Checkpoint::Create(db_.get(), &raw), "preparing a backup"));
  std::unique_ptr<rocksdb::Checkpoint> checkpoint(raw);
  return FromRocks(checkpoint->CreateCheckpoint(dir), "writing a backup");
}

absl::Status RocksCore::VerifyStagedBeforeRecovery(
    const absl::flat_hash_map<std::string, const BlobRecord*>& new_blobs,
    const absl::flat_hash_set<std::string>& held) {
  std::vector<std::string> suspects;
  {
    absl::MutexLock lock(&stage_mu_);
    for (const auto& [hex, blob] : new_blobs) {
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

absl::Status RocksCore::MaybeResume() {
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
      return FromRocks(last_failure_, "writing while the store recovers from a failed "
                                      "write");
    }
    RETURN_IF_ERROR(FromRocks(s, "recovering from a failed write"));
    needs_resume_.store(false);
    absl::MutexLock stage(&stage_mu_);
    ++resume_epoch_;
  }
  CollectOrphans();
  return absl::OkStatus();
}

void RocksCore::CollectOrphans() {
  absl::MutexLock commit(&commit_mu_);
  absl::MutexLock stage(&stage_mu_);
  if (orphans_.empty()) return;
  rocksdb::WriteBatch batch;
  for (const std::string& sha : orphans_) {
    if (staged_.contains(sha)) continue;  // staged again: its holder owns the marker
    absl::StatusOr<ChunkRefValue> refs = GetChunkRefs(sha);
    if (!refs.ok()) return;  // try again after the next failure, or at open
    if (refs->refs == 0) batch.Delete(chunks_, sha);
    batch.Delete(meta_, StagedKey(sha));
  }
  if (batch.Count() == 0 || Note(db_->Write(rocksdb::WriteOptions(), &batch)).ok()) {
    orphans_.clear();
  }
}

absl::StatusOr<CheckReport> RocksCore::Check() {
  storage_internal::ConsistencyCheck check;
  std::map<std::string, ModelState, std::less<>> cached;
  int64_t cached_revision = 0;
  const rocksdb::Snapshot* snapshot = nullptr;
  absl::flat_hash_set<std::string> held;
  {
    // One view: no write and no staging change happens while it is taken.
    absl::MutexLock commit(&commit_mu_);
    absl::MutexLock stage(&stage_mu_);
    for (const auto& [sha, staged] : staged_) {
      check.AddHeld(sha);
      held.insert(sha);
    }
    absl::ReaderMutexLock state(&state_mu_);
    cached = models_;
    cached_revision = revision_;
    snapshot = db_->GetSnapshot();
  }
  rocksdb::ManagedSnapshot release(db_.get(), snapshot);
  auto scan = [&](rocksdb::ColumnFamilyHandle* family, absl::string_view lo,
                  absl::string_view hi, auto&& fn) -> absl::Status {
    rocksdb::ReadOptions ro;
    ro.snapshot = snapshot;
    ro.fill_cache = false;
    const std::string upper(hi);
    rocksdb::Slice upper_slice(upper);
    if (!hi.empty()) ro.iterate_upper_bound = &upper_slice;
    std::unique_ptr<rocksdb::Iterator> it(db_->NewIterator(ro, family));
    for (it->Seek(rocksdb::Slice(lo.data(), lo.size())); it->Valid(); it->Next()) {
      fn(absl::string_view(it->key().data(), it->key().size()),
         absl::string_view(it->value().data(), it->value().size()));
    }
    return FromRocks(it->status(), "checking the store");
  };
  auto prefix = [&](char p, auto&& fn) {
    return scan(meta_, std::string(1, p), std::string(1, static_cast<char>(p + 1)), fn);
  };

  int64_t revision = 0;
  RETURN_IF_ERROR(prefix('R', [&](absl::string_view, absl::string_view v) {
    if (v.size() == 8) revision = static_cast<int64_t>(GetFixed64(v.data()));
  }));
  check.SetRevision(revision);
  if (revision != cached_revision) {
    check.AddProblem(absl::StrCat("the store serves revision ", cached_revision,
                                  " but has stored ", revision));
  }
  std::map<std::string, ModelRecord> stored_models;
  RETURN_IF_ERROR(prefix('M', [&](absl::string_view key, absl::string_view v) {
    ModelRecord m;
    if (!m.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      check.AddProblem(absl::StrCat("corrupt model record '", key.substr(1), "'"));
      return;
    }
    check.AddModel(m);
    stored_models[std::string(key.substr(1))] = m;
  }));
  for (const auto& [name, state] : cached) {
    auto m = stored_models.find(name);
    if (m == stored_models.end()) {
      check.AddProblem(absl::StrCat("the store serves model '", name,
                                    "' which has no stored record"));
    } else if (m->second.latest_step() != state.model.latest_step() ||
               m->second.checkpoint_count() != state.model.checkpoint_count()) {
      check.AddProblem(absl::StrCat("the store serves model '", name,
                                    "' with a latest step or count other than stored"));
    } else if (state.model.checkpoint_count() > 0 &&
               state.latest.step() != state.model.latest_step()) {
      check.AddProblem(absl::StrCat("the store serves a latest step of model '", name,
                                    "' other than its record names"));
    }
  }
  for (const auto& [name, m] : stored_models) {
    if (cached.find(name) == cached.end()) {
      check.AddProblem(absl::StrCat("model '", name, "' is stored but not served"));
    }
  }
  RETURN_IF_ERROR(prefix('C', [&](absl::string_view key, absl::string_view v) {
    const size_t nul = key.find('\0');
    CheckpointRecord r;
    if (nul == absl::string_view::npos || key.size() != nul + 9 ||
        !r.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      check.AddProblem("corrupt checkpoint record");
      return;
    }
    uint64_t step = 0;
    for (size_t i = nul + 1; i < key.size(); ++i) {
      step = (step << 8) | static_cast<unsigned char>(key[i]);
    }
    check.AddCheckpoint(key.substr(1, nul - 1), static_cast<int64_t>(step), r);
  }));
  std::map<std::string, int64_t> blob_refs;
  RETURN_IF_ERROR(prefix('b', [&](absl::string_view key, absl::string_view v) {
    blob_refs[std::string(key.substr(1))] =
        v.size() == 8 ? static_cast<int64_t>(GetFixed64(v.data())) : -1;
  }));
  RETURN_IF_ERROR(prefix('B', [&](absl::string_view key, absl::string_view v) {
    BlobRecord b;
    if (!b.ParseFromArray(v.data(), static_cast<int>(v.size())) ||
        b.sha256() != key.substr(1)) {
      check.AddProblem(absl::StrCat("corrupt blob record ", key.substr(1)));
      return;
    }
    auto refs = blob_refs.find(b.sha256());
    check.AddBlob(b, refs == blob_refs.end() ? 0 : refs->second);
    if (refs != blob_refs.end()) blob_refs.erase(refs);
  }));
  for (const auto& [hex, refs] : blob_refs) check.AddOrphanBlobRefcount(hex, refs);
  absl::flat_hash_set<std::string> counted;
  RETURN_IF_ERROR(prefix('K', [&](absl::string_view key, absl::string_view v) {
    if (v.size() != 12) {
      check.AddProblem(absl::StrCat("corrupt refcount of chunk ", ChunkName(key.substr(1))));
      return;
    }
    counted.insert(std::string(key.substr(1)));
    check.AddChunkRefcount(key.substr(1), static_cast<int64_t>(GetFixed64(v.data())),
                           GetFixed32(v.data() + 8));
  }));
  RETURN_IF_ERROR(prefix('S', [&](absl::string_view key, absl::string_view) {
    const std::string raw(key.substr(1));
    if (counted.contains(raw)) {
      check.AddProblem(absl::StrCat("chunk ", ChunkName(raw),
                                    " is committed but still marked as staged"));
    } else if (!held.contains(raw)) {
      check.AddProblem(absl::StrCat("chunk ", ChunkName(raw),
                                    " is marked as staged but no open upload holds it"));
    }
  }));
  RETURN_IF_ERROR(prefix('E', [&](absl::string_view, absl::string_view v) {
    Event e;
    if (!e.ParseFromArray(v.data(), static_cast<int>(v.size()))) {
      check.AddProblem("corrupt event record");
      return;
    }
    check.AddEvent(e);
  }));
  RETURN_IF_ERROR(scan(chunks_, "", "", [&](absl::string_view key, absl::string_view v) {
    check.AddChunkBytes(key, v);
  }));
  return check.Finish();
}

class RocksStagingArea : public StagingArea {
 public:
  explicit RocksStagingArea(std::shared_ptr<RocksCore> core) : core_(std::move(core)) {}
  ~RocksStagingArea() override {
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
  const RocksCore* core() const { return core_.get(); }

 private:
  const std::shared_ptr<RocksCore> core_;
  absl::Mutex mu_;
  absl::flat_hash_set<std::string> held_ ABSL_GUARDED_BY(mu_);
};

class RocksDbStore : public Store {
 public:
  explicit RocksDbStore(std::shared_ptr<RocksCore> core) : core_(std::move(core)) {}

  std::unique_ptr<StagingArea> NewStagingArea() override {
    return std::make_unique<RocksStagingArea>(core_);
  }
  absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                      StagingArea* staging) override {
    if (staging == nullptr) return core_->Commit(request, nullptr);
    auto* area = dynamic_cast<RocksStagingArea*>(staging);
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
  absl::Status Backup(const std::string& dir) override { return core_->Backup(dir); }
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
  const std::shared_ptr<RocksCore> core_;
};

rocksdb::DBOptions MakeDbOptions() {
  rocksdb::DBOptions o;
  o.create_if_missing = true;
  o.create_missing_column_families = true;
  o.max_background_jobs = 2;
  // Spread the write-back of flushed files instead of one long fsync at the end.
  o.bytes_per_sync = 4 << 20;
  // Chunk writes bypass the WAL; the WAL carries only metadata and small chunks.
  o.max_total_wal_size = 64 << 20;
  o.keep_log_file_num = 4;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  return o;
}

rocksdb::ColumnFamilyOptions MakeMetaOptions() {
  rocksdb::ColumnFamilyOptions o;
  o.write_buffer_size = 16 << 20;
  return o;
}

rocksdb::ColumnFamilyOptions MakeChunkOptions() {
  rocksdb::ColumnFamilyOptions o;
  // Chunk bytes pass through the memtable on their way to blob files: two 32 MiB
  // buffers keep the server's RSS under 256 MiB while pushing (bench/memory_bench).
  o.write_buffer_size = 32 << 20;
  o.max_write_buffer_number = 2;
  o.compression = rocksdb::kNoCompression;  // checkpoint floats do not compress
  o.enable_blob_files = true;
  o.min_blob_size = 1024;
  o.blob_file_size = 256 << 20;
  o.blob_compression_type = rocksdb::kNoCompression;
  // No blob GC: it relocates live chunks of the oldest blob files in every compaction
  // (measured: CRC and copy of the same bytes again, throughput halved). A blob file
  // is still dropped once every chunk in it is deleted, which is how whole
  // checkpoints age out.
  o.enable_blob_garbage_collection = false;
  return o;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const RocksDbStoreOptions& options) {
  namespace fs = std::filesystem;
  if (options.path.empty()) {
    return absl::InvalidArgumentError("the store needs a data dir path; none was given");
  }
  std::error_code ec;
  fs::create_directories(options.path, ec);
  if (ec || !fs::is_directory(options.path, ec)) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot use '", options.path,
                     "' as the data dir: ", ec ? ec.message() : "not a directory"));
  }
  const bool fresh = fs::is_empty(options.path, ec);
  if (!fresh) {
    if (!fs::exists(fs::path(options.path) / "CURRENT", ec)) {
      return absl::FailedPreconditionError(
          absl::StrCat("'", options.path,
                       "' is not empty and is not an mgreg store; give an empty or "
                       "new directory"));
    }
    std::vector<std::string> families;
    RETURN_IF_ERROR(FromRocks(
        rocksdb::DB::ListColumnFamilies(MakeDbOptions(), options.path, &families),
        "opening the store"));
    for (const char* want : {kMetaFamily, kChunkFamily}) {
      if (std::find(families.begin(), families.end(), want) == families.end()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "'", options.path, "' holds a RocksDB database that is not an mgreg store"));
      }
    }
  }

  std::vector<rocksdb::ColumnFamilyDescriptor> cfs = {
      {rocksdb::kDefaultColumnFamilyName, rocksdb::ColumnFamilyOptions()},
      {kMetaFamily, MakeMetaOptions()},
      {kChunkFamily, MakeChunkOptions()},
  };
  std::vector<rocksdb::ColumnFamilyHandle*> handles;
  rocksdb::DB* raw = nullptr;
  rocksdb::DBOptions db_options = MakeDbOptions();
  if (options.env != nullptr) db_options.env = options.env.get();
  RETURN_IF_ERROR(
      FromRocks(rocksdb::DB::Open(db_options, options.path, cfs, &handles, &raw),
                absl::StrCat("opening the store in '", options.path, "'")));
  auto core =
      std::make_shared<RocksCore>(options.env, std::unique_ptr<rocksdb::DB>(raw),
                                  std::move(handles), options.sync_commits,
                                  options.event_window, options.min_free_bytes);
  RETURN_IF_ERROR(core->Load(fresh));
  return std::unique_ptr<Store>(std::make_unique<RocksDbStore>(std::move(core)));
}

}  // namespace mgreg
