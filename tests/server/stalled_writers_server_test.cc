// Issue 11 item 8 over real gRPC: a writer that stops sending no longer holds its file
// lock and its upload for ever. A PutFile stream idle past --put-idle-timeout is ended
// (the lock goes with it), AbortUpload ends the streams of its upload, and the upload
// TTL expires an upload even while a stalled writer holds one of its files.
#include <arpa/inet.h>
#include <grpcpp/grpcpp.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

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

// A TCP relay on 127.0.0.1 in front of the server that can go silent: once frozen it
// stops moving bytes both ways but keeps both sockets open, as a client host that lost
// power or a dropped route leaves a half-open connection (the server's TCP sends still
// succeed; nothing ever answers).
class FreezingRelay {
 public:
  explicit FreezingRelay(int upstream_port) : upstream_port_(upstream_port) {
    listener_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    EXPECT_EQ(bind(listener_, reinterpret_cast<sockaddr*>(&addr), len), 0);
    EXPECT_EQ(listen(listener_, 4), 0);
    EXPECT_EQ(getsockname(listener_, reinterpret_cast<sockaddr*>(&addr), &len), 0);
    port_ = ntohs(addr.sin_port);
    accept_thread_ = std::thread([this] { AcceptLoop(); });
  }
  ~FreezingRelay() {
    stop_ = true;
    accept_thread_.join();
    for (std::thread& t : pumps_) t.join();
    close(listener_);
    for (int fd : fds_) close(fd);
  }
  std::string address() const { return absl::StrCat("127.0.0.1:", port_); }
  void Freeze() { frozen_ = true; }

 private:
  void AcceptLoop() {
    while (!stop_) {
      pollfd p{listener_, POLLIN, 0};
      if (poll(&p, 1, 50) <= 0) continue;
      const int client = accept(listener_, nullptr, nullptr);
      if (client < 0) continue;
      const int server = socket(AF_INET, SOCK_STREAM, 0);
      sockaddr_in addr{};
      addr.sin_family = AF_INET;
      addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
      addr.sin_port = htons(upstream_port_);
      if (connect(server, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
        close(client);
        close(server);
        continue;
      }
      fds_.push_back(client);
      fds_.push_back(server);
      pumps_.emplace_back([this, client, server] { Pump(client, server); });
      pumps_.emplace_back([this, server, client] { Pump(server, client); });
    }
  }
  // Moves bytes from `from` to `to` until stopped or either side closes; while frozen,
  // moves nothing (and closes nothing).
  void Pump(int from, int to) {
    char buf[16384];
    while (!stop_) {
      if (frozen_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      pollfd p{from, POLLIN, 0};
      if (poll(&p, 1, 20) <= 0) continue;
      const ssize_t n = read(from, buf, sizeof(buf));
      if (n <= 0) return;
      for (ssize_t off = 0; off < n;) {
        const ssize_t w = write(to, buf + off, n - off);
        if (w <= 0) return;
        off += w;
      }
    }
  }

  const int upstream_port_;
  int listener_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> frozen_{false};
  std::thread accept_thread_;
  // Only the accept thread adds to these; the destructor joins it before using them.
  std::vector<int> fds_;
  std::vector<std::thread> pumps_;
};

class StalledWritersServerTest : public ServerFixture {
 protected:
  void Start(absl::Duration put_idle_timeout, absl::Duration upload_ttl = absl::Hours(1),
             absl::Duration keepalive_time = absl::Minutes(1)) {
    ServerOptions options;
    options.put_idle_timeout = put_idle_timeout;
    options.service.upload_ttl = upload_ttl;
    options.keepalive_time = keepalive_time;
    options.keepalive_timeout = std::min(absl::Seconds(20), keepalive_time);
    StartServer(options);
    stub_ = v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
    prefix_ = MakeCheckpoint("c", 1, 1);
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub_->BeginUpload(&ctx, Manifest("m", 1, prefix_), &upload_).ok());
  }

  absl::StatusOr<v1::Upload> GetUpload() {
    return client_->GetUpload(upload_.upload_id());
  }

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

// A half-open connection: the writer's host goes silent without closing its socket. With
// the idle bound and the TTL both out of the way, only the server's keepalive pings can
// find it; the stream ends with the transport and the file lock goes with it. The
// connection first lives through several ping periods, so a limit on pings sent without
// data (gRPC's default is 2) would stop the pings before the freeze and fail this test.
TEST_F(StalledWritersServerTest, KeepaliveEndsAHalfOpenWriterAndReleasesItsLock) {
  Start(absl::ZeroDuration(), absl::Hours(1), absl::Milliseconds(300));
  const int port =
      std::stoi(server_->address().substr(server_->address().rfind(':') + 1));
  auto relay = std::make_unique<FreezingRelay>(port);
  auto relayed = v1::Registry::NewStub(
      grpc::CreateChannel(relay->address(), grpc::InsecureChannelCredentials()));
  StalledWriter stalled(*relayed, upload_.upload_id(), "index", "partial");
  ASSERT_TRUE(WaitUntilWriting("index"));
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));  // five ping periods
  ASSERT_EQ(
      PutWhole("index", prefix_ + ".index").error_code(),
      grpc::StatusCode::FAILED_PRECONDITION);  // still locked: the pings are answered
  const absl::Time frozen_at = absl::Now();
  relay->Freeze();

  // Within keepalive time + timeout (0.6 s; allow 5 s on a loaded machine) the server
  // drops the connection, the stream ends and another writer can put the file.
  grpc::Status put;
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    put = PutWhole("index", prefix_ + ".index");
  } while (!put.ok() && absl::Now() - frozen_at < absl::Seconds(5));
  EXPECT_TRUE(put.ok()) << put.error_message();
  for (const char* name : {"data-00000-of-00002", "data-00001-of-00002", "meta"}) {
    ASSERT_TRUE(PutWhole(name, absl::StrCat(prefix_, ".", name)).ok()) << name;
  }
  EXPECT_TRUE(client_->CommitUpload(upload_.upload_id()).ok());
  relay.reset();  // closes the silent writer's socket: its call ends on its side too
  EXPECT_FALSE(stalled.Wait().ok());
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
