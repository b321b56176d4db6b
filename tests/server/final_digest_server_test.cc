// Issue 17 over real gRPC: a writer that hashes while it sends announces a file without
// a digest and gives its chunked SHA-256 at the end (PutFileRequest.final_chunked_sha256,
// proto/mgreg/v1/registry.proto). The digest is verified once every byte is held; a
// file with every byte but no digest stays incomplete until a digest-only PutFile; a
// digest a writer gave goes with its bytes (server/core/upload_file_sink.h).
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::ServerFixture;
using ::testing::AllOf;
using ::testing::HasSubstr;

constexpr int64_t kMiB = int64_t{1} << 20;

// One PutFile stream's outcome.
struct PutResult {
  grpc::Status status;
  v1::PutFileResponse response;
};

class FinalDigestServerTest : public ServerFixture {
 protected:
  void SetUp() override { Start(ServerOptions()); }

  void Start(ServerOptions options) {
    StartServer(std::move(options));
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // A checkpoint of two shards of about 3 MiB each (several 1 MiB chunks) and its files.
  std::map<std::string, std::string> Files(const std::string& dir, uint32_t seed) {
    prefix_ = MakeCheckpoint(dir, 1, seed, 2, 2, 800000);
    std::map<std::string, std::string> files;
    const v1::BeginUploadRequest manifest = Manifest("m", 1, prefix_);
    for (const v1::FileInfo& f : manifest.files()) {
      files[f.name()] = ReadFileOrDie(absl::StrCat(prefix_, ".", f.name()));
    }
    return files;
  }

  // The manifest of `files` with no digests at all (a writer that hashes as it sends).
  static v1::BeginUploadRequest Undigested(
      const std::string& model, int64_t step,
      const std::map<std::string, std::string>& files) {
    v1::BeginUploadRequest begin;
    begin.set_model(model);
    begin.set_step(step);
    begin.set_basename("model.ckpt");
    for (const auto& [name, bytes] : files) {
      v1::FileInfo* f = begin.add_files();
      f->set_name(name);
      f->set_size(static_cast<int64_t>(bytes.size()));
    }
    return begin;
  }

  grpc::Status Begin(const v1::BeginUploadRequest& request, v1::Upload* upload) {
    grpc::ClientContext ctx;
    return stub_->BeginUpload(&ctx, request, upload);
  }

  grpc::Status Commit(const std::string& id, v1::Checkpoint* out) {
    grpc::ClientContext ctx;
    v1::CommitUploadRequest request;
    request.set_upload_id(id);
    return stub_->CommitUpload(&ctx, request, out);
  }

  // Commits upload `id`; each of its files must carry the chunked SHA-256 of its bytes
  // in `files` (name -> bytes), whichever way the writer gave it.
  void CommitAndCheckDigests(const std::string& id,
                             const std::map<std::string, std::string>& files) {
    v1::Checkpoint out;
    grpc::Status commit = Commit(id, &out);
    ASSERT_TRUE(commit.ok()) << commit.error_message();
    ASSERT_EQ(out.files_size(), static_cast<int>(files.size()));
    for (const v1::FileInfo& f : out.files()) {
      EXPECT_EQ(f.chunked_sha256(), ChunkedSha256Hex(files.at(f.name()))) << f.name();
    }
  }

  // The upload's view of `file`.
  v1::UploadFile Status(const std::string& id, const std::string& file) {
    grpc::ClientContext ctx;
    v1::GetUploadRequest request;
    request.set_upload_id(id);
    v1::Upload upload;
    grpc::Status s = stub_->GetUpload(&ctx, request, &upload);
    EXPECT_TRUE(s.ok()) << s.error_message();
    for (const v1::UploadFile& f : upload.files()) {
      if (f.file().name() == file) return f;
    }
    ADD_FAILURE() << "no file " << file << " in upload " << id;
    return v1::UploadFile();
  }

  // One stream: a header (name, offset, and `header` fields) and then `messages`.
  PutResult Put(const std::string& id, const std::string& name, int64_t offset,
                std::vector<v1::PutFileRequest> messages,
                const v1::PutFileRequest::Header& header = {}) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    PutResult out;
    auto writer = stub_->PutFile(&ctx, &out.response);
    v1::PutFileRequest first;
    *first.mutable_header() = header;
    first.mutable_header()->set_upload_id(id);
    first.mutable_header()->set_name(name);
    first.mutable_header()->set_offset(offset);
    messages.insert(messages.begin(), first);
    for (const v1::PutFileRequest& m : messages) {
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    out.status = writer->Finish();
    return out;
  }

  // `bytes` as 1 MiB data messages, the last one also carrying `final_digest`.
  static std::vector<v1::PutFileRequest> Data(absl::string_view bytes,
                                              const std::string& final_digest) {
    std::vector<v1::PutFileRequest> out;
    for (size_t pos = 0; pos < bytes.size(); pos += kMiB) {
      out.emplace_back().set_data(std::string(bytes.substr(pos, kMiB)));
    }
    if (out.empty()) out.emplace_back();
    out.back().set_final_chunked_sha256(final_digest);
    return out;
  }

  static v1::PutFileRequest DigestOnly(const std::string& digest) {
    v1::PutFileRequest m;
    m.set_final_chunked_sha256(digest);
    return m;
  }

  // Sends every file of `files` whole, each with its chunked digest at the end.
  void PutAll(const std::string& id, const std::map<std::string, std::string>& files) {
    for (const auto& [name, bytes] : files) {
      PutResult put = Put(id, name, 0, Data(bytes, ChunkedSha256Hex(bytes)));
      ASSERT_TRUE(put.status.ok()) << name << ": " << put.status.error_message();
      EXPECT_TRUE(put.response.complete()) << name;
    }
  }

  std::string prefix_;
  std::unique_ptr<v1::Registry::Stub> stub_;
};

TEST_F(FinalDigestServerTest, FilesAnnouncedWithoutDigestsCommitWithTheFinalOnes) {
  const std::map<std::string, std::string> files = Files("a", 1);
  // The same bytes are stored already, but a file without a digest cannot be found by
  // it: every byte comes again.
  ASSERT_TRUE(client_->Push("other", prefix_, {}).ok());
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  EXPECT_FALSE(upload.already_committed());
  for (const v1::UploadFile& f : upload.files()) {
    EXPECT_EQ(f.held_bytes(), 0) << f.file().name();
    EXPECT_EQ(f.file().chunked_sha256(), "") << f.file().name();
  }
  PutAll(upload.upload_id(), files);
  CommitAndCheckDigests(upload.upload_id(), files);
  // A step whose every file has a digest still finds it committed, as before.
  v1::Upload again;
  ASSERT_TRUE(Begin(Manifest("m", 1, prefix_), &again).ok());
  EXPECT_TRUE(again.already_committed());
}

TEST_F(FinalDigestServerTest, AWrongFinalDigestIsDataLossAndTheFileStartsOverWithout) {
  const std::map<std::string, std::string> files = Files("b", 2);
  const std::string& data = files.at("data-00000-of-00002");
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  const std::string wrong = ChunkedSha256Hex("other bytes");
  PutResult put = Put(upload.upload_id(), "data-00000-of-00002", 0, Data(data, wrong));
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_THAT(
      put.status.error_message(),
      AllOf(HasSubstr("file 'data-00000-of-00002'"), HasSubstr(ChunkedSha256Hex(data)),
            HasSubstr(wrong), HasSubstr("send it again from offset 0")));
  // The bytes are dropped, and with them the digest their writer gave.
  v1::UploadFile after = Status(upload.upload_id(), "data-00000-of-00002");
  EXPECT_EQ(after.held_bytes(), 0);
  EXPECT_EQ(after.file().chunked_sha256(), "");
  v1::Checkpoint out;
  EXPECT_EQ(Commit(upload.upload_id(), &out).error_code(),
            grpc::StatusCode::FAILED_PRECONDITION);
  PutAll(upload.upload_id(), files);
  grpc::Status commit = Commit(upload.upload_id(), &out);
  EXPECT_TRUE(commit.ok()) << commit.error_message();
}

TEST_F(FinalDigestServerTest, AFinalDigestDisagreeingWithAKnownOneIsInvalidArgument) {
  const std::map<std::string, std::string> files = Files("c", 3);
  const std::string& data = files.at("data-00001-of-00002");
  const std::string right = ChunkedSha256Hex(data);
  const std::string other = ChunkedSha256Hex("other bytes");
  // Announced at BeginUpload: the final digest must be that one.
  v1::Upload announced;
  ASSERT_TRUE(Begin(Manifest("m", 1, prefix_), &announced).ok());
  std::vector<v1::PutFileRequest> part = Data(data.substr(0, 2 * kMiB), "");
  part.push_back(DigestOnly(other));
  PutResult put = Put(announced.upload_id(), "data-00001-of-00002", 0, part);
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(put.status.error_message(),
              AllOf(HasSubstr("file 'data-00001-of-00002'"), HasSubstr(other),
                    HasSubstr(right), HasSubstr("announced for it")));
  // Nothing is lost: the bytes sent are held, and the writer resumes at them.
  EXPECT_EQ(Status(announced.upload_id(), "data-00001-of-00002").held_bytes(), 2 * kMiB);
  put = Put(announced.upload_id(), "data-00001-of-00002", 2 * kMiB,
            Data(data.substr(2 * kMiB), right));
  EXPECT_TRUE(put.status.ok()) << put.status.error_message();
  EXPECT_TRUE(put.response.complete());

  // Given in the header of a file announced without one: the final one must agree.
  v1::Upload late;
  ASSERT_TRUE(Begin(Undigested("m", 2, files), &late).ok());
  v1::PutFileRequest::Header header;
  header.set_chunked_sha256(right);
  put = Put(late.upload_id(), "data-00001-of-00002", 0, part, header);
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(put.status.error_message(),
              AllOf(HasSubstr("final_chunked_sha256 " + other), HasSubstr(right),
                    HasSubstr("that its writer gave")));
  // And a header that disagrees with a digest given before, on resuming.
  v1::UploadFile held = Status(late.upload_id(), "data-00001-of-00002");
  EXPECT_EQ(held.held_bytes(), 2 * kMiB);
  EXPECT_EQ(held.file().chunked_sha256(), right);
  header.set_chunked_sha256(other);
  put = Put(late.upload_id(), "data-00001-of-00002", 2 * kMiB,
            Data(data.substr(2 * kMiB), ""), header);
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(
      put.status.error_message(),
      AllOf(HasSubstr("the PutFile header's chunked_sha256 " + other), HasSubstr(right)));
  // The writer that sends the rest without repeating the digest completes the file.
  put = Put(late.upload_id(), "data-00001-of-00002", 2 * kMiB,
            Data(data.substr(2 * kMiB), ""));
  EXPECT_TRUE(put.status.ok()) << put.status.error_message();
  EXPECT_TRUE(put.response.complete());
}

TEST_F(FinalDigestServerTest, EveryByteWithoutADigestWaitsForADigestOnlyPutFile) {
  const std::map<std::string, std::string> files = Files("d", 4);
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  for (const auto& [name, bytes] : files) {
    PutResult put = Put(upload.upload_id(), name, 0, Data(bytes, ""));
    ASSERT_TRUE(put.status.ok()) << name << ": " << put.status.error_message();
    EXPECT_FALSE(put.response.complete()) << name;
    EXPECT_EQ(put.response.held_bytes(), static_cast<int64_t>(bytes.size())) << name;
    v1::UploadFile shown = Status(upload.upload_id(), name);
    EXPECT_EQ(shown.held_bytes(), static_cast<int64_t>(bytes.size())) << name;
    EXPECT_EQ(shown.file().chunked_sha256(), "") << name;
  }
  const std::string& index = files.at("index");
  v1::Checkpoint out;
  grpc::Status refused = Commit(upload.upload_id(), &out);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(refused.error_message(),
              HasSubstr(absl::StrCat("index (every byte held but no digest: send a "
                                     "PutFile of it at offset ",
                                     index.size(), " with final_chunked_sha256")));
  // The digest alone completes each file: in a message, or in the header.
  for (const auto& [name, bytes] : files) {
    const int64_t size = static_cast<int64_t>(bytes.size());
    PutResult put;
    if (name == "index") {
      v1::PutFileRequest::Header header;
      header.set_chunked_sha256(ChunkedSha256Hex(bytes));
      put = Put(upload.upload_id(), name, size, {}, header);
    } else {
      put = Put(upload.upload_id(), name, size, {DigestOnly(ChunkedSha256Hex(bytes))});
    }
    ASSERT_TRUE(put.status.ok()) << name << ": " << put.status.error_message();
    EXPECT_TRUE(put.response.complete()) << name;
  }
  CommitAndCheckDigests(upload.upload_id(), files);
}

TEST_F(FinalDigestServerTest, AWriterStartingOverAtOffsetZeroGivesANewDigest) {
  const std::map<std::string, std::string> files = Files("e", 5);
  const std::string& data = files.at("data-00000-of-00002");
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  // A first writer gives a digest early and stops half way (the file changed under it).
  std::vector<v1::PutFileRequest> half = Data(data.substr(0, kMiB), "");
  half.back().set_final_chunked_sha256(ChunkedSha256Hex("the old file"));
  PutResult put = Put(upload.upload_id(), "data-00000-of-00002", 0, half);
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::DATA_LOSS);  // bytes missing
  EXPECT_EQ(Status(upload.upload_id(), "data-00000-of-00002").file().chunked_sha256(),
            ChunkedSha256Hex("the old file"));
  // Starting over at 0 forgets it: the new bytes come with their own digest.
  PutAll(upload.upload_id(), files);
  v1::Checkpoint out;
  grpc::Status commit = Commit(upload.upload_id(), &out);
  EXPECT_TRUE(commit.ok()) << commit.error_message();
}

TEST_F(FinalDigestServerTest, AnUploadBegunWithoutFilesLearnsThemWithoutDigests) {
  const std::map<std::string, std::string> files = Files("f", 6);
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(1);
  begin.set_basename("model.ckpt");
  v1::Upload upload;
  ASSERT_TRUE(Begin(begin, &upload).ok());
  for (const auto& [name, bytes] : files) {
    v1::PutFileRequest::Header header;
    header.set_size(static_cast<int64_t>(bytes.size()));
    PutResult put =
        Put(upload.upload_id(), name, 0, Data(bytes, ChunkedSha256Hex(bytes)), header);
    ASSERT_TRUE(put.status.ok()) << name << ": " << put.status.error_message();
    EXPECT_TRUE(put.response.complete()) << name;
  }
  CommitAndCheckDigests(upload.upload_id(), files);
}

// Chunks that are not the digest's 1 MiB pieces: the chunked digest comes from the
// bytes, also when they arrive over several streams and the digest comes last.
TEST_F(FinalDigestServerTest, OtherChunkSizesComputeTheDigestAcrossStreams) {
  ServerOptions options;
  options.service.chunk_bytes = 96 << 10;
  Start(options);
  const std::map<std::string, std::string> files = Files("g", 7);
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  ASSERT_EQ(upload.chunk_bytes(), 96 << 10);
  const std::string& data = files.at("data-00001-of-00002");
  // A first stream stops after 1.5 MiB; the server holds its whole chunks.
  PutResult put = Put(upload.upload_id(), "data-00001-of-00002", 0,
                      Data(data.substr(0, 3 * kMiB / 2), ""));
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::DATA_LOSS);
  const int64_t held = Status(upload.upload_id(), "data-00001-of-00002").held_bytes();
  ASSERT_GT(held, 0);
  ASSERT_EQ(held % (96 << 10), 0);
  put = Put(upload.upload_id(), "data-00001-of-00002", held, Data(data.substr(held), ""));
  ASSERT_TRUE(put.status.ok()) << put.status.error_message();
  EXPECT_FALSE(put.response.complete());
  // A wrong digest now drops the bytes; the right one after them completes the file.
  const int64_t size = static_cast<int64_t>(data.size());
  put = Put(upload.upload_id(), "data-00001-of-00002", size,
            {DigestOnly(ChunkedSha256Hex("other bytes"))});
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::DATA_LOSS);
  EXPECT_EQ(Status(upload.upload_id(), "data-00001-of-00002").held_bytes(), 0);
  PutAll(upload.upload_id(), files);
  CommitAndCheckDigests(upload.upload_id(), files);
}

TEST_F(FinalDigestServerTest, MalformedFinalDigestsAreRefusedByName) {
  const std::map<std::string, std::string> files = Files("h", 8);
  const std::string& index = files.at("index");
  v1::Upload upload;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &upload).ok());
  const std::string upper = absl::AsciiStrToUpper(ChunkedSha256Hex(index));
  for (const std::string& bad :
       {std::string("xyz"), upper, ChunkedSha256Hex(index).substr(1),
        std::string(100000, 'a'), std::string("\n\x01", 2)}) {
    PutResult put = Put(upload.upload_id(), "index", 0, Data(index, bad));
    EXPECT_EQ(put.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(put.status.error_message(),
                AllOf(HasSubstr("file 'index': final_chunked_sha256 "),
                      HasSubstr("is not 64 lower-case hex characters")));
    EXPECT_LT(put.status.error_message().size(), 300u);
    EXPECT_THAT(put.status.error_message(), ::testing::Not(HasSubstr("\n")));
  }
  // Every byte arrived with each: they wait, digest-less, for a well-formed digest.
  v1::UploadFile shown = Status(upload.upload_id(), "index");
  EXPECT_EQ(shown.held_bytes(), static_cast<int64_t>(index.size()));
  EXPECT_EQ(shown.file().chunked_sha256(), "");
  PutResult put = Put(upload.upload_id(), "index", static_cast<int64_t>(index.size()),
                      {DigestOnly(ChunkedSha256Hex(index))});
  EXPECT_TRUE(put.status.ok()) << put.status.error_message();
  EXPECT_TRUE(put.response.complete());
}

TEST_F(FinalDigestServerTest, AnEmptyFileTakesOnlyTheDigestOfNoBytes) {
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(1);
  begin.set_basename("model.ckpt");
  v1::Upload upload;
  ASSERT_TRUE(Begin(begin, &upload).ok());
  v1::PutFileRequest::Header header;  // size 0, no digest: an empty file
  PutResult put = Put(upload.upload_id(), "meta", 0,
                      {DigestOnly(ChunkedSha256Hex("not empty"))}, header);
  EXPECT_EQ(put.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(put.status.error_message(),
              HasSubstr("file 'meta' is empty but its final_chunked_sha256 is not that "
                        "of no bytes"));
  put = Put(upload.upload_id(), "meta", 0, {DigestOnly(Sha256Hex(""))}, header);
  EXPECT_TRUE(put.status.ok()) << put.status.error_message();
  EXPECT_TRUE(put.response.complete());
}

// A step that exists: a manifest without digests cannot be compared at BeginUpload,
// so the commit decides (unchanged if the bytes are the same, else ALREADY_EXISTS).
TEST_F(FinalDigestServerTest, AnExistingStepIsComparedAtTheCommitOnceDigestsAreKnown) {
  const std::map<std::string, std::string> files = Files("i", 9);
  ASSERT_TRUE(client_->Push("m", prefix_, {}).ok());
  const int64_t revision = Stats().revision;
  v1::Upload same;
  ASSERT_TRUE(Begin(Undigested("m", 1, files), &same).ok());
  EXPECT_FALSE(same.already_committed());
  PutAll(same.upload_id(), files);
  v1::Checkpoint out;
  grpc::Status commit = Commit(same.upload_id(), &out);
  ASSERT_TRUE(commit.ok()) << commit.error_message();
  EXPECT_EQ(Stats().revision, revision) << "the same content writes nothing";

  std::map<std::string, std::string> changed = files;
  changed.at("data-00000-of-00002").back() ^= 1;
  v1::Upload other;
  ASSERT_TRUE(Begin(Undigested("m", 1, changed), &other).ok());
  PutAll(other.upload_id(), changed);
  EXPECT_EQ(Commit(other.upload_id(), &out).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
  // Sizes that differ are refused at once, as with digests.
  changed.at("data-00000-of-00002") += "x";
  EXPECT_EQ(Begin(Undigested("m", 1, changed), &other).error_code(),
            grpc::StatusCode::ALREADY_EXISTS);
}

}  // namespace
}  // namespace mgreg
