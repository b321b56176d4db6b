#include "common/sigpipe.h"

#include <signal.h>

namespace mgreg {
namespace {

// The write that raised it returns EPIPE once this returns.
void OnSigpipe(int) {}

}  // namespace

void IgnoreSigpipe() {
  struct sigaction action = {};
  action.sa_handler = OnSigpipe;
  sigemptyset(&action.sa_mask);
  // SA_RESTART: a slow call interrupted by it in the same thread resumes rather than
  // failing with EINTR. sigaction cannot fail for SIGPIPE with a valid handler.
  action.sa_flags = SA_RESTART;
  sigaction(SIGPIPE, &action, nullptr);
}

}  // namespace mgreg
