// The operator's calls: a consistent backup of the store, and its consistency check.
//
// Thread safety: all methods may be called concurrently (backups run one at a time).
#ifndef MGREG_SERVER_CORE_ADMIN_CALLS_H_
#define MGREG_SERVER_CORE_ADMIN_CALLS_H_

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "mgreg/v1/registry.pb.h"
#include "server/core/service_options.h"
#include "storage/store.h"

namespace mgreg {

class AdminCalls {
 public:
  // `store` and `options` must outlive the calls.
  AdminCalls(Store* store, const RegistryServiceOptions* options)
      : store_(store), options_(options) {}

  // RegistryService's methods of the same names (see registry_service.h).
  absl::StatusOr<v1::BackupResponse> Backup(const v1::BackupRequest& request);
  absl::StatusOr<v1::CheckStoreResponse> CheckStore(const v1::CheckStoreRequest& request);

 private:
  Store* const store_;
  const RegistryServiceOptions* const options_;
  // One backup at a time: a second one into the same directory then finds it exists.
  absl::Mutex backup_mu_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_ADMIN_CALLS_H_
