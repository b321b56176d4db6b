// The rules of upload sessions (storage/session_store.h), written once: which writes a
// session's stored state allows, and every error message of the SessionStore. Pure
// functions of the records, in the planner's style (storage/planner.h), so that every
// backend's sessions behave alike (tests/storage/session_store_test.cc).
#ifndef MGREG_STORAGE_SESSION_RULES_H_
#define MGREG_STORAGE_SESSION_RULES_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/session_store.h"

namespace mgreg::sessions {

// SessionStore::Create's checks. INVALID_ARGUMENT: empty id, a file keyed by another
// name than its record's.
absl::Status ValidateNewSession(const UploadSessionState& state);

// Whether `writer` may write `next` over the stored state at `now_micros`:
// FAILED_PRECONDITION if the session is closed or another writer's lease on the file
// runs; ABORTED if the file's stored version is not next.version (0: absent).
absl::Status CheckFileWrite(const UploadSessionState& stored,
                            const storage::UploadFileRecord& next,
                            absl::string_view writer, int64_t now_micros);

// Whether `next` may replace the stored session record: FAILED_PRECONDITION if it is
// closed; ABORTED if its version is not next.version.
absl::Status CheckSessionWrite(const UploadSessionState& stored,
                               const storage::UploadSessionRecord& next);

// The record `next` as written over `stored` (the fields a write may not change kept
// as stored, the version bumped).
storage::UploadSessionRecord SessionAfter(const storage::UploadSessionRecord& stored,
                                          const storage::UploadSessionRecord& next);

// True if the file's writer lease still runs at `now_micros`.
bool LeaseRuns(const storage::UploadFileRecord& file, int64_t now_micros);

// NOT_FOUND: no session with that id.
absl::Status SessionNotFound(absl::string_view id);
// ALREADY_EXISTS: Create of a taken id.
absl::Status SessionExists(absl::string_view id);
// ABORTED: another process kept writing the session between read and write.
absl::Status SessionBusy(absl::string_view id);

}  // namespace mgreg::sessions

#endif  // MGREG_STORAGE_SESSION_RULES_H_
