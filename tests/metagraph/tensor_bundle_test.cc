#include "metagraph/tensor_bundle.h"

#include <map>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "google/protobuf/io/coded_stream.h"
#include "gtest/gtest.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/table_builder.h"
#include "metagraph/checkpoint_name.h"
#include "tensorflow/core/protobuf/trackable_object_graph.pb.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;

constexpr char kServingCpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/"
    "00000123/variables/variables";
constexpr char kServingTf2Cpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/"
    "00000123/variables/variables";
constexpr char kServingGpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_gpu/"
    "00000123/variables/variables";
constexpr char kT2t[] = "t2t/tensor2tensor/test_data/transformer_test_ckpt/model.ckpt-1";
constexpr char kTfx[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000";
constexpr char kTictactoe[] = "tictactoe/tf_ckpts/ckpt-19";
constexpr char kTf2onnxCheckpoint[] = "tf2onnx/tests/models/regression/checkpoint/model";
constexpr char kTf2onnxSavedModel[] =
    "tf2onnx/tests/models/regression/saved_model/variables/variables";
constexpr char kV1Checkpoint[] =
    "serving/tensorflow_serving/session_bundle/testdata/half_plus_two/00000123/"
    "export-00000-of-00001";

const std::vector<const char*>& AllPrefixes() {
  static const auto* kAll = new std::vector<const char*>{
      kServingCpu, kServingTf2Cpu, kServingGpu,        kT2t,
      kTfx,        kTictactoe,     kTf2onnxCheckpoint, kTf2onnxSavedModel};
  return *kAll;
}

std::string ReadIndex(const char* prefix) {
  return ReadFileOrDie(TestdataPath(absl::StrCat(prefix, ".index")));
}

// The data files of a checkpoint, by shard id.
std::map<int, std::string> ReadDataFiles(const char* prefix, int num_shards) {
  std::map<int, std::string> out;
  for (int i = 0; i < num_shards; ++i) {
    out[i] = ReadFileOrDie(
        TestdataPath(absl::StrCat(prefix, ".", DataFileName(i, num_shards))));
  }
  return out;
}

std::map<int, int64_t> Sizes(const std::map<int, std::string>& data) {
  std::map<int, int64_t> out;
  for (const auto& [shard, bytes] : data) out[shard] = static_cast<int64_t>(bytes.size());
  return out;
}

const tensorflow::BundleEntryProto* FindEntry(const BundleIndex& index,
                                              const std::string& key) {
  for (const auto& [k, e] : index.entries) {
    if (k == key) return &e;
  }
  return nullptr;
}

// An in-memory leveldb::WritableFile for building tables in tests.
class StringSink : public leveldb::WritableFile {
 public:
  leveldb::Status Append(const leveldb::Slice& data) override {
    contents_.append(data.data(), data.size());
    return leveldb::Status::OK();
  }
  leveldb::Status Close() override { return leveldb::Status::OK(); }
  leveldb::Status Flush() override { return leveldb::Status::OK(); }
  leveldb::Status Sync() override { return leveldb::Status::OK(); }
  const std::string& contents() const { return contents_; }

 private:
  std::string contents_;
};

// A table holding `entries` (sorted by key), built as TensorFlow's BundleWriter does
// (uncompressed blocks).
std::string BuildTable(const std::vector<std::pair<std::string, std::string>>& entries) {
  leveldb::Options options;
  options.compression = leveldb::kNoCompression;
  StringSink sink;
  leveldb::TableBuilder builder(options, &sink);
  for (const auto& [k, v] : entries) builder.Add(k, v);
  EXPECT_TRUE(builder.Finish().ok());
  return sink.contents();
}

std::string HeaderBytes(int num_shards) {
  tensorflow::BundleHeaderProto header;
  header.set_num_shards(num_shards);
  header.mutable_version()->set_producer(1);
  return header.SerializeAsString();
}

TEST(TensorBundleTest, EveryRealIndexReadsWithHeaderAndSortedNonEmptyKeys) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* prefix : AllPrefixes()) {
    SCOPED_TRACE(prefix);
    auto index = ReadBundleIndex(ReadIndex(prefix));
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_GE(index->header.num_shards(), 1);
    EXPECT_EQ(index->header.endianness(), tensorflow::BundleHeaderProto::LITTLE);
    EXPECT_EQ(index->header.version().producer(), 1);
    ASSERT_FALSE(index->entries.empty());
    for (size_t i = 0; i < index->entries.size(); ++i) {
      EXPECT_FALSE(index->entries[i].first.empty());
      if (i > 0) {
        EXPECT_LT(index->entries[i - 1].first, index->entries[i].first);
      }
    }
  }
}

// The compression type byte of the last data block: the data blocks end 5 bytes (type
// byte + crc) before the metaindex block, whose offset is the footer's first varint.
int LastDataBlockType(const std::string& table) {
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(table.data() + table.size() - 48), 48);
  uint64_t metaindex_offset = 0;
  EXPECT_TRUE(in.ReadVarint64(&metaindex_offset));
  return static_cast<uint8_t>(table[metaindex_offset - 5]);
}

TEST(TensorBundleTest, SnappyCompressedIndexesRead) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* prefix : {kServingCpu, kServingTf2Cpu}) {
    SCOPED_TRACE(prefix);
    const std::string bytes = ReadIndex(prefix);
    ASSERT_EQ(LastDataBlockType(bytes), 1);  // kSnappyCompression
    auto index = ReadBundleIndex(bytes);
    ASSERT_TRUE(index.ok()) << index.status();
    const auto* a =
        FindEntry(*index, prefix == kServingCpu ? "a" : "a/.ATTRIBUTES/VARIABLE_VALUE");
    ASSERT_NE(a, nullptr);
    EXPECT_EQ(a->dtype(), tensorflow::DT_FLOAT);
    EXPECT_EQ(a->shape().dim_size(), 0);
    EXPECT_EQ(a->size(), 4);
    EXPECT_EQ(a->crc32c(), 522663942u);
  }
  EXPECT_EQ(LastDataBlockType(ReadIndex(kTfx)), 0);  // BundleWriter's usual raw blocks.
}

TEST(TensorBundleTest, ServingCpuVariableAMatchesItsKnownMaskedCrc) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kServingCpu));
  ASSERT_TRUE(index.ok()) << index.status();
  const auto* a = FindEntry(*index, "a");
  ASSERT_NE(a, nullptr);
  const std::string data = ReadDataFiles(kServingCpu, 1).at(0);
  const std::string bytes = data.substr(a->offset(), a->size());
  EXPECT_EQ(bytes, std::string("\x00\x00\x00\x3f", 4));  // 0.5f
  EXPECT_TRUE(VerifyTensorCrc("a", *a, bytes).ok());
}

TEST(TensorBundleTest, EveryTensorOfEveryRealCheckpointMatchesItsDataBytes) {
  MGREG_REQUIRE_TESTDATA();
  int verified = 0;
  for (const char* prefix : AllPrefixes()) {
    SCOPED_TRACE(prefix);
    auto index = ReadBundleIndex(ReadIndex(prefix));
    ASSERT_TRUE(index.ok()) << index.status();
    const int n = index->header.num_shards();
    const auto data = ReadDataFiles(prefix, n);
    ASSERT_TRUE(ValidateBundle(*index, n, Sizes(data)).ok());
    for (const auto& [name, entry] : index->entries) {
      const std::string& shard = data.at(entry.shard_id());
      EXPECT_TRUE(
          VerifyTensorCrc(name, entry,
                          absl::string_view(shard).substr(entry.offset(), entry.size()))
              .ok())
          << name;
      ++verified;
    }
  }
  // serving cpu 5 + tf2 cpu 4 + gpu 3, t2t 250, tfx 60, tictactoe 19, tf2onnx 2 + 2;
  // including two DT_STRING object graphs.
  EXPECT_EQ(verified, 345);
}

// DATA.md says "6 tensors in shard 0": that count includes the "" header entry, whose
// value is not a tensor. The index holds 250 tensors: 5 in shard 0, 245 in shard 1.
TEST(TensorBundleTest, T2tIndexHasTwoShardsWithFiveAndTwoHundredFortyFiveTensors) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kT2t));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->header.num_shards(), 2);
  int per_shard[2] = {0, 0};
  for (const auto& [name, entry] : index->entries) {
    ASSERT_GE(entry.shard_id(), 0);
    ASSERT_LT(entry.shard_id(), 2);
    ++per_shard[entry.shard_id()];
  }
  EXPECT_EQ(per_shard[0], 5);
  EXPECT_EQ(per_shard[1], 245);
  EXPECT_TRUE(ValidateBundle(*index, 2, Sizes(ReadDataFiles(kT2t, 2))).ok());
}

TEST(TensorBundleTest, TfxIndexHasSixtyTensorsInOneShard) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kTfx));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->header.num_shards(), 1);
  EXPECT_EQ(index->entries.size(), 60u);
}

TEST(TensorBundleTest, ObjectBasedCheckpointCarriesItsTrackableObjectGraph) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kTictactoe));
  ASSERT_TRUE(index.ok()) << index.status();
  const auto* entry = FindEntry(*index, "_CHECKPOINTABLE_OBJECT_GRAPH");
  ASSERT_NE(entry, nullptr);
  EXPECT_EQ(entry->dtype(), tensorflow::DT_STRING);
  const std::string data = ReadDataFiles(kTictactoe, 1).at(0);
  const std::string bytes = data.substr(entry->offset(), entry->size());
  ASSERT_TRUE(VerifyTensorCrc("_CHECKPOINTABLE_OBJECT_GRAPH", *entry, bytes).ok());

  // A scalar DT_STRING tensor in a bundle: varint64 length, a 4-byte checksum of the
  // lengths, then the string.
  google::protobuf::io::CodedInputStream in(
      reinterpret_cast<const uint8_t*>(bytes.data()), static_cast<int>(bytes.size()));
  uint64_t len = 0;
  ASSERT_TRUE(in.ReadVarint64(&len));
  ASSERT_TRUE(in.Skip(4));
  std::string graph_bytes;
  ASSERT_TRUE(in.ReadString(&graph_bytes, static_cast<int>(len)));
  tensorflow::TrackableObjectGraph graph;
  ASSERT_TRUE(graph.ParseFromString(graph_bytes));
  EXPECT_TRUE(graph.GetReflection()->GetUnknownFields(graph).empty());
  ASSERT_GT(graph.nodes_size(), 0);
  bool found_kernel = false;
  for (const auto& node : graph.nodes()) {
    for (const auto& attr : node.attributes()) {
      EXPECT_NE(FindEntry(*index, attr.checkpoint_key()), nullptr)
          << attr.checkpoint_key();
      found_kernel |= attr.checkpoint_key() ==
                      "net/layer_with_weights-0/kernel/.ATTRIBUTES/VARIABLE_VALUE";
    }
  }
  EXPECT_TRUE(found_kernel);
}

TEST(TensorBundleTest, V1CheckpointIsInvalidArgumentNotSupported) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadFileOrDie(TestdataPath(kV1Checkpoint)));
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(index.status().message(), "V1 checkpoint"))
      << index.status();
  EXPECT_TRUE(absl::StrContains(index.status().message(), "not supported"))
      << index.status();
}

TEST(TensorBundleTest, EmptyBytesAreInvalidArgument) {
  EXPECT_EQ(ReadBundleIndex("").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, TruncatedIndexIsInvalidArgument) {
  MGREG_REQUIRE_TESTDATA();
  const std::string bytes = ReadIndex(kTfx);
  for (size_t keep : {bytes.size() - 1, bytes.size() / 2, size_t{47}}) {
    SCOPED_TRACE(keep);
    EXPECT_EQ(ReadBundleIndex(bytes.substr(0, keep)).status().code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST(TensorBundleTest, GarbageFooterIsInvalidArgument) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadIndex(kTfx);
  for (size_t i = bytes.size() - 48; i < bytes.size(); ++i) bytes[i] = '\x5a';
  auto index = ReadBundleIndex(bytes);
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(
      absl::StrContains(index.status().message(), "not a TensorFlow checkpoint index"))
      << index.status();
}

TEST(TensorBundleTest, RandomBytesAreInvalidArgument) {
  std::string bytes(4096, '\0');
  uint32_t x = 12345;
  for (char& c : bytes) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  EXPECT_EQ(ReadBundleIndex(bytes).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, FlippedByteInRawDataBlockIsDataLoss) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadIndex(kTfx);
  bytes[10] ^= 0x01;  // Inside the first data block.
  auto index = ReadBundleIndex(bytes);
  EXPECT_EQ(index.status().code(), absl::StatusCode::kDataLoss) << index.status();
}

TEST(TensorBundleTest, FlippedByteInSnappyDataBlockIsDataLoss) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadIndex(kServingCpu);
  bytes[3] ^= 0x40;
  auto index = ReadBundleIndex(bytes);
  EXPECT_EQ(index.status().code(), absl::StatusCode::kDataLoss) << index.status();
}

TEST(TensorBundleTest, FlippedByteInIndexBlockIsDataLoss) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadIndex(kTfx);
  // The index block sits right before the 48-byte footer, followed by its 5-byte trailer.
  bytes[bytes.size() - 48 - 5 - 3] ^= 0x01;
  auto index = ReadBundleIndex(bytes);
  EXPECT_EQ(index.status().code(), absl::StatusCode::kDataLoss) << index.status();
}

TEST(TensorBundleTest, TableWithoutHeaderEntryIsInvalidArgument) {
  tensorflow::BundleEntryProto entry;
  entry.set_dtype(tensorflow::DT_FLOAT);
  entry.set_size(4);
  auto index = ReadBundleIndex(BuildTable({{"w", entry.SerializeAsString()}}));
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(index.status().message(), "no header entry"))
      << index.status();
}

TEST(TensorBundleTest, UnparsableHeaderEntryIsInvalidArgument) {
  auto index = ReadBundleIndex(BuildTable({{"", "\xff\xff\xff"}}));
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(index.status().message(), "header")) << index.status();
}

TEST(TensorBundleTest, UnparsableEntryIsInvalidArgumentNamingTheKey) {
  auto index = ReadBundleIndex(BuildTable({{"", HeaderBytes(1)}, {"weights", "\xff"}}));
  EXPECT_EQ(index.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(index.status().message(), "'weights'")) << index.status();
}

TEST(TensorBundleTest, SelfBuiltTableReadsBack) {
  tensorflow::BundleEntryProto entry;
  entry.set_dtype(tensorflow::DT_INT64);
  entry.set_offset(8);
  entry.set_size(8);
  auto index = ReadBundleIndex(BuildTable({{"", HeaderBytes(3)},
                                           {"a", entry.SerializeAsString()},
                                           {"b", entry.SerializeAsString()}}));
  ASSERT_TRUE(index.ok()) << index.status();
  EXPECT_EQ(index->header.num_shards(), 3);
  ASSERT_EQ(index->entries.size(), 2u);
  EXPECT_EQ(index->entries[1].first, "b");
  EXPECT_EQ(index->entries[1].second.offset(), 8);
}

// A two-shard index: "x" is 8 bytes at offset 0 of shard 0; "y" 4 bytes at 4 of shard 1.
BundleIndex TwoShardIndex() {
  BundleIndex index;
  index.header.set_num_shards(2);
  tensorflow::BundleEntryProto x;
  x.set_size(8);
  tensorflow::BundleEntryProto y;
  y.set_shard_id(1);
  y.set_offset(4);
  y.set_size(4);
  index.entries = {{"x", x}, {"y", y}};
  return index;
}

TEST(TensorBundleTest, BundleWithAllShardsLargeEnoughIsValid) {
  EXPECT_TRUE(ValidateBundle(TwoShardIndex(), 2, {{0, 8}, {1, 8}}).ok());
}

TEST(TensorBundleTest, NumShardsMismatchIsInvalidArgument) {
  auto s = ValidateBundle(TwoShardIndex(), 1, {{0, 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "expects 2 data file(s)")) << s;
}

TEST(TensorBundleTest, RealT2tIndexWithOneDataFileIsInvalidArgument) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kT2t));
  ASSERT_TRUE(index.ok());
  EXPECT_EQ(ValidateBundle(*index, 1, {{0, 24}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, MissingShardIsInvalidArgumentNamingTheFile) {
  auto s = ValidateBundle(TwoShardIndex(), 2, {{0, 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "data-00001-of-00002 is missing")) << s;
}

TEST(TensorBundleTest, ShardOutsideTheIndexRangeIsInvalidArgument) {
  auto s = ValidateBundle(TwoShardIndex(), 2, {{0, 8}, {1, 8}, {2, 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, EntryPastTheEndOfItsShardIsInvalidArgumentNamingTheTensor) {
  auto s = ValidateBundle(TwoShardIndex(), 2, {{0, 8}, {1, 7}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "'y'")) << s;
}

TEST(TensorBundleTest, EntryInNonexistentShardIsInvalidArgument) {
  BundleIndex index = TwoShardIndex();
  index.entries[0].second.set_shard_id(5);
  auto s = ValidateBundle(index, 2, {{0, 8}, {1, 8}});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(s.message(), "'x'")) << s;
}

TEST(TensorBundleTest, EntryWithNegativeOffsetIsInvalidArgument) {
  BundleIndex index = TwoShardIndex();
  index.entries[0].second.set_offset(-1);
  EXPECT_EQ(ValidateBundle(index, 2, {{0, 8}, {1, 8}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, OffsetPlusSizeOverflowIsInvalidArgument) {
  BundleIndex index = TwoShardIndex();
  index.entries[0].second.set_offset(4);
  index.entries[0].second.set_size(std::numeric_limits<int64_t>::max());
  EXPECT_EQ(ValidateBundle(index, 2, {{0, 8}, {1, 8}}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(TensorBundleTest, PartitionedTensorEntryIsNotLocated) {
  BundleIndex index = TwoShardIndex();
  tensorflow::BundleEntryProto full;
  full.set_shard_id(9);  // Meaningless for a partitioned entry.
  full.add_slices()->add_extent()->set_start(0);
  index.entries.emplace_back("z", full);
  EXPECT_TRUE(ValidateBundle(index, 2, {{0, 8}, {1, 8}}).ok());
}

TEST(TensorBundleTest, CorruptedTensorBytesAreDataLossNamingTheTensor) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kServingCpu));
  ASSERT_TRUE(index.ok());
  const auto* a = FindEntry(*index, "a");
  ASSERT_NE(a, nullptr);
  auto s = VerifyTensorCrc("a", *a, std::string("\x00\x00\x80\x3f", 4));  // 1.0f
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(s.message(), "'a'")) << s;
}

TEST(TensorBundleTest, CorruptedStringTensorIsDataLoss) {
  MGREG_REQUIRE_TESTDATA();
  auto index = ReadBundleIndex(ReadIndex(kTictactoe));
  ASSERT_TRUE(index.ok());
  const auto* entry = FindEntry(*index, "_CHECKPOINTABLE_OBJECT_GRAPH");
  ASSERT_NE(entry, nullptr);
  const std::string data = ReadDataFiles(kTictactoe, 1).at(0);
  const std::string good = data.substr(entry->offset(), entry->size());
  for (size_t at : {size_t{0}, size_t{3}, good.size() / 2, good.size() - 1}) {
    SCOPED_TRACE(at);
    std::string bad = good;
    bad[at] ^= 0x10;
    auto s = VerifyTensorCrc("_CHECKPOINTABLE_OBJECT_GRAPH", *entry, bad);
    EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
  }
}

TEST(TensorBundleTest, VariantTensorChecksumIsUnimplemented) {
  tensorflow::BundleEntryProto entry;
  entry.set_dtype(tensorflow::DT_VARIANT);
  entry.set_size(3);
  EXPECT_EQ(VerifyTensorCrc("v", entry, "abc").code(), absl::StatusCode::kUnimplemented);
}

TEST(TensorBundleTest, TensorBytesOfWrongSizeAreDataLoss) {
  tensorflow::BundleEntryProto entry;
  entry.set_size(4);
  auto s = VerifyTensorCrc("w", entry, "abc");
  EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(s.message(), "'w'")) << s;
}

}  // namespace
}  // namespace mgreg
