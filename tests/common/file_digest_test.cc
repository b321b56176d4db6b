#include "common/file_digest.h"

#include <string>
#include <vector>

#include "common/sha256.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

// The fixed vectors python/tests/test_digest.py checks too: byte i of a file of n bytes
// is (i * 7 + 3) % 251.
std::string Pattern(int64_t n) {
  std::string s(static_cast<size_t>(n), '\0');
  for (int64_t i = 0; i < n; ++i)
    s[static_cast<size_t>(i)] = static_cast<char>((i * 7 + 3) % 251);
  return s;
}

struct Vector {
  int64_t size;
  const char* chunked;
};
constexpr int64_t kMiB = int64_t{1} << 20;
const Vector kVectors[] = {
    {0, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
    {1, "c942a06c127c2c18022677e888020afb174208d299354f3ecfedb124a1f3fa45"},
    {kMiB, "e2369d7f9279da65a652b86e208291f28f70f890ad4b66403363a45f27ed3330"},
    {kMiB + 1, "e7408dee4d5a8cbdd0e8d58bee8ed7030fd0ef32716ace3a88556b816fcde32e"},
    {7 * kMiB / 2, "b055e796d87c1fa16ff45206b2588591e2c8e78a5e92b49b0c734a952566fc46"},
};

TEST(ChunkedSha256Test, MatchesFixedVectors) {
  for (const Vector& v : kVectors) {
    EXPECT_EQ(ChunkedSha256Hex(Pattern(v.size)), v.chunked) << v.size << " bytes";
  }
}

TEST(ChunkedSha256Test, EmptyFileIsTheDigestOfNoBytes) {
  EXPECT_EQ(ChunkedSha256Hex(""), Sha256Hex(""));
  EXPECT_EQ(ChunkedSha256().HexDigest(), Sha256Hex(""));
}

TEST(ChunkedSha256Test, OnePieceFileIsTheDigestOfItsDigest) {
  const std::string data = Pattern(1000);
  EXPECT_EQ(ChunkedSha256Hex(data), Sha256Hex(Sha256Raw(data)));
  EXPECT_NE(ChunkedSha256Hex(data), Sha256Hex(data));
}

TEST(ChunkedSha256Test, AnySplitOfTheBytesGivesTheSameDigest) {
  const std::string data = Pattern(7 * kMiB / 2);
  for (size_t step :
       {size_t{1} << 10, size_t{333333}, size_t{1} << 20, size_t{3} << 20}) {
    ChunkedSha256 h;
    for (size_t pos = 0; pos < data.size(); pos += step) h.Update(data.substr(pos, step));
    EXPECT_EQ(h.HexDigest(), kVectors[4].chunked) << "step " << step;
    EXPECT_EQ(h.bytes(), static_cast<int64_t>(data.size()));
  }
}

TEST(ChunkedSha256Test, PiecesGivenByDigestMixWithBytes) {
  const std::string data = Pattern(7 * kMiB / 2);
  ChunkedSha256 h;
  EXPECT_TRUE(h.at_piece_boundary());
  ASSERT_TRUE(h.AddPiece(Sha256Raw(data.substr(0, kMiB)), kMiB));
  h.Update(data.substr(kMiB, kMiB));
  EXPECT_TRUE(h.at_piece_boundary());
  ChunkedSha256 saved = h;  // copies keep the state
  h.Update(data.substr(2 * kMiB, kMiB / 3));
  EXPECT_FALSE(h.AddPiece(Sha256Raw("x"), 1)) << "only at a piece boundary";
  h.Update(data.substr(2 * kMiB + kMiB / 3));
  EXPECT_EQ(h.HexDigest(), kVectors[4].chunked);
  ASSERT_TRUE(saved.AddPiece(Sha256Raw(data.substr(2 * kMiB, kMiB)), kMiB));
  ASSERT_TRUE(saved.AddPiece(Sha256Raw(data.substr(3 * kMiB)), kMiB / 2));
  EXPECT_FALSE(saved.at_piece_boundary()) << "a shorter piece is the last";
  EXPECT_EQ(saved.HexDigest(), kVectors[4].chunked);
  EXPECT_EQ(saved.bytes(), static_cast<int64_t>(data.size()));
}

TEST(ChunkedSha256Test, AddPieceRejectsBadDigestsAndSizes) {
  ChunkedSha256 h;
  EXPECT_FALSE(h.AddPiece("short", kMiB));
  EXPECT_FALSE(h.AddPiece(Sha256Raw("x"), 0));
  EXPECT_FALSE(h.AddPiece(Sha256Raw("x"), kMiB + 1));
  EXPECT_EQ(h.bytes(), 0);
  EXPECT_EQ(h.HexDigest(), Sha256Hex(""));
}

TEST(ChunkedSha256Test, FromPiecesEqualsTheStreamedDigest) {
  const std::string data = Pattern(kMiB + 1);
  EXPECT_EQ(ChunkedSha256FromPieces(
                {Sha256Raw(data.substr(0, kMiB)), Sha256Raw(data.substr(kMiB))}),
            kVectors[3].chunked);
  EXPECT_EQ(ChunkedSha256FromPieces({}), Sha256Hex(""));
}

}  // namespace
}  // namespace mgreg
