// UploadQuota: the core's quotas on open uploads, per service and per writer
// (server/core/upload_quota.h).
#include "server/core/upload_quota.h"

#include <set>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

v1::Upload UploadWithId(const std::string& id) {
  v1::Upload upload;
  upload.set_upload_id(id);
  return upload;
}

TEST(UploadQuotaTest, WithoutLimitsEveryUploadIsAdmitted) {
  UploadQuota quota(0, 0);
  for (int i = 0; i < 100; ++i) {
    ASSERT_TRUE(quota.Admit("w", 1000, [](absl::string_view) { return true; }).ok());
    quota.Finish("w", UploadWithId(std::to_string(i)));
  }
}

TEST(UploadQuotaTest, TheServiceWideLimitCountsEveryOpenUpload) {
  UploadQuota quota(3, 0);
  auto open = [](absl::string_view) { return true; };
  EXPECT_TRUE(quota.Admit("a", 2, open).ok());
  absl::Status full = quota.Admit("b", 3, open);
  EXPECT_EQ(full.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(full.message(), HasSubstr("limits.max_open_uploads"));
  EXPECT_THAT(full.message(), HasSubstr("3 open uploads, its limit is 3"));
}

TEST(UploadQuotaTest, AWriterHoldsAtMostItsLimitAndOthersAreNotCounted) {
  UploadQuota quota(0, 2);
  std::set<std::string> open_ids;
  auto is_open = [&](absl::string_view id) {
    return open_ids.count(std::string(id)) > 0;
  };
  for (const char* id : {"u1", "u2"}) {
    ASSERT_TRUE(quota.Admit("alice", 0, is_open).ok());
    open_ids.insert(id);
    quota.Finish("alice", UploadWithId(id));
  }
  absl::Status third = quota.Admit("alice", 2, is_open);
  EXPECT_EQ(third.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.message(), HasSubstr("limits.max_concurrent_uploads_per_writer"));
  EXPECT_THAT(third.message(), HasSubstr("already has 2 open uploads"));
  // Another writer has its own count.
  ASSERT_TRUE(quota.Admit("bob", 2, is_open).ok());
  quota.Finish("bob", UploadWithId("u3"));
  // Once one of alice's uploads is committed or aborted, she may begin another.
  open_ids.erase("u1");
  EXPECT_TRUE(quota.Admit("alice", 2, is_open).ok());
}

TEST(UploadQuotaTest, AnAdmittedUploadHoldsItsSlotUntilFinishedAndAFailureReleasesIt) {
  UploadQuota quota(0, 1);
  auto is_open = [](absl::string_view) { return true; };
  ASSERT_TRUE(quota.Admit("w", 0, is_open).ok());
  // Beginning a second one while the first is still being begun.
  EXPECT_EQ(quota.Admit("w", 0, is_open).code(), absl::StatusCode::kResourceExhausted);
  quota.Finish("w", absl::InvalidArgumentError("bad manifest"));
  ASSERT_TRUE(quota.Admit("w", 0, is_open).ok());
  quota.Finish("w", UploadWithId("u1"));
  EXPECT_EQ(quota.Admit("w", 1, is_open).code(), absl::StatusCode::kResourceExhausted);
}

}  // namespace
}  // namespace mgreg::testing
