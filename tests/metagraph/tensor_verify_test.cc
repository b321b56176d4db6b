// VerifyTensors over real checkpoints (t2t: two shards) read through a recording reader.
#include "metagraph/tensor_verify.h"

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_name.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;

constexpr char kT2t[] = "t2t/tensor2tensor/test_data/transformer_test_ckpt/model.ckpt-1";

struct Checkpoint {
  BundleIndex index;
  std::map<int, std::string> data;
  std::map<int, int64_t> sizes;
};

Checkpoint ReadCheckpoint(const char* prefix) {
  Checkpoint out;
  auto index =
      ReadBundleIndex(ReadFileOrDie(TestdataPath(absl::StrCat(prefix, ".index"))));
  EXPECT_TRUE(index.ok()) << index.status();
  if (!index.ok()) return out;
  out.index = std::move(*index);
  const int n = out.index.header.num_shards();
  for (int i = 0; i < n; ++i) {
    out.data[i] =
        ReadFileOrDie(TestdataPath(absl::StrCat(prefix, ".", DataFileName(i, n))));
    out.sizes[i] = static_cast<int64_t>(out.data[i].size());
  }
  return out;
}

TEST(TensorVerifyTest, EveryTensorOfTwoShardsIsOkAndEachShardIsReadInOffsetOrder) {
  MGREG_REQUIRE_TESTDATA();
  Checkpoint c = ReadCheckpoint(kT2t);
  std::map<int, int64_t> last_offset;
  std::vector<int> shards_read;
  auto verdicts =
      VerifyTensors(c.index, c.sizes, [&](int shard, int64_t offset, int64_t size) {
        EXPECT_GE(offset, last_offset[shard]) << "shard " << shard;
        last_offset[shard] = offset;
        if (shards_read.empty() || shards_read.back() != shard)
          shards_read.push_back(shard);
        return absl::StatusOr<std::string>(c.data.at(shard).substr(offset, size));
      });
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  EXPECT_EQ(verdicts->size(), 250u);  // 5 in shard 0, 245 in shard 1
  for (const auto& [name, verdict] : *verdicts) EXPECT_EQ(verdict, "ok") << name;
  EXPECT_EQ(shards_read, (std::vector<int>{0, 1}));  // each shard once
}

TEST(TensorVerifyTest, MissingShardAndCorruptedBytesGetVerdictsNotErrors) {
  MGREG_REQUIRE_TESTDATA();
  Checkpoint c = ReadCheckpoint(kT2t);
  c.sizes.erase(0);
  // Every byte of shard 1 flipped: each of its tensors fails its CRC.
  for (char& ch : c.data[1]) ch = static_cast<char>(ch ^ 0x5a);
  auto verdicts =
      VerifyTensors(c.index, c.sizes, [&](int shard, int64_t offset, int64_t size) {
        EXPECT_EQ(shard, 1);
        return absl::StatusOr<std::string>(c.data.at(shard).substr(offset, size));
      });
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  int missing = 0, corrupt = 0;
  for (const auto& [name, verdict] : *verdicts) {
    if (verdict == "its data shard is missing") {
      ++missing;
    } else {
      EXPECT_NE(verdict, "ok") << name;
      ++corrupt;
    }
  }
  EXPECT_EQ(missing, 5);
  EXPECT_EQ(corrupt, 245);
}

TEST(TensorVerifyTest, ShardShorterThanItsTensorsSaysTheBytesLieOutside) {
  MGREG_REQUIRE_TESTDATA();
  Checkpoint c = ReadCheckpoint(kT2t);
  c.sizes[0] = 0;
  auto verdicts =
      VerifyTensors(c.index, c.sizes, [&](int shard, int64_t offset, int64_t size) {
        return absl::StatusOr<std::string>(c.data.at(shard).substr(offset, size));
      });
  ASSERT_TRUE(verdicts.ok()) << verdicts.status();
  int outside = 0;
  for (const auto& [name, verdict] : *verdicts) {
    if (verdict == "its bytes lie outside the data file") ++outside;
  }
  EXPECT_GE(outside, 1);
}

TEST(TensorVerifyTest, ReaderErrorIsReturnedAsIs) {
  MGREG_REQUIRE_TESTDATA();
  Checkpoint c = ReadCheckpoint(kT2t);
  auto verdicts = VerifyTensors(c.index, c.sizes, [](int, int64_t, int64_t) {
    return absl::StatusOr<std::string>(absl::DataLossError("chunk gone"));
  });
  EXPECT_EQ(verdicts.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(verdicts.status().message(), "chunk gone");
}

}  // namespace
}  // namespace mgreg
