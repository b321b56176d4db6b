// CheckpointSync against the real server: a step whose graph cannot be filtered is
// skipped, the directory keeps serving the current step, and the next step is picked
// up (issue 18, item 3).
#include "client/sync.h"

#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// A .meta that TensorFlow's clear_extraneous_savers raises on: a saver_def op name with
// two ':' (meta_graph._op_name).
std::string UnfilterableMetaGraphBytes() {
  tensorflow::MetaGraphDef graph = SmallMetaGraph();
  graph.mutable_saver_def()->set_restore_op_name("save/restore_all:0:1");
  std::string out;
  graph.SerializeToString(&out);
  return out;
}

class SyncTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }

  void Push(int64_t step, bool good) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(absl::StrCat("train", step));
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.tensors = {{"dense/w", FloatBytes(1000, static_cast<uint32_t>(step)), 0}};
    spec.meta = good ? SmallMetaGraphBytes() : UnfilterableMetaGraphBytes();
    absl::StatusOr<v1::Checkpoint> pushed =
        client_->Push("m", WriteCheckpoint(spec), PushOptions());
    ASSERT_TRUE(pushed.ok()) << pushed.status();
  }
};

TEST_F(SyncTest, AStepWhoseGraphCannotBeFilteredIsSkippedAndTheNextIsPickedUp) {
  Push(1, /*good=*/true);
  const std::string dir = tmp_.Join("serving");
  SyncOptions options;
  options.graph_options.set_clear_extraneous_savers(true);
  absl::Mutex mu;
  std::vector<int64_t> switches;
  std::vector<std::string> skips;
  int retries = 0;
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    switches.push_back(c.step());
  };
  options.on_skip = [&](const v1::Checkpoint& c, const absl::Status& s) {
    absl::MutexLock lock(&mu);
    skips.push_back(absl::StrCat(c.step(), " ", s.ToString()));
  };
  options.on_retry = [&](const absl::Status&) {
    absl::MutexLock lock(&mu);
    ++retries;
  };
  CheckpointSync sync(client_.get(), "m", dir, options);
  absl::Status run_status;
  std::thread runner([&]() { run_status = sync.Run(); });
  auto wait = [&](auto done) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  };
  ASSERT_TRUE(wait([&]() { return switches.size() == 1; }));

  Push(2, /*good=*/false);
  ASSERT_TRUE(wait([&]() { return skips.size() == 1; }));
  EXPECT_EQ(sync.current_step(), 1);
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-1");
  // The graph is fetched first: nothing of step 2 was downloaded or left behind.
  for (const char* suffix : {".index", ".meta", ".data-00000-of-00001"}) {
    EXPECT_FALSE(fs::exists(dir + "/model.ckpt-2" + suffix)) << suffix;
  }

  Push(3, /*good=*/true);
  ASSERT_TRUE(wait([&]() { return switches.size() == 2; }));
  sync.Stop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_THAT(switches, ElementsAre(1, 3));
  ASSERT_EQ(skips.size(), 1u);
  EXPECT_THAT(skips[0], HasSubstr("2 FAILED_PRECONDITION"));
  EXPECT_THAT(skips[0], HasSubstr("clear_extraneous_savers"));
  EXPECT_EQ(retries, 0);
  state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ElementsAre("model.ckpt-1", "model.ckpt-3"));
}

TEST_F(SyncTest, SyncOnceOfAnUnfilterableLatestStepKeepsTheDirectoryAsItIs) {
  Push(1, /*good=*/true);
  Push(2, /*good=*/false);
  SyncOptions options;
  options.graph_options.set_clear_extraneous_savers(true);
  int skipped = 0;
  options.on_skip = [&](const v1::Checkpoint&, const absl::Status&) { ++skipped; };
  CheckpointSync fresh(client_.get(), "m", tmp_.Join("empty"), options);
  EXPECT_EQ(fresh.SyncOnce().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(skipped, 1);
  EXPECT_EQ(fresh.current_step(), -1);
  EXPECT_FALSE(fs::exists(tmp_.Join("empty/checkpoint")));
  // The same step again: the same error, not tried (nor reported) again.
  EXPECT_EQ(fresh.SyncOnce().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(skipped, 1);

  // A directory serving step 1 (restored earlier) still serves it.
  RestoreOptions restore;
  restore.step = 1;
  ASSERT_TRUE(client_->Restore("m", tmp_.Join("serving"), restore).ok());
  CheckpointSync serving(client_.get(), "m", tmp_.Join("serving"), options);
  EXPECT_EQ(serving.current_step(), 1);
  EXPECT_EQ(serving.SyncOnce().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(serving.current_step(), 1);
}

}  // namespace
}  // namespace mgreg::testing
