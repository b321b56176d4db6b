// The RADOS backend's upload sessions (storage/session_backend.h): session <id> is the
// object u.<id> (omap s -> UploadSessionRecord, f.<name> -> UploadFileRecord; xattrs v,
// the version every write moves, and active, the last write's time), listed in the
// `sessions` object before it is created, so that the GC finds it (rados_gc.cc). Its
// staging area's holds are h.u.<id>, listed in holds.u.<id> (rados_chunks.cc).
//
// One version per session object (cmpxattr on v) rather than one per omap key: a write
// is one op read-decide-write, a file learned from its writer has no key to compare
// yet, and writers of different files of one session lose a race only when their
// writes fall within one round trip of each other (they read and decide again).
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "storage/rados/rados_backend.h"

namespace mgreg::rados {
namespace {

using storage::UploadFileRecord;
using storage::UploadSessionRecord;

constexpr char kSessions[] = "sessions";
constexpr char kSessionKey[] = "s";
// Files of a session read in one op (far above the service's file limits).
constexpr int kMaxSessionKeys = 100000;

std::string SessionObject(absl::string_view id) { return absl::StrCat("u.", id); }
std::string FileKey(absl::string_view name) { return absl::StrCat("f.", name); }

}  // namespace

absl::StatusOr<bool> RadosBackend::CreateSession(const UploadSessionState& state) {
  const std::string& id = state.session.id();
  const std::string oid = SessionObject(id);
  {
    // Listed first: a process dying right after the create leaves nothing unlisted.
    librados::ObjectWriteOperation list;
    list.omap_set({{id, U64(static_cast<uint64_t>(state.session.created_micros()))}});
    int r = Write(kSessions, &list, librados::OPERATION_FULL_TRY);
    if (r < 0) return Error(r, "listing an upload session", kSessions);
  }
  std::map<std::string, bufferlist> keys;
  keys[kSessionKey] = Proto(state.session);
  for (const auto& [name, file] : state.files) keys[FileKey(name)] = Proto(file);
  librados::ObjectWriteOperation op;
  op.create(true);
  op.setxattr("v", U64(1));
  op.setxattr("active", U64(static_cast<uint64_t>(state.session.last_active_micros())));
  op.omap_set(keys);
  int r = Write(oid, &op, librados::OPERATION_FULL_TRY);
  if (r == -EEXIST) return false;
  if (r < 0) return Error(r, "creating an upload session", oid);
  return true;
}

absl::StatusOr<std::optional<SessionBackend::Snapshot>> RadosBackend::ReadSession(
    absl::string_view id) {
  const std::string oid = SessionObject(id);
  std::map<std::string, bufferlist> attrs, vals;
  bool more = false;
  int r1 = 0, r2 = 0;
  librados::ObjectReadOperation op;
  op.getxattrs(&attrs, &r1);
  op.omap_get_vals2("", "", kMaxSessionKeys, &vals, &more, &r2);
  int r = io_.operate(oid, &op, nullptr);
  if (r == -ENOENT) return std::optional<Snapshot>();
  if (r < 0 || r1 < 0 || r2 < 0) {
    return Error(r < 0 ? r : std::min(r1, r2), "reading an upload session", oid);
  }
  if (more) {
    return absl::InternalError(absl::StrCat("upload session ", oid, " in ", where_,
                                            " has more than ", kMaxSessionKeys,
                                            " records"));
  }
  Snapshot snap;
  snap.version = AttrU64(attrs, "v");
  for (const auto& [key, value] : vals) {
    if (key == kSessionKey) {
      ASSIGN_OR_RETURN(snap.state.session, Parse<UploadSessionRecord>(value, oid));
    } else if (key.rfind("f.", 0) == 0) {
      ASSIGN_OR_RETURN(UploadFileRecord f, Parse<UploadFileRecord>(value, oid));
      snap.state.files[key.substr(2)] = std::move(f);
    }
  }
  if (snap.version == 0 || snap.state.session.id() != id) {
    return absl::InternalError(
        absl::StrCat("corrupt upload session ", oid, " in ", where_));
  }
  snap.state.session.set_last_active_micros(
      static_cast<int64_t>(AttrU64(attrs, "active")));
  return std::optional<Snapshot>(std::move(snap));
}

absl::StatusOr<bool> RadosBackend::WriteSession(absl::string_view id, uint64_t version,
                                                const UploadSessionRecord* session,
                                                const UploadFileRecord* file,
                                                int64_t now_micros) {
  const std::string oid = SessionObject(id);
  std::map<std::string, bufferlist> keys;
  if (session != nullptr) keys[kSessionKey] = Proto(*session);
  if (file != nullptr) keys[FileKey(file->file().name())] = Proto(*file);
  librados::ObjectWriteOperation op;
  op.cmpxattr("v", LIBRADOS_CMPXATTR_OP_EQ, version);
  op.setxattr("v", U64(version + 1));
  op.setxattr("active", U64(static_cast<uint64_t>(now_micros)));
  if (!keys.empty()) op.omap_set(keys);
  // An upload's bytes are staged already: recording them may use the full pool's last
  // room, so that the upload can commit (and the pool be freed by its GC).
  int r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
  if (r == -ECANCELED || r == -ENOENT) return false;
  if (r < 0) return Error(r, "writing an upload session", oid);
  return true;
}

absl::Status RadosBackend::DropSession(absl::string_view id) {
  const std::string oid = SessionObject(id);
  int r = io_.remove(oid);
  if (r < 0 && r != -ENOENT) return Error(r, "removing an upload session", oid);
  return ReleaseSessionHolds(std::string(id));
}

absl::Status RadosBackend::ReleaseSessionHolds(const std::string& id) {
  // holds.u.<id> lists h.u.<id>.<hex>: ReapReplica's layout for instance "u.<id>".
  RETURN_IF_ERROR(ReapReplica(absl::StrCat("u.", id)));
  librados::ObjectWriteOperation forget;
  forget.omap_rm_keys({id});
  int r = Write(kSessions, &forget, librados::OPERATION_FULL_FORCE);
  if (r < 0 && r != -ENOENT) return Error(r, "forgetting an upload session", kSessions);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<UploadSessionRecord>> RadosBackend::ListSessions() {
  std::vector<UploadSessionRecord> out;
  std::string after;
  for (bool more = true; more;) {
    std::map<std::string, bufferlist> vals;
    absl::Status s = OmapPage(kSessions, after, "", &vals, &more);
    if (absl::IsNotFound(s)) break;
    RETURN_IF_ERROR(s);
    for (const auto& [id, unused] : vals) {
      after = id;
      ASSIGN_OR_RETURN(std::optional<Snapshot> snap, ReadSession(id));
      if (snap.has_value()) out.push_back(std::move(snap->state.session));
    }
  }
  return out;
}

absl::Status RadosBackend::ExpireSessions() {
  const uint64_t cutoff =
      static_cast<uint64_t>(absl::ToUnixMicros(absl::Now() - options_.session_expiry));
  std::string after;
  absl::Status result;
  for (bool more = true; more;) {
    std::map<std::string, bufferlist> vals;
    absl::Status s = OmapPage(kSessions, after, "", &vals, &more);
    if (absl::IsNotFound(s)) break;
    RETURN_IF_ERROR(s);
    for (const auto& [id, listed] : vals) {
      after = id;
      const std::string oid = SessionObject(id);
      std::map<std::string, bufferlist> attrs;
      int r = ReadAttrs(oid, &attrs);
      if (r < 0 && r != -ENOENT) return Error(r, "reading an upload session", oid);
      if (r == 0) {
        const uint64_t active = AttrU64(attrs, "active");
        if (active >= cutoff) continue;
        // Only if nobody wrote it since it was read.
        librados::ObjectWriteOperation op;
        op.cmpxattr("v", LIBRADOS_CMPXATTR_OP_EQ, AttrU64(attrs, "v"));
        op.remove();
        r = Write(oid, &op, librados::OPERATION_FULL_FORCE);
        if (r == -ECANCELED) continue;  // written meanwhile: alive
        if (r < 0 && r != -ENOENT) return Error(r, "expiring an upload session", oid);
      } else {
        // Listed but not there: being created (listing comes first), or dropped by a
        // process that died before it ended the holds. Only the latter is this old.
        uint64_t at = 0;
        if (absl::SimpleAtoi(listed.to_str(), &at) && at >= cutoff) continue;
      }
      // Gone (dropped by a process that died before its holds went) or expired.
      result.Update(ReleaseSessionHolds(id));
    }
  }
  return result;
}

}  // namespace mgreg::rados
