// The storage backend: the narrow interface under the Store. A backend keeps records
// and chunk bytes, reads them, and applies a Transaction atomically. It has no rules:
// what a commit, a delete, an alias or a retention decision changes, and every error the
// Store contract (storage/store.h) names, are decided once, by the Planner
// (storage/planner.h), from a RecordReader view of the current records. The generic
// Store (storage/backed_store.h) strings them together:
//
//   backend->ReadyToWrite();                 // outside any lock
//   lock the store's write mutex;            // writes are serialized per process
//   txn = planner.PlanX(*backend, ..., now); // reads only; returns the contract's errors
//   result = backend->Apply(txn, area);      // one atomic write; idempotent
//   if (result.stale) plan again;            // another process wrote first (RADOS)
//
// A Transaction holds ABSOLUTE new values (the record after, the refcount after, the
// counters after, the events with their revisions), never increments, so that:
//  - applying it is idempotent: applying the same transaction twice leaves the store as
//    applying it once (tests/storage/backend_conformance_test.cc checks it);
//  - an engine whose only atomic write is a guarded compound operation on ONE object can
//    implement Apply without cross-object transactions: it writes the transaction into
//    a journal object under a guard (Head::version), then applies it object by object,
//    each apply guarded so that a late or repeated one changes nothing, and any process
//    can roll a dead writer's transaction forward (../shared/design/RADOS_STORE.md).
// RocksDB applies a transaction as one synced WriteBatch; memory, under its lock.
//
// Thread safety: every method of RecordReader and Backend may be called concurrently,
// except that the store never runs two Apply calls of one backend at once (in one
// process). BackendStagingArea is externally synchronized: its owner calls one method
// at a time (the Store's staging area wrapper holds a mutex around each call).
//
// Names: a chunk is named by its raw 32-byte SHA-256 (`raw`), a blob by the lower-case
// hex SHA-256 of the whole file (`hex`).
#ifndef MGREG_STORAGE_BACKEND_H_
#define MGREG_STORAGE_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/functional/function_ref.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg {

class SessionBackend;  // storage/session_backend.h

// The store-wide figures a transaction moves, as absolute values.
struct Head {
  // The store's revision (= the newest event's).
  int64_t revision = 0;
  // Revision of the oldest retained event; revision + 1 while none is retained.
  int64_t oldest_event = 1;
  // Models with at least one step, committed steps, blob records, chunks referenced by
  // committed blobs and their total size (StoreStats has the same meanings).
  int64_t models = 0;
  int64_t checkpoints = 0;
  int64_t blobs = 0;
  int64_t chunks = 0;
  int64_t chunk_bytes = 0;
  // Opaque to the planner. A backend whose Apply can race a writer in another process
  // sets it to what guards its journal (RADOS: the catalog's `seq`) and refuses a
  // transaction planned on another version (ApplyResult::stale). 0 for backends whose
  // writes are serialized by the store's mutex alone.
  uint64_t version = 0;
};

// A blob record and its reference count (files of committed steps naming it).
struct BlobEntry {
  storage::BlobRecord record;
  int64_t refs = 0;
};

// A chunk's reference count (blob slots of committed blobs listing it) and its size.
// refs == 0: no committed blob lists it (its bytes may still be staged).
struct ChunkEntry {
  int64_t refs = 0;
  uint32_t size = 0;
};

// One blob record's state after a transaction.
struct BlobWrite {
  std::string hex;
  // Absolute. 0: the blob record is removed (no committed file names it any more).
  int64_t refs_after = 0;
  // Set when the transaction creates the blob: the record to write. Unset: the record
  // is already stored and stays as it is.
  std::optional<storage::BlobRecord> created;
};

// One chunk's state after a transaction.
struct ChunkWrite {
  std::string raw;
  uint32_t size = 0;
  // Absolute. > 0: the chunk is committed (stored for good; staged marks go). 0: no
  // committed blob lists it any more: the backend deletes its bytes unless an open
  // staging area holds it (then it is staged again), deciding this at apply time so a
  // racing hold wins; the bytes it deletes count in ApplyResult::freed_bytes.
  int64_t refs_after = 0;
  // The committing staging area's hold on this chunk ends with the transaction (the
  // chunks of the blobs a commit creates): Apply releases it.
  bool release_hold = false;
};

// Everything one mutation changes, decided by the planner. Every mutation touches at
// most one model.
struct Transaction {
  // What the store was doing, in the caller's terms, for error messages ("committing
  // step 3 of model 'm'").
  std::string what;
  // The view it was planned on, and the figures after it.
  Head head_before;
  Head head_after;
  // The model it changes; empty for none.
  std::string model;
  // The model's record after (latest_step and checkpoint_count included); nullopt: the
  // record is removed (the model has neither steps nor settings any more).
  std::optional<storage::ModelRecord> model_after;
  // The record of the model's highest step after the transaction; nullopt if it has no
  // step. What GetLatest serves.
  std::optional<storage::CheckpointRecord> latest_after;
  // Step records written whole, and steps removed.
  std::vector<storage::CheckpointRecord> put_checkpoints;
  std::vector<int64_t> removed_steps;
  std::vector<BlobWrite> blobs;
  std::vector<ChunkWrite> chunks;
  // Appended events, stamped with consecutive revisions head_before.revision + 1 ..
  // head_after.revision. Events with a revision below head_after.oldest_event are
  // trimmed by the same write.
  std::vector<storage::Event> events;
};

struct ApplyResult {
  // Chunk bytes this apply deleted (0 when it was applied before).
  int64_t freed_bytes = 0;
  // Nothing was applied: the store moved past head_before.version (another process
  // wrote). The store plans again on a fresh view.
  bool stale = false;
};

// What the planner reads. Each call reads one consistent moment; the planner runs under
// the store's write mutex, so in one process nothing it reads changes while it plans.
class RecordReader {
 public:
  virtual ~RecordReader() = default;

  virtual absl::StatusOr<Head> ReadHead() = 0;
  // The model's record; nullopt if the store holds neither steps nor settings for it.
  virtual absl::StatusOr<std::optional<storage::ModelRecord>> ReadModel(
      absl::string_view model) = 0;
  // The record of the model's highest step; nullopt if it has none.
  virtual absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadLatest(
      absl::string_view model) = 0;
  // Calls `visit` with the record of the model's highest step and the model's record,
  // as ReadLatest and ReadModel give them, and returns true; false (`visit` not called)
  // if the model has no step. The references are valid during the call only. This
  // default reads both by copy; a backend holding them in memory lends them instead.
  virtual absl::StatusOr<bool> VisitLatest(
      absl::string_view model,
      absl::FunctionRef<void(const storage::CheckpointRecord& latest,
                             const storage::ModelRecord& record)>
          visit) {
    absl::StatusOr<std::optional<storage::CheckpointRecord>> latest = ReadLatest(model);
    if (!latest.ok()) return latest.status();
    if (!latest->has_value()) return false;
    absl::StatusOr<std::optional<storage::ModelRecord>> record = ReadModel(model);
    if (!record.ok()) return record.status();
    visit(**latest, record->has_value() ? **record : storage::ModelRecord());
    return true;
  }
  // nullopt if the step does not exist.
  virtual absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpoint(
      absl::string_view model, int64_t step) = 0;
  // The model's highest step below `below`; nullopt if there is none.
  virtual absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view model, int64_t below) = 0;
  // nullopt if no committed blob has that digest.
  virtual absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) = 0;
  // refs == 0 (size 0) for a chunk no committed blob lists.
  virtual absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) = 0;
};

// Uncommitted chunks of one upload, as the engine keeps them. Destroying it releases
// its holds: a chunk no committed blob lists and no other area holds is deleted.
// Arguments were validated by the store (ValidateChunkData / ValidateChunkRef).
class BackendStagingArea {
 public:
  virtual ~BackendStagingArea() = default;

  // Stores `data` as chunk `ref` (unless its bytes are already stored) and holds it.
  // Returns RESOURCE_EXHAUSTED when there is no room for new bytes.
  virtual absl::Status PutChunk(const storage::ChunkRef& ref, absl::string_view data) = 0;
  // Holds a chunk that is committed or staged by another area. Returns false (and holds
  // nothing) if the store has no such chunk.
  virtual absl::StatusOr<bool> HoldExistingChunk(const storage::ChunkRef& ref) = 0;
  // True if this area holds the chunk.
  virtual bool Holds(absl::string_view raw) const = 0;
  // Called before planning a commit through this area that creates `new_blobs`, with
  // no store lock held: makes the chunks they list that this area holds durable (the
  // RocksDB backend flushes chunks written without its WAL). Returns DATA_LOSS if one
  // of them was lost (nothing is committed then).
  virtual absl::Status PrepareCommit(
      const std::vector<const storage::BlobRecord*>& new_blobs) = 0;
  // StagingArea::MakeDurable, in two parts: this, called with the area's owner holding
  // it, returns what makes its chunks durable; the owner runs that without holding the
  // area. Null if they are durable already.
  virtual std::function<absl::Status()> DurabilityTask() { return nullptr; }
};

// What a backend reports to Store::Check (storage/consistency_check.h implements it).
// Everything passed to one sink comes from one consistent view.
class RecordSink {
 public:
  virtual ~RecordSink() = default;
  virtual void SetRevision(int64_t revision) = 0;
  virtual void AddModel(const storage::ModelRecord& model) = 0;
  // `key_model`, `key_step`: where the record is stored.
  virtual void AddCheckpoint(absl::string_view key_model, int64_t key_step,
                             const storage::CheckpointRecord& record) = 0;
  virtual void AddBlob(const storage::BlobRecord& blob, int64_t stored_refs) = 0;
  // A blob refcount stored without its blob record (engines that keep them apart).
  virtual void AddOrphanBlobRefcount(absl::string_view hex, int64_t refs) = 0;
  virtual void AddChunkRefcount(absl::string_view raw, int64_t refs, uint32_t size) = 0;
  virtual void AddChunkBytes(absl::string_view raw, absl::string_view bytes) = 0;
  // The chunk's bytes are stored (`size` of them); a backend that reads and hashes the
  // bytes after the view (RADOS: outside its freeze) says so first, and calls
  // AddChunkBytes later unless a write after the view freed them.
  virtual void AddChunkSize(absl::string_view raw, uint64_t size) = 0;
  // A chunk an open staging area holds.
  virtual void AddHeld(absl::string_view raw) = 0;
  // A chunk the engine marks as staged (uncommitted) in its records.
  virtual void AddStagedMark(absl::string_view raw) = 0;
  virtual void AddEvent(const storage::Event& event) = 0;
  // What the backend serves from memory (GetLatest, ListModels, GetStats), to compare
  // with the stored records; backends that serve straight from them need not call it.
  virtual void AddServedHead(const Head& head) = 0;
  virtual void AddServedModel(const storage::ModelRecord& model,
                              const std::optional<storage::CheckpointRecord>& latest) = 0;
  // A record the backend could not decode, in words.
  virtual void AddProblem(std::string problem) = 0;
};

// A storage engine. Errors: the common ones of store.h (RESOURCE_EXHAUSTED disk full,
// UNAVAILABLE failed store, INTERNAL corrupt record, DATA_LOSS bad bytes), with the
// engine's detail; never the contract's NOT_FOUND/ALREADY_EXISTS/... (absent things
// are nullopt, false or empty).
class Backend : public RecordReader {
 public:
  virtual std::unique_ptr<BackendStagingArea> NewStagingArea() = 0;
  // Whether its writes cross a network (Store::remote).
  virtual bool remote() const = 0;

  // ---- Upload sessions shared by several processes. ---------------------------------
  // The engine's session records; nullptr for an engine one process owns (the store
  // keeps its sessions in that process's memory, NewLocalSessionStore).
  virtual std::shared_ptr<SessionBackend> session_backend() { return nullptr; }
  // The staging area of upload session `id` (an engine with session_backend() only):
  // its holds are named after the session, so any process may add to it and commit
  // through it; destroying the object releases nothing (SessionBackend::DropSession
  // does).
  virtual std::unique_ptr<BackendStagingArea> NewSessionArea(absl::string_view id) {
    (void)id;
    return nullptr;
  }

  // Called before planning every mutation, with no lock held. OK if writes can go on;
  // else the error that stops them (a backend recovering from a full disk retries
  // here).
  virtual absl::Status ReadyToWrite() = 0;

  // Applies `txn` atomically and durably: after it returns OK every change is visible
  // to every read, and survives a crash; on error none is. Idempotent. `committing` is
  // the staging area of a commit (nullptr otherwise); Apply ends its holds of the
  // chunks marked release_hold. Calls the event listener once per event of `txn`, in
  // order, once the write is visible and before returning.
  virtual absl::StatusOr<ApplyResult> Apply(const Transaction& txn,
                                            BackendStagingArea* committing) = 0;

  // Set once before use (nullptr clears); see Store::SetEventListener. A backend that
  // learns of other processes' writes calls it for theirs too, in revision order.
  virtual void SetEventListener(std::function<void(const storage::Event&)> listener) = 0;

  // ---- Reads the Store serves. -------------------------------------------------------
  // Up to `limit` (<= 0: all) records of models with at least one step, in bytewise
  // name order, after `start_after`.
  virtual absl::StatusOr<std::vector<storage::ModelRecord>> ListModels(
      absl::string_view start_after, int limit) = 0;
  // Up to `limit` (<= 0: all) steps of `model` from step `first` on, ascending.
  virtual absl::StatusOr<std::vector<storage::CheckpointRecord>> ListCheckpoints(
      absl::string_view model, int64_t first, int limit) = 0;
  // The stored bytes of a chunk (committed or staged); nullopt if there are none.
  virtual absl::StatusOr<std::optional<std::string>> ReadChunkBytes(
      absl::string_view raw) = 0;
  // True if the chunk is committed or staged (its bytes fully written).
  virtual absl::StatusOr<bool> HasChunk(absl::string_view raw) = 0;
  // Up to `limit` (<= 0: all) retained events with revision > after_revision,
  // ascending and consecutive, with the oldest retained revision (0 if none) and the
  // current revision. If events above after_revision were trimmed, the first returned
  // event is the oldest retained one (the store turns that into OUT_OF_RANGE).
  virtual absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) = 0;
  // Fills staged_chunks and the engine figures (blob_file_bytes, ...) of `stats`.
  virtual absl::Status EngineStats(StoreStats* stats) = 0;
  // Feeds one consistent view of everything stored into `sink` (Store::Check).
  virtual absl::Status Scan(RecordSink* sink) = 0;
  // Store::Backup, with its errors (FAILED_PRECONDITION if the engine cannot).
  virtual absl::Status Backup(const std::string& dir) = 0;
};

}  // namespace mgreg

#endif  // MGREG_STORAGE_BACKEND_H_
