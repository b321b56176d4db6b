// ContentReader: the one reader of chunked content (server/core/content_reader.h),
// whole, by range and streamed, over staged chunks and stored blobs.
#include "server/core/content_reader.h"

#include <memory>
#include <string>
#include <vector>

#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/testing/core_test_util.h"

namespace mgreg::testing {
namespace {

class ContentReaderTest : public ::testing::Test {
 protected:
  // Three chunks "abcde" "fghij" "klm" staged in the store.
  void SetUp() override {
    staging_ = store_->NewStagingArea();
    for (const char* c : {"abcde", "fghij", "klm"}) {
      ASSERT_TRUE(staging_->PutChunk(ChunkOf(c), c).ok());
      refs_.push_back(ChunkOf(c));
    }
  }
  ContentReader Reader() { return ContentReader(store_.get(), refs_, "file 'index'"); }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  std::unique_ptr<StagingArea> staging_;
  std::vector<storage::ChunkRef> refs_;
};

TEST_F(ContentReaderTest, ReadsTheWholeContentInChunkOrder) {
  ContentReader reader = Reader();
  EXPECT_EQ(reader.size(), 13);
  absl::StatusOr<std::string> all = reader.ReadAll();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(*all, "abcdefghijklm");
}

TEST_F(ContentReaderTest, ReadsRangesAcrossChunkBoundariesAndCutsThemAtTheEnd) {
  ContentReader reader = Reader();
  EXPECT_EQ(*reader.ReadRange(0, 3), "abc");
  EXPECT_EQ(*reader.ReadRange(3, 5), "defgh");
  EXPECT_EQ(*reader.ReadRange(4, 8), "efghijkl");
  EXPECT_EQ(*reader.ReadRange(10, 100), "klm");
  EXPECT_EQ(*reader.ReadRange(13, 5), "");
  EXPECT_EQ(*reader.ReadRange(2, 0), "");
  // Back to an earlier chunk after a later one.
  EXPECT_EQ(*reader.ReadRange(0, 13), "abcdefghijklm");
}

TEST_F(ContentReaderTest, StreamsChunkByChunkFromAnOffset) {
  ContentReader reader = Reader();
  reader.Seek(7);
  EXPECT_EQ(reader.position(), 7);
  ASSERT_FALSE(reader.at_end());
  EXPECT_EQ(*reader.ReadToChunkEnd(), "hij");
  EXPECT_EQ(reader.position(), 10);
  EXPECT_EQ(*reader.ReadToChunkEnd(), "klm");
  EXPECT_TRUE(reader.at_end());

  // At a chunk boundary the stream starts with that whole chunk.
  reader.Seek(5);
  EXPECT_EQ(*reader.ReadToChunkEnd(), "fghij");
  // An offset at the end has nothing to stream.
  reader.Seek(13);
  EXPECT_TRUE(reader.at_end());
}

TEST_F(ContentReaderTest, EmptyContentIsAtItsEnd) {
  ContentReader reader(store_.get(), {}, "file 'meta'");
  EXPECT_EQ(reader.size(), 0);
  EXPECT_TRUE(reader.at_end());
  EXPECT_EQ(*reader.ReadAll(), "");
  EXPECT_EQ(*reader.ReadRange(0, 10), "");
}

TEST_F(ContentReaderTest, AChunkTheStoreDoesNotHoldIsNotFound) {
  std::vector<storage::ChunkRef> refs = refs_;
  refs.push_back(ChunkOf("never stored"));
  ContentReader reader(store_.get(), refs, "file 'index'");
  EXPECT_EQ(reader.ReadAll().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(*reader.ReadRange(0, 13), "abcdefghijklm");
  EXPECT_EQ(reader.ReadRange(0, 14).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ContentReaderTest, AChunkOfAnotherSizeThanItsReferenceIsDataLoss) {
  std::vector<storage::ChunkRef> refs = refs_;
  refs[1].set_size(6);  // "fghij" is 5 bytes
  ContentReader reader(store_.get(), refs, "file 'index'");
  EXPECT_EQ(reader.ReadAll().status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ContentReaderTest, ReadsACommittedBlobByItsDigest) {
  absl::StatusOr<storage::CheckpointRecord> record =
      CommitChunks(store_.get(), "m", 1, {"abcde", "fghij", "klm"});
  ASSERT_TRUE(record.ok()) << record.status();
  absl::StatusOr<ContentReader> reader =
      ContentReader::ForBlob(store_.get(), record->files(0).sha256(), "file 'index'");
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->size(), 13);
  EXPECT_EQ(*reader->ReadAll(), "abcdefghijklm");
}

TEST_F(ContentReaderTest, AnUnknownBlobIsNotFound) {
  absl::StatusOr<ContentReader> reader =
      ContentReader::ForBlob(store_.get(), Sha256Hex("nothing"), "file 'index'");
  EXPECT_EQ(reader.status().code(), absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace mgreg::testing
