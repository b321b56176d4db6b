// Issue 18 item 4 over real gRPC: overwriting a step that is pinned or named by an
// alias is refused unless forced (before any byte is sent, and again at commit), and a
// re-commit tells watchers so (COMMITTED with replaced=true).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/server_fixture.h"

namespace mgreg::testing {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

class OverwriteServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    ASSERT_NO_FATAL_FAILURE(StartServer());
    channel_ =
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::Registry::NewStub(channel_);
    first_ = MakeCheckpoint("first", 7, 1);
    other_ = MakeCheckpoint("other", 7, 50);
    ASSERT_TRUE(client_->Push("m", first_, PushOptions()).ok());
  }

  std::string IndexSha() {
    auto c = client_->GetCheckpoint("m", 7);
    EXPECT_TRUE(c.ok()) << c.status();
    for (const auto& f : c->files()) {
      if (f.name() == "index") return f.sha256();
    }
    return "";
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Registry::Stub> stub_;
  std::string first_, other_;
};

TEST_F(OverwriteServerTest, OverwritingAPinnedAliasedStepIsRefusedBeforeAnyByteIsSent) {
  ASSERT_TRUE(client_->PinCheckpoint("m", 7, true).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 7).ok());
  const std::string before = IndexSha();
  const StoreStats stats = Stats();
  PushOptions overwrite;
  overwrite.overwrite = true;
  int64_t sent = 0;
  overwrite.progress = [&](int64_t done, int64_t) { sent = done; };
  auto refused = client_->Push("m", other_, overwrite);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(),
              AllOf(HasSubstr("step 7 of model 'm' is pinned and named by alias "
                              "'production'"),
                    HasSubstr("--force")));
  EXPECT_EQ(sent, 0);
  EXPECT_EQ(Stats().chunk_bytes, stats.chunk_bytes);
  EXPECT_EQ(Stats().revision, stats.revision);
  EXPECT_EQ(server_->service()->open_uploads(), 0u);
  EXPECT_EQ(IndexSha(), before);  // production still serves what it served
}

TEST_F(OverwriteServerTest, AStepOnlyPinnedOrOnlyAliasedIsRefusedToo) {
  PushOptions overwrite;
  overwrite.overwrite = true;
  ASSERT_TRUE(client_->PinCheckpoint("m", 7, true).ok());
  auto pinned = client_->Push("m", other_, overwrite);
  EXPECT_EQ(pinned.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(pinned.status().message(), HasSubstr("is pinned;"));
  ASSERT_TRUE(client_->PinCheckpoint("m", 7, false).ok());
  ASSERT_TRUE(client_->SetAlias("m", "canary", 7).ok());
  auto aliased = client_->Push("m", other_, overwrite);
  EXPECT_EQ(aliased.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(aliased.status().message(), HasSubstr("is named by alias 'canary';"));
}

TEST_F(OverwriteServerTest, AForcedOverwriteReplacesItAndTheWatchSaysReplaced) {
  ASSERT_TRUE(client_->PinCheckpoint("m", 7, true).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 7).ok());
  const int64_t revision = Stats().revision;
  PushOptions forced;
  forced.overwrite = true;
  forced.force = true;
  auto replaced = client_->Push("m", other_, forced);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  EXPECT_TRUE(replaced->pinned());
  auto production = client_->ResolveCheckpoint("m", StepRef::Alias("production"));
  ASSERT_TRUE(production.ok());
  EXPECT_EQ(production->step(), 7);
  EXPECT_EQ(production->revision(), replaced->revision());
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("new", 8, 60), PushOptions()).ok());

  v1::WatchCheckpointsRequest watch;
  watch.set_model("m");
  watch.set_since_revision(revision);
  std::unique_ptr<WatchStream> stream = client_->Watch(watch);
  std::vector<v1::WatchEvent> events;
  v1::WatchEvent e;
  while (events.size() < 2 && stream->Next(&e)) {
    if (e.type() != v1::WatchEvent::PROGRESS) events.push_back(e);
  }
  stream->Cancel();
  stream->Finish().IgnoreError();
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].type(), v1::WatchEvent::COMMITTED);
  EXPECT_EQ(events[0].step(), 7);
  EXPECT_TRUE(events[0].replaced());
  EXPECT_EQ(events[1].step(), 8);
  EXPECT_FALSE(events[1].replaced());
}

TEST_F(OverwriteServerTest, AStepAliasedAfterTheUploadBeganIsRefusedAtCommit) {
  v1::BeginUploadRequest begin = Manifest("m", 7, other_);
  begin.set_overwrite(true);
  grpc::ClientContext begin_ctx;
  v1::Upload upload;
  ASSERT_TRUE(stub_->BeginUpload(&begin_ctx, begin, &upload).ok());
  ASSERT_TRUE(client_->SetAlias("m", "production", 7).ok());
  const std::string before = IndexSha();
  for (const v1::FileInfo& f : begin.files()) {
    v1::PutFileRequest m;
    m.set_data(ReadFileOrDie(other_ + "." + f.name()));
    ASSERT_TRUE(SendPutFile(*stub_, upload.upload_id(), f.name(), {m}).ok()) << f.name();
  }
  v1::CommitUploadRequest commit;
  commit.set_upload_id(upload.upload_id());
  grpc::ClientContext commit_ctx;
  v1::Checkpoint committed;
  grpc::Status s = stub_->CommitUpload(&commit_ctx, commit, &committed);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("named by alias 'production'"));
  EXPECT_EQ(IndexSha(), before);
}

TEST_F(OverwriteServerTest, ForceDoesNotReplaceWithoutOverwrite) {
  v1::BeginUploadRequest begin = Manifest("m", 7, other_);
  begin.set_force(true);
  grpc::ClientContext ctx;
  v1::Upload upload;
  grpc::Status s = stub_->BeginUpload(&ctx, begin, &upload);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ALREADY_EXISTS);
  EXPECT_THAT(s.error_message(), HasSubstr("--overwrite"));
}

}  // namespace
}  // namespace mgreg::testing
