// Collection kinds registered by configuration (issue 18 item 10): building them from a
// descriptor set, and what export_scope (R13-R15 applied to the kind, D5) and the
// collection view make of their entries.
#include "metagraph/collection_kinds.h"

#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/collection_view.h"
#include "metagraph/export.h"
#include "tests/testing/checkpoint_builder.h"

namespace mgreg {
namespace {

using ::mgreg::testing::LayerDefBytes;
using ::mgreg::testing::LayerDefDescriptorSet;
using ::mgreg::testing::MetaGraphWithLayers;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

CollectionKindSpec LayerSpec() {
  CollectionKindSpec spec;
  spec.key = "layers";
  spec.descriptor_set = LayerDefDescriptorSet();
  spec.descriptor_set_name = "layers.pb";
  spec.message_type = "mylib.LayerDef";
  spec.name_fields = {"name", "inputs", "output.tensor"};
  return spec;
}

std::shared_ptr<const CollectionKinds> Kinds(
    const CollectionKindSpec& spec = LayerSpec()) {
  auto kinds = CollectionKinds::Create({spec});
  EXPECT_TRUE(kinds.ok()) << kinds.status();
  return kinds.ok() ? *kinds : nullptr;
}

std::string Serialized(const tensorflow::MetaGraphDef& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

// The entries of collection `key` of an exported graph, each as its text format.
std::vector<std::string> Entries(const ExportResult& result, const CollectionKinds& kinds,
                                 const std::string& key) {
  tensorflow::MetaGraphDef out;
  EXPECT_TRUE(out.ParseFromString(result.bytes));
  std::vector<std::string> entries;
  auto it = out.collection_def().find(key);
  if (it == out.collection_def().end()) return entries;
  for (const std::string& bytes : it->second.bytes_list().value()) {
    std::unique_ptr<google::protobuf::Message> m = kinds.Find(key)->New();
    EXPECT_TRUE(m->ParseFromString(bytes));
    entries.push_back(m->ShortDebugString());
  }
  return entries;
}

struct BadSpec {
  const char* name;
  std::function<void(CollectionKindSpec*)> change;
  const char* says;
};

TEST(CollectionKindsTest, ABadKindIsInvalidArgumentSayingWhatToChange) {
  const std::vector<BadSpec> cases = {
      {"no key", [](CollectionKindSpec* s) { s->key = ""; }, "has no key"},
      {"TensorFlow's key", [](CollectionKindSpec* s) { s->key = "variables"; },
       "one of TensorFlow's own registered collections"},
      {"missing import",
       [](CollectionKindSpec* s) {
         s->descriptor_set.mutable_file(0)->add_dependency("mylib/common.proto");
       },
       "--include_imports"},
      {"unknown type", [](CollectionKindSpec* s) { s->message_type = "mylib.Layer"; },
       "it has [mylib.LayerDef, mylib.LayerDef.Output]"},
      {"unknown field", [](CollectionKindSpec* s) { s->name_fields = {"nme"}; },
       "has no field 'nme'; its fields are [name, inputs, output, units]"},
      {"through a scalar", [](CollectionKindSpec* s) { s->name_fields = {"units.x"}; },
       "goes through a field that is not a message"},
      {"not a string", [](CollectionKindSpec* s) { s->name_fields = {"units"}; },
       "is a int32 field; graph names are string fields"},
      {"repeated scope field", [](CollectionKindSpec* s) { s->name_fields = {"inputs"}; },
       "scope_field (unset: the first of name_fields) 'inputs' goes through repeated"},
      {"repeated scope field set",
       [](CollectionKindSpec* s) { s->scope_field = "inputs"; },
       "scope_field 'inputs' goes through repeated"},
  };
  for (const BadSpec& c : cases) {
    CollectionKindSpec spec = LayerSpec();
    c.change(&spec);
    auto kinds = CollectionKinds::Create({spec});
    EXPECT_EQ(kinds.status().code(), absl::StatusCode::kInvalidArgument) << c.name;
    EXPECT_THAT(kinds.status().message(), HasSubstr(c.says)) << c.name;
  }
  auto twice = CollectionKinds::Create({LayerSpec(), LayerSpec()});
  EXPECT_THAT(twice.status().message(),
              HasSubstr("'layers' (layers.pb): is declared twice"));
}

TEST(CollectionKindsTest, ExportScopeDropsEntriesOutsideItAndStripsEveryNameField) {
  std::shared_ptr<const CollectionKinds> kinds = Kinds();
  ExportOptions options;
  options.export_scope = "dense";
  options.collection_kinds = kinds;
  const tensorflow::MetaGraphDef stored = MetaGraphWithLayers();
  auto fast = ExportMetaGraph(Serialized(stored), options);
  ASSERT_TRUE(fast.ok()) << fast.status();
  // Names outside the scope are left as they are (R4); units is not a name.
  EXPECT_THAT(Entries(*fast, *kinds, "layers"),
              ElementsAre("name: \"layer\" inputs: \"w:0\" inputs: \"other/x:0\" "
                          "output { tensor: \"out:0\" } units: 8"));
  // The message path gives the same bytes (D7).
  auto reference = ExportMetaGraphMessage(stored, options);
  ASSERT_TRUE(reference.ok()) << reference.status();
  EXPECT_EQ(fast->bytes, reference->bytes);
}

TEST(CollectionKindsTest, WithoutTheKindTheEntriesAreOpaqueBytesKeptUnchanged) {
  ExportOptions options;
  options.export_scope = "dense";
  const tensorflow::MetaGraphDef stored = MetaGraphWithLayers();
  auto out = ExportMetaGraph(Serialized(stored), options);
  ASSERT_TRUE(out.ok()) << out.status();
  tensorflow::MetaGraphDef exported;
  ASSERT_TRUE(exported.ParseFromString(out->bytes));
  EXPECT_EQ(exported.collection_def().at("layers").SerializeAsString(),
            stored.collection_def().at("layers").SerializeAsString());  // D5
}

TEST(CollectionKindsTest, NoEntryInTheScopeLeavesNoCollection) {
  ExportOptions options;
  options.export_scope = "elsewhere";
  options.collection_kinds = Kinds();
  auto out = ExportMetaGraph(Serialized(MetaGraphWithLayers()), options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(out->collections, ::testing::Not(::testing::Contains("layers")));
}

TEST(CollectionKindsTest, TheScopeFieldCanBeOtherThanTheFirstNameField) {
  CollectionKindSpec spec = LayerSpec();
  spec.scope_field = "output.tensor";
  std::shared_ptr<const CollectionKinds> kinds = Kinds(spec);
  ExportOptions options;
  options.export_scope = "head";
  options.collection_kinds = kinds;
  auto out = ExportMetaGraph(Serialized(MetaGraphWithLayers()), options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_THAT(Entries(*out, *kinds, "layers"),
              ElementsAre("name: \"layer\" inputs: \"dense/out:0\" "
                          "output { tensor: \"out:0\" } units: 2"));
}

TEST(CollectionKindsTest, AKindWithoutNameFieldsIsKeptWhole) {
  CollectionKindSpec spec = LayerSpec();
  spec.name_fields.clear();
  std::shared_ptr<const CollectionKinds> kinds = Kinds(spec);
  ExportOptions options;
  options.export_scope = "dense";
  options.collection_kinds = kinds;
  auto out = ExportMetaGraph(Serialized(MetaGraphWithLayers()), options);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(Entries(*out, *kinds, "layers").size(), 2u);
}

TEST(CollectionKindsTest, AnEntryThatIsNotTheConfiguredTypeFailsTheExport) {
  tensorflow::MetaGraphDef stored = MetaGraphWithLayers();
  (*stored.mutable_collection_def())["layers"].mutable_bytes_list()->add_value(
      "\xff\xff");
  ExportOptions options;
  options.export_scope = "dense";
  options.collection_kinds = Kinds();
  auto out = ExportMetaGraph(Serialized(stored), options);
  EXPECT_EQ(out.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(out.status().message(),
              HasSubstr("collection 'layers' entry 2 is not a valid mylib.LayerDef"));
}

TEST(CollectionKindsTest, TheCollectionViewDecodesTheEntries) {
  std::shared_ptr<const CollectionKinds> kinds = Kinds();
  const std::string stored = Serialized(MetaGraphWithLayers());
  auto json = CollectionToJson(stored, "layers", kinds.get());
  ASSERT_TRUE(json.ok()) << json.status();
  EXPECT_THAT(*json, HasSubstr("{\"key\":\"layers\",\"kind\":\"bytes_list\",\"values\":["
                               "{\"name\":\"dense/layer\",\"inputs\":[\"dense/w:0\","
                               "\"other/x:0\"],\"output\":{\"tensor\":\"dense/out:0\"},"
                               "\"units\":8},"));
  auto text = CollectionToText(stored, "layers", kinds.get());
  ASSERT_TRUE(text.ok()) << text.status();
  EXPECT_THAT(*text, HasSubstr("name: \"head/layer\" inputs: \"dense/out:0\" output { "
                               "tensor: \"head/out:0\" } units: 2\n"));
  // Without the kind: bytes, as before.
  auto opaque = CollectionToJson(stored, "layers");
  ASSERT_TRUE(opaque.ok());
  EXPECT_THAT(*opaque, ::testing::Not(HasSubstr("\"units\"")));
}

}  // namespace
}  // namespace mgreg
