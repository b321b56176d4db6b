// Local file-system errors carry a code chosen by who must act and name the path; none
// is UNAVAILABLE, which callers read as "the server cannot be reached" and retry
// (issue 11, item 9).
#include "client/local_file.h"

#include <filesystem>
#include <string>
#include <vector>

#include "client/hashing_file_writer.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

TEST(LocalFileTest, ANameTooLongIsInvalidArgumentNamingThePath) {
  TempDir tmp;
  const std::string path = tmp.Join(std::string(300, 'n'));
  absl::StatusOr<AtomicFileWriter> writer =
      AtomicFileWriter::Create(path, DigestKind::kSha256);
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
  absl::StatusOr<AtomicFileWriter> writer =
      AtomicFileWriter::Create(path, DigestKind::kSha256);
  ASSERT_TRUE(writer.ok()) << writer.status();
  ASSERT_TRUE(writer->Append("abc").ok());
  ASSERT_TRUE(writer->Commit(3, Sha256Hex("abc")).ok());
  EXPECT_EQ(ReadFileOrDie(path), "abc");
}

TEST(LocalFileTest, APathThroughARegularFileIsFailedPrecondition) {
  TempDir tmp;
  WriteFileOrDie(tmp.Join("file"), "x");
  absl::Status s =
      AtomicFileWriter::Create(tmp.Join("file/model.ckpt-1.index"), DigestKind::kSha256)
          .status();
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition) << s;
  EXPECT_THAT(s.message(), HasSubstr(tmp.Join("file/model.ckpt-1.index")));
  EXPECT_EQ(ReadWholeFile(tmp.Join("file/x")).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// A file larger than the writer's buffers (client/hashing_file_writer.h) is renamed into
// place whole; wrong bytes or a short transfer leave nothing behind, and the error names
// the path and says what went wrong.
TEST(LocalFileTest, ALargeFileIsCommittedWholeAndAWrongOneLeavesNothing) {
  TempDir tmp;
  std::string data(3 * HashingFileWriter::kBufferBytes + 777, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) >> 7);
  auto write = [&](const std::string& path, int64_t size, const std::string& sha) {
    absl::StatusOr<AtomicFileWriter> writer =
        AtomicFileWriter::Create(path, DigestKind::kSha256);
    if (!writer.ok()) return writer.status();
    for (size_t pos = 0; pos < data.size(); pos += 1 << 20) {
      absl::Status s = writer->Append(absl::string_view(data).substr(pos, 1 << 20));
      if (!s.ok()) return s;
    }
    return writer->Commit(size, sha);
  };
  const int64_t size = static_cast<int64_t>(data.size());
  ASSERT_TRUE(write(tmp.Join("good"), size, Sha256Hex(data)).ok());
  EXPECT_TRUE(ReadFileOrDie(tmp.Join("good")) == data);

  absl::Status bad = write(tmp.Join("bad"), size, Sha256Hex("other bytes"));
  EXPECT_EQ(bad.code(), absl::StatusCode::kDataLoss) << bad;
  EXPECT_THAT(bad.message(), HasSubstr(Sha256Hex(data)));
  EXPECT_THAT(bad.message(), HasSubstr(tmp.Join("bad")));
  absl::Status shorter = write(tmp.Join("short"), size + 1, Sha256Hex(data));
  EXPECT_EQ(shorter.code(), absl::StatusCode::kDataLoss) << shorter;
  EXPECT_THAT(shorter.message(), HasSubstr("cut short"));
  std::vector<std::string> left;
  for (const auto& e : fs::directory_iterator(tmp.path())) {
    left.push_back(e.path().filename().string());
  }
  EXPECT_THAT(left, ::testing::ElementsAre("good"));
}

// Chunk digests are the SHA-256 of each piece as the server cuts the file, whatever the
// number of threads hashing them; a sample leaves the chunks it skips empty. Workers
// hash two chunks at once (Sha256RawPair), so counts are odd and even, whole and sampled
// (38 chunks and a sample of 3; 37 and 3; one short chunk).
TEST(LocalFileTest, ChunkDigestsAreTheSameOnAnyNumberOfThreads) {
  TempDir tmp;
  constexpr int64_t kChunk = 64 << 10;
  for (int64_t size : {37 * kChunk + 1234, 37 * kChunk, kChunk - 1}) {
    std::string data(static_cast<size_t>(size), '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 7919) >> 9);
    const std::string path = tmp.Join("file");
    WriteFileOrDie(path, data);
    const std::vector<std::string> expected = ChunkSha256s(data, kChunk);
    for (int threads : {1, 2, 5, 64}) {
      absl::StatusOr<std::vector<std::string>> all =
          ChunkDigests(path, kChunk, 1, threads);
      ASSERT_TRUE(all.ok()) << all.status();
      EXPECT_EQ(*all, expected) << size << " bytes, " << threads << " threads";
      absl::StatusOr<std::vector<std::string>> sample =
          ChunkDigests(path, kChunk, 16, threads);
      ASSERT_TRUE(sample.ok()) << sample.status();
      ASSERT_EQ(sample->size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ((*sample)[i], i % 16 == 0 ? expected[i] : "") << size << ", " << i;
      }
    }
  }
  const std::string path = tmp.Join("file");
  EXPECT_EQ(ChunkDigests(path, kChunk, 1, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ChunkDigests(tmp.Join("nope"), kChunk, 1, 4).status().code(),
            absl::StatusCode::kNotFound);
}

// DigestFile's 1 MiB pieces, hashed two at a time on any number of threads: each piece's
// own digest in its place, for an empty file, one short piece, one whole piece, odd and
// even counts with a short or whole last piece.
TEST(LocalFileTest, DigestFileGivesEachPieceItsOwnDigestOnAnyNumberOfThreads) {
  TempDir tmp;
  constexpr int64_t kMiB = int64_t{1} << 20;
  for (int64_t size :
       {int64_t{0}, int64_t{100}, kMiB, 3 * kMiB, 4 * kMiB + 7, 5 * kMiB + 7}) {
    std::string data(static_cast<size_t>(size), '\0');
    for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<char>((i * 131) >> 7);
    const std::string path = tmp.Join("file");
    WriteFileOrDie(path, data);
    const std::vector<std::string> expected = ChunkSha256s(data, kMiB);
    for (int threads : {1, 2, 3}) {
      absl::StatusOr<FileDigest> got = DigestFile(path, threads);
      ASSERT_TRUE(got.ok()) << got.status();
      EXPECT_EQ(got->size, size);
      EXPECT_EQ(got->pieces, expected) << size << " bytes, " << threads << " threads";
      EXPECT_EQ(got->chunked_sha256, ChunkedSha256Hex(data)) << size;
    }
  }
}

TEST(LocalFileTest, AMissingFileIsNotFound) {
  TempDir tmp;
  EXPECT_EQ(ReadWholeFile(tmp.Join("nope")).status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mgreg::testing
