// The mgreg CLI with SavedModels against the real mgreg-server process (issue 15): push
// of a version directory, list/latest --json saying the kind, graph and collection by
// --tags (equal to the offline `mgreg export --tags`, rules D1 and D7 of
// EXPORT_SEMANTICS.md), restore into TF Serving's base path byte-identical, sync --once
// keeping the newest K versions, multi-writer upload of a SavedModel, and the bad inputs
// refused with what to change.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr char kCpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/00000123";
constexpr char kTf2[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/00000123";

std::vector<std::string> Entries(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

class SavedModelCliTest : public ::testing::Test {
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
  // A copy of a real SavedModel at tmp/<name> with assets.extra/version = `version`.
  std::string Version(const char* rel, const std::string& name,
                      const std::string& version) {
    const std::string dir = tmp_.Join(name);
    fs::create_directories(fs::path(dir).parent_path());
    fs::copy(TestdataPath(rel), dir, fs::copy_options::recursive);
    fs::create_directories(dir + "/assets.extra");
    WriteFileOrDie(dir + "/assets.extra/version", version);
    return dir;
  }

  TempDir tmp_;
  std::unique_ptr<ServerProcess> server_;
};

TEST_F(SavedModelCliTest, PushListGraphByTagsRestoreAndSync) {
  MGREG_REQUIRE_TESTDATA();
  CommandResult push = Mgreg({"push", "resnet", TestdataPath(kTf2)});
  ASSERT_EQ(push.exit_code, 0) << push.err;
  EXPECT_THAT(push.out, HasSubstr("pushed resnet version 123 (SavedModel"));
  CommandResult list = Mgreg({"list", "resnet", "--json"});
  EXPECT_THAT(list.out, HasSubstr("\"kind\": \"SAVED_MODEL\""));
  EXPECT_THAT(Mgreg({"list", "resnet"}).out, HasSubstr("SavedModel"));
  EXPECT_THAT(Mgreg({"latest", "resnet", "--json"}).out,
              HasSubstr("\"kind\": \"SAVED_MODEL\""));

  // graph --tags with a filter equals the offline export of the same file (D7); without
  // an option the stored saved_model.pb comes back verbatim (D1).
  const std::string pb = TestdataPath(kTf2) + "/saved_model.pb";
  for (const std::vector<std::string>& filter :
       std::vector<std::vector<std::string>>{{},
                                             {"--clear-devices"},
                                             {"--strip-default-attrs"},
                                             {"--collection", "saved_model_main_op"}}) {
    std::vector<std::string> online = {"graph", "resnet", "--tags",
                                       "serve", "-o",     tmp_.Join("online.pb")};
    std::vector<std::string> offline = {"export", pb,   "--tags",
                                        "serve",  "-o", tmp_.Join("offline.pb")};
    online.insert(online.end(), filter.begin(), filter.end());
    offline.insert(offline.end(), filter.begin(), filter.end());
    CommandResult got = Mgreg(online);
    ASSERT_EQ(got.exit_code, 0) << got.err;
    EXPECT_THAT(got.out, HasSubstr("SavedModel MetaGraphDef tags serve"));
    ASSERT_EQ(Mgreg(offline).exit_code, 0);
    EXPECT_EQ(ReadFileOrDie(tmp_.Join("online.pb")),
              ReadFileOrDie(tmp_.Join("offline.pb")));
  }
  ASSERT_EQ(Mgreg({"graph", "resnet", "-o", tmp_.Join("stored.pb")}).exit_code, 0);
  EXPECT_EQ(ReadFileOrDie(tmp_.Join("stored.pb")), ReadFileOrDie(pb));
  CommandResult wrong =
      Mgreg({"graph", "resnet", "--tags", "train", "-o", tmp_.Join("x")});
  EXPECT_EQ(wrong.exit_code, 1);
  EXPECT_THAT(wrong.err, HasSubstr("serve"));  // the tag sets present
  CommandResult collection = Mgreg({"collection", "resnet", "saved_model_main_op"});
  EXPECT_EQ(collection.exit_code, 0) << collection.err;
  EXPECT_EQ(Mgreg({"collection", "resnet", "saved_model_main_op", "--tags", "serve"}).out,
            collection.out);

  // restore: BASE/123/ byte-identical.
  const std::string base = tmp_.Join("models/resnet");
  CommandResult restore = Mgreg({"restore", "resnet", base});
  ASSERT_EQ(restore.exit_code, 0) << restore.err;
  EXPECT_THAT(restore.out, HasSubstr("version 123 (SavedModel) into " + base + "/123"));
  EXPECT_EQ(ReadTree(base + "/123"), ReadTree(TestdataPath(kTf2)));
  CommandResult filtered = Mgreg({"restore", "resnet", base, "--clear-devices"});
  EXPECT_EQ(filtered.exit_code, 1);
  EXPECT_THAT(filtered.err, HasSubstr("restored as stored"));

  // sync --once --keep 2 after versions 124 and 125: the newest two.
  for (const char* v : {"124", "125"}) {
    const std::string dir = Version(kTf2, absl::StrCat("export/", v), v);
    ASSERT_EQ(Mgreg({"push", "resnet", dir}).exit_code, 0);
  }
  CommandResult sync = Mgreg({"sync", "resnet", base, "--keep", "2", "--once"});
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_THAT(sync.out, HasSubstr("switched to resnet version 125"));
  EXPECT_EQ(Entries(base), (std::vector<std::string>{"123", "125"}));
  ASSERT_EQ(Mgreg({"alias", "set", "resnet", "production", "124"}).exit_code, 0);
  sync =
      Mgreg({"sync", "resnet", base, "--keep", "2", "--once", "--alias", "production"});
  ASSERT_EQ(sync.exit_code, 0) << sync.err;
  EXPECT_EQ(Entries(base), (std::vector<std::string>{"123", "124"}));
  EXPECT_EQ(ReadFileOrDie(base + "/124/assets.extra/version"), "124");
}

TEST_F(SavedModelCliTest, PushRefusesBadInputSayingWhatToChange) {
  MGREG_REQUIRE_TESTDATA();
  const std::string neither = tmp_.Join("neither/4");
  fs::create_directories(neither);
  CommandResult r = Mgreg({"push", "m", neither});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("NOT_FOUND"));
  EXPECT_THAT(r.err, HasSubstr(neither + "/saved_model.pb"));
  EXPECT_THAT(r.err, HasSubstr(neither + "/saved_model.pbtxt"));
  r = Mgreg({"push", "m", tmp_.Join("nothing/model.ckpt-3")});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("model.ckpt-3.index"));

  const std::string linked = Version(kCpu, "linked/5", "5");
  WriteFileOrDie(tmp_.Join("secret"), "s");
  fs::create_symlink(tmp_.Join("secret"), linked + "/assets/secret");
  r = Mgreg({"push", "m", linked});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("outside the SavedModel directory"));
  fs::remove(linked + "/assets/secret");

  ASSERT_EQ(Mgreg({"push", "m", linked}).exit_code, 0);
  WriteFileOrDie(linked + "/assets.extra/version", "changed");
  r = Mgreg({"push", "m", linked});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("ALREADY_EXISTS"));
  EXPECT_EQ(Mgreg({"push", "m", linked, "--overwrite"}).exit_code, 0);

  // No version number in the name: --step.
  const std::string unnamed = Version(kCpu, "unnamed", "x");
  r = Mgreg({"push", "m", unnamed});
  EXPECT_EQ(r.exit_code, 1);
  EXPECT_THAT(r.err, HasSubstr("--step"));
  EXPECT_EQ(Mgreg({"push", "m", unnamed, "--step", "9"}).exit_code, 0);
}

TEST_F(SavedModelCliTest, MultiWriterUploadOfASavedModel) {
  MGREG_REQUIRE_TESTDATA();
  const std::string dir = Version(kCpu, "export/31", "31");
  CommandResult begin = Mgreg({"upload", "begin", "m", "31", "--saved-model", dir});
  ASSERT_EQ(begin.exit_code, 0) << begin.err;
  const std::string id = begin.out.substr(0, begin.out.find('\n'));
  // Two writers, each with part of the tree.
  ASSERT_EQ(Mgreg({"upload", "put", id, "--saved-model", dir, dir + "/saved_model.pb",
                   dir + "/assets/foo.txt", dir + "/assets.extra/version"})
                .exit_code,
            0);
  CommandResult early = Mgreg({"upload", "commit", id});
  EXPECT_EQ(early.exit_code, 1);  // the variables are missing yet
  CommandResult outside =
      Mgreg({"upload", "put", id, "--saved-model", dir, tmp_.Join("x")});
  EXPECT_EQ(outside.exit_code, 1);
  EXPECT_THAT(outside.err, HasSubstr("not a file of the SavedModel directory"));
  ASSERT_EQ(Mgreg({"upload", "put", id, "--saved-model", dir,
                   dir + "/variables/variables.index",
                   dir + "/variables/variables.data-00000-of-00001"})
                .exit_code,
            0);
  CommandResult commit = Mgreg({"upload", "commit", id});
  ASSERT_EQ(commit.exit_code, 0) << commit.err;
  EXPECT_THAT(Mgreg({"latest", "m"}).out, HasSubstr("kind       SavedModel"));
  const std::string base = tmp_.Join("models/m");
  ASSERT_EQ(Mgreg({"restore", "m", base}).exit_code, 0);
  EXPECT_EQ(ReadTree(base + "/31"), ReadTree(dir));
}

}  // namespace
}  // namespace mgreg::testing
