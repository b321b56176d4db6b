// What every Backend (storage/backend.h) must do, checked on each: applying the same
// transaction twice leaves the store exactly as applying it once (a commit, a delete
// that frees chunks, an alias beyond a small event window), and the second apply frees
// nothing.
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "storage/backed_store.h"
#include "storage/backend.h"
#include "storage/memory/memory_backend.h"
#include "storage/planner.h"
#include "storage/rocksdb/rocksdb_open.h"
#include "storage/store.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::Bytes;
using ::mgreg::testing::MakeFile;
using ::mgreg::testing::MakeRequest;
using ::mgreg::testing::Push;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::TestFile;

constexpr int64_t kNow = 1'700'000'000'000'000;
constexpr int64_t kEventWindow = 2;

struct BackendFactory {
  std::string name;
  std::function<std::shared_ptr<Backend>(const std::string& dir)> open;
};

class BackendConformanceTest : public ::testing::TestWithParam<BackendFactory> {
 protected:
  // Builds the same history on a fresh backend, applying every planned transaction
  // `applies` times, and returns everything a reader can see of the result.
  std::string History(const std::string& dir, int applies) {
    std::shared_ptr<Backend> backend = GetParam().open(dir);
    EXPECT_NE(backend, nullptr);
    if (backend == nullptr) return "";
    std::unique_ptr<Store> store = NewBackedStore(backend, kEventWindow);
    const Planner planner(kEventWindow);
    EXPECT_TRUE(
        Push(*store, "m", 1, {{"index", Bytes(3000, 1)}, {"meta", Bytes(9000, 2)}}).ok());

    auto apply = [&](const Transaction& txn, BackendStagingArea* area) {
      for (int i = 0; i < applies; ++i) {
        absl::StatusOr<ApplyResult> r = backend->Apply(txn, area);
        EXPECT_TRUE(r.ok()) << r.status();
        if (!r.ok()) return int64_t{0};
        EXPECT_FALSE(r->stale);
        if (i > 0) {
          EXPECT_EQ(r->freed_bytes, 0) << "apply " << i + 1 << " of " << txn.what;
        }
        if (i == 0) freed_ += r->freed_bytes;
      }
      return int64_t{0};
    };

    {  // A commit through a staging area: step 2 shares "meta" with step 1.
      std::unique_ptr<BackendStagingArea> area = backend->NewStagingArea();
      TestFile index = MakeFile("index", Bytes(2500, 3));
      for (size_t i = 0; i < index.chunks.size(); ++i) {
        EXPECT_TRUE(area->PutChunk(index.blob.chunks(i), index.chunks[i]).ok());
      }
      CommitRequest request =
          MakeRequest("m", 2, {index, MakeFile("meta", Bytes(9000, 2))});
      std::vector<storage::BlobRecord> only_index;  // meta is stored already
      for (const auto& b : request.new_blobs) {
        if (b.sha256() == index.blob.sha256()) only_index.push_back(b);
      }
      request.new_blobs = only_index;
      NewBlobs new_blobs;
      EXPECT_TRUE(planner::ValidateCommitRequest(request, &new_blobs).ok());
      absl::StatusOr<CommitPlan> plan =
          planner.PlanCommit(*backend, request, new_blobs, area.get(), kNow);
      EXPECT_TRUE(plan.ok()) << plan.status();
      if (plan.ok() && plan->txn.has_value()) apply(*plan->txn, area.get());
    }
    {  // A delete that frees step 1's own chunks.
      absl::StatusOr<Transaction> txn = planner.PlanDelete(*backend, "m", 1, kNow);
      EXPECT_TRUE(txn.ok()) << txn.status();
      if (txn.ok()) apply(*txn, nullptr);
    }
    {  // An alias: the fourth event, so the window of 2 trims again.
      absl::StatusOr<Transaction> txn =
          planner.PlanSetAlias(*backend, "m", "prod", 2, kNow);
      EXPECT_TRUE(txn.ok()) << txn.status();
      if (txn.ok()) apply(*txn, nullptr);
    }

    std::string seen = absl::StrCat("freed ", freed_, "\n");
    absl::StatusOr<StoreStats> stats = store->GetStats();
    EXPECT_TRUE(stats.ok());
    if (stats.ok()) {
      absl::StrAppend(&seen, "stats ", stats->models, " ", stats->checkpoints, " ",
                      stats->blobs, " ", stats->chunks, " ", stats->chunk_bytes, " ",
                      stats->staged_chunks, " ", stats->revision, "\n");
    }
    absl::StatusOr<std::vector<storage::CheckpointRecord>> steps =
        store->ListCheckpoints("m", std::nullopt, 0);
    EXPECT_TRUE(steps.ok()) << steps.status();
    if (steps.ok()) {
      for (const auto& r : *steps) absl::StrAppend(&seen, "step ", r.DebugString());
    }
    absl::StatusOr<storage::ModelRecord> model = store->GetModel("m");
    if (model.ok()) absl::StrAppend(&seen, "model ", model->DebugString());
    absl::StatusOr<storage::CheckpointRecord> latest = store->GetLatest("m");
    if (latest.ok()) absl::StrAppend(&seen, "latest ", latest->step(), "\n");
    absl::StatusOr<EventPage> events = store->ReadEvents(0, 0);
    EXPECT_EQ(events.status().code(), absl::StatusCode::kOutOfRange) << events.status();
    events = store->ReadEvents(2, 0);
    EXPECT_TRUE(events.ok()) << events.status();
    if (events.ok()) {
      absl::StrAppend(&seen, "events from ", events->oldest_revision, " to ",
                      events->current_revision, "\n");
      for (const auto& e : events->events) absl::StrAppend(&seen, e.DebugString());
    }
    absl::StatusOr<CheckReport> check = store->Check();
    EXPECT_TRUE(check.ok()) << check.status();
    if (check.ok()) {
      std::string problems;
      for (const std::string& p : check->problems) absl::StrAppend(&problems, p, "\n");
      EXPECT_TRUE(check->ok()) << problems;
      absl::StrAppend(&seen, "check ", check->models, " ", check->checkpoints, " ",
                      check->files, " ", check->blobs, " ", check->chunks, " ",
                      check->chunk_bytes, " ", check->staged_chunks, " ", check->events,
                      " ", check->revision, "\n");
    }
    return seen;
  }

  TempDir dir_;
  int64_t freed_ = 0;
};

TEST_P(BackendConformanceTest, ApplyingATransactionTwiceLeavesTheStoreAsApplyingItOnce) {
  const std::string once = History(dir_.Join("once"), 1);
  const int64_t freed_once = freed_;
  freed_ = 0;
  const std::string twice = History(dir_.Join("twice"), 2);
  EXPECT_GT(freed_once, 0);
  EXPECT_EQ(twice, once);
  EXPECT_NE(once.find("step "), std::string::npos) << once;
}

INSTANTIATE_TEST_SUITE_P(
    Backends, BackendConformanceTest,
    ::testing::Values(
        BackendFactory{"memory", [](const std::string&) { return NewMemoryBackend(); }},
        BackendFactory{"rocksdb",
                       [](const std::string& dir) -> std::shared_ptr<Backend> {
                         RocksDbStoreOptions o;
                         o.path = dir;
                         o.event_window = kEventWindow;
                         auto b = OpenRocksDbBackend(o);
                         EXPECT_TRUE(b.ok()) << b.status();
                         return b.ok() ? *b : nullptr;
                       }}),
    [](const ::testing::TestParamInfo<BackendFactory>& info) { return info.param.name; });

}  // namespace
}  // namespace mgreg
