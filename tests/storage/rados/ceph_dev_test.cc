// scripts/ceph-dev.sh: `start DIR` brings up a single-node cluster whose pool `mgreg`
// takes writes through librados; `stop DIR` ends exactly the daemons it started and
// removes DIR.
#include <signal.h>

#include <cerrno>
#include <filesystem>
#include <rados/librados.hpp>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kScript[] = MGREG_CEPH_DEV_SCRIPT;

CommandResult CephDev(const std::string& command, const std::string& dir) {
  return RunCommand({"/bin/bash", kScript, command, dir});
}

bool ProcessExists(pid_t pid) { return ::kill(pid, 0) == 0 || errno != ESRCH; }

pid_t ReadPid(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return -1;
  int pid = -1;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(ReadFileOrDie(path)), &pid)) return -1;
  return pid;
}

#define MGREG_REQUIRE_CEPH_BINARIES()                                        \
  do {                                                                       \
    if (FindOnPath("ceph-mon").empty() || FindOnPath("ceph-osd").empty()) {  \
      GTEST_SKIP() << "RADOS test SKIPPED: ceph-mon/ceph-osd not installed " \
                      "(scripts/install-deps.sh rados installs them)";       \
    }                                                                        \
  } while (0)

// Stops the cluster in `dir` when a test ends early, so no daemon outlives a failed test.
class StopOnExit {
 public:
  explicit StopOnExit(std::string dir) : dir_(std::move(dir)) {}
  ~StopOnExit() {
    if (!dir_.empty()) CephDev("stop", dir_);
  }
  void Release() { dir_.clear(); }

 private:
  std::string dir_;
};

TEST(CephDevScriptTest, StartedClusterStoresAnObjectAndStopLeavesNoProcess) {
  MGREG_REQUIRE_CEPH_BINARIES();
  TempDir tmp;
  const std::string dir = tmp.Join("cluster");
  CommandResult start = CephDev("start", dir);
  StopOnExit guard(dir);
  ASSERT_EQ(start.exit_code, 0) << start.out << start.err;
  EXPECT_THAT(start.err, HasSubstr("ceph-dev: ready"));
  EXPECT_THAT(start.err, HasSubstr(absl::StrCat("conf ", dir, "/ceph.conf, pool mgreg")));

  const pid_t mon = ReadPid(dir + "/run/mon.a.pid");
  const pid_t osd = ReadPid(dir + "/run/osd.0.pid");
  ASSERT_GT(mon, 0) << "no monitor pid file";
  ASSERT_GT(osd, 0) << "no OSD pid file";
  EXPECT_TRUE(ProcessExists(mon));
  EXPECT_TRUE(ProcessExists(osd));

  {
    librados::Rados rados;
    ASSERT_TRUE(ConnectToCluster(dir + "/ceph.conf", &rados).ok());
    librados::IoCtx io;
    ASSERT_EQ(rados.ioctx_create("mgreg", io), 0);
    const std::string payload = "a checkpoint chunk";
    librados::bufferlist put;
    put.append(payload);
    ASSERT_EQ(io.write_full("ceph-dev-test", put), 0);
    librados::bufferlist got;
    ASSERT_EQ(io.read("ceph-dev-test", got, 0, 0), static_cast<int>(payload.size()));
    EXPECT_EQ(got.to_str(), payload);
    // A pool the script did not create does not exist.
    librados::IoCtx other;
    EXPECT_EQ(rados.ioctx_create("no-such-pool", other), -ENOENT);
    io.close();
    rados.shutdown();
  }

  CommandResult stop = CephDev("stop", dir);
  guard.Release();
  ASSERT_EQ(stop.exit_code, 0) << stop.out << stop.err;
  EXPECT_FALSE(ProcessExists(osd)) << "osd pid " << osd << " still running";
  EXPECT_FALSE(ProcessExists(mon)) << "mon pid " << mon << " still running";
  std::error_code ec;
  EXPECT_FALSE(fs::exists(dir, ec)) << dir << " left behind";
}

TEST(CephDevScriptTest, StartRefusesADirectoryThatAlreadyHoldsACluster) {
  MGREG_REQUIRE_CEPH_BINARIES();
  TempDir tmp;
  WriteFileOrDie(tmp.Join("ceph.conf"), "[global]\n");
  CommandResult r = CephDev("start", tmp.path());
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("already holds a cluster"));
  EXPECT_THAT(r.err, HasSubstr("stop"));
  std::error_code ec;
  EXPECT_FALSE(fs::exists(tmp.Join("run"), ec)) << "start went ahead anyway";
  EXPECT_EQ(ReadFileOrDie(tmp.Join("ceph.conf")), "[global]\n");
}

TEST(CephDevScriptTest, StopRefusesADirectoryThatIsNotACluster) {
  TempDir tmp;
  const std::string dir = tmp.Join("precious");
  fs::create_directory(dir);
  WriteFileOrDie(dir + "/data", "keep me");
  CommandResult r = CephDev("stop", dir);
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("not a ceph-dev.sh cluster"));
  EXPECT_EQ(ReadFileOrDie(dir + "/data"), "keep me");
}

TEST(CephDevScriptTest, StopOfAMissingDirectorySucceeds) {
  TempDir tmp;
  CommandResult r = CephDev("stop", tmp.Join("never-started"));
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_THAT(r.err, HasSubstr("nothing to stop"));
}

TEST(CephDevScriptTest, WrongUsageExitsTwo) {
  CommandResult r = RunCommand({"/bin/bash", kScript, "restart", "/tmp/x"});
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_THAT(r.err, HasSubstr("usage:"));
  EXPECT_EQ(RunCommand({"/bin/bash", kScript, "start"}).exit_code, 2);
}

}  // namespace
}  // namespace mgreg::testing
