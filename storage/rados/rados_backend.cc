// The RADOS backend (storage/backend.h) after ../shared/design/RADOS_STORE.md:
//
//   catalog     xattrs format, seq (transactions decided), applied (transactions done);
//               omap head -> RadosHead, t -> the decided, not yet applied RadosTxn,
//               e.<rev:020> -> Event, d.<model> -> ModelRecord, l.<model> -> latest step
//   m.<model>   xattr lsn; omap s.<step:020> -> CheckpointRecord, r.<(max-step):020> -> ""
//               (the first r. key after a step's is the next lower step)
//   b.<hex>     data BlobRecord; xattrs refs, lsn (refs 0: removed, a tombstone keeping lsn)
//   c.<hex>     data the chunk bytes; xattrs refs, lsn, size, h.<holder> per staging hold
//
// Apply: one guarded op on the catalog decides a transaction (seq == its version and no
// other pending: else it is stale), storing it whole; then chunks and blobs going up,
// the model's steps, blobs and chunks going down, each op guarded by the object's lsn
// (an apply of transaction S runs only where lsn <= S, so a repeated one changes the
// same values and a late one nothing); then one op on the catalog publishes the head,
// events and model records and marks it applied. ReadHead rolls a pending transaction
// forward (its writer may have died), so the planner always sees applied state.
// Numbers in xattrs are decimal text: the OSD compares them with cmpxattr as u64.
#include <rados/librados.hpp>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/sha256.h"
#include "common/status_macros.h"
#include "mgreg/storage/rados_records.pb.h"
#include "storage/backed_store.h"
#include "storage/backend.h"
#include "storage/rados/rados_store.h"

namespace mgreg {
namespace {

using librados::bufferlist;
using storage::BlobRecord;
using storage::CheckpointRecord;
using storage::ChunkRef;
using storage::Event;
using storage::ModelRecord;
using storage::rados::RadosHead;
using storage::rados::RadosTxn;

constexpr char kCatalog[] = "catalog";
constexpr char kFormat[] = "mgreg-rados-1";
constexpr int kPage = 1000;
constexpr int kRetries = 32;

std::string Pad(int64_t v) { return absl::StrFormat("%020d", v); }
std::string StepKey(int64_t step) { return "s." + Pad(step); }
std::string ReverseKey(int64_t step) { return "r." + Pad(INT64_MAX - step); }
std::string EventKey(int64_t rev) { return "e." + Pad(rev); }
std::string ModelObject(absl::string_view model) { return absl::StrCat("m.", model); }
std::string BlobObject(absl::string_view hex) { return absl::StrCat("b.", hex); }
std::string ChunkObject(absl::string_view raw) { return "c." + BytesToHex(raw); }

bufferlist Bl(absl::string_view s) {
  bufferlist bl;
  bl.append(s.data(), s.size());
  return bl;
}
bufferlist U64(uint64_t v) { return Bl(std::to_string(v)); }
bufferlist Proto(const google::protobuf::MessageLite& m) { return Bl(m.SerializeAsString()); }

uint64_t AttrU64(const std::map<std::string, bufferlist>& attrs, const std::string& name) {
  auto it = attrs.find(name);
  uint64_t v = 0;
  if (it == attrs.end() || !absl::SimpleAtoi(it->second.to_str(), &v)) return 0;
  return v;
}
bool HasHold(const std::map<std::string, bufferlist>& attrs) {
  for (const auto& [name, value] : attrs) {
    if (name.rfind("h.", 0) == 0) return true;
  }
  return false;
}

RadosHead ToProto(const Head& h) {
  RadosHead p;
  p.set_revision(h.revision);
  p.set_oldest_event(h.oldest_event);
  p.set_models(h.models);
  p.set_checkpoints(h.checkpoints);
  p.set_blobs(h.blobs);
  p.set_chunks(h.chunks);
  p.set_chunk_bytes(h.chunk_bytes);
  p.set_version(h.version);
  return p;
}
Head FromProto(const RadosHead& p) {
  Head h;
  h.revision = p.revision();
  h.oldest_event = p.oldest_event();
  h.models = p.models();
  h.checkpoints = p.checkpoints();
  h.blobs = p.blobs();
  h.chunks = p.chunks();
  h.chunk_bytes = p.chunk_bytes();
  h.version = p.version();
  return h;
}

class RadosBackend;

// One upload's holds: xattr `hold_` on every chunk it put or held.
class RadosArea : public BackendStagingArea {
 public:
  RadosArea(std::shared_ptr<RadosBackend> backend, std::string hold)
      : backend_(std::move(backend)), hold_(std::move(hold)) {}
  ~RadosArea() override;

  absl::Status PutChunk(const ChunkRef& ref, absl::string_view data) override;
  absl::StatusOr<bool> HoldExistingChunk(const ChunkRef& ref) override;
  bool Holds(absl::string_view raw) const override { return held_.contains(raw); }
  absl::Status PrepareCommit(const std::vector<const BlobRecord*>&) override {
    return absl::OkStatus();  // PutChunk returned once the OSD had the bytes
  }
  const std::string& hold() const { return hold_; }
  // The commit applying through this area ended its hold on `raw`.
  void Forget(const std::string& raw);

 private:
  const std::shared_ptr<RadosBackend> backend_;
  const std::string hold_;
  absl::flat_hash_set<std::string> held_;
};

class RadosBackend : public Backend, public std::enable_shared_from_this<RadosBackend> {
 public:
  explicit RadosBackend(const RadosStoreOptions& o)
      : where_(absl::StrCat("pool '", o.pool, "'",
                            o.rados_namespace.empty()
                                ? std::string()
                                : absl::StrCat(" namespace '", o.rados_namespace, "'"),
                            " of the Ceph cluster in ", o.ceph_conf)),
        test_stop_after_(o.test_stop_after) {}
  ~RadosBackend() override {
    if (tailer_started_) {
      {
        absl::MutexLock lock(&tail_mu_);
        stop_ = true;
      }
      tailer_.join();
    }
    if (watching_) io_.unwatch2(watch_handle_);
    if (tailer_started_) rados_.watch_flush();  // librados crashes on an unconnected handle
    io_.close();
    rados_.shutdown();
  }

  // Other processes' writes: each writer notifies the catalog's watchers after it
  // publishes; the tailer thread then hands the new events to the listener, in revision
  // order. It also looks once a second, in case a notify was lost.
  void StartTailer() {
    watching_ = io_.watch3(kCatalog, &watch_handle_, &watch_ctx_, kWatchTimeoutSeconds) == 0;
    tailer_ = std::thread([this] { Tail(); });
    tailer_started_ = true;
  }
  void Wake() {
    absl::MutexLock lock(&tail_mu_);
    woken_ = true;
  }

  absl::Status Open(const RadosStoreOptions& o);

  // An error of a RADOS operation `what` on `oid`, for the caller.
  absl::Status Error(int r, absl::string_view what, absl::string_view oid) const {
    std::string msg = absl::StrCat(what, " (object ", oid, " in ", where_,
                                   "): ", std::strerror(-r));
    if (r == -ENOSPC || r == -EDQUOT) {
      return absl::ResourceExhaustedError(absl::StrCat(msg, ": the pool is full"));
    }
    return absl::UnavailableError(msg);
  }
  int Write(const std::string& oid, librados::ObjectWriteOperation* op, int flags = 0) {
    return io_.operate(oid, op, flags);
  }
  // Reads xattrs (and the object version into *version); r < 0 on error.
  int ReadAttrs(const std::string& oid, std::map<std::string, bufferlist>* attrs,
                uint64_t* version = nullptr) {
    librados::ObjectReadOperation op;
    int rv = 0;
    op.getxattrs(attrs, &rv);
    int r = io_.operate(oid, &op, nullptr);
    if (version != nullptr) *version = io_.get_last_version();
    return r < 0 ? r : rv;
  }

  // ---- Staging, for RadosArea. ----
  std::string NewHold() {
    return absl::StrCat("h.", rados_.get_instance_id(), ".", next_area_.fetch_add(1));
  }
  void Track(const std::string& raw, int delta) {
    absl::MutexLock lock(&local_mu_);
    if ((local_holds_[raw] += delta) <= 0) local_holds_.erase(raw);
  }
  absl::Status Put(const std::string& hold, const ChunkRef& ref, absl::string_view data) {
    const std::string oid = ChunkObject(ref.sha256());
    for (int i = 0; i < kRetries; ++i) {
      librados::ObjectWriteOperation create;
      create.create(true);
      create.write_full(Bl(data));
      create.setxattr("refs", U64(0));
      create.setxattr("lsn", U64(0));
      create.setxattr("size", U64(data.size()));
      create.setxattr(hold.c_str(), Bl(""));
      int r = Write(oid, &create, librados::OPERATION_FULL_TRY);
      if (r == 0) return absl::OkStatus();
      if (r != -EEXIST) return Error(r, "storing a chunk", oid);
      // The bytes are there (create and write are one op): only hold them.
      librados::ObjectWriteOperation hold_op;
      hold_op.assert_exists();
      hold_op.setxattr(hold.c_str(), Bl(""));
      r = Write(oid, &hold_op, librados::OPERATION_FULL_FORCE);
      if (r == 0) return absl::OkStatus();
      if (r != -ENOENT) return Error(r, "holding a chunk", oid);
      // Removed in between (its last holder released it): create it again.
    }
    return absl::AbortedError(absl::StrCat("storing chunk ", oid, ": registry busy"));
  }
  absl::StatusOr<bool> Hold(const std::string& hold, const ChunkRef& ref) {
    const std::string oid = ChunkObject(ref.sha256());
    for (int i = 0; i < kRetries; ++i) {
      std::map<std::string, bufferlist> attrs;
      uint64_t version = 0;
      int r = ReadAttrs(oid, &attrs, &version);
      if (r == -ENOENT) return false;
      if (r < 0) return Error(r, "reading a chunk", oid);
      if (AttrU64(attrs, "refs") == 0 && !HasHold(attrs)) return false;  // being freed
      librados::ObjectWriteOperation op;
      op.assert_version(version);
      op.setxattr(hold.c_str(), Bl(""));
      r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
      if (r == 0) return true;
      if (r == -ENOENT) return false;
      if (r != -ERANGE && r != -EOVERFLOW) return Error(r, "holding a chunk", oid);
    }
    return absl::AbortedError(absl::StrCat("holding chunk ", oid, ": registry busy"));
  }
  // Ends `hold` on `raw`; removes the chunk if nothing references or holds it.
  absl::Status Release(const std::string& hold, const std::string& raw) {
    const std::string oid = ChunkObject(raw);
    for (int i = 0; i < kRetries; ++i) {
      std::map<std::string, bufferlist> attrs;
      uint64_t version = 0;
      int r = ReadAttrs(oid, &attrs, &version);
      if (r == -ENOENT) return absl::OkStatus();
      if (r < 0) return Error(r, "reading a chunk", oid);
      attrs.erase(hold);
      librados::ObjectWriteOperation op;
      op.assert_version(version);
      if (AttrU64(attrs, "refs") == 0 && !HasHold(attrs)) {
        op.remove();
      } else {
        op.rmxattr(hold.c_str());
      }
      r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
      if (r == 0 || r == -ENOENT) return absl::OkStatus();
      if (r != -ERANGE && r != -EOVERFLOW) return Error(r, "releasing a chunk", oid);
    }
    return absl::AbortedError(absl::StrCat("releasing chunk ", oid, ": registry busy"));
  }

  // ---- Backend. ----
  std::unique_ptr<BackendStagingArea> NewStagingArea() override {
    return std::make_unique<RadosArea>(shared_from_this(), NewHold());
  }
  absl::Status ReadyToWrite() override { return absl::OkStatus(); }

  absl::StatusOr<Head> ReadHead() override {
    for (int i = 0; i < kRetries; ++i) {
      ASSIGN_OR_RETURN(Catalog c, ReadCatalog());
      if (!c.pending.has_value()) return c.head;
      RETURN_IF_ERROR(RollForward(*c.pending));
    }
    return absl::AbortedError("reading the registry head: registry busy");
  }
  absl::StatusOr<std::optional<ModelRecord>> ReadModel(absl::string_view model) override {
    return ReadCatalogRecord<ModelRecord>(absl::StrCat("d.", model));
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadLatest(
      absl::string_view model) override {
    return ReadCatalogRecord<CheckpointRecord>(absl::StrCat("l.", model));
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpoint(absl::string_view model,
                                                                 int64_t step) override {
    const std::string oid = ModelObject(model), key = StepKey(step);
    std::map<std::string, bufferlist> vals;
    librados::ObjectReadOperation op;
    int rv = 0;
    op.omap_get_vals_by_keys({key}, &vals, &rv);
    int r = io_.operate(oid, &op, nullptr);
    if (r == -ENOENT) return std::optional<CheckpointRecord>();
    if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "reading a step", oid);
    auto it = vals.find(key);
    if (it == vals.end()) return std::optional<CheckpointRecord>();
    return Parse<CheckpointRecord>(it->second, oid);
  }
  absl::StatusOr<std::optional<CheckpointRecord>> ReadCheckpointBelow(
      absl::string_view model, int64_t below) override {
    if (below <= 0) return std::optional<CheckpointRecord>();
    const std::string oid = ModelObject(model);
    std::map<std::string, bufferlist> vals;
    bool more = false;
    librados::ObjectReadOperation op;
    int rv = 0;
    op.omap_get_vals2(ReverseKey(below), "r.", 1, &vals, &more, &rv);
    int r = io_.operate(oid, &op, nullptr);
    if (r == -ENOENT || (r >= 0 && rv >= 0 && vals.empty())) {
      return std::optional<CheckpointRecord>();
    }
    if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "reading steps", oid);
    int64_t inverted = 0;
    if (!absl::SimpleAtoi(vals.begin()->first.substr(2), &inverted)) {
      return absl::InternalError(absl::StrCat("bad step key ", vals.begin()->first,
                                              " in ", oid, " (", where_, ")"));
    }
    return ReadCheckpoint(model, INT64_MAX - inverted);
  }
  absl::StatusOr<std::optional<BlobEntry>> ReadBlob(absl::string_view hex) override {
    const std::string oid = BlobObject(hex);
    bufferlist data;
    std::map<std::string, bufferlist> attrs;
    librados::ObjectReadOperation op;
    int r1 = 0, r2 = 0;
    op.read(0, 0, &data, &r1);
    op.getxattrs(&attrs, &r2);
    int r = io_.operate(oid, &op, nullptr);
    if (r == -ENOENT) return std::optional<BlobEntry>();
    if (r < 0 || r1 < 0 || r2 < 0) return Error(r < 0 ? r : (r1 < 0 ? r1 : r2),
                                                "reading a blob", oid);
    BlobEntry e;
    e.refs = static_cast<int64_t>(AttrU64(attrs, "refs"));
    if (e.refs == 0) return std::optional<BlobEntry>();  // a tombstone
    if (!e.record.ParseFromString(data.to_str())) {
      return absl::InternalError(absl::StrCat("corrupt blob record ", oid, " in ", where_));
    }
    return std::optional<BlobEntry>(std::move(e));
  }
  absl::StatusOr<ChunkEntry> ReadChunkEntry(absl::string_view raw) override {
    const std::string oid = ChunkObject(raw);
    std::map<std::string, bufferlist> attrs;
    int r = ReadAttrs(oid, &attrs);
    if (r == -ENOENT) return ChunkEntry{};
    if (r < 0) return Error(r, "reading a chunk", oid);
    ChunkEntry e;
    e.refs = static_cast<int64_t>(AttrU64(attrs, "refs"));
    if (e.refs > 0) e.size = static_cast<uint32_t>(AttrU64(attrs, "size"));
    return e;
  }

  absl::StatusOr<ApplyResult> Apply(const Transaction& txn,
                                    BackendStagingArea* committing) override;
  void Tail();
  void SetEventListener(std::function<void(const Event&)> listener) override {
    absl::MutexLock lock(&deliver_mu_);
    listener_ = std::move(listener);
  }

  absl::StatusOr<std::vector<ModelRecord>> ListModels(absl::string_view start_after,
                                                      int limit) override {
    std::vector<ModelRecord> out;
    std::string after = absl::StrCat("d.", start_after);
    for (bool more = true; more && (limit <= 0 || static_cast<int>(out.size()) < limit);) {
      std::map<std::string, bufferlist> vals;
      RETURN_IF_ERROR(OmapPage(kCatalog, after, "d.", &vals, &more));
      for (const auto& [key, value] : vals) {
        after = key;
        ASSIGN_OR_RETURN(ModelRecord m, Parse<ModelRecord>(value, kCatalog));
        if (m.checkpoint_count() == 0) continue;
        if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
        out.push_back(std::move(m));
      }
    }
    return out;
  }
  absl::StatusOr<std::vector<CheckpointRecord>> ListCheckpoints(absl::string_view model,
                                                                int64_t first,
                                                                int limit) override {
    std::vector<CheckpointRecord> out;
    const std::string oid = ModelObject(model);
    std::string after = first > 0 ? StepKey(first - 1) : "s.";
    for (bool more = true; more && (limit <= 0 || static_cast<int>(out.size()) < limit);) {
      std::map<std::string, bufferlist> vals;
      absl::Status s = OmapPage(oid, after, "s.", &vals, &more);
      if (absl::IsNotFound(s)) return out;
      RETURN_IF_ERROR(s);
      for (const auto& [key, value] : vals) {
        after = key;
        if (limit > 0 && static_cast<int>(out.size()) >= limit) break;
        ASSIGN_OR_RETURN(CheckpointRecord c, Parse<CheckpointRecord>(value, oid));
        out.push_back(std::move(c));
      }
    }
    return out;
  }
  absl::StatusOr<std::optional<std::string>> ReadChunkBytes(
      absl::string_view raw) override {
    const std::string oid = ChunkObject(raw);
    bufferlist bl;
    int r = io_.read(oid, bl, 0, 0);
    if (r == -ENOENT) return std::optional<std::string>();
    if (r < 0) return Error(r, "reading a chunk", oid);
    return std::optional<std::string>(bl.to_str());
  }
  absl::StatusOr<bool> HasChunk(absl::string_view raw) override {
    const std::string oid = ChunkObject(raw);
    uint64_t size = 0;
    time_t mtime = 0;
    int r = io_.stat(oid, &size, &mtime);
    if (r == -ENOENT) return false;
    if (r < 0) return Error(r, "reading a chunk", oid);
    return true;
  }
  absl::StatusOr<EventPage> ReadEvents(int64_t after_revision, int limit) override;
  absl::Status EngineStats(StoreStats* stats) override {
    std::vector<std::string> held;
    {
      absl::MutexLock lock(&local_mu_);
      for (const auto& [raw, n] : local_holds_) held.push_back(raw);
    }
    for (const std::string& raw : held) {
      ASSIGN_OR_RETURN(ChunkEntry e, ReadChunkEntry(raw));
      if (e.refs == 0) ++stats->staged_chunks;
    }
    return absl::OkStatus();
  }
  absl::Status Scan(RecordSink* sink) override;
  absl::Status Backup(const std::string&) override {
    return absl::FailedPreconditionError(
        absl::StrCat("the RADOS store cannot be backed up by mgreg: back up ", where_,
                     " with Ceph's tools (rados export)"));
  }

 private:
  struct Catalog {
    Head head;
    std::optional<RadosTxn> pending;
  };
  class CatalogWatch : public librados::WatchCtx2 {
   public:
    explicit CatalogWatch(RadosBackend* backend) : backend_(backend) {}
    void handle_notify(uint64_t notify_id, uint64_t cookie, uint64_t,
                       bufferlist&) override {
      bufferlist empty;
      backend_->io_.notify_ack(kCatalog, notify_id, cookie, empty);
      backend_->Wake();
    }
    void handle_error(uint64_t, int) override {
      absl::MutexLock lock(&backend_->tail_mu_);
      backend_->rewatch_ = true;
      backend_->woken_ = true;
    }

   private:
    RadosBackend* const backend_;
  };
  static constexpr uint32_t kWatchTimeoutSeconds = 10;
  // How long a writer waits for the other processes to take its notify.
  static constexpr uint64_t kNotifyTimeoutMs = 250;

  template <typename T>
  absl::StatusOr<T> Parse(const bufferlist& bl, absl::string_view oid) const {
    T t;
    if (!t.ParseFromString(bl.to_str())) {
      return absl::InternalError(absl::StrCat("corrupt record in ", oid, " (", where_, ")"));
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
  // One page of omap values with `prefix` after `after`; NOT_FOUND if no object.
  absl::Status OmapPage(const std::string& oid, const std::string& after,
                        const std::string& prefix, std::map<std::string, bufferlist>* vals,
                        bool* more) {
    librados::ObjectReadOperation op;
    int rv = 0;
    op.omap_get_vals2(after, prefix, kPage, vals, more, &rv);
    int r = io_.operate(oid, &op, nullptr);
    if (r == -ENOENT) return absl::NotFoundError(oid);
    if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "listing records", oid);
    return absl::OkStatus();
  }
  absl::StatusOr<Catalog> ReadCatalog();
  absl::Status RollForward(const RadosTxn& t);
  // Applies t to the objects other than the catalog; adds the bytes it freed.
  absl::Status ApplyObjects(const RadosTxn& t, int64_t* freed);
  absl::Status Publish(const RadosTxn& t);
  // A late apply of t whose object is gone is harmless only if t is already applied.
  absl::StatusOr<bool> AppliedAlready(uint64_t seq);
  // Removes the chunk if no blob lists it and nothing holds it; returns bytes removed.
  absl::StatusOr<int64_t> FreeChunk(const std::string& raw);
  // Calls the listener for events up to `revision` not delivered yet.
  absl::Status Deliver(int64_t revision, const RadosTxn* own)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(deliver_mu_);

  const std::string where_;
  const int test_stop_after_;
  librados::Rados rados_;
  librados::IoCtx io_;
  std::atomic<uint64_t> next_area_{0};
  absl::Mutex local_mu_;
  // Chunks this process's open areas hold, with the number of areas holding each.
  absl::flat_hash_map<std::string, int> local_holds_ ABSL_GUARDED_BY(local_mu_);
  absl::Mutex deliver_mu_;
  std::function<void(const Event&)> listener_ ABSL_GUARDED_BY(deliver_mu_);
  int64_t delivered_ ABSL_GUARDED_BY(deliver_mu_) = 0;
  CatalogWatch watch_ctx_{this};
  uint64_t watch_handle_ = 0;
  bool watching_ = false;  // set before the tailer starts; read by it and at the end
  bool tailer_started_ = false;
  absl::Mutex tail_mu_;
  bool woken_ ABSL_GUARDED_BY(tail_mu_) = false;
  bool rewatch_ ABSL_GUARDED_BY(tail_mu_) = false;
  bool stop_ ABSL_GUARDED_BY(tail_mu_) = false;
  std::thread tailer_;
};

void RadosBackend::Tail() {
  for (;;) {
    bool rewatch = false;
    {
      absl::MutexLock lock(&tail_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(tail_mu_) {
        return woken_ || stop_;
      };
      tail_mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Seconds(1));
      if (stop_) return;
      woken_ = false;
      std::swap(rewatch, rewatch_);
    }
    if (rewatch) {  // the watch broke (the OSD restarted, or this process stalled)
      if (watching_) io_.unwatch2(watch_handle_);
      watching_ =
          io_.watch3(kCatalog, &watch_handle_, &watch_ctx_, kWatchTimeoutSeconds) == 0;
    }
    absl::StatusOr<std::optional<RadosHead>> head = ReadCatalogRecord<RadosHead>("head");
    if (!head.ok() || !head->has_value()) continue;  // the next look retries
    absl::MutexLock lock(&deliver_mu_);
    if ((*head)->revision() > delivered_) Deliver((*head)->revision(), nullptr).IgnoreError();
  }
}

RadosArea::~RadosArea() {
  for (const std::string& raw : held_) {
    // A failure leaves the hold behind (the chunk is kept, never lost); the sweep of
    // dead holds is not implemented yet (README).
    backend_->Release(hold_, raw).IgnoreError();
    backend_->Track(raw, -1);
  }
}
absl::Status RadosArea::PutChunk(const ChunkRef& ref, absl::string_view data) {
  if (held_.contains(ref.sha256())) return absl::OkStatus();
  RETURN_IF_ERROR(backend_->Put(hold_, ref, data));
  held_.insert(ref.sha256());
  backend_->Track(ref.sha256(), 1);
  return absl::OkStatus();
}
absl::StatusOr<bool> RadosArea::HoldExistingChunk(const ChunkRef& ref) {
  if (held_.contains(ref.sha256())) return true;
  ASSIGN_OR_RETURN(bool held, backend_->Hold(hold_, ref));
  if (held) {
    held_.insert(ref.sha256());
    backend_->Track(ref.sha256(), 1);
  }
  return held;
}
void RadosArea::Forget(const std::string& raw) {
  if (held_.erase(raw) > 0) backend_->Track(raw, -1);
}

absl::Status RadosBackend::Open(const RadosStoreOptions& o) {
  int r = rados_.init2(o.user.c_str(), "ceph", 0);
  if (r < 0) return absl::InvalidArgumentError(absl::StrCat("RADOS user '", o.user,
                                                            "': ", std::strerror(-r)));
  r = rados_.conf_read_file(o.ceph_conf.c_str());
  if (r < 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot read the Ceph configuration ", o.ceph_conf, ": ", std::strerror(-r),
        " (pass the cluster's ceph.conf with --ceph-conf)"));
  }
  const std::string t = std::to_string(o.timeout_seconds);
  for (const char* opt :
       {"client_mount_timeout", "rados_osd_op_timeout", "rados_mon_op_timeout"}) {
    rados_.conf_set(opt, t.c_str());
  }
  r = rados_.connect();
  if (r < 0) {
    return absl::UnavailableError(absl::StrCat(
        "cannot connect to the Ceph cluster in ", o.ceph_conf, " (for pool '", o.pool,
        "') within ", o.timeout_seconds, " s: ", std::strerror(-r),
        "; check that its monitors (mon_host) run and are reachable"));
  }
  r = rados_.ioctx_create(o.pool.c_str(), io_);
  if (r == -ENOENT) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the Ceph pool '", o.pool, "' does not exist in the cluster of ", o.ceph_conf,
        ": create it (ceph osd pool create ", o.pool, ") or pass another --rados-pool"));
  }
  if (r < 0) return Error(r, "opening the pool", o.pool);
  io_.set_namespace(o.rados_namespace);

  for (int i = 0; i < kRetries; ++i) {
    std::map<std::string, bufferlist> attrs;
    r = ReadAttrs(kCatalog, &attrs);
    if (r == 0) {
      auto f = attrs.find("format");
      const std::string format = f == attrs.end() ? "" : f->second.to_str();
      if (format != kFormat) {
        return absl::FailedPreconditionError(absl::StrCat(
            where_, " holds an object 'catalog' that is not mgreg's (format marker '",
            format, "', expected '", kFormat, "'): use an empty pool or namespace"));
      }
      break;
    }
    if (r != -ENOENT) return Error(r, "reading the catalog", kCatalog);
    if (io_.nobjects_begin() != io_.nobjects_end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          where_, " holds objects of another program (no mgreg catalog with format '",
          kFormat, "'): use an empty pool or another --rados-namespace"));
    }
    librados::ObjectWriteOperation create;
    create.create(true);
    create.setxattr("format", Bl(kFormat));
    create.setxattr("seq", U64(0));
    create.setxattr("applied", U64(0));
    create.omap_set({{"head", Proto(ToProto(Head{}))}});
    r = Write(kCatalog, &create, librados::OPERATION_FULL_TRY);
    if (r != 0 && r != -EEXIST) return Error(r, "creating the catalog", kCatalog);
  }
  ASSIGN_OR_RETURN(Head head, ReadHead());
  {
    absl::MutexLock lock(&deliver_mu_);
    delivered_ = head.revision;
  }
  StartTailer();
  return absl::OkStatus();
}

absl::StatusOr<RadosBackend::Catalog> RadosBackend::ReadCatalog() {
  std::map<std::string, bufferlist> attrs, vals;
  librados::ObjectReadOperation op;
  int r1 = 0, r2 = 0;
  op.getxattrs(&attrs, &r1);
  op.omap_get_vals_by_keys({"head", "t"}, &vals, &r2);
  int r = io_.operate(kCatalog, &op, nullptr);
  if (r < 0 || r1 < 0 || r2 < 0) {
    return Error(r < 0 ? r : (r1 < 0 ? r1 : r2), "reading the catalog", kCatalog);
  }
  Catalog c;
  const uint64_t seq = AttrU64(attrs, "seq"), applied = AttrU64(attrs, "applied");
  auto h = vals.find("head");
  if (h == vals.end()) return absl::InternalError(absl::StrCat("no head in ", where_));
  ASSIGN_OR_RETURN(RadosHead head, Parse<RadosHead>(h->second, kCatalog));
  c.head = FromProto(head);
  c.head.version = seq;
  if (seq > applied) {
    auto t = vals.find("t");
    if (t == vals.end()) {
      return absl::InternalError(absl::StrCat("transaction ", seq, " decided but not in ",
                                              where_));
    }
    ASSIGN_OR_RETURN(RadosTxn txn, Parse<RadosTxn>(t->second, kCatalog));
    c.pending = std::move(txn);
  }
  return c;
}

absl::StatusOr<bool> RadosBackend::AppliedAlready(uint64_t seq) {
  std::map<std::string, bufferlist> attrs;
  int r = ReadAttrs(kCatalog, &attrs);
  if (r < 0) return Error(r, "reading the catalog", kCatalog);
  return AttrU64(attrs, "applied") >= seq;
}

absl::StatusOr<int64_t> RadosBackend::FreeChunk(const std::string& raw) {
  const std::string oid = ChunkObject(raw);
  for (int i = 0; i < kRetries; ++i) {
    std::map<std::string, bufferlist> attrs;
    uint64_t version = 0;
    int r = ReadAttrs(oid, &attrs, &version);
    if (r == -ENOENT) return 0;
    if (r < 0) return Error(r, "reading a chunk", oid);
    if (AttrU64(attrs, "refs") > 0 || HasHold(attrs)) return 0;  // staged again
    librados::ObjectWriteOperation op;
    op.assert_version(version);
    op.remove();
    r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
    if (r == 0) return static_cast<int64_t>(AttrU64(attrs, "size"));
    if (r == -ENOENT) return 0;
    if (r != -ERANGE && r != -EOVERFLOW) return Error(r, "freeing a chunk", oid);
  }
  return absl::AbortedError(absl::StrCat("freeing chunk ", oid, ": registry busy"));
}

absl::Status RadosBackend::ApplyObjects(const RadosTxn& t, int64_t* freed) {
  const uint64_t s = t.seq();
  // Guard: this object has seen no transaction after s.
  auto guarded = [&](librados::ObjectWriteOperation* op) {
    op->cmpxattr("lsn", LIBRADOS_CMPXATTR_OP_GT, s + 1);
  };
  // 0 done; 1 a later transaction already wrote the object or it is gone for good.
  auto outcome = [&](int r, const std::string& oid, const char* what,
                     bool missing_ok) -> absl::StatusOr<bool> {
    if (r == 0) return false;
    if (r == -ECANCELED) return true;
    if (r == -ENOENT) {
      if (missing_ok) return true;
      ASSIGN_OR_RETURN(bool done, AppliedAlready(s));
      if (done) return true;
      return absl::InternalError(absl::StrCat(t.what(), ": ", what, " ", oid,
                                              " is committed but gone from ", where_));
    }
    return Error(r, t.what(), oid);
  };
  for (const auto& c : t.chunks()) {  // up: the bytes first
    if (c.refs_after() == 0) continue;
    const std::string oid = ChunkObject(c.raw());
    librados::ObjectWriteOperation op;
    guarded(&op);
    op.setxattr("refs", U64(c.refs_after()));
    op.setxattr("lsn", U64(s));
    if (c.release_hold() && !t.committing_hold().empty()) {
      op.rmxattr(t.committing_hold().c_str());
    }
    RETURN_IF_ERROR(outcome(Write(oid, &op, librados::OPERATION_FULL_FORCE), oid, "chunk",
                            false).status());
  }
  for (const auto& b : t.blobs()) {  // up: then the blob records
    if (b.refs_after() == 0) continue;
    const std::string oid = BlobObject(b.hex());
    for (int i = 0;; ++i) {
      librados::ObjectWriteOperation op;
      guarded(&op);
      if (b.has_created()) op.write_full(Proto(b.created()));
      op.setxattr("refs", U64(b.refs_after()));
      op.setxattr("lsn", U64(s));
      int r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
      if (r != -ENOENT || !b.has_created()) {
        RETURN_IF_ERROR(outcome(r, oid, "blob", false).status());
        break;
      }
      librados::ObjectWriteOperation create;
      create.create(true);
      create.write_full(Proto(b.created()));
      create.setxattr("refs", U64(b.refs_after()));
      create.setxattr("lsn", U64(s));
      r = Write(oid, &create, librados::OPERATION_FULL_FORCE);
      if (r == 0) break;
      if (r != -EEXIST || i >= kRetries) return Error(r, t.what(), oid);
    }
  }
  if (!t.model().empty() && (t.put_checkpoints_size() > 0 || t.removed_steps_size() > 0)) {
    const std::string oid = ModelObject(t.model());
    std::map<std::string, bufferlist> set;
    std::set<std::string> rm;
    for (int64_t step : t.removed_steps()) {
      rm.insert(StepKey(step));
      rm.insert(ReverseKey(step));
    }
    for (const CheckpointRecord& c : t.put_checkpoints()) {
      rm.erase(StepKey(c.step()));
      rm.erase(ReverseKey(c.step()));
      set[StepKey(c.step())] = Proto(c);
      set[ReverseKey(c.step())] = Bl("");
    }
    for (int i = 0;; ++i) {
      librados::ObjectWriteOperation op;
      guarded(&op);
      if (!rm.empty()) op.omap_rm_keys(rm);
      if (!set.empty()) op.omap_set(set);
      op.setxattr("lsn", U64(s));
      int r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
      if (r != -ENOENT) {
        RETURN_IF_ERROR(outcome(r, oid, "model", false).status());
        break;
      }
      // A guarded op fails on a missing object even after create() in the same op
      // (design §2.3), so the model object is created on its own first.
      librados::ObjectWriteOperation create;
      create.create(false);
      create.setxattr("lsn", U64(0));
      r = Write(oid, &create, librados::OPERATION_FULL_FORCE);
      if ((r != 0 && r != -EEXIST) || i >= kRetries) return Error(r, t.what(), oid);
    }
  }
  for (const auto& b : t.blobs()) {  // down: blob records become tombstones
    if (b.refs_after() != 0) continue;
    const std::string oid = BlobObject(b.hex());
    librados::ObjectWriteOperation op;
    guarded(&op);
    op.truncate(0);
    op.setxattr("refs", U64(0));
    op.setxattr("lsn", U64(s));
    RETURN_IF_ERROR(outcome(Write(oid, &op, librados::OPERATION_FULL_FORCE), oid, "blob",
                            true).status());
  }
  for (const auto& c : t.chunks()) {  // down: then the bytes
    if (c.refs_after() != 0) continue;
    const std::string oid = ChunkObject(c.raw());
    librados::ObjectWriteOperation op;
    guarded(&op);
    op.setxattr("refs", U64(0));
    op.setxattr("lsn", U64(s));
    if (c.release_hold() && !t.committing_hold().empty()) {
      op.rmxattr(t.committing_hold().c_str());
    }
    ASSIGN_OR_RETURN(bool skipped,
                     outcome(Write(oid, &op, librados::OPERATION_FULL_FORCE), oid, "chunk",
                             true));
    if (skipped) continue;
    ASSIGN_OR_RETURN(int64_t bytes, FreeChunk(c.raw()));
    *freed += bytes;
  }
  return absl::OkStatus();
}

absl::Status RadosBackend::Publish(const RadosTxn& t) {
  const uint64_t s = t.seq();
  librados::ObjectWriteOperation op;
  op.cmpxattr("applied", LIBRADOS_CMPXATTR_OP_EQ, s - 1);
  std::map<std::string, bufferlist> set;
  std::set<std::string> rm = {"t"};
  RadosHead head = t.head_after();
  head.set_version(s);
  set["head"] = Proto(head);
  for (const Event& e : t.events()) {
    // Events already beyond the window (more in one write than it holds) are not kept.
    if (e.revision() >= t.head_after().oldest_event()) set[EventKey(e.revision())] = Proto(e);
  }
  for (int64_t rev = t.head_before().oldest_event(); rev < t.head_after().oldest_event();
       ++rev) {
    rm.insert(EventKey(rev));
  }
  if (!t.model().empty()) {
    const std::string d = absl::StrCat("d.", t.model()), l = absl::StrCat("l.", t.model());
    if (t.has_model_after()) {
      set[d] = Proto(t.model_after());
    } else {
      rm.insert(d);
    }
    if (t.has_latest_after()) {
      set[l] = Proto(t.latest_after());
    } else {
      rm.insert(l);
    }
  }
  op.omap_rm_keys(rm);
  op.omap_set(set);
  op.setxattr("applied", U64(s));
  int r = Write(kCatalog, &op, librados::OPERATION_FULL_FORCE);
  if (r == -ECANCELED) {
    ASSIGN_OR_RETURN(bool done, AppliedAlready(s));
    if (done) return absl::OkStatus();
  }
  if (r < 0) return Error(r, t.what(), kCatalog);
  return absl::OkStatus();
}

absl::Status RadosBackend::RollForward(const RadosTxn& t) {
  int64_t freed = 0;
  RETURN_IF_ERROR(ApplyObjects(t, &freed));
  return Publish(t);
}

absl::StatusOr<ApplyResult> RadosBackend::Apply(const Transaction& txn,
                                                BackendStagingArea* committing) {
  RadosTxn t;
  const uint64_t version = txn.head_before.version;
  t.set_seq(version + 1);
  t.set_what(txn.what);
  *t.mutable_head_before() = ToProto(txn.head_before);
  *t.mutable_head_after() = ToProto(txn.head_after);
  t.set_model(txn.model);
  if (txn.model_after.has_value()) *t.mutable_model_after() = *txn.model_after;
  if (txn.latest_after.has_value()) *t.mutable_latest_after() = *txn.latest_after;
  for (const CheckpointRecord& c : txn.put_checkpoints) *t.add_put_checkpoints() = c;
  for (int64_t step : txn.removed_steps) t.add_removed_steps(step);
  for (const BlobWrite& b : txn.blobs) {
    auto* w = t.add_blobs();
    w->set_hex(b.hex);
    w->set_refs_after(b.refs_after);
    if (b.created.has_value()) *w->mutable_created() = *b.created;
  }
  for (const ChunkWrite& c : txn.chunks) {
    auto* w = t.add_chunks();
    w->set_raw(c.raw);
    w->set_size(c.size);
    w->set_refs_after(c.refs_after);
    w->set_release_hold(c.release_hold);
  }
  for (const Event& e : txn.events) *t.add_events() = e;
  auto* area = static_cast<RadosArea*>(committing);
  if (area != nullptr) t.set_committing_hold(area->hold());

  // The decision: this transaction is next, or another process wrote first.
  librados::ObjectWriteOperation decide;
  decide.cmpxattr("seq", LIBRADOS_CMPXATTR_OP_EQ, version);
  decide.cmpxattr("applied", LIBRADOS_CMPXATTR_OP_EQ, version);
  decide.omap_set({{"t", Proto(t)}});
  decide.setxattr("seq", U64(version + 1));
  const bool adds_bytes = !txn.put_checkpoints.empty();
  int r = Write(kCatalog, &decide,
                adds_bytes ? librados::OPERATION_FULL_TRY : librados::OPERATION_FULL_FORCE);
  ApplyResult result;
  if (r == -ECANCELED) {
    result.stale = true;
    return result;
  }
  if (r < 0) return Error(r, txn.what, kCatalog);
  // Decided: from here an error leaves it for the next writer (any process) to finish.
  // The holds the transaction ends now belong to it: the area must not release them
  // (and so free the chunks) if this apply fails; applying it removes them.
  if (area != nullptr) {
    for (const ChunkWrite& c : txn.chunks) {
      if (c.release_hold) area->Forget(c.raw);
    }
  }
  const auto stopped = [&] {
    return absl::UnavailableError(absl::StrCat(txn.what, ": stopped for a test"));
  };
  if (test_stop_after_ == 1) return stopped();
  RETURN_IF_ERROR(ApplyObjects(t, &result.freed_bytes));
  if (test_stop_after_ == 2) return stopped();
  RETURN_IF_ERROR(Publish(t));
  {
    absl::MutexLock lock(&deliver_mu_);
    RETURN_IF_ERROR(Deliver(txn.head_after.revision, &t));
  }
  if (!txn.events.empty()) {
    // Other processes' watchers ack at once and then read the events themselves; a
    // process that died holds this up to kNotifyTimeoutMs until its watch expires.
    bufferlist none;
    io_.notify2(kCatalog, none, kNotifyTimeoutMs, nullptr);
  }
  return result;
}

absl::Status RadosBackend::Deliver(int64_t revision, const RadosTxn* own) {
  if (!listener_) {
    delivered_ = std::max(delivered_, revision);
    return absl::OkStatus();
  }
  if (own != nullptr && delivered_ == own->head_before().revision()) {
    for (const Event& e : own->events()) listener_(e);
    delivered_ = revision;
    return absl::OkStatus();
  }
  // Other processes wrote since: their events first, from the log.
  while (delivered_ < revision) {
    ASSIGN_OR_RETURN(EventPage page, ReadEvents(delivered_, kPage));
    if (page.events.empty()) break;
    for (const Event& e : page.events) {
      if (e.revision() > revision) break;
      listener_(e);
      delivered_ = e.revision();
    }
  }
  delivered_ = std::max(delivered_, revision);
  return absl::OkStatus();
}

absl::StatusOr<EventPage> RadosBackend::ReadEvents(int64_t after_revision, int limit) {
  EventPage page;
  std::string after = after_revision >= 0 ? EventKey(after_revision) : "e.";
  for (bool first = true, more = true;
       more && (limit <= 0 || static_cast<int>(page.events.size()) < limit);
       first = false) {
    std::map<std::string, bufferlist> head, vals, oldest;
    bool oldest_more = false;
    librados::ObjectReadOperation op;
    int r1 = 0, r2 = 0, r3 = 0;
    const int want = limit <= 0 ? kPage
                                : std::min(kPage, limit - static_cast<int>(page.events.size()));
    op.omap_get_vals_by_keys({"head"}, &head, &r1);
    op.omap_get_vals2(after, "e.", want, &vals, &more, &r2);
    if (first) op.omap_get_vals2("e.", "e.", 1, &oldest, &oldest_more, &r3);
    int r = io_.operate(kCatalog, &op, nullptr);
    if (r < 0 || r1 < 0 || r2 < 0 || r3 < 0) {
      return Error(r < 0 ? r : std::min({r1, r2, r3}), "reading events", kCatalog);
    }
    if (first) {
      auto h = head.find("head");
      if (h == head.end()) return absl::InternalError(absl::StrCat("no head in ", where_));
      ASSIGN_OR_RETURN(RadosHead rh, Parse<RadosHead>(h->second, kCatalog));
      page.current_revision = rh.revision();
      if (!oldest.empty()) {
        ASSIGN_OR_RETURN(Event e, Parse<Event>(oldest.begin()->second, kCatalog));
        page.oldest_revision = e.revision();
      }
    }
    for (const auto& [key, value] : vals) {
      after = key;
      ASSIGN_OR_RETURN(Event e, Parse<Event>(value, kCatalog));
      if (e.revision() > page.current_revision) {  // published after the first page
        more = false;
        break;
      }
      page.events.push_back(std::move(e));
    }
  }
  return page;
}

absl::Status RadosBackend::Scan(RecordSink* sink) {
  ASSIGN_OR_RETURN(Head head, ReadHead());
  sink->SetRevision(head.revision);
  std::map<std::string, CheckpointRecord> latest;
  std::vector<ModelRecord> models;
  std::string after = "";
  for (bool more = true; more;) {
    std::map<std::string, bufferlist> vals;
    RETURN_IF_ERROR(OmapPage(kCatalog, after, "", &vals, &more));
    for (const auto& [key, value] : vals) {
      after = key;
      if (key.rfind("d.", 0) == 0) {
        ASSIGN_OR_RETURN(ModelRecord m, Parse<ModelRecord>(value, kCatalog));
        sink->AddModel(m);
        models.push_back(std::move(m));
      } else if (key.rfind("l.", 0) == 0) {
        ASSIGN_OR_RETURN(CheckpointRecord c, Parse<CheckpointRecord>(value, kCatalog));
        latest[key.substr(2)] = std::move(c);
      } else if (key.rfind("e.", 0) == 0) {
        ASSIGN_OR_RETURN(Event e, Parse<Event>(value, kCatalog));
        sink->AddEvent(e);
      }
    }
  }
  for (auto it = io_.nobjects_begin(); it != io_.nobjects_end(); ++it) {
    const std::string oid = it->get_oid();
    if (oid.rfind("m.", 0) == 0) {
      const std::string model = oid.substr(2);
      std::string key_after = "s.";
      for (bool more = true; more;) {
        std::map<std::string, bufferlist> vals;
        RETURN_IF_ERROR(OmapPage(oid, key_after, "s.", &vals, &more));
        for (const auto& [key, value] : vals) {
          key_after = key;
          int64_t step = -1;
          if (!absl::SimpleAtoi(key.substr(2), &step)) {
            sink->AddProblem(absl::StrCat("bad step key ", key, " in ", oid));
            continue;
          }
          ASSIGN_OR_RETURN(CheckpointRecord c, Parse<CheckpointRecord>(value, oid));
          sink->AddCheckpoint(model, step, c);
        }
      }
    } else if (oid.rfind("b.", 0) == 0) {
      ASSIGN_OR_RETURN(std::optional<BlobEntry> b, ReadBlob(oid.substr(2)));
      if (b.has_value()) sink->AddBlob(b->record, b->refs);
    } else if (oid.rfind("c.", 0) == 0) {
      const std::string hex = oid.substr(2);
      if (hex.size() != 64 ||
          !std::all_of(hex.begin(), hex.end(), [](char ch) { return absl::ascii_isxdigit(ch); })) {
        sink->AddProblem(absl::StrCat("object ", oid, " is not a chunk name"));
        continue;
      }
      const std::string raw = absl::HexStringToBytes(hex);
      std::map<std::string, bufferlist> attrs;
      bufferlist data;
      librados::ObjectReadOperation op;
      int r1 = 0, r2 = 0;
      op.getxattrs(&attrs, &r1);
      op.read(0, 0, &data, &r2);
      int r = io_.operate(oid, &op, nullptr);
      if (r == -ENOENT) continue;  // freed meanwhile
      if (r < 0 || r1 < 0 || r2 < 0) return Error(r < 0 ? r : std::min(r1, r2),
                                                  "checking a chunk", oid);
      const uint64_t refs = AttrU64(attrs, "refs");
      if (refs > 0) {
        sink->AddChunkRefcount(raw, static_cast<int64_t>(refs),
                               static_cast<uint32_t>(AttrU64(attrs, "size")));
      }
      sink->AddChunkBytes(raw, data.to_str());
      if (HasHold(attrs)) sink->AddHeld(raw);
    }
  }
  sink->AddServedHead(head);
  for (const ModelRecord& m : models) {
    auto l = latest.find(m.name());
    sink->AddServedModel(m, l == latest.end() ? std::optional<CheckpointRecord>()
                                              : std::optional<CheckpointRecord>(l->second));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenRadosStore(const RadosStoreOptions& options) {
  if (options.ceph_conf.empty()) {
    return absl::InvalidArgumentError("the RADOS store needs a ceph.conf (--ceph-conf FILE)");
  }
  if (options.pool.empty()) {
    return absl::InvalidArgumentError("the RADOS store needs a pool (--rados-pool POOL)");
  }
  auto backend = std::make_shared<RadosBackend>(options);
  RETURN_IF_ERROR(backend->Open(options));
  return NewBackedStore(std::move(backend), options.event_window);
}

}  // namespace mgreg
