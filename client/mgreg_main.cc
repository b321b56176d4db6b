// mgreg: the command-line client (DESIGN §8).
#include <iostream>
#include <string>
#include <vector>

#include "client/cli/cli.h"
#include "common/mutex_mode.h"

int main(int argc, char** argv) {
  // Debian's abseil checks lock order on every Lock and aborts on a possible cycle
  // (common/mutex_mode.h); the client's gRPC calls and hashing threads take absl::Mutex
  // as the server's do. Tests that call RunCli in process keep the detector.
  mgreg::TurnOffMutexDeadlockDetection();
  std::vector<std::string> args(argv + 1, argv + argc);
  return mgreg::RunCli(args, std::cout, std::cerr);
}
