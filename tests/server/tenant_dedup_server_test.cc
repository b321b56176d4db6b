// Issue 11 item 6 over real gRPC with per-team tokens: content is reused (whole-file
// deduplication at BeginUpload, FindChunks, PutFile existing_chunk) only where the
// writer may read a step that references it, so naming another team's digests neither
// copies its bytes nor reveals that the store holds them.
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::AddToken;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::ServerFixture;
using ::testing::Each;
using ::testing::HasSubstr;

class TenantDedupServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerOptions options;
    AddToken(&options, "team-a-writer", "tok-a", config::v1::ROLE_WRITER, "team-a/");
    AddToken(&options, "team-b-writer", "tok-b", config::v1::ROLE_WRITER, "team-b/");
    AddToken(&options, "ops", "tok-ops", config::v1::ROLE_ADMIN, "");
    StartServer(options);
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    // Team b's checkpoint: the content team a will name without having it.
    secret_ = MakeCheckpoint("b", 1, 4242);
    ASSERT_TRUE(As("tok-b")->Push("team-b/secret", secret_, {}).ok());
  }

  std::unique_ptr<Client> As(const std::string& token) {
    ClientOptions o;
    o.target = server_->address();
    o.token = token;
    return std::move(Client::Connect(o)).value();
  }

  static void Authorize(grpc::ClientContext* ctx, const std::string& token) {
    ctx->AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }

  // The SHA-256 (raw) of every chunk of the file, cut as the server cuts it.
  static std::vector<std::string> ChunkDigests(const std::string& path, int64_t chunk) {
    const std::string bytes = ReadFileOrDie(path);
    std::vector<std::string> out;
    for (size_t pos = 0; pos < bytes.size(); pos += static_cast<size_t>(chunk)) {
      out.push_back(Sha256Raw(absl::string_view(bytes).substr(pos, chunk)));
    }
    return out;
  }

  std::vector<bool> FindChunks(const std::string& token, const std::string& upload_id,
                               const std::vector<std::string>& digests) {
    grpc::ClientContext ctx;
    Authorize(&ctx, token);
    v1::FindChunksRequest request;
    request.set_upload_id(upload_id);
    for (const std::string& d : digests) request.add_sha256(d);
    v1::FindChunksResponse response;
    grpc::Status status = stub_->FindChunks(&ctx, request, &response);
    EXPECT_TRUE(status.ok()) << status.error_message();
    return std::vector<bool>(response.present().begin(), response.present().end());
  }

  std::unique_ptr<v1::Registry::Stub> stub_;
  std::string secret_;
};

// The attack from the issue: team a announces team b's files (digests and sizes) for a
// model of its own. Nothing counts as held, the commit asks for every byte, and team a
// has nothing of team b to read.
TEST_F(TenantDedupServerTest, AnnouncingAnotherTeamsDigestsCopiesNothing) {
  auto a = As("tok-a");
  auto upload = a->BeginUpload(Manifest("team-a/stolen", 1, secret_));
  ASSERT_TRUE(upload.ok()) << upload.status();
  for (const v1::UploadFile& f : upload->files()) {
    EXPECT_EQ(f.held_bytes(), 0) << f.file().name();
  }
  auto status = a->GetUpload(upload->upload_id());
  ASSERT_TRUE(status.ok());
  for (const v1::UploadFile& f : status->files()) EXPECT_EQ(f.held_bytes(), 0);
  auto commit = a->CommitUpload(upload->upload_id());
  EXPECT_EQ(commit.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(commit.status().message(), HasSubstr("is not complete"));
  EXPECT_EQ(a->GetLatestCheckpoint("team-a/stolen").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(a->GetLatestCheckpoint("team-b/secret").status().code(),
            absl::StatusCode::kPermissionDenied);
}

// FindChunks is no oracle of other teams' content, and existing_chunk(s) cannot splice
// another team's chunk into a file.
TEST_F(TenantDedupServerTest, AnotherTeamsChunksAreNotHeldForFindChunksNorExistingChunk) {
  auto a = As("tok-a");
  auto upload = a->BeginUpload(Manifest("team-a/probe", 1, secret_));
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string data = secret_ + ".data-00000-of-00002";
  const std::vector<std::string> digests = ChunkDigests(data, upload->chunk_bytes());
  ASSERT_FALSE(digests.empty());
  EXPECT_THAT(FindChunks("tok-a", upload->upload_id(), digests), Each(false));

  grpc::ClientContext ctx;
  Authorize(&ctx, "tok-a");
  v1::PutFileResponse response;
  auto writer = stub_->PutFile(&ctx, &response);
  v1::PutFileRequest header;
  header.mutable_header()->set_upload_id(upload->upload_id());
  header.mutable_header()->set_name("data-00000-of-00002");
  v1::PutFileRequest chunk;
  chunk.set_existing_chunk(digests[0]);
  writer->Write(header);
  writer->Write(chunk);
  writer->WritesDone();
  grpc::Status put = writer->Finish();
  EXPECT_EQ(put.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(put.error_message(), HasSubstr("does not hold chunk"));
  // Nor named in a batch (existing_chunks).
  v1::PutFileRequest batch;
  for (const std::string& d : digests) batch.add_existing_chunks(d);
  grpc::ClientContext batch_ctx;
  Authorize(&batch_ctx, "tok-a");
  auto batch_writer = stub_->PutFile(&batch_ctx, &response);
  batch_writer->Write(header);
  batch_writer->Write(batch);
  batch_writer->WritesDone();
  put = batch_writer->Finish();
  EXPECT_EQ(put.error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_THAT(put.error_message(),
              HasSubstr(absl::StrCat("does not hold chunk ", BytesToHex(digests[0]),
                                     " named at offset 0")));

  // Team b, asking about its own content, is told the truth.
  auto b_upload = As("tok-b")->BeginUpload(Manifest("team-b/copy", 1, secret_));
  ASSERT_TRUE(b_upload.ok()) << b_upload.status();
  EXPECT_THAT(FindChunks("tok-b", b_upload->upload_id(), digests), Each(true));
}

// Within a team, deduplication works as before: whole files (held_bytes) and chunks.
TEST_F(TenantDedupServerTest, ATeamStillDeduplicatesAgainstItsOwnSteps) {
  auto a = As("tok-a");
  const std::string mine = MakeCheckpoint("a", 1, 7);
  ASSERT_TRUE(a->Push("team-a/m", mine, {}).ok());
  auto upload = a->BeginUpload(Manifest("team-a/m2", 1, mine));
  ASSERT_TRUE(upload.ok()) << upload.status();
  for (const v1::UploadFile& f : upload->files()) {
    EXPECT_EQ(f.held_bytes(), f.file().size()) << f.file().name();
  }
  EXPECT_THAT(FindChunks("tok-a", upload->upload_id(),
                         ChunkDigests(mine + ".index", upload->chunk_bytes())),
              Each(true));
  EXPECT_TRUE(a->CommitUpload(upload->upload_id()).ok());
  // A push of the same content sends nothing.
  PushStats stats;
  PushOptions options;
  options.stats = &stats;
  options.step = 2;
  ASSERT_TRUE(a->Push("team-a/m", mine, options).ok());
  EXPECT_EQ(stats.bytes_sent, 0);
  EXPECT_GT(stats.bytes_deduplicated_files, 0);
}

// Team a pushing the same bytes as team b (say, the same public weights) sends them,
// and the store still keeps them once.
TEST_F(TenantDedupServerTest, TheSameBytesFromAnotherTeamAreSentButStoredOnce) {
  const int64_t stored = Stats().chunk_bytes;
  PushStats stats;
  PushOptions options;
  options.stats = &stats;
  ASSERT_TRUE(As("tok-a")->Push("team-a/public", secret_, options).ok());
  EXPECT_GT(stats.bytes_sent, 0);
  EXPECT_EQ(stats.bytes_deduplicated_files, 0);
  EXPECT_EQ(stats.bytes_deduplicated_chunks, 0);
  EXPECT_EQ(Stats().chunk_bytes, stored);
  // Now team a holds them itself: its next push reuses them.
  options.step = 2;
  stats = PushStats();
  ASSERT_TRUE(As("tok-a")->Push("team-a/public", secret_, options).ok());
  EXPECT_EQ(stats.bytes_sent, 0);
}

// Chunks staged by an open upload count as held for the token that began it (a parallel
// push of the same team), and for no other: an upload in flight is no oracle either.
TEST_F(TenantDedupServerTest, StagedChunksOfAnOpenUploadCountOnlyForItsOwner) {
  auto a = As("tok-a");
  const std::string mine = MakeCheckpoint("a", 1, 99);
  const std::string data = mine + ".data-00000-of-00002";
  auto first = a->BeginUpload(Manifest("team-a/m", 1, mine));
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(a->PutFile(first->upload_id(), "data-00000-of-00002", data).ok());
  const std::vector<std::string> digests = ChunkDigests(data, first->chunk_bytes());
  auto second = a->BeginUpload(Manifest("team-a/m", 2, mine));
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_THAT(FindChunks("tok-a", second->upload_id(), digests), Each(true));
  auto probe = As("tok-b")->BeginUpload(Manifest("team-b/probe", 1, mine));
  ASSERT_TRUE(probe.ok()) << probe.status();
  EXPECT_THAT(FindChunks("tok-b", probe->upload_id(), digests), Each(false));
}

// A token over every model reuses content of every model, as without tokens.
TEST_F(TenantDedupServerTest, AnUnrestrictedTokenDeduplicatesGlobally) {
  auto ops = As("tok-ops");
  auto upload = ops->BeginUpload(Manifest("ops/copy", 1, secret_));
  ASSERT_TRUE(upload.ok()) << upload.status();
  for (const v1::UploadFile& f : upload->files()) {
    EXPECT_EQ(f.held_bytes(), f.file().size()) << f.file().name();
  }
  EXPECT_THAT(FindChunks("tok-ops", upload->upload_id(),
                         ChunkDigests(secret_ + ".index", upload->chunk_bytes())),
              Each(true));
  EXPECT_TRUE(ops->CommitUpload(upload->upload_id()).ok());
}

}  // namespace
}  // namespace mgreg
