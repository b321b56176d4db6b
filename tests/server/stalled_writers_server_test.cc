// Issue 11 item 8 over real gRPC: a writer that stops sending no longer holds its file
// lock and its upload for ever. A PutFile stream idle past --put-idle-timeout is ended
// (the lock goes with it), AbortUpload ends the streams of its upload, and the upload
// TTL expires an upload even while a stalled writer holds one of its files.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <memory>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/server/server_fixture.h"
#include "tests/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::SendPutFile;
using ::mgreg::testing::ServerFixture;
using ::testing::HasSubstr;

// A PutFile stream that sends its header (and maybe some bytes), then nothing.
class StalledWriter {
 public:
  StalledWriter(v1::Registry::Stub& stub, const std::string& upload_id,
                const std::string& name, const std::string& first_bytes = "") {
    ctx_.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
    writer_ = stub.PutFile(&ctx_, &response_);
    v1::PutFileRequest header;
    header.mutable_header()->set_upload_id(upload_id);
    header.mutable_header()->set_name(name);
    header.set_data(first_bytes);
    writer_->Write(header);
  }

  // Waits for the server to end the stream; returns its status.
  grpc::Status Wait() { return writer_->Finish(); }

 private:
  grpc::ClientContext ctx_;
  v1::PutFileResponse response_;
  std::unique_ptr<grpc::ClientWriter<v1::PutFileRequest>> writer_;
};

class StalledWritersServerTest : public ServerFixture {
 protected:
  void Start(absl::Duration put_idle_timeout, absl::Duration upload_ttl = absl::Hours(1)) {
    ServerOptions options;
    options.put_idle_timeout = put_idle_timeout;
    options.service.upload_ttl = upload_ttl;
    StartServer(options);
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    prefix_ = MakeCheckpoint("c", 1, 1);
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->BeginUpload(&ctx, Manifest("m", 1, prefix_), &upload_).ok());
  }

  absl::StatusOr<v1::Upload> GetUpload() { return client_->GetUpload(upload_.upload_id()); }

  // Waits (at most 5 s) until the server has taken the stalled writer's header: the file
  // is being written.
  bool WaitUntilWriting(const std::string& name) {
    const absl::Time deadline = absl::Now() + absl::Seconds(5);
    while (absl::Now() < deadline) {
      absl::StatusOr<v1::Upload> upload = GetUpload();
      if (!upload.ok()) return false;
      for (const v1::UploadFile& f : upload->files()) {
        if (f.file().name() == name && f.writing()) return true;
      }
      absl::SleepFor(absl::Milliseconds(10));
    }
    return false;
  }

  grpc::Status PutWhole(const std::string& name, const std::string& path) {
    v1::PutFileRequest header, data;
    data.set_data(ReadFileOrDie(path));
    return SendPutFile(*stub_, upload_.upload_id(), name, {header, data});
  }

  std::unique_ptr<v1::Registry::Stub> stub_;
  std::string prefix_;
  v1::Upload upload_;
};

TEST_F(StalledWritersServerTest, AStreamIdlePastTheBoundIsEndedAndReleasesTheFileLock) {
  Start(absl::Milliseconds(500));
  const absl::Time start = absl::Now();
  StalledWriter stalled(*stub_, upload_.upload_id(), "index", "partial");
  ASSERT_TRUE(WaitUntilWriting("index"));
  // Meanwhile the file is locked.
  grpc::Status locked = PutWhole("index", prefix_ + ".index");
  EXPECT_EQ(locked.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(locked.error_message(), HasSubstr("being written by another stream"));

  grpc::Status ended = stalled.Wait();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  EXPECT_THAT(ended.error_message(), HasSubstr("put_idle_timeout"));
  EXPECT_THAT(ended.error_message(), HasSubstr("500ms"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));

  // The lock went with the stream: another writer puts the file, the upload commits.
  grpc::Status put = PutWhole("index", prefix_ + ".index");
  EXPECT_TRUE(put.ok()) << put.error_message();
  for (const char* name : {"data-00000-of-00002", "data-00001-of-00002", "meta"}) {
    ASSERT_TRUE(PutWhole(name, absl::StrCat(prefix_, ".", name)).ok()) << name;
  }
  EXPECT_TRUE(client_->CommitUpload(upload_.upload_id()).ok());
}

TEST_F(StalledWritersServerTest, AbortUploadEndsItsOpenPutFileStreams) {
  Start(absl::Minutes(2));
  const absl::Time start = absl::Now();
  StalledWriter stalled(*stub_, upload_.upload_id(), "data-00000-of-00002");
  ASSERT_TRUE(WaitUntilWriting("data-00000-of-00002"));
  ASSERT_TRUE(client_->AbortUpload(upload_.upload_id()).ok());
  grpc::Status ended = stalled.Wait();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(ended.error_message(), HasSubstr("aborted"));
  EXPECT_THAT(ended.error_message(), HasSubstr(upload_.upload_id()));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(GetUpload().status().code(), absl::StatusCode::kNotFound);
}

TEST_F(StalledWritersServerTest, TheUploadTtlExpiresAnUploadWhoseWriterStalled) {
  // No idle bound: only the TTL can end the stalled writer.
  Start(absl::ZeroDuration(), absl::Milliseconds(300));
  const absl::Time start = absl::Now();
  StalledWriter stalled(*stub_, upload_.upload_id(), "index", "partial");
  grpc::Status ended = stalled.Wait();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::ABORTED);
  EXPECT_THAT(ended.error_message(), HasSubstr("expired"));
  EXPECT_THAT(ended.error_message(), HasSubstr("upload_ttl"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(5));
  EXPECT_EQ(GetUpload().status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(server_->service()->open_uploads(), 0u);
}

// A live writer is not cut off: each message restarts the idle clock.
TEST_F(StalledWritersServerTest, AWriterThatKeepsSendingIsNotEnded) {
  Start(absl::Milliseconds(400));
  const std::string bytes = ReadFileOrDie(prefix_ + ".data-00000-of-00002");
  grpc::ClientContext ctx;
  v1::PutFileResponse response;
  auto writer = stub_->PutFile(&ctx, &response);
  v1::PutFileRequest header;
  header.mutable_header()->set_upload_id(upload_.upload_id());
  header.mutable_header()->set_name("data-00000-of-00002");
  ASSERT_TRUE(writer->Write(header));
  // Ten pieces, 100 ms apart: 1 s in all, more than twice the bound.
  const size_t piece = bytes.size() / 10 + 1;
  for (size_t pos = 0; pos < bytes.size(); pos += piece) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    v1::PutFileRequest data;
    data.set_data(bytes.substr(pos, piece));
    ASSERT_TRUE(writer->Write(data));
  }
  writer->WritesDone();
  grpc::Status status = writer->Finish();
  EXPECT_TRUE(status.ok()) << status.error_message();
  EXPECT_TRUE(response.complete());
}

}  // namespace
}  // namespace mgreg
