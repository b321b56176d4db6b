// The RADOS backend's scan behind Store::Check: it freezes the registry (no process
// decides a write meanwhile), reads the catalog's records and every object's metadata,
// unfreezes, then reads and hashes the chunk bytes (storage/rados/rados_backend.h).
#include <algorithm>
#include <list>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {

using storage::CheckpointRecord;
using storage::Event;
using storage::ModelRecord;

namespace {

// Reads the objects `oids` with up to kWindow read operations in flight: `setup(i, op)`
// fills the operation of oids[i], `done(i, r)` takes its result (r < 0: error), in order.
constexpr size_t kWindow = 64;

template <typename Setup, typename Done>
absl::Status ReadMany(librados::IoCtx& io, const std::vector<std::string>& oids,
                      Setup setup, Done done) {
  for (size_t first = 0; first < oids.size(); first += kWindow) {
    const size_t n = std::min(kWindow, oids.size() - first);
    std::vector<librados::ObjectReadOperation> ops(n);
    std::vector<librados::AioCompletion*> completions(n);
    for (size_t i = 0; i < n; ++i) {
      setup(first + i, &ops[i]);
      completions[i] = librados::Rados::aio_create_completion();
      io.aio_operate(oids[first + i], completions[i], &ops[i], nullptr);
    }
    absl::Status status;
    for (size_t i = 0; i < n; ++i) {
      completions[i]->wait_for_complete();
      const int r = completions[i]->get_return_value();
      completions[i]->release();
      if (status.ok()) status = done(first + i, r);
    }
    RETURN_IF_ERROR(status);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<uint64_t> RadosBackend::FrozenBy() {
  std::map<std::string, bufferlist> attrs;
  int r = ReadAttrs(kCatalog, &attrs);
  if (r < 0) return Error(r, "reading the catalog", kCatalog);
  return AttrU64(attrs, "frozen");
}

absl::Status RadosBackend::Freeze() {
  const uint64_t me = rados_.get_instance_id();
  for (;;) {
    librados::ObjectWriteOperation op;
    op.cmpxattr("frozen", LIBRADOS_CMPXATTR_OP_EQ, uint64_t{0});
    op.setxattr("frozen", U64(me));
    int r = Write(kCatalog, &op, librados::OPERATION_FULL_FORCE);
    if (r == 0) return absl::OkStatus();
    if (r != -ECANCELED) return Error(r, "freezing the registry for a check", kCatalog);
    // Another check runs: wait for it like a writer.
    RETURN_IF_ERROR(WaitWhileFrozen("checking the registry"));
  }
}

absl::Status RadosBackend::Unfreeze() {
  librados::ObjectWriteOperation op;
  op.cmpxattr("frozen", LIBRADOS_CMPXATTR_OP_EQ, rados_.get_instance_id());
  op.setxattr("frozen", U64(0));
  int r = Write(kCatalog, &op, librados::OPERATION_FULL_FORCE);
  if (r == -ECANCELED) {
    return absl::UnavailableError(absl::StrCat(
        "checking the registry: its freeze was ended by another server while the check "
        "read (this server looked dead to it: no watch on the catalog for ",
        absl::FormatDuration(options_.watch_timeout),
        "), so the view may mix two moments; run the check again"));
  }
  if (r < 0) return Error(r, "unfreezing the registry after a check", kCatalog);
  return absl::OkStatus();
}

absl::Status RadosBackend::WaitWhileFrozen(absl::string_view what) {
  const absl::Time start = absl::Now();
  absl::Duration pause = absl::Milliseconds(1);
  for (;;) {
    ASSIGN_OR_RETURN(uint64_t freezer, FrozenBy());
    if (freezer == 0) return absl::OkStatus();
    // A checker that died (dropped out of the catalog's watchers) froze it for good:
    // end its freeze, guarded by its id (a new freeze stays).
    std::list<obj_watch_t> watchers;
    int r = io_.list_watchers(kCatalog, &watchers);
    if (r < 0) return Error(r, "listing the catalog's watchers", kCatalog);
    bool alive = false;
    for (const obj_watch_t& w : watchers)
      alive = alive || static_cast<uint64_t>(w.watcher_id) == freezer;
    if (!alive) {
      librados::ObjectWriteOperation op;
      op.cmpxattr("frozen", LIBRADOS_CMPXATTR_OP_EQ, freezer);
      op.setxattr("frozen", U64(0));
      r = Write(kCatalog, &op, librados::OPERATION_FULL_FORCE);
      if (r < 0 && r != -ECANCELED) {
        return Error(r, "ending the freeze of a dead checker", kCatalog);
      }
      continue;
    }
    const absl::Duration waited = absl::Now() - start;
    if (waited >= options_.freeze_wait) {
      std::string who = absl::StrCat("RADOS client ", freezer);
      std::map<std::string, bufferlist> vals;
      librados::ObjectReadOperation read;
      int rv = 0;
      read.omap_get_vals_by_keys({std::to_string(freezer)}, &vals, &rv);
      if (io_.operate("replicas", &read, nullptr) == 0 && rv == 0 && !vals.empty()) {
        absl::StrAppend(&who, ", ", vals.begin()->second.to_str());
      }
      return absl::UnavailableError(absl::StrCat(
          what,
          ": the registry is frozen by a consistency check (mgreg admin check) on "
          "another server (",
          who, "); waited ", absl::FormatDuration(waited),
          ": retry when the check has read the metadata"));
    }
    absl::SleepFor(std::min(pause, options_.freeze_wait - waited));
    pause = std::min(pause * 2, absl::Milliseconds(100));
  }
}

absl::Status RadosBackend::Scan(RecordSink* sink) {
  // The metadata is read while no process decides a write, so it is one view; the chunk
  // bytes are read and hashed after (they never change; a chunk freed meanwhile by a
  // later write was stored in the view).
  RETURN_IF_ERROR(Freeze());
  CrashPoint("check_frozen");
  std::vector<std::pair<std::string, uint64_t>> chunks;  // (raw, refs) of the view
  absl::Status scanned = ScanFrozen(sink, &chunks);
  if (scanned.ok() && options_.test_hold_freeze > absl::ZeroDuration()) {
    absl::SleepFor(options_.test_hold_freeze);
  }
  absl::Status unfrozen = Unfreeze();
  RETURN_IF_ERROR(scanned);
  RETURN_IF_ERROR(unfrozen);
  std::vector<std::string> oids;
  for (const auto& [raw, refs] : chunks) oids.push_back(ChunkObject(raw));
  std::vector<bufferlist> data(oids.size());
  std::vector<int> rv(oids.size());
  return ReadMany(
      io_, oids,
      [&](size_t i, librados::ObjectReadOperation* op) {
        op->read(0, 0, &data[i], &rv[i]);
      },
      [&](size_t i, int r) -> absl::Status {
        if (r == -ENOENT) return absl::OkStatus();  // freed by a write after the view
        if (r < 0 || rv[i] < 0)
          return Error(r < 0 ? r : rv[i], "checking a chunk", oids[i]);
        sink->AddChunkBytes(chunks[i].first, data[i].to_str());
        data[i].clear();
        return absl::OkStatus();
      });
}

absl::Status RadosBackend::ScanFrozen(
    RecordSink* sink, std::vector<std::pair<std::string, uint64_t>>* out) {
  ASSIGN_OR_RETURN(Head head, ReadHead());  // rolls forward one decided before the freeze
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
  std::vector<std::string> blobs, chunks;
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
      blobs.push_back(oid);
    } else if (oid.rfind("c.", 0) == 0) {
      const std::string hex = oid.substr(2);
      if (hex.size() != 64 || !std::all_of(hex.begin(), hex.end(), [](char ch) {
            return absl::ascii_isxdigit(ch);
          })) {
        sink->AddProblem(absl::StrCat("object ", oid, " is not a chunk name"));
        continue;
      }
      chunks.push_back(oid);
    }
  }
  {
    std::vector<bufferlist> data(blobs.size());
    std::vector<std::map<std::string, bufferlist>> attrs(blobs.size());
    std::vector<int> r1(blobs.size()), r2(blobs.size());
    RETURN_IF_ERROR(ReadMany(
        io_, blobs,
        [&](size_t i, librados::ObjectReadOperation* op) {
          op->read(0, 0, &data[i], &r1[i]);
          op->getxattrs(&attrs[i], &r2[i]);
        },
        [&](size_t i, int r) -> absl::Status {
          if (r == -ENOENT) return absl::OkStatus();  // a tombstone swept meanwhile
          if (r < 0 || r1[i] < 0 || r2[i] < 0) {
            return Error(r < 0 ? r : std::min(r1[i], r2[i]), "checking a blob", blobs[i]);
          }
          const uint64_t refs = AttrU64(attrs[i], "refs");
          if (refs == 0) return absl::OkStatus();  // a tombstone
          ASSIGN_OR_RETURN(storage::BlobRecord b,
                           Parse<storage::BlobRecord>(data[i], blobs[i]));
          sink->AddBlob(b, static_cast<int64_t>(refs));
          return absl::OkStatus();
        }));
  }
  std::vector<std::map<std::string, bufferlist>> attrs(chunks.size());
  std::vector<uint64_t> sizes(chunks.size());
  std::vector<time_t> mtimes(chunks.size());
  std::vector<int> r1(chunks.size()), r2(chunks.size());
  RETURN_IF_ERROR(ReadMany(
      io_, chunks,
      [&](size_t i, librados::ObjectReadOperation* op) {
        op->getxattrs(&attrs[i], &r1[i]);
        op->stat(&sizes[i], &mtimes[i], &r2[i]);
      },
      [&](size_t i, int r) -> absl::Status {
        if (r == -ENOENT) return absl::OkStatus();  // released and freed meanwhile
        if (r < 0 || r1[i] < 0 || r2[i] < 0) {
          return Error(r < 0 ? r : std::min(r1[i], r2[i]), "checking a chunk", chunks[i]);
        }
        const std::string raw = absl::HexStringToBytes(chunks[i].substr(2));
        const uint64_t refs = AttrU64(attrs[i], "refs");
        if (refs > 0) {
          sink->AddChunkRefcount(raw, static_cast<int64_t>(refs),
                                 static_cast<uint32_t>(AttrU64(attrs[i], "size")));
        }
        sink->AddChunkSize(raw, sizes[i]);
        if (HasHold(attrs[i])) sink->AddHeld(raw);
        out->emplace_back(raw, refs);
        return absl::OkStatus();
      }));
  sink->AddServedHead(head);
  for (const ModelRecord& m : models) {
    auto l = latest.find(m.name());
    sink->AddServedModel(m, l == latest.end()
                                ? std::optional<CheckpointRecord>()
                                : std::optional<CheckpointRecord>(l->second));
  }
  return absl::OkStatus();
}

}  // namespace mgreg::rados
