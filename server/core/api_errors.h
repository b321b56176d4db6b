// The registry's newer API error texts, in one place: each says what was wrong and
// what to change, in the caller's terms. Input echoed in a message goes through
// Quote(), so a message never carries raw control characters or kilobytes of a name.
#ifndef MGREG_SERVER_CORE_API_ERRORS_H_
#define MGREG_SERVER_CORE_API_ERRORS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace mgreg::api_errors {

// `s` C-escaped and cut to at most 64 bytes of input ("...(5000 bytes)" after a cut).
std::string Quote(absl::string_view s);

// RESOURCE_EXHAUSTED: a request needs more memory than the whole budget `name`.
absl::Status MemoryBudgetTooSmall(absl::string_view what, int64_t bytes, int64_t limit,
                                  absl::string_view name);
// RESOURCE_EXHAUSTED: the budget `name` is held by other requests now; retry later.
absl::Status MemoryBudgetBusy(absl::string_view what, int64_t bytes, int64_t limit,
                              int64_t reserved, absl::string_view name);

// RESOURCE_EXHAUSTED: the .meta is larger than limits.max_meta_bytes.
absl::Status MetaTooLarge(int64_t size, int64_t limit);
// RESOURCE_EXHAUSTED: the upload's files add up to more than limits.max_upload_bytes.
absl::Status UploadTooLarge(int64_t total, int64_t limit, bool learned);
// INVALID_ARGUMENT: the announced sizes add up past what a 64-bit count holds.
absl::Status UploadSizesOverflow();
// INVALID_ARGUMENT: user metadata beyond its limits.
absl::Status MetadataTooLarge(int64_t entries, int64_t bytes);
// INVALID_ARGUMENT: `<basename>-<step>.<file>` (plus the restore's temporary-file
// decoration) would exceed the 255-byte file-name limit of common file systems.
absl::Status RestoredNameTooLong(absl::string_view basename, int64_t step,
                                 absl::string_view file, size_t length, size_t limit);
// RESOURCE_EXHAUSTED: the server's cap on open uploads (all callers) is reached.
absl::Status TooManyOpenUploads(int64_t open, int64_t limit);
// RESOURCE_EXHAUSTED: one writer holds limits.max_concurrent_uploads_per_writer uploads.
absl::Status TooManyUploadsOfWriter(int64_t held);
// INVALID_ARGUMENT: a PutFile stream sent more bytes of `file` than the `size` its
// upload announced.
absl::Status MoreBytesThanAnnounced(absl::string_view file, int64_t size);

// OUT_OF_RANGE: a watch resumes from a revision the store has not reached.
absl::Status WatchRevisionAhead(int64_t since, int64_t current);
// INVALID_ARGUMENT: a call names both a step and an alias.
absl::Status StepAndAlias(int64_t step, absl::string_view alias);
// NOT_FOUND: SetRetention on a model the store knows nothing of, without allow_missing.
absl::Status RetentionOfUnknownModel(absl::string_view model);
// DEADLINE_EXCEEDED: a PutFile stream waited longer than put_idle_timeout for its next
// message (`file` empty before its header).
absl::Status PutFileIdle(absl::string_view file, absl::Duration bound);
// ABORTED: the upload of a PutFile stream was aborted, or expired after `ttl` idle.
absl::Status UploadAbortedUnderWriter(absl::string_view upload_id);
absl::Status UploadExpiredUnderWriter(absl::string_view upload_id, absl::Duration ttl);
// FAILED_PRECONDITION: a backup into the live data dir.
absl::Status BackupIntoDataDir(absl::string_view dir, absl::string_view data_dir);
// INVALID_ARGUMENT: GraphOptions.tags on a checkpoint step (tags choose a SavedModel's
// MetaGraphDef).
absl::Status TagsOnCheckpoint(absl::string_view model, int64_t step);
// NOT_FOUND: a graph read (GetMetaGraph, GetCollection) of a step pushed without one.
absl::Status NoMetaGraph(absl::string_view model, int64_t step);
// FAILED_PRECONDITION: GetCheckpointState of a model whose latest step is a SavedModel.
absl::Status NoCheckpointState(absl::string_view model);

}  // namespace mgreg::api_errors

#endif  // MGREG_SERVER_CORE_API_ERRORS_H_
