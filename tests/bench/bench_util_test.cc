// bench/bench_util.h: a benchmark that stops half-way leaves nothing running. Die (from
// any thread) stops the child processes it started and removes its temp directories; a
// benchmark killed outright takes its children with it. Each benchmark here is a forked
// child of the test; its own child is a shell that prints the ready line, then sleeps.
#include "bench/bench_util.h"

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <functional>
#include <string>
#include <thread>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg::bench {
namespace {

struct Benchmark {
  pid_t pid = -1;
  pid_t server = -1;     // the child process it started
  std::string temp_dir;  // the directory it made
};

// Forks a benchmark that makes a temp dir, starts a child process, reports both on a
// pipe, then runs `then`. Returns once they are reported.
Benchmark StartBenchmark(const std::string& tmp_base, const std::function<void()>& then) {
  int fds[2];
  EXPECT_EQ(::pipe(fds), 0);
  Benchmark b;
  b.pid = ::fork();
  if (b.pid == 0) {
    ::close(fds[0]);
    ::setenv("MGREG_BENCH_TMP", tmp_base.c_str(), 1);
    const std::string dir = MakeTempDir("die");
    std::unique_ptr<ChildProcess> server = ChildProcess::Start(
        {"/bin/sh", "-c", "echo listening on 127.0.0.1:1; exec sleep 600"}, 0,
        "listening on");
    const std::string line = absl::StrCat(server->pid(), " ", dir, "\n");
    if (::write(fds[1], line.data(), line.size()) != static_cast<ssize_t>(line.size())) {
      ::_exit(3);
    }
    ::close(fds[1]);
    then();
    ::_exit(0);
  }
  ::close(fds[1]);
  std::string line;
  char c;
  while (::read(fds[0], &c, 1) == 1 && c != '\n') line += c;
  ::close(fds[0]);
  std::pair<std::string, std::string> parts = absl::StrSplit(line, ' ');
  EXPECT_TRUE(absl::SimpleAtoi(parts.first, &b.server)) << "benchmark said: " << line;
  b.temp_dir = parts.second;
  return b;
}

// Whether `pid` still exists (it is no child of the test: once ended, init reaps it).
bool Exists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

// Waits for `pid` to be gone, at most `limit` (a bound for a loaded machine, not a
// timing claim).
bool GoneWithin(pid_t pid, absl::Duration limit) {
  const absl::Time deadline = absl::Now() + limit;
  while (Exists(pid)) {
    if (absl::Now() > deadline) return false;
    absl::SleepFor(absl::Milliseconds(10));
  }
  return true;
}

int WaitStatus(pid_t pid) {
  int status = 0;
  ::waitpid(pid, &status, 0);
  return status;
}

// A benchmark that called Die exited 2, and had already stopped its child and removed
// its temp dir: gone now, not later (the kernel's SIGTERM on the benchmark's exit would
// end the child too, but after the fact).
void ExpectDiedCleanly(const Benchmark& b) {
  ASSERT_GT(b.server, 0);
  const int status = WaitStatus(b.pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 2);
  EXPECT_FALSE(Exists(b.server))
      << "the benchmark's child " << b.server << " outlived Die";
  if (Exists(b.server)) ::kill(b.server, SIGKILL);
  EXPECT_FALSE(std::filesystem::exists(b.temp_dir)) << b.temp_dir;
}

TEST(BenchDieTest, DieStopsTheChildrenAndRemovesTheTempDirs) {
  testing::TempDir tmp;
  const Benchmark b = StartBenchmark(tmp.path(), [] { Die("failing on purpose"); });
  ExpectDiedCleanly(b);
}

TEST(BenchDieTest, DieOnAnotherThreadStopsTheChildren) {
  testing::TempDir tmp;
  const Benchmark b = StartBenchmark(tmp.path(), [] {
    std::thread worker([] { Die("a worker failed"); });
    worker.join();
  });
  ExpectDiedCleanly(b);
}

TEST(BenchDieTest, AKilledBenchmarkTakesItsChildrenWithIt) {
  testing::TempDir tmp;
  const Benchmark b = StartBenchmark(tmp.path(), [] { ::pause(); });
  ASSERT_GT(b.server, 0);
  ASSERT_TRUE(Exists(b.server));
  ::kill(b.pid, SIGKILL);
  const int status = WaitStatus(b.pid);
  EXPECT_TRUE(WIFSIGNALED(status));
  const bool gone = GoneWithin(b.server, absl::Seconds(30));
  if (!gone) ::kill(b.server, SIGKILL);
  EXPECT_TRUE(gone) << "the child of a SIGKILLed benchmark kept running";
}

}  // namespace
}  // namespace mgreg::bench
