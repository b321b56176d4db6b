// The main() of every C++ test (mgreg_add_test links it instead of gtest_main): as
// mgreg-server's, it makes a write to a closed pipe or socket fail with EPIPE rather
// than kill the process (common/sigpipe.h). The tests that link librados need it:
// session_store_test died of SIGPIPE in CI inside librados' admin socket ping.
#include "common/sigpipe.h"
#include "gtest/gtest.h"

int main(int argc, char** argv) {
  mgreg::IgnoreSigpipe();
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
