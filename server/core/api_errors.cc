#include "server/core/api_errors.h"

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/names.h"

namespace mgreg::api_errors {
namespace {

std::string MiB(int64_t bytes) { return absl::StrCat(bytes / (1 << 20), " MiB"); }

}  // namespace

std::string Quote(absl::string_view s) { return QuoteInput(s); }

absl::Status MemoryBudgetTooSmall(absl::string_view what, int64_t bytes, int64_t limit,
                                  absl::string_view name) {
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " needs ", MiB(bytes), " of working memory, more than this server's whole ",
      MiB(limit), " (", name, "); raise ", name, " if the server's memory allows it"));
}

absl::Status MemoryBudgetBusy(absl::string_view what, int64_t bytes, int64_t limit,
                              int64_t reserved, absl::string_view name) {
  return absl::ResourceExhaustedError(absl::StrCat(
      what, " needs ", MiB(bytes), " of working memory; other requests hold ",
      MiB(reserved), " of this server's ", MiB(limit), " (", name,
      "): retry when they have ended"));
}

absl::Status MetaTooLarge(int64_t size, int64_t limit) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the .meta has ", size, " bytes, more than this server's limit of ", limit,
      " bytes (limits.max_meta_bytes); strip it (e.g. export_meta_graph with "
      "clear_devices, fewer collections) or ask the operator to raise the limit"));
}

absl::Status UploadTooLarge(int64_t total, int64_t limit, bool learned) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "the checkpoint's files add up to ", total,
      learned ? " bytes with this file" : " bytes", ", more than this server's limit of ",
      limit, " bytes (limits.max_upload_bytes)"));
}

absl::Status UploadSizesOverflow() {
  return absl::InvalidArgumentError(
      "the announced file sizes add up to more than 2^63-1 bytes; announce the real "
      "sizes");
}

absl::Status MetadataTooLarge(int64_t entries, int64_t bytes) {
  return absl::InvalidArgumentError(absl::StrCat(
      "the step's metadata has ", entries, " entries and ", bytes,
      " bytes of keys and values; at most 64 entries, keys of at most 256 bytes and "
      "64 KiB in all are accepted: keep metrics such as loss there, and large data "
      "in files"));
}

absl::Status RestoredNameTooLong(absl::string_view basename, int64_t step,
                                 absl::string_view file, size_t length, size_t limit) {
  return absl::InvalidArgumentError(absl::StrCat(
      "basename ", Quote(basename), " is too long: restoring step ", step,
      " writes files named '<basename>-", step, ".", file, "' (", length,
      " bytes with the restore's temporary-file name), over the ", limit,
      "-byte file-name limit of common file systems; use a basename of at most ",
      basename.size() - (length - limit), " bytes"));
}

absl::Status TooManyOpenUploads(int64_t open, int64_t limit) {
  return absl::ResourceExhaustedError(absl::StrCat(
      "this server already has ", open, " open uploads, its limit is ", limit,
      " (limits.max_open_uploads); "
      "commit or abort uploads, or retry when some have ended"));
}

absl::Status TooManyUploadsOfWriter(int64_t held) {
  return absl::ResourceExhaustedError(
      absl::StrCat("this writer already has ", held,
                   " open uploads, this server's limit "
                   "(limits.max_concurrent_uploads_per_writer); commit or "
                   "abort one before beginning another"));
}

absl::Status MoreBytesThanAnnounced(absl::string_view file, int64_t size) {
  return absl::InvalidArgumentError(
      absl::StrCat("file '", file, "' received more than the ", size,
                   " bytes announced at BeginUpload; announce "
                   "the real size"));
}

absl::Status WatchRevisionAhead(int64_t since, int64_t current) {
  return absl::OutOfRangeError(
      absl::StrCat("since_revision ", since, " is beyond the store's current revision ",
                   current, "; resume from a revision this server reported (at most ",
                   current, "), or -1 for new events only"));
}

absl::Status StepAndAlias(int64_t step, absl::string_view alias) {
  return absl::InvalidArgumentError(absl::StrCat("the request names both step ", step,
                                                 " and alias ", Quote(alias),
                                                 "; give one of them"));
}

absl::Status RetentionOfUnknownModel(absl::string_view model) {
  return absl::NotFoundError(absl::StrCat(
      "model ", Quote(model),
      " does not exist (no step was pushed and no policy set); "
      "check the name, or set the policy before the first push with allow_missing "
      "(mgreg retention MODEL --allow-missing ...)"));
}

absl::Status PutFileIdle(absl::string_view file, absl::Duration bound) {
  return absl::DeadlineExceededError(absl::StrCat(
      "the PutFile stream", file.empty() ? "" : absl::StrCat(" of file ", Quote(file)),
      " sent nothing for ", absl::FormatDuration(bound),
      ", this server's limit (put_idle_timeout, --put-idle-timeout); the server ended it "
      "and released the file: resume at the bytes the server holds (GetUpload)"));
}

absl::Status UploadAbortedUnderWriter(absl::string_view upload_id) {
  return absl::AbortedError(
      absl::StrCat("upload ", Quote(upload_id),
                   " was aborted (AbortUpload) while this stream wrote "
                   "one of its files; begin a new upload"));
}

absl::Status UploadExpiredUnderWriter(absl::string_view upload_id, absl::Duration ttl) {
  return absl::AbortedError(
      absl::StrCat("upload ", Quote(upload_id),
                   " expired: it received nothing for longer than this "
                   "server's upload_ttl (",
                   absl::FormatDuration(ttl),
                   ", --upload-ttl) while this "
                   "stream held one of its files; begin a new upload"));
}

absl::Status BackupIntoDataDir(absl::string_view dir, absl::string_view data_dir) {
  return absl::FailedPreconditionError(
      absl::StrCat("backup directory ", Quote(dir), " is inside the server's data dir ",
                   Quote(data_dir), "; back up to a directory outside it"));
}

absl::Status TagsOnCheckpoint(absl::string_view model, int64_t step) {
  return absl::InvalidArgumentError(absl::StrCat(
      "step ", step, " of model ", Quote(model),
      " is a checkpoint, which holds one MetaGraphDef: --tags only chooses among a "
      "SavedModel's; leave it out"));
}

absl::Status NoMetaGraph(absl::string_view model, int64_t step) {
  return absl::NotFoundError(absl::StrCat("step ", step, " of model ", Quote(model),
                                          " has no MetaGraphDef; push the checkpoint "
                                          "with its .meta file"));
}

absl::Status NoCheckpointState(absl::string_view model) {
  return absl::FailedPreconditionError(absl::StrCat(
      "the latest step of model ", Quote(model),
      " is a SavedModel; a CheckpointState lists checkpoints only (restore SavedModels "
      "with mgreg restore, which writes numbered version directories)"));
}

}  // namespace mgreg::api_errors
