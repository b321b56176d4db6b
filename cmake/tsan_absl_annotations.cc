// ThreadSanitizer builds only (MGREG_SANITIZE=thread, cmake/MgregHardening.cmake).
//
// Debian's abseil is not built with TSan, so absl::Mutex, absl::CondVar and
// absl::Notification synchronize through atomics and futexes TSan cannot see: every
// access guarded by an absl::Mutex would be reported as a race. This file defines those
// abseil functions in the executable (which interposes them, for our code and for the
// system libraries that call them, e.g. gRPC), forwards to abseil's own definition
// (dlsym RTLD_NEXT) and tells TSan about the happens-before edge: an acquire after every
// lock / wait returns, a release before every unlock / wait / notify. Reader locks are
// treated like writer locks (a little stronger than the truth: TSan will not report a
// write made under a reader lock against another reader).
//
// The mangled names are those of Debian 12's libabsl_synchronization (20220623, inline
// namespace debian3); a missing one aborts at the first call with its name.
#include <dlfcn.h>

#include <cstdio>
#include <cstdlib>

#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

extern "C" void __tsan_acquire(void* addr);
extern "C" void __tsan_release(void* addr);

namespace {

void* Real(const char* mangled) {
  void* f = dlsym(RTLD_NEXT, mangled);
  if (f == nullptr) {
    std::fprintf(stderr, "tsan_absl_annotations: %s not found in abseil\n", mangled);
    std::abort();
  }
  return f;
}

#define MGREG_REAL(type, mangled) \
  static const auto real = reinterpret_cast<type>(Real(mangled))

// The definitions below take effect only if the dynamic linker finds this library before
// libabsl_synchronization, i.e. its DT_NEEDED entry precedes abseil's in the executable
// (cmake/MgregHardening.cmake puts it first on every executable's link line). When it did
// not (26 test executables after the test-tree move), TSan saw no edge for any
// absl::Mutex and reported the accesses those mutexes guard as races; so the order is
// checked once, at load, and a wrong one stops the process before any test runs.
__attribute__((constructor)) void CheckInterposed() {
  const char* const lock = "_ZN4absl7debian35Mutex4LockEv";
  void* resolved = dlsym(RTLD_DEFAULT, lock);
  Dl_info self{};
  Dl_info found{};
  if (dladdr(reinterpret_cast<void*>(&CheckInterposed), &self) != 0 &&
      resolved != nullptr && dladdr(resolved, &found) != 0 &&
      self.dli_fbase == found.dli_fbase) {
    return;
  }
  std::fprintf(
      stderr,
      "tsan_absl_annotations: absl::Mutex::Lock resolves to %s, not to %s: the "
      "program loads abseil before this library, so ThreadSanitizer cannot see "
      "abseil's mutexes and would report false races. Link %s first (see "
      "cmake/MgregHardening.cmake).\n",
      resolved != nullptr && found.dli_fname != nullptr ? found.dli_fname : "nothing",
      self.dli_fname != nullptr ? self.dli_fname : "libmgreg_tsan_absl.so",
      self.dli_fname != nullptr ? self.dli_fname : "libmgreg_tsan_absl.so");
  std::abort();
}

}  // namespace

namespace absl {
ABSL_NAMESPACE_BEGIN

void Mutex::Lock() {
  MGREG_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex4LockEv");
  real(this);
  __tsan_acquire(this);
}
void Mutex::ReaderLock() {
  MGREG_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex10ReaderLockEv");
  real(this);
  __tsan_acquire(this);
}
bool Mutex::TryLock() {
  MGREG_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex7TryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}
bool Mutex::ReaderTryLock() {
  MGREG_REAL(bool (*)(Mutex*), "_ZN4absl7debian35Mutex13ReaderTryLockEv");
  const bool locked = real(this);
  if (locked) __tsan_acquire(this);
  return locked;
}
void Mutex::Unlock() {
  MGREG_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex6UnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::ReaderUnlock() {
  MGREG_REAL(void (*)(Mutex*), "_ZN4absl7debian35Mutex12ReaderUnlockEv");
  __tsan_release(this);
  real(this);
}
void Mutex::LockWhen(const Condition& cond) {
  MGREG_REAL(void (*)(Mutex*, const Condition&),
             "_ZN4absl7debian35Mutex8LockWhenERKNS0_9ConditionE");
  real(this, cond);
  __tsan_acquire(this);
}
void Mutex::ReaderLockWhen(const Condition& cond) {
  MGREG_REAL(void (*)(Mutex*, const Condition&),
             "_ZN4absl7debian35Mutex14ReaderLockWhenERKNS0_9ConditionE");
  real(this, cond);
  __tsan_acquire(this);
}
bool Mutex::LockWhenWithTimeout(const Condition& cond, absl::Duration timeout) {
  MGREG_REAL(
      bool (*)(Mutex*, const Condition&, absl::Duration),
      "_ZN4absl7debian35Mutex19LockWhenWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  const bool r = real(this, cond, timeout);
  __tsan_acquire(this);
  return r;
}
bool Mutex::LockWhenWithDeadline(const Condition& cond, absl::Time deadline) {
  MGREG_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
             "_ZN4absl7debian35Mutex20LockWhenWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  const bool r = real(this, cond, deadline);
  __tsan_acquire(this);
  return r;
}
void Mutex::Await(const Condition& cond) {
  MGREG_REAL(void (*)(Mutex*, const Condition&),
             "_ZN4absl7debian35Mutex5AwaitERKNS0_9ConditionE");
  __tsan_release(this);
  real(this, cond);
  __tsan_acquire(this);
}
bool Mutex::AwaitWithTimeout(const Condition& cond, absl::Duration timeout) {
  MGREG_REAL(bool (*)(Mutex*, const Condition&, absl::Duration),
             "_ZN4absl7debian35Mutex16AwaitWithTimeoutERKNS0_9ConditionENS0_8DurationE");
  __tsan_release(this);
  const bool r = real(this, cond, timeout);
  __tsan_acquire(this);
  return r;
}
bool Mutex::AwaitWithDeadline(const Condition& cond, absl::Time deadline) {
  MGREG_REAL(bool (*)(Mutex*, const Condition&, absl::Time),
             "_ZN4absl7debian35Mutex17AwaitWithDeadlineERKNS0_9ConditionENS0_4TimeE");
  __tsan_release(this);
  const bool r = real(this, cond, deadline);
  __tsan_acquire(this);
  return r;
}

void CondVar::Wait(Mutex* mu) {
  MGREG_REAL(void (*)(CondVar*, Mutex*), "_ZN4absl7debian37CondVar4WaitEPNS0_5MutexE");
  __tsan_release(mu);
  real(this, mu);
  __tsan_acquire(mu);
}
bool CondVar::WaitWithTimeout(Mutex* mu, absl::Duration timeout) {
  MGREG_REAL(bool (*)(CondVar*, Mutex*, absl::Duration),
             "_ZN4absl7debian37CondVar15WaitWithTimeoutEPNS0_5MutexENS0_8DurationE");
  __tsan_release(mu);
  const bool r = real(this, mu, timeout);
  __tsan_acquire(mu);
  return r;
}
bool CondVar::WaitWithDeadline(Mutex* mu, absl::Time deadline) {
  MGREG_REAL(bool (*)(CondVar*, Mutex*, absl::Time),
             "_ZN4absl7debian37CondVar16WaitWithDeadlineEPNS0_5MutexENS0_4TimeE");
  __tsan_release(mu);
  const bool r = real(this, mu, deadline);
  __tsan_acquire(mu);
  return r;
}

void ReleasableMutexLock::Release() {
  // Abseil's definition unlocks inside the library; unlock here so Mutex::Unlock above
  // records the release.
  mu_->Unlock();
  mu_ = nullptr;
}

// Notification: HasBeenNotified() is an inline acquire load of notified_yet_; the
// release on the same address makes it (and WaitForNotification) see Notify's writes.
void Notification::Notify() {
  MGREG_REAL(void (*)(Notification*), "_ZN4absl7debian312Notification6NotifyEv");
  __tsan_release(&notified_yet_);
  real(this);
}
void Notification::WaitForNotification() const {
  MGREG_REAL(void (*)(const Notification*),
             "_ZNK4absl7debian312Notification19WaitForNotificationEv");
  real(this);
  __tsan_acquire(const_cast<std::atomic<bool>*>(&notified_yet_));
}
bool Notification::WaitForNotificationWithTimeout(absl::Duration timeout) const {
  MGREG_REAL(
      bool (*)(const Notification*, absl::Duration),
      "_ZNK4absl7debian312Notification30WaitForNotificationWithTimeoutENS0_8DurationE");
  const bool r = real(this, timeout);
  __tsan_acquire(const_cast<std::atomic<bool>*>(&notified_yet_));
  return r;
}
bool Notification::WaitForNotificationWithDeadline(absl::Time deadline) const {
  MGREG_REAL(
      bool (*)(const Notification*, absl::Time),
      "_ZNK4absl7debian312Notification31WaitForNotificationWithDeadlineENS0_4TimeE");
  const bool r = real(this, deadline);
  __tsan_acquire(const_cast<std::atomic<bool>*>(&notified_yet_));
  return r;
}

ABSL_NAMESPACE_END
}  // namespace absl
