// A hostile or broken server cannot make the client write outside the directory it was
// given (issue 11, item 1): Client::Restore, CheckpointSync, `mgreg restore` and
// `mgreg sync` check every name of the server's answer before anything is written, and
// a sync skips such a step, keeps serving the current one and moves on (issue 18,
// item 3). The same for SavedModel steps restored into TF Serving's base path (issue 15).
#include <filesystem>
#include <map>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "client/client.h"
#include "client/sync.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "tests/testing/fake_registry.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

// Every regular file under `root`, relative to it.
std::set<std::string> FilesUnder(const std::string& root) {
  std::set<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file()) out.insert(fs::relative(e.path(), root).string());
  }
  return out;
}

std::map<std::string, std::string> GoodFiles(const std::string& seed) {
  return {{"index", "index of " + seed}, {"data-00000-of-00001", "data of " + seed}};
}

class HostileServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fs::create_directories(tmp_.Join("victim/train"));
    WriteFileOrDie(victim_, "the trainer's own index");
    dir_ = tmp_.Join("a/b/serving");
    ClientOptions options;
    options.target = fake_.address();
    client_ = std::move(Client::Connect(options)).value();
  }

  // Nothing but the victim's file, unchanged, and what `dir_` holds legitimately.
  void ExpectOnlyTheVictimOutsideDir(const std::set<std::string>& in_dir = {}) {
    std::set<std::string> expected = {"victim/train/model.ckpt-1000.index"};
    for (const std::string& f : in_dir) expected.insert("a/b/serving/" + f);
    EXPECT_EQ(FilesUnder(tmp_.path()), expected);
    EXPECT_EQ(ReadFileOrDie(victim_), "the trainer's own index");
  }

  CommandResult Mgreg(std::vector<std::string> args) {
    args.insert(args.begin(), {BinaryPath("client/mgreg"), "--server", fake_.address()});
    return RunCommand(args);
  }

  TempDir tmp_;
  const std::string victim_ = tmp_.Join("victim/train/model.ckpt-1000.index");
  std::string dir_;
  FakeRegistry fake_;
  std::unique_ptr<Client> client_;
};

TEST_F(HostileServerTest, RestoreRefusesEveryNameLeavingTheDirectoryAndWritesNothing) {
  struct Case {
    std::string basename;
    std::string file;   // replaces "index"
    std::string named;  // in the message
  };
  const std::string absolute = tmp_.Join("victim/train/model.ckpt");
  for (const Case& c : std::vector<Case>{
           {"../../pwned/evil", "index", "../../pwned/evil"},
           {absolute, "index", absolute},
           {"sub/model.ckpt", "index", "sub/model.ckpt"},
           {"..", "index", "'..'"},
           {"", "index", "basename"},
           {"model.ckpt", "../../../pwned.index", "../../../pwned.index"},
           {"model.ckpt", "x/../../y", "x/../../y"},
           {"model.ckpt", "/etc/evil", "/etc/evil"},
           {std::string(300, 'b'), "index", "300 bytes"},
           {std::string(250, 'b'), "index", "more than a file name can hold"},
       }) {
    fake_.Answer("m", 1000, c.basename,
                 {{c.file, "evil bytes"}, {"data-00000-of-00001", "evil data"}});
    for (bool filtered : {false, true}) {
      RestoreOptions options;
      if (filtered) options.graph_options.set_clear_devices(true);
      absl::StatusOr<v1::Checkpoint> r = client_->Restore("m", dir_, options);
      EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument)
          << c.basename << " " << c.file << ": " << r.status();
      EXPECT_THAT(r.status().message(), HasSubstr(c.named)) << c.basename;
      EXPECT_THAT(r.status().message(), HasSubstr("nothing was written"));
    }
    ExpectOnlyTheVictimOutsideDir();
  }
  EXPECT_EQ(fake_.reads(), 0);  // no byte was even asked for
}

TEST_F(HostileServerTest, RestoreRefusesANegativeStepAndAFileNamedTwice) {
  fake_.Answer("m", -3, "model.ckpt", GoodFiles("x"));
  EXPECT_EQ(client_->Restore("m", dir_, RestoreOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::Checkpoint twice;
  twice.set_model("m");
  twice.set_step(5);
  twice.set_basename("model.ckpt");
  for (int i = 0; i < 2; ++i) {
    v1::FileInfo* f = twice.add_files();
    f->set_name("index");
    f->set_size(1);
    f->set_sha256(std::string(64, 'a'));
  }
  fake_.AnswerRaw(twice, {{"index", "x"}});
  absl::StatusOr<v1::Checkpoint> r = client_->Restore("m", dir_, RestoreOptions());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("names file 'index' twice"));
  ExpectOnlyTheVictimOutsideDir();
}

TEST_F(HostileServerTest, AFailedRestoreRemovesTheFilesItWroteAndKeepsTheStateFile) {
  fake_.Answer("m", 1, "model.ckpt", GoodFiles("one"));
  ASSERT_TRUE(client_->Restore("m", dir_, RestoreOptions()).ok());
  const std::string state = ReadFileOrDie(dir_ + "/checkpoint");
  // Step 2's data arrives, its index does not match its announced digest.
  v1::Checkpoint two;
  two.set_model("m");
  two.set_step(2);
  two.set_basename("model.ckpt");
  *two.add_files() = v1::FileInfo();
  two.mutable_files(0)->set_name("data-00000-of-00001");
  two.mutable_files(0)->set_size(3);
  two.mutable_files(0)->set_sha256(
      "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  two.add_files()->set_name("index");
  two.mutable_files(1)->set_size(1);
  two.mutable_files(1)->set_sha256(std::string(64, '0'));
  fake_.AnswerRaw(two, {{"data-00000-of-00001", "abc"}, {"index", "x"}});
  EXPECT_EQ(client_->Restore("m", dir_, RestoreOptions()).status().code(),
            absl::StatusCode::kDataLoss);
  EXPECT_EQ(ReadFileOrDie(dir_ + "/checkpoint"), state);
  ExpectOnlyTheVictimOutsideDir(
      {"checkpoint", "model.ckpt-1.index", "model.ckpt-1.data-00000-of-00001"});
}

TEST_F(HostileServerTest, CliRestoreAndSyncOnceWriteNothingOutsideTheDirectory) {
  for (const std::string& basename :
       {std::string("../../pwned/evil"), tmp_.Join("victim/train/model.ckpt"),
        std::string(300, 'b')}) {
    fake_.Answer("m", 1000, basename, GoodFiles("evil"));
    CommandResult restore = Mgreg({"restore", "m", dir_});
    EXPECT_EQ(restore.exit_code, 1) << restore.err;
    EXPECT_THAT(restore.err, HasSubstr("INVALID_ARGUMENT"));
    EXPECT_THAT(restore.err, HasSubstr("the server's basename"));
    // sync --once: the directory serves nothing yet, so the skipped step fails it.
    CommandResult once = Mgreg({"sync", "m", dir_, "--once", "--clear-devices"});
    EXPECT_EQ(once.exit_code, 1) << once.err;
    EXPECT_THAT(once.err, HasSubstr("skipping m step 1000: INVALID_ARGUMENT"));
    EXPECT_THAT(once.err, HasSubstr("holds no step yet"));
    EXPECT_THAT(once.err, Not(HasSubstr("UNAVAILABLE")));
    ExpectOnlyTheVictimOutsideDir();
  }
}

TEST_F(HostileServerTest, SyncOnceKeepsServingTheCurrentStepWhenTheNextIsHostile) {
  fake_.Answer("m", 1, "model.ckpt", GoodFiles("one"));
  CommandResult first = Mgreg({"sync", "m", dir_, "--once"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  fake_.Answer("m", 2, "../../pwned/evil", GoodFiles("two"));
  CommandResult second = Mgreg({"sync", "m", dir_, "--once"});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, HasSubstr("skipping m step 2: INVALID_ARGUMENT"));
  EXPECT_THAT(second.err, HasSubstr(dir_ + " keeps step 1"));
  auto state = ParseCheckpointState(ReadFileOrDie(dir_ + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-1");
  ExpectOnlyTheVictimOutsideDir(
      {"checkpoint", "model.ckpt-1.index", "model.ckpt-1.data-00000-of-00001"});
}

TEST_F(HostileServerTest, SyncSkipsAHostileStepOnceKeepsServingAndMovesOnToTheNext) {
  fake_.Answer("m", 1, "model.ckpt", GoodFiles("one"));
  SyncOptions options;
  options.keep = 2;
  absl::Mutex mu;
  std::vector<int64_t> switches;
  std::vector<std::string> skips;
  options.on_switch = [&](const v1::Checkpoint& c) {
    absl::MutexLock lock(&mu);
    switches.push_back(c.step());
  };
  options.on_skip = [&](const v1::Checkpoint& c, const absl::Status& s) {
    absl::MutexLock lock(&mu);
    skips.push_back(absl::StrCat(c.step(), " ", s.ToString()));
  };
  int retries = 0;
  options.on_retry = [&](const absl::Status&) {
    absl::MutexLock lock(&mu);
    ++retries;
  };
  CheckpointSync sync(client_.get(), "m", dir_, options);
  absl::Status run_status;
  std::thread runner([&]() { run_status = sync.Run(); });
  auto wait = [&](auto done) {
    absl::MutexLock lock(&mu);
    return mu.AwaitWithTimeout(absl::Condition(&done), absl::Seconds(20));
  };
  ASSERT_TRUE(wait([&]() { return switches.size() == 1; }));

  v1::WatchEvent committed;
  committed.set_type(v1::WatchEvent::COMMITTED);
  committed.set_model("m");
  fake_.Answer("m", 2, tmp_.Join("victim/train/model.ckpt"), GoodFiles("two"));
  committed.set_step(2);
  fake_.SendEvent(committed);
  ASSERT_TRUE(wait([&]() { return skips.size() == 1; }));
  EXPECT_EQ(sync.current_step(), 1);
  // Another event while the hostile step is still the latest: resolved, not tried
  // again (no read, no second report).
  const int resolves = fake_.resolves();
  const int reads = fake_.reads();
  fake_.SendEvent(committed);
  ASSERT_TRUE(fake_.WaitForResolves(resolves + 1, absl::Seconds(20)));

  // The sync has finished with that event once it asks again for the next one.
  fake_.Answer("m", 3, "model.ckpt", GoodFiles("three"));
  committed.set_step(3);
  fake_.SendEvent(committed);
  ASSERT_TRUE(wait([&]() { return switches.size() == 2; }));
  sync.Stop();
  runner.join();
  EXPECT_TRUE(run_status.ok()) << run_status;
  EXPECT_THAT(switches, ElementsAre(1, 3));
  ASSERT_EQ(skips.size(), 1u);
  EXPECT_THAT(skips[0], HasSubstr("2 INVALID_ARGUMENT"));
  EXPECT_EQ(retries, 0);
  EXPECT_EQ(fake_.reads(), reads + 2);  // step 3's two files, nothing of step 2 again
  auto state = ParseCheckpointState(ReadFileOrDie(dir_ + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ElementsAre("model.ckpt-1", "model.ckpt-3"));
  ExpectOnlyTheVictimOutsideDir({"checkpoint", "model.ckpt-1.index",
                                 "model.ckpt-1.data-00000-of-00001", "model.ckpt-3.index",
                                 "model.ckpt-3.data-00000-of-00001"});
}

// A SavedModel step answered with `names` (each file's content is its name).
v1::Checkpoint SavedModelAnswer(const std::vector<std::string>& names, int64_t step = 7) {
  v1::Checkpoint c;
  c.set_model("m");
  c.set_step(step);
  c.set_kind(v1::SAVED_MODEL);
  for (const std::string& name : names) {
    v1::FileInfo* f = c.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(name.size()));
    f->set_sha256(Sha256Hex(name));
    c.set_total_bytes(c.total_bytes() + f->size());
  }
  return c;
}

std::map<std::string, std::string> ContentsOf(const v1::Checkpoint& c) {
  std::map<std::string, std::string> out;
  for (const v1::FileInfo& f : c.files()) out[f.name()] = f.name();
  return out;
}

// Issue 15: RestoreSavedModel, Restore and sync of a SavedModel step check every name
// before anything is written into TF Serving's base path.
TEST_F(HostileServerTest, SavedModelRestoreAndSyncRefuseNamesLeavingTheVersionDirectory) {
  const std::string victim_relative = "../../../victim/train/model.ckpt-1000.index";
  for (const std::vector<std::string>& names : std::vector<std::vector<std::string>>{
           {"saved_model.pb", "../evil"},
           {"saved_model.pb", "variables/../../evil"},
           {"saved_model.pb", victim_relative},
           {"saved_model.pb", tmp_.Join("victim/train/model.ckpt-1000.index")},
           {"saved_model.pb", "assets//x"},
           {"saved_model.pb", "./x"},
           {"saved_model.pb", "assets", "assets/vocab.txt"},
           {"saved_model.pb", "saved_model.pb"},
           {"variables/variables.index"},  // no saved_model.pb: not a SavedModel
       }) {
    const v1::Checkpoint answer = SavedModelAnswer(names);
    fake_.AnswerRaw(answer, ContentsOf(answer));
    absl::StatusOr<v1::Checkpoint> r =
        client_->RestoreSavedModel("m", dir_, RestoreOptions());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << names.back();
    EXPECT_THAT(r.status().message(), HasSubstr("nothing was written")) << names.back();
    r = client_->Restore("m", dir_, RestoreOptions());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << names.back();
    CheckpointSync sync(client_.get(), "m", dir_, SyncOptions());
    EXPECT_EQ(sync.SyncOnce().status().code(), absl::StatusCode::kInvalidArgument);
    CommandResult cli = Mgreg({"restore", "m", dir_});
    EXPECT_EQ(cli.exit_code, 1) << cli.err;
    EXPECT_THAT(cli.err, HasSubstr("INVALID_ARGUMENT"));
    ExpectOnlyTheVictimOutsideDir();
  }
  EXPECT_EQ(fake_.reads(), 0);  // no byte was even asked for

  // A good version lands whole; a hostile next one leaves it served.
  const v1::Checkpoint good =
      SavedModelAnswer({"saved_model.pb", "variables/variables.index",
                        "variables/variables.data-00000-of-00001", "assets/foo.txt"});
  fake_.AnswerRaw(good, ContentsOf(good));
  CommandResult first = Mgreg({"sync", "m", dir_, "--once"});
  ASSERT_EQ(first.exit_code, 0) << first.err;
  const v1::Checkpoint evil = SavedModelAnswer({"saved_model.pb", "../../evil"}, 8);
  fake_.AnswerRaw(evil, ContentsOf(evil));
  CommandResult second = Mgreg({"sync", "m", dir_, "--once"});
  EXPECT_EQ(second.exit_code, 0) << second.err;
  EXPECT_THAT(second.err, HasSubstr("skipping m step 8: INVALID_ARGUMENT"));
  EXPECT_THAT(second.err, HasSubstr(dir_ + " keeps step 7"));
  ExpectOnlyTheVictimOutsideDir({"7/saved_model.pb", "7/variables/variables.index",
                                 "7/variables/variables.data-00000-of-00001",
                                 "7/assets/foo.txt"});
}

}  // namespace
}  // namespace mgreg::testing
