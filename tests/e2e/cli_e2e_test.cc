// The README's user journey with the real binaries: mgreg-server on a RocksDB data dir,
// and the mgreg CLI pushing, listing, fetching, restoring and deleting.
#include <filesystem>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/store_surgery.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--data-dir", tmp_.Join("data")});
    ASSERT_TRUE(server_->started());
  }

  CommandResult Mgreg(std::vector<std::string> args) {
    args.insert(args.begin(),
                {BinaryPath("client/mgreg"), "--server", server_->address()});
    return RunCommand(args);
  }

  std::string MakeCheckpoint(int64_t step) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join("train");
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    spec.tensors = {{"dense/w", FloatBytes(50000, 1), 0},
                    {"dense/b", FloatBytes(10, 2), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  TempDir tmp_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(CliTest, PushLatestListGraphRestoreDelete) {
  const std::string prefix = MakeCheckpoint(1000);
  CommandResult push = Mgreg({"push", "resnet", prefix});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_THAT(push.out, HasSubstr("pushed resnet step 1000"));

  CommandResult latest = Mgreg({"latest", "resnet"});
  ASSERT_EQ(latest.exit_code, 0) << latest.err;
  EXPECT_THAT(latest.out, HasSubstr("step       1000"));
  EXPECT_THAT(latest.out, HasSubstr("data-00001-of-00002"));

  CommandResult json = Mgreg({"latest", "resnet", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("\"step\": \"1000\""));
  EXPECT_THAT(json.out, HasSubstr("\"sha256\": \""));

  CommandResult models = Mgreg({"list"});
  ASSERT_EQ(models.exit_code, 0) << models.err;
  EXPECT_THAT(models.out, HasSubstr("resnet"));
  CommandResult steps = Mgreg({"list", "resnet", "--json"});
  ASSERT_EQ(steps.exit_code, 0) << steps.err;
  EXPECT_THAT(steps.out, HasSubstr("\"step\": \"1000\""));

  const std::string out_meta = tmp_.Join("out.meta");
  CommandResult graph = Mgreg({"graph", "resnet", "-o", out_meta});
  ASSERT_EQ(graph.exit_code, 0) << graph.err;
  EXPECT_EQ(ReadFileOrDie(out_meta), ReadFileOrDie(prefix + ".meta"));

  const std::string dir = tmp_.Join("serving");
  CommandResult restore = Mgreg({"restore", "resnet", dir});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1000.index"),
            ReadFileOrDie(prefix + ".index"));
  EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1000.data-00000-of-00002"),
            ReadFileOrDie(prefix + ".data-00000-of-00002"));
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-1000");

  CommandResult del = Mgreg({"delete", "resnet", "1000"});
  ASSERT_EQ(del.exit_code, 0) << del.err;
  CommandResult gone = Mgreg({"latest", "resnet"});
  EXPECT_EQ(gone.exit_code, 1);
  EXPECT_THAT(gone.err, HasSubstr("NOT_FOUND"));
}

// Issue 17: the README's by-hand check of a restored file (coreutils + python3), run
// verbatim on a restored multi-piece file, prints the chunked digest mgreg shows.
TEST_F(CliTest, TheReadmesByHandDigestOfARestoredFileIsTheOneMgregShows) {
  const std::string readme = ReadFileOrDie(MGREG_README);
  const std::string start = "```sh\nsplit -b 1048576";
  const size_t begin = readme.find(start);
  ASSERT_NE(begin, std::string::npos) << "README lost its by-hand digest check";
  const size_t end = readme.find("```", begin + 5);
  std::string line = readme.substr(begin + 6, end - begin - 6);
  const std::string example = "/serving/model.ckpt-1000.index";
  const size_t at = line.find(example);
  ASSERT_NE(at, std::string::npos) << line;

  CheckpointSpec spec;
  spec.directory = tmp_.Join("big");
  fs::create_directories(spec.directory);
  spec.step = 7;
  spec.num_shards = 1;
  spec.tensors = {{"w", FloatBytes(700000, 3), 0}};  // 2.8 MB: three 1 MiB pieces
  spec.meta = SmallMetaGraphBytes();
  const std::string prefix = WriteCheckpoint(spec);
  ASSERT_EQ(Mgreg({"push", "m", prefix}).exit_code, 0);
  const std::string dir = tmp_.Join("restored");
  ASSERT_EQ(Mgreg({"restore", "m", dir}).exit_code, 0);
  const std::string restored = dir + "/model.ckpt-7.data-00000-of-00001";
  ASSERT_GT(fs::file_size(restored), 2u << 20);
  line.replace(at, example.size(), restored);
  CommandResult by_hand = RunCommand({"/bin/bash", "-c", line});
  ASSERT_EQ(by_hand.exit_code, 0) << by_hand.err;
  ASSERT_EQ(by_hand.out.size(), 65u) << by_hand.out;  // 64 hex digits and a newline
  const std::string digest = by_hand.out.substr(0, 64);

  CommandResult json = Mgreg({"latest", "m", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr(absl::StrCat("\"chunked_sha256\": \"", digest, "\"")))
      << json.out;
  CommandResult text = Mgreg({"latest", "m"});
  EXPECT_THAT(text.out, HasSubstr(absl::StrCat("chunked-sha256:", digest)));
}

TEST_F(CliTest, StepComesFromThePrefixOrFromStep) {
  const std::string prefix = MakeCheckpoint(5);
  CommandResult push = Mgreg({"push", "m", prefix, "--step", "77"});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_THAT(push.out, HasSubstr("step 77"));
  CommandResult restore = Mgreg({"restore", "m", tmp_.Join("r"), "--step", "77"});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_TRUE(fs::exists(tmp_.Join("r/model.ckpt-77.index")));
}

TEST_F(CliTest, ExistingStepWithOtherContentNeedsOverwrite) {
  const std::string prefix = MakeCheckpoint(5);
  ASSERT_EQ(Mgreg({"push", "m", prefix}).exit_code, 0);
  ASSERT_EQ(Mgreg({"push", "m", prefix}).exit_code, 0);  // identical: idempotent
  WriteFileOrDie(prefix + ".data-00001-of-00002", FloatBytes(10, 3));
  // The index no longer matches the data's CRCs, but shapes and sizes still do.
  CommandResult conflict = Mgreg({"push", "m", prefix});
  EXPECT_EQ(conflict.exit_code, 1);
  EXPECT_THAT(conflict.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_THAT(conflict.err, HasSubstr("--overwrite"));
  EXPECT_EQ(Mgreg({"push", "m", prefix, "--overwrite"}).exit_code, 0);
}

TEST_F(CliTest, OverwritingAPinnedAliasedStepNeedsForce) {
  const std::string prefix = MakeCheckpoint(5);
  ASSERT_EQ(Mgreg({"push", "m", prefix}).exit_code, 0);
  ASSERT_EQ(Mgreg({"pin", "m", "5"}).exit_code, 0);
  ASSERT_EQ(Mgreg({"alias", "set", "m", "production", "5"}).exit_code, 0);
  WriteFileOrDie(prefix + ".data-00001-of-00002", FloatBytes(10, 3));
  CommandResult refused = Mgreg({"push", "m", prefix, "--overwrite"});
  EXPECT_EQ(refused.exit_code, 1);
  EXPECT_THAT(refused.err, HasSubstr("FAILED_PRECONDITION"));
  EXPECT_THAT(refused.err, HasSubstr("pinned and named by alias 'production'"));
  EXPECT_THAT(refused.err, HasSubstr("--force"));
  CommandResult alone = Mgreg({"push", "m", prefix, "--force"});
  EXPECT_EQ(alone.exit_code, 1);
  EXPECT_THAT(alone.err, HasSubstr("--force only applies to --overwrite"));
  EXPECT_EQ(Mgreg({"push", "m", prefix, "--overwrite", "--force"}).exit_code, 0);
}

// Issue 18 item 10: a collection kind the server's config registers from a descriptor
// set is decoded by `mgreg collection` and filtered/stripped by --export-scope.
TEST(CliCollectionKindsTest, ConfiguredKindsAreDecodedAndScopedThroughTheServer) {
  TempDir tmp;
  WriteFileOrDie(tmp.Join("layers.pb"), LayerDefDescriptorSet().SerializeAsString());
  WriteFileOrDie(tmp.Join("mgreg.textproto"),
                 "collection_kinds {\n"
                 "  key: \"layers\"\n"
                 "  descriptor_set_file: \"layers.pb\"  # beside this file\n"
                 "  message_type: \"mylib.LayerDef\"\n"
                 "  name_fields: [\"name\", \"inputs\", \"output.tensor\"]\n"
                 "}\n");
  ServerProcess server(
      {"--data-dir", tmp.Join("data"), "--config", tmp.Join("mgreg.textproto")});
  ASSERT_TRUE(server.started());
  auto mgreg = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {BinaryPath("client/mgreg"), "--server", server.address()});
    return RunCommand(args);
  };
  CheckpointSpec spec;
  spec.directory = tmp.Join("train");
  fs::create_directories(spec.directory);
  spec.step = 3;
  spec.tensors = {{"dense/w", FloatBytes(100, 1), 0}};
  spec.meta = MetaGraphWithLayers().SerializeAsString();
  ASSERT_EQ(mgreg({"push", "m", WriteCheckpoint(spec)}).exit_code, 0);

  CommandResult json = mgreg({"collection", "m", "layers", "--json"});
  ASSERT_EQ(json.exit_code, 0) << json.err;
  EXPECT_THAT(json.out, HasSubstr("{\"name\":\"head/layer\",\"inputs\":[\"dense/out:0\"],"
                                  "\"output\":{\"tensor\":\"head/out:0\"},\"units\":2}"));
  CommandResult text = mgreg({"collection", "m", "layers"});
  ASSERT_EQ(text.exit_code, 0) << text.err;
  EXPECT_THAT(text.out, HasSubstr("name: \"dense/layer\" inputs: \"dense/w:0\""));

  ASSERT_EQ(mgreg({"graph", "m", "--export-scope", "dense", "-o", tmp.Join("out.meta")})
                .exit_code,
            0);
  tensorflow::MetaGraphDef exported;
  ASSERT_TRUE(exported.ParseFromString(ReadFileOrDie(tmp.Join("out.meta"))));
  const auto& layers = exported.collection_def().at("layers").bytes_list();
  ASSERT_EQ(layers.value_size(), 1);  // head/layer is outside the scope
  EXPECT_EQ(layers.value(0),
            LayerDefBytes("layer", {"w:0", "other/x:0"}, "out:0", 8));  // stripped

  // A kind naming a field the type lacks stops the server at start, saying so.
  WriteFileOrDie(tmp.Join("bad.textproto"),
                 "collection_kinds { key: \"layers\" descriptor_set_file: \"layers.pb\" "
                 "message_type: \"mylib.LayerDef\" name_fields: \"nme\" }\n");
  CommandResult check = RunCommand({BinaryPath("server/mgreg-server"), "--check-config",
                                    "--config", tmp.Join("bad.textproto")});
  EXPECT_NE(check.exit_code, 0);
  EXPECT_THAT(check.err, HasSubstr("bad.textproto:1:1"));
  EXPECT_THAT(check.err, HasSubstr("has no field 'nme'"));
}

TEST_F(CliTest, BadCommandLinesExitTwoWithUsage) {
  CommandResult none = Mgreg({});
  EXPECT_EQ(none.exit_code, 2);
  EXPECT_THAT(none.err, HasSubstr("usage: mgreg"));
  EXPECT_EQ(Mgreg({"push", "m"}).exit_code, 2);
  EXPECT_EQ(Mgreg({"frobnicate"}).exit_code, 2);
  CommandResult unknown = Mgreg({"latest", "m", "--colour"});
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_THAT(unknown.err, HasSubstr("--colour"));
  CommandResult step = Mgreg({"delete", "m", "-3"});
  EXPECT_EQ(step.exit_code, 2);  // "-3" reads as an option
  CommandResult word = Mgreg({"delete", "m", "ten"});
  EXPECT_EQ(word.exit_code, 1);
  EXPECT_THAT(word.err, HasSubstr("not an integer"));
}

TEST_F(CliTest, ErrorsNameTheProblem) {
  CommandResult bad_name = Mgreg({"latest", "team-a//resnet"});
  EXPECT_EQ(bad_name.exit_code, 1);
  EXPECT_THAT(bad_name.err, HasSubstr("INVALID_ARGUMENT"));
  EXPECT_THAT(bad_name.err, HasSubstr("empty segment"));
  CommandResult no_index = Mgreg({"push", "m", tmp_.Join("train/nothing-1")});
  EXPECT_EQ(no_index.exit_code, 1);
  EXPECT_THAT(no_index.err, HasSubstr(".index"));
  CommandResult no_output = Mgreg({"graph", "m"});
  EXPECT_EQ(no_output.exit_code, 1);
  EXPECT_THAT(no_output.err, HasSubstr("-o FILE"));
}

TEST_F(CliTest, AnUnreachableServerSaysWhereItLooked) {
  CommandResult r = RunCommand(
      {BinaryPath("client/mgreg"), "--server", "127.0.0.1:1", "latest", "resnet"});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("UNAVAILABLE"));
  EXPECT_THAT(r.err, HasSubstr("--server"));
}

TEST_F(CliTest, TheServerRefusesADataDirInUse) {
  ServerProcess second({"--data-dir", tmp_.Join("data")}, /*expect_start=*/false);
  EXPECT_FALSE(second.started());
}

TEST_F(CliTest, AdminCheckExitsOneAndNamesTheProblemsOfADamagedStore) {
  ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint(1)}).exit_code, 0);
  CommandResult clean = Mgreg({"admin", "check"});
  EXPECT_EQ(clean.exit_code, 0) << clean.err;
  EXPECT_THAT(clean.out, HasSubstr("consistent: 1 models, 1 steps"));

  // Behind the server's back: a referenced chunk's bytes go, a stray chunk appears.
  server_->Stop(SIGTERM);
  absl::StatusOr<std::string> missing =
      DamageStore(tmp_.Join("data"), Damage::kMissingChunk);
  ASSERT_TRUE(missing.ok()) << missing.status();
  absl::StatusOr<std::string> leaked =
      DamageStore(tmp_.Join("data"), Damage::kLeakedChunk);
  ASSERT_TRUE(leaked.ok()) << leaked.status();
  server_ = std::make_unique<ServerProcess>(
      std::vector<std::string>{"--data-dir", tmp_.Join("data")});
  ASSERT_TRUE(server_->started());

  CommandResult damaged = Mgreg({"admin", "check"});
  EXPECT_EQ(damaged.exit_code, 1) << damaged.err;
  EXPECT_THAT(damaged.out, HasSubstr("INCONSISTENT"));
  EXPECT_THAT(damaged.out,
              HasSubstr("chunk " + *missing + " is referenced but not stored (missing)"));
  EXPECT_THAT(damaged.out, HasSubstr("chunk " + *leaked +
                                     " (4096 bytes) is stored but "
                                     "nothing references or holds it (leaked)"));
  EXPECT_THAT(damaged.err, HasSubstr("2 inconsistencies"));
  CommandResult json = Mgreg({"admin", "check", "--json"});
  EXPECT_EQ(json.exit_code, 1);
  EXPECT_THAT(json.out, HasSubstr("\"problems\""));
}

TEST_F(CliTest, SigtermShutsDownCleanly) {
  ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint(1)}).exit_code, 0);
  const int status = server_->Stop(SIGTERM);
  EXPECT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);
  ServerProcess again({"--data-dir", tmp_.Join("data")});
  ASSERT_TRUE(again.started());
  CommandResult latest = RunCommand(
      {BinaryPath("client/mgreg"), "--server", again.address(), "latest", "m"});
  EXPECT_EQ(latest.exit_code, 0) << latest.err;
}

TEST_F(CliTest, RetentionPinAliasInspectStateAndWatchCommands) {
  for (int step = 1; step <= 3; ++step) {
    ASSERT_EQ(Mgreg({"push", "m", MakeCheckpoint(step)}).exit_code, 0);
  }
  CommandResult pin = Mgreg({"pin", "m", "1"});
  ASSERT_EQ(pin.exit_code, 0) << pin.err;
  EXPECT_THAT(pin.out, HasSubstr("pinned m step 1"));
  CommandResult alias = Mgreg({"alias", "set", "m", "production", "2"});
  ASSERT_EQ(alias.exit_code, 0) << alias.err;
  EXPECT_THAT(Mgreg({"alias", "list", "m"}).out, HasSubstr("production -> 2"));
  CommandResult retention = Mgreg({"retention", "m", "--max-to-keep", "1"});
  ASSERT_EQ(retention.exit_code, 0) << retention.err;
  EXPECT_THAT(retention.out, HasSubstr("max_to_keep 1"));
  // A model not pushed yet: a typo is NOT_FOUND; --allow-missing sets it in advance.
  CommandResult typo = Mgreg({"retention", "mm", "--max-to-keep", "1"});
  EXPECT_EQ(typo.exit_code, 1);
  EXPECT_THAT(typo.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(typo.err, HasSubstr("--allow-missing"));
  CommandResult early =
      Mgreg({"retention", "later", "--max-to-keep", "4", "--allow-missing"});
  ASSERT_EQ(early.exit_code, 0) << early.err;
  EXPECT_THAT(early.out, HasSubstr("max_to_keep 4"));
  // Step 1 is pinned, 2 aliased, 3 the newest: all stay.
  CommandResult list = Mgreg({"list", "m"});
  EXPECT_THAT(list.out, HasSubstr("1 "));
  EXPECT_THAT(list.out, HasSubstr("3 "));

  CommandResult graph =
      Mgreg({"graph", "m", "--alias", "production", "-o", tmp_.Join("p.meta")});
  ASSERT_EQ(graph.exit_code, 0) << graph.err;
  EXPECT_THAT(graph.out, HasSubstr("step 2"));
  EXPECT_EQ(
      Mgreg({"graph", "m", "--alias", "production", "--step", "1", "-o", "x"}).exit_code,
      1);

  CommandResult inspect = Mgreg({"inspect", "m", "--alias", "production", "--verify"});
  ASSERT_EQ(inspect.exit_code, 0) << inspect.err;
  EXPECT_THAT(inspect.out, HasSubstr("dense/w"));
  EXPECT_THAT(inspect.out, HasSubstr("DT_FLOAT"));
  EXPECT_THAT(inspect.out, HasSubstr("all tensors verified"));

  CommandResult state = Mgreg({"state", "m"});
  ASSERT_EQ(state.exit_code, 0) << state.err;
  EXPECT_THAT(state.out, HasSubstr("model_checkpoint_path: \"model.ckpt-3\""));

  CommandResult collection = Mgreg({"collection", "m", "hparams"});
  ASSERT_EQ(collection.exit_code, 0) << collection.err;
  EXPECT_THAT(collection.out, HasSubstr("learning_rate=0.01"));

  // Every event since revision 0: three commits, then the alias.
  CommandResult watch = Mgreg({"watch", "m", "--since", "0", "--count", "4"});
  ASSERT_EQ(watch.exit_code, 0) << watch.err;
  EXPECT_THAT(watch.out, HasSubstr("COMMITTED m step 3"));
  EXPECT_THAT(watch.out, HasSubstr("ALIAS_SET m step 2 alias production"));

  EXPECT_EQ(Mgreg({"alias", "set", "m", "9bad", "1"}).exit_code, 1);
  EXPECT_EQ(Mgreg({"alias", "rm", "m", "production"}).exit_code, 0);
  EXPECT_EQ(Mgreg({"unpin", "m", "1"}).exit_code, 0);
  // Retention now keeps only the newest step.
  CommandResult after = Mgreg({"list", "m", "--json"});
  EXPECT_THAT(after.out, ::testing::Not(HasSubstr("\"step\": \"1\"")));
  EXPECT_THAT(after.out, HasSubstr("\"step\": \"3\""));
}

TEST_F(CliTest, SyncOnceAndMultiWriterUploadCommands) {
  const std::string prefix = MakeCheckpoint(7);
  CommandResult begin = Mgreg({"upload", "begin", "m", "7", "--basename", "model.ckpt"});
  ASSERT_EQ(begin.exit_code, 0) << begin.err;
  const std::string id = std::string(begin.out.substr(0, begin.out.find('\n')));
  ASSERT_FALSE(id.empty());
  for (const char* suffix : {".data-00000-of-00002", ".data-00001-of-00002", ".index"}) {
    CommandResult put = Mgreg({"upload", "put", id, prefix + suffix});
    ASSERT_EQ(put.exit_code, 0) << put.err;
  }
  CommandResult status = Mgreg({"upload", "status", id});
  EXPECT_THAT(status.out, HasSubstr("data-00001-of-00002"));
  CommandResult commit = Mgreg({"upload", "commit", id});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  EXPECT_THAT(commit.out, HasSubstr("committed m step 7"));

  const std::string dir = tmp_.Join("serving");
  CommandResult sync = Mgreg({"sync", "m", dir, "--once", "--clear-devices"});
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_THAT(sync.out, HasSubstr("switched to m step 7"));
  EXPECT_TRUE(fs::exists(dir + "/model.ckpt-7.index"));
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-7");
  WriteFileOrDie(tmp_.Join("plain"), "x");
  CommandResult bad_dir = Mgreg({"sync", "m", tmp_.Join("plain/dir"), "--once"});
  EXPECT_EQ(bad_dir.exit_code, 1);
  EXPECT_THAT(bad_dir.err, HasSubstr("FAILED_PRECONDITION"));
}

}  // namespace
}  // namespace mgreg::testing
