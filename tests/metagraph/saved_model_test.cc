// SavedModel steps: which files make one, the checks a push passes, the choice of a
// MetaGraphDef by tag set, and its export under the checkpoint graphs' rules
// (shared/tf/EXPORT_SEMANTICS.md).
#include "metagraph/saved_model.h"

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "metagraph/export.h"
#include "tests/testing/checkpoint_builder.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::util::MessageDifferencer;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataPath;
using ::testing::HasSubstr;

constexpr const char* kRealSavedModels[] = {
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_cpu/00000123",
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_gpu/00000123",
    "serving/tensorflow_serving/servables/tensorflow/testdata/"
    "saved_model_half_plus_two_tf2_cpu/00000123",
    "tf2onnx/tests/models/regression/saved_model",
};

// Every file of a directory tree: relative name -> contents.
std::map<std::string, std::string> ReadTree(const std::string& dir) {
  std::map<std::string, std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(dir)) {
    if (e.is_regular_file()) {
      out[fs::relative(e.path(), dir).string()] = ReadFileOrDie(e.path().string());
    }
  }
  return out;
}

std::map<std::string, int64_t> Sizes(const std::map<std::string, std::string>& files) {
  std::map<std::string, int64_t> out;
  for (const auto& [name, bytes] : files) out[name] = static_cast<int64_t>(bytes.size());
  return out;
}

absl::Status Validate(const std::map<std::string, std::string>& files) {
  return ValidateSavedModelContents(
      Sizes(files), [&](const std::string& name) -> absl::StatusOr<std::string> {
        return files.at(name);
      });
}

std::vector<std::string> Names(const std::map<std::string, std::string>& files) {
  std::vector<std::string> out;
  for (const auto& [name, unused] : files) out.push_back(name);
  return out;
}

// A SavedModel of `tag_sets.size()` MetaGraphDefs, each a small graph.
std::string MultiTagSavedModel(const std::vector<std::vector<std::string>>& tag_sets) {
  tensorflow::SavedModel sm;
  sm.set_saved_model_schema_version(1);
  for (const auto& tags : tag_sets) {
    tensorflow::MetaGraphDef* mg = sm.add_meta_graphs();
    *mg = testing::SmallMetaGraph();
    for (const std::string& t : tags) mg->mutable_meta_info_def()->add_tags(t);
  }
  return sm.SerializeAsString();
}

TEST(SavedModelTest, EveryRealSavedModelPassesValidation) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : kRealSavedModels) {
    SCOPED_TRACE(rel);
    const auto files = ReadTree(TestdataPath(rel));
    EXPECT_TRUE(
        ValidateSavedModelNames(Names(files), absl::StatusCode::kInvalidArgument).ok());
    EXPECT_TRUE(Validate(files).ok()) << Validate(files);
  }
}

// The TF 1 SavedModel names its asset in the "saved_model_assets" collection, the TF 2
// one in asset_file_def.
TEST(SavedModelTest, AMissingAssetIsRefusedNamingTheFileAndTheAsset) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : {kRealSavedModels[0], kRealSavedModels[2]}) {
    SCOPED_TRACE(rel);
    auto files = ReadTree(TestdataPath(rel));
    ASSERT_EQ(files.erase("assets/foo.txt"), 1u);
    absl::Status s = Validate(files);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(s.message(), HasSubstr("file 'saved_model.pb'"));
    EXPECT_THAT(s.message(), HasSubstr("'assets/foo.txt'"));
  }
}

TEST(SavedModelTest, AnIndexThatDoesNotMatchItsShardIsRefused) {
  MGREG_REQUIRE_TESTDATA();
  auto files = ReadTree(TestdataPath(kRealSavedModels[0]));
  files["variables/variables.data-00000-of-00001"] = "1234";  // shorter than the tensors
  absl::Status s = Validate(files);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("file 'variables/variables.index'"));
}

TEST(SavedModelTest, ASavedModelProtoThatDoesNotParseIsRefused) {
  std::map<std::string, std::string> files = {
      {"saved_model.pb", "not a protobuf at all"}};
  absl::Status s = Validate(files);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("file 'saved_model.pb'"));
  EXPECT_THAT(s.message(), HasSubstr("not a SavedModel"));
}

TEST(SavedModelTest, ASavedModelWithoutVariablesIsValid) {
  std::map<std::string, std::string> files = {
      {"saved_model.pb", MultiTagSavedModel({{"serve"}})}};
  EXPECT_TRUE(
      ValidateSavedModelNames(Names(files), absl::StatusCode::kInvalidArgument).ok());
  EXPECT_TRUE(Validate(files).ok()) << Validate(files);
}

TEST(SavedModelTest, NamesMustBeRelativePathsAndTheBundleComplete) {
  auto check = [](std::vector<std::string> names) {
    return ValidateSavedModelNames(names, absl::StatusCode::kFailedPrecondition);
  };
  EXPECT_EQ(check({"saved_model.pb", "../evil"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(check({"saved_model.pb", "/etc/passwd"}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(check({"saved_model.pb", "assets//x"}).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status no_proto = check({"variables/variables.index"});
  EXPECT_EQ(no_proto.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_proto.message(), HasSubstr("saved_model.pb"));
  absl::Status no_shard = check({"saved_model.pb", "variables/variables.index",
                                 "variables/variables.data-00000-of-00002"});
  EXPECT_EQ(no_shard.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(no_shard.message(), HasSubstr("variables/variables.data-00001-of-00002"));
  absl::Status no_index =
      check({"saved_model.pbtxt", "variables/variables.data-00000-of-00001"});
  EXPECT_THAT(no_index.message(), HasSubstr("variables/variables.index"));
  EXPECT_EQ(check({"saved_model.pbtxt", "assets/vocab.txt", "fingerprint.pb"}).code(),
            absl::StatusCode::kOk);
}

TEST(SavedModelTest, TheOnlyMetaGraphIsChosenWithoutTags) {
  tensorflow::SavedModel sm;
  ASSERT_TRUE(sm.ParseFromString(MultiTagSavedModel({{"serve"}})));
  absl::StatusOr<tensorflow::MetaGraphDef> mg = ChooseMetaGraph(sm, {});
  ASSERT_TRUE(mg.ok()) << mg.status();
  EXPECT_EQ(mg->meta_info_def().tags(0), "serve");
}

TEST(SavedModelTest, SeveralMetaGraphsWithoutTagsIsInvalidArgumentListingTheTagSets) {
  tensorflow::SavedModel sm;
  ASSERT_TRUE(sm.ParseFromString(MultiTagSavedModel({{"serve"}, {"serve", "gpu"}})));
  absl::StatusOr<tensorflow::MetaGraphDef> mg = ChooseMetaGraph(sm, {});
  EXPECT_EQ(mg.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(mg.status().message(), HasSubstr("[serve] [gpu, serve]"));
  absl::StatusOr<tensorflow::MetaGraphDef> gpu = ChooseMetaGraph(sm, {"gpu", "serve"});
  ASSERT_TRUE(gpu.ok()) << gpu.status();
  EXPECT_EQ(gpu->meta_info_def().tags_size(), 2);
  absl::StatusOr<tensorflow::MetaGraphDef> train = ChooseMetaGraph(sm, {"train"});
  EXPECT_EQ(train.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(train.status().message(), HasSubstr("[serve] [gpu, serve]"));
}

// The export of a SavedModel's MetaGraphDef is the export of that MetaGraphDef as a
// .meta: the same rules, byte for byte (R1 scope, R2/clear_devices, R12 collections,
// D1 no option = the MetaGraphDef as stored, D8 as_text).
TEST(SavedModelTest, ExportOfTheChosenMetaGraphFollowsTheCheckpointRules) {
  MGREG_REQUIRE_TESTDATA();
  for (const char* rel : kRealSavedModels) {
    SCOPED_TRACE(rel);
    const std::string stored =
        ReadFileOrDie(TestdataPath(absl::StrCat(rel, "/saved_model.pb")));
    tensorflow::SavedModel sm;
    ASSERT_TRUE(sm.ParseFromString(stored));
    const tensorflow::MetaGraphDef& mg = sm.meta_graphs(0);
    std::vector<ExportOptions> all(5);
    all[1].clear_devices = true;
    all[2].collection_list = std::vector<std::string>{"variables"};
    all[3].strip_default_attrs = true;
    all[3].clear_extraneous_savers = true;
    all[4].as_text = true;
    for (const ExportOptions& options : all) {
      absl::StatusOr<SavedModelExport> got =
          ExportSavedModelGraph(stored, {"serve"}, options);
      ASSERT_TRUE(got.ok()) << got.status();
      absl::StatusOr<ExportResult> want = ExportMetaGraphMessage(mg, options);
      ASSERT_TRUE(want.ok()) << want.status();
      if (&options == &all[0]) {
        // D1: no option, the chosen MetaGraphDef as stored.
        tensorflow::MetaGraphDef exported;
        ASSERT_TRUE(exported.ParseFromString(got->result.bytes));
        EXPECT_TRUE(MessageDifferencer::Equals(exported, mg));
      } else {
        EXPECT_EQ(got->result.bytes, want->bytes);  // D7: deterministic output
        EXPECT_EQ(got->result.node_count, want->node_count);
        EXPECT_EQ(got->result.collections, want->collections);
      }
      EXPECT_EQ(got->tags, std::vector<std::string>{"serve"});
    }
  }
}

}  // namespace
}  // namespace mgreg
