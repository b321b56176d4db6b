// The RADOS backend's chunk bytes and staging holds: a staging area holds a chunk with
// an xattr h.<instance>.<area> (or, for an upload session's area, h.u.<id>) on its
// object, so no process frees a chunk an upload (in any process) holds; each hold is
// listed in the process's (the session's) holds object before it is put, so the GC can
// end the holds of a process that died (of a session that expired) (rados_gc.cc).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "storage/rados/rados_backend.h"

namespace mgreg::rados {

using storage::BlobRecord;
using storage::ChunkRef;

RadosArea::~RadosArea() {
  if (session_) {
    // The session's holds outlive this object: dropping the session ends them.
    for (const std::string& raw : held_) backend_->Track(raw, -1);
    return;
  }
  std::vector<std::string> unlist;
  for (const std::string& raw : listed_) {
    if (!held_.contains(raw)) unlist.push_back(raw);  // a commit ended the hold
  }
  for (const std::string& raw : held_) {
    // A failure leaves the hold and its listing behind: the chunk is kept, and the GC
    // ends the hold once this process is gone.
    if (backend_->Release(hold_, raw).ok()) unlist.push_back(raw);
    backend_->Track(raw, -1);
  }
  // Likewise, a listing left behind is dropped by the GC once this process is gone.
  backend_->UnlistHolds(holds_oid_, hold_, unlist).IgnoreError();
}

absl::Status RadosArea::List(const std::string& raw) {
  if (listed_.contains(raw)) return absl::OkStatus();
  RETURN_IF_ERROR(backend_->ListHolds(holds_oid_, hold_, {raw}));
  listed_.insert(raw);
  return absl::OkStatus();
}

absl::Status RadosArea::PutChunk(const ChunkRef& ref, absl::string_view data) {
  if (held_.contains(ref.sha256())) return absl::OkStatus();
  RETURN_IF_ERROR(List(ref.sha256()));
  RETURN_IF_ERROR(backend_->Put(hold_, ref, data));
  held_.insert(ref.sha256());
  backend_->Track(ref.sha256(), 1);
  return absl::OkStatus();
}

absl::StatusOr<bool> RadosArea::HoldExistingChunk(const ChunkRef& ref) {
  if (held_.contains(ref.sha256())) return true;
  RETURN_IF_ERROR(List(ref.sha256()));
  ASSIGN_OR_RETURN(bool held, backend_->Hold(hold_, ref.sha256()));
  if (held) {
    held_.insert(ref.sha256());
    backend_->Track(ref.sha256(), 1);
  }
  return held;
}

absl::Status RadosArea::PrepareCommit(const std::vector<const BlobRecord*>& blobs) {
  const uint64_t epoch = backend_->watch_epoch();
  if (!session_ && epoch == watch_epoch_) return absl::OkStatus();
  std::vector<std::string> raws;
  absl::flat_hash_set<std::string> seen;
  for (const BlobRecord* blob : blobs) {
    for (const ChunkRef& c : blob->chunks()) {
      // A session's area holds, under its one name, what any process put into it.
      const bool want =
          session_ ? !held_.contains(c.sha256()) : held_.contains(c.sha256());
      if (want && seen.insert(c.sha256()).second) raws.push_back(c.sha256());
    }
  }
  RETURN_IF_ERROR(backend_->ListHolds(holds_oid_, hold_, raws));
  for (const std::string& raw : raws) {
    ASSIGN_OR_RETURN(bool held, backend_->Hold(hold_, raw));
    if (!held) {
      return absl::AbortedError(absl::StrCat(
          "chunk ", BytesToHex(raw),
          session_ ? " of this upload was released (the upload expired or was aborted): "
                     "push again"
                   : " of this upload was released while this server was cut off from "
                     "the Ceph cluster (other servers took it for dead): push again"));
    }
    if (session_ && held_.insert(raw).second) backend_->Track(raw, 1);
  }
  watch_epoch_ = epoch;
  return absl::OkStatus();
}

void RadosArea::Forget(const std::string& raw) {
  if (held_.erase(raw) > 0) backend_->Track(raw, -1);
}

absl::Status RadosBackend::ListHolds(const std::string& holds_oid,
                                     const std::string& hold,
                                     const std::vector<std::string>& raws) {
  if (raws.empty()) return absl::OkStatus();
  std::map<std::string, bufferlist> keys;
  for (const std::string& raw : raws) keys[absl::StrCat(hold, ".", BytesToHex(raw))];
  librados::ObjectWriteOperation op;
  op.omap_set(keys);
  int r = Write(holds_oid, &op, librados::OPERATION_FULL_TRY);
  if (r < 0) return Error(r, "listing staged chunks", holds_oid);
  return absl::OkStatus();
}

absl::Status RadosBackend::UnlistHolds(const std::string& holds_oid,
                                       const std::string& hold,
                                       const std::vector<std::string>& raws) {
  if (raws.empty()) return absl::OkStatus();
  std::set<std::string> keys;
  for (const std::string& raw : raws)
    keys.insert(absl::StrCat(hold, ".", BytesToHex(raw)));
  librados::ObjectWriteOperation op;
  op.omap_rm_keys(keys);
  int r = Write(holds_oid, &op, librados::OPERATION_FULL_FORCE);
  if (r < 0 && r != -ENOENT) return Error(r, "unlisting staged chunks", holds_oid);
  return absl::OkStatus();
}

void RadosBackend::Track(const std::string& raw, int delta) {
  absl::MutexLock lock(&local_mu_);
  if ((local_holds_[raw] += delta) <= 0) local_holds_.erase(raw);
}
absl::Status RadosBackend::Put(const std::string& hold, const ChunkRef& ref,
                               absl::string_view data) {
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

absl::StatusOr<bool> RadosBackend::Hold(const std::string& hold, const std::string& raw) {
  const std::string oid = ChunkObject(raw);
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

absl::Status RadosBackend::Release(const std::string& hold, const std::string& raw) {
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

absl::StatusOr<ChunkEntry> RadosBackend::ReadChunkEntry(absl::string_view raw) {
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

absl::StatusOr<std::optional<std::string>> RadosBackend::ReadChunkBytes(
    absl::string_view raw) {
  const std::string oid = ChunkObject(raw);
  bufferlist bl;
  int r = io_.read(oid, bl, 0, 0);
  if (r == -ENOENT) return std::optional<std::string>();
  if (r < 0) return Error(r, "reading a chunk", oid);
  return std::optional<std::string>(bl.to_str());
}

absl::StatusOr<bool> RadosBackend::HasChunk(absl::string_view raw) {
  const std::string oid = ChunkObject(raw);
  uint64_t size = 0;
  time_t mtime = 0;
  int r = io_.stat(oid, &size, &mtime);
  if (r == -ENOENT) return false;
  if (r < 0) return Error(r, "reading a chunk", oid);
  return true;
}

absl::Status RadosBackend::EngineStats(StoreStats* stats) {
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

}  // namespace mgreg::rados
