// Storage faults seen through the RPCs: the real server on a RocksDB store whose file
// system fails appends (a full disk), syncs and reads on demand
// (FaultInjectionFileSystem). Every failed write fails its RPC with a clear status and
// leaves the last committed state readable; once space is back, pushes succeed again
// without a restart, and a restart finds every acknowledged step whole.
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/testing/fault_injection_store.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

// Faults injected by the tests here, printed at the end (docs/reliability.md).
int64_t g_faults = 0;

// A real server (ServerFixture) whose RocksDB store runs on a FaultInjectionFileSystem.
class FaultServerTest : public ServerFixture {
 protected:
  void Start(bool faulty = true) {
    ServerOptions options;
    if (faulty) options.store_env = fs_.env();
    StartServer(options);
  }
  void TearDown() override {
    client_.reset();
    server_.reset();
    g_faults += fs_.faults_injected();
  }

  // One shard of two tensors of `floats` floats: 5,000 keeps every chunk on the WAL
  // path, 400,000 (1.6 MB) puts its chunks on the flushed path (>= 64 KiB, written
  // without the WAL and flushed before the commit).
  std::string MakeStep(int64_t step, size_t floats) {
    return MakeCheckpoint(absl::StrCat("ckpt-", step), step,
                          static_cast<uint32_t>(step * 10), /*shards=*/1, /*tensors=*/2,
                          floats);
  }

  // Restores (model m, step) into a fresh directory: every file's SHA-256 verified.
  absl::Status RestoreStep(int64_t step) {
    RestoreOptions options;
    options.step = step;
    const std::string dir = tmp_.Join(absl::StrCat("restore-", step, "-", ++restores_));
    return client_->Restore("m", dir, options).status();
  }

  void ExpectConsistent() {
    auto report = client_->CheckStore();
    ASSERT_TRUE(report.ok()) << report.status();
    EXPECT_TRUE(report->consistent()) << ::testing::PrintToString(report->problems());
  }

  FaultInjectionFileSystem fs_;
  int restores_ = 0;
};

TEST_F(FaultServerTest,
       DiskFullFailsPushesWithResourceExhaustedReadsGoOnAndPushesResume) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(client_->Push("m", MakeStep(1, 5000), {}).ok());
  // Step 2 on the WAL path, step 3 on the flushed path.
  for (const auto& [step, floats] : {std::pair<int64_t, size_t>{2, 5000}, {3, 400000}}) {
    SCOPED_TRACE(absl::StrCat("step ", step));
    const std::string prefix = MakeStep(step, floats);
    fs_.SetWriteBudget(0);
    auto full = client_->Push("m", prefix, {});
    ASSERT_EQ(full.status().code(), absl::StatusCode::kResourceExhausted)
        << full.status();
    EXPECT_THAT(full.status().message(), HasSubstr("free space"));
    // The server keeps serving reads: latest, listings, restores.
    auto latest = client_->GetLatestCheckpoint("m");
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_EQ(latest->step(), step - 1);
    EXPECT_TRUE(client_->ListCheckpoints("m", 10, "").ok());
    EXPECT_TRUE(RestoreStep(1).ok());
    // A delete while the disk is full fails the same way and deletes nothing.
    EXPECT_EQ(client_->DeleteCheckpoint("m", 1).status().code(),
              absl::StatusCode::kResourceExhausted);

    fs_.SetWriteBudget(-1);  // space freed: pushes succeed again, without a restart
    absl::StatusOr<v1::Checkpoint> retry = absl::UnknownError("not tried");
    for (int i = 0; i < 300 && !retry.ok(); ++i) {
      retry = client_->Push("m", prefix, {});
      if (!retry.ok()) {
        ASSERT_EQ(retry.status().code(), absl::StatusCode::kResourceExhausted)
            << retry.status();
        absl::SleepFor(absl::Milliseconds(100));
      }
    }
    ASSERT_TRUE(retry.ok()) << retry.status();
    EXPECT_EQ(client_->GetLatestCheckpoint("m")->step(), step);
    EXPECT_TRUE(RestoreStep(step).ok());
  }
  ExpectConsistent();

  // A restart finds every acknowledged step whole.
  ASSERT_NO_FATAL_FAILURE(Start(/*faulty=*/false));
  for (int64_t step : {1, 2, 3}) {
    absl::Status restored = RestoreStep(step);
    EXPECT_TRUE(restored.ok()) << "step " << step << ": " << restored;
  }
  ExpectConsistent();
  EXPECT_GE(fs_.faults_injected(), 4);
}

TEST_F(FaultServerTest, FailedSyncFailsThePushAndARestartShowsNoPartialStep) {
  ASSERT_NO_FATAL_FAILURE(Start());
  ASSERT_TRUE(client_->Push("m", MakeStep(1, 5000), {}).ok());
  fs_.FailSyncs(true);
  auto failed = client_->Push("m", MakeStep(2, 5000), {});
  ASSERT_FALSE(failed.ok());
  EXPECT_TRUE(failed.status().code() == absl::StatusCode::kUnavailable ||
              failed.status().code() == absl::StatusCode::kResourceExhausted)
      << failed.status();
  EXPECT_THAT(failed.status().message(), HasSubstr("sync failed"));
  // Reads go on.
  EXPECT_EQ(client_->GetLatestCheckpoint("m")->step(), 1);
  EXPECT_TRUE(RestoreStep(1).ok());
  fs_.FailSyncs(false);

  // RocksDB does not resume after a failed sync: after a restart the step whose sync
  // failed is absent or whole, never partial, and pushes work.
  ASSERT_NO_FATAL_FAILURE(Start(/*faulty=*/false));
  EXPECT_TRUE(RestoreStep(1).ok());
  auto step2 = client_->GetCheckpoint("m", 2);
  if (step2.ok()) {
    EXPECT_TRUE(RestoreStep(2).ok());
  } else {
    EXPECT_EQ(step2.status().code(), absl::StatusCode::kNotFound) << step2.status();
  }
  EXPECT_TRUE(client_->Push("m", MakeStep(3, 5000), {}).ok());
  ExpectConsistent();
}

TEST_F(FaultServerTest, FailedReadFailsTheRestoreWithAClearStatusAndLosesNothing) {
  ASSERT_NO_FATAL_FAILURE(Start());
  // Flushed-path chunks: their bytes are read from blob files, not from the memtable.
  ASSERT_TRUE(client_->Push("m", MakeStep(1, 400000), {}).ok());
  fs_.FailReads(true);
  absl::Status failed = RestoreStep(1);
  EXPECT_FALSE(failed.ok());
  EXPECT_THAT(failed.message(), HasSubstr("read failed")) << failed;
  // Metadata is still served, and nothing was lost: once reads work, so does a restore.
  EXPECT_EQ(client_->GetLatestCheckpoint("m")->step(), 1);
  fs_.FailReads(false);
  EXPECT_TRUE(RestoreStep(1).ok());
  ExpectConsistent();
}

class FaultFigures : public ::testing::Environment {
 public:
  void TearDown() override {
    std::printf("server fault injection: %lld faults injected, 0 bytes lost\n",
                static_cast<long long>(g_faults));
  }
};
const auto* const kFigures = ::testing::AddGlobalTestEnvironment(new FaultFigures);

}  // namespace
}  // namespace mgreg::testing
