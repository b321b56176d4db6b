// PutFileRequest.existing_chunks over real gRPC (issue 17, dedup-time): several held
// chunks named in one message are taken as that many existing_chunk messages (same
// checks, the refused one named, the chunks before it kept for a resume); a batch over
// the bound, or mixed with data or existing_chunk, is INVALID_ARGUMENT; a client of
// existing_chunk still works; and the C++ client batches only for a server whose Upload
// says accepts_existing_chunks (a proxy plays a server that does not).
#include <grpcpp/grpcpp.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "client/client.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "common/upload_limits.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/fake_registry.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kChunk = 64 << 10;
constexpr char kData[] = "data-00000-of-00001";

// A message naming `digests[from, to)` as existing_chunks.
v1::PutFileRequest Names(const std::vector<std::string>& digests, size_t from,
                         size_t to) {
  v1::PutFileRequest m;
  for (size_t i = from; i < to; ++i) m.add_existing_chunks(digests[i]);
  return m;
}

// Writes a checkpoint of four float32 tensors of `floats` values each in one shard into
// `directory`: tensor `seeded` from `seed`, the others from their index.
std::string FourTensorCheckpoint(const std::string& directory, int64_t step,
                                 size_t floats, int seeded, uint32_t seed) {
  CheckpointSpec spec;
  spec.directory = directory;
  std::filesystem::create_directories(spec.directory);
  spec.step = step;
  for (int i = 0; i < 4; ++i) {
    spec.tensors.push_back(
        {absl::StrCat("layer", i, "/w"),
         FloatBytes(floats, i == seeded ? seed : static_cast<uint32_t>(i)), 0});
  }
  spec.meta = SmallMetaGraphBytes();
  return WriteCheckpoint(spec);
}

v1::PutFileRequest Data(const std::string& bytes) {
  v1::PutFileRequest m;
  m.set_data(bytes);
  return m;
}

// A server cutting files into 64 KiB chunks; step 1 of "m" is committed, and step 2's
// data file differs from step 1's in its first tensor only: chunks 0-2 are new, chunks
// 3-9 (the last of 50,176 bytes) are held.
class ExistingChunksServerTest : public ServerFixture {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.service.chunk_bytes = kChunk;
    StartServer(options);
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    const std::string first = Checkpoint("one", 1, 100);
    ASSERT_TRUE(client_->Push("m", first, {}).ok());
    prefix_ = Checkpoint("two", 2, 200);
    data_ = ReadFileOrDie(prefix_ + "." + kData);
    ASSERT_EQ(data_.size(), 640000u);
    digests_ = ChunkSha256s(data_, kChunk);
    ASSERT_EQ(digests_.size(), 10u);
    ASSERT_EQ(ChunkSha256s(ReadFileOrDie(first + "." + kData), kChunk)[3], digests_[3]);
  }

  // Four tensors of 160,000 bytes in one shard; the first seeded by `first_seed`.
  std::string Checkpoint(const std::string& dir, int64_t step, uint32_t first_seed) {
    return FourTensorCheckpoint(tmp_.Join(dir), step, 40000, 0, first_seed);
  }

  // Begins step 2 (`begin`, Manifest's by default) and sends its .index whole: only the
  // data file is left.
  v1::Upload Begin(std::optional<v1::BeginUploadRequest> begin = std::nullopt) {
    absl::StatusOr<v1::Upload> upload =
        client_->BeginUpload(begin.has_value() ? *begin : Manifest("m", 2, prefix_));
    EXPECT_TRUE(upload.ok()) << upload.status();
    if (!upload.ok()) return v1::Upload();
    EXPECT_TRUE(upload->accepts_existing_chunks());
    grpc::Status index = SendPutFile(*stub_, upload->upload_id(), "index",
                                     {Data(ReadFileOrDie(prefix_ + ".index"))});
    EXPECT_TRUE(index.ok()) << index.error_message();
    return *upload;
  }

  grpc::Status Put(const v1::Upload& upload, std::vector<v1::PutFileRequest> messages,
                   int64_t offset = 0) {
    if (!messages.empty()) messages.front().mutable_header()->set_offset(offset);
    return SendPutFile(*stub_, upload.upload_id(), kData, std::move(messages));
  }

  // The data file's held bytes and completeness, as GetUpload says.
  std::pair<int64_t, bool> Held(const v1::Upload& upload) {
    absl::StatusOr<v1::Upload> now = client_->GetUpload(upload.upload_id());
    EXPECT_TRUE(now.ok()) << now.status();
    if (!now.ok()) return {-1, false};
    EXPECT_TRUE(now->accepts_existing_chunks());
    for (const v1::UploadFile& f : now->files()) {
      if (f.file().name() == kData) {
        return {f.held_bytes(), f.held_bytes() == f.file().size() && !f.writing()};
      }
    }
    ADD_FAILURE() << "no " << kData;
    return {-1, false};
  }

  // Commits the upload and checks step 2's data file is what was written locally.
  void CommitAndCheck(const v1::Upload& upload) {
    absl::StatusOr<v1::Checkpoint> committed = client_->CommitUpload(upload.upload_id());
    ASSERT_TRUE(committed.ok()) << committed.status();
    bool found = false;
    for (const v1::FileInfo& f : committed->files()) {
      if (f.name() != kData) continue;
      found = true;
      EXPECT_EQ(f.chunked_sha256(), ChunkedSha256Hex(data_));
    }
    EXPECT_TRUE(found);
    const std::string out = tmp_.Join("restored");
    RestoreOptions restore;
    restore.step = 2;
    ASSERT_TRUE(client_->Restore("m", out, restore).ok());
    EXPECT_TRUE(ReadFileOrDie(out + "/model.ckpt-2." + kData) == data_);
  }

  std::unique_ptr<v1::Registry::Stub> stub_;
  std::string prefix_;
  std::string data_;
  std::vector<std::string> digests_;
};

TEST_F(ExistingChunksServerTest, ABatchOfHeldChunksStandsForTheirBytes) {
  v1::Upload upload = Begin();
  grpc::Status put =
      Put(upload, {Data(data_.substr(0, 3 * kChunk)), Names(digests_, 3, 10)});
  ASSERT_TRUE(put.ok()) << put.error_message();
  EXPECT_EQ(Held(upload), std::make_pair(int64_t{640000}, true));
  CommitAndCheck(upload);
}

// The first message may carry the header and a batch; the chunked digest on the batch's
// message applies once its last chunk is held (a file announced without a digest).
TEST_F(ExistingChunksServerTest, AFinalDigestOnABatchAppliesAfterItsLastChunk) {
  v1::BeginUploadRequest begin = Manifest("m", 2, prefix_);
  for (v1::FileInfo& f : *begin.mutable_files()) {
    if (f.name() == kData) f.clear_chunked_sha256();
  }
  v1::Upload upload = Begin(begin);
  // The new bytes on their own first: the stream ends short (DATA_LOSS, resume there).
  grpc::Status first = Put(upload, {Data(data_.substr(0, 3 * kChunk))});
  ASSERT_EQ(first.error_code(), grpc::StatusCode::DATA_LOSS) << first.error_message();
  EXPECT_EQ(Held(upload), std::make_pair(3 * kChunk, false));
  v1::PutFileRequest batch = Names(digests_, 3, 10);
  batch.set_final_chunked_sha256(ChunkedSha256Hex(data_));
  grpc::Status put = Put(upload, {batch}, 3 * kChunk);
  ASSERT_TRUE(put.ok()) << put.error_message();
  EXPECT_EQ(Held(upload), std::make_pair(int64_t{640000}, true));
  CommitAndCheck(upload);
}

// A chunk the server does not hold ends the stream with its name and offset; the chunks
// named before it stay held, and the writer resumes there.
TEST_F(ExistingChunksServerTest, ABatchStopsAtAChunkNotHeldKeepingThoseBeforeIt) {
  v1::Upload upload = Begin();
  std::vector<std::string> names = digests_;
  names[6] = Sha256Raw("never stored");
  grpc::Status put =
      Put(upload, {Data(data_.substr(0, 3 * kChunk)), Names(names, 3, 10)});
  EXPECT_EQ(put.error_code(), grpc::StatusCode::NOT_FOUND) << put.error_message();
  EXPECT_THAT(put.error_message(),
              HasSubstr(absl::StrCat("does not hold chunk ", Sha256Hex("never stored"),
                                     " named at offset ", 6 * kChunk)));
  EXPECT_THAT(put.error_message(), HasSubstr("send its bytes"));
  EXPECT_EQ(Held(upload), std::make_pair(6 * kChunk, false));
  // The resume: chunk 6's bytes, then the rest named.
  put = Put(upload, {Data(data_.substr(6 * kChunk, kChunk)), Names(digests_, 7, 10)},
            6 * kChunk);
  ASSERT_TRUE(put.ok()) << put.error_message();
  CommitAndCheck(upload);
}

// Names past the file's end: those up to the end complete the file (verified), the one
// after is refused as bytes beyond the announced size.
TEST_F(ExistingChunksServerTest, ABatchCrossingTheFileEndIsRefusedAtTheEnd) {
  v1::Upload upload = Begin();
  v1::PutFileRequest batch = Names(digests_, 3, 10);
  batch.add_existing_chunks(digests_[3]);
  grpc::Status put = Put(upload, {Data(data_.substr(0, 3 * kChunk)), batch});
  EXPECT_EQ(put.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << put.error_message();
  EXPECT_THAT(put.error_message(), HasSubstr("more than the 640000 bytes announced"));
  EXPECT_EQ(Held(upload), std::make_pair(int64_t{640000}, true));
  CommitAndCheck(upload);
}

TEST_F(ExistingChunksServerTest, ABatchOverTheBoundIsRefusedWhole) {
  v1::Upload upload = Begin();
  v1::PutFileRequest batch;
  for (int i = 0; i <= kMaxExistingChunksPerMessage; ++i) {
    batch.add_existing_chunks(digests_[3]);
  }
  grpc::Status put = Put(upload, {Data(data_.substr(0, 3 * kChunk)), batch});
  EXPECT_EQ(put.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << put.error_message();
  EXPECT_THAT(put.error_message(),
              HasSubstr(absl::StrCat("names ", kMaxExistingChunksPerMessage + 1,
                                     " existing_chunks, more than the ",
                                     kMaxExistingChunksPerMessage)));
  // Nothing of the refused message was taken; the bytes before it were.
  EXPECT_EQ(Held(upload), std::make_pair(3 * kChunk, false));
  ASSERT_TRUE(Put(upload, {Names(digests_, 3, 10)}, 3 * kChunk).ok());
  CommitAndCheck(upload);
}

TEST_F(ExistingChunksServerTest, AMessageMixingKindsIsRefusedWhole) {
  v1::Upload upload = Begin();
  v1::PutFileRequest with_data = Names(digests_, 3, 5);
  with_data.set_data(data_.substr(3 * kChunk, kChunk));
  v1::PutFileRequest with_one = Names(digests_, 4, 5);
  with_one.set_existing_chunk(digests_[3]);
  for (const v1::PutFileRequest& mixed : {with_data, with_one}) {
    grpc::Status put = Put(upload, {Data(data_.substr(0, 3 * kChunk)), mixed});
    EXPECT_EQ(put.error_code(), grpc::StatusCode::INVALID_ARGUMENT)
        << put.error_message();
    EXPECT_THAT(put.error_message(), HasSubstr("may carry only one of them"));
    EXPECT_THAT(put.error_message(), HasSubstr("messages of their own"));
    EXPECT_EQ(Held(upload), std::make_pair(3 * kChunk, false));
  }
}

// A client of existing_chunk (one held chunk per message, the Python client's way) is
// served as before.
TEST_F(ExistingChunksServerTest, OneHeldChunkPerMessageStillWorks) {
  v1::Upload upload = Begin();
  std::vector<v1::PutFileRequest> messages = {Data(data_.substr(0, 3 * kChunk))};
  for (size_t i = 3; i < digests_.size(); ++i) {
    v1::PutFileRequest m;
    m.set_existing_chunk(digests_[i]);
    messages.push_back(m);
  }
  grpc::Status put = Put(upload, messages);
  ASSERT_TRUE(put.ok()) << put.error_message();
  CommitAndCheck(upload);
}

// A Registry in front of the real server: forwards the calls a push makes, counts how
// held chunks were named, and when `old` plays a server from before existing_chunks: its
// Upload does not say accepts_existing_chunks, and it ignores the field (dropped here).
class RegistryProxy final : public v1::Registry::Service {
 public:
  RegistryProxy(const std::string& target, bool old)
      : stub_(v1::Registry::NewStub(
            grpc::CreateChannel(target, grpc::InsecureChannelCredentials()))),
        old_(old) {
    server_ = ServeOnLoopback(this, &address_);
  }
  ~RegistryProxy() override { server_->Shutdown(); }

  const std::string& address() const { return address_; }

  grpc::Status GetCheckpoint(grpc::ServerContext*,
                             const v1::GetCheckpointRequest* request,
                             v1::Checkpoint* response) override {
    return Forward(&v1::Registry::Stub::GetCheckpoint, *request, response);
  }
  grpc::Status BeginUpload(grpc::ServerContext*, const v1::BeginUploadRequest* request,
                           v1::Upload* response) override {
    return Answer(Forward(&v1::Registry::Stub::BeginUpload, *request, response),
                  response);
  }
  grpc::Status GetUpload(grpc::ServerContext*, const v1::GetUploadRequest* request,
                         v1::Upload* response) override {
    return Answer(Forward(&v1::Registry::Stub::GetUpload, *request, response), response);
  }
  grpc::Status FindChunks(grpc::ServerContext*, const v1::FindChunksRequest* request,
                          v1::FindChunksResponse* response) override {
    return Forward(&v1::Registry::Stub::FindChunks, *request, response);
  }
  grpc::Status CommitUpload(grpc::ServerContext*, const v1::CommitUploadRequest* request,
                            v1::Checkpoint* response) override {
    return Forward(&v1::Registry::Stub::CommitUpload, *request, response);
  }
  grpc::Status AbortUpload(grpc::ServerContext*, const v1::AbortUploadRequest* request,
                           v1::AbortUploadResponse* response) override {
    return Forward(&v1::Registry::Stub::AbortUpload, *request, response);
  }
  grpc::Status PutFile(grpc::ServerContext*,
                       grpc::ServerReader<v1::PutFileRequest>* reader,
                       v1::PutFileResponse* response) override {
    grpc::ClientContext ctx;
    auto writer = stub_->PutFile(&ctx, response);
    v1::PutFileRequest m;
    while (reader->Read(&m)) {
      {
        absl::MutexLock lock(&mu_);
        singles_ += m.existing_chunk().empty() ? 0 : 1;
        batches_ += m.existing_chunks().empty() ? 0 : 1;
        batched_ += m.existing_chunks_size();
        largest_ = std::max(largest_, m.existing_chunks_size());
      }
      if (old_) m.clear_existing_chunks();
      if (!writer->Write(m)) break;
    }
    writer->WritesDone();
    return writer->Finish();
  }

  // Messages naming one held chunk, messages naming several, the chunks they named, and
  // the most one message named.
  struct Seen {
    int singles, batches, batched, largest;
  };
  Seen seen() {
    absl::MutexLock lock(&mu_);
    return {singles_, batches_, batched_, largest_};
  }

 private:
  template <typename Request, typename Response>
  grpc::Status Forward(grpc::Status (v1::Registry::Stub::*method)(grpc::ClientContext*,
                                                                  const Request&,
                                                                  Response*),
                       const Request& request, Response* response) {
    grpc::ClientContext ctx;
    return (stub_.get()->*method)(&ctx, request, response);
  }
  grpc::Status Answer(grpc::Status status, v1::Upload* upload) {
    if (old_) upload->clear_accepts_existing_chunks();
    return status;
  }

  std::unique_ptr<v1::Registry::Stub> stub_;
  const bool old_;
  std::unique_ptr<grpc::Server> server_;
  std::string address_;
  absl::Mutex mu_;
  int singles_ ABSL_GUARDED_BY(mu_) = 0;
  int batches_ ABSL_GUARDED_BY(mu_) = 0;
  int batched_ ABSL_GUARDED_BY(mu_) = 0;
  int largest_ ABSL_GUARDED_BY(mu_) = 0;
};

// The C++ client against the default server (1 MiB chunks, deduplicated window by
// window): step 2's data file of 24 MB (two 16 MiB windows) differs from step 1's in its
// last tensor only.
class ExistingChunksClientTest : public ServerFixture {
 protected:
  void SetUp() override {
    StartServer();
    ASSERT_TRUE(client_->Push("m", Checkpoint("one", 1, 100), {}).ok());
    prefix_ = Checkpoint("two", 2, 200);
  }

  // Four tensors of 6,000,000 bytes in one shard; the last seeded by `last_seed`.
  std::string Checkpoint(const std::string& dir, int64_t step, uint32_t last_seed) {
    return FourTensorCheckpoint(tmp_.Join(dir), step, 1500000, 3, last_seed);
  }

  // Pushes step 2 through `proxy`; checks what was sent and that it restores.
  RegistryProxy::Seen PushThrough(RegistryProxy& proxy) {
    ClientOptions options;
    options.target = proxy.address();
    std::unique_ptr<Client> client = std::move(Client::Connect(options)).value();
    PushStats stats;
    PushOptions push;
    push.stats = &stats;
    absl::StatusOr<v1::Checkpoint> pushed = client->Push("m", prefix_, push);
    EXPECT_TRUE(pushed.ok()) << pushed.status();
    // Tensors 0-2 (18 MB) are held: 17 whole chunks before the changed tensor.
    EXPECT_EQ(stats.bytes_deduplicated_chunks, 17 << 20);
    EXPECT_EQ(stats.bytes_sent,
              24000000 - (17 << 20) +
                  static_cast<int64_t>(ReadFileOrDie(prefix_ + ".index").size()));
    const std::string out = tmp_.Join("restored");
    RestoreOptions restore;
    restore.step = 2;
    EXPECT_TRUE(client_->Restore("m", out, restore).ok());
    EXPECT_TRUE(ReadFileOrDie(out + "/model.ckpt-2." + kData) ==
                ReadFileOrDie(prefix_ + "." + kData));
    return proxy.seen();
  }

  std::string prefix_;
};

TEST_F(ExistingChunksClientTest, HeldChunksGoInBatchesToAServerThatTakesThem) {
  RegistryProxy proxy(server_->address(), /*old=*/false);
  const RegistryProxy::Seen seen = PushThrough(proxy);
  EXPECT_EQ(seen.singles, 0);
  EXPECT_EQ(seen.batched, 17);
  // Pieces 0-15 (window 0) in one message, piece 16 (window 1) in another.
  EXPECT_EQ(seen.batches, 2);
  EXPECT_EQ(seen.largest, 16);
}

TEST_F(ExistingChunksClientTest, HeldChunksGoOneByOneToAServerThatDoesNotSaySo) {
  RegistryProxy proxy(server_->address(), /*old=*/true);
  const RegistryProxy::Seen seen = PushThrough(proxy);
  EXPECT_EQ(seen.singles, 17);
  EXPECT_EQ(seen.batches, 0);
}

}  // namespace
}  // namespace mgreg::testing
