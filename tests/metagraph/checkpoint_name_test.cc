#include "metagraph/checkpoint_name.h"

#include <cstdint>
#include <limits>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

TEST(CheckpointNameTest, PrefixWithDirectoryAndStepSplitsIntoAllThreeParts) {
  auto p = ParseCheckpointPrefix("dir/model.ckpt-1000");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->directory, "dir");
  EXPECT_EQ(p->basename, "model.ckpt");
  EXPECT_EQ(p->step, 1000);
}

TEST(CheckpointNameTest, PrefixWithoutDirectoryHasEmptyDirectory) {
  auto p = ParseCheckpointPrefix("ckpt-19");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->directory, "");
  EXPECT_EQ(p->basename, "ckpt");
  EXPECT_EQ(p->step, 19);
}

TEST(CheckpointNameTest, PrefixWithoutStepHasNoStep) {
  auto p = ParseCheckpointPrefix("dir/model");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->directory, "dir");
  EXPECT_EQ(p->basename, "model");
  EXPECT_EQ(p->step, std::nullopt);
}

TEST(CheckpointNameTest, StepIsTheNumberAfterTheLastDash) {
  auto p = ParseCheckpointPrefix("/abs/path/my-model-v2-42");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->directory, "/abs/path");
  EXPECT_EQ(p->basename, "my-model-v2");
  EXPECT_EQ(p->step, 42);
}

TEST(CheckpointNameTest, DashFollowedByNonDigitsIsPartOfTheBasename) {
  auto p = ParseCheckpointPrefix("model-v2");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->basename, "model-v2");
  EXPECT_EQ(p->step, std::nullopt);
  auto q = ParseCheckpointPrefix("model-");
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->basename, "model-");
  EXPECT_EQ(q->step, std::nullopt);
}

TEST(CheckpointNameTest, StepZeroAndLeadingZerosAreSteps) {
  EXPECT_EQ(ParseCheckpointPrefix("model.ckpt-0")->step, 0);
  EXPECT_EQ(ParseCheckpointPrefix("model.ckpt-007")->step, 7);
}

TEST(CheckpointNameTest, FileInRootDirectoryKeepsTheRootAsDirectory) {
  auto p = ParseCheckpointPrefix("/model.ckpt-5");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->directory, "/");
  EXPECT_EQ(p->basename, "model.ckpt");
}

TEST(CheckpointNameTest, IndexMetaAndDataFileSuffixesAreStripped) {
  for (const char* path : {"dir/model.ckpt-1000.index", "dir/model.ckpt-1000.meta",
                           "dir/model.ckpt-1000.data-00000-of-00001",
                           "dir/model.ckpt-1000.data-00001-of-00002"}) {
    SCOPED_TRACE(path);
    auto p = ParseCheckpointPrefix(path);
    ASSERT_TRUE(p.ok()) << p.status();
    EXPECT_EQ(p->directory, "dir");
    EXPECT_EQ(p->basename, "model.ckpt");
    EXPECT_EQ(p->step, 1000);
  }
}

TEST(CheckpointNameTest, RealFileNamesFromTheTestDataParse) {
  auto t2 = ParseCheckpointPrefix("variables/variables.data-00000-of-00001");
  ASSERT_TRUE(t2.ok());
  EXPECT_EQ(t2->basename, "variables");
  EXPECT_EQ(t2->step, std::nullopt);
  auto tfx = ParseCheckpointPrefix("Format-Serving/model.ckpt-1000.index");
  ASSERT_TRUE(tfx.ok());
  EXPECT_EQ(tfx->directory, "Format-Serving");
  EXPECT_EQ(tfx->step, 1000);
}

TEST(CheckpointNameTest, MalformedDataSuffixIsNotStripped) {
  auto p = ParseCheckpointPrefix("model.data-1-of-2");
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->basename, "model.data-1-of");
  EXPECT_EQ(p->step, 2);
}

TEST(CheckpointNameTest, EmptyPrefixIsInvalidArgument) {
  EXPECT_EQ(ParseCheckpointPrefix("").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointNameTest, PrefixEndingInSlashIsInvalidArgument) {
  auto p = ParseCheckpointPrefix("dir/");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("ends in '/'"), std::string::npos) << p.status();
}

TEST(CheckpointNameTest, BareFileSuffixIsInvalidArgument) {
  EXPECT_EQ(ParseCheckpointPrefix("dir/.index").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointNameTest, StepWithoutBasenameIsInvalidArgument) {
  EXPECT_EQ(ParseCheckpointPrefix("dir/-5").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CheckpointNameTest, LargestInt64StepParses) {
  const int64_t max = std::numeric_limits<int64_t>::max();
  auto p = ParseCheckpointPrefix(absl::StrCat("m-", max));
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->step, max);
}

TEST(CheckpointNameTest, StepThatOverflowsInt64IsInvalidArgument) {
  auto p = ParseCheckpointPrefix("model.ckpt-9223372036854775808");
  EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(p.status().message().find("64-bit"), std::string::npos) << p.status();
}

TEST(CheckpointNameTest, PrefixNameJoinsBasenameAndStep) {
  EXPECT_EQ(CheckpointPrefixName("model.ckpt", 1000), "model.ckpt-1000");
  EXPECT_EQ(CheckpointPrefixName("ckpt", 0), "ckpt-0");
}

TEST(CheckpointNameTest, PrefixNameRoundTripsThroughParse) {
  auto p = ParseCheckpointPrefix(CheckpointPrefixName("model.ckpt", 123456789012));
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->basename, "model.ckpt");
  EXPECT_EQ(p->step, 123456789012);
}

TEST(CheckpointNameTest, DataFileNameParsesShardAndCount) {
  auto d = ParseDataFileName("data-00001-of-00002");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->shard, 1);
  EXPECT_EQ(d->num_shards, 2);
}

TEST(CheckpointNameTest, DataFileNameWithMoreThanFiveDigitsParses) {
  auto d = ParseDataFileName("data-123456-of-200000");
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(d->shard, 123456);
  EXPECT_EQ(d->num_shards, 200000);
}

TEST(CheckpointNameTest, MalformedDataFileNamesAreInvalidArgument) {
  for (const char* name :
       {"", "data", "data-1-of-2", "data-00002-of-00002", "data-00000-of-00000",
        "data-0000a-of-00001", "index", "data-00000-of-00001x", "xdata-00000-of-00001",
        "data-+0000-of-00001"}) {
    SCOPED_TRACE(name);
    EXPECT_EQ(ParseDataFileName(name).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(CheckpointNameTest, DataFileNameIsZeroPaddedToFiveDigits) {
  EXPECT_EQ(DataFileName(1, 2), "data-00001-of-00002");
  EXPECT_EQ(DataFileName(0, 1), "data-00000-of-00001");
  EXPECT_EQ(DataFileName(123456, 200000), "data-123456-of-200000");
}

}  // namespace
}  // namespace mgreg
