// The export on real TensorFlow files (shared/testdata/tf): EXPORT_SEMANTICS §13's worked
// expectations, and the fast path agreeing byte for byte with the message path on every
// file for many option combinations.
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "metagraph/export.h"
#include "metagraph/metagraph_io.h"
#include "tests/testing/export_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using testing::ExportBoth;
using testing::ReadFileOrDie;
using testing::Serialize;
using testing::TestdataPath;

constexpr char kTfxMeta[] =
    "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000.meta";
constexpr char kTf2onnxMeta[] = "tf2onnx/tests/models/regression/checkpoint/model.meta";
constexpr char kSessionBundleMeta[] =
    "serving/tensorflow_serving/session_bundle/testdata/half_plus_two/00000123/"
    "export.meta";
constexpr char kTf2onnxSavedModel[] =
    "tf2onnx/tests/models/regression/saved_model/saved_model.pb";
constexpr const char* kServingSavedModels[] = {
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_gpu/"
    "00000123/saved_model.pb",
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/"
    "00000123/saved_model.pb",
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/"
    "00000123/saved_model.pb",
};

tensorflow::MetaGraphDef LoadMeta(const std::string& rel) {
  auto mg = ParseMetaGraph(ReadFileOrDie(TestdataPath(rel)));
  EXPECT_TRUE(mg.ok()) << rel << ": " << mg.status();
  return mg.ok() ? *mg : tensorflow::MetaGraphDef();
}

tensorflow::MetaGraphDef LoadSavedModel(const std::string& rel) {
  auto mg = SelectMetaGraph(ReadFileOrDie(TestdataPath(rel)), {"serve"});
  EXPECT_TRUE(mg.ok()) << rel << ": " << mg.status();
  return mg.ok() ? *mg : tensorflow::MetaGraphDef();
}

std::vector<std::pair<std::string, tensorflow::MetaGraphDef>> AllRealGraphs() {
  std::vector<std::pair<std::string, tensorflow::MetaGraphDef>> out;
  for (const char* rel : {kTfxMeta, kTf2onnxMeta, kSessionBundleMeta}) {
    out.emplace_back(rel, LoadMeta(rel));
  }
  out.emplace_back(kTf2onnxSavedModel, LoadSavedModel(kTf2onnxSavedModel));
  for (const char* rel : kServingSavedModels) out.emplace_back(rel, LoadSavedModel(rel));
  return out;
}

ExportOptions Scoped(const std::string& scope) {
  ExportOptions o;
  o.export_scope = scope;
  return o;
}

int CountPrefix(const tensorflow::MetaGraphDef& mg, const std::string& prefix) {
  int n = 0;
  for (const auto& node : mg.graph_def().node())
    n += absl::StartsWith(node.name(), prefix);
  return n;
}

// §13 row 1 (R3/R4): "save" also keeps save_1/..., unstripped.
TEST(ExportTestdataTest, R3R4Tf2onnxScopeSaveKeeps31NodesOfWhich20Unstripped) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::MetaGraphDef mg = LoadSavedModel(kTf2onnxSavedModel);
  ASSERT_EQ(mg.graph_def().node_size(), 148);
  ExportResult r;
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("save"), &r);
  EXPECT_EQ(r.node_count, 31);
  EXPECT_EQ(CountPrefix(out, "save_1/"), 20);
  EXPECT_EQ(CountPrefix(out, "save/"), 0);
  tensorflow::MetaGraphDef slash = ExportBoth(mg, Scoped("save/"), &r);
  EXPECT_EQ(r.node_count, 11);
}

// §13 row 2 (R3): zero_fraction_1/... leaks into "zero_fraction".
TEST(ExportTestdataTest, R3TfxScopeZeroFractionKeeps69Nodes) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::MetaGraphDef mg = LoadMeta(kTfxMeta);
  ASSERT_EQ(mg.graph_def().node_size(), 2502);
  ExportResult r;
  ExportBoth(mg, Scoped("zero_fraction"), &r);
  EXPECT_EQ(r.node_count, 69);
  ExportBoth(mg, Scoped("zero_fraction/"), &r);
  EXPECT_EQ(r.node_count, 59);
}

// §13 row 3 (R2/R10): clear_devices empties every device and nothing else.
TEST(ExportTestdataTest,
     R10TfxClearDevicesEmptiesDevicesOnlyAndKeepsLibrarySaverAndClass) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::MetaGraphDef mg = LoadMeta(kTfxMeta);
  ExportOptions o;
  o.clear_devices = true;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  ASSERT_EQ(out.graph_def().node_size(), mg.graph_def().node_size());
  int with_class = 0;
  for (int i = 0; i < out.graph_def().node_size(); ++i) {
    const auto& a = mg.graph_def().node(i);
    const auto& b = out.graph_def().node(i);
    EXPECT_EQ(b.device(), "");
    tensorflow::NodeDef a_no_device = a;
    a_no_device.clear_device();
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(a_no_device, b))
        << a.name();
    with_class += b.attr().count("_class");
  }
  EXPECT_EQ(with_class, 367);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
      out.graph_def().library(), mg.graph_def().library()));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(out.saver_def(),
                                                                 mg.saver_def()));
  EXPECT_EQ(out.collection_def_size(), mg.collection_def_size());
  // R15 with no scope: registered collections come back TF-equal.
  tensorflow::MetaGraphDef expected = mg;
  for (auto& node : *expected.mutable_graph_def()->mutable_node()) node.clear_device();
  EXPECT_EQ(testing::TfDifference(
                [&] {
                  tensorflow::MetaGraphDef e = expected;
                  e.clear_meta_info_def();
                  return e;
                }(),
                [&] {
                  tensorflow::MetaGraphDef e = out;
                  e.clear_meta_info_def();
                  return e;
                }()),
            "");
}

// R18: the tf2onnx SavedModel has savers save/ and save_1/; saver_def names save_1.
TEST(ExportTestdataTest, R18Tf2onnxClearExtraneousSaversRemovesTheSaveScope) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::MetaGraphDef mg = LoadSavedModel(kTf2onnxSavedModel);
  ASSERT_TRUE(absl::StartsWith(mg.saver_def().restore_op_name(), "save_1/"));
  ExportOptions o;
  o.clear_extraneous_savers = true;
  ExportResult r;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o, &r);
  EXPECT_EQ(r.node_count, 148 - 11);
  EXPECT_EQ(CountPrefix(out, "save/"), 0);
  EXPECT_EQ(CountPrefix(out, "save_1/"), 20);
}

// R23: exporting a SavedModel's graph drops its signatures and assets.
TEST(ExportTestdataTest, R23ServingSavedModelsLoseSignaturesAndAssets) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : kServingSavedModels) {
    tensorflow::MetaGraphDef mg = LoadSavedModel(rel);
    EXPECT_FALSE(mg.signature_def().empty()) << rel;
    ExportOptions o;
    o.clear_devices = true;
    tensorflow::MetaGraphDef out = ExportBoth(mg, o);
    EXPECT_TRUE(out.signature_def().empty()) << rel;
    EXPECT_EQ(out.asset_file_def_size(), 0) << rel;
    EXPECT_FALSE(out.has_object_graph_def()) << rel;
  }
}

// D5: session_bundle's any_list collections (serving_signatures, GraphDef) pass through.
TEST(ExportTestdataTest, D5SessionBundleAnyListsPassThroughUnderAScope) {
  MGREG_REQUIRE_TESTDATA();
  tensorflow::MetaGraphDef mg = LoadMeta(kSessionBundleMeta);
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("a"));
  for (const char* key : {"serving_signatures", "serving_graph", "serving_assets"}) {
    ASSERT_TRUE(out.collection_def().count(key)) << key;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        out.collection_def().at(key), mg.collection_def().at(key)))
        << key;
  }
}

// D1 on a real file: verbatim bytes.
TEST(ExportTestdataTest, D1TfxWithoutOptionsIsByteIdentical) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = ReadFileOrDie(TestdataPath(kTfxMeta));
  auto r = ExportMetaGraph(bytes, ExportOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, bytes);
  EXPECT_EQ(r->node_count, 2502);
  EXPECT_EQ(r->collections.size(),
            static_cast<size_t>(LoadMeta(kTfxMeta).collection_def_size()));
}

// D7 + the fast path: identical bytes to the message path for every real graph and many
// option combinations (ExportBoth checks), and the same output on a second run.
TEST(ExportTestdataTest, D7FastPathMatchesMessagePathOnEveryRealFile) {
  MGREG_REQUIRE_TESTDATA();
  const std::vector<std::string> scopes = {
      "", "save", "save/", "dnn", "linear/", "zero_fraction", "a", "gradients", "head/"};
  const std::vector<std::optional<std::vector<std::string>>> lists = {
      std::nullopt, std::vector<std::string>{},
      std::vector<std::string>{"variables", "summaries", "train_op", "unbound_inputs",
                               "savers", "variables"}};
  for (const auto& [rel, mg] : AllRealGraphs()) {
    for (const std::string& scope : scopes) {
      for (const auto& list : lists) {
        for (bool clear : {false, true}) {
          ExportOptions o;
          o.export_scope = scope;
          o.collection_list = list;
          o.clear_devices = clear;
          if (scope.empty() && !clear && !list.has_value()) continue;  // D1: verbatim
          SCOPED_TRACE(absl::StrCat(rel, " scope=", scope, " clear=", clear,
                                    " list=", list.has_value() ? list->size() : -1));
          auto a = ExportMetaGraphMessage(mg, o);
          auto b = ExportMetaGraph(Serialize(mg), o);
          // The real files' bytes as stored, too (not just our re-serialization).
          ASSERT_EQ(a.ok(), b.ok()) << a.status() << " vs " << b.status();
          if (!a.ok()) {
            EXPECT_EQ(a.status(), b.status());
            continue;
          }
          EXPECT_TRUE(a->bytes == b->bytes) << "fast path differs from message path";
          EXPECT_EQ(a->collections, b->collections);
        }
      }
    }
  }
  for (const char* rel : {kTfxMeta, kTf2onnxMeta, kSessionBundleMeta}) {
    std::string bytes = ReadFileOrDie(TestdataPath(rel));
    for (const std::string& scope : scopes) {
      ExportOptions o;
      o.export_scope = scope;
      o.clear_devices = true;
      o.collection_list = std::vector<std::string>{"variables", "summaries"};
      auto a = ExportMetaGraphMessage(LoadMeta(rel), o);
      auto b = ExportMetaGraph(bytes, o);
      ASSERT_TRUE(a.ok() && b.ok()) << rel;
      EXPECT_TRUE(a->bytes == b->bytes) << rel << " scope=" << scope;
    }
  }
}

// The other options on real files (message path; the fast path declines them).
TEST(ExportTestdataTest, R21StripDefaultAttrsOnRealFilesOnlyRemovesDeclaredDefaults) {
  MGREG_REQUIRE_TESTDATA();
  for (const auto& [rel, mg] : AllRealGraphs()) {
    ExportOptions o;
    o.strip_default_attrs = true;
    ExportResult r;
    tensorflow::MetaGraphDef out = ExportBoth(mg, o, &r);
    EXPECT_TRUE(out.meta_info_def().stripped_default_attrs()) << rel;
    ASSERT_EQ(out.graph_def().node_size(), mg.graph_def().node_size()) << rel;
    for (int i = 0; i < out.graph_def().node_size(); ++i) {
      for (const auto& [k, v] : out.graph_def().node(i).attr()) {
        EXPECT_TRUE(mg.graph_def().node(i).attr().count(k)) << rel;
      }
      for (const auto& [k, v] : mg.graph_def().node(i).attr()) {
        if (absl::StartsWith(k, "_")) {
          EXPECT_TRUE(out.graph_def().node(i).attr().count(k)) << rel << " " << k;
        }
      }
    }
  }
}

}  // namespace
}  // namespace mgreg
