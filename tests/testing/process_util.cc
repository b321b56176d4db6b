#include "tests/testing/process_util.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

std::vector<char*> CArgs(const std::vector<std::string>& argv) {
  std::vector<char*> out;
  for (const std::string& a : argv) out.push_back(const_cast<char*>(a.c_str()));
  out.push_back(nullptr);
  return out;
}

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

std::string BinaryPath(const std::string& relative) {
  return absl::StrCat(BinDir(), "/", relative);
}

ServerProcess::ServerProcess(const std::vector<std::string>& args, bool expect_start) {
  std::vector<std::string> argv = {BinaryPath("server/mgreg-server"), "--listen",
                                   "127.0.0.1:0"};
  argv.insert(argv.end(), args.begin(), args.end());
  int out_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return;
  }
  pid_ = ::fork();
  if (pid_ == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    std::vector<char*> c = CArgs(argv);
    ::execv(c[0], c.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  std::string line;
  const int64_t deadline = NowMs() + 30000;
  while (NowMs() < deadline) {
    struct pollfd p = {out_pipe[0], POLLIN, 0};
    if (::poll(&p, 1, 100) <= 0) continue;
    char c;
    if (::read(out_pipe[0], &c, 1) != 1) break;
    if (c != '\n') {
      line += c;
      continue;
    }
    const std::string marker = "listening on ";
    if (size_t pos = line.find(marker); pos != std::string::npos) {
      std::string rest = line.substr(pos + marker.size());
      address_ = rest.substr(0, rest.find(' '));
      ready_line_ = line;
      break;
    }
    line.clear();
  }
  ::close(out_pipe[0]);
  if (address_.empty() && expect_start) {
    ADD_FAILURE() << "mgreg-server did not start: " << argv[0];
  }
}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Stop(SIGKILL);
}

int ServerProcess::Stop(int signal) {
  if (pid_ <= 0) return -1;
  ::kill(pid_, signal);
  int status = 0;
  ::waitpid(pid_, &status, 0);
  pid_ = -1;
  return status;
}

CommandResult RunCommand(const std::vector<std::string>& argv) {
  CommandResult result;
  int out_pipe[2], err_pipe[2];
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0) {
    ADD_FAILURE() << "pipe: " << std::strerror(errno);
    return result;
  }
  const pid_t pid = ::fork();
  if (pid == 0) {
    ::dup2(out_pipe[1], STDOUT_FILENO);
    ::dup2(err_pipe[1], STDERR_FILENO);
    std::vector<char*> c = CArgs(argv);
    ::execv(c[0], c.data());
    ::_exit(127);
  }
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  const int64_t deadline = NowMs() + 120000;
  bool out_open = true, err_open = true;
  while ((out_open || err_open) && NowMs() < deadline) {
    struct pollfd p[2] = {{out_pipe[0], POLLIN, 0}, {err_pipe[0], POLLIN, 0}};
    if (::poll(p, 2, 100) <= 0) continue;
    char buf[4096];
    for (int i = 0; i < 2; ++i) {
      if (!(p[i].revents & (POLLIN | POLLHUP))) continue;
      const ssize_t n = ::read(p[i].fd, buf, sizeof(buf));
      if (n <= 0) {
        (i == 0 ? out_open : err_open) = false;
      } else {
        (i == 0 ? result.out : result.err).append(buf, static_cast<size_t>(n));
      }
    }
  }
  if (out_open || err_open) {
    ::kill(pid, SIGKILL);
    ADD_FAILURE() << "command timed out: " << argv[0];
  }
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return result;
}

void RunSelfUntilKilled(const std::string& gtest_filter,
                        const std::vector<std::pair<std::string, std::string>>& env) {
  const std::string filter = absl::StrCat("--gtest_filter=", gtest_filter);
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    for (const auto& [name, value] : env) setenv(name.c_str(), value.c_str(), 1);
    execl("/proc/self/exe", "crash_child", filter.c_str(), static_cast<char*>(nullptr));
    _exit(4);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFSIGNALED(status)) << "child exited with " << WEXITSTATUS(status);
  EXPECT_EQ(WTERMSIG(status), SIGKILL);
}

}  // namespace mgreg::testing
