// mgreg-server replicas on one RADOS namespace, one of which dies (_exit, as SIGKILL
// would leave it) at a point inside a commit (MGREG_RADOS_CRASH_AT, storage/rados/
// rados_store.h): the other replica never shows a half-visible step (a step it lists
// restores byte-identical), its next write rolls the dead writer's transaction forward
// (or there is none, if it died before deciding), and `admin check` is clean. Needs a
// Ceph cluster (MGREG_TEST_CEPH_CONF; scripts/test.sh starts one), else skipped.
#include <stdlib.h>
#include <sys/wait.h>

#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/rados_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct CrashPoint {
  const char* name;
  // Whether the transaction was decided (and so must be rolled forward) at that point.
  bool decided;
};

class RadosCrashTest : public ::testing::TestWithParam<CrashPoint> {
 protected:
  void SetUp() override {
    MGREG_REQUIRE_CEPH();
    ns_ = absl::StrCat("crash-", std::random_device{}(), "-", std::random_device{}());
    healthy_ = std::make_unique<ServerProcess>(Args());
    ASSERT_TRUE(healthy_->started());
    ::setenv("MGREG_RADOS_CRASH_AT", GetParam().name, 1);
    dying_ = std::make_unique<ServerProcess>(Args());
    ::unsetenv("MGREG_RADOS_CRASH_AT");
    ASSERT_TRUE(dying_->started());
  }

  std::vector<std::string> Args() const {
    return {"--store",      "rados",       "--ceph-conf",       TestCephConf(),
            "--rados-pool", kTestCephPool, "--rados-namespace", ns_};
  }
  CommandResult Mgreg(ServerProcess& server, std::vector<std::string> args) {
    args.insert(args.begin(), {BinaryPath("client/mgreg"), "--server", server.address()});
    return RunCommand(args);
  }
  std::string MakeCheckpoint(int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(absl::StrCat("train-", step));
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    spec.tensors = {{"dense/w", FloatBytes(200000, step), 0},
                    {"dense/b", FloatBytes(10, step + 1), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }
  // Restores `step` through the healthy replica and compares every file with `prefix`.
  void ExpectRestoresByteIdentical(int64_t step, const std::string& prefix) {
    const std::string out = tmp_.Join(absl::StrCat("restored-", step, "-", restores_++));
    CommandResult restore =
        Mgreg(*healthy_, {"restore", "m", out, "--step", std::to_string(step)});
    ASSERT_EQ(restore.exit_code, 0) << restore.err;
    for (const char* suffix :
         {".index", ".data-00000-of-00002", ".data-00001-of-00002", ".meta"}) {
      EXPECT_EQ(ReadFileOrDie(absl::StrCat(out, "/model.ckpt-", step, suffix)),
                ReadFileOrDie(prefix + suffix))
          << step << suffix;
    }
  }
  bool Lists(int64_t step) {
    CommandResult steps = Mgreg(*healthy_, {"list", "m", "--json"});
    EXPECT_EQ(steps.exit_code, 0) << steps.err;
    return steps.out.find(absl::StrCat("\"step\": \"", step, "\"")) != std::string::npos;
  }

  TempDir tmp_;
  std::string ns_;
  std::unique_ptr<ServerProcess> healthy_, dying_;
  int restores_ = 0;
};

TEST_P(RadosCrashTest, OthersNeverSeeHalfAStepAndTheNextWriteFinishesIt) {
  const std::string first = MakeCheckpoint(1000), crashed = MakeCheckpoint(2000);
  ASSERT_EQ(Mgreg(*healthy_, {"push", "m", first}).exit_code, 0);

  // The dying replica's commit of step 2000 ends with its process.
  CommandResult push = Mgreg(*dying_, {"push", "m", crashed});
  EXPECT_NE(push.exit_code, 0) << "the push through the dying replica succeeded";
  const int status = dying_->Stop(SIGKILL);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 86)
      << "the replica did not exit at " << GetParam().name << " (wait status " << status
      << "); the client said: " << push.err;

  // Before any other write: step 2000 is served whole or not at all.
  CommandResult latest = Mgreg(*healthy_, {"latest", "m"});
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  if (Lists(2000)) ExpectRestoresByteIdentical(2000, crashed);
  ExpectRestoresByteIdentical(1000, first);

  // The next write finishes (or finds nothing of) the dead writer's transaction.
  const std::string next = MakeCheckpoint(3000);
  CommandResult after = Mgreg(*healthy_, {"push", "m", next});
  ASSERT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(Lists(2000), GetParam().decided);
  if (GetParam().decided) ExpectRestoresByteIdentical(2000, crashed);
  ExpectRestoresByteIdentical(3000, next);
  CommandResult check = Mgreg(*healthy_, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent"));

  // Pushing step 2000 again is committed once (or is unchanged if it was rolled forward).
  CommandResult again = Mgreg(*healthy_, {"push", "m", crashed});
  ASSERT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(Lists(2000));
  ExpectRestoresByteIdentical(2000, crashed);
  check = Mgreg(*healthy_, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent: 1 models, 3 steps"));
}

INSTANTIATE_TEST_SUITE_P(Points, RadosCrashTest,
                         ::testing::Values(CrashPoint{"before_decide", false},
                                           CrashPoint{"after_decide", true},
                                           CrashPoint{"between_applies", true},
                                           CrashPoint{"before_notify", true}),
                         [](const ::testing::TestParamInfo<CrashPoint>& info) {
                           return std::string(info.param.name);
                         });

}  // namespace
}  // namespace mgreg::testing
