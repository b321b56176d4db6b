#include "common/names.h"

#include "gtest/gtest.h"

namespace mgreg {
namespace {

TEST(ModelNameTest, AcceptsSimpleAndNestedNames) {
  EXPECT_TRUE(ValidateModelName("resnet").ok());
  EXPECT_TRUE(ValidateModelName("team-a/resnet_50.v2").ok());
  EXPECT_TRUE(ValidateModelName("0/a/b/c").ok());
  EXPECT_TRUE(ValidateModelName(std::string(256, 'a')).ok());
}

TEST(ModelNameTest, RejectsSlashesInTheWrongPlace) {
  for (const char* bad : {"/resnet", "resnet/", "team-a//resnet", "/"}) {
    absl::Status s = ValidateModelName(bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_NE(s.message().find("empty segment"), absl::string_view::npos) << s;
  }
}

TEST(ModelNameTest, RejectsBadCharactersAndLength) {
  EXPECT_EQ(ValidateModelName("").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateModelName("res net").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateModelName(".hidden").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateModelName("a/-b").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateModelName("a\nb").code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ValidateModelName(std::string(257, 'a')).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(StepTest, RejectsNegativeSteps) {
  EXPECT_TRUE(ValidateStep(0).ok());
  EXPECT_EQ(ValidateStep(-1).code(), absl::StatusCode::kInvalidArgument);
}

TEST(FileNameTest, AcceptsCheckpointFileNames) {
  EXPECT_TRUE(ValidateFileName("index").ok());
  EXPECT_TRUE(ValidateFileName("meta").ok());
  EXPECT_TRUE(ValidateFileName("data-00000-of-00001").ok());
  EXPECT_TRUE(ValidateFileName("data-00001-of-00002").ok());
}

TEST(FileNameTest, RejectsOtherNames) {
  for (const char* bad : {"", "data", "data-00001-of-00001", "data-0000-of-00001",
                          "data-00000-of-00000", "../index", "data-+0000-of-00001"}) {
    EXPECT_EQ(ValidateFileName(bad).code(), absl::StatusCode::kInvalidArgument) << bad;
  }
}

}  // namespace
}  // namespace mgreg
