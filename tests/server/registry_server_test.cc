// The registry end to end over gRPC on 127.0.0.1: a real server (in memory and on
// RocksDB) and the C++ client, with checkpoints built by the test and real TensorFlow
// files from the test data.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "client/client.h"
#include "common/file_digest.h"
#include "common/sha256.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/checkpoint_state.h"
#include "metagraph/metagraph_io.h"
#include "mgreg/v1/registry.grpc.pb.h"
#include "server/server.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;
using ::mgreg::testing::CheckpointSpec;
using ::mgreg::testing::FloatBytes;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;
using ::mgreg::testing::WriteCheckpoint;
using ::mgreg::testing::WriteFileOrDie;
using ::testing::HasSubstr;

constexpr char kTfxPrefix[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000";
constexpr char kT2tPrefix[] =
    "t2t/tensor2tensor/test_data/transformer_test_ckpt/model.ckpt-1";

enum class Backend { kMemory, kRocksDb };

class RegistryServerTest : public testing::ServerFixture,
                           public ::testing::WithParamInterface<Backend> {
 protected:
  void SetUp() override {
    ServerOptions options;
    options.in_memory = GetParam() == Backend::kMemory;
    options.service.chunk_bytes = 64 << 10;  // several chunks even for small files
    ASSERT_NO_FATAL_FAILURE(StartServer(options));
    channel_ =
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials());
    stub_ = v1::Registry::NewStub(channel_);
  }

  // A checkpoint with `shards` data shards and a .meta, written under the temp dir.
  std::string MakeStep(int64_t step, uint32_t seed = 1, int shards = 2,
                       bool with_meta = true, const std::string& dir_name = "ckpt") {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(dir_name);
    fs::create_directories(spec.directory);
    spec.step = step;
    spec.num_shards = shards;
    for (int i = 0; i < 4; ++i) {
      spec.tensors.push_back(
          {absl::StrCat("dense/w", i), FloatBytes(40000, seed + i), i % shards});
    }
    if (with_meta) spec.meta = testing::SmallMetaGraphBytes();
    return WriteCheckpoint(spec);
  }

  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Registry::Stub> stub_;
};

INSTANTIATE_TEST_SUITE_P(Backends, RegistryServerTest,
                         ::testing::Values(Backend::kMemory, Backend::kRocksDb),
                         [](const auto& info) {
                           return info.param == Backend::kMemory ? "Memory" : "RocksDb";
                         });

TEST_P(RegistryServerTest, PushThenLatestListGraphAndRestoreRoundTrip) {
  const std::string prefix = MakeStep(1000);
  PushOptions push;
  push.metadata["loss"] = "0.25";
  auto pushed = client_->Push("resnet", prefix, push);
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->step(), 1000);
  EXPECT_EQ(pushed->basename(), "model.ckpt");
  ASSERT_EQ(pushed->files_size(), 4);  // data x2, index, meta
  EXPECT_EQ(pushed->metadata().at("loss"), "0.25");

  auto latest = client_->GetLatestCheckpoint("resnet");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ(latest->step(), 1000);
  EXPECT_EQ(latest->graph_sha256(), Sha256Hex(ReadFileOrDie(prefix + ".meta")));

  auto models = client_->ListModels(0, "");
  ASSERT_TRUE(models.ok()) << models.status();
  ASSERT_EQ(models->models_size(), 1);
  EXPECT_EQ(models->models(0).name(), "resnet");
  EXPECT_EQ(models->models(0).latest_step(), 1000);

  std::string graph;
  auto info =
      client_->FetchGraphBytes("resnet", std::nullopt, v1::GraphOptions(), &graph);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(graph, ReadFileOrDie(prefix + ".meta"));  // D1: byte-identical

  const std::string dir = tmp_.Join("restored");
  auto restored = client_->Restore("resnet", dir, RestoreOptions());
  ASSERT_TRUE(restored.ok()) << restored.status();
  for (const char* suffix :
       {".index", ".meta", ".data-00000-of-00002", ".data-00001-of-00002"}) {
    EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1000" + suffix),
              ReadFileOrDie(prefix + suffix))
        << suffix;
  }
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok()) << state.status();
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-1000");
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ::testing::ElementsAre("model.ckpt-1000"));
}

TEST_P(RegistryServerTest, RestoringASecondStepKeepsTheFirstInTheStateFile) {
  ASSERT_TRUE(client_->Push("m", MakeStep(1, 1), PushOptions()).ok());
  ASSERT_TRUE(client_->Push("m", MakeStep(2, 2), PushOptions()).ok());
  const std::string dir = tmp_.Join("restored");
  RestoreOptions first;
  first.step = 1;
  ASSERT_TRUE(client_->Restore("m", dir, first).ok());
  ASSERT_TRUE(client_->Restore("m", dir, RestoreOptions()).ok());
  auto state = ParseCheckpointState(ReadFileOrDie(dir + "/checkpoint"));
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->model_checkpoint_path(), "model.ckpt-2");
  EXPECT_THAT(state->all_model_checkpoint_paths(),
              ::testing::ElementsAre("model.ckpt-1", "model.ckpt-2"));
}

TEST_P(RegistryServerTest, RealTfxCheckpointRoundTripsByteForByte) {
  MGREG_REQUIRE_TESTDATA();
  const std::string prefix = TestdataPath(kTfxPrefix);
  auto pushed = client_->Push("tfx/trainer", prefix, PushOptions());
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->step(), 1000);
  const std::string dir = tmp_.Join("restored");
  ASSERT_TRUE(client_->Restore("tfx/trainer", dir, RestoreOptions()).ok());
  for (const char* suffix : {".index", ".meta", ".data-00000-of-00001"}) {
    EXPECT_EQ(ReadFileOrDie(dir + "/model.ckpt-1000" + suffix),
              ReadFileOrDie(prefix + suffix))
        << suffix;
  }
}

TEST_P(RegistryServerTest, RealShardedCheckpointWithoutMetaHasNoGraph) {
  MGREG_REQUIRE_TESTDATA();
  auto pushed = client_->Push("t2t", TestdataPath(kT2tPrefix), PushOptions());
  ASSERT_TRUE(pushed.ok()) << pushed.status();
  EXPECT_EQ(pushed->files_size(), 3);
  EXPECT_TRUE(pushed->graph_sha256().empty());
  std::string graph;
  EXPECT_EQ(
      client_->FetchGraphBytes("t2t", 1, v1::GraphOptions(), &graph).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, PushingTheSameStepAgainIsIdempotentAndSendsNothing) {
  const std::string prefix = MakeStep(7);
  auto first = client_->Push("m", prefix, PushOptions());
  ASSERT_TRUE(first.ok()) << first.status();
  const StoreStats before = Stats();
  int64_t sent_after_begin = -1;
  PushOptions again;
  again.progress = [&](int64_t done, int64_t) {
    if (sent_after_begin < 0) sent_after_begin = done;
  };
  auto second = client_->Push("m", prefix, again);
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(second->revision(), first->revision());
  EXPECT_EQ(Stats().chunk_bytes, before.chunk_bytes);
  EXPECT_EQ(sent_after_begin, first->total_bytes());  // everything already held
}

TEST_P(RegistryServerTest, PushingDifferentContentToAnExistingStepNeedsOverwrite) {
  ASSERT_TRUE(client_->Push("m", MakeStep(7, 1, 2, true, "a"), PushOptions()).ok());
  const std::string other = MakeStep(7, 99, 2, true, "b");
  auto conflict = client_->Push("m", other, PushOptions());
  EXPECT_EQ(conflict.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_THAT(conflict.status().message(), HasSubstr("--overwrite"));
  PushOptions overwrite;
  overwrite.overwrite = true;
  auto replaced = client_->Push("m", other, overwrite);
  ASSERT_TRUE(replaced.ok()) << replaced.status();
  auto latest = client_->GetLatestCheckpoint("m");
  ASSERT_TRUE(latest.ok());
  EXPECT_EQ(latest->files(0).chunked_sha256(),
            ChunkedSha256Hex(ReadFileOrDie(other + "." + latest->files(0).name())));
}

TEST_P(RegistryServerTest, TheSameMetaGraphAtHundredStepsIsStoredOnce) {
  const std::string prefix = MakeStep(0);
  ASSERT_TRUE(client_->Push("m", prefix, PushOptions()).ok());
  const int64_t meta_size = static_cast<int64_t>(ReadFileOrDie(prefix + ".meta").size());
  const StoreStats one = Stats();
  for (int step = 1; step < 100; ++step) {
    PushOptions push;
    push.step = step;
    ASSERT_TRUE(client_->Push("m", prefix, push).ok()) << step;
  }
  const StoreStats hundred = Stats();
  EXPECT_EQ(hundred.checkpoints, 100);
  // Identical files (meta, index and data) are stored once: no byte added.
  EXPECT_EQ(hundred.chunk_bytes, one.chunk_bytes);
  EXPECT_GT(meta_size, 0);
}

TEST_P(RegistryServerTest, DeleteFreesExactlyTheBytesNothingElseUses) {
  const StoreStats empty = Stats();
  ASSERT_TRUE(client_->Push("m", MakeStep(1, 1), PushOptions()).ok());
  const StoreStats one = Stats();
  ASSERT_TRUE(client_->Push("m", MakeStep(2, 2), PushOptions()).ok());
  auto freed = client_->DeleteCheckpoint("m", 2);
  ASSERT_TRUE(freed.ok()) << freed.status();
  EXPECT_GT(*freed, 0);
  EXPECT_EQ(Stats().chunk_bytes, one.chunk_bytes);  // the shared .meta stays
  ASSERT_TRUE(client_->DeleteCheckpoint("m", 1).ok());
  EXPECT_EQ(Stats().chunk_bytes, empty.chunk_bytes);
  EXPECT_EQ(client_->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->DeleteCheckpoint("m", 1).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, LatestIsTheHighestStepAndMovesBackOnDelete) {
  ASSERT_TRUE(client_->Push("m", MakeStep(20, 1), PushOptions()).ok());
  ASSERT_TRUE(client_->Push("m", MakeStep(10, 2), PushOptions()).ok());
  EXPECT_EQ(client_->GetLatestCheckpoint("m")->step(), 20);
  ASSERT_TRUE(client_->DeleteCheckpoint("m", 20).ok());
  EXPECT_EQ(client_->GetLatestCheckpoint("m")->step(), 10);
}

TEST_P(RegistryServerTest, ListingsPaginateAndRejectTokensFromOtherListings) {
  const std::string prefix = MakeStep(0);
  for (int step = 0; step < 5; ++step) {
    PushOptions push;
    push.step = step;
    ASSERT_TRUE(client_->Push("m", prefix, push).ok());
    ASSERT_TRUE(client_->Push(absl::StrCat("model-", step), prefix, push).ok());
  }
  std::vector<int64_t> steps;
  std::string token;
  do {
    auto page = client_->ListCheckpoints("m", 2, token);
    ASSERT_TRUE(page.ok()) << page.status();
    EXPECT_LE(page->checkpoints_size(), 2);
    for (const auto& c : page->checkpoints()) steps.push_back(c.step());
    token = page->next_page_token();
  } while (!token.empty());
  EXPECT_THAT(steps, ::testing::ElementsAre(0, 1, 2, 3, 4));

  auto models = client_->ListModels(2, "");
  ASSERT_TRUE(models.ok());
  ASSERT_FALSE(models->next_page_token().empty());
  auto wrong = client_->ListCheckpoints("m", 2, models->next_page_token());
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(wrong.status().message(), HasSubstr("another listing"));
  auto other_model = client_->ListCheckpoints("m", 2, "");
  ASSERT_TRUE(other_model.ok());
  EXPECT_EQ(client_->ListCheckpoints("model-1", 2, other_model->next_page_token())
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->ListModels(2, "not a token!").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->ListModels(-1, "").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(RegistryServerTest, UnknownModelsAndStepsAreNotFound) {
  EXPECT_EQ(client_->GetLatestCheckpoint("nope").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->GetCheckpoint("nope", 1).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->ListCheckpoints("nope", 0, "").status().code(),
            absl::StatusCode::kNotFound);
  ASSERT_TRUE(client_->Push("m", MakeStep(1), PushOptions()).ok());
  EXPECT_EQ(client_->GetCheckpoint("m", 2).status().code(), absl::StatusCode::kNotFound);
  RestoreOptions restore;
  restore.step = 2;
  EXPECT_EQ(client_->Restore("m", tmp_.Join("r"), restore).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, InvalidModelNamesAndNegativeStepsAreRejected) {
  const std::string prefix = MakeStep(1);
  for (const char* bad : {"", "/resnet", "resnet/", "a//b", "res net", "-x"}) {
    auto pushed = client_->Push(bad, prefix, PushOptions());
    EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_EQ(client_->GetLatestCheckpoint(bad).status().code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
  PushOptions negative;
  negative.step = -5;
  auto pushed = client_->Push("m", prefix, negative);
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pushed.status().message(), HasSubstr("negative"));
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(-1);
  begin.set_basename("model.ckpt");
  EXPECT_EQ(client_->BeginUpload(begin).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_P(RegistryServerTest, APrefixWithoutIndexIsReportedBeforeAnyUpload) {
  const std::string prefix = MakeStep(3);
  fs::remove(prefix + ".index");
  auto pushed = client_->Push("m", prefix, PushOptions());
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(pushed.status().message(), HasSubstr(".index"));
  EXPECT_EQ(Stats().checkpoints, 0);
}

TEST_P(RegistryServerTest, AMissingDataShardIsRejectedAndNothingBecomesVisible) {
  const std::string prefix = MakeStep(3, 1, 2);
  fs::remove(prefix + ".data-00001-of-00002");
  auto pushed = client_->Push("m", prefix, PushOptions());
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pushed.status().message(), HasSubstr("data-00001-of-00002"));
  EXPECT_EQ(client_->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, AnIndexWhoseShardCountDisagreesIsRejectedAtCommit) {
  // The index says 2 shards; the data file says it is the only one.
  const std::string prefix = MakeStep(3, 1, 2);
  fs::rename(prefix + ".data-00000-of-00002", prefix + ".data-00000-of-00001");
  fs::remove(prefix + ".data-00001-of-00002");
  auto pushed = client_->Push("m", prefix, PushOptions());
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pushed.status().message(), HasSubstr("index"));
  EXPECT_EQ(client_->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(Stats().staged_chunks, 0);
}

TEST_P(RegistryServerTest, AMetaThatIsNotAMetaGraphDefIsRejected) {
  const std::string prefix = MakeStep(3);
  WriteFileOrDie(prefix + ".meta", "this is not a MetaGraphDef\n");
  auto pushed = client_->Push("m", prefix, PushOptions());
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pushed.status().message(), HasSubstr("meta"));
  EXPECT_EQ(client_->GetLatestCheckpoint("m").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, ACorruptIndexIsRejected) {
  const std::string prefix = MakeStep(3);
  WriteFileOrDie(prefix + ".index", std::string(100, '\x42'));
  auto pushed = client_->Push("m", prefix, PushOptions());
  EXPECT_EQ(pushed.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(pushed.status().message(), HasSubstr("index"));
}

// Raw PutFile streams, for what the client library never sends.
class RawUpload {
 public:
  RawUpload(v1::Registry::Stub* stub, const std::string& upload_id,
            const std::string& name, int64_t offset)
      : writer_(stub->PutFile(&ctx_, &response_)) {
    v1::PutFileRequest first;
    first.mutable_header()->set_upload_id(upload_id);
    first.mutable_header()->set_name(name);
    first.mutable_header()->set_offset(offset);
    writer_->Write(first);
  }
  bool Send(const std::string& data) {
    v1::PutFileRequest m;
    m.set_data(data);
    return writer_->Write(m);
  }
  grpc::Status Finish() {
    writer_->WritesDone();
    return writer_->Finish();
  }
  const v1::PutFileResponse& response() const { return response_; }

 private:
  grpc::ClientContext ctx_;
  v1::PutFileResponse response_;
  std::unique_ptr<grpc::ClientWriter<v1::PutFileRequest>> writer_;
};

TEST_P(RegistryServerTest, UploadsCheckSizeDigestAndCompletenessAndResume) {
  const std::string prefix = MakeStep(5);
  const std::string data = ReadFileOrDie(prefix + ".data-00000-of-00002");
  ASSERT_GT(data.size(), 3u * (64 << 10));
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(5);
  begin.set_basename("model.ckpt");
  for (const char* name : {"index", "data-00000-of-00002", "data-00001-of-00002"}) {
    const std::string bytes = ReadFileOrDie(absl::StrCat(prefix, ".", name));
    v1::FileInfo* f = begin.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(bytes.size()));
    f->set_sha256(Sha256Hex(bytes));
  }
  auto upload = client_->BeginUpload(begin);
  ASSERT_TRUE(upload.ok()) << upload.status();
  const std::string id = upload->upload_id();

  {  // More bytes than announced.
    RawUpload put(stub_.get(), id, "data-00000-of-00002", 0);
    put.Send(data + "extra");
    EXPECT_EQ(put.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  {  // Corrupted bytes: digest mismatch.
    std::string corrupt = data;
    corrupt[100] ^= 1;
    RawUpload put(stub_.get(), id, "data-00000-of-00002", 0);
    put.Send(corrupt);
    grpc::Status s = put.Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
    EXPECT_THAT(s.error_message(), HasSubstr("SHA-256"));
  }
  {  // Truncated stream: DATA_LOSS, whole chunks kept for a resume.
    RawUpload put(stub_.get(), id, "data-00000-of-00002", 0);
    put.Send(data.substr(0, 2 * (64 << 10) + 100));
    grpc::Status s = put.Finish();
    EXPECT_EQ(s.error_code(), grpc::StatusCode::DATA_LOSS);
    EXPECT_THAT(s.error_message(), HasSubstr("resume with offset 131072"));
  }
  auto status = client_->GetUpload(id);
  ASSERT_TRUE(status.ok());
  // A writer resuming by upload id learns the chunk size from GetUpload, as from
  // BeginUpload, to name chunks the server holds.
  EXPECT_EQ(status->chunk_bytes(), 64 << 10);
  for (const auto& f : status->files()) {
    if (f.file().name() == "data-00000-of-00002") {
      EXPECT_EQ(f.held_bytes(), 2 * (64 << 10));
    }
  }
  // A commit now lists what is missing and leaves the upload open.
  auto early = client_->CommitUpload(id);
  EXPECT_EQ(early.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(early.status().message(), HasSubstr("data-00001-of-00002"));
  {  // Resuming at a wrong offset is refused.
    RawUpload put(stub_.get(), id, "data-00000-of-00002", 5);
    EXPECT_EQ(put.Finish().error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  }
  {  // Resume at the held offset sends only the rest.
    RawUpload put(stub_.get(), id, "data-00000-of-00002", 2 * (64 << 10));
    put.Send(data.substr(2 * (64 << 10)));
    ASSERT_TRUE(put.Finish().ok());
    EXPECT_TRUE(put.response().complete());
  }
  {  // A file not in the manifest.
    RawUpload put(stub_.get(), id, "meta", 0);
    EXPECT_EQ(put.Finish().error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  }
  for (const char* name : {"index", "data-00001-of-00002"}) {
    auto put = client_->PutFile(id, name, absl::StrCat(prefix, ".", name));
    ASSERT_TRUE(put.ok()) << put.status();
  }
  auto committed = client_->CommitUpload(id);
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(client_->GetUpload(id).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->CommitUpload("no-such-upload").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(RegistryServerTest, AbortedUploadsLeaveNoStagedBytes) {
  const std::string prefix = MakeStep(5);
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(5);
  begin.set_basename("model.ckpt");
  const std::string data = ReadFileOrDie(prefix + ".data-00000-of-00002");
  for (const char* name : {"index", "data-00000-of-00002", "data-00001-of-00002"}) {
    const std::string bytes = ReadFileOrDie(absl::StrCat(prefix, ".", name));
    v1::FileInfo* f = begin.add_files();
    f->set_name(name);
    f->set_size(static_cast<int64_t>(bytes.size()));
    f->set_sha256(Sha256Hex(bytes));
  }
  auto upload = client_->BeginUpload(begin);
  ASSERT_TRUE(upload.ok());
  ASSERT_TRUE(client_
                  ->PutFile(upload->upload_id(), "data-00000-of-00002",
                            prefix + ".data-00000-of-00002")
                  .ok());
  EXPECT_GT(Stats().staged_chunks, 0);
  ASSERT_TRUE(client_->AbortUpload(upload->upload_id()).ok());
  EXPECT_EQ(Stats().staged_chunks, 0);
  EXPECT_EQ(Stats().chunk_bytes, 0);
}

TEST_P(RegistryServerTest, FilteredGraphsAreExportedOnceThenServedFromTheCache) {
  ASSERT_TRUE(client_->Push("m", MakeStep(1), PushOptions()).ok());
  v1::GraphOptions options;
  options.set_clear_devices(true);
  options.set_export_scope("dense/");
  std::string first, second;
  auto info = client_->FetchGraphBytes("m", 1, options, &first);
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(server_->service()->export_cache().misses(), 1);
  EXPECT_EQ(server_->service()->export_cache().hits(), 0);
  ASSERT_TRUE(client_->FetchGraphBytes("m", 1, options, &second).ok());
  // D7: identical bytes; the second request did no filtering work.
  EXPECT_EQ(first, second);
  EXPECT_EQ(server_->service()->export_cache().hits(), 1);
  EXPECT_EQ(server_->service()->export_cache().misses(), 1);
  // The response says what was kept.
  auto graph = ParseMetaGraph(first);
  ASSERT_TRUE(graph.ok());
  EXPECT_EQ(info->node_count(), graph->graph_def().node_size());
  for (const auto& n : graph->graph_def().node()) {
    EXPECT_EQ(n.device(), "");
    EXPECT_EQ(n.name().rfind("dense/", 0), std::string::npos) << n.name();  // R4 stripped
  }
  // Other options are another cache entry.
  options.set_as_text(true);
  std::string text;
  ASSERT_TRUE(client_->FetchGraphBytes("m", 1, options, &text).ok());
  EXPECT_EQ(server_->service()->export_cache().misses(), 2);
  EXPECT_TRUE(ParseMetaGraph(text).ok());  // D8: text format that parses back
}

TEST_P(RegistryServerTest, AnExportTensorFlowWouldRefuseIsFailedPrecondition) {
  // D6: an Enter frame outside the export scope.
  tensorflow::MetaGraphDef graph = testing::SmallMetaGraph();
  tensorflow::NodeDef* enter = graph.mutable_graph_def()->add_node();
  enter->set_name("dense/while/Enter");
  enter->set_op("Enter");
  (*enter->mutable_attr())["frame_name"].set_s("outer/while/while_context");
  CheckpointSpec spec;
  spec.directory = tmp_.Join("d6");
  fs::create_directories(spec.directory);
  spec.step = 1;
  spec.tensors = {{"w", FloatBytes(10, 1), 0}};
  spec.meta = graph.SerializeAsString();
  ASSERT_TRUE(client_->Push("m", WriteCheckpoint(spec), PushOptions()).ok());
  v1::GraphOptions options;
  options.set_export_scope("dense/");
  std::string out;
  auto fetched = client_->FetchGraphBytes("m", 1, options, &out);
  EXPECT_EQ(fetched.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(fetched.status().message(), HasSubstr("dense/while/Enter"));
}

TEST_P(RegistryServerTest, ADirectoryThatCannotBeWrittenFailsBeforeDownloading) {
  ASSERT_TRUE(client_->Push("m", MakeStep(1), PushOptions()).ok());
  const std::string file = tmp_.Join("a-file");
  WriteFileOrDie(file, "x");
  auto restored = client_->Restore("m", file + "/sub", RestoreOptions());
  EXPECT_EQ(restored.status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace mgreg
