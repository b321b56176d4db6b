// Issue 11, the server's limits over real gRPC: the .meta size limit and the working-
// memory budget of exports, server streams whose readers stall, upload sizes that are
// learned or overflow, step metadata, restorable basenames and open uploads.
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <fstream>
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
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/server_fixture.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::mgreg::testing::CheckpointSpec;
using ::mgreg::testing::FloatBytes;
using ::mgreg::testing::SendPutFile;
using ::mgreg::testing::ServerFixture;
using ::testing::HasSubstr;

// A valid MetaGraphDef of about `bytes` bytes: SmallMetaGraph plus placed no-op nodes.
std::string LargeMetaGraphBytes(size_t bytes) {
  tensorflow::MetaGraphDef graph = mgreg::testing::SmallMetaGraph();
  const std::string pad(200, 'x');
  size_t size = graph.ByteSizeLong();
  for (int i = 0; size < bytes; ++i) {
    tensorflow::NodeDef* node = graph.mutable_graph_def()->add_node();
    node->set_name(absl::StrCat("pad/n", i));
    node->set_op("NoOp");
    node->set_device("/job:worker/replica:0/task:0/device:GPU:0");
    (*node->mutable_attr())["_note"].set_s(pad);
    size += node->ByteSizeLong() + 4;  // the node and its tag and length
  }
  std::string out;
  graph.SerializeToString(&out);
  return out;
}

// Peak RSS of this process since the last ResetPeakRss(), in bytes.
int64_t PeakRss() {
  std::ifstream in("/proc/self/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return 0;
}

void ResetPeakRss() { std::ofstream("/proc/self/clear_refs") << "5"; }

class LimitsServerTest : public ServerFixture {
 protected:
  std::unique_ptr<v1::Registry::Stub> Stub() {
    return v1::Registry::NewStub(
        grpc::CreateChannel(server_->address(), grpc::InsecureChannelCredentials()));
  }

  // A checkpoint whose .meta is `meta`, pushed as step `step` of `model`.
  absl::StatusOr<v1::Checkpoint> PushWithMeta(const std::string& model, int64_t step,
                                              std::string meta, size_t floats = 1000) {
    CheckpointSpec spec;
    spec.directory = tmp_.Join(absl::StrCat("ckpt-", model, "-", step));
    std::filesystem::create_directories(spec.directory);
    spec.step = step;
    spec.tensors.push_back({"w", FloatBytes(floats, static_cast<uint32_t>(step)), 0});
    spec.meta = std::move(meta);
    return client_->Push(model, WriteCheckpoint(spec), {});
  }
};

// Issue 11 item 3: a .meta over limits.max_meta_bytes is refused at BeginUpload (and
// when a manifest-less upload learns it), naming the limit.
TEST_F(LimitsServerTest, MetaLargerThanMaxMetaBytesIsResourceExhausted) {
  ServerOptions options;
  options.service.max_meta_bytes = 64 << 10;
  StartServer(options);
  ASSERT_TRUE(PushWithMeta("m", 1, LargeMetaGraphBytes(32 << 10)).ok());
  absl::StatusOr<v1::Checkpoint> big =
      PushWithMeta("m", 2, LargeMetaGraphBytes(100 << 10));
  EXPECT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(big.status().message(), HasSubstr("limits.max_meta_bytes"));

  auto stub = Stub();
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(3);
  begin.set_basename("model.ckpt");
  v1::Upload upload;
  grpc::ClientContext ctx;
  ASSERT_TRUE(stub->BeginUpload(&ctx, begin, &upload).ok());
  v1::PutFileRequest header;
  header.mutable_header()->set_size(100 << 10);
  header.mutable_header()->set_sha256(std::string(64, 'a'));
  grpc::Status put = SendPutFile(*stub, upload.upload_id(), "meta", {header});
  EXPECT_EQ(put.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(put.error_message(), HasSubstr("limits.max_meta_bytes"));
}

// Issue 11 item 3: a filtered export reserves 5x the stored graph of the working-memory
// budget: beyond it the export is RESOURCE_EXHAUSTED (the verbatim graph still
// streams), and within it the server's peak memory grows by less than that.
TEST_F(LimitsServerTest, FilteredExportIsBoundedByTheMemoryBudget) {
  constexpr int64_t kGraphBytes = 24 << 20;
  StartServer();
  ASSERT_TRUE(PushWithMeta("m", 1, LargeMetaGraphBytes(kGraphBytes)).ok());

  ServerOptions tight;
  tight.service.memory_budget_bytes = 4 * kGraphBytes;
  tight.service.max_meta_bytes = kGraphBytes;
  StartServer(tight);
  v1::GraphOptions clear;
  clear.set_clear_devices(true);
  const std::string out = tmp_.Join("out.meta");
  absl::StatusOr<v1::MetaGraphInfo> refused = client_->FetchGraph("m", 1, clear, out);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(refused.status().message(), HasSubstr("limits.memory_budget_bytes"));
  EXPECT_TRUE(client_->FetchGraph("m", 1, v1::GraphOptions(), out).ok());

  ServerOptions enough;
  enough.service.memory_budget_bytes = 6 * kGraphBytes;
  StartServer(enough);
  ResetPeakRss();
  const int64_t before = PeakRss();
  absl::StatusOr<v1::MetaGraphInfo> exported = client_->FetchGraph("m", 1, clear, out);
  ASSERT_TRUE(exported.ok()) << exported.status();
  const int64_t growth = PeakRss() - before;
  std::printf(
      "cold export of a %lld-byte graph: peak RSS +%lld bytes (%.2fx), "
      "client's copy included\n",
      static_cast<long long>(kGraphBytes), static_cast<long long>(growth),
      static_cast<double>(growth) / kGraphBytes);
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define MGREG_RSS_INFLATED_BY_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define MGREG_RSS_INFLATED_BY_SANITIZER 1
#endif
#endif
#ifdef MGREG_RSS_INFLATED_BY_SANITIZER
  // A sanitizer's redzones and quarantine of freed blocks roughly double the RSS of the
  // same allocations (seen: 5.99x here against 2.81x without), so the bound on RSS is
  // checked only in normal builds; the budget's refusal above is checked in every build.
  std::printf("RSS bound not checked: sanitizer build\n");
#else
  EXPECT_LT(growth, RegistryServiceOptions::kExportMemoryFactor * kGraphBytes);
#endif
  EXPECT_EQ(server_->service()->memory_budget().reserved(), 0);
}

// Issue 11 item 4: each ReadFile stream holds 2 chunks + 256 KiB of the budget while
// open, so readers that never read pin at most the budget; one more is
// RESOURCE_EXHAUSTED naming it, and other calls go on.
TEST_F(LimitsServerTest, StalledReadersPinAtMostTheMemoryBudget) {
  StartServer();
  ASSERT_TRUE(PushWithMeta("m", 1, mgreg::testing::SmallMetaGraphBytes(), 6 << 20).ok());
  ServerOptions options;
  options.service.memory_budget_bytes = 64 << 20;
  options.service.max_meta_bytes = 8 << 20;
  StartServer(options);
  const int64_t per_stream = server_->service()->stream_send_reservation();
  ASSERT_EQ(per_stream, (2 << 20) + (256 << 10));
  const int fits = static_cast<int>((64 << 20) / per_stream);  // 28

  struct Reader {
    grpc::ClientContext ctx;
    std::unique_ptr<grpc::ClientReader<v1::FileChunk>> stream;
  };
  // A reader that takes nothing: no BDP probing, a 64 KiB window per stream.
  grpc::ChannelArguments args;
  args.SetInt(GRPC_ARG_HTTP2_BDP_PROBE, 0);
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 64 << 10);
  auto stub = v1::Registry::NewStub(grpc::CreateCustomChannel(
      server_->address(), grpc::InsecureChannelCredentials(), args));
  std::vector<std::unique_ptr<Reader>> readers;
  int refused = 0;
  for (int i = 0; i < fits + 5; ++i) {
    auto r = std::make_unique<Reader>();
    r->ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    v1::ReadFileRequest request;
    request.set_model("m");
    request.set_step(1);
    request.set_name("data-00000-of-00001");
    r->stream = stub->ReadFile(&r->ctx, request);
    v1::FileChunk first;
    if (r->stream->Read(&first)) {
      readers.push_back(std::move(r));  // open; never read again
      continue;
    }
    grpc::Status status = r->stream->Finish();
    EXPECT_EQ(status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
    EXPECT_THAT(status.error_message(), HasSubstr("limits.memory_budget_bytes"));
    ++refused;
  }
  EXPECT_EQ(static_cast<int>(readers.size()), fits);
  EXPECT_EQ(refused, 5);
  EXPECT_LE(server_->service()->memory_budget().reserved(), 64 << 20);
  EXPECT_TRUE(client_->GetLatestCheckpoint("m").ok());
  for (auto& r : readers) r->ctx.TryCancel();
  for (auto& r : readers) r->stream->Finish();
}

// Issue 11 item 5: max_upload_bytes also holds for files learned from PutFile headers,
// and sizes adding up past 2^63 are refused instead of wrapping.
TEST_F(LimitsServerTest, UploadSizesAreCheckedWhenLearnedAndCannotOverflow) {
  ServerOptions options;
  options.limits.max_upload_bytes = 10 << 20;
  StartServer(options);
  auto stub = Stub();
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(1);
  begin.set_basename("model.ckpt");
  v1::Upload upload;
  {
    grpc::ClientContext ctx;
    ASSERT_TRUE(stub->BeginUpload(&ctx, begin, &upload).ok());
  }
  auto header = [](int64_t size) {
    v1::PutFileRequest m;
    m.mutable_header()->set_size(size);
    m.mutable_header()->set_sha256(std::string(64, 'b'));
    return m;
  };
  grpc::Status first =
      SendPutFile(*stub, upload.upload_id(), "data-00000-of-00002", {header(6 << 20)});
  EXPECT_EQ(first.error_code(), grpc::StatusCode::DATA_LOSS);  // learned, then cut short
  grpc::Status second =
      SendPutFile(*stub, upload.upload_id(), "data-00001-of-00002", {header(6 << 20)});
  EXPECT_EQ(second.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(second.error_message(), HasSubstr("limits.max_upload_bytes"));

  v1::BeginUploadRequest huge = begin;
  huge.set_step(2);
  for (const char* name : {"index", "data-00000-of-00002", "data-00001-of-00002"}) {
    v1::FileInfo* f = huge.add_files();
    f->set_name(name);
    f->set_size(INT64_MAX / 2);
    f->set_sha256(std::string(64, 'c'));
  }
  ServerOptions unlimited;
  StartServer(unlimited);
  stub = Stub();
  grpc::ClientContext ctx;
  grpc::Status status = stub->BeginUpload(&ctx, huge, &upload);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("2^63"));
}

// Issue 11 item 7: step metadata is capped at BeginUpload, and listings of steps with
// large metadata (stored before the cap) are paged by bytes and never fail.
TEST_F(LimitsServerTest, StepMetadataIsCappedAndListingsPageByBytes) {
  StartServer();
  auto stub = Stub();
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(1);
  begin.set_basename("model.ckpt");
  (*begin.mutable_metadata())["blob"] = std::string(4 << 20, 'x');
  v1::Upload upload;
  grpc::ClientContext ctx;
  grpc::Status status = stub->BeginUpload(&ctx, begin, &upload);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_THAT(status.error_message(), HasSubstr("64 KiB"));

  // Five steps with 3 MiB of metadata each, written straight into the store.
  for (int64_t step = 1; step <= 5; ++step) {
    std::unique_ptr<StagingArea> staging = server_->store()->NewStagingArea();
    const std::string bytes = absl::StrCat("file of step ", step);
    storage::ChunkRef ref;
    ref.set_sha256(Sha256Raw(bytes));
    ref.set_size(static_cast<uint32_t>(bytes.size()));
    ASSERT_TRUE(staging->PutChunk(ref, bytes).ok());
    CommitRequest commit;
    commit.record.set_model("m");
    commit.record.set_step(step);
    commit.record.set_basename("model.ckpt");
    storage::FileRecord* file = commit.record.add_files();
    file->set_name("index");
    file->set_size(static_cast<int64_t>(bytes.size()));
    file->set_sha256(Sha256Hex(bytes));
    (*commit.record.mutable_metadata())["blob"] = std::string(3 << 20, 'y');
    storage::BlobRecord& blob = commit.new_blobs.emplace_back();
    blob.set_sha256(file->sha256());
    blob.set_size(file->size());
    *blob.add_chunks() = ref;
    ASSERT_TRUE(server_->store()->Commit(commit, staging.get()).ok());
  }
  int pages = 0, steps = 0;
  std::string token;
  do {
    grpc::ClientContext list_ctx;
    v1::ListCheckpointsRequest list;
    list.set_model("m");
    list.set_page_token(token);
    v1::ListCheckpointsResponse page;
    grpc::Status listed = stub->ListCheckpoints(&list_ctx, list, &page);
    ASSERT_TRUE(listed.ok()) << listed.error_message();
    EXPECT_LE(page.ByteSizeLong(), 8u << 20);
    steps += page.checkpoints_size();
    token = page.next_page_token();
    ++pages;
  } while (!token.empty() && pages < 10);
  EXPECT_EQ(steps, 5);
  EXPECT_EQ(pages, 5);  // one 3 MiB step per 4 MiB page
}

// Issue 11 item 9: the basename is limited so that every restored file name, with the
// restore's temporary name around it, fits 255 bytes; the longest accepted restores.
TEST_F(LimitsServerTest, BasenamesThatCannotBeRestoredAreRefusedAtBeginUpload) {
  StartServer();
  const int64_t step = 1000;
  // 255 - ("." "-1000" "." "data-00000-of-00001" ".mgreg-XXXXXX")
  const size_t longest = 255 - (1 + 5 + 1 + 19 + 13);
  auto stub = Stub();
  v1::BeginUploadRequest begin;
  begin.set_model("m");
  begin.set_step(step);
  begin.set_basename(std::string(longest + 1, 'b'));
  v1::Upload upload;
  {
    grpc::ClientContext ctx;
    grpc::Status status = stub->BeginUpload(&ctx, begin, &upload);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
    EXPECT_THAT(status.error_message(),
                HasSubstr(absl::StrCat("use a basename of at most ", longest, " bytes")));
  }
  CheckpointSpec spec;
  spec.directory = tmp_.Join("long");
  std::filesystem::create_directories(spec.directory);
  spec.basename = std::string(longest, 'b');
  spec.step = step;
  spec.tensors.push_back({"w", FloatBytes(1000, 1), 0});
  spec.meta = mgreg::testing::SmallMetaGraphBytes();
  ASSERT_TRUE(client_->Push("m", WriteCheckpoint(spec), {}).ok());
  const std::string dir = tmp_.Join("restored");
  std::filesystem::create_directories(dir);
  absl::StatusOr<v1::Checkpoint> restored = client_->Restore("m", dir, {});
  ASSERT_TRUE(restored.ok()) << restored.status();
  EXPECT_TRUE(std::filesystem::exists(std::filesystem::path(dir) /
                                      (spec.basename + "-1000.data-00000-of-00001")));
}

// Issue 11 item 10: open uploads are capped by default, per writer (without tokens:
// per client host) and on the whole server.
TEST_F(LimitsServerTest, OpenUploadsAreCappedByDefault) {
  const CallLimits defaults = DefaultServerLimits();
  EXPECT_EQ(defaults.max_concurrent_uploads_per_writer, 64);
  EXPECT_EQ(defaults.max_open_uploads, 1024);
  ServerOptions options;
  options.limits.max_concurrent_uploads_per_writer = 2;
  StartServer(options);
  auto stub = Stub();
  auto begin = [&](int64_t step) {
    v1::BeginUploadRequest r;
    r.set_model("m");
    r.set_step(step);
    r.set_basename("model.ckpt");
    v1::Upload upload;
    grpc::ClientContext ctx;
    return stub->BeginUpload(&ctx, r, &upload);
  };
  EXPECT_TRUE(begin(1).ok());
  EXPECT_TRUE(begin(2).ok());
  grpc::Status third = begin(3);
  EXPECT_EQ(third.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(third.error_message(), HasSubstr("max_concurrent_uploads_per_writer"));

  options.limits.max_concurrent_uploads_per_writer = 0;
  options.limits.max_open_uploads = 2;
  StartServer(options);
  stub = Stub();
  EXPECT_TRUE(begin(1).ok());
  EXPECT_TRUE(begin(2).ok());
  grpc::Status over = begin(3);
  EXPECT_EQ(over.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_THAT(over.error_message(), HasSubstr("limits.max_open_uploads"));
}

}  // namespace
}  // namespace mgreg
