// What an operator relies on, in process over real gRPC on 127.0.0.1: /metrics,
// grpc.health.v1, reflection, TLS and mutual TLS, bearer tokens with roles on model
// prefixes, upload limits, and backup/restore.
#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/grpcpp.h>
#include <unistd.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/http_client.h"
#include "tests/testing/process_util.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_pki.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;
using ::mgreg::testing::AddToken;
using ::mgreg::testing::CheckpointSpec;
using ::mgreg::testing::FloatBytes;
using ::mgreg::testing::HttpGet;
using ::mgreg::testing::MakePki;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::RunCommand;
using ::mgreg::testing::TempDir;
using ::mgreg::testing::TestPki;
using ::mgreg::testing::WriteCheckpoint;
using ::mgreg::testing::WriteFileOrDie;
using ::testing::HasSubstr;

std::string MakeCheckpoint(const TempDir& tmp, int64_t step, uint32_t seed) {
  CheckpointSpec spec;
  spec.directory = tmp.Join(absl::StrCat("ckpt-", step, "-", seed));
  fs::create_directories(spec.directory);
  spec.step = step;
  spec.num_shards = 2;
  for (int i = 0; i < 3; ++i) {
    spec.tensors.push_back(
        {absl::StrCat("dense/w", i), FloatBytes(5000, seed + i), i % 2});
  }
  spec.meta = testing::SmallMetaGraphBytes();
  return WriteCheckpoint(spec);
}

std::unique_ptr<RegistryServer> StartServer(ServerOptions options) {
  if (options.listen_address == "127.0.0.1:8470") options.listen_address = "127.0.0.1:0";
  auto server = RegistryServer::BuildAndStart(options);
  EXPECT_TRUE(server.ok()) << server.status();
  return server.ok() ? std::move(*server) : nullptr;
}

std::unique_ptr<Client> Connect(const std::string& address, ClientOptions options = {}) {
  options.target = address;
  auto client = Client::Connect(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? std::move(*client) : nullptr;
}

ServerOptions InMemory() {
  ServerOptions o;
  o.in_memory = true;
  return o;
}

// --- metrics ---------------------------------------------------------------------

TEST(ProductionServerTest, MetricsCountCallsByMethodAndCodeAndStoreFigures) {
  TempDir tmp;
  ServerOptions options;
  options.data_dir = tmp.Join("data");
  options.metrics_listen_address = "127.0.0.1:0";
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  ASSERT_GT(server->metrics_port(), 0);
  auto client = Connect(server->address());
  EXPECT_EQ(client->ListCheckpoints("nope", 10, "").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(client->Push("m", MakeCheckpoint(tmp, 7, 1), {}).ok());

  testing::HttpResponse r = HttpGet(server->metrics_port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_THAT(r.headers, HasSubstr("text/plain; version=0.0.4"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_grpc_requests_total{method="
                                "\"ListCheckpoints\",code=\"NOT_FOUND\"} 1\n"));
  EXPECT_THAT(
      r.body,
      HasSubstr("mgreg_grpc_requests_total{method=\"CommitUpload\",code=\"OK\"} 1\n"));
  EXPECT_THAT(r.body,
              HasSubstr("mgreg_grpc_request_duration_seconds_count{method=\"PutFile\"}"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_grpc_received_bytes_total{method=\"PutFile\"}"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_store_checkpoints 1\n"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_upload_sessions_open 0\n"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_watchers_connected 0\n"));
  EXPECT_THAT(r.body, HasSubstr("mgreg_rocksdb_live_sst_files_bytes "));
  // No model names in labels.
  EXPECT_THAT(r.body, ::testing::Not(HasSubstr("\"m\"")));
  EXPECT_EQ(HttpGet(server->metrics_port(), "/other").status, 404);
  // The live exposition, with real traffic in it, passes promtool's checks.
  if (::access("/usr/bin/promtool", X_OK) == 0) {
    WriteFileOrDie(tmp.Join("scrape.txt"), r.body);
    auto check = RunCommand(
        {"/bin/sh", "-c", "/usr/bin/promtool check metrics < " + tmp.Join("scrape.txt")});
    EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
    EXPECT_EQ(check.out + check.err, "") << "promtool lint findings";
  }

  // An open Watch stream shows in the watchers gauge (bounded poll: it registers
  // asynchronously).
  v1::WatchCheckpointsRequest watch;
  watch.set_model("m");
  std::unique_ptr<WatchStream> stream = client->Watch(watch);
  bool seen = false;
  for (int i = 0; i < 200 && !seen; ++i) {
    seen = HttpGet(server->metrics_port(), "/metrics")
               .body.find("mgreg_watchers_connected 1\n") != std::string::npos;
    if (!seen) absl::SleepFor(absl::Milliseconds(50));
  }
  EXPECT_TRUE(seen);
  stream->Cancel();
  (void)stream->Finish();
}

// --- health and reflection --------------------------------------------------------

TEST(ProductionServerTest, HealthIsServingThenNotServingWhileDraining) {
  auto server = StartServer(InMemory());
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address());
  auto status = client->CheckHealth();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, "SERVING");
  EXPECT_EQ(client->CheckHealth("mgreg.v1.Registry").value_or(""), "SERVING");
  EXPECT_EQ(client->CheckHealth("no.such.Service").status().code(),
            absl::StatusCode::kNotFound);
  server->StartDraining();
  status = client->CheckHealth();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(*status, "NOT_SERVING");
  EXPECT_EQ(client->CheckHealth("mgreg.v1.Registry").value_or(""), "NOT_SERVING");
  // Calls are still served while draining.
  EXPECT_EQ(client->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);
}

// Asks the reflection service to list services, with hand-encoded messages
// (ServerReflectionRequest.list_services is field 7).
std::string ListServicesViaReflection(const std::string& address) {
  auto channel = grpc::CreateChannel(address, grpc::InsecureChannelCredentials());
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue cq;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  auto call = stub.PrepareCall(
      &ctx, "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo", &cq);
  void* tag;
  bool ok;
  auto next = [&]() { return cq.Next(&tag, &ok) && ok; };
  call->StartCall(reinterpret_cast<void*>(1));
  if (!next()) return "";
  const std::string request("\x3a\x00", 2);
  grpc::Slice slice(request);
  grpc::ByteBuffer out(&slice, 1);
  call->Write(out, reinterpret_cast<void*>(2));
  if (!next()) return "";
  grpc::ByteBuffer in;
  call->Read(&in, reinterpret_cast<void*>(3));
  std::string response;
  if (next()) {
    std::vector<grpc::Slice> slices;
    (void)in.Dump(&slices);
    for (const grpc::Slice& s : slices) {
      response.append(reinterpret_cast<const char*>(s.begin()), s.size());
    }
  }
  call->WritesDone(reinterpret_cast<void*>(4));
  next();
  grpc::Status status;
  call->Finish(&status, reinterpret_cast<void*>(5));
  next();
  return response;
}

TEST(ProductionServerTest, ReflectionListsTheRegistryAndHealthServices) {
  auto server = StartServer(InMemory());
  ASSERT_NE(server, nullptr);
  const std::string services = ListServicesViaReflection(server->address());
  EXPECT_THAT(services, HasSubstr("mgreg.v1.Registry"));
  EXPECT_THAT(services, HasSubstr("grpc.health.v1.Health"));
}

// --- tokens ---------------------------------------------------------------------

class TokenTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServerOptions options = InMemory();
    options.metrics_listen_address = "127.0.0.1:0";
    AddToken(&options, "team-a-writer", "tok-a-writer", config::v1::ROLE_WRITER,
             "team-a/");
    AddToken(&options, "team-b-writer", "tok-b-writer", config::v1::ROLE_WRITER,
             "team-b/");
    AddToken(&options, "team-a-reader", "tok-a-reader", config::v1::ROLE_READER,
             "team-a/");
    AddToken(&options, "ops", "tok-admin", config::v1::ROLE_ADMIN, "");
    server_ = StartServer(options);
    ASSERT_NE(server_, nullptr);
  }

  std::unique_ptr<Client> As(const std::string& token) {
    ClientOptions o;
    o.token = token;
    return Connect(server_->address(), o);
  }

  TempDir tmp_;
  std::unique_ptr<RegistryServer> server_;
};

TEST_F(TokenTest, MissingOrWrongTokenIsUnauthenticated) {
  EXPECT_EQ(As("")->GetLatestCheckpoint("team-a/m").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(As("guess")->GetLatestCheckpoint("team-a/m").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(As("")->Push("team-a/m", MakeCheckpoint(tmp_, 1, 1), {}).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenTest, WriterPushesOnlyUnderItsPrefix) {
  auto a = As("tok-a-writer");
  ASSERT_TRUE(a->Push("team-a/m", MakeCheckpoint(tmp_, 1, 1), {}).ok());
  EXPECT_EQ(a->Push("team-b/m", MakeCheckpoint(tmp_, 1, 2), {}).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(a->DeleteCheckpoint("team-b/m", 1).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(a->GetLatestCheckpoint("team-a/m").value().step(), 1);
}

TEST_F(TokenTest, ReaderReadsButCannotWrite) {
  ASSERT_TRUE(As("tok-a-writer")->Push("team-a/m", MakeCheckpoint(tmp_, 3, 1), {}).ok());
  auto r = As("tok-a-reader");
  EXPECT_EQ(r->GetLatestCheckpoint("team-a/m").value().step(), 3);
  std::string graph;
  EXPECT_TRUE(r->FetchGraphBytes("team-a/m", std::nullopt, {}, &graph).ok());
  EXPECT_EQ(r->DeleteCheckpoint("team-a/m", 3).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(r->GetLatestCheckpoint("team-b/m").status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(r->Backup(tmp_.Join("bk")).status().code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(TokenTest, ListModelsShowsATokenOnlyItsModels) {
  ASSERT_TRUE(As("tok-a-writer")->Push("team-a/m", MakeCheckpoint(tmp_, 1, 1), {}).ok());
  ASSERT_TRUE(As("tok-b-writer")->Push("team-b/m", MakeCheckpoint(tmp_, 1, 2), {}).ok());
  auto a = As("tok-a-reader")->ListModels(100, "");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_EQ(a->models_size(), 1);
  EXPECT_EQ(a->models(0).name(), "team-a/m");
  auto all = As("tok-admin")->ListModels(100, "");
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->models_size(), 2);
  EXPECT_EQ(As("")->ListModels(100, "").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(TokenTest, WatchingEveryModelShowsATokenOnlyItsModels) {
  auto reader = As("tok-a-reader");
  v1::WatchCheckpointsRequest request;
  request.set_all_models(true);
  request.set_since_revision(-1);
  std::unique_ptr<WatchStream> stream = reader->Watch(request);
  v1::WatchEvent event;
  ASSERT_TRUE(stream->Next(&event));
  ASSERT_EQ(event.type(), v1::WatchEvent::PROGRESS);  // live
  ASSERT_TRUE(As("tok-b-writer")->Push("team-b/m", MakeCheckpoint(tmp_, 1, 2), {}).ok());
  ASSERT_TRUE(As("tok-a-writer")->Push("team-a/m", MakeCheckpoint(tmp_, 2, 1), {}).ok());
  ASSERT_TRUE(stream->Next(&event));
  EXPECT_EQ(event.model(), "team-a/m");  // team-b's commit was not shown
  stream->Cancel();
  stream->Finish().IgnoreError();
  EXPECT_EQ(As("tok-a-reader")
                ->Watch([] {
                  v1::WatchCheckpointsRequest r;
                  r.set_prefix("team-b/");
                  return r;
                }())
                ->Finish()
                .code(),
            absl::StatusCode::kPermissionDenied);
}

TEST_F(TokenTest, UploadCallsAreAuthorizedOnTheUploadsModel) {
  const std::string prefix = MakeCheckpoint(tmp_, 5, 1);
  auto local = FindLocalCheckpoint(prefix);
  ASSERT_TRUE(local.ok());
  v1::BeginUploadRequest begin;
  begin.set_model("team-a/m");
  begin.set_step(5);
  begin.set_basename("model.ckpt");
  for (const auto& [name, path] : local->files) {
    v1::FileInfo* f = begin.add_files();
    f->set_name(name);
    const std::string bytes = ReadFileOrDie(path);
    f->set_size(static_cast<int64_t>(bytes.size()));
    f->set_sha256(Sha256Hex(bytes));
  }
  auto a = As("tok-a-writer");
  auto upload = a->BeginUpload(begin);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = upload->upload_id();
  auto b = As("tok-b-writer");
  EXPECT_EQ(b->PutFile(id, "index", local->files.at("index")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(b->CommitUpload(id).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(b->AbortUpload(id).code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(As("tok-a-reader")->AbortUpload(id).code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(As("")->GetUpload(id).status().code(), absl::StatusCode::kUnauthenticated);
  for (const auto& [name, path] : local->files)
    ASSERT_TRUE(a->PutFile(id, name, path).ok());
  EXPECT_TRUE(a->CommitUpload(id).ok());
}

TEST_F(TokenTest, AdminBacksUpAndHealthNeedsNoToken) {
  EXPECT_EQ(As("tok-a-writer")->Backup(tmp_.Join("bk")).status().code(),
            absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(As("tok-admin")->Backup(tmp_.Join("bk")).status().code(),
            absl::StatusCode::kFailedPrecondition);  // in memory: authorized, refused
  EXPECT_EQ(As("")->CheckHealth().value_or(""), "SERVING");
  const std::string body = HttpGet(server_->metrics_port(), "/metrics").body;
  EXPECT_THAT(body, HasSubstr("mgreg_auth_failures_total{code=\"PERMISSION_DENIED\"}"));
  EXPECT_THAT(body, ::testing::Not(HasSubstr("tok-")));
}

// --- limits ---------------------------------------------------------------------

TEST(ProductionServerTest, UploadLimitsAreResourceExhausted) {
  TempDir tmp;
  ServerOptions options = InMemory();
  options.limits.max_upload_bytes = 1000;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  EXPECT_EQ(Connect(server->address())
                ->Push("m", MakeCheckpoint(tmp, 1, 1), {})
                .status()
                .code(),
            absl::StatusCode::kResourceExhausted);

  options.limits.max_upload_bytes = 0;
  options.limits.max_concurrent_uploads_per_writer = 1;
  auto server2 = StartServer(options);
  ASSERT_NE(server2, nullptr);
  auto client = Connect(server2->address());
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_basename("model.ckpt");
  v1::FileInfo* f = begin.add_files();
  f->set_name("index");
  f->set_size(3);
  f->set_sha256(Sha256Hex("abc"));
  f = begin.add_files();
  f->set_name("data-00000-of-00001");
  f->set_size(3);
  f->set_sha256(Sha256Hex("def"));
  begin.set_step(1);
  auto first = client->BeginUpload(begin);
  ASSERT_TRUE(first.ok()) << first.status();
  begin.set_step(2);
  EXPECT_EQ(client->BeginUpload(begin).status().code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(client->AbortUpload(first->upload_id()).ok());
  EXPECT_TRUE(client->BeginUpload(begin).ok());
}

TEST(ProductionServerTest, StreamsBeyondMaxOpenStreamsAreResourceExhausted) {
  ServerOptions options = InMemory();
  options.limits.max_open_streams = 2;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto channel =
      grpc::CreateChannel(server->address(), grpc::InsecureChannelCredentials());
  auto stub = v1::Registry::NewStub(channel);
  v1::WatchCheckpointsRequest request;
  request.set_all_models(true);
  // Two watches hold both slots: each has its first event (PROGRESS) once live.
  struct Watch {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::WatchEvent>> reader;
  };
  Watch watches[2];
  for (Watch& w : watches) {
    w.ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    w.reader = stub->WatchCheckpoints(&w.ctx, request);
    v1::WatchEvent event;
    ASSERT_TRUE(w.reader->Read(&event));
  }
  // A third stream of any kind is refused, naming the limit; unary calls go on.
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub->WatchCheckpoints(&ctx, request);
    v1::WatchEvent event;
    EXPECT_FALSE(reader->Read(&event));
    grpc::Status status = reader->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("limits.max_open_streams"));
  }
  {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    v1::ReadFileRequest read;
    read.set_model("m");
    read.set_step(1);
    read.set_name("index");
    auto reader = stub->ReadFile(&ctx, read);
    v1::FileChunk chunk;
    EXPECT_FALSE(reader->Read(&chunk));
    EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  }
  auto client = Connect(server->address());
  EXPECT_EQ(client->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);

  // Ending one watch frees its slot (once the server has seen the cancel).
  watches[0].ctx.TryCancel();
  watches[0].reader->Finish();
  grpc::StatusCode code = grpc::StatusCode::RESOURCE_EXHAUSTED;
  for (int i = 0; i < 200 && code == grpc::StatusCode::RESOURCE_EXHAUSTED; ++i) {
    grpc::ClientContext ctx;
    ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    auto reader = stub->WatchCheckpoints(&ctx, request);
    v1::WatchEvent event;
    if (reader->Read(&event)) {
      code = grpc::StatusCode::OK;
      ctx.TryCancel();
    } else {
      code = reader->Finish().error_code();
      absl::SleepFor(absl::Milliseconds(10));
    }
  }
  EXPECT_EQ(code, grpc::StatusCode::OK);
  watches[1].ctx.TryCancel();
  watches[1].reader->Finish();
}

TEST(ProductionServerTest, AMessageOverMaxMessageBytesIsResourceExhausted) {
  ServerOptions options = InMemory();
  options.max_message_bytes = 4 << 20;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  auto channel = grpc::CreateCustomChannel(server->address(),
                                           grpc::InsecureChannelCredentials(), args);
  auto stub = v1::Registry::NewStub(channel);
  v1::PutFileRequest m;
  m.set_data(std::string((4 << 20) + 1, 'x'));
  grpc::Status status = testing::SendPutFile(*stub, "u", "index", {m});
  EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  // gRPC's own message names the sizes: "... larger than max (4194333 vs. 4194304)".
  EXPECT_THAT(status.error_message(), HasSubstr("4194304"));
}

// --- security of the listen address ----------------------------------------------

TEST(ProductionServerTest, PlaintextOnANonLoopbackAddressNeedsInsecure) {
  ServerOptions options = InMemory();
  options.listen_address = "0.0.0.0:0";
  EXPECT_EQ(RegistryServer::BuildAndStart(options).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- TLS --------------------------------------------------------------------------

// An in-memory server presenting the PKI's server certificate.
ServerOptions TlsServer(const TestPki& pki) {
  ServerOptions options = InMemory();
  options.tls.cert_pem = pki.server_cert;
  options.tls.key_pem = pki.server_key;
  return options;
}

// A client trusting the PKI's CA, without a certificate of its own.
ClientOptions TlsClient(const TestPki& pki) {
  ClientOptions options;
  options.use_tls = true;
  options.ca_cert_pem = pki.ca;
  options.unary_timeout = absl::Seconds(10);
  return options;
}

TEST(ProductionServerTest, TlsServerServesTlsClientsOnly) {
  TempDir tmp;
  TestPki pki;
  ASSERT_TRUE(MakePki(tmp, &pki));
  auto server = StartServer(TlsServer(pki));
  ASSERT_NE(server, nullptr);

  ClientOptions tls = TlsClient(pki);
  EXPECT_EQ(Connect(server->address(), tls)->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);  // reached the service
  ClientOptions plain;
  plain.unary_timeout = absl::Seconds(10);
  EXPECT_EQ(Connect(server->address(), plain)->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kUnavailable);
  ClientOptions wrong_ca = tls;
  wrong_ca.ca_cert_pem = pki.other_ca;
  EXPECT_EQ(
      Connect(server->address(), wrong_ca)->GetLatestCheckpoint("m").status().code(),
      absl::StatusCode::kUnavailable);
}

TEST(ProductionServerTest, MutualTlsRequiresAClientCertificateFromTheCa) {
  TempDir tmp;
  TestPki pki;
  ASSERT_TRUE(MakePki(tmp, &pki));
  ServerOptions options = TlsServer(pki);
  options.tls.client_ca_pem = pki.ca;
  options.tls.require_client_cert = true;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);

  ClientOptions no_cert = TlsClient(pki);
  EXPECT_EQ(Connect(server->address(), no_cert)->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kUnavailable);
  ClientOptions with_cert = no_cert;
  with_cert.cert_pem = pki.client_cert;
  with_cert.key_pem = pki.client_key;
  EXPECT_EQ(
      Connect(server->address(), with_cert)->GetLatestCheckpoint("m").status().code(),
      absl::StatusCode::kNotFound);
}

// --- backup -----------------------------------------------------------------------

TEST(ProductionServerTest, BackupWhileServingRestoresIntoANewServerWithEveryStep) {
  TempDir tmp;
  ServerOptions options;
  options.data_dir = tmp.Join("data");
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address());
  struct Pushed {
    std::string model;
    int64_t step;
    v1::Checkpoint checkpoint;
  };
  std::vector<Pushed> pushed;
  for (auto [model, step, seed] :
       {std::tuple<const char*, int, int>{"a", 1, 1}, {"a", 2, 2}, {"team-b/x", 10, 3}}) {
    auto c = client->Push(model, MakeCheckpoint(tmp, step, seed), {});
    ASSERT_TRUE(c.ok()) << c.status();
    pushed.push_back({model, step, *c});
  }
  auto backup = client->Backup(tmp.Join("backup"));
  ASSERT_TRUE(backup.ok()) << backup.status();
  EXPECT_EQ(backup->checkpoints(), 3);
  EXPECT_EQ(client->Backup(tmp.Join("backup")).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client->Backup("relative/dir").status().code(),
            absl::StatusCode::kInvalidArgument);
  // The original keeps serving and changing; the backup does not see later changes.
  ASSERT_TRUE(client->DeleteCheckpoint("a", 1).ok());

  ServerOptions restored_options;
  restored_options.data_dir = tmp.Join("backup");
  auto restored = StartServer(restored_options);
  ASSERT_NE(restored, nullptr);
  auto rc = Connect(restored->address());
  for (const Pushed& p : pushed) {
    auto got = rc->GetCheckpoint(p.model, p.step);
    ASSERT_TRUE(got.ok()) << p.model << " " << p.step << ": " << got.status();
    EXPECT_EQ(got->files_size(), p.checkpoint.files_size());
    RestoreOptions ro;
    ro.step = p.step;
    const std::string dir = tmp.Join(absl::StrCat("restore-", p.step));
    auto r = rc->Restore(p.model, dir, ro);  // verifies every file's SHA-256
    ASSERT_TRUE(r.ok()) << r.status();
  }
  EXPECT_EQ(rc->GetLatestCheckpoint("a").value().step(), 2);
}

// http2_bdp_probe (config.proto): with gRPC's BDP probing back on, the server starts and
// a push of several messages per file is served and restores byte for byte. (Which
// channel argument the setting picks: config_test's Http2ChannelArguments case.)
TEST(ProductionServerTest, WithBdpProbingOnPushesAndRestoresAreServed) {
  TempDir tmp;
  ServerOptions options = InMemory();
  options.http2_bdp_probe = true;
  auto server = StartServer(options);
  ASSERT_NE(server, nullptr);
  auto client = Connect(server->address());
  CheckpointSpec spec;
  spec.directory = tmp.Join("big");
  fs::create_directories(spec.directory);
  spec.step = 1;
  spec.num_shards = 2;
  // 3 x 4 MiB of tensors: each data file takes several of the client's 2 MiB messages.
  for (int i = 0; i < 3; ++i) {
    spec.tensors.push_back(
        {absl::StrCat("dense/w", i), FloatBytes(1 << 20, 7 + i), i % 2});
  }
  spec.meta = testing::SmallMetaGraphBytes();
  auto pushed = client->Push("far", WriteCheckpoint(spec), {});
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  RestoreOptions ro;
  ro.step = 1;
  auto restored = client->Restore("far", tmp.Join("restored"), ro);  // checks SHA-256s
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_EQ(restored->files_size(), pushed->files_size());
  int64_t bytes = 0;
  for (const v1::FileInfo& f : restored->files()) bytes += f.size();
  EXPECT_GT(bytes, 12 << 20);
}

TEST(ProductionServerTest, InMemoryStoreCannotBeBackedUp) {
  TempDir tmp;
  auto server = StartServer(InMemory());
  ASSERT_NE(server, nullptr);
  auto r = Connect(server->address())->Backup(tmp.Join("bk"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("in-memory"));
}

}  // namespace
}  // namespace mgreg
