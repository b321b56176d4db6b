// Several mgreg-server processes on one RADOS pool and namespace (--store rados), as
// replicas behind a Service: each serves what was pushed through another, restores are
// byte-identical, deletes and admin check see one registry. Needs a Ceph cluster
// (MGREG_TEST_CEPH_CONF; scripts/test.sh starts one), else skipped with a message.
#include <filesystem>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/checkpoint_builder.h"
#include "tests/process_util.h"
#include "tests/storage/rados/rados_test_util.h"
#include "tests/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class RadosReplicasTest : public ::testing::Test {
 protected:
  void SetUp() override {
    MGREG_REQUIRE_CEPH();
    ns_ = absl::StrCat("e2e-", std::random_device{}(), "-", std::random_device{}());
    for (int i = 0; i < 3; ++i) {
      replicas_.push_back(std::make_unique<ServerProcess>(Args(kTestCephPool)));
      ASSERT_TRUE(replicas_.back()->started());
      EXPECT_THAT(replicas_.back()->ready_line(),
                  HasSubstr(absl::StrCat("RADOS pool mgreg namespace ", ns_)));
    }
  }

  std::vector<std::string> Args(const std::string& pool) const {
    return {"--store",     "rados", "--ceph-conf", TestCephConf(), "--rados-pool", pool,
            "--rados-namespace", ns_};
  }
  CommandResult Mgreg(int replica, std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath("client/mgreg"), "--server", replicas_[replica]->address()});
    return RunCommand(args);
  }
  std::string MakeCheckpoint(int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join("train");
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    spec.tensors = {{"dense/w", FloatBytes(300000, step), 0},
                    {"dense/b", FloatBytes(10, step + 1), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  TempDir tmp_;
  std::string ns_;
  std::vector<std::unique_ptr<ServerProcess>> replicas_;
};

TEST_F(RadosReplicasTest, EveryReplicaServesWhatAnotherCommitted) {
  const std::string prefix = MakeCheckpoint(1000);
  CommandResult push = Mgreg(0, {"push", "resnet", prefix});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  for (int r : {1, 2}) {
    CommandResult latest = Mgreg(r, {"latest", "resnet"});
    ASSERT_EQ(latest.exit_code, 0) << latest.err;
    EXPECT_THAT(latest.out, HasSubstr("step       1000"));
  }
  // Restore through another replica: every file byte-identical to what was pushed.
  const std::string out = tmp_.Join("serving");
  CommandResult restore = Mgreg(2, {"restore", "resnet", out});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  for (const char* suffix : {".index", ".data-00000-of-00002", ".data-00001-of-00002",
                             ".meta"}) {
    EXPECT_EQ(ReadFileOrDie(out + "/model.ckpt-1000" + suffix),
              ReadFileOrDie(prefix + suffix))
        << suffix;
  }
  // A second step through another replica; the same .meta is deduplicated.
  ASSERT_EQ(Mgreg(1, {"push", "resnet", MakeCheckpoint(2000)}).exit_code, 0);
  EXPECT_THAT(Mgreg(0, {"latest", "resnet"}).out, HasSubstr("step       2000"));
  CommandResult del = Mgreg(2, {"delete", "resnet", "2000"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  EXPECT_THAT(Mgreg(0, {"latest", "resnet"}).out, HasSubstr("step       1000"));
  CommandResult check = Mgreg(1, {"admin", "check"});
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_THAT(check.out, HasSubstr("consistent: 1 models, 1 steps"));
}

TEST_F(RadosReplicasTest, AMissingPoolStopsTheServerWithAClearError) {
  std::vector<std::string> argv = {BinaryPath("server/mgreg-server"), "--listen",
                                   "127.0.0.1:0"};
  for (const std::string& a : Args("no-such-pool")) argv.push_back(a);
  CommandResult r = RunCommand(argv);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_THAT(r.err, HasSubstr("'no-such-pool' does not exist"));
  EXPECT_THAT(r.err, HasSubstr(TestCephConf()));
}

}  // namespace
}  // namespace mgreg::testing
