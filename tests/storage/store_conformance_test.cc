// The Store contract (storage/store.h), checked against every implementation.
#include <atomic>
#include <cstdlib>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#ifdef MGREG_WITH_RADOS
#include "storage/rados/rados_store.h"
#endif
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::Bytes;
using ::mgreg::testing::MakeFile;
using ::mgreg::testing::MakeRequest;
using ::mgreg::testing::Push;
using ::mgreg::testing::RefOf;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::TestFile;

struct Backend {
  std::string name;
  std::function<std::unique_ptr<Store>(const std::string& dir, int64_t event_window)>
      open;
  // Why this backend cannot run here ("" if it can); the test is skipped with it.
  std::function<std::string()> unavailable = [] { return std::string(); };
};

class StoreConformanceTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    if (std::string why = GetParam().unavailable(); !why.empty()) GTEST_SKIP() << why;
    store_ = GetParam().open(dir_.Join("store"), 100000);
    ASSERT_NE(store_, nullptr);
  }

  // Replaces store_ with a new, empty store keeping only `event_window` events.
  void OpenWithEventWindow(int64_t event_window) {
    store_.reset();
    store_ = GetParam().open(dir_.Join(absl::StrCat("store-window-", event_window)),
                             event_window);
    ASSERT_NE(store_, nullptr);
  }

  // Every retained event.
  std::vector<storage::Event> Events() {
    auto page = store_->ReadEvents(0, 0);
    EXPECT_TRUE(page.ok()) << page.status();
    return page.ok() ? page->events : std::vector<storage::Event>{};
  }

  StoreStats Stats() {
    auto s = store_->GetStats();
    EXPECT_TRUE(s.ok()) << s.status();
    return s.ok() ? *s : StoreStats{};
  }

  TempDir dir_;
  std::unique_ptr<Store> store_;
};

absl::Status StatusOf(const absl::Status& s) { return s; }
template <typename T>
absl::Status StatusOf(const absl::StatusOr<T>& s) {
  return s.status();
}
#define ASSERT_OK(expr)                           \
  do {                                            \
    const absl::Status mgreg_s_ = StatusOf(expr); \
    ASSERT_TRUE(mgreg_s_.ok()) << mgreg_s_;       \
  } while (0)
#define EXPECT_CODE(expr, want) EXPECT_EQ(StatusOf(expr).code(), absl::StatusCode::want)

TEST_P(StoreConformanceTest, CommitStampsTimeAndRevisionAndGetReturnsTheRecord) {
  auto r =
      Push(*store_, "resnet", 1000, {{"index", "idx"}, {"data-00000-of-00001", "xyz"}});
  ASSERT_OK(r);
  EXPECT_FALSE(r->unchanged);
  EXPECT_GT(r->record.commit_time_micros(), 0);
  EXPECT_EQ(r->record.revision(), 1);
  auto got = store_->GetCheckpoint("resnet", 1000);
  ASSERT_OK(got);
  EXPECT_EQ(got->SerializeAsString(), r->record.SerializeAsString());
  ASSERT_EQ(got->files_size(), 2);
  EXPECT_EQ(got->files(0).name(), "data-00000-of-00001");
  EXPECT_EQ(got->basename(), "model.ckpt");
  auto latest = store_->GetLatest("resnet");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 1000);
}

TEST_P(StoreConformanceTest, CommittedBytesAreReadableThroughBlobAndChunks) {
  const std::string content = Bytes(5000, 1);
  ASSERT_OK(Push(*store_, "m", 1, {{"index", content}}));
  auto blob = store_->GetBlob(Sha256Hex(content));
  ASSERT_OK(blob);
  EXPECT_EQ(blob->size(), 5000);
  std::string joined;
  for (const auto& c : blob->chunks()) {
    auto bytes = store_->ReadChunk(c);
    ASSERT_OK(bytes);
    joined += *bytes;
  }
  EXPECT_EQ(joined, content);
}

TEST_P(StoreConformanceTest, RecommitWithSameFilesIsUnchangedAndWritesNothing) {
  auto first = Push(*store_, "m", 5, {{"index", "a"}});
  ASSERT_OK(first);
  TestFile f = MakeFile("index", "a");
  CommitRequest again = MakeRequest("m", 5, {f});
  again.record.mutable_metadata()->insert({"loss", "0.1"});
  auto second = store_->Commit(again, nullptr);
  ASSERT_OK(second);
  EXPECT_TRUE(second->unchanged);
  EXPECT_EQ(second->record.SerializeAsString(), first->record.SerializeAsString());
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, RecommitWithOtherFilesReturnsAlreadyExists) {
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "a"}}));
  EXPECT_CODE(Push(*store_, "m", 5, {{"index", "b"}}), kAlreadyExists);
  auto got = store_->GetCheckpoint("m", 5);
  ASSERT_OK(got);
  EXPECT_EQ(got->files(0).sha256(), Sha256Hex("a"));
}

TEST_P(StoreConformanceTest, RecommitWithOtherBasenameReturnsAlreadyExists) {
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "a"}}));
  CommitRequest req = MakeRequest("m", 5, {MakeFile("index", "a")});
  req.record.set_basename("other.ckpt");
  EXPECT_CODE(store_->Commit(req, nullptr), kAlreadyExists);
}

TEST_P(StoreConformanceTest, OverwriteReplacesTheStepAndFreesTheOldBytes) {
  const std::string old_bytes = Bytes(3000, 1), new_bytes = Bytes(2000, 2);
  ASSERT_OK(Push(*store_, "m", 5, {{"index", old_bytes}}));
  EXPECT_EQ(Stats().chunk_bytes, 3000);
  auto r = Push(*store_, "m", 5, {{"index", new_bytes}}, /*overwrite=*/true);
  ASSERT_OK(r);
  EXPECT_FALSE(r->unchanged);
  EXPECT_EQ(r->record.revision(), 2);
  StoreStats s = Stats();
  EXPECT_EQ(s.chunk_bytes, 2000);
  EXPECT_EQ(s.blobs, 1);
  EXPECT_EQ(s.checkpoints, 1);
  EXPECT_CODE(store_->GetBlob(Sha256Hex(old_bytes)), kNotFound);
  EXPECT_CODE(store_->ReadChunk(RefOf(old_bytes.substr(0, 1024))), kNotFound);
  auto got = store_->GetLatest("m");
  ASSERT_OK(got);
  EXPECT_EQ(got->files(0).sha256(), Sha256Hex(new_bytes));
}

TEST_P(StoreConformanceTest, OverwriteKeepsBytesTheNewRecordStillUses) {
  const std::string shared = Bytes(2048, 7);
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "i1"}, {"meta", shared}}));
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "i2"}, {"meta", shared}}, true));
  auto blob = store_->GetBlob(Sha256Hex(shared));
  ASSERT_OK(blob);
  for (const auto& c : blob->chunks()) {
    auto b = store_->ReadChunk(c);
    EXPECT_TRUE(b.ok()) << b.status();
  }
  EXPECT_EQ(Stats().chunk_bytes, 2048 + 2);
}

TEST_P(StoreConformanceTest, GetCheckpointOfUnknownStepOrModelReturnsNotFound) {
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "a"}}));
  EXPECT_CODE(store_->GetCheckpoint("m", 6), kNotFound);
  EXPECT_CODE(store_->GetCheckpoint("other", 5), kNotFound);
}

TEST_P(StoreConformanceTest, GetLatestOfUnknownModelReturnsNotFound) {
  EXPECT_CODE(store_->GetLatest("nobody"), kNotFound);
}

TEST_P(StoreConformanceTest, LatestIsTheHighestStepAndALowerCommitDoesNotMoveIt) {
  ASSERT_OK(Push(*store_, "m", 10, {{"index", "10"}}));
  ASSERT_OK(Push(*store_, "m", 20, {{"index", "20"}}));
  ASSERT_OK(Push(*store_, "m", 15, {{"index", "15"}}));
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 20);
  EXPECT_EQ(latest->files(0).sha256(), Sha256Hex("20"));
  auto models = store_->ListModels("", 10);
  ASSERT_OK(models);
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].latest_step(), 20);
  EXPECT_EQ((*models)[0].checkpoint_count(), 3);
}

TEST_P(StoreConformanceTest, DeletingTheLatestMovesItToTheHighestRemainingStep) {
  for (int step : {1, 300, 2}) {
    ASSERT_OK(Push(*store_, "m", step, {{"index", absl::StrCat(step)}}));
  }
  ASSERT_OK(store_->DeleteCheckpoint("m", 300));
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 2);
  EXPECT_EQ(latest->files(0).sha256(), Sha256Hex("2"));
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));  // not the latest: latest stays
  latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 2);
  auto models = store_->ListModels("", 0);
  ASSERT_OK(models);
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].checkpoint_count(), 1);
}

TEST_P(StoreConformanceTest, ModelDisappearsWhenItsLastStepIsDeleted) {
  ASSERT_OK(Push(*store_, "a", 1, {{"index", "a1"}}));
  ASSERT_OK(Push(*store_, "b", 1, {{"index", "b1"}}));
  ASSERT_OK(store_->DeleteCheckpoint("a", 1));
  auto models = store_->ListModels("", 10);
  ASSERT_OK(models);
  ASSERT_EQ(models->size(), 1u);
  EXPECT_EQ((*models)[0].name(), "b");
  EXPECT_CODE(store_->GetLatest("a"), kNotFound);
  EXPECT_CODE(store_->ListCheckpoints("a", std::nullopt, 10), kNotFound);
  StoreStats s = Stats();
  EXPECT_EQ(s.models, 1);
  EXPECT_EQ(s.checkpoints, 1);
  // The model can come back.
  ASSERT_OK(Push(*store_, "a", 7, {{"index", "a7"}}));
  auto latest = store_->GetLatest("a");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 7);
}

// VisitLatest lends what GetLatest and GetModel give, read together (GetLatestCheckpoint
// answers from it); NOT_FOUND without calling the visitor where GetLatest has nothing.
TEST_P(StoreConformanceTest, VisitLatestLendsTheLatestStepAndItsModelRecord) {
  int visits = 0;
  storage::CheckpointRecord seen;
  storage::ModelRecord seen_model;
  auto visit = [&](const storage::CheckpointRecord& latest,
                   const storage::ModelRecord& model) {
    ++visits;
    seen = latest;
    seen_model = model;
  };
  EXPECT_CODE(store_->VisitLatest("m", visit), kNotFound);
  EXPECT_EQ(visits, 0);
  ASSERT_OK(Push(*store_, "m", 10, {{"index", "10"}}));
  ASSERT_OK(Push(*store_, "m", 20, {{"index", "20"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 20));
  ASSERT_OK(store_->SetAlias("m", "old", 10));
  ASSERT_OK(store_->SetPinned("m", 20, true));
  ASSERT_OK(store_->VisitLatest("m", visit));
  EXPECT_EQ(visits, 1);
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(seen.SerializeAsString(), latest->SerializeAsString());
  EXPECT_EQ(seen.step(), 20);
  EXPECT_TRUE(seen.pinned());
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(seen_model.latest_step(), 20);
  EXPECT_EQ(seen_model.aliases().size(), 2u);
  EXPECT_EQ(seen_model.aliases().at("best"), 20);
  EXPECT_EQ(seen_model.checkpoint_count(), model->checkpoint_count());
  // The latest deleted (its alias moved off first): the next highest step is lent.
  ASSERT_OK(store_->RemoveAlias("m", "best"));
  ASSERT_OK(store_->DeleteCheckpoint("m", 20));
  ASSERT_OK(store_->VisitLatest("m", visit));
  EXPECT_EQ(visits, 2);
  EXPECT_EQ(seen.step(), 10);
  EXPECT_EQ(seen_model.aliases().size(), 1u);
  EXPECT_EQ(seen_model.aliases().at("old"), 10);
  // No step left: NOT_FOUND again, as GetLatest.
  ASSERT_OK(store_->RemoveAlias("m", "old"));
  ASSERT_OK(store_->DeleteCheckpoint("m", 10));
  EXPECT_CODE(store_->VisitLatest("m", visit), kNotFound);
  EXPECT_CODE(store_->GetLatest("m"), kNotFound);
  EXPECT_EQ(visits, 2);
}

TEST_P(StoreConformanceTest, DeleteOfUnknownModelOrStepReturnsNotFound) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "a"}}));
  EXPECT_CODE(store_->DeleteCheckpoint("m", 2), kNotFound);
  EXPECT_CODE(store_->DeleteCheckpoint("x", 1), kNotFound);
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, ListModelsIsInBytewiseOrderAndPaginates) {
  for (const char* name : {"team-a/resnet", "b", "a/b", "a", "A", "a.b"}) {
    ASSERT_OK(Push(*store_, name, 1, {{"index", name}}));
  }
  std::vector<std::string> all;
  std::string after;
  while (true) {
    auto page = store_->ListModels(after, 2);
    ASSERT_OK(page);
    ASSERT_LE(page->size(), 2u);
    if (page->empty()) break;
    for (const auto& m : *page) all.push_back(m.name());
    after = page->back().name();
  }
  EXPECT_EQ(all,
            (std::vector<std::string>{"A", "a", "a.b", "a/b", "b", "team-a/resnet"}));
}

TEST_P(StoreConformanceTest, ListCheckpointsIsAscendingAndPaginates) {
  const std::vector<int64_t> steps = {int64_t{1} << 40, 0, 256, 5, 255, 10};
  for (int64_t s : steps) ASSERT_OK(Push(*store_, "m", s, {{"index", absl::StrCat(s)}}));
  ASSERT_OK(Push(*store_, "m/sub", 3, {{"index", "other model"}}));
  ASSERT_OK(Push(*store_, "m-", 4, {{"index", "other model 2"}}));
  std::vector<int64_t> seen;
  std::optional<int64_t> after;
  while (true) {
    auto page = store_->ListCheckpoints("m", after, 4);
    ASSERT_OK(page);
    if (page->empty()) break;
    for (const auto& r : *page) {
      EXPECT_EQ(r.model(), "m");
      seen.push_back(r.step());
    }
    after = page->back().step();
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{0, 5, 10, 255, 256, int64_t{1} << 40}));
  auto from = store_->ListCheckpoints("m", 7, 2);
  ASSERT_OK(from);
  ASSERT_EQ(from->size(), 2u);
  EXPECT_EQ((*from)[0].step(), 10);
  EXPECT_EQ((*from)[1].step(), 255);
}

TEST_P(StoreConformanceTest, ListCheckpointsOfUnknownModelReturnsNotFound) {
  EXPECT_CODE(store_->ListCheckpoints("nobody", std::nullopt, 10), kNotFound);
}

TEST_P(StoreConformanceTest, SameBlobAtAHundredStepsIsStoredOnce) {
  const std::string graph = Bytes(10000, 3);
  for (int step = 0; step < 100; ++step) {
    ASSERT_OK(Push(*store_, "m", step,
                   {{"index", absl::StrCat("index ", step)}, {"meta", graph}}));
  }
  StoreStats s = Stats();
  EXPECT_EQ(s.checkpoints, 100);
  EXPECT_EQ(s.blobs, 101);
  int64_t index_bytes = 0;
  for (int step = 0; step < 100; ++step)
    index_bytes += absl::StrCat("index ", step).size();
  EXPECT_EQ(s.chunk_bytes, 10000 + index_bytes);
  EXPECT_EQ(s.staged_chunks, 0);
  // Deleting all but one step keeps the graph.
  for (int step = 0; step < 99; ++step) ASSERT_OK(store_->DeleteCheckpoint("m", step));
  s = Stats();
  EXPECT_EQ(s.chunk_bytes,
            10000 + static_cast<int64_t>(absl::StrCat("index ", 99).size()));
  ASSERT_OK(store_->GetBlob(Sha256Hex(graph)));
}

TEST_P(StoreConformanceTest, ChunkSharedByTwoBlobsIsFreedOnlyWhenBothAreGone) {
  const std::string common = Bytes(1024, 9);
  const std::string f1 = common + "tail one", f2 = common + "tail two!";
  ASSERT_OK(Push(*store_, "m", 1, {{"index", f1}}));
  ASSERT_OK(Push(*store_, "m", 2, {{"index", f2}}));
  StoreStats s = Stats();
  EXPECT_EQ(s.chunks, 3);
  EXPECT_EQ(s.chunk_bytes, 1024 + 8 + 9);
  auto freed = store_->DeleteCheckpoint("m", 1);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 8);
  ASSERT_OK(store_->ReadChunk(RefOf(common)));
  freed = store_->DeleteCheckpoint("m", 2);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 1024 + 9);
  EXPECT_CODE(store_->ReadChunk(RefOf(common)), kNotFound);
  auto has = store_->HasChunk(RefOf(common));
  ASSERT_OK(has);
  EXPECT_FALSE(*has);
  s = Stats();
  EXPECT_EQ(s.chunks, 0);
  EXPECT_EQ(s.chunk_bytes, 0);
  EXPECT_EQ(s.blobs, 0);
}

TEST_P(StoreConformanceTest, DeleteReturnsTheBytesFreed) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", Bytes(100, 1)}, {"meta", Bytes(5000, 2)}}));
  ASSERT_OK(Push(*store_, "m", 2, {{"index", Bytes(200, 3)}, {"meta", Bytes(5000, 2)}}));
  auto freed = store_->DeleteCheckpoint("m", 1);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 100);
  freed = store_->DeleteCheckpoint("m", 2);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 5200);
}

TEST_P(StoreConformanceTest, DestroyingAStagingAreaDeletesItsChunks) {
  const std::string small = Bytes(100, 1), big = Bytes(kMaxChunkBytes, 2);
  {
    auto area = store_->NewStagingArea();
    ASSERT_OK(area->PutChunk(RefOf(small), small));
    ASSERT_OK(area->PutChunk(RefOf(big), big));
    ASSERT_OK(area->PutChunk(RefOf(big), big));  // again: held once
    EXPECT_EQ(Stats().staged_chunks, 2);
    auto has = store_->HasChunk(RefOf(big));
    ASSERT_OK(has);
    EXPECT_TRUE(*has);
    auto read = store_->ReadChunk(RefOf(small));
    ASSERT_OK(read);
    EXPECT_EQ(*read, small);
  }
  StoreStats s = Stats();
  EXPECT_EQ(s.staged_chunks, 0);
  EXPECT_EQ(s.chunks, 0);
  for (const std::string* c : {&small, &big}) {
    auto has = store_->HasChunk(RefOf(*c));
    ASSERT_OK(has);
    EXPECT_FALSE(*has);
    EXPECT_CODE(store_->ReadChunk(RefOf(*c)), kNotFound);
  }
}

TEST_P(StoreConformanceTest, TwoStagingAreasHoldingTheSameChunkKeepItUntilBothAreGone) {
  const std::string bytes = Bytes(2000, 4);
  auto a = store_->NewStagingArea();
  auto b = store_->NewStagingArea();
  ASSERT_OK(a->PutChunk(RefOf(bytes), bytes));
  ASSERT_OK(b->PutChunk(RefOf(bytes), bytes));
  EXPECT_EQ(Stats().staged_chunks, 1);
  a.reset();
  auto has = store_->HasChunk(RefOf(bytes));
  ASSERT_OK(has);
  EXPECT_TRUE(*has);
  // Commit through b still finds it staged.
  TestFile f = MakeFile("index", bytes, 4096);
  ASSERT_OK(store_->Commit(MakeRequest("m", 1, {f}), b.get()));
  b.reset();
  EXPECT_EQ(Stats().staged_chunks, 0);
  auto read = store_->ReadChunk(RefOf(bytes));
  ASSERT_OK(read);
  EXPECT_EQ(*read, bytes);
}

TEST_P(StoreConformanceTest, StagingAreaHoldingAChunkWhoseLastBlobIsDeletedKeepsIt) {
  const std::string bytes = Bytes(3000, 5);
  ASSERT_OK(Push(*store_, "m", 1, {{"index", bytes}}, false, 4096));
  auto area = store_->NewStagingArea();
  ASSERT_OK(area->HoldExistingChunk(RefOf(bytes)));
  auto freed = store_->DeleteCheckpoint("m", 1);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 0);
  StoreStats s = Stats();
  EXPECT_EQ(s.chunks, 0);
  EXPECT_EQ(s.staged_chunks, 1);
  // Still committable through the area that holds it.
  ASSERT_OK(
      store_->Commit(MakeRequest("m", 2, {MakeFile("index", bytes, 4096)}), area.get()));
  area.reset();
  EXPECT_EQ(Stats().chunk_bytes, 3000);
  ASSERT_OK(store_->DeleteCheckpoint("m", 2));
  auto held = store_->NewStagingArea();
  EXPECT_CODE(held->HoldExistingChunk(RefOf(bytes)), kNotFound);
  EXPECT_EQ(Stats().staged_chunks, 0);
}

TEST_P(StoreConformanceTest, HoldExistingChunkLetsANewBlobReuseStoredBytes) {
  const std::string part = Bytes(1024, 6);
  ASSERT_OK(Push(*store_, "m", 1, {{"index", part}}));
  const std::string bigger = part + "more";
  TestFile f = MakeFile("index", bigger);  // chunk 0 == part
  auto area = store_->NewStagingArea();
  ASSERT_OK(area->HoldExistingChunk(f.blob.chunks(0)));
  ASSERT_OK(area->PutChunk(f.blob.chunks(1), f.chunks[1]));
  ASSERT_OK(store_->Commit(MakeRequest("m", 2, {f}), area.get()));
  EXPECT_EQ(Stats().chunk_bytes, 1024 + 4);
}

TEST_P(StoreConformanceTest, HoldExistingChunkOfAnUnknownChunkReturnsNotFound) {
  auto area = store_->NewStagingArea();
  EXPECT_CODE(area->HoldExistingChunk(RefOf("never stored")), kNotFound);
}

TEST_P(StoreConformanceTest, PutChunkRejectsOversizedDataAndWrongSize) {
  auto area = store_->NewStagingArea();
  const std::string too_big(kMaxChunkBytes + 1, 'x');
  EXPECT_CODE(area->PutChunk(RefOf(too_big), too_big), kInvalidArgument);
  storage::ChunkRef ref = RefOf("abc");
  ref.set_size(4);
  EXPECT_CODE(area->PutChunk(ref, "abc"), kInvalidArgument);
  EXPECT_EQ(Stats().staged_chunks, 0);
}

TEST_P(StoreConformanceTest, CommitOfAFileWhoseBlobIsMissingReturnsFailedPrecondition) {
  CommitRequest req = MakeRequest("m", 1, {MakeFile("index", "abc")});
  req.new_blobs.clear();
  EXPECT_CODE(store_->Commit(req, nullptr), kFailedPrecondition);
  EXPECT_CODE(store_->GetLatest("m"), kNotFound);
  EXPECT_EQ(Stats().revision, 0);
}

TEST_P(StoreConformanceTest,
       CommitOfABlobWhoseChunkIsNotStagedReturnsFailedPrecondition) {
  TestFile f = MakeFile("index", Bytes(3000, 1));
  auto area = store_->NewStagingArea();
  ASSERT_OK(area->PutChunk(f.blob.chunks(0), f.chunks[0]));
  ASSERT_OK(area->PutChunk(f.blob.chunks(1), f.chunks[1]));
  // The third chunk is staged, but in another upload's area.
  auto other = store_->NewStagingArea();
  ASSERT_OK(other->PutChunk(f.blob.chunks(2), f.chunks[2]));
  EXPECT_CODE(store_->Commit(MakeRequest("m", 1, {f}), area.get()), kFailedPrecondition);
  EXPECT_CODE(store_->Commit(MakeRequest("m", 1, {f}), nullptr), kFailedPrecondition);
  EXPECT_CODE(store_->GetCheckpoint("m", 1), kNotFound);
  EXPECT_CODE(store_->GetBlob(f.blob.sha256()), kNotFound);
  ASSERT_OK(area->PutChunk(f.blob.chunks(2), f.chunks[2]));
  ASSERT_OK(store_->Commit(MakeRequest("m", 1, {f}), area.get()));
}

TEST_P(StoreConformanceTest, MalformedRecordsReturnInvalidArgument) {
  TestFile a = MakeFile("data-00000-of-00001", "aaa"), b = MakeFile("index", "bbb");
  auto area = store_->NewStagingArea();
  for (const TestFile* f : {&a, &b})
    ASSERT_OK(area->PutChunk(f->blob.chunks(0), f->chunks[0]));

  CommitRequest no_files = MakeRequest("m", 1, {a});
  no_files.record.clear_files();
  no_files.new_blobs.clear();
  EXPECT_CODE(store_->Commit(no_files, area.get()), kInvalidArgument);

  CommitRequest unsorted = MakeRequest("m", 1, {a, b});
  unsorted.record.mutable_files()->SwapElements(0, 1);
  EXPECT_CODE(store_->Commit(unsorted, area.get()), kInvalidArgument);

  CommitRequest duplicated = MakeRequest("m", 1, {a});
  *duplicated.record.add_files() = a.record;
  EXPECT_CODE(store_->Commit(duplicated, area.get()), kInvalidArgument);

  CommitRequest bad_sizes = MakeRequest("m", 1, {a});
  bad_sizes.new_blobs[0].set_size(4);
  bad_sizes.record.mutable_files(0)->set_size(4);
  EXPECT_CODE(store_->Commit(bad_sizes, area.get()), kInvalidArgument);

  CommitRequest file_size_differs = MakeRequest("m", 1, {a});
  file_size_differs.record.mutable_files(0)->set_size(2);
  EXPECT_CODE(store_->Commit(file_size_differs, area.get()), kInvalidArgument);

  CommitRequest bad_model = MakeRequest("bad model!", 1, {a});
  EXPECT_CODE(store_->Commit(bad_model, area.get()), kInvalidArgument);

  CommitRequest negative_step = MakeRequest("m", -1, {a});
  EXPECT_CODE(store_->Commit(negative_step, area.get()), kInvalidArgument);

  CommitRequest bad_digest = MakeRequest("m", 1, {a});
  bad_digest.record.mutable_files(0)->set_sha256("XYZ");
  EXPECT_CODE(store_->Commit(bad_digest, area.get()), kInvalidArgument);

  EXPECT_EQ(Stats().revision, 0);
  EXPECT_EQ(Stats().checkpoints, 0);
  ASSERT_OK(store_->Commit(MakeRequest("m", 1, {a, b}), area.get()));
}

TEST_P(StoreConformanceTest, EmptyFileCommitsWithoutChunks) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", ""}, {"meta", "g"}}));
  auto blob = store_->GetBlob(Sha256Hex(""));
  ASSERT_OK(blob);
  EXPECT_EQ(blob->chunks_size(), 0);
}

TEST_P(StoreConformanceTest,
       GetBlobOfUnknownDigestAndReadChunkOfUnknownChunkReturnNotFound) {
  EXPECT_CODE(store_->GetBlob(Sha256Hex("nothing")), kNotFound);
  EXPECT_CODE(store_->ReadChunk(RefOf("nothing")), kNotFound);
  auto has = store_->HasChunk(RefOf("nothing"));
  ASSERT_OK(has);
  EXPECT_FALSE(*has);
}

TEST_P(StoreConformanceTest, RevisionIncrementsOnEveryCommitAndDelete) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  auto r2 = Push(*store_, "n", 1, {{"index", "2"}});
  ASSERT_OK(r2);
  EXPECT_EQ(r2->record.revision(), 2);
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));
  EXPECT_EQ(Stats().revision, 3);
  auto r4 = Push(*store_, "m", 1, {{"index", "1"}});
  ASSERT_OK(r4);
  EXPECT_EQ(r4->record.revision(), 4);
  EXPECT_EQ(Stats().revision, 4);
}

TEST_P(StoreConformanceTest, ConcurrentCommitsAndALatestReaderSeeNoTornState) {
  constexpr int kWriters = 4, kSteps = 25;
  auto content = [](int w, int step) {
    return absl::StrCat("model ", w, " step ", step);
  };
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::thread reader([&] {
    while (!done.load()) {
      for (int w = 0; w < kWriters; ++w) {
        auto latest = store_->GetLatest(absl::StrCat("m", w));
        if (!latest.ok()) continue;
        ++reads;
        // The latest record is whole: its file is the content written for its step.
        if (latest->files_size() != 2 ||
            latest->files(0).sha256() != Sha256Hex(content(w, latest->step()))) {
          ++torn;
        }
      }
    }
  });
  std::vector<std::thread> writers;
  std::atomic<int> failures{0};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      for (int step = 0; step < kSteps; ++step) {
        // "meta" is shared by every writer: concurrent dedup of the same blob.
        auto r = Push(*store_, absl::StrCat("m", w), step,
                      {{"index", content(w, step)}, {"meta", "shared graph"}});
        if (!r.ok()) {
          ADD_FAILURE() << r.status();
          ++failures;
        }
      }
    });
  }
  for (auto& t : writers) t.join();
  done = true;
  reader.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(torn.load(), 0);
  StoreStats s = Stats();
  EXPECT_EQ(s.models, kWriters);
  EXPECT_EQ(s.checkpoints, kWriters * kSteps);
  EXPECT_EQ(s.blobs, kWriters * kSteps + 1);
  EXPECT_EQ(s.revision, kWriters * kSteps);
  EXPECT_EQ(s.staged_chunks, 0);
  for (int w = 0; w < kWriters; ++w) {
    auto latest = store_->GetLatest(absl::StrCat("m", w));
    ASSERT_OK(latest);
    EXPECT_EQ(latest->step(), kSteps - 1);
  }
}

// ---- Events. ------------------------------------------------------------------------

void ExpectEvent(const storage::Event& e, int64_t revision, storage::Event::Type type,
                 const std::string& model, int64_t step, const std::string& alias = "") {
  EXPECT_EQ(e.revision(), revision) << e.DebugString();
  EXPECT_EQ(e.type(), type) << e.DebugString();
  EXPECT_EQ(e.model(), model) << e.DebugString();
  EXPECT_EQ(e.step(), step) << e.DebugString();
  EXPECT_EQ(e.alias(), alias) << e.DebugString();
  EXPECT_GT(e.time_micros(), 0) << e.DebugString();
}

TEST_P(StoreConformanceTest, CommitsDeletesAndAliasChangesAppendOneEventEachInOrder) {
  auto c1 = Push(*store_, "m", 1, {{"index", "1"}});
  ASSERT_OK(c1);
  ASSERT_OK(Push(*store_, "m", 2, {{"index", "2"}}));
  auto set = store_->SetAlias("m", "best", 1);
  ASSERT_OK(set);
  EXPECT_EQ(*set, 3);
  auto moved = store_->SetAlias("m", "best", 2);
  ASSERT_OK(moved);
  EXPECT_EQ(*moved, 4);
  auto removed = store_->RemoveAlias("m", "best");
  ASSERT_OK(removed);
  EXPECT_EQ(*removed, 5);
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));
  auto overwritten = Push(*store_, "m", 2, {{"index", "2b"}}, /*overwrite=*/true);
  ASSERT_OK(overwritten);

  auto page = store_->ReadEvents(0, 0);
  ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 7u);
  using E = storage::Event;
  ExpectEvent(page->events[0], 1, E::COMMITTED, "m", 1);
  EXPECT_EQ(page->events[0].time_micros(), c1->record.commit_time_micros());
  ExpectEvent(page->events[1], 2, E::COMMITTED, "m", 2);
  ExpectEvent(page->events[2], 3, E::ALIAS_SET, "m", 1, "best");
  ExpectEvent(page->events[3], 4, E::ALIAS_SET, "m", 2, "best");
  ExpectEvent(page->events[4], 5, E::ALIAS_REMOVED, "m", 2, "best");
  ExpectEvent(page->events[5], 6, E::DELETED, "m", 1);
  ExpectEvent(page->events[6], 7, E::COMMITTED, "m", 2);
  EXPECT_FALSE(page->events[1].replaced());
  EXPECT_TRUE(page->events[6].replaced());  // the overwrite says so
  EXPECT_EQ(page->events[6].time_micros(), overwritten->record.commit_time_micros());
  EXPECT_EQ(page->oldest_revision, 1);
  EXPECT_EQ(page->current_revision, 7);
  EXPECT_EQ(Stats().revision, 7);
}

TEST_P(StoreConformanceTest, UnchangedRecommitAppendsNoEvent) {
  ASSERT_OK(Push(*store_, "m", 5, {{"index", "a"}}));
  auto again = Push(*store_, "m", 5, {{"index", "a"}});
  ASSERT_OK(again);
  EXPECT_TRUE(again->unchanged);
  EXPECT_EQ(Events().size(), 1u);
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, FailedWritesAppendNoEvent) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "a"}}));
  EXPECT_CODE(Push(*store_, "m", 1, {{"index", "b"}}), kAlreadyExists);
  EXPECT_CODE(store_->DeleteCheckpoint("m", 2), kNotFound);
  EXPECT_CODE(store_->SetAlias("m", "x", 2), kNotFound);
  EXPECT_CODE(store_->RemoveAlias("m", "x"), kNotFound);
  EXPECT_EQ(Events().size(), 1u);
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, ReadEventsPagesInAscendingRevisionOrder) {
  for (int step = 0; step < 5; ++step) {
    ASSERT_OK(Push(*store_, "m", step, {{"index", absl::StrCat(step)}}));
  }
  std::vector<int64_t> seen;
  int64_t after = 0;
  while (true) {
    auto page = store_->ReadEvents(after, 2);
    ASSERT_OK(page);
    ASSERT_LE(page->events.size(), 2u);
    EXPECT_EQ(page->current_revision, 5);
    EXPECT_EQ(page->oldest_revision, 1);
    if (page->events.empty()) break;
    for (const auto& e : page->events) {
      seen.push_back(e.revision());
      EXPECT_EQ(e.step(), e.revision() - 1);
    }
    after = page->events.back().revision();
  }
  EXPECT_EQ(seen, (std::vector<int64_t>{1, 2, 3, 4, 5}));
}

TEST_P(StoreConformanceTest, ReadEventsAfterTheCurrentRevisionIsAnEmptyPage) {
  auto empty = store_->ReadEvents(0, 10);
  ASSERT_OK(empty);
  EXPECT_TRUE(empty->events.empty());
  EXPECT_EQ(empty->oldest_revision, 0);
  EXPECT_EQ(empty->current_revision, 0);
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "a"}}));
  for (int64_t after : {int64_t{1}, int64_t{100}, INT64_MAX}) {
    auto page = store_->ReadEvents(after, 10);
    ASSERT_OK(page);
    EXPECT_TRUE(page->events.empty());
    EXPECT_EQ(page->current_revision, 1);
    EXPECT_EQ(page->oldest_revision, 1);
  }
}

TEST_P(StoreConformanceTest,
       ReadEventsAfterTrimmedEventsReturnsOutOfRangeNamingTheOldest) {
  OpenWithEventWindow(3);
  for (int step = 0; step < 5; ++step) {
    ASSERT_OK(Push(*store_, "m", step, {{"index", absl::StrCat(step)}}));
  }
  for (int64_t after : {0, 1}) {
    auto trimmed = store_->ReadEvents(after, 10);
    EXPECT_CODE(trimmed, kOutOfRange);
    EXPECT_NE(trimmed.status().message().find("resume from revision 3"),
              std::string::npos)
        << trimmed.status();
  }
  auto page = store_->ReadEvents(2, 10);
  ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[0].revision(), 3);
  EXPECT_EQ(page->events[2].revision(), 5);
  EXPECT_EQ(page->oldest_revision, 3);
  EXPECT_EQ(page->current_revision, 5);
  // A retention decision deleting more steps than the window trims in the same write.
  ASSERT_OK(store_->ApplyRetention("m", {0, 1, 2, 3}, {}, 1));
  page = store_->ReadEvents(6, 10);
  ASSERT_OK(page);
  EXPECT_EQ(page->oldest_revision, 7);
  EXPECT_EQ(page->current_revision, 9);
  ASSERT_EQ(page->events.size(), 3u);
  EXPECT_EQ(page->events[2].step(), 3);
  EXPECT_CODE(store_->ReadEvents(5, 10), kOutOfRange);
}

TEST_P(StoreConformanceTest,
       ListenerSeesEveryEventOnceInRevisionOrderFromConcurrentWriters) {
  constexpr int kWriters = 4, kSteps = 20;
  absl::Mutex mu;
  std::vector<storage::Event> heard;
  std::atomic<int> not_visible{0};
  store_->SetEventListener([&](const storage::Event& e) {
    // The write is visible to readers by the time the listener hears of it.
    auto s = store_->GetStats();
    if (!s.ok() || s->revision < e.revision()) ++not_visible;
    absl::MutexLock lock(&mu);
    heard.push_back(e);
  });
  std::vector<std::thread> writers;
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      const std::string model = absl::StrCat("m", w);
      for (int step = 0; step < kSteps; ++step) {
        auto r = Push(*store_, model, step, {{"index", absl::StrCat(model, "@", step)}});
        if (!r.ok()) ADD_FAILURE() << r.status();
        if (step % 5 == 4) {
          if (auto a = store_->SetAlias(model, "last5", step); !a.ok())
            ADD_FAILURE() << a.status();
        }
      }
      if (auto d = store_->DeleteCheckpoint(model, 0); !d.ok())
        ADD_FAILURE() << d.status();
    });
  }
  for (auto& t : writers) t.join();
  const int64_t total = kWriters * (kSteps + kSteps / 5 + 1);
  EXPECT_EQ(not_visible.load(), 0);
  {
    absl::MutexLock lock(&mu);
    ASSERT_EQ(static_cast<int64_t>(heard.size()), total);
    for (size_t i = 0; i < heard.size(); ++i) {
      EXPECT_EQ(heard[i].revision(), static_cast<int64_t>(i) + 1);
    }
    std::vector<storage::Event> stored = Events();
    ASSERT_EQ(stored.size(), heard.size());
    for (size_t i = 0; i < heard.size(); ++i) {
      EXPECT_EQ(stored[i].SerializeAsString(), heard[i].SerializeAsString());
    }
  }
  EXPECT_EQ(Stats().revision, total);
  store_->SetEventListener(nullptr);
  ASSERT_OK(Push(*store_, "m0", 100, {{"index", "after"}}));
  absl::MutexLock lock(&mu);
  EXPECT_EQ(static_cast<int64_t>(heard.size()), total);
}

// ---- Aliases. -----------------------------------------------------------------------

TEST_P(StoreConformanceTest, SetAliasCreatesAndMovesAliasesInTheModelRecord) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(Push(*store_, "m", 2, {{"index", "2"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 1));
  ASSERT_OK(store_->SetAlias("m", "prod", 1));
  ASSERT_OK(store_->SetAlias("m", "best", 2));
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  ASSERT_EQ(model->aliases_size(), 2);
  EXPECT_EQ(model->aliases().at("best"), 2);
  EXPECT_EQ(model->aliases().at("prod"), 1);
  EXPECT_EQ(model->latest_step(), 2);
  EXPECT_EQ(model->checkpoint_count(), 2);
  ASSERT_OK(store_->RemoveAlias("m", "prod"));
  model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->aliases_size(), 1);
  auto listed = store_->ListModels("", 0);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].aliases().at("best"), 2);
}

TEST_P(StoreConformanceTest, SetAliasOfAnUnknownModelOrStepReturnsNotFound) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  EXPECT_CODE(store_->SetAlias("m", "best", 2), kNotFound);
  EXPECT_CODE(store_->SetAlias("other", "best", 1), kNotFound);
  ASSERT_OK(store_->SetRetention("settings-only", storage::RetentionPolicy()));
  EXPECT_CODE(store_->SetAlias("settings-only", "best", 0), kNotFound);
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->aliases_size(), 0);
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, RemoveAliasOfAnUnknownAliasOrModelReturnsNotFound) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 1));
  EXPECT_CODE(store_->RemoveAlias("m", "prod"), kNotFound);
  EXPECT_CODE(store_->RemoveAlias("other", "best"), kNotFound);
  ASSERT_OK(store_->RemoveAlias("m", "best"));
  EXPECT_CODE(store_->RemoveAlias("m", "best"), kNotFound);
}

TEST_P(StoreConformanceTest,
       DeleteOfAnAliasedStepReturnsFailedPreconditionNamingTheAlias) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 1));
  auto r = store_->DeleteCheckpoint("m", 1);
  EXPECT_CODE(r, kFailedPrecondition);
  EXPECT_NE(r.status().message().find("'best'"), std::string::npos) << r.status();
  ASSERT_OK(store_->GetCheckpoint("m", 1));
  EXPECT_EQ(Stats().revision, 2);
  ASSERT_OK(store_->RemoveAlias("m", "best"));
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));
}

TEST_P(StoreConformanceTest, OverwriteOfAnAliasedPinnedStepNeedsForce) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 1));
  ASSERT_OK(store_->SetPinned("m", 1, true));
  const int64_t revision = Stats().revision;
  auto refused = Push(*store_, "m", 1, {{"index", "1b"}}, /*overwrite=*/true);
  EXPECT_CODE(refused, kFailedPrecondition);
  EXPECT_EQ(Stats().revision, revision);
  auto kept = store_->GetCheckpoint("m", 1);
  ASSERT_OK(kept);
  EXPECT_EQ(kept->files(0).sha256(), Sha256Hex("1"));
}

TEST_P(StoreConformanceTest, ForcedOverwriteOfAnAliasedPinnedStepKeepsTheAliasAndThePin) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(store_->SetAlias("m", "best", 1));
  ASSERT_OK(store_->SetPinned("m", 1, true));
  auto r = Push(*store_, "m", 1, {{"index", "1b"}}, /*overwrite=*/true, 1024,
                /*force=*/true);
  ASSERT_OK(r);
  EXPECT_TRUE(r->record.pinned());
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->aliases().at("best"), 1);
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_TRUE(latest->pinned());
  EXPECT_EQ(latest->files(0).sha256(), Sha256Hex("1b"));
}

// ---- Pins. --------------------------------------------------------------------------

TEST_P(StoreConformanceTest, SetPinnedMarksTheStepWithoutBumpingTheRevision) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(Push(*store_, "m", 2, {{"index", "2"}}));
  ASSERT_OK(store_->SetPinned("m", 2, true));
  for (auto r : {store_->GetCheckpoint("m", 2), store_->GetLatest("m")}) {
    ASSERT_OK(r);
    EXPECT_TRUE(r->pinned());
    EXPECT_EQ(r->revision(), 2);
  }
  auto list = store_->ListCheckpoints("m", std::nullopt, 0);
  ASSERT_OK(list);
  ASSERT_EQ(list->size(), 2u);
  EXPECT_FALSE((*list)[0].pinned());
  EXPECT_TRUE((*list)[1].pinned());
  ASSERT_OK(store_->SetPinned("m", 2, false));
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_FALSE(latest->pinned());
  EXPECT_EQ(Stats().revision, 2);
  EXPECT_EQ(Events().size(), 2u);
}

TEST_P(StoreConformanceTest, SetPinnedOfAnUnknownModelOrStepReturnsNotFound) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  EXPECT_CODE(store_->SetPinned("m", 2, true), kNotFound);
  EXPECT_CODE(store_->SetPinned("other", 1, true), kNotFound);
}

TEST_P(StoreConformanceTest, ANewStepIsNeitherPinnedNorPreservedWhateverTheRequestSays) {
  TestFile f = MakeFile("index", "a");
  auto area = store_->NewStagingArea();
  ASSERT_OK(area->PutChunk(f.blob.chunks(0), f.chunks[0]));
  CommitRequest req = MakeRequest("m", 1, {f});
  req.record.set_pinned(true);
  req.record.set_preserved(true);
  auto r = store_->Commit(req, area.get());
  ASSERT_OK(r);
  EXPECT_FALSE(r->record.pinned());
  EXPECT_FALSE(r->record.preserved());
}

// ---- Models and retention. ----------------------------------------------------------

TEST_P(StoreConformanceTest, GetModelOfAnUnknownModelReturnsNotFound) {
  EXPECT_CODE(store_->GetModel("nobody"), kNotFound);
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));
  EXPECT_CODE(store_->GetModel("m"), kNotFound);  // no settings: gone with its last step
}

TEST_P(StoreConformanceTest,
       SetRetentionOnAModelWithoutStepsCreatesARecordListModelsSkips) {
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(5);
  policy.set_keep_every_n_hours(2.5);
  ASSERT_OK(store_->SetRetention("m", policy));
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->name(), "m");
  EXPECT_EQ(model->checkpoint_count(), 0);
  EXPECT_EQ(model->retention().max_to_keep(), 5);
  EXPECT_EQ(model->retention().keep_every_n_hours(), 2.5);
  EXPECT_GT(model->last_preserved_micros(), 0);
  auto listed = store_->ListModels("", 0);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_CODE(store_->GetLatest("m"), kNotFound);
  EXPECT_CODE(store_->ListCheckpoints("m", std::nullopt, 0), kNotFound);
  StoreStats s = Stats();
  EXPECT_EQ(s.models, 0);
  EXPECT_EQ(s.revision, 0);
  EXPECT_TRUE(Events().empty());
  // Its first step keeps the policy.
  ASSERT_OK(Push(*store_, "m", 7, {{"index", "7"}}));
  listed = store_->ListModels("", 0);
  ASSERT_OK(listed);
  ASSERT_EQ(listed->size(), 1u);
  EXPECT_EQ((*listed)[0].latest_step(), 7);
  EXPECT_EQ((*listed)[0].checkpoint_count(), 1);
  EXPECT_EQ((*listed)[0].retention().max_to_keep(), 5);
  EXPECT_EQ(Stats().models, 1);
}

TEST_P(StoreConformanceTest, SetRetentionSetsLastPreservedOnlyWhenTheModelHadNoPolicy) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  auto before = store_->GetModel("m");
  ASSERT_OK(before);
  EXPECT_FALSE(before->has_retention());
  EXPECT_EQ(before->last_preserved_micros(), 0);
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(3);
  ASSERT_OK(store_->SetRetention("m", policy));
  auto first = store_->GetModel("m");
  ASSERT_OK(first);
  EXPECT_GT(first->last_preserved_micros(), 0);
  ASSERT_OK(store_->ApplyRetention("m", {}, {}, 42));
  policy.set_max_to_keep(4);
  ASSERT_OK(store_->SetRetention("m", policy));
  auto second = store_->GetModel("m");
  ASSERT_OK(second);
  EXPECT_EQ(second->last_preserved_micros(), 42);
  EXPECT_EQ(second->retention().max_to_keep(), 4);
  EXPECT_EQ(Stats().revision, 1);
}

TEST_P(StoreConformanceTest, SetRetentionOfAMalformedModelNameReturnsInvalidArgument) {
  EXPECT_CODE(store_->SetRetention("bad model!", storage::RetentionPolicy()),
              kInvalidArgument);
  EXPECT_CODE(store_->SetRetention("", storage::RetentionPolicy()), kInvalidArgument);
}

TEST_P(StoreConformanceTest, ModelRecordWithSettingsSurvivesTheDeletionOfItsLastStep) {
  ASSERT_OK(Push(*store_, "m", 1, {{"index", "1"}}));
  storage::RetentionPolicy policy;
  policy.set_max_to_keep(2);
  ASSERT_OK(store_->SetRetention("m", policy));
  ASSERT_OK(store_->DeleteCheckpoint("m", 1));
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->checkpoint_count(), 0);
  EXPECT_EQ(model->retention().max_to_keep(), 2);
  auto listed = store_->ListModels("", 0);
  ASSERT_OK(listed);
  EXPECT_TRUE(listed->empty());
  EXPECT_CODE(store_->GetLatest("m"), kNotFound);
  StoreStats s = Stats();
  EXPECT_EQ(s.models, 0);
  EXPECT_EQ(s.checkpoints, 0);
}

TEST_P(StoreConformanceTest,
       ApplyRetentionDeletesPreservesAndSkipsPinnedAndAliasedSteps) {
  for (int step = 1; step <= 6; ++step) {
    ASSERT_OK(Push(*store_, "m", step, {{"index", absl::StrCat(step)}}));
  }
  ASSERT_OK(store_->SetPinned("m", 2, true));
  ASSERT_OK(store_->SetAlias("m", "best", 3));  // revision 7
  // 5 is both deleted and preserved: it is kept. 99 does not exist. 4 comes twice.
  auto freed = store_->ApplyRetention("m", {4, 3, 2, 1, 99, 5, 4}, {5, 6, 98}, 1234);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 2);  // "1" and "4"
  auto list = store_->ListCheckpoints("m", std::nullopt, 0);
  ASSERT_OK(list);
  std::vector<int64_t> steps;
  for (const auto& r : *list) steps.push_back(r.step());
  EXPECT_EQ(steps, (std::vector<int64_t>{2, 3, 5, 6}));
  for (int64_t step : {5, 6}) {
    auto r = store_->GetCheckpoint("m", step);
    ASSERT_OK(r);
    EXPECT_TRUE(r->preserved());
  }
  auto kept = store_->GetCheckpoint("m", 2);
  ASSERT_OK(kept);
  EXPECT_FALSE(kept->preserved());
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 6);
  EXPECT_TRUE(latest->preserved());
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->last_preserved_micros(), 1234);
  EXPECT_EQ(model->checkpoint_count(), 4);
  auto page = store_->ReadEvents(7, 0);
  ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 2u);
  ExpectEvent(page->events[0], 8, storage::Event::DELETED, "m", 1);
  ExpectEvent(page->events[1], 9, storage::Event::DELETED, "m", 4);
  EXPECT_EQ(Stats().revision, 9);
  EXPECT_EQ(Stats().checkpoints, 4);
}

TEST_P(StoreConformanceTest, ApplyRetentionFreesTheBytesAndTheStatsGoBack) {
  const std::string graph = Bytes(4000, 1);
  ASSERT_OK(Push(*store_, "keep", 1, {{"index", Bytes(500, 2)}, {"meta", graph}}));
  const StoreStats baseline = Stats();
  ASSERT_OK(Push(*store_, "m", 1, {{"index", Bytes(3000, 3)}, {"meta", graph}}));
  ASSERT_OK(Push(*store_, "m", 2, {{"index", Bytes(2000, 4)}, {"meta", graph}}));
  ASSERT_OK(Push(*store_, "m", 3, {{"data-00000-of-00001", Bytes(100, 5)}}));
  auto freed = store_->ApplyRetention("m", {1, 2, 3}, {}, 1);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 3000 + 2000 + 100);
  StoreStats s = Stats();
  EXPECT_EQ(s.models, baseline.models);
  EXPECT_EQ(s.checkpoints, baseline.checkpoints);
  EXPECT_EQ(s.blobs, baseline.blobs);
  EXPECT_EQ(s.chunks, baseline.chunks);
  EXPECT_EQ(s.chunk_bytes, baseline.chunk_bytes);
  EXPECT_EQ(s.staged_chunks, 0);
  EXPECT_CODE(store_->GetLatest("m"), kNotFound);
  EXPECT_CODE(store_->GetModel("m"), kNotFound);  // no settings
  ASSERT_OK(store_->GetBlob(Sha256Hex(graph)));
}

TEST_P(StoreConformanceTest,
       ApplyRetentionDeletingTheLatestMovesItToTheHighestRemainingStep) {
  for (int step : {1, 2, 3, 4})
    ASSERT_OK(Push(*store_, "m", step, {{"index", absl::StrCat(step)}}));
  ASSERT_OK(store_->ApplyRetention("m", {4, 2, 3}, {1}, 1));
  auto latest = store_->GetLatest("m");
  ASSERT_OK(latest);
  EXPECT_EQ(latest->step(), 1);
  EXPECT_TRUE(latest->preserved());
  auto model = store_->GetModel("m");
  ASSERT_OK(model);
  EXPECT_EQ(model->latest_step(), 1);
  EXPECT_EQ(model->checkpoint_count(), 1);
  auto page = store_->ReadEvents(4, 0);
  ASSERT_OK(page);
  ASSERT_EQ(page->events.size(), 3u);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(page->events[i].step(), i + 2);
}

TEST_P(StoreConformanceTest, ApplyRetentionOfAnUnknownModelReturnsNotFound) {
  EXPECT_CODE(store_->ApplyRetention("nobody", {1}, {}, 1), kNotFound);
  ASSERT_OK(store_->SetRetention("settings-only", storage::RetentionPolicy()));
  auto freed = store_->ApplyRetention("settings-only", {1}, {2}, 77);
  ASSERT_OK(freed);
  EXPECT_EQ(*freed, 0);
  auto model = store_->GetModel("settings-only");
  ASSERT_OK(model);
  EXPECT_EQ(model->last_preserved_micros(), 77);
}

INSTANTIATE_TEST_SUITE_P(
    Backends, StoreConformanceTest,
    ::testing::Values(Backend{"memory",
                              [](const std::string&, int64_t event_window) {
                                MemoryStoreOptions o;
                                o.event_window = event_window;
                                return NewMemoryStore(o);
                              }},
                      Backend{"rocksdb",
                              [](const std::string& dir,
                                 int64_t event_window) -> std::unique_ptr<Store> {
                                RocksDbStoreOptions o;
                                o.path = dir;
                                o.event_window = event_window;
                                auto s = OpenRocksDbStore(o);
                                EXPECT_TRUE(s.ok()) << s.status();
                                return s.ok() ? std::move(*s) : nullptr;
                              }}
#ifdef MGREG_WITH_RADOS
                      ,
                      // One RADOS namespace per store directory, in the pool `mgreg` of
                      // the cluster scripts/test.sh runs (MGREG_TEST_CEPH_CONF).
                      Backend{
                          "rados",
                          [](const std::string& dir,
                             int64_t event_window) -> std::unique_ptr<Store> {
                            RadosStoreOptions o;
                            o.ceph_conf = std::getenv("MGREG_TEST_CEPH_CONF");
                            o.pool = "mgreg";
                            o.rados_namespace = "ct" + dir;
                            o.event_window = event_window;
                            auto s = OpenRadosStore(o);
                            EXPECT_TRUE(s.ok()) << s.status();
                            return s.ok() ? std::move(*s) : nullptr;
                          },
                          [] {
                            return std::getenv("MGREG_TEST_CEPH_CONF") != nullptr
                                       ? std::string()
                                       : std::string(
                                             "RADOS test SKIPPED: MGREG_TEST_CEPH_CONF "
                                             "is not set (scripts/test.sh starts a "
                                             "cluster; or scripts/ceph-dev.sh)");
                          }}
#endif
                      ),
    [](const ::testing::TestParamInfo<Backend>& info) { return info.param.name; });

}  // namespace
}  // namespace mgreg
