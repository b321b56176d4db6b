#include "metagraph/metagraph_io.h"

#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using ::google::protobuf::util::MessageDifferencer;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;

constexpr char kTfxMeta[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000.meta";
constexpr char kTf2onnxMeta[] = "tf2onnx/tests/models/regression/checkpoint/model.meta";
constexpr char kSessionBundleMeta[] =
    "serving/tensorflow_serving/session_bundle/testdata/half_plus_two/00000123/"
    "export.meta";
constexpr char kServingCpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/"
    "00000123/saved_model.pb";
constexpr char kServingGpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_gpu/"
    "00000123/saved_model.pb";
constexpr char kServingTf2Cpu[] =
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/"
    "00000123/saved_model.pb";
constexpr char kTf2onnxSavedModel[] =
    "tf2onnx/tests/models/regression/saved_model/saved_model.pb";

std::string TextOf(const google::protobuf::Message& m) {
  std::string text;
  EXPECT_TRUE(google::protobuf::TextFormat::PrintToString(m, &text));
  return text;
}

TEST(MetagraphIoTest, EveryRealMetaFileParsesAsBinary) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kTfxMeta, kTf2onnxMeta, kSessionBundleMeta}) {
    SCOPED_TRACE(rel);
    const std::string bytes = ReadFileOrDie(TestdataPath(rel));
    auto mg = ParseMetaGraph(bytes);
    ASSERT_TRUE(mg.ok()) << mg.status();
    tensorflow::MetaGraphDef direct;
    ASSERT_TRUE(direct.ParseFromString(bytes));
    EXPECT_TRUE(MessageDifferencer::Equals(*mg, direct));
    EXPECT_GT(mg->graph_def().node_size(), 0);
  }
}

TEST(MetagraphIoTest, TfxMetaHasItsKnownShape) {
  MGREG_REQUIRE_TESTDATA();
  auto mg = ParseMetaGraph(ReadFileOrDie(TestdataPath(kTfxMeta)));
  ASSERT_TRUE(mg.ok()) << mg.status();
  EXPECT_EQ(mg->graph_def().node_size(), 2502);
  EXPECT_EQ(mg->graph_def().library().function_size(), 59);
  EXPECT_EQ(mg->graph_def().versions().producer(), 1054);
  EXPECT_EQ(mg->saver_def().version(), tensorflow::SaverDef::V2);
  EXPECT_EQ(mg->collection_def().at("variables").bytes_list().value_size(), 60);
}

TEST(MetagraphIoTest, TextFormatMetaGraphParsesToTheSameMessage) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kTf2onnxMeta, kSessionBundleMeta}) {
    SCOPED_TRACE(rel);
    tensorflow::MetaGraphDef binary;
    ASSERT_TRUE(binary.ParseFromString(ReadFileOrDie(TestdataPath(rel))));
    auto mg = ParseMetaGraph(TextOf(binary));
    ASSERT_TRUE(mg.ok()) << mg.status();
    EXPECT_TRUE(MessageDifferencer::Equals(*mg, binary));
  }
}

TEST(MetagraphIoTest, EmptyFileIsInvalidArgument) {
  auto mg = ParseMetaGraph("");
  EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(mg.status().message(), "not a MetaGraphDef"))
      << mg.status();
}

TEST(MetagraphIoTest, RandomBytesAreInvalidArgument) {
  for (uint32_t seed : {1u, 2u, 3u, 4u, 5u}) {
    std::string bytes(4096, '\0');
    uint32_t x = seed;
    for (char& c : bytes) {
      x = x * 1103515245u + 12345u;
      c = static_cast<char>(x >> 24);
    }
    auto mg = ParseMetaGraph(bytes);
    EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument) << seed;
    EXPECT_TRUE(absl::StrContains(mg.status().message(), "not a MetaGraphDef"))
        << mg.status();
  }
}

TEST(MetagraphIoTest, PlainTextThatIsNotAMetaGraphIsInvalidArgumentWithLine) {
  auto mg = ParseMetaGraph("hello world\n");
  EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(absl::StrContains(mg.status().message(), "line 1")) << mg.status();
}

TEST(MetagraphIoTest, ParsableButEmptyMessageIsInvalidArgument) {
  // Valid binary and valid text, but neither graph nodes nor meta_info_def.
  tensorflow::MetaGraphDef only_saver;
  only_saver.mutable_saver_def()->set_filename_tensor_name("save/Const:0");
  for (const std::string& bytes : {only_saver.SerializeAsString(), TextOf(only_saver)}) {
    auto mg = ParseMetaGraph(bytes);
    EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_TRUE(absl::StrContains(mg.status().message(), "not a MetaGraphDef"))
        << mg.status();
  }
}

TEST(MetagraphIoTest, EveryRealSavedModelYieldsItsServeGraph) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kServingCpu, kServingGpu, kServingTf2Cpu, kTf2onnxSavedModel}) {
    SCOPED_TRACE(rel);
    auto mg = SelectMetaGraph(ReadFileOrDie(TestdataPath(rel)), {"serve"});
    ASSERT_TRUE(mg.ok()) << mg.status();
    EXPECT_GT(mg->graph_def().node_size(), 0);
    EXPECT_EQ(mg->meta_info_def().tags_size(), 1);
  }
}

TEST(MetagraphIoTest, Tf2SavedModelKeepsObjectGraphAndSignatureDefaults) {
  MGREG_REQUIRE_TESTDATA();
  auto mg = SelectMetaGraph(ReadFileOrDie(TestdataPath(kServingTf2Cpu)), {"serve"});
  ASSERT_TRUE(mg.ok()) << mg.status();
  EXPECT_GT(mg->object_graph_def().nodes_size(), 0);
  EXPECT_TRUE(mg->meta_info_def().stripped_default_attrs());
  int with_defaults = 0;
  for (const auto& [name, sig] : mg->signature_def())
    with_defaults += !sig.defaults().empty();
  EXPECT_GT(with_defaults, 0);
}

// A SavedModel with two graphs, {serve} from the cpu model and {serve, gpu} from the gpu
// one, as a multi-graph SavedModel holds them.
tensorflow::SavedModel TwoGraphSavedModel() {
  tensorflow::SavedModel cpu, gpu;
  EXPECT_TRUE(cpu.ParseFromString(ReadFileOrDie(TestdataPath(kServingCpu))));
  EXPECT_TRUE(gpu.ParseFromString(ReadFileOrDie(TestdataPath(kServingGpu))));
  tensorflow::SavedModel both = cpu;
  auto* g = both.add_meta_graphs();
  *g = gpu.meta_graphs(0);
  g->mutable_meta_info_def()->clear_tags();
  g->mutable_meta_info_def()->add_tags("gpu");
  g->mutable_meta_info_def()->add_tags("serve");
  return both;
}

TEST(MetagraphIoTest, TagsSelectTheGraphWithExactlyThatTagSetInAnyOrder) {
  MGREG_REQUIRE_TESTDATA();
  const tensorflow::SavedModel both = TwoGraphSavedModel();
  const std::string bytes = both.SerializeAsString();
  auto serve = SelectMetaGraph(bytes, {"serve"});
  ASSERT_TRUE(serve.ok()) << serve.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*serve, both.meta_graphs(0)));
  auto gpu = SelectMetaGraph(bytes, {"serve", "gpu"});
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*gpu, both.meta_graphs(1)));
  auto gpu_dup = SelectMetaGraph(bytes, {"gpu", "serve", "gpu"});
  ASSERT_TRUE(gpu_dup.ok()) << gpu_dup.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*gpu_dup, both.meta_graphs(1)));
}

TEST(MetagraphIoTest, UnknownTagSetIsNotFoundListingTheAvailableOnes) {
  MGREG_REQUIRE_TESTDATA();
  const std::string bytes = TwoGraphSavedModel().SerializeAsString();
  for (const std::vector<std::string>& tags : std::vector<std::vector<std::string>>{
           {"train"}, {"gpu"}, {}, {"serve", "gpu", "tpu"}}) {
    auto mg = SelectMetaGraph(bytes, tags);
    EXPECT_EQ(mg.status().code(), absl::StatusCode::kNotFound);
    EXPECT_TRUE(absl::StrContains(mg.status().message(),
                                  "available tag sets: [serve] [gpu, serve]"))
        << mg.status();
  }
}

TEST(MetagraphIoTest, TextFormatSavedModelSelectsTheSameGraph) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::SavedModel sm;
  ASSERT_TRUE(sm.ParseFromString(ReadFileOrDie(TestdataPath(kServingTf2Cpu))));
  auto mg = SelectMetaGraph(TextOf(sm), {"serve"});
  ASSERT_TRUE(mg.ok()) << mg.status();
  EXPECT_TRUE(MessageDifferencer::Equals(*mg, sm.meta_graphs(0)));
}

TEST(MetagraphIoTest, MetaFileGivenAsSavedModelIsInvalidArgument) {
  MGREG_REQUIRE_TESTDATA();
  // Binary-parses as a SavedModel whose field 1 has the wrong wire type (so it becomes an
  // unknown field) and whose "meta_graphs" is really the graph_def.
  for (const char* rel : {kTf2onnxMeta, kTfxMeta}) {
    auto mg = SelectMetaGraph(ReadFileOrDie(TestdataPath(rel)), {"serve"});
    EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument) << mg.status();
    EXPECT_TRUE(absl::StrContains(mg.status().message(), "not a SavedModel"))
        << mg.status();
  }
}

TEST(MetagraphIoTest, SavedModelGivenAsMetaGraphIsInvalidArgument) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kServingCpu, kTf2onnxSavedModel}) {
    auto mg = ParseMetaGraph(ReadFileOrDie(TestdataPath(rel)));
    EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument) << mg.status();
    EXPECT_TRUE(absl::StrContains(mg.status().message(), "not a MetaGraphDef"))
        << mg.status();
  }
}

TEST(MetagraphIoTest, UnknownNewFieldNumbersAreAccepted) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadFileOrDie(TestdataPath(kTf2onnxMeta));
  bytes += std::string("\xf8\x07\x01", 3);  // Field 127 (varint 1): a future TF field.
  auto mg = ParseMetaGraph(bytes);
  ASSERT_TRUE(mg.ok()) << mg.status();
  EXPECT_EQ(mg->GetReflection()->GetUnknownFields(*mg).field_count(), 1);
}

TEST(MetagraphIoTest, SavedModelWithoutGraphsIsInvalidArgument) {
  tensorflow::SavedModel empty;
  empty.set_saved_model_schema_version(1);
  auto mg = SelectMetaGraph(empty.SerializeAsString(), {"serve"});
  EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(SelectMetaGraph("", {"serve"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(MetagraphIoTest, RandomBytesAreNotASavedModel) {
  std::string bytes(1024, '\0');
  uint32_t x = 7;
  for (char& c : bytes) {
    x = x * 1103515245u + 12345u;
    c = static_cast<char>(x >> 24);
  }
  EXPECT_EQ(SelectMetaGraph(bytes, {"serve"}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace mgreg
