// Crash safety with the real server process: SIGKILL in the middle of an upload and
// between upload and commit; after a restart on the same data dir the previous latest
// step is intact, the half-pushed step is absent, and a retry succeeds.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/sha256.h"
#include "gtest/gtest.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/process_util.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {
namespace {

namespace fs = std::filesystem;

class CrashTest : public ::testing::Test {
 protected:
  void Start() {
    server_ = std::make_unique<ServerProcess>(
        std::vector<std::string>{"--data-dir", tmp_.Join("data")});
    ASSERT_TRUE(server_->started());
    ClientOptions options;
    options.target = server_->address();
    auto client = Client::Connect(options);
    ASSERT_TRUE(client.ok());
    client_ = std::move(*client);
  }

  std::string MakeCheckpoint(int64_t step, uint32_t seed) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(absl::StrCat("train-", step));
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = 2;
    // ~8 MiB in shard 0, so an upload takes many messages.
    spec.tensors = {{"w", FloatBytes(2 << 20, seed), 0}, {"b", FloatBytes(100, seed), 1}};
    spec.meta = SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  v1::BeginUploadRequest Manifest(const std::string& prefix, int64_t step) {
    v1::BeginUploadRequest begin;
    begin.set_model("m");
    begin.set_step(step);
    begin.set_basename("model.ckpt");
    for (const char* name :
         {"index", "meta", "data-00000-of-00002", "data-00001-of-00002"}) {
      const std::string bytes = ReadFileOrDie(absl::StrCat(prefix, ".", name));
      v1::FileInfo* f = begin.add_files();
      f->set_name(name);
      f->set_size(static_cast<int64_t>(bytes.size()));
      f->set_sha256(Sha256Hex(bytes));
    }
    return begin;
  }

  // The latest step is `step` and restores byte-identical to `prefix`.
  void ExpectLatestIntact(int64_t step, const std::string& prefix) {
    auto latest = client_->GetLatestCheckpoint("m");
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_EQ(latest->step(), step);
    const std::string dir = tmp_.Join(absl::StrCat("restore-", ++restores_));
    RestoreOptions options;
    options.step = step;
    ASSERT_TRUE(client_->Restore("m", dir, options).ok());
    for (const char* suffix : {".index", ".meta", ".data-00000-of-00002"}) {
      EXPECT_EQ(ReadFileOrDie(absl::StrCat(dir, "/model.ckpt-", step, suffix)),
                ReadFileOrDie(prefix + suffix));
    }
  }

  TempDir tmp_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<Client> client_;
  int restores_ = 0;
};

TEST_F(CrashTest, KillDuringUploadAndBeforeCommitLosesNothingCommitted) {
  Start();
  const std::string first = MakeCheckpoint(1, 1);
  ASSERT_TRUE(client_->Push("m", first, PushOptions()).ok());
  const std::string second = MakeCheckpoint(2, 2);

  // 1. SIGKILL in the middle of a PutFile stream.
  {
    auto upload = client_->BeginUpload(Manifest(second, 2));
    ASSERT_TRUE(upload.ok()) << upload.status();
    auto channel =
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    auto stub = v1::Registry::NewStub(channel);
    grpc::ClientContext ctx;
    v1::PutFileResponse response;
    auto writer = stub->PutFile(&ctx, &response);
    v1::PutFileRequest m;
    m.mutable_header()->set_upload_id(upload->upload_id());
    m.mutable_header()->set_name("data-00000-of-00002");
    const std::string data = ReadFileOrDie(second + ".data-00000-of-00002");
    m.set_data(data.substr(0, 3 << 20));
    ASSERT_TRUE(writer->Write(m));
    // Wait until the server holds some of it, then kill it mid-stream.
    for (int i = 0; i < 200; ++i) {
      auto status = client_->GetUpload(upload->upload_id());
      ASSERT_TRUE(status.ok());
      bool held = false;
      for (const auto& f : status->files()) held = held || f.held_bytes() > 0;
      if (held) break;
      ::usleep(10000);
    }
    server_->Stop(SIGKILL);
    writer->Finish();
  }
  Start();
  ExpectLatestIntact(1, first);
  EXPECT_EQ(client_->GetCheckpoint("m", 2).status().code(), absl::StatusCode::kNotFound);

  // 2. SIGKILL after every byte is uploaded, before the commit.
  {
    auto upload = client_->BeginUpload(Manifest(second, 2));
    ASSERT_TRUE(upload.ok()) << upload.status();
    for (const auto& f : upload->files()) {
      auto put = client_->PutFile(upload->upload_id(), f.file().name(),
                                  absl::StrCat(second, ".", f.file().name()));
      ASSERT_TRUE(put.ok()) << put.status();
    }
    server_->Stop(SIGKILL);
  }
  Start();
  ExpectLatestIntact(1, first);
  EXPECT_EQ(client_->GetCheckpoint("m", 2).status().code(), absl::StatusCode::kNotFound);
  auto models = client_->ListCheckpoints("m", 0, "");
  ASSERT_TRUE(models.ok());
  EXPECT_EQ(models->checkpoints_size(), 1);

  // 3. The retry succeeds, and survives another SIGKILL once acknowledged.
  auto retry = client_->Push("m", second, PushOptions());
  ASSERT_TRUE(retry.ok()) << retry.status();
  server_->Stop(SIGKILL);
  Start();
  ExpectLatestIntact(2, second);
  RestoreOptions first_step;
  first_step.step = 1;
  EXPECT_TRUE(client_->Restore("m", tmp_.Join("restore-first"), first_step).ok());
}

}  // namespace
}  // namespace mgreg::testing
