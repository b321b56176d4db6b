// `cmake --install` into a temp prefix, then a separate project (tests/e2e/packaging)
// that does find_package(mgreg CONFIG REQUIRED) and links mgreg::client is configured,
// built and run against a real server on loopback.
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::BinDir;
using ::mgreg::testing::RunCommand;
using ::mgreg::testing::ServerProcess;
using ::mgreg::testing::TempDir;
using ::testing::HasSubstr;

std::string Env(const char* name) {
  const char* v = std::getenv(name);
  return v != nullptr ? v : "";
}

TEST(PackagingTest, InstalledClientLibraryBuildsAndTalksToAServer) {
  const std::string cmake = Env("MGREG_CMAKE");
  const std::string source = Env("MGREG_SOURCE_DIR");
  ASSERT_FALSE(cmake.empty() || source.empty()) << "run through ctest";
  TempDir tmp;
  const std::string prefix = tmp.Join("prefix");
  auto r = RunCommand({cmake, "--install", BinDir(), "--prefix", prefix});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  for (const char* installed :
       {"bin/mgreg-server", "bin/mgreg", "include/mgreg/client/client.h",
        "include/mgreg/proto/mgreg/v1/registry.pb.h"}) {
    EXPECT_EQ(RunCommand({"/usr/bin/test", "-f", absl::StrCat(prefix, "/", installed)})
                  .exit_code,
              0)
        << installed << " not installed";
  }

  std::vector<std::string> configure = {cmake,
                                        "-S",
                                        source + "/tests/e2e/packaging",
                                        "-B",
                                        tmp.Join("build"),
                                        "-DCMAKE_PREFIX_PATH=" + prefix,
                                        "-DCMAKE_BUILD_TYPE=Release"};
  // Set by tests/e2e/CMakeLists.txt in a sanitizer build (instrumented libraries).
  if (const std::string cxx = Env("MGREG_CONSUMER_CXX"); !cxx.empty()) {
    configure.push_back("-DCMAKE_CXX_COMPILER=" + cxx);
  }
  if (const std::string flags = Env("MGREG_CONSUMER_LINK_FLAGS"); !flags.empty()) {
    configure.push_back("-DCMAKE_EXE_LINKER_FLAGS=" + flags);
  }
  if (const std::string gen = Env("MGREG_CMAKE_GENERATOR"); !gen.empty()) {
    configure.push_back("-G");
    configure.push_back(gen);
  }
  r = RunCommand(configure);
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  r = RunCommand({cmake, "--build", tmp.Join("build"), "-j", "2"});
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;

  ServerProcess server({"--in-memory"});
  ASSERT_TRUE(server.started());
  r = RunCommand({tmp.Join("build/mgreg_consumer"), server.address()});
  EXPECT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_THAT(r.out, HasSubstr("consumer ok"));
}

}  // namespace
}  // namespace mgreg
