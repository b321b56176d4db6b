#include "common/sha256.h"

#include <random>
#include <string>
#include <vector>

#include "gtest/gtest.h"

namespace mgreg {
namespace {

TEST(Sha256Test, MatchesKnownVectors) {
  EXPECT_EQ(Sha256Hex(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Sha256Hex("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
}

TEST(Sha256Test, IncrementalEqualsOneShotAndCopiesKeepState) {
  Sha256 h;
  h.Update("a");
  Sha256 saved = h;
  h.Update("bc");
  EXPECT_EQ(h.HexDigest(), Sha256Hex("abc"));
  saved.Update("bc");
  EXPECT_EQ(saved.HexDigest(), Sha256Hex("abc"));
}

// Sha256RawPair runs its own SHA-256 (SHA-NI, two messages interleaved) where the CPU
// has the SHA extensions: the same digests as OpenSSL's for every tail length (the
// padding takes one block or two), messages of different lengths (one continues alone),
// and a whole 1 MiB chunk.
TEST(Sha256Test, PairMatchesOneByOne) {
  std::mt19937_64 rng(256);
  std::string data((1 << 20) + 300, '\0');
  for (char& c : data) c = static_cast<char>(rng());
  std::vector<size_t> sizes;
  for (size_t n = 0; n <= 200; ++n) sizes.push_back(n);
  for (size_t n : {size_t{447}, size_t{448}, size_t{449}, size_t{4096}, size_t{65599},
                   size_t{1} << 20}) {
    sizes.push_back(n);
  }
  for (size_t i = 0; i < sizes.size(); ++i) {
    const size_t j = (i * 7 + 3) % sizes.size();
    for (size_t offset : {size_t{0}, size_t{5}}) {
      const absl::string_view a(data.data() + offset, sizes[i]);
      const absl::string_view b(data.data() + 2 * offset + 1, sizes[j]);
      const auto [da, db] = Sha256RawPair(a, b);
      ASSERT_EQ(BytesToHex(da), Sha256Hex(a)) << sizes[i] << " bytes at " << offset;
      ASSERT_EQ(BytesToHex(db), Sha256Hex(b))
          << sizes[j] << " bytes at " << 2 * offset + 1;
    }
  }
  const auto [abc, empty] = Sha256RawPair("abc", "");
  EXPECT_EQ(BytesToHex(abc),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(BytesToHex(empty),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

TEST(HexTest, RoundTripsAndRejectsBadInput) {
  std::string bytes;
  ASSERT_TRUE(HexToBytes("00ff10", &bytes));
  EXPECT_EQ(bytes, std::string("\x00\xff\x10", 3));
  EXPECT_EQ(BytesToHex(bytes), "00ff10");
  EXPECT_FALSE(HexToBytes("0", &bytes));
  EXPECT_FALSE(HexToBytes("zz", &bytes));
  EXPECT_TRUE(IsSha256Hex(Sha256Hex("x")));
  EXPECT_FALSE(IsSha256Hex("ABC"));
}

}  // namespace
}  // namespace mgreg
