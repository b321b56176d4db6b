#include "common/mutex_mode.h"

#include "absl/synchronization/mutex.h"

namespace mgreg {

void TurnOffMutexDeadlockDetection() {
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
}

}  // namespace mgreg
