// Rules shared by every Store implementation: request validation and the comparison
// that makes a re-push idempotent. Internal to storage/; not part of the contract.
#ifndef MGREG_STORAGE_COMMIT_PLAN_H_
#define MGREG_STORAGE_COMMIT_PLAN_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/store.h"

namespace mgreg::storage_internal {

// Checks everything about a CommitRequest that does not depend on the store's contents.
// On success fills `new_blobs` with the request's new blobs by sha256 (duplicates of an
// identical record collapse into one). Returns INVALID_ARGUMENT saying what is wrong.
absl::Status ValidateCommitRequest(
    const CommitRequest& request,
    absl::flat_hash_map<std::string, const storage::BlobRecord*>* new_blobs);

// INVALID_ARGUMENT unless ref names a chunk: 32-byte digest, 0 < size <= kMaxChunkBytes.
absl::Status ValidateChunkRef(const storage::ChunkRef& ref);

// ValidateChunkRef plus data.size() == ref.size.
absl::Status ValidateChunkData(const storage::ChunkRef& ref, absl::string_view data);

// True if both records name the same basename and the same files (name, size, digest).
bool SameContent(const storage::CheckpointRecord& a, const storage::CheckpointRecord& b);

// "model@step", for messages.
std::string StepName(absl::string_view model, int64_t step);

// Short hex of a chunk digest, for messages.
std::string ChunkName(absl::string_view sha256_raw);

int64_t NowMicros();

}  // namespace mgreg::storage_internal

#endif  // MGREG_STORAGE_COMMIT_PLAN_H_
