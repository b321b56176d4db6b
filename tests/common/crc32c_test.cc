#include "common/crc32c.h"

#include <string>

#include "gtest/gtest.h"

namespace mgreg {
namespace {

TEST(Crc32cTest, MatchesStandardCheckValue) {
  EXPECT_EQ(Crc32c("123456789"), 0xE3069283u);
}

TEST(Crc32cTest, ContinuesAcrossPieces) {
  EXPECT_EQ(Crc32c("6789", Crc32c("12345")), Crc32c("123456789"));
}

TEST(Crc32cTest, MaskMatchesTensorFlowValue) {
  // DATA.md: 0.5f (bytes 00 00 00 3f) has crc32c 647446098 and masked 522663942.
  const std::string half("\x00\x00\x00\x3f", 4);
  EXPECT_EQ(Crc32c(half), 647446098u);
  EXPECT_EQ(MaskCrc32c(Crc32c(half)), 522663942u);
  EXPECT_EQ(UnmaskCrc32c(522663942u), 647446098u);
}

}  // namespace
}  // namespace mgreg
