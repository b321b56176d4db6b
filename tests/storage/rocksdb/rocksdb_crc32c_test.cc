// RocksDB's CRC32C through ISA-L (storage/rocksdb/rocksdb_crc32c.h):
// RocksDB's own code reaches it in a program that links the store, and it is the same
// function as RocksDB's, so data dirs written before read back.
#include "storage/rocksdb/rocksdb_crc32c.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>

#include "gtest/gtest.h"
#include "rocksdb/file_checksum.h"

namespace mgreg::rocks {
namespace {

uint32_t Crc(const std::string& s) { return RocksDbCrc32cExtend(0, s.data(), s.size()); }

TEST(RocksDbCrc32cTest, RocksDbsOwnCodeCallsIt) {
  std::unique_ptr<rocksdb::FileChecksumGenerator> gen =
      rocksdb::GetFileChecksumGenCrc32cFactory()->CreateFileChecksumGenerator(
          rocksdb::FileChecksumGenContext());
  const uint64_t before = Crc32cCallsOnThisThread();
  gen->Update("some bytes", 10);
  EXPECT_GT(Crc32cCallsOnThisThread(), before);
  EXPECT_TRUE(FastCrc32cInUse());
}

TEST(RocksDbCrc32cTest, KnownValues) {
  // The CRC-32C check value, and the vectors of RFC 3720 (as RocksDB's own tests).
  EXPECT_EQ(Crc("123456789"), 0xE3069283u);
  EXPECT_EQ(Crc(std::string(32, '\0')), 0x8a9136aau);
  EXPECT_EQ(Crc(std::string(32, '\xff')), 0x62a8ab43u);
  std::string ascending, descending;
  for (int i = 0; i < 32; ++i) {
    ascending.push_back(static_cast<char>(i));
    descending.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(Crc(ascending), 0x46dd794eu);
  EXPECT_EQ(Crc(descending), 0x113fdb5cu);
  // Extend continues a CRC: two pieces give the CRC of the whole.
  const std::string all = "hello world, in two pieces";
  const uint32_t first = RocksDbCrc32cExtend(0, all.data(), 11);
  EXPECT_EQ(RocksDbCrc32cExtend(first, all.data() + 11, all.size() - 11), Crc(all));
}

TEST(RocksDbCrc32cTest, SameAsRocksDbsForEveryLengthAndAlignment) {
  std::mt19937_64 rng(17);
  std::string data(70000, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t offset = 0; offset < 9; ++offset) {
    for (size_t n : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, size_t{15},
                     size_t{63}, size_t{4096}, size_t{65537}}) {
      const uint32_t seed = static_cast<uint32_t>(rng());
      EXPECT_EQ(RocksDbCrc32cExtend(seed, data.data() + offset, n),
                LibraryCrc32cExtend(seed, data.data() + offset, n))
          << "offset " << offset << ", " << n << " bytes";
    }
  }
}

// Long inputs are folded in blocks (ISA-L: 256 bytes per step with AVX-512, smaller
// steps and a byte-wise tail otherwise): lengths at and around multiples of such blocks
// and of the three-strip split used before (8 KiB, 256 B), and a whole chunk.
TEST(RocksDbCrc32cTest, SameAsRocksDbsAroundTheInterleavedStrips) {
  std::mt19937_64 rng(18);
  std::string data((1 << 20) + 64, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  for (size_t n :
       {size_t{767}, size_t{768}, size_t{769}, size_t{776}, size_t{1536}, size_t{24575},
        size_t{24576}, size_t{24577}, size_t{24576 + 768}, size_t{24576 + 775},
        size_t{49152 + 1000}, size_t{1} << 20, (size_t{1} << 20) + 61}) {
    for (size_t offset : {size_t{0}, size_t{3}}) {
      const uint32_t seed = static_cast<uint32_t>(rng());
      EXPECT_EQ(RocksDbCrc32cExtend(seed, data.data() + offset, n),
                LibraryCrc32cExtend(seed, data.data() + offset, n))
          << "offset " << offset << ", " << n << " bytes";
    }
  }
}

}  // namespace
}  // namespace mgreg::rocks
