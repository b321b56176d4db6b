// The planner: every rule of the Store contract (storage/store.h), written once. It
// decides each mutation from a RecordReader view of the current records and returns it
// as a Transaction of absolute new values (storage/backend.h), or the contract's error.
// It has no engine, no mutex and no I/O of its own (the clock comes in as `now`), so
// tests drive it with a table of records (tests/storage/planner_test.cc).
//
// The functions below it are the contract's other errors and checks, shared by the
// generic Store (storage/backed_store.cc): request validation, and what a read that
// found nothing returns. Every message of the contract is written here and only here.
//
// Thread safety: a Planner is immutable; its methods may be called concurrently, each
// with a view that does not change while it plans (the store's write mutex).
#ifndef MGREG_STORAGE_PLANNER_H_
#define MGREG_STORAGE_PLANNER_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "storage/backend.h"
#include "storage/store.h"

namespace mgreg {

// A commit request's new blobs by key (storage/blob_key.h), pointing into the request.
using NewBlobs = absl::flat_hash_map<std::string, const storage::BlobRecord*>;

// What PlanCommit decided.
struct CommitPlan {
  // The record as the transaction commits it (or, if unchanged, the stored one).
  CommitResult result;
  // nullopt when result.unchanged: nothing to write.
  std::optional<Transaction> txn;
};

class Planner {
 public:
  // How many of the newest events the store keeps (at least 1).
  explicit Planner(int64_t event_window);

  int64_t event_window() const { return event_window_; }

  // Store::Commit, after ValidateCommitRequest filled `new_blobs`. `area` is the
  // staging area the commit goes through (nullptr for none): a new blob's chunk must be
  // committed already or held by it.
  // Errors: ALREADY_EXISTS, FAILED_PRECONDITION, INVALID_ARGUMENT as Store::Commit.
  absl::StatusOr<CommitPlan> PlanCommit(RecordReader& view, const CommitRequest& request,
                                        const NewBlobs& new_blobs,
                                        const BackendStagingArea* area,
                                        int64_t now) const;
  // Store::DeleteCheckpoint. Errors: NOT_FOUND, FAILED_PRECONDITION (an alias).
  absl::StatusOr<Transaction> PlanDelete(RecordReader& view, absl::string_view model,
                                         int64_t step, int64_t now) const;
  // Store::SetAlias (its new revision is txn.head_after.revision). Errors: NOT_FOUND.
  absl::StatusOr<Transaction> PlanSetAlias(RecordReader& view, absl::string_view model,
                                           absl::string_view alias, int64_t step,
                                           int64_t now) const;
  // Store::RemoveAlias. Errors: NOT_FOUND.
  absl::StatusOr<Transaction> PlanRemoveAlias(RecordReader& view, absl::string_view model,
                                              absl::string_view alias, int64_t now) const;
  // Store::SetPinned; nullopt when the step already has that mark. Errors: NOT_FOUND.
  absl::StatusOr<std::optional<Transaction>> PlanSetPinned(RecordReader& view,
                                                           absl::string_view model,
                                                           int64_t step,
                                                           bool pinned) const;
  // Store::SetRetention. Errors: INVALID_ARGUMENT (model name).
  absl::StatusOr<Transaction> PlanSetRetention(RecordReader& view,
                                               absl::string_view model,
                                               const storage::RetentionPolicy& policy,
                                               int64_t now) const;
  // Store::ApplyRetention. Errors: NOT_FOUND (unknown model).
  absl::StatusOr<Transaction> PlanApplyRetention(
      RecordReader& view, absl::string_view model,
      const std::vector<int64_t>& delete_steps,
      const std::vector<int64_t>& preserve_steps, int64_t last_preserved_micros,
      int64_t now) const;

 private:
  const int64_t event_window_;
};

namespace planner {

// Checks everything about a CommitRequest that does not depend on the store's contents
// and fills `new_blobs` (duplicates of an identical record collapse into one).
// Returns INVALID_ARGUMENT saying what is wrong.
absl::Status ValidateCommitRequest(const CommitRequest& request, NewBlobs* new_blobs);
// INVALID_ARGUMENT unless ref names a chunk: 32-byte digest, 0 < size <= kMaxChunkBytes.
absl::Status ValidateChunkRef(const storage::ChunkRef& ref);
// ValidateChunkRef, plus data no larger than kMaxChunkBytes and of ref.size bytes.
absl::Status ValidateChunkData(const storage::ChunkRef& ref, absl::string_view data);
// INVALID_ARGUMENT if dir is empty; FAILED_PRECONDITION if it exists or its parent
// does not (Store::Backup).
absl::Status ValidateBackupDir(const std::string& dir);
// Store::ReadEvents' checks on a page a backend read: an empty page if after_revision
// is current or beyond, OUT_OF_RANGE if an event after it is no longer kept.
absl::StatusOr<EventPage> CheckEventPage(int64_t after_revision, EventPage page);

// Whether a commit may replace `old`, a step of `model` that exists with other content:
// ALREADY_EXISTS unless `overwrite`; FAILED_PRECONDITION naming the pin and the aliases
// that hold the step unless `force` (replacing it changes what they serve).
absl::Status CheckReplace(const storage::ModelRecord& model,
                          const storage::CheckpointRecord& old, bool overwrite,
                          bool force);
// The blob holding a file (storage/blob_key.h), nullopt if there is none; for
// SameContent.
using BlobLookup = std::function<absl::StatusOr<std::optional<storage::BlobRecord>>(
    const storage::FileRecord&)>;
// True if both records name the same basename and the same files: names, sizes and the
// digests both records carry; where they carry different kinds (an old sha256-only
// record against a chunked-only one), the chunked digests, the old one derived from its
// blob's chunk list (BlobChunkedSha256; no match if it cannot be). `blob_of`'s errors.
absl::StatusOr<bool> SameContent(const storage::CheckpointRecord& a,
                                 const storage::CheckpointRecord& b,
                                 const BlobLookup& blob_of);
// True if the model record holds settings that keep it alive without steps.
bool HasSettings(const storage::ModelRecord& model);

// The errors of reads that found nothing (NOT_FOUND), and of bad stored bytes.
absl::Status StepNotFound(absl::string_view model, int64_t step);
absl::Status NoCommittedCheckpoint(absl::string_view model);
absl::Status UnknownModel(absl::string_view model);
absl::Status UnknownBlob(absl::string_view hex);
absl::Status ChunkNotStored(absl::string_view raw);
// HoldExistingChunk of a chunk the store lacks.
absl::Status ChunkToSend(absl::string_view raw);
// INVALID_ARGUMENT: HoldExistingChunk names a chunk with another size than its own.
absl::Status ExistingChunkOfOtherSize(absl::string_view raw, uint32_t stored,
                                      uint32_t named);
// DATA_LOSS: a chunk's stored size is not the size its reference gives.
absl::Status ChunkSizeMismatch(absl::string_view raw, size_t stored, uint32_t expected);
// FAILED_PRECONDITION: Backup of a store whose engine (e.g. "in-memory") has no copy.
absl::Status CannotBackUp(absl::string_view engine);
// INVALID_ARGUMENT: Commit through a staging area of another store.
absl::Status ForeignStagingArea();
// ABORTED: other writers kept winning (a backend shared by several processes).
absl::Status RegistryBusy(absl::string_view what);
// INTERNAL: a record the store holds contradicts the others.
absl::Status CorruptRecord(absl::string_view what);

// "step 3 of model 'm'", for messages.
std::string StepName(absl::string_view model, int64_t step);
// Short hex of a chunk digest, for messages.
std::string ChunkName(absl::string_view raw);

}  // namespace planner
}  // namespace mgreg

#endif  // MGREG_STORAGE_PLANNER_H_
