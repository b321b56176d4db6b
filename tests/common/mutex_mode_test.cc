// common/mutex_mode.h: after TurnOffMutexDeadlockDetection, a process that takes two
// absl::Mutex in both orders (a lock-order inversion that never deadlocks here) keeps
// running; with Debian's abseil as built (no NDEBUG), the same process aborts. Each case
// runs in a forked child: the mode is per process, and this binary keeps the detector.
#include "common/mutex_mode.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include "absl/synchronization/mutex.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

// Forks a child that takes a then b, then b then a; returns its wait status.
int InvertLockOrderInChild(bool turn_off_detection) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    if (turn_off_detection) TurnOffMutexDeadlockDetection();
    absl::Mutex a, b;
    {
      absl::MutexLock la(&a);
      absl::MutexLock lb(&b);
    }
    {
      absl::MutexLock lb(&b);
      absl::MutexLock la(&a);
    }
    ::_exit(0);
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

TEST(MutexModeTest, WithTheDetectorOffALockOrderInversionDoesNotAbort) {
  const int status = InvertLockOrderInChild(true);
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(MutexModeTest, WithTheDefaultDetectorTheSameProcessAborts) {
  const int status = InvertLockOrderInChild(false);
  if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
    GTEST_SKIP() << "this abseil is built with NDEBUG: its deadlock detector is off "
                    "by default, and TurnOffMutexDeadlockDetection changes nothing";
  }
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGABRT);
}

}  // namespace
}  // namespace mgreg
