// Issue 11 items 12-17 over real gRPC: PutFile at offset 0 of a held file, learned
// manifest entries that a failed stream must not pin, watches ahead of the store,
// token prefixes on segment boundaries, concurrent and misplaced backups, and requests
// that used to pass silently or echo raw input.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/auth.h"
#include "server/server.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/store_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::SendPutFile;
using ::mgreg::testing::ServerFixture;
using ::testing::HasSubstr;
using ::testing::Not;

class UploadEdgesServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartServer();
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  grpc::Status Begin(const v1::BeginUploadRequest& request, v1::Upload* upload) {
    grpc::ClientContext ctx;
    return stub_->BeginUpload(&ctx, request, upload);
  }

  grpc::Status Commit(const std::string& id) {
    grpc::ClientContext ctx;
    v1::CommitUploadRequest request;
    request.set_upload_id(id);
    v1::Checkpoint out;
    return stub_->CommitUpload(&ctx, request, &out);
  }

  std::unique_ptr<v1::Registry::Stub> stub_;
};

// Item 12: PutFile at offset 0 of a file the store already holds starts it over (as
// the proto says) instead of failing "received more than announced".
TEST_F(UploadEdgesServerTest, PutFileAtOffsetZeroOfAHeldFileStartsItOver) {
  const std::string prefix = MakeCheckpoint("c", 1, 1);
  ASSERT_TRUE(client_->Push("m", prefix, {}).ok());
  v1::Upload upload;
  v1::BeginUploadRequest begin = Manifest("m", 2, prefix);
  ASSERT_TRUE(Begin(begin, &upload).ok());
  ASSERT_EQ(upload.files(0).held_bytes(), upload.files(0).file().size());  // deduplicated
  v1::PutFileRequest header, data;
  data.set_data(ReadFileOrDie(prefix + ".index"));
  grpc::Status put = SendPutFile(*stub_, upload.upload_id(), "index", {header, data});
  EXPECT_TRUE(put.ok()) << put.error_message();
  EXPECT_TRUE(Commit(upload.upload_id()).ok());
}

// Item 11: a file deduplicated at BeginUpload whose source step is deleted before the
// commit is asked for (FAILED_PRECONDITION), and the upload stays open for it.
TEST_F(UploadEdgesServerTest, DeletingTheSourceOfADeduplicatedFileLeavesTheUploadOpen) {
  const std::string prefix = MakeCheckpoint("c", 1, 1);
  ASSERT_TRUE(client_->Push("m", prefix, {}).ok());
  v1::Upload upload;
  ASSERT_TRUE(Begin(Manifest("other", 1, prefix), &upload).ok());
  ASSERT_TRUE(client_->DeleteCheckpoint("m", 1).ok());
  grpc::Status commit = Commit(upload.upload_id());
  EXPECT_EQ(commit.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(commit.error_message(), HasSubstr("no longer holds"));
  for (const v1::UploadFile& f : upload.files()) {
    v1::PutFileRequest header, data;
    data.set_data(ReadFileOrDie(absl::StrCat(prefix, ".", f.file().name())));
    grpc::Status put =
        SendPutFile(*stub_, upload.upload_id(), f.file().name(), {header, data});
    EXPECT_TRUE(put.ok()) << f.file().name() << ": " << put.error_message();
  }
  EXPECT_TRUE(Commit(upload.upload_id()).ok());
}

// Item 13: in an upload begun without files, a header whose stream failed does not
// fix the entry: the honest writer's header replaces it.
TEST_F(UploadEdgesServerTest, AFailedStreamDoesNotPinALearnedManifestEntry) {
  const std::string prefix = MakeCheckpoint("c", 1, 1);
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(1);
  begin.set_basename("model.ckpt");
  v1::Upload upload;
  ASSERT_TRUE(Begin(begin, &upload).ok());
  v1::PutFileRequest bogus;
  bogus.mutable_header()->set_size(5);
  bogus.mutable_header()->set_sha256(Sha256Hex("xxxxx"));
  EXPECT_EQ(SendPutFile(*stub_, upload.upload_id(), "index", {bogus}).error_code(),
            grpc::StatusCode::DATA_LOSS);
  for (const char* file :
       {"index", "data-00000-of-00002", "data-00001-of-00002", "meta"}) {
    const std::string bytes = ReadFileOrDie(absl::StrCat(prefix, ".", file));
    v1::PutFileRequest header, data;
    header.mutable_header()->set_size(static_cast<int64_t>(bytes.size()));
    header.mutable_header()->set_sha256(Sha256Hex(bytes));
    data.set_data(bytes);
    grpc::Status put = SendPutFile(*stub_, upload.upload_id(), file, {header, data});
    EXPECT_TRUE(put.ok()) << file << ": " << put.error_message();
  }
  EXPECT_TRUE(Commit(upload.upload_id()).ok());
}

// Item 14: a watch from a revision the store has not reached is OUT_OF_RANGE naming
// the current revision, not clamped.
TEST_F(UploadEdgesServerTest, WatchBeyondTheCurrentRevisionIsOutOfRange) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("c", 1, 1), {}).ok());
  const int64_t current = Stats().revision;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::WatchCheckpointsRequest request;
  request.set_model("m");
  request.set_since_revision(current + 100);
  auto reader = stub_->WatchCheckpoints(&ctx, request);
  v1::WatchEvent event;
  EXPECT_FALSE(reader->Read(&event));
  grpc::Status status = reader->Finish();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::OUT_OF_RANGE);
  EXPECT_THAT(status.error_message(),
              HasSubstr(absl::StrCat("current revision ", current)));
}

// Item 15: token prefixes match whole segments.
TEST(TokenPrefixTest, PrefixesMatchOnSegmentBoundaries) {
  google::protobuf::RepeatedPtrField<config::v1::Token> tokens;
  config::v1::Token* t = tokens.Add();
  t->set_name("a");
  t->set_sha256(Sha256Hex("token-a"));
  t->set_role(config::v1::ROLE_WRITER);
  t->add_model_prefixes("team-a");
  absl::StatusOr<Authorizer> auth = Authorizer::Create(tokens);
  ASSERT_TRUE(auth.ok());
  const std::string bearer = "Bearer token-a";
  EXPECT_TRUE(auth->Authorize(bearer, Action::kWrite, "team-a/x").ok());
  EXPECT_TRUE(auth->Authorize(bearer, Action::kWrite, "team-a").ok());
  EXPECT_EQ(auth->Authorize(bearer, Action::kWrite, "team-ab/x").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_FALSE(auth->Covers("a", "team-ab/x"));
  EXPECT_TRUE(auth->Covers("a", "team-a/y"));
}

// Item 16: concurrent backups into one directory: one succeeds, the others find it
// exists (FAILED_PRECONDITION); a backup inside the live data dir is refused.
TEST_F(UploadEdgesServerTest, ConcurrentBackupsAndBackupsIntoTheDataDirAreRefused) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("c", 1, 1), {}).ok());
  const std::string dir = tmp_.Join("backup");
  std::vector<grpc::Status> results(3);
  std::vector<std::thread> threads;
  for (grpc::Status& result : results) {
    threads.emplace_back([&, out = &result]() {
      grpc::ClientContext ctx;
      v1::BackupRequest request;
      request.set_dir(dir);
      v1::BackupResponse response;
      *out = stub_->Backup(&ctx, request, &response);
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0;
  for (const grpc::Status& s : results) {
    if (s.ok()) {
      ++ok;
    } else {
      EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION)
          << s.error_message();
      EXPECT_THAT(s.error_message(), HasSubstr("exists"));
    }
  }
  EXPECT_EQ(ok, 1);
  grpc::ClientContext ctx;
  v1::BackupRequest inside;
  inside.set_dir(tmp_.Join("data/backup"));
  v1::BackupResponse response;
  grpc::Status status = stub_->Backup(&ctx, inside, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(status.error_message(), HasSubstr("inside the server's data dir"));
  EXPECT_TRUE(client_->GetLatestCheckpoint("m").ok());
}

// Item 17: a step with an alias, and raw input in
// messages.
TEST_F(UploadEdgesServerTest, RequestsThatUsedToPassSilentlyAreRefused) {
  ASSERT_TRUE(client_->Push("m", MakeCheckpoint("c", 1, 1), {}).ok());
  ASSERT_TRUE(client_->SetAlias("m", "prod", 1).ok());
  grpc::ClientContext ctx;
  v1::GetCheckpointRequest both;
  both.set_model("m");
  both.set_step(1);
  both.set_alias("prod");
  v1::Checkpoint out;
  grpc::Status status = stub_->GetCheckpoint(&ctx, both, &out);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  grpc::ClientContext read_ctx;
  v1::ReadFileRequest read;
  read.set_model("m");
  read.set_step(1);
  read.set_name(std::string(5000, 'n') + "\nforged log line");
  auto reader = stub_->ReadFile(&read_ctx, read);
  v1::FileChunk chunk;
  EXPECT_FALSE(reader->Read(&chunk));
  grpc::Status read_status = reader->Finish();
  EXPECT_EQ(read_status.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(read_status.error_message(), Not(HasSubstr("\n")));
  EXPECT_LT(read_status.error_message().size(), 400u);

  grpc::ClientContext latest_ctx;
  v1::GetLatestCheckpointRequest latest;
  latest.set_model("bad\nname");
  grpc::Status named = stub_->GetLatestCheckpoint(&latest_ctx, latest, &out);
  EXPECT_EQ(named.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(named.error_message(), Not(HasSubstr("\n")));
}

// Issue 17: a file may be announced without a digest (its writer gives it at the end:
// tests/server/final_digest_server_test.cc), but each one given must be well-formed.
TEST_F(UploadEdgesServerTest, AFileWithAMalformedDigestIsRefusedByName) {
  const std::string prefix = MakeCheckpoint("d", 1, 1);
  v1::BeginUploadRequest begin = Manifest("m", 1, prefix);
  v1::Upload upload;
  begin.mutable_files(0)->clear_chunked_sha256();
  grpc::Status none = Begin(begin, &upload);
  EXPECT_TRUE(none.ok()) << none.error_message();
  EXPECT_EQ(upload.files(0).held_bytes(), 0);
  begin.mutable_files(0)->set_chunked_sha256("ABC");
  grpc::Status bad = Begin(begin, &upload);
  EXPECT_EQ(bad.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(bad.error_message(),
              HasSubstr(absl::StrCat("file '", begin.files(0).name(),
                                     "': chunked_sha256 'ABC' is not 64")));
}

// Issue 17: a step stored before chunked digests (records with sha256 only) is "the same
// content" for a request that gives chunked digests only: the old record's chunked
// digests come from its blobs' 1 MiB chunk lists, no byte read.
TEST_F(UploadEdgesServerTest,
       AnOldRecordAndAChunkedManifestOfTheSameBytesAreTheSameStep) {
  const std::string prefix = MakeCheckpoint("old", 1, 3);
  v1::BeginUploadRequest begin = Manifest("m", 1, prefix);  // chunked digests only
  std::map<std::string, std::string> files;
  for (const v1::FileInfo& f : begin.files()) {
    files[f.name()] = ReadFileOrDie(prefix + "." + f.name());
  }
  // As stored before chunked digests (sha256 only, 1 MiB chunks).
  ASSERT_TRUE(testing::Push(*server_->store(), "m", 1, files, false, 1u << 20).ok());
  v1::Upload same;
  ASSERT_TRUE(Begin(begin, &same).ok());
  EXPECT_TRUE(same.already_committed());
  for (const v1::UploadFile& f : same.files()) {
    EXPECT_EQ(f.held_bytes(), f.file().size()) << f.file().name() << ": nothing to send";
  }
  grpc::Status committed = Commit(same.upload_id());
  EXPECT_TRUE(committed.ok()) << committed.error_message();
  begin.mutable_files(0)->set_chunked_sha256(ChunkedSha256Hex("other bytes"));
  begin.mutable_files(0)->set_size(11);
  v1::Upload other;
  grpc::Status changed = Begin(begin, &other);
  EXPECT_EQ(changed.error_code(), grpc::StatusCode::ALREADY_EXISTS)
      << changed.error_message();
}

}  // namespace
}  // namespace mgreg
