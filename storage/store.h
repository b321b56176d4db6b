// The Store: where the registry keeps checkpoints, their file contents and the
// per-model summaries. This header is the contract every implementation meets
// (RocksDB, in-memory; a distributed one later). tests/storage/store_conformance_test.cc
// checks it against each of them.
//
// Data model (DESIGN §4):
//  - a chunk is up to a few MiB of bytes, content-addressed by its SHA-256;
//  - a blob is the content of one file, named by the file's SHA-256: an ordered list of
//    chunks. The same file content pushed at many steps is stored once;
//  - a checkpoint (model, step) lists its files, each naming a blob.
// Blobs are reference-counted by the checkpoint files naming them, chunks by the
// blobs listing them. Deleting a checkpoint frees exactly what nothing else uses.
//
// Writing a step: the caller opens a StagingArea, puts the chunks of every new file
// into it, then calls Commit with the checkpoint record and the blob records of the
// new files. Commit is atomic and durable: after it returns OK the step, its blobs and
// their chunks survive a crash; if it fails or the process dies before it returns,
// nothing of the step is visible. Chunks staged but never committed are deleted when
// their StagingArea is destroyed, or, after a crash, when the store is next opened.
//
// Revision and events. The store has one revision, an int64 that starts at 0 and
// never goes back (not across restarts either). Every change a watcher cares about (a
// commit, a delete, an alias set or removed) bumps it by one and appends one Event
// stamped with the new revision, in the same durable write as the change, so the
// revision is always the revision of the newest event. Pins and retention settings
// change no revision.
//
// Thread safety: every method of Store and StagingArea may be called concurrently from
// any thread. Writes (commits, deletes, alias, pin, retention changes) are serialized
// inside the store.
//
// Errors common to every method: RESOURCE_EXHAUSTED when the disk is full,
// UNAVAILABLE when the store has failed and must be reopened, INTERNAL on a corrupt
// record, DATA_LOSS when stored bytes fail their checksum.
#ifndef MGREG_STORAGE_STORE_H_
#define MGREG_STORAGE_STORE_H_

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

namespace mgreg {

class SessionStore;  // storage/session_store.h

// Chunks are at most this big; the service cuts files at fixed multiples of it.
inline constexpr size_t kMaxChunkBytes = 4u << 20;

// Uncommitted chunks of one upload. Destroying it releases them: chunks no committed
// blob references (and no other StagingArea holds) are deleted.
class StagingArea {
 public:
  virtual ~StagingArea() = default;

  // Stores `data` as the chunk `ref` (ref.sha256 must be the SHA-256 of `data`, and
  // ref.size its size; the caller computed it) and holds it until this area is
  // destroyed or a Commit through it references it. If the chunk already exists its
  // bytes are not written again.
  // Returns INVALID_ARGUMENT if data is larger than kMaxChunkBytes or ref.size differs.
  virtual absl::Status PutChunk(const storage::ChunkRef& ref, absl::string_view data) = 0;

  // Holds an existing chunk (content the store already has) without sending its bytes.
  // Returns NOT_FOUND if the store has no such chunk; INVALID_ARGUMENT if its stored
  // size is not ref.size.
  virtual absl::Status HoldExistingChunk(const storage::ChunkRef& ref) = 0;

  // Makes the chunks put so far durable, waiting for the disk, so that a later Commit
  // through this area only writes records (the RocksDB store flushes the chunks it
  // wrote without its WAL). Calls on the area from other threads go on meanwhile.
  // Optional: Commit makes them durable itself; the server calls this as each file's
  // last byte arrives. Returns the store's write error (the chunks stay staged).
  virtual absl::Status MakeDurable() { return absl::OkStatus(); }
};

// What Commit writes.
struct CommitRequest {
  // model, step, basename, files (sorted by name), metadata, graph_sha256.
  // commit_time_micros, revision, pinned and preserved are set by the store (a new
  // step is neither pinned nor preserved).
  storage::CheckpointRecord record;
  // Blob records for those files whose sha256 the store does not hold yet. Their
  // chunks must have been put into (or held by) the StagingArea passed to Commit.
  std::vector<storage::BlobRecord> new_blobs;
  // Replace the step if it exists with different files. Aliases naming the step keep
  // naming it, and the step keeps its pinned and preserved marks.
  bool overwrite = false;
  // With overwrite: also replace a step that is pinned or named by an alias.
  bool force = false;
};

struct CommitResult {
  // The committed record (or, if `unchanged`, the one that was already there).
  storage::CheckpointRecord record;
  // True if the step already existed with the same basename and files: nothing was
  // written (idempotent re-push).
  bool unchanged = false;
};

// Figures for tests, metrics and `admin check`.
struct StoreStats {
  int64_t models = 0;
  int64_t checkpoints = 0;
  int64_t blobs = 0;
  // Chunks referenced by committed blobs, and their total size: the bytes the store
  // really keeps for committed data (after deduplication).
  int64_t chunks = 0;
  int64_t chunk_bytes = 0;
  // Chunks held only by open StagingAreas.
  int64_t staged_chunks = 0;
  // The store's revision: the revision of the newest event.
  int64_t revision = 0;
  // Backend figures for operators; 0 where the backend has no such thing (in memory).
  // Bytes of RocksDB blob files, bytes compaction estimates it still has to rewrite,
  // bytes of live SST files.
  int64_t blob_file_bytes = 0;
  int64_t pending_compaction_bytes = 0;
  int64_t live_sst_bytes = 0;
};

// What Store::Check found: the figures it counted and every broken invariant, in
// words ("blob 3fa1... has refcount 2 but 3 files name it"). Empty `problems` means the
// store is consistent.
struct CheckReport {
  int64_t models = 0;       // model records (with steps or settings)
  int64_t checkpoints = 0;  // committed steps
  int64_t files = 0;        // files of committed steps (references to blobs)
  int64_t blobs = 0;
  int64_t chunks = 0;         // chunks with stored bytes
  int64_t chunk_bytes = 0;    // their total size
  int64_t staged_chunks = 0;  // chunks held only by open staging areas (not leaks)
  int64_t events = 0;         // retained events
  int64_t revision = 0;
  std::vector<std::string> problems;
  bool ok() const { return problems.empty(); }
};

// A page of the event log (Store::ReadEvents).
struct EventPage {
  std::vector<storage::Event> events;  // revision > after_revision, ascending
  int64_t oldest_revision = 0;         // oldest event still retained (0 if none yet)
  int64_t current_revision = 0;        // the store's revision when read
};

class Store {
 public:
  virtual ~Store() = default;

  // A new, empty staging area for one upload.
  virtual std::unique_ptr<StagingArea> NewStagingArea() = 0;
  // Whether a write may cross a network (RADOS) rather than stay in this machine's
  // memory or local database: then a staged chunk's write can take milliseconds or far
  // longer, work no gRPC callback thread may wait for. True unless a store says not.
  virtual bool remote() const { return true; }

  // The store's upload sessions (storage/session_store.h): in this process's memory
  // for the RocksDB and in-memory stores, in the pool for the RADOS store, where every
  // server sharing it sees them. Owned by the store.
  virtual SessionStore& sessions() = 0;

  // Makes request.record visible atomically, with new_blobs and the reference counts,
  // in one durable write. Stamps commit_time_micros (now) and revision (the store's
  // revision + 1), and appends a COMMITTED event (replaced=true when it overwrote the
  // step).
  // Returns the existing record with unchanged=true if the step exists with the same
  //   basename and files.
  // Returns ALREADY_EXISTS if the step exists with other files and !overwrite.
  // Returns FAILED_PRECONDITION if the step exists with other files, is pinned or named
  //   by an alias, and !force (naming the pin and the aliases).
  // Returns FAILED_PRECONDITION if a file names a blob that is neither stored nor in
  //   new_blobs, or a new blob lists a chunk that is neither stored nor staged in
  //   `staging`.
  // Returns INVALID_ARGUMENT if the record is malformed (no files, files not sorted or
  //   duplicated, a blob whose chunk sizes do not add up to its size).
  virtual absl::StatusOr<CommitResult> Commit(const CommitRequest& request,
                                              StagingArea* staging) = 0;

  // Deletes one step, its references, and the blobs and chunks nothing else uses, in
  // one durable write with a DELETED event. The model's latest step moves to the
  // highest remaining step; a model with no steps left disappears from ListModels (its
  // record stays if it has a retention policy, see GetModel). Returns the bytes freed.
  // Returns NOT_FOUND if the model or step does not exist.
  // Returns FAILED_PRECONDITION if an alias names the step, naming the alias.
  virtual absl::StatusOr<int64_t> DeleteCheckpoint(absl::string_view model,
                                                   int64_t step) = 0;

  // Returns NOT_FOUND if the model or step does not exist.
  virtual absl::StatusOr<storage::CheckpointRecord> GetCheckpoint(absl::string_view model,
                                                                  int64_t step) = 0;

  // The record of the model's highest step, served from memory.
  // Returns NOT_FOUND if the model has no committed step.
  virtual absl::StatusOr<storage::CheckpointRecord> GetLatest(
      absl::string_view model) = 0;
  // Calls `visit` with the record of the model's highest step and the model's record
  // (its aliases; an empty one if the model's record is gone), read at one moment; the
  // references are valid during the call only. What GetLatestCheckpoint answers from,
  // without copying either record where the backend holds them in memory. NOT_FOUND as
  // GetLatest (`visit` not called). `visit` must not call the store (it may run under
  // the backend's lock).
  virtual absl::Status VisitLatest(
      absl::string_view model,
      absl::FunctionRef<void(const storage::CheckpointRecord& latest,
                             const storage::ModelRecord& record)>
          visit) = 0;

  // Up to `limit` models with at least one step, in bytewise name order, starting
  // after `start_after` ("" = from the first).
  virtual absl::StatusOr<std::vector<storage::ModelRecord>> ListModels(
      absl::string_view start_after, int limit) = 0;

  // Up to `limit` steps of `model` in ascending order, starting after `start_after`
  // (nullopt = from the first).
  // Returns NOT_FOUND if the model has no committed step.
  virtual absl::StatusOr<std::vector<storage::CheckpointRecord>> ListCheckpoints(
      absl::string_view model, std::optional<int64_t> start_after, int limit) = 0;

  // The blob record for a whole-file SHA-256 (hex).
  // Returns NOT_FOUND if no committed blob has that digest.
  virtual absl::StatusOr<storage::BlobRecord> GetBlob(absl::string_view sha256_hex) = 0;

  // The bytes of a chunk. Returns NOT_FOUND if the store has no such chunk. The bytes
  // are not re-checked against the digest here: readers verify whole files by SHA-256
  // end to end (the restoring client does for every file).
  virtual absl::StatusOr<std::string> ReadChunk(const storage::ChunkRef& ref) = 0;

  // True if the store holds the chunk (committed or staged).
  virtual absl::StatusOr<bool> HasChunk(const storage::ChunkRef& ref) = 0;

  virtual absl::StatusOr<StoreStats> GetStats() = 0;

  // Verifies every invariant of the stored data against one consistent view, while the
  // store keeps serving (`mgreg admin check`): every file of a checkpoint names a
  // stored blob of its size; each blob's refcount equals the files naming it and its
  // chunk sizes add up to its size; each chunk's refcount equals the blob slots listing
  // it; every referenced chunk is stored with its size and its bytes match their
  // SHA-256; no stored chunk is unreferenced unless an open staging area holds it (a
  // leak otherwise); each model record's latest step and count match its steps; every
  // alias names an existing step; retained events have consecutive revisions ending at
  // the store's revision. Reads every chunk's bytes: it takes as long as reading the
  // whole store.
  // Returns the report; a broken invariant is a problem in it, not an error status.
  // Returns the common errors if the store cannot be read.
  virtual absl::StatusOr<CheckReport> Check() = 0;

  // Writes a consistent copy of the whole store into the new directory `dir` while the
  // store keeps serving; opening `dir` as a store yields every step committed before
  // the call (and maybe some committed during it).
  // Returns INVALID_ARGUMENT if dir is empty; FAILED_PRECONDITION if dir exists, its
  // parent does not, or the store cannot be backed up (an in-memory store).
  virtual absl::Status Backup(const std::string& dir) = 0;

  // ---- Events. ----------------------------------------------------------------------
  // Commit (unless `unchanged`), DeleteCheckpoint, SetAlias, RemoveAlias and every step
  // ApplyRetention deletes append one event each, stamped with the revision they bump,
  // in the same durable write. The store keeps the newest `event_window` events
  // (RocksDbStoreOptions::event_window / MemoryStoreOptions::event_window, default
  // 100000) and trims older ones in the same writes. The RocksDB store keeps them on
  // disk: after a restart a reader resuming from its last revision misses nothing that
  // is still within the window.

  // Up to `limit` events (<= 0: all) with revision > after_revision, ascending, with
  // the oldest retained and the current revision read at the same moment.
  // after_revision > the current revision is not an error (an empty page).
  // Returns OUT_OF_RANGE if some event after `after_revision` was already trimmed (or
  //   predates the event log), naming the oldest revision still available ("... resume
  //   from revision N or re-list").
  virtual absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) = 0;

  // Calls `listener` after each durable write that appended events, once per event, in
  // revision order, from the writing thread while writes are still serialized (so
  // calls never interleave or reorder). By then the write is visible to every read
  // method. Set once before use; the listener must be quick and must not call the
  // store's mutating methods (nor SetEventListener); it may call the read methods.
  // nullptr clears it.
  virtual void SetEventListener(std::function<void(const storage::Event&)> listener) = 0;

  // ---- Aliases: named pointers to steps of a model, kept in its ModelRecord. ---------

  // Points `alias` at `step` (creating or moving it; pointing it where it already
  // points counts as a move) and appends an ALIAS_SET event. Returns the new revision.
  // Returns NOT_FOUND if the model or step does not exist. (Name validation is the
  //   service's job.)
  virtual absl::StatusOr<int64_t> SetAlias(absl::string_view model,
                                           absl::string_view alias, int64_t step) = 0;

  // Removes `alias` and appends an ALIAS_REMOVED event naming the step it named.
  // Returns the new revision.
  // Returns NOT_FOUND if the model has no such alias.
  virtual absl::StatusOr<int64_t> RemoveAlias(absl::string_view model,
                                              absl::string_view alias) = 0;

  // ---- Pins and retention. -----------------------------------------------------------

  // Protects (or unprotects) a step from retention: sets CheckpointRecord.pinned. Does
  // not bump the revision and appends no event.
  // Returns NOT_FOUND if the model or step does not exist.
  virtual absl::Status SetPinned(absl::string_view model, int64_t step, bool pinned) = 0;

  // The model's record (latest step, count, retention, last_preserved_micros, aliases).
  // Returns NOT_FOUND if the store holds neither steps nor settings for the model.
  virtual absl::StatusOr<storage::ModelRecord> GetModel(absl::string_view model) = 0;

  // Sets the model's retention policy, creating its record if it has no steps yet (such
  // a model still does not appear in ListModels, which lists models with at least one
  // step; a model record with settings survives the deletion of its last step). When
  // the model had no policy before, last_preserved_micros is set to now. Does not bump
  // the revision. The store does not interpret the policy (see ApplyRetention).
  // Returns INVALID_ARGUMENT if the model name is malformed (as Commit would).
  virtual absl::Status SetRetention(absl::string_view model,
                                    const storage::RetentionPolicy& policy) = 0;

  // One retention decision, in one durable write: deletes `delete_steps` exactly as
  // DeleteCheckpoint would (refcounts, latest, one DELETED event each, in ascending step
  // order), marks `preserve_steps` preserved=true, and sets the model's
  // last_preserved_micros. Steps that no longer exist are skipped; a step that is
  // pinned, aliased or also in `preserve_steps` is never deleted (skipped silently).
  // Returns the bytes freed.
  // Returns NOT_FOUND if the store holds neither steps nor settings for the model.
  virtual absl::StatusOr<int64_t> ApplyRetention(
      absl::string_view model, const std::vector<int64_t>& delete_steps,
      const std::vector<int64_t>& preserve_steps, int64_t last_preserved_micros) = 0;
};

// Opens (creating if needed) a RocksDB-backed store in directory `path`.
struct RocksDbStoreOptions {
  std::string path;
  // Sync commits to disk (fsync). Only tests that do not test durability turn it off.
  bool sync_commits = true;
  // How many of the newest events to keep (at least 1; smaller values count as 1).
  // Reopening with a smaller window trims the excess at open.
  int64_t event_window = 100000;
  // New chunk bytes are refused (RESOURCE_EXHAUSTED) while the data dir's file system
  // has less than this free, so that RocksDB's flushes, compactions and WAL always
  // find room; <= 0: no check. Commits of staged bytes, deletes and reads go on.
  int64_t min_free_bytes = 256ll << 20;
};
// Returns INVALID_ARGUMENT if path is empty, FAILED_PRECONDITION if the directory is in
// use by another process (RocksDB's LOCK) or is not an mgreg store.
absl::StatusOr<std::unique_ptr<Store>> OpenRocksDbStore(
    const RocksDbStoreOptions& options);

// A store that keeps everything in memory; for tests and ephemeral servers.
struct MemoryStoreOptions {
  // How many of the newest events to keep (at least 1; smaller values count as 1).
  int64_t event_window = 100000;
};
std::unique_ptr<Store> NewMemoryStore(const MemoryStoreOptions& options);
// NewMemoryStore with default options.
std::unique_ptr<Store> NewMemoryStore();

}  // namespace mgreg

#endif  // MGREG_STORAGE_STORE_H_
