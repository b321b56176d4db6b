// Rules shared by every Store implementation: request validation, the comparison
// that makes a re-push idempotent, and what events, aliases and retention decisions
// mean. Internal to storage/; not part of the contract.
#ifndef MGREG_STORAGE_COMMIT_PLAN_H_
#define MGREG_STORAGE_COMMIT_PLAN_H_

#include <cstdint>
#include <string>
#include <vector>

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

// True if the model record holds settings that keep it alive without steps.
bool HasSettings(const storage::ModelRecord& model);

// An event without its revision (the store stamps it when it writes).
storage::Event MakeEvent(storage::Event::Type type, absl::string_view model, int64_t step,
                         absl::string_view alias, int64_t time_micros);

// FAILED_PRECONDITION naming the aliases of `model` that name `step`; OK if none does.
absl::Status CheckNoAliasNames(const storage::ModelRecord& model, int64_t step);

// The steps an ApplyRetention call may delete, ascending and without duplicates: those
// of `delete_steps` that are not also in `preserve_steps` and that no alias names.
// (Existence and pins are checked by the store against the stored records.)
std::vector<int64_t> RetentionCandidates(const storage::ModelRecord& model,
                                         const std::vector<int64_t>& delete_steps,
                                         const std::vector<int64_t>& preserve_steps);

// ReadEvents' checks, given the store's state at one moment: the current revision and
// the revision of the oldest retained event (current + 1 if none is retained).
// OUT_OF_RANGE if an event after `after_revision` is no longer available.
absl::Status CheckEventsAvailable(int64_t after_revision, int64_t oldest_available);

// "model 'x' has no checkpoints and no settings", NOT_FOUND.
absl::Status UnknownModel(absl::string_view model);

}  // namespace mgreg::storage_internal

#endif  // MGREG_STORAGE_COMMIT_PLAN_H_
