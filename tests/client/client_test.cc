// The client library's one call path (client/client_impl.h) against a fake server: every
// unary call carries the deadline of ClientOptions::unary_timeout and streams none, every
// call carries the bearer token, and the server's status comes back with its code and
// message (UNAVAILABLE with a hint about the address).
#include "client/client.h"

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_registry.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

using ::testing::HasSubstr;

class ClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    fake_.Answer("m", 7, "model.ckpt",
                 {{"index", "the index"},
                  {"data-00000-of-00001", "the data"},
                  {"meta", "the graph"}});
  }

  std::unique_ptr<Client> Connect(const std::string& token = "",
                                  absl::Duration timeout = absl::Seconds(60)) {
    ClientOptions options;
    options.target = fake_.address();
    options.token = token;
    options.unary_timeout = timeout;
    absl::StatusOr<std::unique_ptr<Client>> client = Client::Connect(options);
    EXPECT_TRUE(client.ok()) << client.status();
    return std::move(client).value();
  }

  // The calls the fake saw of `method`.
  std::vector<FakeRegistry::CallSeen> CallsOf(const std::string& method) const {
    std::vector<FakeRegistry::CallSeen> out;
    for (const FakeRegistry::CallSeen& c : fake_.calls()) {
      if (c.method == method) out.push_back(c);
    }
    return out;
  }

  // Opens a watch, waits for its first event (the server is in the call), and ends it.
  static void WatchOnce(Client& client) {
    v1::WatchCheckpointsRequest request;
    request.set_model("m");
    std::unique_ptr<WatchStream> stream = client.Watch(request);
    v1::WatchEvent event;
    EXPECT_TRUE(stream->Next(&event));
    stream->Cancel();
    stream->Finish().IgnoreError();
  }

  TempDir tmp_;
  FakeRegistry fake_;
};

TEST_F(ClientTest, UnaryCallsCarryTheDeadlineOfTheOptions) {
  std::unique_ptr<Client> client = Connect("", absl::Seconds(7));
  ASSERT_TRUE(client->GetLatestCheckpoint("m").ok());
  ASSERT_TRUE(client->ResolveCheckpoint("m", StepRef::Alias("production")).ok());
  for (const char* method : {"GetLatestCheckpoint", "GetCheckpoint"}) {
    std::vector<FakeRegistry::CallSeen> calls = CallsOf(method);
    ASSERT_EQ(calls.size(), 1u) << method;
    EXPECT_TRUE(calls[0].has_deadline) << method;
    // gRPC rounds the timeout it sends up (to the millisecond or coarser).
    EXPECT_LE(calls[0].time_left, absl::Milliseconds(7500)) << method;
    EXPECT_GT(calls[0].time_left, absl::Seconds(4)) << method;
  }
}

TEST_F(ClientTest, StreamsCarryNoDeadline) {
  std::unique_ptr<Client> client = Connect("", absl::Seconds(7));
  std::string graph;
  ASSERT_TRUE(client->FetchGraphBytes("m", StepRef(), v1::GraphOptions(), &graph).ok());
  EXPECT_EQ(graph, "the graph");
  ASSERT_TRUE(client->Restore("m", tmp_.Join("out"), RestoreOptions()).ok());
  WatchOnce(*client);
  for (const char* method : {"GetMetaGraph", "ReadFile", "WatchCheckpoints"}) {
    std::vector<FakeRegistry::CallSeen> calls = CallsOf(method);
    ASSERT_FALSE(calls.empty()) << method;
    for (const FakeRegistry::CallSeen& c : calls) EXPECT_FALSE(c.has_deadline) << method;
  }
}

TEST_F(ClientTest, EveryCallCarriesTheBearerToken) {
  std::unique_ptr<Client> client = Connect("s3cret");
  ASSERT_TRUE(client->GetLatestCheckpoint("m").ok());
  ASSERT_TRUE(client->Restore("m", tmp_.Join("out"), RestoreOptions()).ok());
  WatchOnce(*client);
  const std::vector<FakeRegistry::CallSeen> calls = fake_.calls();
  // GetLatestCheckpoint twice (one by Restore), ReadFile per file, the watch.
  ASSERT_GE(calls.size(), 6u);
  for (const FakeRegistry::CallSeen& c : calls) {
    EXPECT_EQ(c.authorization, "Bearer s3cret") << c.method;
  }
}

TEST_F(ClientTest, NoTokenSendsNoAuthorizationHeader) {
  std::unique_ptr<Client> client = Connect();
  ASSERT_TRUE(client->GetLatestCheckpoint("m").ok());
  WatchOnce(*client);
  for (const FakeRegistry::CallSeen& c : fake_.calls()) {
    EXPECT_EQ(c.authorization, "") << c.method;
  }
}

TEST_F(ClientTest, AStalledServerEndsAUnaryCallWithDeadlineExceeded) {
  std::unique_ptr<Client> client = Connect("", absl::Milliseconds(300));
  fake_.Stall(true);
  const absl::Time start = absl::Now();
  absl::StatusOr<v1::Checkpoint> latest = client->GetLatestCheckpoint("m");
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kDeadlineExceeded)
      << latest.status();
  EXPECT_LT(absl::Now() - start, absl::Seconds(10));
  fake_.Stall(false);
  EXPECT_TRUE(client->GetLatestCheckpoint("m").ok());
}

TEST_F(ClientTest, TheServersStatusKeepsItsCodeAndMessage) {
  struct Case {
    grpc::StatusCode grpc_code;
    absl::StatusCode code;
  };
  const Case cases[] = {
      {grpc::StatusCode::NOT_FOUND, absl::StatusCode::kNotFound},
      {grpc::StatusCode::ALREADY_EXISTS, absl::StatusCode::kAlreadyExists},
      {grpc::StatusCode::INVALID_ARGUMENT, absl::StatusCode::kInvalidArgument},
      {grpc::StatusCode::FAILED_PRECONDITION, absl::StatusCode::kFailedPrecondition},
      {grpc::StatusCode::PERMISSION_DENIED, absl::StatusCode::kPermissionDenied},
      {grpc::StatusCode::UNAUTHENTICATED, absl::StatusCode::kUnauthenticated},
      {grpc::StatusCode::RESOURCE_EXHAUSTED, absl::StatusCode::kResourceExhausted},
      {grpc::StatusCode::ABORTED, absl::StatusCode::kAborted},
      {grpc::StatusCode::OUT_OF_RANGE, absl::StatusCode::kOutOfRange},
      {grpc::StatusCode::UNIMPLEMENTED, absl::StatusCode::kUnimplemented},
      {grpc::StatusCode::INTERNAL, absl::StatusCode::kInternal},
      {grpc::StatusCode::DATA_LOSS, absl::StatusCode::kDataLoss},
  };
  std::unique_ptr<Client> client = Connect();
  for (const Case& c : cases) {
    fake_.FailWith(grpc::Status(c.grpc_code, "what the server said"));
    absl::StatusOr<v1::Checkpoint> latest = client->GetLatestCheckpoint("m");
    EXPECT_EQ(latest.status().code(), c.code) << latest.status();
    EXPECT_EQ(latest.status().message(), "what the server said");
  }
  // UNAVAILABLE keeps the server's words and says where to look.
  fake_.FailWith(grpc::Status(grpc::StatusCode::UNAVAILABLE, "draining"));
  absl::StatusOr<v1::Checkpoint> latest = client->GetLatestCheckpoint("m");
  EXPECT_EQ(latest.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(latest.status().message(), HasSubstr("draining"));
  EXPECT_THAT(latest.status().message(), HasSubstr("--server"));
}

TEST_F(ClientTest, AnUnreachableServerIsUnavailableAndNamesTheOption) {
  ClientOptions options;
  options.target = "127.0.0.1:1";
  std::unique_ptr<Client> client = std::move(Client::Connect(options)).value();
  absl::StatusOr<v1::Model> model = client->GetModel("m");
  EXPECT_EQ(model.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(model.status().message(), HasSubstr("--server"));
  EXPECT_THAT(model.status().message(), HasSubstr("MGREG_SERVER"));
}

TEST(ClientConnectTest, AMissingAddressOrHalfAClientCertificateIsRefused) {
  ClientOptions options;
  options.target = "";
  EXPECT_EQ(Client::Connect(options).status().code(), absl::StatusCode::kInvalidArgument);
  options.target = "127.0.0.1:1";
  options.use_tls = true;
  options.cert_pem = "-----BEGIN CERTIFICATE-----";
  absl::StatusOr<std::unique_ptr<Client>> half = Client::Connect(options);
  EXPECT_EQ(half.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(half.status().message(), HasSubstr("--cert and --key"));
}

}  // namespace
}  // namespace mgreg::testing
