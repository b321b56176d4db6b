// Request validation, in one place: every rule a request's names, files, sizes and
// settings must keep before the service acts on it. Each failure says what was wrong
// and what to change.
#ifndef MGREG_SERVER_CORE_VALIDATION_H_
#define MGREG_SERVER_CORE_VALIDATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "google/protobuf/map.h"
#include "mgreg/storage/records.pb.h"
#include "mgreg/v1/registry.pb.h"
#include "storage/blob_key.h"
#include "storage/planner.h"

namespace mgreg {

// INVALID_ARGUMENT unless `basename` can name a checkpoint prefix's file part: not
// empty, at most 255 bytes, no '/', control character, ".", ".." or "checkpoint".
absl::Status ValidateBasename(absl::string_view basename);
// INVALID_ARGUMENT if a file a restore writes, `<basename>-<step>.<file>` under its
// temporary name, would not fit the 255-byte file-name limit of Linux file systems.
absl::Status ValidateRestoredNames(absl::string_view basename, int64_t step);
// INVALID_ARGUMENT for user metadata beyond 64 entries, 256-byte keys or 64 KiB.
absl::Status ValidateMetadata(const google::protobuf::Map<std::string, std::string>& m);
// INVALID_ARGUMENT for a step kind the server does not know, or a SavedModel upload
// that names a basename.
absl::Status ValidateStepKind(const v1::BeginUploadRequest& request);
// The server's size limits on an upload's files (all of them, announced or learned so
// far): RESOURCE_EXHAUSTED for a .meta (or saved_model.pb) over `max_meta_bytes` or a
// total over `max_upload_bytes` (0: no limit); INVALID_ARGUMENT if the sizes overflow.
// `learned`: the last file came from a PutFile header.
absl::Status CheckUploadSizes(const std::vector<v1::FileInfo>& files,
                              int64_t max_meta_bytes, int64_t max_upload_bytes,
                              bool learned);
// A step's files: names, sizes and digests (INVALID_ARGUMENT), then that an index and
// every data shard are there (`missing_code`: INVALID_ARGUMENT for a manifest announced
// at BeginUpload, FAILED_PRECONDITION at the commit of an upload that learned its files
// from its writers, OK to skip the check). SavedModel steps: ValidateSavedModelNames.
absl::Status ValidateFiles(const std::vector<v1::FileInfo>& files,
                           absl::StatusCode missing_code, v1::StepKind kind);
// INVALID_ARGUMENT naming the file and `field` unless `digest` (of a file of `size`
// bytes) is 64 lower-case hex and, for an empty file, the SHA-256 of no bytes (both
// digest kinds of no bytes are that).
absl::Status ValidateDigest(absl::string_view file, absl::string_view field,
                            const std::string& digest, int64_t size);
// ValidateDigest of each digest the file gives (sha256, chunked_sha256); a file may give
// none (its writer gives the chunked one at the end:
// PutFileRequest.final_chunked_sha256).
absl::Status ValidateFileDigests(const v1::FileInfo& f);
// Whether `record` holds exactly the basename and files (names, sizes, digests) the
// request announces: kSame makes beginning it again a no-op, not a conflict; kUnknown
// when only files announced without a digest could differ (the commit decides, once
// their digests are known). Digests compare as planner::SameContent (an old record's
// chunked digest comes from its blob, `blob_of`).
absl::StatusOr<Sameness> SameFiles(const storage::CheckpointRecord& record,
                                   const v1::BeginUploadRequest& request,
                                   const planner::BlobLookup& blob_of);
// INVALID_ARGUMENT unless `alias` is an identifier: [A-Za-z_][A-Za-z0-9_.-]*, at most
// 64 bytes.
absl::Status ValidateAlias(absl::string_view alias);
// INVALID_ARGUMENT for a negative max_to_keep or a keep_every_n_hours that is not a
// finite number >= 0.
absl::Status ValidateRetention(const v1::RetentionPolicy& policy);

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_VALIDATION_H_
