// The calls that change a model's committed steps and settings: retention (and applying
// it), pins, aliases, deletes, and reading the model's settings back (GetModel).
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CORE_SETTINGS_CALLS_H_
#define MGREG_SERVER_CORE_SETTINGS_CALLS_H_

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/service_options.h"
#include "storage/store.h"

namespace mgreg {

class SettingsCalls {
 public:
  // `store` and `options` must outlive the calls.
  SettingsCalls(Store* store, const RegistryServiceOptions* options)
      : store_(store), options_(options) {}

  // RegistryService's methods of the same names (see registry_service.h).
  absl::StatusOr<v1::Model> GetModel(const v1::GetModelRequest& request);
  absl::StatusOr<v1::Model> SetRetention(const v1::SetRetentionRequest& request);
  absl::StatusOr<v1::Checkpoint> PinCheckpoint(const v1::PinCheckpointRequest& request);
  absl::StatusOr<v1::Model> SetAlias(const v1::SetAliasRequest& request);
  absl::StatusOr<v1::Model> RemoveAlias(const v1::RemoveAliasRequest& request);
  absl::StatusOr<v1::DeleteCheckpointResponse> DeleteCheckpoint(
      const v1::DeleteCheckpointRequest& request);

  // Applies the model's retention policy (after a commit or a policy change): deletes
  // the steps beyond max_to_keep that are neither pinned, aliased nor preserved by
  // keep_every_n_hours. OK for a model the store does not know; the store's error.
  absl::Status ApplyRetention(absl::string_view model);

 private:
  Store* const store_;
  const RegistryServiceOptions* const options_;
  // Serializes retention decisions per service (they read, then delete).
  absl::Mutex retention_mu_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_SETTINGS_CALLS_H_
