#include "common/sha256.h"

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
