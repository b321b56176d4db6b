// Looking inside a committed step: its tensors (from the bundle's .index), optionally
// verified against their CRC32C, and the TensorFlow `checkpoint` state file of a model.
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CORE_INSPECT_CALLS_H_
#define MGREG_SERVER_CORE_INSPECT_CALLS_H_

#include "absl/status/statusor.h"
#include "mgreg/v1/registry.pb.h"
#include "storage/store.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"

namespace mgreg {

class InspectCalls {
 public:
  // `store` must outlive the calls.
  explicit InspectCalls(Store* store) : store_(store) {}

  // RegistryService's methods of the same names (see registry_service.h).
  absl::StatusOr<v1::InspectCheckpointResponse> InspectCheckpoint(
      const v1::InspectCheckpointRequest& request);
  absl::StatusOr<tensorflow::CheckpointState> GetCheckpointState(
      const v1::GetCheckpointStateRequest& request);

 private:
  Store* const store_;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_INSPECT_CALLS_H_
