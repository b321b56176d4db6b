// Local file-system errors carry a code chosen by who must act and name the path; none
// is UNAVAILABLE, which callers read as "the server cannot be reached" and retry
// (issue 11, item 9).
#include "client/local_file.h"

#include <filesystem>
#include <string>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(LocalFileTest, ANameTooLongIsInvalidArgumentNamingThePath) {
  TempDir tmp;
  const std::string path = tmp.Join(std::string(300, 'n'));
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
  absl::Status s = writer.status();
  if (writer.ok()) s = writer->Commit(0, Sha256Hex(""));  // the rename meets the limit
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
  EXPECT_THAT(s.message(), HasSubstr(std::string(300, 'n')));
  EXPECT_THAT(s.message(), HasSubstr("shorter"));
  absl::Status read = ReadWholeFile(path).status();
  EXPECT_EQ(read.code(), absl::StatusCode::kInvalidArgument) << read;
  EXPECT_TRUE(fs::is_empty(tmp.path()));
}

TEST(LocalFileTest, ANameOfTheFullFileNameLengthCanBeWritten) {
  TempDir tmp;
  const std::string path = tmp.Join(std::string(255, 'n'));
  absl::StatusOr<AtomicFileWriter> writer = AtomicFileWriter::Create(path);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer->Append("abc").ok());
  ASSERT_TRUE(writer->Commit(3, Sha256Hex("abc")).ok());
  EXPECT_EQ(ReadFileOrDie(path), "abc");
}

TEST(LocalFileTest, APathThroughARegularFileIsFailedPrecondition) {
  TempDir tmp;
  WriteFileOrDie(tmp.Join("file"), "x");
  absl::Status s = AtomicFileWriter::Create(tmp.Join("file/model.ckpt-1.index")).status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr(tmp.Join("file/model.ckpt-1.index")));
  EXPECT_EQ(ReadWholeFile(tmp.Join("file/x")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST(LocalFileTest, AMissingFileIsNotFound) {
  TempDir tmp;
  EXPECT_EQ(ReadWholeFile(tmp.Join("nope")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mgreg::testing
