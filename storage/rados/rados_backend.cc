// The RADOS backend: connecting, the format marker, and reading records
// (storage/rados/rados_backend.h has the layout and the map of the other files).
#include "storage/rados/rados_backend.h"

#include <climits>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "storage/backed_store.h"

namespace mgreg {
namespace rados {

using storage::CheckpointRecord;
using storage::ModelRecord;

RadosBackend::RadosBackend(const RadosStoreOptions& o)
    : where_(absl::StrCat("pool '", o.pool, "'",
                          o.rados_namespace.empty()
                              ? std::string()
                              : absl::StrCat(" namespace '", o.rados_namespace, "'"),
                          " of the Ceph cluster in ", o.ceph_conf)),
      options_(o) {}

RadosBackend::~RadosBackend() {
  StopGc();
  UnregisterReplica();
  StopTailer();
  io_.close();
  rados_.shutdown();
}

absl::Status RadosBackend::Open(const RadosStoreOptions& o) {
  int r = rados_.init2(o.user.c_str(), "ceph", 0);
  if (r < 0)
    return absl::InvalidArgumentError(
        absl::StrCat("RADOS user '", o.user, "': ", std::strerror(-r)));
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
  instance_ = std::to_string(rados_.get_instance_id());

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
  RETURN_IF_ERROR(RegisterReplica());
  StartGc();
  return absl::OkStatus();
}

absl::StatusOr<Head> RadosBackend::ReadHead() {
  uint64_t waiting_for = 0;
  absl::Time since;
  for (int rolled = 0; rolled < kRetries;) {
    ASSIGN_OR_RETURN(Catalog c, ReadCatalog());
    if (!c.pending.has_value()) return c.head;
    // Its writer is most likely applying it right now: give it kTakeover to publish
    // before doing the same work (a writer that died leaves it to the next one).
    const absl::Time now = absl::Now();
    if (c.pending->seq() != waiting_for) {
      waiting_for = c.pending->seq();
      since = now;
    }
    if (now - since < kTakeover) {
      absl::SleepFor(Jitter(absl::Milliseconds(2)));
      continue;
    }
    RETURN_IF_ERROR(RollForward(*c.pending));
    ++rolled;
  }
  return absl::AbortedError("reading the registry head: registry busy");
}

absl::StatusOr<std::optional<CheckpointRecord>> RadosBackend::ReadCheckpoint(
    absl::string_view model, int64_t step) {
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

absl::StatusOr<std::optional<CheckpointRecord>> RadosBackend::ReadCheckpointBelow(
    absl::string_view model, int64_t below) {
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
    return absl::InternalError(absl::StrCat("bad step key ", vals.begin()->first, " in ",
                                            oid, " (", where_, ")"));
  }
  return ReadCheckpoint(model, INT64_MAX - inverted);
}

absl::StatusOr<std::optional<BlobEntry>> RadosBackend::ReadBlob(absl::string_view hex) {
  const std::string oid = BlobObject(hex);
  bufferlist data;
  std::map<std::string, bufferlist> attrs;
  librados::ObjectReadOperation op;
  int r1 = 0, r2 = 0;
  op.read(0, 0, &data, &r1);
  op.getxattrs(&attrs, &r2);
  int r = io_.operate(oid, &op, nullptr);
  if (r == -ENOENT) return std::optional<BlobEntry>();
  if (r < 0 || r1 < 0 || r2 < 0)
    return Error(r < 0 ? r : (r1 < 0 ? r1 : r2), "reading a blob", oid);
  BlobEntry e;
  e.refs = static_cast<int64_t>(AttrU64(attrs, "refs"));
  if (e.refs == 0) return std::optional<BlobEntry>();  // a tombstone
  if (!e.record.ParseFromString(data.to_str())) {
    return absl::InternalError(absl::StrCat("corrupt blob record ", oid, " in ", where_));
  }
  return std::optional<BlobEntry>(std::move(e));
}

absl::StatusOr<std::vector<ModelRecord>> RadosBackend::ListModels(
    absl::string_view start_after, int limit) {
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

absl::StatusOr<std::vector<CheckpointRecord>> RadosBackend::ListCheckpoints(
    absl::string_view model, int64_t first, int limit) {
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
int RadosBackend::ReadAttrs(const std::string& oid,
                            std::map<std::string, bufferlist>* attrs, uint64_t* version) {
  librados::ObjectReadOperation op;
  int rv = 0;
  op.getxattrs(attrs, &rv);
  int r = io_.operate(oid, &op, nullptr);
  if (version != nullptr) *version = io_.get_last_version();
  return r < 0 ? r : rv;
}

absl::Status RadosBackend::OmapPage(const std::string& oid, const std::string& after,
                                    const std::string& prefix,
                                    std::map<std::string, bufferlist>* vals, bool* more) {
  librados::ObjectReadOperation op;
  int rv = 0;
  op.omap_get_vals2(after, prefix, kPage, vals, more, &rv);
  int r = io_.operate(oid, &op, nullptr);
  if (r == -ENOENT) return absl::NotFoundError(oid);
  if (r < 0 || rv < 0) return Error(r < 0 ? r : rv, "listing records", oid);
  return absl::OkStatus();
}

}  // namespace rados

absl::StatusOr<std::unique_ptr<Store>> OpenRadosStore(const RadosStoreOptions& options) {
  if (options.ceph_conf.empty()) {
    return absl::InvalidArgumentError(
        "the RADOS store needs a ceph.conf (--ceph-conf FILE)");
  }
  if (options.pool.empty()) {
    return absl::InvalidArgumentError("the RADOS store needs a pool (--rados-pool POOL)");
  }
  RadosStoreOptions o = options;
  if (const char* crash_at = std::getenv("MGREG_RADOS_CRASH_AT");
      o.test_crash_at.empty() && crash_at != nullptr) {
    o.test_crash_at = crash_at;
  }
  auto backend = std::make_shared<rados::RadosBackend>(o);
  RETURN_IF_ERROR(backend->Open(o));
  return NewBackedStore(std::move(backend), options.event_window);
}

}  // namespace mgreg
