// Client::Push's one-pass upload against the real server (issue 17): a shard larger than
// one pipeline window (client/pipelined_upload.h) is announced by its size, hashed while
// it is sent, deduplicated chunk by chunk window by window, and gets its digest at the
// end; small files and the files of an existing step are digested first, so whole-file
// deduplication, idempotent re-pushes and refusals before sending stay as they were.
#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/pipelined_upload.h"
#include "common/file_digest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr char kShard[] = "data-00000-of-00001";

class PipelinedPushTest : public ServerFixture {
 protected:
  void SetUp() override { StartServer(); }

  // A checkpoint under tmp/<dir> whose one shard holds 24 tensors of exactly 1 MiB (so
  // each is one server chunk) and a 4000-byte tail: 24 MiB + 4000 bytes, larger than a
  // pipeline window. Tensor `changed` (if in range) gets other bytes.
  std::string Make(const std::string& dir, int64_t step, int changed = -1) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(dir);
    fs::create_directories(spec.directory);
    spec.step = step;
    for (int i = 0; i < 24; ++i) {
      spec.tensors.push_back({absl::StrCat("layer", i, "/w"),
                              FloatBytes(1 << 18, i == changed ? 1000 + i : i), 0});
    }
    spec.tensors.push_back({"tail", FloatBytes(1000, 99), 0});
    spec.meta = SmallMetaGraphBytes();
    const std::string prefix = WriteCheckpoint(spec);
    EXPECT_GT(static_cast<int64_t>(fs::file_size(absl::StrCat(prefix, ".", kShard))),
              kPipelineWindowBytes);
    return prefix;
  }
  static int64_t Size(const std::string& prefix, const std::string& suffix) {
    return static_cast<int64_t>(fs::file_size(absl::StrCat(prefix, ".", suffix)));
  }
  static int64_t Total(const std::string& prefix) {
    return Size(prefix, "index") + Size(prefix, kShard) + Size(prefix, "meta");
  }
  absl::StatusOr<v1::Checkpoint> Push(const std::string& model, const std::string& prefix,
                                      PushStats* stats, PushOptions options = {}) {
    options.stats = stats;
    return client_->Push(model, prefix, options);
  }
};

TEST_F(PipelinedPushTest, ALargeShardIsSentWhileHashedAndRestoresByteForByte) {
  const std::string prefix = Make("s1", 1);
  PushStats stats;
  absl::StatusOr<v1::Checkpoint> pushed = Push("m", prefix, &stats);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(stats.bytes_sent, Total(prefix));
  EXPECT_EQ(stats.bytes_deduplicated_files + stats.bytes_deduplicated_chunks, 0);
  const std::string shard = ReadFileOrDie(absl::StrCat(prefix, ".", kShard));
  for (const v1::FileInfo& f : pushed->files()) {
    if (f.name() == kShard) {
      EXPECT_EQ(f.chunked_sha256(), ChunkedSha256Hex(shard));
    }
  }
  const std::string dir = tmp_.Join("r");
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  EXPECT_TRUE(ReadFileOrDie(absl::StrCat(dir, "/model.ckpt-1.", kShard)) == shard);
}

TEST_F(PipelinedPushTest, TheSameShardUnderANewStepIsNamedChunkByChunk) {
  const std::string prefix = Make("s1", 1);
  PushStats first;
  ASSERT_TRUE(Push("m", prefix, &first).ok());
  PushStats second;
  PushOptions options;
  options.step = 2;
  absl::StatusOr<v1::Checkpoint> pushed = Push("m", prefix, &second, options);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(second.bytes_sent, 0);
  // The shard was announced without a digest and found held window by window; the
  // small files were digested first and found held whole.
  EXPECT_EQ(second.bytes_deduplicated_chunks, Size(prefix, kShard));
  EXPECT_EQ(second.bytes_deduplicated_files,
            Size(prefix, "index") + Size(prefix, "meta"));
  EXPECT_EQ(pushed->total_bytes(), Total(prefix));
}

TEST_F(PipelinedPushTest, AChangedLayerSendsOnlyItsChunk) {
  ASSERT_TRUE(Push("m", Make("s1", 1), nullptr).ok());
  const std::string next = Make("s2", 2, /*changed=*/5);
  PushStats stats;
  ASSERT_TRUE(Push("m", next, &stats).ok());
  // Tensor 5 is chunk 5 of the shard (the index changed too: it holds the CRCs).
  EXPECT_LE(stats.bytes_sent, kMiB + Size(next, "index"));
  EXPECT_GE(stats.bytes_deduplicated_chunks, Size(next, kShard) - kMiB);
  EXPECT_EQ(
      stats.bytes_sent + stats.bytes_deduplicated_chunks + stats.bytes_deduplicated_files,
      Total(next));
  const std::string dir = tmp_.Join("r");
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  EXPECT_TRUE(ReadFileOrDie(absl::StrCat(dir, "/model.ckpt-2.", kShard)) ==
              ReadFileOrDie(absl::StrCat(next, ".", kShard)));
}

// Writers of an upload begun without files (a chief and its workers, Client::PutFile):
// a shard larger than one window goes out announced by its size and digested on the
// way, its digest at the end; the upload learns every file and commits it whole.
TEST_F(PipelinedPushTest, WritersOfAnUploadBegunWithoutFilesSendTheirShardsInOnePass) {
  const std::string prefix = Make("s1", 1);
  for (int64_t step : {1, 2}) {  // the second time the server holds every chunk
    v1::BeginUploadRequest begin;
    begin.set_model("m");
    begin.set_step(step);
    absl::StatusOr<v1::Upload> upload = client_->BeginUpload(begin);
    ASSERT_TRUE(upload.ok()) << upload.status();
    for (const char* suffix : {"index", kShard, "meta"}) {
      absl::StatusOr<v1::PutFileResponse> put = client_->PutFile(
          upload->upload_id(), suffix, absl::StrCat(prefix, ".", suffix));
      ASSERT_TRUE(put.ok()) << suffix << ": " << put.status();
      EXPECT_TRUE(put->complete()) << suffix;
      EXPECT_EQ(put->held_bytes(), Size(prefix, suffix));
    }
    absl::StatusOr<v1::Checkpoint> committed = client_->CommitUpload(upload->upload_id());
    ASSERT_TRUE(committed.ok()) << committed.status();
    EXPECT_EQ(committed->total_bytes(), Total(prefix));
    for (const v1::FileInfo& f : committed->files()) {
      if (f.name() == kShard) {
        EXPECT_EQ(f.chunked_sha256(),
                  ChunkedSha256Hex(ReadFileOrDie(absl::StrCat(prefix, ".", kShard))));
      }
    }
  }
  const std::string dir = tmp_.Join("r");
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  EXPECT_TRUE(ReadFileOrDie(absl::StrCat(dir, "/model.ckpt-2.", kShard)) ==
              ReadFileOrDie(absl::StrCat(prefix, ".", kShard)));
}

TEST_F(PipelinedPushTest, WithoutChunkDeduplicationEveryByteOfTheShardIsSent) {
  const std::string prefix = Make("s1", 1);
  ASSERT_TRUE(Push("m", prefix, nullptr).ok());
  PushStats stats;
  PushOptions options;
  options.step = 2;
  options.deduplicate_chunks = false;
  ASSERT_TRUE(Push("m", prefix, &stats, options).ok());
  EXPECT_EQ(stats.bytes_sent, Size(prefix, kShard));
  EXPECT_EQ(stats.bytes_deduplicated_chunks, 0);
}

// The step exists: every file is digested first, so the server recognises identical
// content before anything is sent (as before the pipeline).
TEST_F(PipelinedPushTest, RePushingAnExistingStepIsANoOpThatSendsNothing) {
  const std::string prefix = Make("s1", 1);
  ASSERT_TRUE(Push("m", prefix, nullptr).ok());
  PushStats stats;
  absl::StatusOr<v1::Checkpoint> again = Push("m", prefix, &stats);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->step(), 1);
  EXPECT_EQ(stats.bytes_sent, 0);
  EXPECT_EQ(stats.bytes_deduplicated_files, Total(prefix));
}

TEST_F(PipelinedPushTest, OtherContentForAnExistingStepIsRefusedUnlessOverwritten) {
  ASSERT_TRUE(Push("m", Make("s1", 1), nullptr).ok());
  const std::string other = Make("s1b", 1, /*changed=*/0);
  absl::StatusOr<v1::Checkpoint> refused = Push("m", other, nullptr);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kAlreadyExists)
      << refused.status();
  EXPECT_THAT(refused.status().message(), HasSubstr("--overwrite"));
  PushOptions overwrite;
  overwrite.overwrite = true;
  PushStats stats;
  ASSERT_TRUE(Push("m", other, &stats, overwrite).ok());
  EXPECT_LE(stats.bytes_sent, kMiB + Size(other, "index"));
  const std::string dir = tmp_.Join("r");
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  EXPECT_TRUE(ReadFileOrDie(absl::StrCat(dir, "/model.ckpt-1.", kShard)) ==
              ReadFileOrDie(absl::StrCat(other, ".", kShard)));
}

}  // namespace
}  // namespace mgreg::testing
