// HashingFileWriter (client/hashing_file_writer.h): every byte appended reaches the file
// in order and the SHA-256 is that of the bytes, whatever the sizes of the pieces, the
// file's size against the buffers (smaller than one, exact multiples, a tail), and
// whether the file system takes O_DIRECT writes; write errors come back with the
// local-file codes and the path, at a later Append or at Finish, and a sink dropped
// half-way stops cleanly.
#include "client/hashing_file_writer.h"

#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <string>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

// `n` bytes that differ at every offset a misplaced buffer could land on.
std::string Pattern(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1103515245u + 12345u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

// Writes `data` through a sink into a new file at `path`, in pieces of `piece` bytes
// (the last one shorter); returns Finish's result. The file is left in place.
absl::StatusOr<std::string> SinkInto(const std::string& path, const std::string& data,
                                     size_t piece) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  EXPECT_GE(fd, 0) << path;
  absl::StatusOr<std::string> digest;
  {
    HashingFileWriter sink(fd, path, DigestKind::kSha256);
    for (size_t pos = 0; pos < data.size(); pos += piece) {
      absl::Status s = sink.Append(absl::string_view(data).substr(pos, piece));
      if (!s.ok()) {
        ::close(fd);
        return s;
      }
    }
    EXPECT_EQ(sink.appended(), static_cast<int64_t>(data.size()));
    digest = sink.Finish();
  }
  ::close(fd);
  return digest;
}

void ExpectWrittenWhole(const std::string& dir, size_t size, size_t piece) {
  SCOPED_TRACE(::testing::Message() << "size " << size << ", pieces of " << piece);
  const std::string data = Pattern(size, static_cast<uint32_t>(size + piece));
  const std::string path = (fs::path(dir) / "file").string();
  absl::StatusOr<std::string> digest = SinkInto(path, data, piece);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*digest, Sha256Hex(data));
  EXPECT_TRUE(ReadFileOrDie(path) == data) << "the file's bytes differ";
  fs::remove(path);
}

TEST(HashingFileWriterTest, EveryByteArrivesInOrderWhateverTheSizes) {
  TempDir tmp;
  constexpr size_t kBuf = HashingFileWriter::kBufferBytes;
  ExpectWrittenWhole(tmp.path(), 0, 1);
  ExpectWrittenWhole(tmp.path(), 1, 1);
  ExpectWrittenWhole(tmp.path(), 4096, 1000);      // smaller than a buffer: no thread
  ExpectWrittenWhole(tmp.path(), kBuf, 1 << 20);   // exactly one buffer
  ExpectWrittenWhole(tmp.path(), kBuf - 1, 4096);  // one byte short of it
  ExpectWrittenWhole(tmp.path(), kBuf + 1, 1 << 20);
  // More buffers than the sink holds, so buffers are reused; an unaligned tail; pieces
  // across buffer boundaries and larger than a buffer.
  const size_t big = 2 * HashingFileWriter::kBuffers * kBuf + 12345;
  ExpectWrittenWhole(tmp.path(), big, (1 << 20) + 7);
  ExpectWrittenWhole(tmp.path(), big, 3 * kBuf + 1);
  ExpectWrittenWhole(tmp.path(), 2 * HashingFileWriter::kBuffers * kBuf, 1 << 20);
}

// tmpfs takes O_DIRECT on some kernels and refuses it on others; either way the bytes
// arrive (written through the page cache when refused).
TEST(HashingFileWriterTest, WritesOnAFileSystemThatMayRefuseODirect) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm on this machine";
  const std::string dir =
      (fs::path("/dev/shm") / ("mgreg-file-sink-test-" + std::to_string(::getpid())))
          .string();
  fs::create_directories(dir);
  ExpectWrittenWhole(dir, 3 * HashingFileWriter::kBufferBytes + 4097, 1 << 20);
  fs::remove_all(dir);
}

TEST(HashingFileWriterTest, AFullDiskIsResourceExhaustedNamingThePath) {
  // /dev/full takes no byte: every write fails with ENOSPC.
  const int fd = ::open("/dev/full", O_WRONLY | O_CLOEXEC);
  if (fd < 0) GTEST_SKIP() << "no /dev/full on this machine";
  const std::string data = Pattern(3 * HashingFileWriter::kBufferBytes, 1);
  HashingFileWriter sink(fd, "/restore/model.ckpt-1.data-00000-of-00001",
                         DigestKind::kSha256);
  absl::Status error;
  for (size_t pos = 0; pos < data.size() && error.ok(); pos += 1 << 20) {
    error = sink.Append(absl::string_view(data).substr(pos, 1 << 20));
  }
  if (error.ok()) error = sink.Finish().status();
  ::close(fd);
  EXPECT_EQ(error.code(), absl::StatusCode::kResourceExhausted) << error;
  EXPECT_THAT(error.message(), HasSubstr("/restore/model.ckpt-1.data-00000-of-00001"));
  EXPECT_THAT(error.message(), HasSubstr("free some space"));
}

TEST(HashingFileWriterTest, AfterAWriteErrorEveryCallReturnsIt) {
  TempDir tmp;
  const std::string path = tmp.Join("read-only");
  WriteFileOrDie(path, "");
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);  // every write fails
  ASSERT_GE(fd, 0);
  HashingFileWriter sink(fd, path, DigestKind::kSha256);
  const std::string data = Pattern(HashingFileWriter::kBufferBytes, 2);
  absl::Status first;
  // The error of a buffer's write comes back at a later Append or at Finish; once
  // every buffer is waiting on the failed writer, Append must report it.
  for (int i = 0; i < 4 * HashingFileWriter::kBuffers && first.ok(); ++i)
    first = sink.Append(data);
  absl::StatusOr<std::string> finished = sink.Finish();
  ::close(fd);
  ASSERT_FALSE(finished.ok());
  EXPECT_THAT(finished.status().message(), HasSubstr(path));
  EXPECT_NE(finished.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_FALSE(first.ok()) << "Append kept accepting bytes after the writes failed";
  EXPECT_EQ(first, finished.status());
}

TEST(HashingFileWriterTest, ASinkDroppedHalfWayStopsWithoutWritingTheRest) {
  TempDir tmp;
  const std::string path = tmp.Join("dropped");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  {
    HashingFileWriter sink(fd, path, DigestKind::kSha256);
    const std::string data = Pattern(HashingFileWriter::kBufferBytes, 3);
    for (int i = 0; i < HashingFileWriter::kBuffers; ++i)
      ASSERT_TRUE(sink.Append(data).ok());
  }  // no Finish: the destructor stops the threads
  ::close(fd);
  EXPECT_LE(fs::file_size(path),
            HashingFileWriter::kBuffers * HashingFileWriter::kBufferBytes);
}

}  // namespace
}  // namespace mgreg::testing
