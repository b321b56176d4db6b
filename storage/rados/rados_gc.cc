// The RADOS backend's garbage collection (storage/rados/rados_backend.h): a process that
// dies mid-upload leaves holds on the chunks it staged; the GC ends them once the process
// has been missing from the catalog's watchers for dead_after, freeing what nothing else
// holds or references. Upload sessions no process wrote for session_expiry go the same
// way (rados_sessions.cc). It also removes blob tombstones older than tombstone_ttl. One
// process at a time collects, under a RADOS lock that expires if it dies.
#include <sys/time.h>
#include <unistd.h>

#include <list>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {
namespace {

constexpr char kReplicas[] = "replicas";
constexpr char kGcObject[] = "gc";
constexpr char kGcLock[] = "mgreg-gc";

}  // namespace

absl::Status RadosBackend::RegisterReplica() {
  char host[256] = {0};
  ::gethostname(host, sizeof(host) - 1);
  librados::ObjectWriteOperation op;
  op.omap_set({{instance_, Bl(absl::StrCat(host, " pid ", ::getpid()))}});
  int r = Write(kReplicas, &op, librados::OPERATION_FULL_FORCE);
  if (r < 0) return Error(r, "registering this server", kReplicas);
  return absl::OkStatus();
}

void RadosBackend::UnregisterReplica() {
  if (!gc_started_) return;  // not opened
  // Only when this process's holds are all gone: else the GC ends them (and forgets
  // this process) once it is gone.
  std::map<std::string, bufferlist> left;
  bool more = false;
  librados::ObjectReadOperation read;
  int rv = 0;
  read.omap_get_vals2("", "", 1, &left, &more, &rv);
  int r = io_.operate(HoldsObject(), &read, nullptr);
  if ((r < 0 && r != -ENOENT) || rv < 0 || !left.empty()) return;
  if (r == 0) io_.remove(HoldsObject());
  librados::ObjectWriteOperation forget;
  forget.omap_rm_keys({instance_});
  Write(kReplicas, &forget, librados::OPERATION_FULL_FORCE);
}

void RadosBackend::StartGc() {
  gc_ = std::thread([this] { GcLoop(); });
  gc_started_ = true;
}

void RadosBackend::StopGc() {
  if (!gc_started_) return;
  {
    absl::MutexLock lock(&tail_mu_);
    stop_ = true;
  }
  gc_.join();
  io_.unlock(kGcObject, kGcLock, instance_);  // -ENOENT if another process collects
}

void RadosBackend::GcLoop() {
  for (;;) {
    {
      absl::MutexLock lock(&tail_mu_);
      if (tail_mu_.AwaitWithTimeout(absl::Condition(&stop_), options_.gc_period)) return;
    }
    // A failed round (the cluster unreachable, a lost race) is retried at the next.
    CollectGarbage().IgnoreError();
  }
}

absl::Status RadosBackend::CollectGarbage() {
  // Renewed every round while this process lives; expires three periods after it died.
  timeval duration = absl::ToTimeval(options_.gc_period * 3);
  int r = io_.lock_exclusive(kGcObject, kGcLock, instance_, "mgreg garbage collection",
                             &duration, LIBRADOS_LOCK_FLAG_MAY_RENEW);
  if (r == -EBUSY) {
    missing_since_
        .clear();  // another process collects; start over if this one takes over
    return absl::OkStatus();
  }
  if (r < 0) return Error(r, "taking the GC lock", kGcObject);
  RETURN_IF_ERROR(ReapDeadReplicas());
  RETURN_IF_ERROR(ExpireSessions());
  if (absl::Now() - last_orphan_scan_ >= options_.orphan_scan_period) {
    RETURN_IF_ERROR(SweepOrphanChunks());
    last_orphan_scan_ = absl::Now();
  }
  return SweepTombstones();
}

absl::Status RadosBackend::ReapDeadReplicas() {
  std::list<obj_watch_t> watchers;
  int r = io_.list_watchers(kCatalog, &watchers);
  if (r < 0) return Error(r, "listing the catalog's watchers", kCatalog);
  absl::flat_hash_set<std::string> live = {instance_};
  for (const obj_watch_t& w : watchers) live.insert(std::to_string(w.watcher_id));
  std::vector<std::string> replicas;
  std::string after;
  for (bool more = true; more;) {
    std::map<std::string, bufferlist> vals;
    absl::Status s = OmapPage(kReplicas, after, "", &vals, &more);
    if (absl::IsNotFound(s)) break;
    RETURN_IF_ERROR(s);
    for (const auto& [key, value] : vals) {
      after = key;
      if (!live.contains(key)) replicas.push_back(key);
    }
  }
  const absl::Time now = absl::Now();
  absl::flat_hash_map<std::string, absl::Time> still_missing;
  absl::Status result;
  for (const std::string& instance : replicas) {
    auto it = missing_since_.find(instance);
    const absl::Time since = it == missing_since_.end() ? now : it->second;
    if (now - since < options_.dead_after) {
      still_missing[instance] = since;
      continue;
    }
    absl::Status s = ReapReplica(instance);
    if (!s.ok()) {
      still_missing[instance] = since;
      result.Update(s);
    }
  }
  missing_since_ = std::move(still_missing);
  return result;
}

absl::Status RadosBackend::ReapReplica(const std::string& instance) {
  const std::string oid = "holds." + instance, prefix = "h." + instance + ".";
  for (bool more = true; more;) {
    // Each page's keys are removed once done, so the next page starts at the front.
    std::map<std::string, bufferlist> vals;
    absl::Status s = OmapPage(oid, "", "", &vals, &more);
    if (absl::IsNotFound(s)) break;
    RETURN_IF_ERROR(s);
    std::set<std::string> done;
    for (const auto& [key, value] : vals) {
      const size_t dot = key.rfind('.');
      const std::string hex = dot == std::string::npos ? "" : key.substr(dot + 1);
      // Anything else than h.<instance>.<area>.<64 hex digits> is dropped unread.
      if (key.rfind(prefix, 0) == 0 && hex.size() == 64) {
        RETURN_IF_ERROR(Release(key.substr(0, dot), absl::HexStringToBytes(hex)));
      }
      done.insert(key);
    }
    if (done.empty()) break;
    librados::ObjectWriteOperation op;
    op.omap_rm_keys(done);
    int r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
    if (r < 0 && r != -ENOENT) return Error(r, "forgetting a dead server's holds", oid);
  }
  int r = io_.remove(oid);
  if (r < 0 && r != -ENOENT) return Error(r, "forgetting a dead server's holds", oid);
  librados::ObjectWriteOperation forget;
  forget.omap_rm_keys({instance});
  r = Write(kReplicas, &forget, librados::OPERATION_FULL_FORCE);
  if (r < 0 && r != -ENOENT) return Error(r, "forgetting a dead server", kReplicas);
  return absl::OkStatus();
}

absl::Status RadosBackend::SweepOrphanChunks() {
  // mtime has whole seconds: one more, so that nothing younger than dead_after goes.
  const time_t cutoff =
      absl::ToTimeT(absl::Now() - options_.dead_after - absl::Seconds(1));
  for (auto it = io_.nobjects_begin(); it != io_.nobjects_end(); ++it) {
    const std::string oid = it->get_oid();
    if (oid.rfind("tx.", 0) == 0) {
      RETURN_IF_ERROR(SweepTxnBody(oid, cutoff));
      continue;
    }
    if (oid.rfind("c.", 0) != 0 || oid.size() != 66) continue;
    std::map<std::string, bufferlist> attrs;
    uint64_t size = 0;
    time_t mtime = 0;
    int r1 = 0, r2 = 0;
    librados::ObjectReadOperation op;
    op.getxattrs(&attrs, &r1);
    op.stat(&size, &mtime, &r2);
    int r = io_.operate(oid, &op, nullptr);
    if (r == -ENOENT) continue;
    if (r < 0 || r1 < 0 || r2 < 0) {
      return Error(r < 0 ? r : std::min(r1, r2), "scanning for orphan chunks", oid);
    }
    // A chunk being freed or written now is young: only old orphans go.
    if (AttrU64(attrs, "refs") > 0 || HasHold(attrs) || mtime > cutoff) continue;
    // FreeChunk decides again on a fresh read, guarded by the object's version.
    RETURN_IF_ERROR(FreeChunk(absl::HexStringToBytes(oid.substr(2))).status());
  }
  return absl::OkStatus();
}

absl::Status RadosBackend::SweepTxnBody(const std::string& oid, time_t cutoff) {
  uint64_t size = 0;
  time_t mtime = 0;
  int r = io_.stat(oid, &size, &mtime);
  if (r == -ENOENT || (r == 0 && mtime > cutoff)) return absl::OkStatus();
  if (r < 0) return Error(r, "scanning for stale transactions", oid);
  // Garbage unless it is the decided transaction the catalog names right now (its
  // writer, or a process rolling it forward, removes it once published).
  ASSIGN_OR_RETURN(std::optional<storage::rados::RadosTxn> t,
                   ReadCatalogRecord<storage::rados::RadosTxn>("t"));
  if (t.has_value() && t->body_object() == oid) return absl::OkStatus();
  r = io_.remove(oid);
  if (r < 0 && r != -ENOENT) return Error(r, "removing a stale transaction", oid);
  return absl::OkStatus();
}

absl::Status RadosBackend::SweepTombstones() {
  const int64_t cutoff = absl::ToUnixSeconds(absl::Now() - options_.tombstone_ttl);
  std::string after = "z.";
  for (bool more = true, young = false; more && !young;) {
    std::map<std::string, bufferlist> vals;
    RETURN_IF_ERROR(OmapPage(kCatalog, after, "z.", &vals, &more));
    std::set<std::string> done;
    for (const auto& [key, value] : vals) {
      after = key;
      int64_t at = 0;
      uint64_t seq = 0;
      // z.<seq:020>.<hex>: in decision order, so the first young one ends the sweep.
      if (absl::SimpleAtoi(value.to_str(), &at) && at > cutoff) {
        young = true;
        break;
      }
      if (key.size() < 24 || !absl::SimpleAtoi(key.substr(2, 20), &seq)) {
        done.insert(key);
        continue;
      }
      const std::string oid = BlobObject(key.substr(23));
      std::map<std::string, bufferlist> attrs;
      uint64_t version = 0;
      int r = ReadAttrs(oid, &attrs, &version);
      if (r < 0 && r != -ENOENT) return Error(r, "reading a blob tombstone", oid);
      // Only the tombstone this key recorded: a later transaction that wrote the blob
      // again (and maybe removed it again, with a key of its own) keeps it.
      if (r == 0 && AttrU64(attrs, "refs") == 0 && AttrU64(attrs, "lsn") == seq) {
        librados::ObjectWriteOperation op;
        op.assert_version(version);
        op.remove();
        r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
        if (r == -ERANGE || r == -EOVERFLOW) continue;  // written meanwhile: next round
        if (r < 0 && r != -ENOENT) return Error(r, "removing a blob tombstone", oid);
      }
      done.insert(key);
    }
    if (done.empty()) continue;
    librados::ObjectWriteOperation op;
    op.omap_rm_keys(done);
    int r = Write(kCatalog, &op, librados::OPERATION_FULL_FORCE);
    if (r < 0) return Error(r, "forgetting swept tombstones", kCatalog);
  }
  return absl::OkStatus();
}

}  // namespace mgreg::rados
