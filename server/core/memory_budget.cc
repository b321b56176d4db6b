#include "server/core/memory_budget.h"

#include <utility>

#include "server/core/api_errors.h"

namespace mgreg {

MemoryReservation& MemoryReservation::operator=(MemoryReservation&& other) noexcept {
  if (this != &other) {
    Release();
    budget_ = std::exchange(other.budget_, nullptr);
    bytes_ = std::exchange(other.bytes_, 0);
  }
  return *this;
}

void MemoryReservation::Release() {
  if (budget_ != nullptr) budget_->Free(bytes_);
  budget_ = nullptr;
  bytes_ = 0;
}

absl::StatusOr<MemoryReservation> MemoryBudget::Reserve(int64_t bytes,
                                                        absl::string_view what,
                                                        absl::Duration wait) {
  if (bytes < 0) bytes = 0;
  if (limit_ > 0 && bytes > limit_) {
    return api_errors::MemoryBudgetTooSmall(what, bytes, limit_, name_);
  }
  absl::MutexLock lock(&mu_);
  if (limit_ > 0) {
    auto fits = [this, bytes]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return reserved_ + bytes <= limit_;
    };
    if (!fits() && wait > absl::ZeroDuration()) {
      mu_.AwaitWithTimeout(absl::Condition(&fits), wait);
    }
    if (!fits()) {
      return api_errors::MemoryBudgetBusy(what, bytes, limit_, reserved_, name_);
    }
  }
  reserved_ += bytes;
  return MemoryReservation(this, bytes);
}

int64_t MemoryBudget::reserved() const {
  absl::MutexLock lock(&mu_);
  return reserved_;
}

void MemoryBudget::Free(int64_t bytes) {
  absl::MutexLock lock(&mu_);
  reserved_ -= bytes;
}

}  // namespace mgreg
