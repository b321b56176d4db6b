// A byte budget shared by requests whose memory grows with what they handle: graph
// exports and .meta validation (which hold the parsed graph), and server streams
// (which pin the messages a slow reader has not taken yet). A request reserves its
// bytes before it allocates them and releases them when it ends, so the sum of what
// such requests hold never exceeds the budget, whatever the callers do.
//
// Thread safety: all methods may be called concurrently.
#ifndef MGREG_SERVER_CORE_MEMORY_BUDGET_H_
#define MGREG_SERVER_CORE_MEMORY_BUDGET_H_

#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace mgreg {

class MemoryBudget;

// Bytes held from a MemoryBudget until destroyed (or Release()d). Movable.
class MemoryReservation {
 public:
  MemoryReservation() = default;
  MemoryReservation(MemoryReservation&& other) noexcept { *this = std::move(other); }
  MemoryReservation& operator=(MemoryReservation&& other) noexcept;
  ~MemoryReservation() { Release(); }

  int64_t bytes() const { return bytes_; }
  void Release();

 private:
  friend class MemoryBudget;
  MemoryReservation(MemoryBudget* budget, int64_t bytes)
      : budget_(budget), bytes_(bytes) {}
  MemoryBudget* budget_ = nullptr;
  int64_t bytes_ = 0;
};

class MemoryBudget {
 public:
  // `limit_bytes` <= 0: no limit (reservations always succeed and are only counted).
  // `name` is the configuration field that sets the limit, for messages.
  MemoryBudget(int64_t limit_bytes, std::string name)
      : limit_(limit_bytes), name_(std::move(name)) {}

  // Reserves `bytes` for `what` (e.g. "exporting a 40 MiB graph"), waiting at most
  // `wait` for other requests to release enough. RESOURCE_EXHAUSTED naming the limit
  // if `bytes` exceeds the whole budget or did not become free in time.
  // The budget must outlive the reservation.
  absl::StatusOr<MemoryReservation> Reserve(int64_t bytes, absl::string_view what,
                                            absl::Duration wait = absl::ZeroDuration());

  int64_t limit() const { return limit_; }
  int64_t reserved() const;

 private:
  friend class MemoryReservation;
  void Free(int64_t bytes);

  const int64_t limit_;
  const std::string name_;
  mutable absl::Mutex mu_;
  int64_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace mgreg

#endif  // MGREG_SERVER_CORE_MEMORY_BUDGET_H_
