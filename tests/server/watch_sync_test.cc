// Inference hosts: watch streams resumable by revision, aliases, GetCheckpointState, and
// a directory kept in sync that TensorFlow can read at any moment.
#include <atomic>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/clock.h"
#include "client/local_file.h"
#include "client/sync.h"
#include "common/file_digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/metagraph_io.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

// Reads events from a watch on its own thread.
class Watcher {
 public:
  Watcher(Client* client, v1::WatchCheckpointsRequest request)
      : stream_(client->Watch(request)) {
    thread_ = std::thread([this]() {
      v1::WatchEvent e;
      while (stream_->Next(&e)) {
        absl::MutexLock lock(&mu_);
        events_.push_back(e);
      }
      absl::MutexLock lock(&mu_);
      status_ = stream_->Finish();
      ended_ = true;
    });
  }
  ~Watcher() {
    stream_->Cancel();
    thread_.join();
  }

  // Waits (at most 10 s) until `n` events other than PROGRESS arrived, or the stream
  // ended; returns them.
  std::vector<v1::WatchEvent> WaitFor(size_t n) {
    absl::MutexLock lock(&mu_);
    auto enough = [&]() { return ended_ || Changes().size() >= n; };
    mu_.AwaitWithTimeout(absl::Condition(&enough), absl::Seconds(10));
    return Changes();
  }
  // Waits for the PROGRESS event: the watch is live.
  bool WaitLive() {
    absl::MutexLock lock(&mu_);
    auto live = [&]() {
      if (ended_) return true;
      for (const auto& e : events_) {
        if (e.type() == v1::WatchEvent::PROGRESS) return true;
      }
      return false;
    };
    mu_.AwaitWithTimeout(absl::Condition(&live), absl::Seconds(10));
    return !ended_;
  }
  absl::Status WaitEnd() {
    absl::MutexLock lock(&mu_);
    mu_.AwaitWithTimeout(absl::Condition(&ended_), absl::Seconds(10));
    return ended_ ? status_ : absl::DeadlineExceededError("the watch did not end");
  }

 private:
  std::vector<v1::WatchEvent> Changes() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    std::vector<v1::WatchEvent> out;
    for (const auto& e : events_) {
      if (e.type() != v1::WatchEvent::PROGRESS) out.push_back(e);
    }
    return out;
  }

  std::unique_ptr<WatchStream> stream_;
  std::thread thread_;
  absl::Mutex mu_;
  std::vector<v1::WatchEvent> events_ ABSL_GUARDED_BY(mu_);
  absl::Status status_ ABSL_GUARDED_BY(mu_);
  bool ended_ ABSL_GUARDED_BY(mu_) = false;
};

v1::WatchCheckpointsRequest WatchModel(const std::string& model, int64_t since = -1) {
  v1::WatchCheckpointsRequest r;
  r.set_model(model);
  r.set_since_revision(since);
  return r;
}

class WatchTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(WatchTest, CommitsDeletesAndAliasMovesArriveInRevisionOrder) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("a", 1, 1), PushOptions()).ok());
  Watcher w(client_.get(), WatchModel("m"));
  ASSERT_TRUE(w.WaitLive());
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("b", 2, 2), PushOptions()).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 2).ok());
  ASSERT_TRUE(client_->RemoveAlias("m", "production").ok());
  ASSERT_TRUE(client_->DeleteCheckpoint("m", 1).ok());
  std::vector<v1::WatchEvent> events = w.WaitFor(5);
  ASSERT_EQ(events.size(), 5u);
  EXPECT_EQ(events[0].type(), v1::WatchEvent::COMMITTED);
  EXPECT_EQ(events[0].step(), 2);
  EXPECT_EQ(events[1].type(), v1::WatchEvent::ALIAS_SET);
  EXPECT_EQ(events[1].alias(), "production");
  EXPECT_EQ(events[1].step(), 1);
  EXPECT_EQ(events[2].type(), v1::WatchEvent::ALIAS_SET);
  EXPECT_EQ(events[2].step(), 2);
  EXPECT_EQ(events[3].type(), v1::WatchEvent::ALIAS_REMOVED);
  EXPECT_EQ(events[4].type(), v1::WatchEvent::DELETED);
  EXPECT_EQ(events[4].step(), 1);
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_EQ(events[i].revision(), events[i - 1].revision() + 1);
  }
}

TEST_F(WatchTest, ResumingFromARevisionMissesNothingAndRepeatsNothing) {
  for (int step = 1; step <= 3; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  const int64_t first_revision = client_->GetCheckpoint("m", 1)->revision();
  // From the revision of step 1: exactly steps 2 and 3, then live events.
  Watcher w(client_.get(), WatchModel("m", first_revision));
  ASSERT_TRUE(w.WaitLive());
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s4", 4, 4), PushOptions()).ok());
  std::vector<v1::WatchEvent> events = w.WaitFor(3);
  ASSERT_EQ(events.size(), 3u);
  EXPECT_EQ(events[0].step(), 2);
  EXPECT_EQ(events[1].step(), 3);
  EXPECT_EQ(events[2].step(), 4);
}

TEST_F(WatchTest, ARevisionOutsideTheRetainedWindowIsOutOfRange) {
  ServerOptions options;
  options.event_window = 2;
  StartServer(options);
  for (int step = 1; step <= 4; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  Watcher w(client_.get(), WatchModel("m", 0));
  absl::Status s = w.WaitEnd();
  EXPECT_EQ(s.code(), absl::StatusCode::kOutOfRange) << s;
  EXPECT_THAT(s.message(), HasSubstr("revision"));
}

TEST_F(WatchTest, UnknownModelIsNotFoundButAPrefixWaitsForIt) {
  Watcher unknown(client_.get(), WatchModel("nope"));
  EXPECT_EQ(unknown.WaitEnd().code(), absl::StatusCode::kNotFound);
  v1::WatchCheckpointsRequest prefix;
  prefix.set_prefix("team-a/");
  prefix.set_since_revision(-1);
  Watcher w(client_.get(), prefix);
  ASSERT_TRUE(w.WaitLive());
  ASSERT_TRUE(client_->Push("team-b/x", MakeCheckpoint("b", 1, 1), PushOptions()).ok());
  ASSERT_TRUE(client_->Push("team-a/x", MakeCheckpoint("a", 1, 2), PushOptions()).ok());
  std::vector<v1::WatchEvent> events = w.WaitFor(1);
  ASSERT_EQ(events.size(), 1u);
  EXPECT_EQ(events[0].model(), "team-a/x");
  v1::WatchCheckpointsRequest both;
  both.set_model("m");
  both.set_all_models(true);
  Watcher bad(client_.get(), both);
  EXPECT_EQ(bad.WaitEnd().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(WatchTest, WatchesSurviveAServerRestartWithoutLosingEvents) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s0", 100, 0), PushOptions()).ok());
  int64_t last = client_->GetLatestCheckpoint("m")->revision();
  std::vector<int64_t> seen_steps;
  for (int round = 0; round < 2; ++round) {
    {
      // The watcher's own client outlives the server it watches.
      std::unique_ptr<Client> watch_client = NewClient();
      Watcher w(watch_client.get(), WatchModel("m", last));
      ASSERT_TRUE(w.WaitLive());
      // A burst of commits, then the server restarts while the watch is open.
      for (int i = 0; i < 5; ++i) {
        const int64_t step = round * 10 + i;
        ASSERT_TRUE(client_
                        ->Push("m", MakeCheckpoint(absl::StrCat("r", step), step, step),
                               PushOptions())
                        .ok());
      }
      std::vector<v1::WatchEvent> events = w.WaitFor(3);  // some, maybe not all
      for (const auto& e : events) {
        seen_steps.push_back(e.step());
        last = e.revision();
      }
      StartServer();  // the old server goes away under the watch
      EXPECT_EQ(w.WaitEnd().code(), absl::StatusCode::kUnavailable);
    }
  }
  // Resume after the last restart: the rest of the burst arrives, once each.
  Watcher w(client_.get(), WatchModel("m", last));
  ASSERT_TRUE(w.WaitLive());
  for (const auto& e : w.WaitFor(10 - seen_steps.size())) seen_steps.push_back(e.step());
  EXPECT_THAT(seen_steps, ElementsAre(0, 1, 2, 3, 4, 10, 11, 12, 13, 14));
}

TEST_F(WatchTest, AliasesAnswerEveryReadThatTakesAStep) {
  const std::string a = MakeCheckpoint("a", 1, 1);
  ASSERT_TRUE(client_->Push("m", a, PushOptions()).ok());
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("b", 2, 2), PushOptions()).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  EXPECT_EQ(client_->ResolveCheckpoint("m", StepRef::Alias("production"))->step(), 1);
  RestoreOptions restore;
  restore.alias = "production";
  const std::string dir = tmp_.Join("serving");
  ASSERT_TRUE(client_->Restore("m", dir, restore).ok());
  EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1.index"), ReadFileOrDie(a + ".index"));
  std::string graph;
  EXPECT_TRUE(
      client_
          ->FetchGraphBytes("m", StepRef::Alias("production"), v1::GraphOptions(), &graph)
          .ok());
  EXPECT_EQ(client_->InspectCheckpoint("m", StepRef::Alias("production"), false)->step(),
            1);
  auto list = client_->GetModel("m");
  EXPECT_EQ(list->aliases().at("production"), 1);
  // Errors: unknown alias, step, model; names that are not identifiers; deleting an
  // aliased step.
  EXPECT_EQ(client_->ResolveCheckpoint("m", StepRef::Alias("staging")).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->SetAlias("m", "staging", 99).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->SetAlias("nope", "staging", 1).status().code(),
            absl::StatusCode::kNotFound);
  for (const std::string& bad :
       std::vector<std::string>{"", "9lives", "has space", "a/b", std::string(65, 'a')}) {
    EXPECT_EQ(client_->SetAlias("m", bad, 1).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  auto del = client_->DeleteCheckpoint("m", 1);
  EXPECT_EQ(del.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(del.status().message(), HasSubstr("production"));
  EXPECT_EQ(client_->RemoveAlias("m", "staging").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(WatchTest, CheckpointStateListsTheStepsAsCheckpointManagerWould) {
  for (int step : {10, 20, 30}) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  auto state = client_->GetCheckpointState("m");
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-30");
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ElementsAre("model.ckpt-10", "model.ckpt-20", "model.ckpt-30"));
  ASSERT_EQ(state->all_model_checkpoint_timestamps_size(), 3);
  EXPECT_LE(state->all_model_checkpoint_timestamps(0),
            state->all_model_checkpoint_timestamps(2));
  EXPECT_GT(state->all_model_checkpoint_timestamps(0), 1.6e9);
  // It round-trips through TensorFlow's text format.
  auto parsed = ParseCheckpointState(FormatCheckpointState(*state));
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->all_model_checkpoint_paths_size(), 3);
  EXPECT_EQ(client_->GetCheckpointState("nope").status().code(),
            absl::StatusCode::kNotFound);
}

class SyncTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }
};

TEST_F(SyncTest, ADirectoryFollowsTheLatestStepAndIsNeverSeenHalfSwitched) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s1", 1, 1), PushOptions()).ok());
  const std::string dir = tmp_.Join("serving");
  SyncOptions options;
  options.keep = 2;
  options.graph_options.set_clear_devices(true);
  absl::Mutex mu;
  std::vector<int64_t> switches;
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    switches.push_back(c.step());
  };
  CheckpointSync sync(client_.get(), "m", dir, options);
  std::thread runner([&]() { EXPECT_TRUE(sync.Run().ok()); });
  auto wait_for_step = [&](int64_t step) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() { return !switches.empty() && switches.back() == step; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  };
  ASSERT_TRUE(wait_for_step(1));

  // A reader acting as TensorFlow: whenever it reads the state file, the checkpoint it
  // names is complete (index and every shard of the size the index was pushed with).
  std::atomic<bool> stop{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&]() {
    while (!stop) {
      auto text = ReadWholeFile(dir + "/checkpoint");
      if (!text.ok()) continue;
      auto state = ParseCheckpointState(*text);
      if (!state.ok()) {
        ++torn;
        continue;
      }
      const std::string p = dir + "/" + state->model_checkpoint_path();
      std::error_code ec;
      if (!fs::exists(p + ".index", ec) || !fs::exists(p + ".meta", ec) ||
          !fs::exists(p + ".data-00000-of-00002", ec) ||
          !fs::exists(p + ".data-00001-of-00002", ec)) {
        ++torn;
      }
      ++reads;
    }
  });
  for (int step = 2; step <= 5; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
    ASSERT_TRUE(wait_for_step(step)) << step;
  }
  stop = true;
  reader.join();
  sync.Stop();
  runner.join();
  EXPECT_EQ(torn, 0);
  EXPECT_GT(reads, 0);
  // Only the last two steps are kept, and the state file lists them.
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ElementsAre("model.ckpt-4", "model.ckpt-5"));
  EXPECT_FALSE(fs::exists(dir + "/model.ckpt-3.index"));
  EXPECT_TRUE(fs::exists(dir + "/model.ckpt-4.index"));
  // The restored .meta is the filtered one: no device left on any node.
  auto meta = ParseMetaGraph(ReadFileOrDie(dir + "/model.ckpt-5.meta"));
  ASSERT_TRUE(meta.ok());
  for (const auto& n : meta->graph_def().node()) EXPECT_EQ(n.device(), "") << n.name();
}

TEST_F(SyncTest, FollowingAnAliasSwitchesWhenTheAliasMoves) {
  for (int step = 1; step <= 2; ++step) {
    ASSERT_TRUE(client_
                    ->Push("m", MakeCheckpoint(absl::StrCat("s", step), step, step),
                           PushOptions())
                    .ok());
  }
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  SyncOptions options;
  options.alias = "production";
  absl::Mutex mu;
  int64_t current = -1;
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    current = c.step();
  };
  CheckpointSync sync(client_.get(), "m", tmp_.Join("serving"), options);
  std::thread runner([&]() { EXPECT_TRUE(sync.Run().ok()); });
  auto wait_for = [&](int64_t step) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() { return current == step; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  };
  ASSERT_TRUE(wait_for(1));
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s3", 3, 3), PushOptions()).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 2).ok());
  ASSERT_TRUE(wait_for(2));
  sync.Stop();
  runner.join();
}

TEST_F(SyncTest, FollowingAnAliasRestoresAgainWhenTheAliasedStepIsReCommitted) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s1", 1, 1), PushOptions()).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 1).ok());
  const std::string dir = tmp_.Join("serving");
  SyncOptions options;
  options.alias = "production";
  absl::Mutex mu;
  std::vector<std::string> switched;  // the index digest of each switch
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    for (const auto& f : c.files()) {
      if (f.name() == "index") switched.push_back(f.chunked_sha256());
    }
  };
  CheckpointSync sync(client_.get(), "m", dir, options);
  std::thread runner([&]() { EXPECT_TRUE(sync.Run().ok()); });
  auto wait_for_switches = [&](size_t n) {
    absl::MutexLock lock(&mu);
    auto reached = [&]() { return switched.size() >= n; };
    return mu.AwaitWithTimeout(absl::Condition(&reached), absl::Seconds(20));
  };
  ASSERT_TRUE(wait_for_switches(1));
  // Step 1 re-committed with other content (forced: an alias names it): the only event
  // is a COMMITTED of step 1, which the alias sync must not ignore.
  const std::string redone = MakeCheckpoint("s1b", 1, 77);
  PushOptions forced;
  forced.overwrite = true;
  forced.force = true;
  ASSERT_TRUE(client_->Push("m", redone, forced).ok());
  ASSERT_TRUE(wait_for_switches(2));
  sync.Stop();
  runner.join();
  const std::string new_index = ReadFileOrDie(redone + ".index");
  EXPECT_EQ(switched.back(), ChunkedSha256Hex(new_index));
  EXPECT_NE(switched.front(), switched.back());
  EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1.index"), new_index);
}

TEST_F(SyncTest, AnUnwritableDirectoryFailsBeforeAnyDownload) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("s1", 1, 1), PushOptions()).ok());
  WriteFileOrDie(tmp_.Join("file"), "x");
  CheckpointSync sync(client_.get(), "m", tmp_.Join("file/sub"), SyncOptions());
  EXPECT_EQ(sync.SyncOnce().status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(sync.Run().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace mgreg::testing
