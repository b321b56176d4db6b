// Running the real binaries from tests: mgreg-server as a child process (ready when it
// prints its address), and commands whose exit code and output the test inspects.
#ifndef MGREG_TESTS_TESTING_PROCESS_UTIL_H_
#define MGREG_TESTS_TESTING_PROCESS_UTIL_H_

#include <sys/types.h>

#include <string>
#include <utility>
#include <vector>

namespace mgreg::testing {

// A running mgreg-server. Killed with SIGKILL on destruction if still running.
class ServerProcess {
 public:
  // Starts `<BinDir()>/server/mgreg-server --listen 127.0.0.1:0 <args>` and waits (at
  // most 30 s) for its "listening on HOST:PORT" line. Fails the test if it does not
  // start, unless `expect_start` is false.
  explicit ServerProcess(const std::vector<std::string>& args, bool expect_start = true);
  ~ServerProcess();
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  const std::string& address() const { return address_; }
  // The whole "listening on" line (it also names the metrics address, if any).
  const std::string& ready_line() const { return ready_line_; }
  pid_t pid() const { return pid_; }
  bool started() const { return !address_.empty(); }
  // Sends `signal` and waits for the process; returns its wait status.
  int Stop(int signal);

 private:
  pid_t pid_ = -1;
  std::string address_;
  std::string ready_line_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;
  std::string err;
};
// Runs argv (argv[0] is a path) with a 120 s limit, capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv);

// Runs the test `gtest_filter` of this test binary in a child process with `env` set
// (the child's test reads it to know what to do) and expects the child to die of
// SIGKILL: a test that kills itself to leave what a crash leaves.
void RunSelfUntilKilled(const std::string& gtest_filter,
                        const std::vector<std::pair<std::string, std::string>>& env);

// The path of a built binary, e.g. BinaryPath("client/mgreg").
std::string BinaryPath(const std::string& relative);

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_PROCESS_UTIL_H_
