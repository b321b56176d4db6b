// The one place where storage records become API messages (mgreg.v1) and where a
// request's model, step and alias become the record they name; and the paging of the
// API's listings: page sizes, page tokens, and reading all of a model's steps from the
// store one page at a time.
#ifndef MGREG_SERVER_CORE_API_TRANSLATION_H_
#define MGREG_SERVER_CORE_API_TRANSLATION_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "mgreg/storage/records.pb.h"
#include "mgreg/v1/registry.pb.h"
#include "storage/store.h"

namespace mgreg {

// A listing's page size when the request gives 0, and the most one page holds (also
// the page size in which the service reads a model's steps from the store).
inline constexpr int kDefaultPageSize = 100;
inline constexpr int kMaxPageSize = 1000;

bool IsSavedModel(const storage::CheckpointRecord& record);

// A file of a request as the store records it (name, size, both digests as given).
storage::FileRecord FileRecordOf(const v1::FileInfo& f);
// The blob key (storage/blob_key.h) of a step's graph file (.meta, saved_model.pb[txt]),
// whose whole-file digest is record.graph_sha256.
std::string GraphBlobKey(const storage::CheckpointRecord& record);

// The API form of a step, without its aliases.
v1::Checkpoint ToApi(const storage::CheckpointRecord& record);
// The API form of a step with the aliases of `model` (its model's record) that name
// it, sorted.
v1::Checkpoint ToApi(const storage::CheckpointRecord& record,
                     const storage::ModelRecord& model);
// The API form of a step with the aliases that name it (none if the model was deleted
// meanwhile). The store's error if its model cannot be read.
absl::StatusOr<v1::Checkpoint> ToApiWithAliases(Store* store,
                                                const storage::CheckpointRecord& record);
// The API form of a model; `default_retention` for a model without a policy of its
// own. NOT_FOUND if the store knows nothing of the model.
absl::StatusOr<v1::Model> ModelToApi(Store* store, absl::string_view model,
                                     const storage::RetentionPolicy& default_retention);

// The record of `step`, of the step `alias` names, or of the latest step when neither
// is given. INVALID_ARGUMENT for a bad model name or step, or both a step and an alias;
// NOT_FOUND for an unknown model, step or alias.
absl::StatusOr<storage::CheckpointRecord> ResolveStep(Store* store,
                                                      absl::string_view model,
                                                      std::optional<int64_t> step,
                                                      absl::string_view alias = "");

// The page size a request asks for: kDefaultPageSize for 0, at most kMaxPageSize.
// INVALID_ARGUMENT if negative.
absl::StatusOr<int> PageSize(int32_t requested);
// Page tokens are opaque to callers: the listing ("models", "checkpoints"), its model
// or prefix, and the last item of the previous page.
std::string EncodePageToken(absl::string_view listing, absl::string_view model,
                            absl::string_view last);
// The last item of the previous page. INVALID_ARGUMENT if the token is malformed or
// came from another listing.
absl::StatusOr<std::string> DecodePageToken(absl::string_view token,
                                            absl::string_view listing,
                                            absl::string_view model);
// As DecodePageToken for the listing of `model`'s steps: the last step.
absl::StatusOr<int64_t> DecodeStepPageToken(absl::string_view token,
                                            absl::string_view model);

// Calls `visit` with every step of `model` in step order, reading the store
// kMaxPageSize steps at a time. The store's error (NOT_FOUND for an unknown model).
absl::Status ForEachCheckpoint(
    Store* store, absl::string_view model,
    const std::function<void(const storage::CheckpointRecord&)>& visit);

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_API_TRANSLATION_H_
