// Upload sessions kept by the store, so that every server sharing a store serves every
// call of an upload: a chief begins it on one server, its workers put files through
// others, and the chief commits on the first (docs/design.md "Upload sessions in the
// store"). Store::sessions() is the way in. The in-memory and RocksDB stores keep them in
// process memory (one server; an upload does not survive a restart, its staged chunks are
// collected when the store reopens); the RADOS store keeps them in the pool.
//
// A session is a record (UploadSessionRecord) and one record per file
// (UploadFileRecord). Each record carries a version; a write names the version it read
// and is refused (ABORTED) if the record changed since, so two servers never lose each
// other's writes, and writers of different files never conflict. A file's writer holds
// a lease (UploadFileRecord.writer, writer_until_micros): while it runs, only that writer
// may change the file; a writer whose server died loses the file when it runs out. The
// rules are written once, in storage/session_rules.h.
//
// The chunks of a session are staged in its staging area, addressed by the session id:
// any server may put chunks into it and commit through it. The area's chunks are held
// until Release (or, for a session nobody touches for the store's expiry, the store's
// garbage collection), not until one server's area object is destroyed.
//
// Thread safety: every method may be called concurrently from any thread.
#ifndef MGREG_STORAGE_SESSION_STORE_H_
#define MGREG_STORAGE_SESSION_STORE_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg {

// A session and its files, as read at one moment.
struct UploadSessionState {
  storage::UploadSessionRecord session;
  std::map<std::string, storage::UploadFileRecord> files;  // by file name
};

class SessionStore {
 public:
  virtual ~SessionStore() = default;

  // Stores a new open session with its files (versions start at 1; last_active and
  // created are `now_micros`). Returns INVALID_ARGUMENT if the id is empty or a file
  // record's key and name differ; ALREADY_EXISTS if a session has that id.
  virtual absl::Status Create(const UploadSessionState& state, int64_t now_micros) = 0;

  // The session and its files. Returns NOT_FOUND if no session has that id (never
  // created, released, or collected after its expiry).
  virtual absl::StatusOr<UploadSessionState> Load(absl::string_view id) = 0;

  // Writes one file's record as `writer` ("" for a caller that writes no bytes, e.g. a
  // manifest entry), if `next.version` is the stored version (0: the file must not
  // exist yet). Stores it with the next version and returns it as stored.
  // Returns NOT_FOUND if no such session; FAILED_PRECONDITION if the session is closed,
  //   or another writer's lease on the file has not run out at `now_micros`; ABORTED if
  //   the file changed since `next.version` was read (read again and decide again).
  virtual absl::StatusOr<storage::UploadFileRecord> WriteFile(
      absl::string_view id, const storage::UploadFileRecord& next,
      absl::string_view writer, int64_t now_micros) = 0;

  // Writes the session's record (basename, closed) if `next.version` is the stored
  // version; id, request, owner and created stay as stored. Returns it as stored.
  // Returns NOT_FOUND if no such session; FAILED_PRECONDITION if it is closed already;
  //   ABORTED if it changed since `next.version` was read.
  virtual absl::StatusOr<storage::UploadSessionRecord> WriteSession(
      const storage::UploadSessionRecord& next, int64_t now_micros) = 0;

  // Ends the session: its records go, and the chunks its staging area holds that no
  // commit referenced are released (freed unless something else holds or references
  // them). OK if the session is gone already.
  virtual absl::Status Release(absl::string_view id) = 0;

  // The records of every session (open or closed but not released), in id order.
  virtual absl::StatusOr<std::vector<storage::UploadSessionRecord>> List() = 0;

  // The session's staging area, for PutChunk, HoldExistingChunk and Store::Commit. The
  // object may be dropped at any time: the chunks stay held until Release.
  // Returns NOT_FOUND if no such session.
  virtual absl::StatusOr<std::shared_ptr<StagingArea>> Staging(absl::string_view id) = 0;
};

}  // namespace mgreg

#endif  // MGREG_STORAGE_SESSION_STORE_H_
