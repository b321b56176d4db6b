// The RADOS store across an OSD outage, on a cluster of its own (scripts/ceph-dev.sh with
// a BlueStore OSD, which keeps its data across a restart): while the OSD is down, writes
// and reads return UNAVAILABLE within the operation timeout; once it is back, the same
// store (not reopened) writes and reads again, everything acknowledged is there, and the
// store checks clean. A writer keeps pushing throughout.
#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/rados/rados_store.h"
#include "tests/testing/process_util.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

constexpr char kScript[] = MGREG_CEPH_DEV_SCRIPT;

CommandResult CephDev(const std::string& command, const std::string& dir) {
  return RunCommand({"/bin/bash", kScript, command, dir});
}

TEST(RadosOsdRestartTest, StoreReturnsUnavailableWhileTheOsdIsDownAndRecoversAlone) {
  if (FindOnPath("ceph-mon").empty() || FindOnPath("ceph-osd").empty()) {
    GTEST_SKIP() << "RADOS test SKIPPED: ceph-mon/ceph-osd not installed "
                    "(scripts/install-deps.sh rados installs them)";
  }
  TempDir tmp;
  const std::string dir = tmp.Join("cluster");
  ::setenv("CEPH_DEV_STORE", "bluestore", 1);
  ::setenv("CEPH_DEV_BLUESTORE_BYTES", "2147483648", 1);
  CommandResult start = CephDev("start", dir);
  ::unsetenv("CEPH_DEV_STORE");
  ::unsetenv("CEPH_DEV_BLUESTORE_BYTES");
  struct Stop {
    std::string dir;
    ~Stop() { CephDev("stop", dir); }
  } stop{dir};
  ASSERT_EQ(start.exit_code, 0) << start.err;

  RadosStoreOptions o;
  o.ceph_conf = dir + "/ceph.conf";
  o.pool = kTestCephPool;
  o.timeout_seconds = 3;
  auto opened = OpenRadosStore(o);
  ASSERT_TRUE(opened.ok()) << opened.status();
  Store& store = **opened;
  ASSERT_TRUE(Push(store, "m", 1, {{"data", Bytes(5000, 1)}}).ok());

  // A writer that keeps pushing: every push succeeds or is UNAVAILABLE, nothing else.
  absl::Mutex mu;
  std::vector<int64_t> acknowledged = {1};
  std::vector<std::string> other_errors;
  int unavailable = 0;
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int64_t step = 100; !done.load(); ++step) {
      auto r = Push(store, "m", step, {{"data", Bytes(5000, step)}});
      absl::MutexLock l(&mu);
      if (r.ok()) {
        acknowledged.push_back(step);
      } else if (r.status().code() == absl::StatusCode::kUnavailable) {
        ++unavailable;
      } else {
        other_errors.push_back(r.status().ToString());
      }
      absl::SleepFor(absl::Milliseconds(20));
    }
  });

  CommandResult down = CephDev("stop-osd", dir);
  ASSERT_EQ(down.exit_code, 0) << down.err;
  // Reads and writes fail within the operation timeout (3 s), as UNAVAILABLE.
  absl::Time t0 = absl::Now();
  auto latest = store.GetLatest("m");
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kUnavailable) << latest.status();
  auto pushed = Push(store, "m", 2, {{"data", Bytes(5000, 2)}});
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kUnavailable) << pushed.status();
  EXPECT_LT(absl::Now() - t0, absl::Seconds(30));

  CommandResult up = CephDev("start-osd", dir);
  ASSERT_EQ(up.exit_code, 0) << up.err;
  // The same store recovers by itself: a push succeeds within a bound.
  t0 = absl::Now();
  absl::StatusOr<CommitResult> again;
  do {
    again = Push(store, "m", 3, {{"data", Bytes(5000, 3)}});
  } while (!again.ok() && absl::Now() - t0 < absl::Seconds(60));
  ASSERT_TRUE(again.ok()) << again.status();
  RecordProperty("recovered_after_ms",
                 std::to_string(absl::ToInt64Milliseconds(absl::Now() - t0)));
  absl::SleepFor(absl::Milliseconds(500));  // a few more pushes of the writer
  done = true;
  writer.join();

  absl::MutexLock l(&mu);
  EXPECT_THAT(other_errors, ::testing::IsEmpty());
  RecordProperty("unavailable_pushes", unavailable);
  for (int64_t step : acknowledged) {
    auto c = store.GetCheckpoint("m", step);
    EXPECT_TRUE(c.ok()) << "acknowledged step " << step << ": " << c.status();
  }
  EXPECT_TRUE(store.GetCheckpoint("m", 3).ok());
  auto report = store.Check();
  ASSERT_TRUE(report.ok()) << report.status();
  EXPECT_TRUE(report->ok()) << ::testing::PrintToString(report->problems);
}

}  // namespace
}  // namespace mgreg::testing
