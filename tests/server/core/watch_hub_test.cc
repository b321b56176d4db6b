// WatchHub: watchers of a store's events, from a revision (backlog) and live, filtered
// by model, prefix and visibility (server/core/watch_hub.h).
#include "server/core/watch_hub.h"

#include <atomic>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "storage/store.h"
#include "tests/testing/core_test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// The events a subscription has now: model:step of each COMMITTED, "progress" for
// PROGRESS, until Next() returns nothing.
std::vector<std::string> Drain(WatchSubscription& sub) {
  std::vector<std::string> out;
  for (;;) {
    absl::StatusOr<std::optional<v1::WatchEvent>> e = sub.Next();
    EXPECT_TRUE(e.ok()) << e.status();
    if (!e.ok() || !e->has_value()) return out;
    const v1::WatchEvent& event = **e;
    out.push_back(event.type() == v1::WatchEvent::PROGRESS
                      ? std::string("progress")
                      : absl::StrCat(event.model(), ":", event.step()));
  }
}

class WatchHubTest : public ::testing::Test {
 protected:
  void Commit(const std::string& model, int64_t step) {
    absl::StatusOr<storage::CheckpointRecord> r =
        CommitChunks(store_.get(), model, step, {absl::StrCat(model, step)});
    ASSERT_TRUE(r.ok()) << r.status();
  }

  std::unique_ptr<Store> store_ = NewMemoryStore();
  // Counts a watcher's notify calls. Declared before hub_ so it outlives it: ~WatchHub
  // closes the hub, which notifies every waiting watcher once more (a counter local to
  // the test body would be gone by then, and the hub's last notify would write into a
  // dead stack frame: the stack of ~WatchHub itself, which TSan caught corrupting
  // Close()'s loop).
  std::atomic<int> notified_{0};
  WatchHub hub_{store_.get()};
};

TEST_F(WatchHubTest, DeliversTheBacklogThenProgressThenLiveEvents) {
  Commit("a", 1);
  Commit("b", 1);
  Commit("a", 2);
  WatchFilter filter;
  filter.model = "a";
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      hub_.Subscribe(filter, 0, [this]() { ++notified_; });
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_THAT(Drain(**sub), ElementsAre("a:1", "a:2", "progress"));
  EXPECT_EQ(notified_.load(), 0);
  // Nothing now: the next event of "a" notifies once.
  Commit("b", 2);
  EXPECT_EQ(notified_.load(), 0);
  Commit("a", 3);
  EXPECT_EQ(notified_.load(), 1);
  EXPECT_THAT(Drain(**sub), ElementsAre("a:3"));
}

TEST_F(WatchHubTest, OnlyNewEventsFromMinusOne) {
  Commit("a", 1);
  WatchFilter filter;
  filter.all = true;
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      hub_.Subscribe(filter, -1, nullptr);
  ASSERT_TRUE(sub.ok()) << sub.status();
  EXPECT_THAT(Drain(**sub), ElementsAre("progress"));
  Commit("z", 7);
  EXPECT_THAT(Drain(**sub), ElementsAre("z:7"));
}

TEST_F(WatchHubTest, APrefixWatcherSeesOnlyVisibleModelsUnderItsPrefix) {
  WatchFilter filter;
  filter.prefix = "team/";
  filter.visible = [](absl::string_view model) { return model != "team/secret"; };
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      hub_.Subscribe(filter, -1, nullptr);
  ASSERT_TRUE(sub.ok()) << sub.status();
  Drain(**sub);
  Commit("team/a", 1);
  Commit("other", 1);
  Commit("team/secret", 1);
  Commit("team/b", 4);
  EXPECT_THAT(Drain(**sub), ElementsAre("team/a:1", "team/b:4"));
}

TEST_F(WatchHubTest, RefusesBadFiltersUnknownModelsAndFutureRevisions) {
  WatchFilter none;
  EXPECT_EQ(hub_.Subscribe(none, 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  WatchFilter two;
  two.model = "a";
  two.all = true;
  EXPECT_EQ(hub_.Subscribe(two, 0, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  WatchFilter unknown;
  unknown.model = "nobody";
  absl::Status missing = hub_.Subscribe(unknown, 0, nullptr).status();
  EXPECT_EQ(missing.code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.message(), HasSubstr("watch a prefix"));
  WatchFilter all;
  all.all = true;
  EXPECT_EQ(hub_.Subscribe(all, -2, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(hub_.Subscribe(all, 1000, nullptr).status().code(),
            absl::StatusCode::kOutOfRange);
}

TEST_F(WatchHubTest, AWatcherTooFarBehindIsDroppedWithTheRevisionToResumeFrom) {
  WatchHub small(store_.get(), /*max_pending=*/2);
  WatchFilter filter;
  filter.all = true;
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      small.Subscribe(filter, -1, nullptr);
  ASSERT_TRUE(sub.ok()) << sub.status();
  for (int step = 1; step <= 3; ++step) Commit("a", step);
  absl::StatusOr<std::optional<v1::WatchEvent>> next = (*sub)->Next();
  EXPECT_EQ(next.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(next.status().message(), HasSubstr("since_revision="));
}

TEST_F(WatchHubTest, CloseEndsEveryWatcherAndRefusesNewOnes) {
  WatchFilter filter;
  filter.all = true;
  absl::StatusOr<std::shared_ptr<WatchSubscription>> sub =
      hub_.Subscribe(filter, -1, [this]() { ++notified_; });
  ASSERT_TRUE(sub.ok()) << sub.status();
  Drain(**sub);
  EXPECT_EQ(hub_.watcher_count(), 1u);
  hub_.Close();
  EXPECT_EQ(notified_.load(), 1);
  EXPECT_EQ(hub_.watcher_count(), 0u);
  EXPECT_EQ((*sub)->Next().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(hub_.Subscribe(filter, -1, nullptr).status().code(),
            absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace mgreg::testing
