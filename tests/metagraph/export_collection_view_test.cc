// CollectionToJson / CollectionToText (metagraph/collection_view.h).
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/collection_view.h"
#include "tests/testing/export_test_util.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

using testing::AddBytes;
using testing::AddNode;
using testing::AddNodeList;
using ::testing::HasSubstr;
using testing::Serialize;

std::string Sample() {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  AddNodeList(&mg, "train_op", {"a", "b:0"});
  AddBytes(&mg, "hparams", "lr=0.1\n\"quoted\"");
  AddBytes(&mg, "hparams", std::string("\xff\x00", 2));
  AddBytes(&mg, "variables", Serialize(testing::Var("w")));
  (*mg.mutable_collection_def())["steps"].mutable_int64_list()->add_value(-3);
  auto* f = (*mg.mutable_collection_def())["rates"].mutable_float_list();
  f->add_value(0.5f);
  f->add_value(std::numeric_limits<float>::infinity());
  auto* any = (*mg.mutable_collection_def())["infos"].mutable_any_list()->add_value();
  any->set_type_url("type.googleapis.com/tensorflow.TensorInfo");
  any->set_value("ab");
  (*mg.mutable_collection_def())["empty"];
  return Serialize(mg);
}

TEST(CollectionViewTest, NodeListIsAJsonArrayOfStrings) {
  auto json = CollectionToJson(Sample(), "train_op");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_EQ(*json, R"({"key":"train_op","kind":"node_list","values":["a","b:0"]})");
  EXPECT_EQ(*CollectionToText(Sample(), "train_op"), "a\nb:0\n");
}

TEST(CollectionViewTest, UnregisteredBytesAreStringsIfUtf8ElseBase64) {
  auto json = CollectionToJson(Sample(), "hparams");
  ASSERT_TRUE(json.ok());
  EXPECT_EQ(
      *json,
      R"({"key":"hparams","kind":"bytes_list","values":["lr=0.1\n\"quoted\"","/wA="]})");
  EXPECT_EQ(*CollectionToText(Sample(), "hparams"), "lr=0.1\\n\"quoted\"\nbase64:/wA=\n");
}

TEST(CollectionViewTest, D5RegisteredKeysDecodeIntoProtoFields) {
  auto json = CollectionToJson(Sample(), "variables");
  ASSERT_TRUE(json.ok());
  EXPECT_THAT(*json, HasSubstr(R"("variable_name":"w:0")"));
  EXPECT_THAT(*json, HasSubstr(R"("kind":"bytes_list")"));
  auto text = CollectionToText(Sample(), "variables");
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, HasSubstr("variable_name: \"w:0\""));
  EXPECT_EQ(std::count(text->begin(), text->end(), '\n'), 1);
}

TEST(CollectionViewTest, NumbersAnyAndNoneKinds) {
  EXPECT_EQ(*CollectionToJson(Sample(), "steps"),
            R"({"key":"steps","kind":"int64_list","values":[-3]})");
  EXPECT_EQ(*CollectionToJson(Sample(), "rates"),
            R"({"key":"rates","kind":"float_list","values":[0.5,"Infinity"]})");
  EXPECT_EQ(
      *CollectionToJson(Sample(), "infos"),
      R"({"key":"infos","kind":"any_list","values":[{"type_url":"type.googleapis.com/tensorflow.TensorInfo","value":"YWI="}]})");
  EXPECT_EQ(*CollectionToJson(Sample(), "empty"),
            R"({"key":"empty","kind":"none","values":[]})");
  EXPECT_EQ(*CollectionToText(Sample(), "empty"), "");
}

TEST(CollectionViewTest, MissingKeyIsNotFoundListingTheKeys) {
  auto json = CollectionToJson(Sample(), "nope");
  EXPECT_EQ(json.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(std::string(json.status().message()), HasSubstr("hparams"));
  EXPECT_EQ(CollectionToText(Sample(), "nope").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(CollectionViewTest, NotAMetaGraphIsInvalidArgument) {
  EXPECT_EQ(CollectionToJson("\xff\xff garbage", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(CollectionViewTest, RealTfxGlobalStepDecodesAsResourceVariable) {
  MGREG_REQUIRE_TESTDATA();
  std::string bytes = testing::ReadFileOrDie(testing::TestdataPath(
      "tfx/tfx/components/testdata/trainer/current/Format-Serving/model.ckpt-1000.meta"));
  auto json = CollectionToJson(bytes, "global_step");
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr(R"("is_resource":true)"));
  EXPECT_THAT(*json, HasSubstr("VARIABLE_AGGREGATION_ONLY_FIRST_REPLICA"));
  auto savers = CollectionToText(bytes, "savers");
  ASSERT_TRUE(savers.ok());
  EXPECT_THAT(*savers, HasSubstr("save/restore_all"));
}

}  // namespace
}  // namespace mgreg
