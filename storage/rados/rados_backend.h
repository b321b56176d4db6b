// The RADOS backend (storage/backend.h) after ../shared/design/RADOS_STORE.md. Private
// to storage/rados/; OpenRadosStore (rados_store.h) is the way in.
//
//   catalog   xattrs format, seq (transactions decided), applied (transactions done),
//             frozen (0, or the RADOS instance id of a process checking the registry:
//             no transaction is decided while it is set);
//             omap head -> RadosHead, t -> the decided, not yet applied RadosTxn,
//             e.<rev:020> -> Event, d.<model> -> ModelRecord, l.<model> -> latest step,
//             z.<seq:020>.<hex> -> unix seconds: blob tombstones, for the sweep
//   m.<model> xattr lsn; omap s.<step:020> -> CheckpointRecord, r.<(max-step):020> ->
//             "" (the first r. key after a step's is the next lower step)
//   b.<hex>   data BlobRecord; xattrs refs, lsn (refs 0: a tombstone keeping lsn)
//   c.<hex>   data the chunk bytes; xattrs refs, lsn, size, h.<holder> per staging hold
//   replicas  omap <instance> -> "host pid": the processes (librados instance ids) that
//             opened the store; each watches the catalog while it lives
//   holds.<instance>  omap h.<instance>.<area>.<hex> -> "": every hold that process put
//             on a chunk, listed before the hold is put, so that the GC can end a dead
//             process's holds without listing chunks
//   gc        the GC lock (one collector at a time)
//   tx.<instance>.<n>  a decided transaction too big to keep inline (over
//             inline_txn_bytes): the catalog's t then names it; removed once published.
//             One no catalog names is garbage (a writer died before deciding or after
//             publishing): the GC's pool scan removes it after dead_after
//   u.<id>    an upload session (rados_sessions.cc): omap s -> UploadSessionRecord,
//             f.<name> -> UploadFileRecord; xattr active (unix micros of the last write).
//             Every write is guarded by the object's version.
//   sessions  omap <id> -> "": every session created and not yet dropped (the GC's list)
//   holds.u.<id>  as holds.<instance>, for the holds h.u.<id> of session <id>'s area
//
// Apply: one guarded op on the catalog decides a transaction (seq == its version and no
// other pending: else it is stale), storing it whole; then chunks and blobs going up,
// the model's steps, blobs and chunks going down, each op guarded by the object's lsn
// (an apply of transaction S runs only where lsn <= S, so a repeated one changes the
// same values and a late one nothing); then one op on the catalog publishes the head,
// events and model records and marks it applied. ReadHead rolls a pending transaction
// forward (its writer may have died), so the planner always sees applied state.
//
// The code, by concern:
//   rados_backend.cc  connecting, the format marker, reading records
//   rados_txn.cc      deciding, applying, publishing and rolling forward transactions
//   rados_chunks.cc   chunk bytes and staging holds
//   rados_gc.cc       liveness, ending dead processes' holds, sweeping tombstones,
//                     dropping expired upload sessions
//   rados_sessions.cc upload sessions (storage/session_backend.h)
//   rados_events.cc   the event log, the tailer and watch/notify
//   rados_cache.cc    model records and latest steps served from memory
//   rados_check.cc    the scan behind Store::Check, under a freeze of the writers
#ifndef MGREG_STORAGE_RADOS_RADOS_BACKEND_H_
#define MGREG_STORAGE_RADOS_RADOS_BACKEND_H_

#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <rados/librados.hpp>
#include <random>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/status_macros.h"
#include "mgreg/storage/rados_records.pb.h"
#include "storage/backend.h"
#include "storage/rados/rados_codec.h"
#include "storage/rados/rados_store.h"
#include "storage/session_backend.h"

namespace mgreg::rados {

class RadosBackend;

// One upload's holds: xattr `hold_` on every chunk it put or held, each listed in the
// holds object `holds_oid_` first: the process's (h.<instance>.<area>, released when
// the area is destroyed or, after the process died, by the GC) or the upload session's
// (h.u.<id>, released when the session is dropped, by whichever process).
class RadosArea : public BackendStagingArea {
 public:
  RadosArea(std::shared_ptr<RadosBackend> backend, std::string hold,
            std::string holds_oid, uint64_t watch_epoch, bool session)
      : backend_(std::move(backend)),
        hold_(std::move(hold)),
        holds_oid_(std::move(holds_oid)),
        watch_epoch_(watch_epoch),
        session_(session) {}
  ~RadosArea() override;

  absl::Status PutChunk(const storage::ChunkRef& ref, absl::string_view data) override;
  absl::StatusOr<bool> HoldExistingChunk(const storage::ChunkRef& ref) override;
  bool Holds(absl::string_view raw) const override { return held_.contains(raw); }
  // PutChunk returned once the OSD had the bytes. If this process's watch broke since
  // the area opened, other processes may have taken it for dead and ended its holds:
  // the chunks the commit needs are held again (ABORTED if one is gone). A session's
  // area holds again (idempotently) every chunk the commit needs that this object did
  // not put: other processes put them under the same hold name.
  absl::Status PrepareCommit(
      const std::vector<const storage::BlobRecord*>& blobs) override;
  const std::string& hold() const { return hold_; }
  // The commit applying through this area ended its hold on `raw`.
  void Forget(const std::string& raw);

 private:
  // Lists the hold on `raw` in the process's holds object, once.
  absl::Status List(const std::string& raw);

  const std::shared_ptr<RadosBackend> backend_;
  const std::string hold_;
  const std::string holds_oid_;
  uint64_t watch_epoch_;
  const bool session_;
  absl::flat_hash_set<std::string> held_;
  // Chunks whose hold by this area is listed in the holds object.
  absl::flat_hash_set<std::string> listed_;
};

class RadosBackend : public Backend,
                     public SessionBackend,
                     public std::enable_shared_from_this<RadosBackend> {
 public:
  explicit RadosBackend(const RadosStoreOptions& o);
  ~RadosBackend() override;

  // Connects, opens the pool and namespace, checks (or writes) the format marker, and
  // starts the tailer.
  absl::Status Open(const RadosStoreOptions& o);

  // An error of a RADOS operation `what` on `oid`, for the caller.
  absl::Status Error(int r, absl::string_view what, absl::string_view oid) const {
    std::string msg =
        absl::StrCat(what, " (object ", oid, " in ", where_, "): ", std::strerror(-r));
    if (r == -ENOSPC || r == -EDQUOT) {
      return absl::ResourceExhaustedError(absl::StrCat(msg, ": the pool is full"));
    }
    return absl::UnavailableError(msg);
  }

  // ---- Staging, for RadosArea (rados_chunks.cc). ----
  std::string NewHold() {
    return absl::StrCat("h.", rados_.get_instance_id(), ".", next_area_.fetch_add(1));
  }
  void Track(const std::string& raw, int delta);
  // Lists holds in a holds object (before they are put), or removes them from it (once
  // they are gone).
  absl::Status ListHolds(const std::string& holds_oid, const std::string& hold,
                         const std::vector<std::string>& raws);
  absl::Status UnlistHolds(const std::string& holds_oid, const std::string& hold,
                           const std::vector<std::string>& raws);
  absl::Status Put(const std::string& hold, const storage::ChunkRef& ref,
                   absl::string_view data);
  // Holds a chunk that is referenced or held; false if it is neither (or gone).
  absl::StatusOr<bool> Hold(const std::string& hold, const std::string& raw);
  // Ends `hold` on `raw`; removes the chunk if nothing references or holds it.
  absl::Status Release(const std::string& hold, const std::string& raw);
  // Changes each time this process's watch on the catalog breaks or is set up again.
  uint64_t watch_epoch() const { return watch_epoch_.load(); }

  // ---- Backend. ----
  std::unique_ptr<BackendStagingArea> NewStagingArea() override {
    return std::make_unique<RadosArea>(shared_from_this(), NewHold(), HoldsObject(),
                                       watch_epoch(), /*session=*/false);
  }
  bool remote() const override { return true; }
  std::shared_ptr<SessionBackend> session_backend() override {
    return shared_from_this();
  }
  std::unique_ptr<BackendStagingArea> NewSessionArea(absl::string_view id) override {
    return std::make_unique<RadosArea>(shared_from_this(), absl::StrCat("h.u.", id),
                                       absl::StrCat("holds.u.", id), watch_epoch(),
                                       /*session=*/true);
  }

  // ---- SessionBackend (rados_sessions.cc). ----
  absl::StatusOr<bool> CreateSession(const UploadSessionState& state) override;
  absl::StatusOr<std::optional<Snapshot>> ReadSession(absl::string_view id) override;
  absl::StatusOr<bool> WriteSession(absl::string_view id, uint64_t version,
                                    const storage::UploadSessionRecord* session,
                                    const storage::UploadFileRecord* file,
                                    int64_t now_micros) override;
  absl::Status DropSession(absl::string_view id) override;
  absl::StatusOr<std::vector<storage::UploadSessionRecord>> ListSessions() override;
  absl::Status ReadyToWrite() override { return absl::OkStatus(); }
  absl::StatusOr<Head> ReadHead() override;
  // Served from this process's cache of the catalog (rados_cache.cc).
  absl::StatusOr<std::optional<storage::ModelRecord>> ReadModel(
      absl::string_view model) override {
    return ReadCached<storage::ModelRecord>(absl::StrCat("d.", model));
  }
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadLatest(
      absl::string_view model) override {
    return ReadCached<storage::CheckpointRecord>(absl::StrCat("l.", model));
  }
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpoint(
      absl::string_view model, int64_t step) override;
  absl::StatusOr<std::optional<storage::CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view model, int64_t below) override;
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override;
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override;

  absl::StatusOr<ApplyResult> Apply(const Transaction& txn,
                                    BackendStagingArea* committing) override;
  void SetEventListener(std::function<void(const storage::Event&)> listener) override {
    absl::MutexLock lock(&deliver_mu_);
    listener_ = std::move(listener);
  }

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
  absl::Status Backup(const std::string&) override {
    return absl::FailedPreconditionError(
        absl::StrCat("the RADOS store cannot be backed up by mgreg: back up ", where_,
                     " with Ceph's tools (rados export)"));
  }

 private:
  struct Catalog {
    Head head;
    std::optional<storage::rados::RadosTxn> pending;
  };
  // Other processes' writes: each writer notifies the catalog's watchers after it
  // publishes; this wakes the tailer.
  class CatalogWatch : public librados::WatchCtx2 {
   public:
    explicit CatalogWatch(RadosBackend* backend) : backend_(backend) {}
    void handle_notify(uint64_t notify_id, uint64_t cookie, uint64_t,
                       bufferlist&) override;
    void handle_error(uint64_t, int) override;

   private:
    RadosBackend* const backend_;
  };
  // How long a writer waits for the other processes to take its notify.
  static constexpr uint64_t kNotifyTimeoutMs = 250;
  // The catalog key naming the process whose turn it is to decide (see AfterLostRace).
  static constexpr char kTurn[] = "turn";
  static constexpr int kTurnAfterLosses = 2;
  // A process that keeps the turn, or a decided transaction unpublished, this long is
  // taken for dead: the turn is dropped, the transaction rolled forward by another.
  static constexpr absl::Duration kTakeover = absl::Seconds(1);

  int Write(const std::string& oid, librados::ObjectWriteOperation* op, int flags = 0) {
    return io_.operate(oid, op, flags);
  }
  // Reads xattrs (and the object version into *version); r < 0 on error.
  int ReadAttrs(const std::string& oid, std::map<std::string, bufferlist>* attrs,
                uint64_t* version = nullptr);
  template <typename T>
  absl::StatusOr<T> Parse(const bufferlist& bl, absl::string_view oid) const {
    T t;
    if (!t.ParseFromString(bl.to_str())) {
      return absl::InternalError(
          absl::StrCat("corrupt record in ", oid, " (", where_, ")"));
    }
    return t;
  }
  template <typename T>
  absl::StatusOr<std::optional<T>> ReadCatalogRecord(const std::string& key) {
    std::map<std::string, bufferlist> vals;
    librados::ObjectReadOperation op;
    int rv = 0;
    op.omap_get_vals_by_keys({key}, &vals, &rv);
    int r = io_.operate(kCatalog, &op, nullptr);
    if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "reading the catalog", kCatalog);
    auto it = vals.find(key);
    if (it == vals.end()) return std::optional<T>();
    ASSIGN_OR_RETURN(T t, Parse<T>(it->second, kCatalog));
    return std::optional<T>(std::move(t));
  }
  // rados_cache.cc: the catalog's d.<model> and l.<model> records this process read,
  // as of one published transaction (cache_version_). Any sight of a newer one (the
  // tailer, woken by the writer's notify before that writer's call returns; this
  // process's own writes; a planner's or a miss's read of the head) empties it first,
  // so it never serves a record older than the newest version this process has seen.
  // The catalog's raw value of `key` ("d.<model>", "l.<model>"), nullopt if absent.
  absl::StatusOr<std::optional<std::string>> ReadCachedRaw(const std::string& key);
  template <typename T>
  absl::StatusOr<std::optional<T>> ReadCached(const std::string& key) {
    ASSIGN_OR_RETURN(std::optional<std::string> raw, ReadCachedRaw(key));
    if (!raw.has_value()) return std::optional<T>();
    T t;
    if (!t.ParseFromString(*raw)) {
      return absl::InternalError(
          absl::StrCat("corrupt record ", key, " in ", kCatalog, " (", where_, ")"));
    }
    return std::optional<T>(std::move(t));
  }
  // The catalog's head has been seen at published transaction `version`.
  void ObserveVersion(uint64_t version);

  // One page of omap values with `prefix` after `after`; NOT_FOUND if no object.
  absl::Status OmapPage(const std::string& oid, const std::string& after,
                        const std::string& prefix,
                        std::map<std::string, bufferlist>* vals, bool* more);

  // rados_txn.cc
  absl::StatusOr<Catalog> ReadCatalog();
  absl::Status RollForward(const storage::rados::RadosTxn& t);
  // The object holding a transaction too big for the catalog (written in pieces).
  absl::Status WriteTxnBody(const std::string& oid, const std::string& body);
  // ABORTED if it is gone because transaction `seq` was published meanwhile.
  absl::StatusOr<storage::rados::RadosTxn> ReadTxnBody(const std::string& oid,
                                                       uint64_t seq);
  // Applies t to the objects other than the catalog; adds the bytes it freed.
  absl::Status ApplyObjects(const storage::rados::RadosTxn& t, int64_t* freed);
  absl::Status Publish(const storage::rados::RadosTxn& t);
  // A late apply of t whose object is gone is harmless only if t is already applied.
  absl::StatusOr<bool> AppliedAlready(uint64_t seq);
  // Writers on different processes race for the catalog. After a lost race: waits
  // while another process has the turn; after kTurnAfterLosses losses in a row takes
  // the turn itself (only the turn's holder can decide; its decision ends the turn);
  // then waits a jittered moment. So every writer gets through within a few rounds.
  absl::Status AfterLostRace();
  absl::Duration Jitter(absl::Duration most);
  // Exits the process if options_.test_crash_at names this point (crash tests).
  void CrashPoint(absl::string_view point) const;

  // rados_check.cc
  // Freezes the registry for a check: xattr `frozen` of the catalog = this process's
  // RADOS instance id; every decision requires it 0. Waits (WaitWhileFrozen) while
  // another check holds it.
  absl::Status Freeze();
  // Ends this process's freeze; UNAVAILABLE if another process ended it meanwhile
  // (it took this one for dead), since the view may then mix two moments.
  absl::Status Unfreeze();
  // The instance id of the freezing process, 0 if the registry is not frozen.
  absl::StatusOr<uint64_t> FrozenBy();
  // Waits, with a growing pause, until the registry is not frozen; ends the freeze of
  // a checker missing from the catalog's watchers (dead); UNAVAILABLE naming the freeze
  // and `what` after options_.freeze_wait.
  absl::Status WaitWhileFrozen(absl::string_view what);
  // Scan's part under the freeze: everything but the chunk bytes; lists the chunks
  // (raw, refs) of the view in *chunks.
  absl::Status ScanFrozen(RecordSink* sink,
                          std::vector<std::pair<std::string, uint64_t>>* chunks);

  // rados_chunks.cc
  // Removes the chunk if no blob lists it and nothing holds it; returns bytes removed.
  absl::StatusOr<int64_t> FreeChunk(const std::string& raw);

  // rados_gc.cc
  std::string HoldsObject() const { return "holds." + instance_; }
  // Adds this process to the `replicas` object, or (at a clean close, when it holds
  // nothing) removes it with its holds object.
  absl::Status RegisterReplica();
  void UnregisterReplica();
  void StartGc();
  void StopGc();
  void GcLoop();
  // One round, if this process gets the GC lock: ends the holds of processes missing
  // from the catalog's watchers for dead_after, and sweeps old tombstones.
  absl::Status CollectGarbage();
  absl::Status ReapDeadReplicas();
  // Ends every hold listed in the holds object of `instance`, then forgets it.
  absl::Status ReapReplica(const std::string& instance);
  absl::Status SweepTombstones();
  // Drops the sessions no process wrote for options_.session_expiry, and ends the holds
  // of sessions whose records are gone (a process died dropping them).
  absl::Status ExpireSessions();
  // Frees the chunk objects with no reference and no hold written before dead_after ago,
  // and removes transaction bodies no catalog names (a pool scan; every
  // orphan_scan_period).
  absl::Status SweepOrphanChunks();
  // Removes transaction body `oid` if it was last written before `cutoff` and the
  // catalog does not name it (part of the pool scan).
  absl::Status SweepTxnBody(const std::string& oid, time_t cutoff);
  // Ends every hold of session `id`'s area and forgets it (after its records went).
  absl::Status ReleaseSessionHolds(const std::string& id);

  // rados_events.cc
  // Starts watching the catalog and the tailer thread, which hands other processes'
  // events to the listener in revision order (and looks once a second, in case a
  // notify was lost).
  void StartTailer();
  void StopTailer();
  // Watches the catalog (sets watching_, moves watch_epoch_).
  void Watch();
  void Wake();
  void Tail();
  // One look of the tailer: watches again if needed, reads the head, empties the cache
  // if it moved, and delivers the events not delivered yet.
  void CatchUp(bool rewatch, bool* registered);
  // Calls the listener for events up to `revision` not delivered yet.
  absl::Status Deliver(int64_t revision, const storage::rados::RadosTxn* own)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(deliver_mu_);
  // Tells the other processes' watchers that events were published.
  void NotifyWatchers();

  const std::string where_;
  const RadosStoreOptions options_;
  librados::Rados rados_;
  librados::IoCtx io_;
  std::string instance_;  // rados_.get_instance_id() in decimal, once connected
  std::atomic<uint64_t> watch_epoch_{0};
  // Lost races in a row, and the turn this process holds ("" for none); used by Apply
  // only, which the store never runs twice at once.
  int losses_ = 0;
  std::string my_turn_;
  uint64_t turns_taken_ = 0;
  absl::Mutex jitter_mu_;
  std::mt19937_64 jitter_ ABSL_GUARDED_BY(jitter_mu_){std::random_device{}()};
  std::atomic<uint64_t> next_area_{0};
  std::atomic<uint64_t> txn_objects_{0};  // tx.<instance>.<n> written so far
  absl::Mutex local_mu_;
  // Chunks this process's open areas hold, with the number of areas holding each.
  absl::flat_hash_map<std::string, int> local_holds_ ABSL_GUARDED_BY(local_mu_);
  absl::Mutex cache_mu_;
  uint64_t cache_version_ ABSL_GUARDED_BY(cache_mu_) = 0;
  absl::flat_hash_map<std::string, std::optional<std::string>> cache_
      ABSL_GUARDED_BY(cache_mu_);
  absl::Mutex deliver_mu_;
  std::function<void(const storage::Event&)> listener_ ABSL_GUARDED_BY(deliver_mu_);
  int64_t delivered_ ABSL_GUARDED_BY(deliver_mu_) = 0;
  CatalogWatch watch_ctx_{this};
  uint64_t watch_handle_ = 0;
  bool watching_ = false;  // set before the tailer starts; read by it and at the end
  bool tailer_started_ = false;
  absl::Mutex tail_mu_;
  bool woken_ ABSL_GUARDED_BY(tail_mu_) = false;
  bool rewatch_ ABSL_GUARDED_BY(tail_mu_) = false;
  // Notifies taken but not acked: the tailer acks them once it has caught up, so a
  // writer's notify returns when every live process serves its write.
  std::vector<std::pair<uint64_t, uint64_t>> unacked_ ABSL_GUARDED_BY(tail_mu_);
  bool stop_ ABSL_GUARDED_BY(tail_mu_) = false;
  std::thread tailer_;
  bool gc_started_ = false;
  std::thread gc_;
  // When the GC first saw each process missing from the catalog's watchers (GC thread).
  absl::flat_hash_map<std::string, absl::Time> missing_since_;
  // When the GC thread last scanned the pool for orphan chunks.
  absl::Time last_orphan_scan_ = absl::InfinitePast();
};

}  // namespace mgreg::rados

#endif  // MGREG_STORAGE_RADOS_RADOS_BACKEND_H_
