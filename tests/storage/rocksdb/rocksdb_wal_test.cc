// WAL files written ahead with zeros (storage/rocksdb/rocksdb_wal.h): a commit
// overwrites zeros instead of growing the WAL, a WAL with a zero tail replays after a
// crash, a torn record before the zeros ends the replay without losing an acknowledged
// commit, and a clean close leaves no zeros behind.
#include "storage/rocksdb/rocksdb_wal.h"

#include <signal.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/testing/process_util.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::rocks {
namespace {

namespace fs = std::filesystem;
using ::mgreg::testing::Bytes;
using ::mgreg::testing::OpenRocksDbStoreOrFail;
using ::mgreg::testing::Push;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::RunSelfUntilKilled;
using ::mgreg::testing::TempDir;

constexpr int kSteps = 20;

// Steps 1..kSteps of "m", each a small index and a 48 KiB file (a chunk that goes
// through the WAL).
bool PushSteps(Store& store) {
  for (int step = 1; step <= kSteps; ++step) {
    if (!Push(store, "m", step,
              {{"index", absl::StrCat("index ", step)}, {"data", Bytes(48 << 10, step)}},
              false, 64 << 10)
             .ok()) {
      return false;
    }
  }
  return true;
}

// The WAL files of a data dir, oldest first.
std::vector<std::string> WalFiles(const std::string& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (IsWalFileName(e.path().string())) out.push_back(e.path().string());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Where the records of a WAL end: its physical records (7-byte header: checksum,
// length, type) walked block by block up to the first zero header or the end.
uint64_t RecordsEnd(const std::string& wal) {
  uint64_t pos = 0;
  while (pos + 7 <= wal.size()) {
    const uint64_t left_in_block = kWalBlockBytes - pos % kWalBlockBytes;
    if (left_in_block < 7) {
      pos += left_in_block;  // the block's trailer
      continue;
    }
    const auto* h = reinterpret_cast<const unsigned char*>(wal.data() + pos);
    const uint32_t length = h[4] | (h[5] << 8);
    if (h[6] == 0 && length == 0) break;  // zeros: the end of the log
    pos += 7 + length;
  }
  return std::min<uint64_t>(pos, wal.size());
}

// The crash test's writer runs in a fresh process (this binary re-executed): a plain
// fork() would inherit RocksDB's thread pool without its threads.
constexpr char kChildEnv[] = "MGREG_WAL_CRASH_DIR";

TEST(ZeroFilledWalCrashChild, Run) {
  const char* dir = std::getenv(kChildEnv);
  if (dir == nullptr) GTEST_SKIP() << "runs only as the child of a crash test";
  auto store = OpenRocksDbStoreOrFail(dir);
  if (store == nullptr || !PushSteps(*store)) _exit(2);
  kill(getpid(), SIGKILL);  // dies with the store open: every step was acknowledged
}

void RunChildUntilKilled(const std::string& dir) {
  RunSelfUntilKilled("ZeroFilledWalCrashChild.Run", {{kChildEnv, dir}});
}

void ExpectEveryStep(const std::string& dir) {
  auto store = OpenRocksDbStoreOrFail(dir);
  ASSERT_NE(store, nullptr);
  auto latest = store->GetLatest("m");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), kSteps);
  auto steps = store->ListCheckpoints("m", std::nullopt, 0);
  ASSERT_TRUE(steps.ok()) << steps.status();
  EXPECT_EQ(steps->size(), static_cast<size_t>(kSteps));
  auto check = store->Check();
  ASSERT_TRUE(check.ok()) << check.status();
  EXPECT_TRUE(check->ok()) << check->problems.front();
}

TEST(ZeroFilledWalTest, WalFileNamesAreANumberAndDotLog) {
  EXPECT_TRUE(IsWalFileName("/data/000123.log"));
  EXPECT_TRUE(IsWalFileName("7.log"));
  EXPECT_FALSE(IsWalFileName("/data/LOG"));
  EXPECT_FALSE(IsWalFileName("/data/.log"));
  EXPECT_FALSE(IsWalFileName("/data/000123.sst"));
  EXPECT_FALSE(IsWalFileName("/data/MANIFEST-000004"));
  EXPECT_FALSE(IsWalFileName("/data/x12.log"));
  EXPECT_FALSE(IsWalFileName("/data/12.log.trash"));
}

TEST(ZeroFilledWalTest, ZerosEndOnLogBlocksAheadOfTheAppend) {
  // An append that fits writes nothing ahead.
  EXPECT_EQ(WalZerosEnd(1000, 2000, kWalFirstZeros), kWalFirstZeros);
  EXPECT_EQ(WalZerosEnd(kWalFirstZeros - 10, 10, kWalFirstZeros), kWalFirstZeros);
  // Past the zeros: as far ahead as the append's end, rounded up to a block.
  EXPECT_EQ(WalZerosEnd(kWalFirstZeros, 1, kWalFirstZeros), 5 * kWalBlockBytes);
  // At least kWalFirstZeros ahead.
  EXPECT_EQ(WalZerosEnd(0, 100, 0), 3 * kWalBlockBytes);
  // As much ahead as the file holds...
  EXPECT_EQ(WalZerosEnd(256 << 10, 100, 256 << 10), 544u << 10);
  // ...but never more than kWalMaxZerosAhead.
  EXPECT_EQ(WalZerosEnd(8 << 20, 5, 8 << 20),
            (8u << 20) + kWalMaxZerosAhead + kWalBlockBytes);
  for (uint64_t written : {0ull, 5ull, 70000ull, 3000000ull}) {
    const uint64_t end = WalZerosEnd(written, 40000, 0);
    EXPECT_EQ(end % kWalBlockBytes, 0u) << written;
    EXPECT_GE(end, written + 40000 + kWalFirstZeros) << written;
  }
}

TEST(ZeroFilledWalTest, CommitsOverwriteZerosInsteadOfGrowingTheWal) {
  TempDir dir;
  auto store = OpenRocksDbStoreOrFail(dir.path());
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(Push(*store, "m", 1, {{"index", "1"}}).ok());
  std::vector<std::string> wals = WalFiles(dir.path());
  ASSERT_FALSE(wals.empty());
  const std::string live = wals.back();
  const uint64_t size = fs::file_size(live);
  EXPECT_GE(size, kWalFirstZeros);
  EXPECT_EQ(size % kWalBlockBytes, 0u);
  const uint64_t records = RecordsEnd(ReadFileOrDie(live));
  EXPECT_GT(records, 0u);
  EXPECT_LT(records, size);

  // Small commits land in the zeros: the file keeps its size.
  for (int step = 2; step <= 6; ++step) {
    ASSERT_TRUE(Push(*store, "m", step, {{"index", absl::StrCat(step)}}).ok());
  }
  ASSERT_EQ(WalFiles(dir.path()).back(), live);
  EXPECT_EQ(fs::file_size(live), size);
  EXPECT_GT(RecordsEnd(ReadFileOrDie(live)), records);

  // Past the zeros, the WAL is written further ahead, still in whole log blocks.
  ASSERT_TRUE(Push(*store, "m", 7, {{"data", Bytes(60 << 10, 7)}}, false, 64 << 10).ok());
  ASSERT_TRUE(Push(*store, "m", 8, {{"data", Bytes(60 << 10, 8)}}, false, 64 << 10).ok());
  ASSERT_EQ(WalFiles(dir.path()).back(), live);
  const std::string grown = ReadFileOrDie(live);
  EXPECT_GT(grown.size(), size);
  EXPECT_EQ(grown.size() % kWalBlockBytes, 0u);
  EXPECT_GT(grown.size(), RecordsEnd(grown));
}

TEST(ZeroFilledWalTest, AWalWithAZeroTailReplaysEveryStepAfterACrash) {
  TempDir dir;
  RunChildUntilKilled(dir.path());
  bool zero_tail = false;
  for (const std::string& wal : WalFiles(dir.path())) {
    const std::string bytes = ReadFileOrDie(wal);
    if (RecordsEnd(bytes) + kWalBlockBytes <= bytes.size()) zero_tail = true;
  }
  EXPECT_TRUE(zero_tail) << "the crash left no WAL with zeros past its records";
  ExpectEveryStep(dir.path());
}

TEST(ZeroFilledWalTest, ATornRecordBeforeTheZerosEndsTheReplayAfterTheLastCommit) {
  TempDir dir;
  RunChildUntilKilled(dir.path());
  // A record cut short as a crash in the middle of an append leaves it: its header
  // says 200 bytes, 50 reached the file, the zeros follow.
  std::vector<std::string> wals = WalFiles(dir.path());
  ASSERT_FALSE(wals.empty());
  const std::string wal = wals.back();
  std::string bytes = ReadFileOrDie(wal);
  const uint64_t end = RecordsEnd(bytes);
  ASSERT_LE(end + kWalBlockBytes, bytes.size());
  ASSERT_LT(end % kWalBlockBytes, kWalBlockBytes - 64);  // whole header in the block
  std::string torn = "\x12\x34\x56\x78";
  torn += std::string("\xc8\x00\x01", 3);  // length 200, kFullType
  torn += Bytes(50, 3);
  bytes.replace(end, torn.size(), torn);
  {
    std::ofstream out(wal, std::ios::binary | std::ios::in | std::ios::out);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    ASSERT_TRUE(out.good());
  }
  ExpectEveryStep(dir.path());
}

TEST(ZeroFilledWalTest, ACleanCloseLeavesNoZerosPastTheRecords) {
  TempDir dir;
  {
    auto store = OpenRocksDbStoreOrFail(dir.path());
    ASSERT_NE(store, nullptr);
    ASSERT_TRUE(PushSteps(*store));
  }
  for (const std::string& wal : WalFiles(dir.path())) {
    const std::string bytes = ReadFileOrDie(wal);
    EXPECT_EQ(RecordsEnd(bytes), bytes.size()) << wal;
  }
  ExpectEveryStep(dir.path());
}

}  // namespace
}  // namespace mgreg::rocks
