// common/sigpipe.h: after IgnoreSigpipe, a write to a pipe or socket whose reader is gone
// fails with EPIPE instead of killing the process; programs started afterwards keep the
// default (a handler, unlike SIG_IGN, does not survive execve); log lines stderr does not
// take are counted. Each case runs in a child process, as the disposition is per process.
#include "common/sigpipe.h"

#include <errno.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <functional>

#include "common/log.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

// Runs `body` in a forked child that starts with SIGPIPE's default disposition (the test
// binary's main has called IgnoreSigpipe), and returns the child's wait status.
int InChild(const std::function<int()>& body) {
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::signal(SIGPIPE, SIG_DFL);
    ::_exit(body());
  }
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// Writes to a pipe whose read end is closed; returns the errno of the failed write, 0 if
// it succeeded.
int WriteToBrokenPipe() {
  int fds[2];
  if (::pipe(fds) != 0) return -1;
  ::close(fds[0]);
  const ssize_t w = ::write(fds[1], "x", 1);
  return w < 0 ? errno : 0;
}

// The same on a stream socket whose peer has closed, with write(2) (not MSG_NOSIGNAL), as
// librados' admin socket writes.
int WriteToClosedSocket() {
  int fds[2];
  if (::socketpair(AF_UNIX, SOCK_STREAM, 0, fds) != 0) return -1;
  ::close(fds[1]);
  const ssize_t w = ::write(fds[0], "x", 1);
  return w < 0 ? errno : 0;
}

TEST(SigpipeTest, WithoutItABrokenPipeKillsTheProcess) {
  const int status = InChild([] { return WriteToBrokenPipe() == EPIPE ? 0 : 1; });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGPIPE);
}

TEST(SigpipeTest, AfterItAWriteToABrokenPipeOrSocketFailsWithEpipe) {
  const int status = InChild([] {
    IgnoreSigpipe();
    IgnoreSigpipe();  // idempotent
    if (WriteToBrokenPipe() != EPIPE) return 1;
    if (WriteToClosedSocket() != EPIPE) return 2;
    return 0;
  });
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

TEST(SigpipeTest, ProgramsStartedAfterwardsGetTheDefault) {
  // The shell signals itself: with the default disposition it dies of SIGPIPE; had
  // IgnoreSigpipe used SIG_IGN, the shell would inherit it and exit 0.
  const int status = InChild([] {
    IgnoreSigpipe();
    ::execl("/bin/sh", "sh", "-c", "kill -s PIPE $$; exit 0",
            static_cast<char*>(nullptr));
    return 127;
  });
  ASSERT_TRUE(WIFSIGNALED(status)) << "exit " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGPIPE);
}

TEST(SigpipeTest, LogLinesStderrDoesNotTakeAreCounted) {
  const int status = InChild([] {
    IgnoreSigpipe();
    int fds[2];
    if (::pipe(fds) != 0) return 1;
    ::dup2(fds[1], STDERR_FILENO);
    LogInfo("read by the pipe");
    if (LogLinesLost() != 0) return 2;
    ::close(fds[0]);  // whoever read the server's stderr is gone
    LogInfo("lost");
    LogError("lost too");
    return LogLinesLost() == 2 ? 0 : 3;
  });
  ASSERT_TRUE(WIFEXITED(status)) << "killed by signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
}

}  // namespace
}  // namespace mgreg
