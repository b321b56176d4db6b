// A real server on 127.0.0.1 (RocksDB in a temp dir, or in memory) with a client, and
// helpers to build checkpoints, for the server-level tests.
#ifndef MGREG_TESTS_TESTING_SERVER_FIXTURE_H_
#define MGREG_TESTS_TESTING_SERVER_FIXTURE_H_

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/test_util.h"
#include "tests/testing/upload_manifest.h"

namespace mgreg::testing {

// Sends `messages` on one raw PutFile stream, the first with a header naming `name` of
// upload `upload_id`; closes the stream and returns the server's status (at most 30 s).
inline grpc::Status SendPutFile(v1::Registry::Stub& stub, const std::string& upload_id,
                                const std::string& name,
                                std::vector<v1::PutFileRequest> messages) {
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::PutFileResponse response;
  auto writer = stub.PutFile(&ctx, &response);
  if (!messages.empty()) {
    messages.front().mutable_header()->set_upload_id(upload_id);
    messages.front().mutable_header()->set_name(name);
  }
  for (const v1::PutFileRequest& m : messages) {
    if (!writer->Write(m)) break;
  }
  writer->WritesDone();
  return writer->Finish();
}

// Adds a token to `options`: its name, the SHA-256 of `secret` (what the config file
// holds), `role`, and `prefix` as its one model prefix (none if empty: every model).
inline void AddToken(ServerOptions* options, const std::string& name,
                     const std::string& secret, config::v1::Role role,
                     const std::string& prefix) {
  config::v1::Token* t = options->tokens.Add();
  t->set_name(name);
  t->set_sha256(Sha256Hex(secret));
  t->set_role(role);
  if (!prefix.empty()) t->add_model_prefixes(prefix);
}

class ServerFixture : public ::testing::Test {
 protected:
  // Starts (or restarts, on the same data dir) the server with `options` adjusted for
  // tests: loopback port 0, the fixture's data dir.
  void StartServer(ServerOptions options = ServerOptions()) {
    client_.reset();
    server_.reset();
    options.listen_address = "127.0.0.1:0";
    options.data_dir = tmp_.Join("data");
    auto server = RegistryServer::BuildAndStart(options);
    ASSERT_TRUE(server.ok()) << server.status();
    server_ = std::move(*server);
    ClientOptions client_options;
    client_options.target = server_->address();
    auto client = Client::Connect(client_options);
    ASSERT_TRUE(client.ok()) << client.status();
    client_ = std::move(*client);
  }

  std::unique_ptr<Client> NewClient() {
    ClientOptions client_options;
    client_options.target = server_->address();
    return std::move(Client::Connect(client_options)).value();
  }

  // A checkpoint under tmp/<dir>: `shards` shards; tensor i of `tensors` has
  // `floats` floats and content seeded by seeds[i] (default: seed + i).
  std::string MakeCheckpoint(const std::string& dir, int64_t step, uint32_t seed,
                             int shards = 2, int tensors = 4, size_t floats = 40000,
                             bool with_meta = true) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(dir);
    std::filesystem::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = shards;
    for (int i = 0; i < tensors; ++i) {
      spec.tensors.push_back(
          {absl::StrCat("layer", i, "/w"), FloatBytes(floats, seed + i), i % shards});
    }
    if (with_meta) spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  StoreStats Stats() {
    auto stats = server_->store()->GetStats();
    EXPECT_TRUE(stats.ok()) << stats.status();
    return stats.ok() ? *stats : StoreStats();
  }

  // The manifest of the checkpoint at `prefix`, for the raw upload API.
  v1::BeginUploadRequest Manifest(const std::string& model, int64_t step,
                                  const std::string& prefix) {
    return UploadManifest(model, step, prefix);
  }

  TempDir tmp_;
  std::unique_ptr<RegistryServer> server_;
  std::unique_ptr<Client> client_;
};

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_SERVER_FIXTURE_H_
