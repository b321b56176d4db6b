// The RADOS backend's transactions: decide one with a guarded op on the catalog, apply
// it to the objects (each op guarded by the object's lsn, so a repeated or late apply
// changes nothing), publish it, and roll forward one whose writer stopped
// (storage/rados/rados_backend.h).
#include <unistd.h>

#include <algorithm>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {

using storage::CheckpointRecord;
using storage::Event;
using storage::rados::RadosHead;
using storage::rados::RadosTxn;

absl::StatusOr<RadosBackend::Catalog> RadosBackend::ReadCatalog() {
  for (int i = 0;; ++i) {
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
    ObserveVersion(head.version());
    c.head = FromProto(head);
    c.head.version = seq;
    if (seq > applied) {
      auto t = vals.find("t");
      if (t == vals.end()) {
        return absl::InternalError(
            absl::StrCat("transaction ", seq, " decided but not in ", where_));
      }
      ASSIGN_OR_RETURN(RadosTxn txn, Parse<RadosTxn>(t->second, kCatalog));
      if (!txn.body_object().empty()) {
        const std::string oid = txn.body_object();
        absl::StatusOr<RadosTxn> whole = ReadTxnBody(oid, txn.seq());
        // Published and its body removed since the catalog was read: read it again.
        if (absl::IsAborted(whole.status()) && i < kRetries) continue;
        RETURN_IF_ERROR(whole.status());
        txn = std::move(*whole);
        txn.set_body_object(oid);
      }
      c.pending = std::move(txn);
    }
    return c;
  }
}

namespace {
// Apply ops of one stage in flight at once.
constexpr size_t kApplyWindow = 64;
// A transaction's body object is written and read in pieces of this size, far below
// Ceph's osd_max_write_size (90 MiB: one bigger write fails EMSGSIZE, measured).
constexpr size_t kBodyPiece = 8u << 20;
}  // namespace

absl::Status RadosBackend::WriteTxnBody(const std::string& oid, const std::string& body) {
  for (size_t off = 0; off == 0 || off < body.size(); off += kBodyPiece) {
    const size_t n = std::min(kBodyPiece, body.size() - off);
    librados::ObjectWriteOperation op;
    if (off == 0) {
      op.create(true);
      op.write_full(Bl(absl::string_view(body).substr(0, n)));
    } else {
      op.write(off, Bl(absl::string_view(body).substr(off, n)));
    }
    int r = Write(oid, &op, librados::OPERATION_FULL_TRY);
    if (r < 0) {
      io_.remove(oid);  // what was written of it; the GC's pool scan if this fails too
      return Error(r, "writing a transaction", oid);
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RadosTxn> RadosBackend::ReadTxnBody(const std::string& oid, uint64_t seq) {
  uint64_t size = 0;
  time_t mtime = 0;
  int r = io_.stat(oid, &size, &mtime);
  std::string body;
  for (uint64_t off = 0; r == 0 && off < size; off += kBodyPiece) {
    bufferlist bl;
    r = io_.read(oid, bl, kBodyPiece, off);
    if (r >= 0) {
      body.append(bl.to_str());
      r = 0;
    }
  }
  if (r == -ENOENT) {
    // Published (and removed) by another process since the catalog was read: the
    // caller reads the catalog again.
    ASSIGN_OR_RETURN(bool done, AppliedAlready(seq));
    if (done) return absl::AbortedError("transaction published meanwhile");
    return absl::InternalError(absl::StrCat(
        "transaction ", seq, " is decided but its body ", oid, " is gone from ", where_));
  }
  if (r < 0) return Error(r, "reading a transaction", oid);
  return Parse<RadosTxn>(Bl(body), oid);
}

absl::StatusOr<bool> RadosBackend::AppliedAlready(uint64_t seq) {
  std::map<std::string, bufferlist> attrs;
  int r = ReadAttrs(kCatalog, &attrs);
  if (r < 0) return Error(r, "reading the catalog", kCatalog);
  return AttrU64(attrs, "applied") >= seq;
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
  {  // up: the bytes first, kApplyWindow ops in flight (each object guarded alone)
    std::vector<const storage::rados::RadosChunkWrite*> ups;
    for (const auto& c : t.chunks()) {
      if (c.refs_after() != 0) ups.push_back(&c);
    }
    for (size_t first = 0; first < ups.size(); first += kApplyWindow) {
      const size_t n = std::min(kApplyWindow, ups.size() - first);
      std::vector<librados::ObjectWriteOperation> ops(n);
      std::vector<librados::AioCompletion*> done(n);
      for (size_t i = 0; i < n; ++i) {
        const auto& c = *ups[first + i];
        guarded(&ops[i]);
        ops[i].setxattr("refs", U64(c.refs_after()));
        ops[i].setxattr("lsn", U64(s));
        if (c.release_hold() && !t.committing_hold().empty()) {
          ops[i].rmxattr(t.committing_hold().c_str());
        }
        done[i] = librados::Rados::aio_create_completion();
        io_.aio_operate(ChunkObject(c.raw()), done[i], &ops[i],
                        librados::OPERATION_FULL_FORCE);
      }
      absl::Status status;
      for (size_t i = 0; i < n; ++i) {
        done[i]->wait_for_complete();
        const int r = done[i]->get_return_value();
        done[i]->release();
        if (status.ok()) {
          status =
              outcome(r, ChunkObject(ups[first + i]->raw()), "chunk", false).status();
        }
      }
      RETURN_IF_ERROR(status);
    }
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
  CrashPoint("between_applies");
  if (!t.model().empty() &&
      (t.put_checkpoints_size() > 0 || t.removed_steps_size() > 0)) {
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
    RETURN_IF_ERROR(
        outcome(Write(oid, &op, librados::OPERATION_FULL_FORCE), oid, "blob", true)
            .status());
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
    ASSIGN_OR_RETURN(
        bool skipped,
        outcome(Write(oid, &op, librados::OPERATION_FULL_FORCE), oid, "chunk", true));
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
  // The blobs this transaction removed leave tombstones, swept after tombstone_ttl.
  for (const auto& b : t.blobs()) {
    if (b.refs_after() == 0) {
      set[TombstoneKey(s, b.hex())] = U64(absl::ToUnixSeconds(absl::Now()));
    }
  }
  for (const Event& e : t.events()) {
    // Events already beyond the window (more in one write than it holds) are not kept.
    if (e.revision() >= t.head_after().oldest_event())
      set[EventKey(e.revision())] = Proto(e);
  }
  for (int64_t rev = t.head_before().oldest_event(); rev < t.head_after().oldest_event();
       ++rev) {
    rm.insert(EventKey(rev));
  }
  if (!t.model().empty()) {
    const std::string d = absl::StrCat("d.", t.model()),
                      l = absl::StrCat("l.", t.model());
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
    if (done) r = 0;
  }
  if (r < 0) return Error(r, t.what(), kCatalog);
  ObserveVersion(s);
  if (!t.body_object().empty()) {
    // Published: nothing reads the body any more (a failure leaves it to the GC).
    io_.remove(t.body_object());
  }
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

  // The decision: this transaction is next, or another process wrote first, or another
  // process has the turn (see AfterLostRace), or a check froze the registry.
  librados::ObjectWriteOperation decide;
  decide.cmpxattr("seq", LIBRADOS_CMPXATTR_OP_EQ, version);
  decide.cmpxattr("applied", LIBRADOS_CMPXATTR_OP_EQ, version);
  decide.cmpxattr("frozen", LIBRADOS_CMPXATTR_OP_EQ, uint64_t{0});  // no check reads
  int turn_cmp = 0;
  decide.omap_cmp({{kTurn, {Bl(my_turn_), LIBRADOS_CMPXATTR_OP_EQ}}}, &turn_cmp);
  if (!my_turn_.empty()) decide.omap_rm_keys({kTurn});
  // A big transaction goes to an object of its own first; the catalog names it.
  std::string body = t.SerializeAsString();
  if (static_cast<int64_t>(body.size()) > options_.max_txn_bytes) {
    return absl::ResourceExhaustedError(absl::StrCat(
        txn.what, ": its transaction is ", body.size(), " bytes (", txn.chunks.size(),
        " chunks, ", txn.blobs.size(), " blobs); the RADOS store takes at most ",
        options_.max_txn_bytes,
        " bytes per transaction (the object holding it must stay below Ceph's "
        "osd_max_object_size, 128 MiB by default): push the files in bigger chunks "
        "(up to 4 MiB) or as several steps"));
  }
  if (static_cast<int64_t>(body.size()) > options_.inline_txn_bytes) {
    const std::string oid =
        absl::StrCat("tx.", instance_, ".", txn_objects_.fetch_add(1) + 1);
    RETURN_IF_ERROR(WriteTxnBody(oid, body));
    RadosTxn stub;
    stub.set_seq(t.seq());
    stub.set_what(t.what());
    stub.set_body_object(oid);
    body = stub.SerializeAsString();
    t.set_body_object(oid);  // this process's copy: Publish removes the object
  }
  decide.omap_set({{"t", Bl(body)}});
  decide.setxattr("seq", U64(version + 1));
  const bool adds_bytes = !txn.put_checkpoints.empty();
  CrashPoint("before_decide");
  int r =
      Write(kCatalog, &decide,
            adds_bytes ? librados::OPERATION_FULL_TRY : librados::OPERATION_FULL_FORCE);
  ApplyResult result;
  if (r < 0 && !t.body_object().empty()) io_.remove(t.body_object());  // not decided
  if (r == -ECANCELED) {
    ASSIGN_OR_RETURN(uint64_t freezer, FrozenBy());
    if (freezer != 0) {
      RETURN_IF_ERROR(WaitWhileFrozen(txn.what));
    } else {
      RETURN_IF_ERROR(AfterLostRace());
    }
    result.stale = true;
    return result;
  }
  if (r < 0) return Error(r, txn.what, kCatalog);
  losses_ = 0;
  my_turn_.clear();
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
  if (options_.test_stop_after == 1) return stopped();
  CrashPoint("after_decide");
  RETURN_IF_ERROR(ApplyObjects(t, &result.freed_bytes));
  if (options_.test_stop_after == 2) return stopped();
  RETURN_IF_ERROR(Publish(t));
  CrashPoint("before_notify");
  {
    absl::MutexLock lock(&deliver_mu_);
    RETURN_IF_ERROR(Deliver(txn.head_after.revision, &t));
  }
  // Every write, events or not: the other processes' caches move on (GetModel serves
  // pins and retention policies too).
  NotifyWatchers();
  return result;
}

absl::Status RadosBackend::AfterLostRace() {
  ++losses_;
  std::string seen;  // another process's turn, and since when this one has seen it
  absl::Time seen_since;
  for (int i = 0; i < kRetries * 100; ++i) {
    std::map<std::string, bufferlist> vals;
    librados::ObjectReadOperation read;
    int rv = 0;
    read.omap_get_vals_by_keys({kTurn}, &vals, &rv);
    int r = io_.operate(kCatalog, &read, nullptr);
    if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "reading the catalog", kCatalog);
    const std::string turn = vals.count(kTurn) > 0 ? vals[kTurn].to_str() : "";
    if (turn.empty() || turn == my_turn_) {
      if (turn.empty() && losses_ >= kTurnAfterLosses) {
        // Lost often enough: take the turn, so that only this process decides next.
        const std::string mine = absl::StrCat(instance_, ".", ++turns_taken_);
        librados::ObjectWriteOperation take;
        int cmp = 0;
        take.omap_cmp({{kTurn, {Bl(""), LIBRADOS_CMPXATTR_OP_EQ}}}, &cmp);
        take.omap_set({{kTurn, Bl(mine)}});
        r = Write(kCatalog, &take, librados::OPERATION_FULL_FORCE);
        if (r == 0) my_turn_ = mine;
        if (r < 0 && r != -ECANCELED) return Error(r, "taking a turn", kCatalog);
        if (r == -ECANCELED) continue;  // another process took it first: wait for it
      }
      break;
    }
    // Another process has the turn: wait until it decides. One that keeps it for
    // kTakeover (it died, or has nothing to write after all) loses it.
    const absl::Time now = absl::Now();
    if (turn != seen) {
      seen = turn;
      seen_since = now;
    } else if (now - seen_since > kTakeover) {
      librados::ObjectWriteOperation drop;
      int cmp = 0;
      drop.omap_cmp({{kTurn, {Bl(turn), LIBRADOS_CMPXATTR_OP_EQ}}}, &cmp);
      drop.omap_rm_keys({kTurn});
      r = Write(kCatalog, &drop, librados::OPERATION_FULL_FORCE);
      if (r < 0 && r != -ECANCELED) return Error(r, "ending a stale turn", kCatalog);
      continue;
    }
    absl::SleepFor(Jitter(absl::Milliseconds(2)));
  }
  // Writers that lost together do not plan again in lockstep.
  absl::SleepFor(Jitter(absl::Milliseconds(std::min(losses_, 8))));
  return absl::OkStatus();
}

void RadosBackend::CrashPoint(absl::string_view point) const {
  if (options_.test_crash_at == point) ::_exit(86);
}

absl::Duration RadosBackend::Jitter(absl::Duration most) {
  absl::MutexLock lock(&jitter_mu_);
  return absl::Microseconds(std::uniform_int_distribution<int64_t>(
      0, absl::ToInt64Microseconds(most))(jitter_));
}

}  // namespace mgreg::rados
