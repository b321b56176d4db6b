// absl::Mutex without its debug-mode deadlock detector, for production processes.
#ifndef MGREG_COMMON_MUTEX_MODE_H_
#define MGREG_COMMON_MUTEX_MODE_H_

namespace mgreg {

// Turns off absl::Mutex's deadlock detection for this process. Call it at the top of
// main, before any thread starts: mgreg-server does, and so does the bare gRPC server
// that benchmarks compare it with (bench/bare_server.cc), so that both run gRPC alike;
// the `mgreg` CLI does too (client/mgreg_main.cc).
//
// Why: Debian 12's abseil (20220623) is built without NDEBUG, so every absl::Mutex runs
// the detector meant for debug builds: each Lock updates a process-wide lock-order graph
// (a nested pair of locks 97 ns instead of 30; creating, locking and destroying a mutex
// 64 ns instead of 17, measured here), and gRPC's own locks are absl::Mutex, taken many
// times per call. And a process that ever takes two mutexes in both orders aborts
// ("dying due to potential deadlock"), even if the two orders can never meet: a crash a
// server (or a push half-way through) should not risk for a possible deadlock. Tests
// keep the detector (their in-process servers and clients are where a lock-order
// inversion should show up).
void TurnOffMutexDeadlockDetection();

}  // namespace mgreg

#endif  // MGREG_COMMON_MUTEX_MODE_H_
