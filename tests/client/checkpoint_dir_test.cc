// The restore directory's own checkpoints (issue 11, item 2): entries of its
// `checkpoint` file outside it are never read as its own, and never deleted.
#include "client/checkpoint_dir.h"

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAre;

class CheckpointDirTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = tmp_.Join("serving");
    fs::create_directories(dir_);
    fs::create_directories(tmp_.Join("elsewhere"));
    fs::create_directories(dir_ + "/sub");
    fs::create_directory_symlink(tmp_.Join("elsewhere"), dir_ + "/link");
  }

  void MakeFiles(const std::string& prefix) {
    for (const char* suffix : {".index", ".meta", ".data-00000-of-00001"}) {
      WriteFileOrDie(prefix + suffix, "x");
    }
  }
  void WriteState(const std::vector<std::string>& entries) {
    WriteFileOrDie(dir_ + "/checkpoint",
                   FormatCheckpointState(MakeCheckpointState(entries)));
  }

  TempDir tmp_;
  std::string dir_;
};

TEST_F(CheckpointDirTest, EntriesOutsideTheDirectoryAreForeignAndNeverDeleted) {
  const std::string elsewhere = tmp_.Join("elsewhere/model.ckpt-1");
  MakeFiles(elsewhere);
  MakeFiles(dir_ + "/model.ckpt-2");
  MakeFiles(dir_ + "/model.ckpt-3");
  MakeFiles(dir_ + "/sub/model.ckpt-4");
  // Absolute elsewhere, "..", a symlink leading out: foreign. Absolute inside, relative,
  // a sub-directory: the directory's own.
  WriteState({elsewhere, "../elsewhere/model.ckpt-1", "link/model.ckpt-1",
              dir_ + "/model.ckpt-2", "model.ckpt-3", "sub/model.ckpt-4",
              "model.ckpt-9"});
  ListedCheckpoints listed = ReadListedCheckpoints(dir_);
  EXPECT_THAT(listed.foreign,
              ElementsAre(elsewhere, "../elsewhere/model.ckpt-1", "link/model.ckpt-1"));
  // model.ckpt-9 has no .index: neither.
  EXPECT_THAT(listed.own,
              ElementsAre(dir_ + "/model.ckpt-2", "model.ckpt-3", "sub/model.ckpt-4"));

  for (const std::string& p : listed.foreign) RemoveCheckpointFiles(dir_, p);
  EXPECT_TRUE(fs::exists(elsewhere + ".index"));
  EXPECT_TRUE(fs::exists(elsewhere + ".meta"));
  EXPECT_TRUE(fs::exists(elsewhere + ".data-00000-of-00001"));
  for (const std::string& p : listed.own) RemoveCheckpointFiles(dir_, p);
  EXPECT_FALSE(fs::exists(dir_ + "/model.ckpt-2.index"));
  EXPECT_FALSE(fs::exists(dir_ + "/model.ckpt-3.data-00000-of-00001"));
  EXPECT_FALSE(fs::exists(dir_ + "/sub/model.ckpt-4.meta"));
}

TEST_F(CheckpointDirTest, AnAbsoluteDirectoryPathThroughASymlinkIsStillInside) {
  fs::create_directory_symlink(dir_, tmp_.Join("alias"));
  MakeFiles(dir_ + "/model.ckpt-5");
  WriteState({tmp_.Join("alias/model.ckpt-5")});
  EXPECT_THAT(ReadListedCheckpoints(dir_).own,
              ElementsAre(tmp_.Join("alias/model.ckpt-5")));
  EXPECT_THAT(ReadListedCheckpoints(tmp_.Join("alias")).own,
              ElementsAre(tmp_.Join("alias/model.ckpt-5")));
}

TEST_F(CheckpointDirTest, RestoredPathsAreFilesDirectlyInTheDirectory) {
  v1::Checkpoint c;
  c.set_model("m");
  c.set_step(7);
  c.set_basename("model.ckpt");
  c.add_files()->set_name("index");
  c.add_files()->set_name("data-00000-of-00001");
  auto paths = RestoredFilePaths(dir_, c);
  ASSERT_TRUE(paths.ok()) << paths.status();
  EXPECT_EQ(paths->at("index"), dir_ + "/model.ckpt-7.index");
  c.set_basename(tmp_.Join("elsewhere/model.ckpt"));
  EXPECT_EQ(RestoredFilePaths(dir_, c).status().code(),
            absl::StatusCode::kInvalidArgument);
  c.set_basename("model.ckpt");
  c.add_files()->set_name("../x");
  EXPECT_THAT(RestoredFilePaths(dir_, c).status().message(),
              HasSubstr("the server's file name for step 7 of model 'm' '../x'"));
}

}  // namespace
}  // namespace mgreg::testing
