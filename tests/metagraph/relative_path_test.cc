// ValidateRelativePath: the one check of every name a server answers before a client
// writes a file under it (issue 11, item 1).
#include "metagraph/relative_path.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

using ::testing::HasSubstr;

TEST(RelativePathTest, NormalizedRelativeNamesAndSubPathsAreAccepted) {
  for (const char* ok : {"model.ckpt-1000.index", "model.ckpt-1000.data-00000-of-00002",
                         "variables/variables.index", "assets/vocab.txt", "a/b/c",
                         "..hidden", "x..y", "...", "model.ckpt-1..meta"}) {
    EXPECT_TRUE(ValidateRelativePath(ok, "name").ok()) << ok;
  }
  EXPECT_TRUE(ValidateRelativePath(std::string(255, 'a'), "name").ok());
}

TEST(RelativePathTest, EscapesAndMalformedPathsAreInvalidArgumentNamingTheAnswer) {
  struct Case {
    std::string path;
    const char* why;
  };
  for (const Case& c : std::vector<Case>{
           {"", "is empty"},
           {"/train/model.ckpt-1000.index", "is absolute"},
           {"/", "is absolute"},
           {"../../pwned/evil-1.index", "'..' segment"},
           {"..", "'..' segment"},
           {"a/../../b", "'..' segment"},
           {"a/..", "'..' segment"},
           {"./a", "'.' segment"},
           {"a/./b", "'.' segment"},
           {"a//b", "empty segment"},
           {"a/", "empty segment"},
           {std::string("a\0/../b", 7), "control character"},
           {"a\nb", "control character"},
           {std::string(256, 'a'), "256 bytes"},
       }) {
    absl::Status s = ValidateRelativePath(c.path, "the server's file name");
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.path;
    EXPECT_THAT(s.message(), HasSubstr("the server's file name")) << c.path;
    EXPECT_THAT(s.message(), HasSubstr(c.why)) << c.path;
  }
  EXPECT_THAT(ValidateRelativePath("../../pwned/evil", "basename").message(),
              HasSubstr("'../../pwned/evil'"));
}

TEST(RelativePathTest, ALayoutWithoutSubDirectoriesRefusesAnySeparator) {
  EXPECT_TRUE(
      ValidateRelativePath("model.ckpt-1.index", "name", SubDirectories::kForbidden)
          .ok());
  absl::Status s = ValidateRelativePath("variables/variables.index", "name",
                                        SubDirectories::kForbidden);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("no sub-directory"));
}

TEST(RelativePathTest, AHugeHostileNameIsCutInTheMessage) {
  const std::string huge = "../" + std::string(5000, 'x');
  absl::Status s = ValidateRelativePath(huge, "name");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_LT(s.message().size(), 600u);
  EXPECT_THAT(s.message(), HasSubstr("5003 bytes"));
}

}  // namespace
}  // namespace mgreg
