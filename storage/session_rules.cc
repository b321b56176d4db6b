#include "storage/session_rules.h"

#include "absl/strings/str_cat.h"

namespace mgreg::sessions {

absl::Status ValidateNewSession(const UploadSessionState& state) {
  if (state.session.id().empty()) {
    return absl::InvalidArgumentError("an upload session needs an id");
  }
  for (const auto& [name, file] : state.files) {
    if (name != file.file().name()) {
      return absl::InvalidArgumentError(
          absl::StrCat("upload ", state.session.id(), ": file record '",
                       file.file().name(), "' is filed under '", name, "'"));
    }
  }
  return absl::OkStatus();
}

bool LeaseRuns(const storage::UploadFileRecord& file, int64_t now_micros) {
  return !file.writer().empty() && file.writer_until_micros() > now_micros;
}

absl::Status CheckFileWrite(const UploadSessionState& stored,
                            const storage::UploadFileRecord& next,
                            absl::string_view writer, int64_t now_micros) {
  const std::string& id = stored.session.id();
  const std::string& name = next.file().name();
  if (stored.session.closed()) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload ", id, " is being committed (or was); file '", name,
                     "' cannot change any more: begin a new upload"));
  }
  auto it = stored.files.find(name);
  const int64_t version = it == stored.files.end() ? 0 : it->second.version();
  if (it != stored.files.end() && it->second.writer() != writer &&
      LeaseRuns(it->second, now_micros)) {
    return absl::FailedPreconditionError(
        absl::StrCat("file '", name, "' of upload ", id,
                     " is being written by another stream; wait for it or cancel it"));
  }
  if (version != next.version()) {
    return absl::AbortedError(absl::StrCat(
        "file '", name, "' of upload ", id, " changed meanwhile (version ", version,
        ", written from version ", next.version(), "): read it again"));
  }
  return absl::OkStatus();
}

absl::Status CheckSessionWrite(const UploadSessionState& stored,
                               const storage::UploadSessionRecord& next) {
  if (stored.session.closed()) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload ", stored.session.id(), " is already being committed"));
  }
  if (stored.session.version() != next.version()) {
    return absl::AbortedError(absl::StrCat("upload ", stored.session.id(),
                                           " changed meanwhile: read it again"));
  }
  return absl::OkStatus();
}

storage::UploadSessionRecord SessionAfter(const storage::UploadSessionRecord& stored,
                                          const storage::UploadSessionRecord& next) {
  storage::UploadSessionRecord out = stored;
  out.set_basename(next.basename());
  out.set_closed(next.closed());
  out.set_version(stored.version() + 1);
  return out;
}

absl::Status SessionNotFound(absl::string_view id) {
  return absl::NotFoundError(absl::StrCat(
      "upload '", id,
      "' does not exist: it was committed, aborted or expired, or never begun; begin a "
      "new upload"));
}

absl::Status SessionExists(absl::string_view id) {
  return absl::AlreadyExistsError(absl::StrCat("upload session ", id, " exists already"));
}

absl::Status SessionBusy(absl::string_view id) {
  return absl::AbortedError(
      absl::StrCat("upload ", id, ": other servers kept writing it; try again"));
}

}  // namespace mgreg::sessions
