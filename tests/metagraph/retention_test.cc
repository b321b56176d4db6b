// CheckpointManager's retention sweep (EXPORT_SEMANTICS C2, C6).
#include "metagraph/retention.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mgreg {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

constexpr int64_t kHour = 3600LL * 1000000;

std::vector<RetentionCandidate> Steps(int n, int64_t spacing_micros) {
  std::vector<RetentionCandidate> out;
  for (int i = 1; i <= n; ++i) out.push_back({i, i * spacing_micros, false, false});
  return out;
}

TEST(RetentionTest, C6KeepsTheNewestMaxToKeepSteps) {
  RetentionPlan plan = PlanRetention(Steps(5, 1), 3, 0, 0);
  EXPECT_THAT(plan.delete_steps, ElementsAre(1, 2));
  EXPECT_THAT(plan.preserve_steps, IsEmpty());
}

TEST(RetentionTest, C6NoMaxToKeepKeepsEverything) {
  EXPECT_THAT(PlanRetention(Steps(5, 1), 0, 0, 0).delete_steps, IsEmpty());
}

TEST(RetentionTest, C6OldestGoesFirstWhateverTheInputOrder) {
  std::vector<RetentionCandidate> steps = {
      {30, 3, false, false}, {10, 1, false, false}, {20, 2, false, false}};
  EXPECT_THAT(PlanRetention(steps, 1, 0, 0).delete_steps, ElementsAre(10, 20));
}

TEST(RetentionTest, C6EveryNHoursPreservesOneCheckpointPerPeriod) {
  // Steps every 30 minutes; keep 1; preserve one every hour since time 0.
  RetentionPlan plan = PlanRetention(Steps(6, kHour / 2), 1, 1.0, 0);
  // Step 1 at 0.5 h: 0.5 - 1 < 0 -> deleted. Step 2 at 1 h: preserved (last = 1 h).
  // Step 3 at 1.5 h: deleted. Step 4 at 2 h: preserved. Step 5: deleted. Step 6 kept.
  EXPECT_THAT(plan.delete_steps, ElementsAre(1, 3, 5));
  EXPECT_THAT(plan.preserve_steps, ElementsAre(2, 4));
  EXPECT_EQ(plan.last_preserved_micros, 4 * (kHour / 2));
}

TEST(RetentionTest, C6PreservedStepsLeaveTheActiveList) {
  std::vector<RetentionCandidate> steps = Steps(4, 1);
  steps[0].preserved = true;
  EXPECT_THAT(PlanRetention(steps, 2, 0, 0).delete_steps, ElementsAre(2));
}

TEST(RetentionTest, PinnedAndAliasedStepsAreNeverDeletedNorCounted) {
  std::vector<RetentionCandidate> steps = Steps(5, 1);
  steps[0].protected_step = true;
  steps[2].protected_step = true;
  EXPECT_THAT(PlanRetention(steps, 2, 0, 0).delete_steps, ElementsAre(2));
}

}  // namespace
}  // namespace mgreg
