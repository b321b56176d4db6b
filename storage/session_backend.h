// What a backend keeps of upload sessions (storage/session_store.h), with no rules: a
// session's records as one versioned unit, read and written whole or not at all. The
// generic SessionStore (NewSessionStore) decides every write from a fresh read with the
// rules of storage/session_rules.h and writes it guarded by the version it read, reading
// and deciding again when another process wrote first.
//
// The in-memory and RocksDB stores keep sessions in process memory
// (NewLocalSessionStore); the RADOS backend keeps them in the pool
// (storage/rados/rados_sessions.cc).
//
// Thread safety: every method may be called concurrently.
#ifndef MGREG_STORAGE_SESSION_BACKEND_H_
#define MGREG_STORAGE_SESSION_BACKEND_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/session_store.h"
#include "storage/store.h"

namespace mgreg {

class SessionBackend {
 public:
  // A session's records and the version of the whole, which every write moves.
  struct Snapshot {
    UploadSessionState state;
    uint64_t version = 0;
  };

  virtual ~SessionBackend() = default;

  // Stores the records of a new session (last_active set by the caller); false (and
  // nothing written) if a session has that id.
  virtual absl::StatusOr<bool> CreateSession(const UploadSessionState& state) = 0;
  // nullopt if no session has that id. state.session.last_active_micros is the time of
  // the last write.
  virtual absl::StatusOr<std::optional<Snapshot>> ReadSession(absl::string_view id) = 0;
  // Writes `session` and `file` (each if not null) and sets the last write's time to
  // `now_micros`, if the session is still at `version`; false (nothing written) if it
  // moved or is gone.
  virtual absl::StatusOr<bool> WriteSession(absl::string_view id, uint64_t version,
                                            const storage::UploadSessionRecord* session,
                                            const storage::UploadFileRecord* file,
                                            int64_t now_micros) = 0;
  // Removes the session's records, then ends its staging area's holds (chunks nothing
  // else holds or references are freed). OK if it is gone already.
  virtual absl::Status DropSession(absl::string_view id) = 0;
  // The records of every session, in id order.
  virtual absl::StatusOr<std::vector<storage::UploadSessionRecord>> ListSessions() = 0;
};

// The SessionStore over `records`; `staging(id)` opens the staging area of session `id`
// (called only for a session that exists).
using SessionStagingFn =
    std::function<absl::StatusOr<std::shared_ptr<StagingArea>>(absl::string_view id)>;
std::unique_ptr<SessionStore> NewSessionStore(std::shared_ptr<SessionBackend> records,
                                              SessionStagingFn staging);

// Sessions in this process's memory, with one staging area per session from
// `store->NewStagingArea()`, destroyed (releasing its holds) at Release once no caller
// uses it. For the stores one process owns (in-memory, RocksDB). `store` must outlive it.
std::unique_ptr<SessionStore> NewLocalSessionStore(Store* store);

}  // namespace mgreg

#endif  // MGREG_STORAGE_SESSION_BACKEND_H_
