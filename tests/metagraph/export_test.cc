// Rules of EXPORT_SEMANTICS (R1-R25, D1-D8) on small graphs built here. Every export goes
// through both the message path and the wire-level fast path (ExportBoth checks that they
// give identical bytes).
#include "metagraph/export.h"

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "tests/testing/export_test_util.h"

namespace mgreg {
namespace {

using testing::AddBytes;
using testing::AddNode;
using testing::AddNodeList;
using ::testing::ElementsAre;
using testing::ExportBoth;
using testing::FindNode;
using ::testing::IsEmpty;
using testing::NodeNames;
using testing::ParseBytesList;
using testing::Saver;
using testing::Serialize;
using testing::SetClass;
using testing::SetStringAttr;
using ::testing::UnorderedElementsAre;
using testing::Var;

ExportOptions Scoped(const std::string& scope) {
  ExportOptions o;
  o.export_scope = scope;
  return o;
}

ExportOptions ClearDevices() {
  ExportOptions o;
  o.clear_devices = true;
  return o;
}

// --- R1 / R2 / R22: when and how the graph is rebuilt ---

// GraphDef.version (field 3) is deprecated in graph.proto (old graphs only; TensorFlow
// uses `versions`), but old .meta files carry it and R1/R2 say what the export does with
// it (kept verbatim, dropped on a rewrite): these two tests set and read it on purpose.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
TEST(ExportTest, R1CollectionListAloneKeepsTheGraphDefVerbatim) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const", {}, "/device:CPU:0");
  mg.mutable_graph_def()->set_version(17);
  mg.mutable_graph_def()->mutable_debug_info()->add_files("x.py");
  ExportOptions o;
  o.collection_list = std::vector<std::string>{};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(out.graph_def(),
                                                                 mg.graph_def()));
}

TEST(ExportTest, R1EmptyExportScopeIsFalsyAndKeepsEveryNodeUnchanged) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const", {"other/x"}, "/device:GPU:0");
  ExportOptions o = Scoped("");
  o.collection_list = std::vector<std::string>{};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  ASSERT_EQ(out.graph_def().node_size(), 1);
  EXPECT_EQ(out.graph_def().node(0).input(0), "other/x");
  EXPECT_EQ(out.graph_def().node(0).device(), "/device:GPU:0");
}

TEST(ExportTest, R2RewrittenGraphDropsDebugInfoAndVersionButKeepsLibraryAndVersions) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const", {}, "/device:CPU:0");
  auto* g = mg.mutable_graph_def();
  g->set_version(17);
  g->mutable_debug_info()->add_files("x.py");
  g->mutable_versions()->set_producer(1054);
  g->mutable_versions()->set_min_consumer(12);
  auto* f = g->mutable_library()->add_function();
  f->mutable_signature()->set_name("fn");
  auto* fn_node = f->add_node_def();
  fn_node->set_name("inner");
  fn_node->set_op("Identity");
  fn_node->set_device("/device:GPU:0");
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_FALSE(out.graph_def().has_debug_info());
  EXPECT_EQ(out.graph_def().version(), 0);
  // R22: versions copied unchanged.
  EXPECT_EQ(out.graph_def().versions().producer(), 1054);
  EXPECT_EQ(out.graph_def().versions().min_consumer(), 12);
  // R10: library functions keep their devices.
  EXPECT_EQ(out.graph_def().library().function(0).node_def(0).device(), "/device:GPU:0");
}
#pragma GCC diagnostic pop

TEST(ExportTest, R2RewrittenGraphAlwaysCarriesLibraryAndVersionsEvenWhenEmpty) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_TRUE(out.graph_def().has_library());
  EXPECT_TRUE(out.graph_def().has_versions());
}

TEST(ExportTest, R2LibraryIsNeitherFilteredNorRenamedByTheScope) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const");
  auto* f = mg.mutable_graph_def()->mutable_library()->add_function();
  f->mutable_signature()->set_name("other/fn");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"));
  ASSERT_EQ(out.graph_def().library().function_size(), 1);
  EXPECT_EQ(out.graph_def().library().function(0).signature().name(), "other/fn");
}

// --- R3 / R4 / R5: selection and name stripping ---

TEST(ExportTest, R3ScopeWithoutTrailingSlashIsARawPrefixThatAlsoMatchesSiblings) {
  tensorflow::MetaGraphDef mg;
  for (const char* n : {"a", "a/x", "ab/x", "a_1/x", "b/x", "$unbound_inputs_q"}) {
    AddNode(&mg, n, "NoOp");
  }
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("a"));
  // R4: only names with '/' right after the scope are stripped.
  EXPECT_THAT(NodeNames(out),
              ElementsAre("a", "x", "ab/x", "a_1/x", "$unbound_inputs_q"));
}

TEST(ExportTest, R3ScopeWithTrailingSlashKeepsOnlyTheScopesChildren) {
  tensorflow::MetaGraphDef mg;
  for (const char* n : {"a", "a/x", "ab/x", "a_1/x"}) AddNode(&mg, n, "NoOp");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("a/"));
  EXPECT_THAT(NodeNames(out), ElementsAre("x"));
}

TEST(ExportTest, R4StripNameScopeEatsAllSlashesAndHandlesCaretAndLocPrefixes) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "s//x", "Identity",
                    {"s/y:1", "^s/z", "s", "s:0", "sX/y", "s/loc:@s/q", "s/u^s/v"});
  SetClass(n, {"loc:@s/w"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  const auto& node = out.graph_def().node(0);
  EXPECT_EQ(node.name(), "x");
  EXPECT_THAT(node.input(),
              ElementsAre("y:1", "^z", "s", "s:0", "sX/y", "loc:@s/q", "u^s/v"));
  EXPECT_THAT(node.attr().at("_class").list().s(), ElementsAre("loc:@w"));
}

TEST(ExportTest, R4StripMatchesLaterCaretOrLocWhenTheStartDoesNotMatch) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/n", "Identity", {"s_other^s/v"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  // The input starts with the scope (bound), the regex finds "^s/" further on.
  EXPECT_EQ(out.graph_def().node(0).input(0), "s_other^v");
}

TEST(ExportTest, R4ScopeIsARegexSoADotMatchesAnyCharacter) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a.b/x", "NoOp", {"a.b/y"});
  AddNode(&mg, "a.b/z", "NoOp", {"^a.b/loc"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("a.b"));
  EXPECT_THAT(NodeNames(out), ElementsAre("x", "z"));
  // "aXb/..." is not selected (R3 is a plain prefix) but would be stripped by the regex.
  tensorflow::MetaGraphDef mg2;
  AddNode(&mg2, "a.b/x", "NoOp", {"a.bc", "a.b/loc:@aXb/q"});
  tensorflow::MetaGraphDef out2 = ExportBoth(mg2, Scoped("a.b"));
  EXPECT_THAT(out2.graph_def().node(0).input(), ElementsAre("a.bc", "loc:@aXb/q"));
}

TEST(ExportTest, R4InvalidRegexScopeIsInvalidArgument) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a(/x", "NoOp");
  auto r = ExportMetaGraphMessage(mg, Scoped("a("));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  auto r2 = ExportMetaGraph(Serialize(mg), Scoped("a("));
  EXPECT_EQ(r2.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ExportTest, R4RegexScopeWithSpecialCharactersStripsLikePython) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "ab+/x", "NoOp");  // kept by prefix, "ab+" as regex matches "abb"
  AddNode(&mg, "ab+/y", "NoOp", {"abbb/z"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("ab+"));
  EXPECT_THAT(NodeNames(out), ElementsAre("ab+/x", "ab+/y"));
}

TEST(ExportTest, R5NodeNamesAreStrippedOfTheScope) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "outer/inner/op", "NoOp");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("outer"));
  EXPECT_THAT(NodeNames(out), ElementsAre("inner/op"));
}

// --- R6 / R11: unbound inputs ---

TEST(ExportTest, R6InputsOutsideTheScopeBecomeUnboundIncludingControlInputs) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"other/x:1", "^other/y", "s/b", "^^other/z"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_THAT(out.graph_def().node(0).input(),
              ElementsAre("$unbound_inputs_other/x:1", "^$unbound_inputs_other/y", "b",
                          "^$unbound_inputs_^other/z"));
}

TEST(ExportTest, R11UnboundCollectionDropsControlInputsAndKeepsDuplicates) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"images", "images", "^init"});
  AddNode(&mg, "s/b", "Add", {"labels:0"});
  ExportResult r;
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"), &r);
  ASSERT_TRUE(out.collection_def().count("unbound_inputs"));
  EXPECT_THAT(out.collection_def().at("unbound_inputs").bytes_list().value(),
              ElementsAre("$unbound_inputs_images", "$unbound_inputs_images",
                          "$unbound_inputs_labels:0"));
  // The control input stays rewritten in the node.
  EXPECT_EQ(out.graph_def().node(0).input(2), "^$unbound_inputs_init");
  EXPECT_THAT(r.collections, ElementsAre("unbound_inputs"));
}

TEST(ExportTest, R11NoUnboundInputsMeansNoCollection) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"s/b"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_FALSE(out.collection_def().count("unbound_inputs"));
}

TEST(ExportTest, R11OnlyControlUnboundInputsLeaveNoCollection) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"^init"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_FALSE(out.collection_def().count("unbound_inputs"));
}

TEST(ExportTest, R11NoCollectionNameMeansNoUnboundCollection) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"x"});
  ExportOptions o = Scoped("s");
  o.unbound_inputs_col_name = std::nullopt;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(out.collection_def().empty());
  EXPECT_EQ(out.graph_def().node(0).input(0), "$unbound_inputs_x");
}

TEST(ExportTest, R11CustomCollectionNameAndCollectionListFilter) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"x"});
  ExportOptions o = Scoped("s");
  o.unbound_inputs_col_name = "my_unbound";
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(out.collection_def().count("my_unbound"));
  o.collection_list = std::vector<std::string>{"other"};
  tensorflow::MetaGraphDef out2 = ExportBoth(mg, o);
  EXPECT_TRUE(out2.collection_def().empty());
}

TEST(ExportTest, R11StoredUnboundCollectionIsReplacedWhenNodesAreRewritten) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Add", {"s/b"});
  AddBytes(&mg, "unbound_inputs", "$unbound_inputs_stale");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_FALSE(out.collection_def().count("unbound_inputs"));
}

TEST(ExportTest, R11bWithoutRewriteAStoredUnboundCollectionIsExportedAsIs) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Add", {"$unbound_inputs_x"});
  AddBytes(&mg, "unbound_inputs", "$unbound_inputs_x");
  ExportOptions o;
  o.collection_list = std::vector<std::string>{"unbound_inputs"};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_THAT(out.collection_def().at("unbound_inputs").bytes_list().value(),
              ElementsAre("$unbound_inputs_x"));
}

// --- R7: _class ---

TEST(ExportTest, R7ClassEntriesOutsideTheScopeAreDroppedAndAnEmptyListStays) {
  tensorflow::MetaGraphDef mg;
  SetClass(AddNode(&mg, "s/a", "Const"), {"loc:@s/v", "loc:@other/w"});
  SetClass(AddNode(&mg, "s/b", "Const"), {"loc:@other/w"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_THAT(FindNode(out, "a")->attr().at("_class").list().s(), ElementsAre("loc:@v"));
  const tensorflow::AttrValue& empty = FindNode(out, "b")->attr().at("_class");
  EXPECT_TRUE(empty.has_list());
  EXPECT_EQ(empty.list().s_size(), 0);
  // Wire bytes of the emptied attr: `list {}`.
  EXPECT_EQ(Serialize(empty), std::string("\x0a\x00", 2));
}

TEST(ExportTest, R7WithoutScopeClassEntriesAreKeptByteForByte) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "a", "Const", {}, "/device:CPU:0");
  SetClass(n, {"loc:@other/w", "weird-entry"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_THAT(out.graph_def().node(0).attr().at("_class").list().s(),
              ElementsAre("loc:@other/w", "weird-entry"));
}

TEST(ExportTest, R7NonListClassBecomesAnEmptyListAndOtherListFieldsAreDiscarded) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "a", "Const");
  SetStringAttr(n, "_class", "loc:@x");
  auto* m = AddNode(&mg, "b", "Const");
  SetClass(m, {"loc:@b"});
  (*m->mutable_attr())["_class"].mutable_list()->add_i(3);
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_EQ(Serialize(FindNode(out, "a")->attr().at("_class")),
            std::string("\x0a\x00", 2));
  EXPECT_EQ(FindNode(out, "b")->attr().at("_class").list().i_size(), 0);
  EXPECT_THAT(FindNode(out, "b")->attr().at("_class").list().s(), ElementsAre("loc:@b"));
}

TEST(ExportTest, R7D6ClassEntryWithoutAtUnderAScopeFailsNamingTheNode) {
  tensorflow::MetaGraphDef mg;
  SetClass(AddNode(&mg, "s/bad", "Const"), {"no-at-sign"});
  auto r = ExportMetaGraphMessage(mg, Scoped("s"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("s/bad"));
  auto r2 = ExportMetaGraph(Serialize(mg), Scoped("s"));
  EXPECT_EQ(r2.status(), r.status());
}

// --- R8: Enter frames ---

TEST(ExportTest, R8EnterFrameInsideTheScopeIsStripped) {
  tensorflow::MetaGraphDef mg;
  SetStringAttr(AddNode(&mg, "s/while/Enter", "Enter", {"s/x"}), "frame_name",
                "s/while/while_context");
  SetStringAttr(AddNode(&mg, "s/while/RefEnter", "RefEnter", {"s/x"}), "frame_name",
                "s/while/while_context");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_EQ(out.graph_def().node(0).attr().at("frame_name").s(), "while/while_context");
  EXPECT_EQ(out.graph_def().node(1).attr().at("frame_name").s(), "while/while_context");
}

TEST(ExportTest, R8D6EnterFrameOutsideTheScopeFailsNamingTheNode) {
  tensorflow::MetaGraphDef mg;
  SetStringAttr(AddNode(&mg, "s/while/Enter", "Enter"), "frame_name",
                "outer/while/while_context");
  auto r = ExportMetaGraphMessage(mg, Scoped("s"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(r.status().message()), ::testing::HasSubstr("s/while/Enter"));
  auto r2 = ExportMetaGraph(Serialize(mg), Scoped("s"));
  EXPECT_EQ(r2.status(), r.status());
}

TEST(ExportTest, R8FrameNameOfNonEnterOpsIsCopiedUnchanged) {
  tensorflow::MetaGraphDef mg;
  SetStringAttr(AddNode(&mg, "s/exit", "Exit"), "frame_name", "outer/ctx");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_EQ(out.graph_def().node(0).attr().at("frame_name").s(), "outer/ctx");
}

// --- R9 / R10 ---

TEST(ExportTest, R9OtherAttrsHoldingNamesAreCopiedUnchanged) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "s/v", "VarHandleOp");
  SetStringAttr(n, "shared_name", "s/v");
  SetStringAttr(n, "container", "s/c");
  (*n->mutable_attr())["f"].mutable_func()->set_name("s/fn");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_EQ(out.graph_def().node(0).attr().at("shared_name").s(), "s/v");
  EXPECT_EQ(out.graph_def().node(0).attr().at("container").s(), "s/c");
  EXPECT_EQ(out.graph_def().node(0).attr().at("f").func().name(), "s/fn");
}

TEST(ExportTest, R10ClearDevicesEmptiesJobDevicesOnNodesOnly) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "w", "VariableV2", {}, "/job:ps/replica:0/task:1/device:GPU:0");
  SetClass(n, {"loc:@w"});
  AddNode(&mg, "x", "Const", {}, "/device:CPU:*");
  *mg.mutable_saver_def() = Saver("save");
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  for (const auto& node : out.graph_def().node()) EXPECT_EQ(node.device(), "");
  EXPECT_THAT(out.graph_def().node(0).attr().at("_class").list().s(),
              ElementsAre("loc:@w"));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(out.saver_def(),
                                                                 mg.saver_def()));
}

TEST(ExportTest, R10WithoutClearDevicesDevicesSurviveAScopedExport) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/w", "VariableV2", {}, "/job:ps/replica:0/task:1/device:GPU:0");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"));
  EXPECT_EQ(out.graph_def().node(0).device(), "/job:ps/replica:0/task:1/device:GPU:0");
}

// --- R12 / R13 / R14: collections ---

TEST(ExportTest, R12CollectionListOrderAndDuplicatesAppendTwice) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "NoOp");
  AddNodeList(&mg, "train_op", {"a"});
  AddNodeList(&mg, "other", {"a"});
  ExportOptions o;
  o.collection_list = std::vector<std::string>{"train_op", "missing", "train_op"};
  ExportResult r;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o, &r);
  EXPECT_THAT(r.collections, ElementsAre("train_op"));
  EXPECT_THAT(out.collection_def().at("train_op").node_list().value(),
              ElementsAre("a", "a"));
}

TEST(ExportTest, R12EmptyCollectionListExportsNoCollections) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "NoOp");
  AddNodeList(&mg, "train_op", {"a"});
  ExportOptions o;
  o.collection_list = std::vector<std::string>{};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(out.collection_def().empty());
}

TEST(ExportTest, R12NoCollectionListExportsEveryCollectionWithValues) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "NoOp");
  AddNodeList(&mg, "train_op", {"a"});
  (*mg.mutable_collection_def())["empty_kind"];
  (*mg.mutable_collection_def())["empty_list"].mutable_node_list();
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  std::vector<std::string> keys;
  for (const auto& [k, v] : out.collection_def()) keys.push_back(k);
  EXPECT_THAT(keys, ElementsAre("train_op"));
}

TEST(ExportTest, R13NodeListItemsOutsideTheScopeAreDroppedAndEmptyKeyOmitted) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  AddNodeList(&mg, "summaries", {"s/a:0", "other/b:0", "sX/c"});
  AddNodeList(&mg, "outside", {"other/b:0"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_THAT(out.collection_def().at("summaries").node_list().value(),
              ElementsAre("a:0", "sX/c"));
  EXPECT_FALSE(out.collection_def().count("outside"));
}

TEST(ExportTest, R14bUnregisteredBytesIntFloatAndAnyListsPassThroughUnderAScope) {
  // D5: unknown payloads are opaque.
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  AddBytes(&mg, "hparams", "other/not-a-name");
  AddBytes(&mg, "hparams", std::string("\xff\x00\x01", 3));
  (*mg.mutable_collection_def())["counts"].mutable_int64_list()->add_value(-7);
  (*mg.mutable_collection_def())["rates"].mutable_float_list()->add_value(0.5f);
  auto* any = (*mg.mutable_collection_def())["infos"].mutable_any_list()->add_value();
  any->set_type_url("type.googleapis.com/tensorflow.TensorInfo");
  any->set_value("\x0a\x07other/x", 9);
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"));
  for (const char* key : {"hparams", "counts", "rates", "infos"}) {
    ASSERT_TRUE(out.collection_def().count(key)) << key;
    EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(
        out.collection_def().at(key), mg.collection_def().at(key)))
        << key;
  }
}

TEST(ExportTest, R14bNodeListWithOnlyUnboundNamesLeavesAnEmptyEntry) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  AddNodeList(&mg, "inputs", {"$unbound_inputs_x"});
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  ASSERT_TRUE(out.collection_def().count("inputs"));
  EXPECT_EQ(out.collection_def().at("inputs").kind_case(),
            tensorflow::CollectionDef::KIND_NOT_SET);
}

TEST(ExportTest, R14aSaversOutsideTheScopeLeaveAnEmptyCollectionDef) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  AddBytes(&mg, "savers", Serialize(Saver("save")));
  ExportResult r;
  // "s" alone would cover "save/..." (R3 is a raw prefix test).
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"), &r);
  ASSERT_TRUE(out.collection_def().count("savers"));
  EXPECT_EQ(out.collection_def().at("savers").kind_case(),
            tensorflow::CollectionDef::KIND_NOT_SET);
  EXPECT_THAT(r.collections, ElementsAre("savers"));
}

TEST(ExportTest, R14cPartitionedVariableOutsideTheScopeDropsTheWholeCollection) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  tensorflow::VariableDef in_scope = Var("s/w/part_0");
  in_scope.mutable_save_slice_info_def()->set_full_name("other/w");
  AddBytes(&mg, "variables", Serialize(Var("s/v")));
  AddBytes(&mg, "variables", Serialize(in_scope));
  AddBytes(&mg, "trainable_variables", Serialize(Var("s/v")));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  EXPECT_FALSE(out.collection_def().count("variables"));
  EXPECT_TRUE(out.collection_def().count("trainable_variables"));
}

TEST(ExportTest, R14cR15PartitionedVariableInsideTheScopeIsStripped) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "NoOp");
  tensorflow::VariableDef part = Var("s/w/part_1");
  auto* slice = part.mutable_save_slice_info_def();
  slice->set_full_name("s/w");
  slice->add_full_shape(10);
  slice->add_var_offset(5);
  slice->add_var_shape(5);
  AddBytes(&mg, "variables", Serialize(part));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  auto vars =
      ParseBytesList<tensorflow::VariableDef>(out.collection_def().at("variables"));
  ASSERT_EQ(vars.size(), 1u);
  EXPECT_EQ(vars[0].save_slice_info_def().full_name(), "w");
  EXPECT_THAT(vars[0].save_slice_info_def().full_shape(), ElementsAre(10));
  EXPECT_THAT(vars[0].save_slice_info_def().var_offset(), ElementsAre(5));
}

TEST(ExportTest, R14cRegisteredKeyStoredAsNodeListIsDropped) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "v", "VariableV2");
  AddNodeList(&mg, "local_variables", {"v:0"});
  ExportOptions o;
  o.collection_list = std::vector<std::string>{"local_variables"};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(out.collection_def().empty());
}

// --- R15 / R16: registered protos ---

TEST(ExportTest, R15VariableDefNamesAreStrippedAndOtherVariablesDropped) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/v", "VariableV2");
  tensorflow::VariableDef v = Var("s/v");
  v.set_is_resource(true);
  v.set_aggregation(tensorflow::VARIABLE_AGGREGATION_ONLY_FIRST_REPLICA);
  tensorflow::VariableDef no_init = Var("s/u");
  no_init.clear_initial_value_name();
  AddBytes(&mg, "variables", Serialize(v));
  AddBytes(&mg, "variables", Serialize(no_init));
  AddBytes(&mg, "variables", Serialize(Var("other/w")));
  AddBytes(&mg, "global_step", Serialize(Var("global_step")));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  auto vars =
      ParseBytesList<tensorflow::VariableDef>(out.collection_def().at("variables"));
  ASSERT_EQ(vars.size(), 2u);
  EXPECT_EQ(vars[0].variable_name(), "v:0");
  EXPECT_EQ(vars[0].initializer_name(), "v/Assign");
  EXPECT_EQ(vars[0].snapshot_name(), "v/read:0");
  EXPECT_EQ(vars[0].initial_value_name(), "v/initial_value:0");
  EXPECT_TRUE(vars[0].is_resource());
  EXPECT_TRUE(vars[0].trainable());
  EXPECT_EQ(vars[0].aggregation(), tensorflow::VARIABLE_AGGREGATION_ONLY_FIRST_REPLICA);
  EXPECT_EQ(vars[1].initial_value_name(), "");
  EXPECT_FALSE(out.collection_def().count("global_step"));
}

TEST(ExportTest, R15SaverInTheSaversCollectionIsStrippedWhenAllThreeNamesAreInScope) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "m/save/Const", "Const");
  AddBytes(&mg, "savers", Serialize(Saver("m/save")));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("m"));
  auto savers = ParseBytesList<tensorflow::SaverDef>(out.collection_def().at("savers"));
  ASSERT_EQ(savers.size(), 1u);
  EXPECT_EQ(savers[0].filename_tensor_name(), "save/Const:0");
  EXPECT_EQ(savers[0].save_tensor_name(), "save/control_dependency:0");
  EXPECT_EQ(savers[0].restore_op_name(), "save/restore_all");
  EXPECT_EQ(savers[0].max_to_keep(), 5);
  EXPECT_EQ(savers[0].version(), tensorflow::SaverDef::V2);
}

TEST(ExportTest, R15QueueRunnersAreFilteredByQueueNameAndStripped) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "input/fifo", "FIFOQueueV2");
  tensorflow::QueueRunnerDef q;
  q.set_queue_name("input/fifo");
  q.add_enqueue_op_name("input/fifo_enqueue");
  q.add_enqueue_op_name("input/fifo_enqueue_1");
  q.set_close_op_name("input/fifo_Close");
  q.set_cancel_op_name("input/fifo_Close_1");
  q.add_queue_closed_exception_types(tensorflow::error::OUT_OF_RANGE);
  tensorflow::QueueRunnerDef other = q;
  other.set_queue_name("other/fifo");
  AddBytes(&mg, "queue_runners", Serialize(q));
  AddBytes(&mg, "queue_runners", Serialize(other));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("input"));
  auto qs = ParseBytesList<tensorflow::QueueRunnerDef>(
      out.collection_def().at("queue_runners"));
  ASSERT_EQ(qs.size(), 1u);
  EXPECT_EQ(qs[0].queue_name(), "fifo");
  EXPECT_THAT(qs[0].enqueue_op_name(), ElementsAre("fifo_enqueue", "fifo_enqueue_1"));
  EXPECT_EQ(qs[0].close_op_name(), "fifo_Close");
  EXPECT_EQ(qs[0].cancel_op_name(), "fifo_Close_1");
  EXPECT_THAT(qs[0].queue_closed_exception_types(),
              ElementsAre(tensorflow::error::OUT_OF_RANGE));
}

TEST(ExportTest, R15R16WhileContextIsStrippedValuesSortedAndNestedContextsLeftAlone) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/while/x", "NoOp");
  tensorflow::WhileContextDef w;
  w.set_context_name("s/while/while_context");
  w.set_parallel_iterations(10);
  w.set_back_prop(true);
  w.set_pivot_name("s/while/LoopCond:0");
  w.set_pivot_for_pred_name("s/while/Merge:0");
  w.set_pivot_for_body_name("s/while/Identity:0");
  w.add_loop_exit_names("s/while/Exit:0");
  w.add_loop_enter_names("s/while/Enter:0");
  w.set_maximum_iterations_name("s/max:0");
  auto* values = w.mutable_values_def();
  values->add_values("s/while/b:0");
  values->add_values("gradients/s/while/a:0");  // outside: stays unstripped
  values->add_values("s/while/a:0");
  values->add_values("s/while/a:0");  // a set in TensorFlow
  (*values->mutable_external_values())["s/while/ext:0"] = "s/ext:0";
  auto* nested = w.add_nested_contexts()->mutable_cond_ctxt();
  nested->set_context_name("s/while/cond/cond_text");
  nested->set_pred_name("s/while/cond/pred_id:0");
  nested->mutable_values_def()->add_values("s/while/z:0");
  nested->mutable_values_def()->add_values("s/while/y:0");
  tensorflow::WhileContextDef outside = w;
  outside.set_context_name("t/while/while_context");
  AddBytes(&mg, "while_context", Serialize(w));
  AddBytes(&mg, "while_context", Serialize(outside));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s"));
  auto ws = ParseBytesList<tensorflow::WhileContextDef>(
      out.collection_def().at("while_context"));
  ASSERT_EQ(ws.size(), 1u);
  const auto& e = ws[0];
  EXPECT_EQ(e.context_name(), "while/while_context");
  EXPECT_EQ(e.pivot_name(), "while/LoopCond:0");
  EXPECT_EQ(e.maximum_iterations_name(), "max:0");
  EXPECT_THAT(e.loop_exit_names(), ElementsAre("while/Exit:0"));
  EXPECT_THAT(e.loop_enter_names(), ElementsAre("while/Enter:0"));
  EXPECT_THAT(e.values_def().values(),
              ElementsAre("gradients/s/while/a:0", "while/a:0", "while/b:0"));
  EXPECT_EQ(e.values_def().external_values().at("while/ext:0"), "ext:0");
  ASSERT_EQ(e.nested_contexts_size(), 1);
  const auto& n = e.nested_contexts(0).cond_ctxt();
  EXPECT_EQ(n.context_name(), "s/while/cond/cond_text");
  EXPECT_THAT(n.values_def().values(), ElementsAre("s/while/y:0", "s/while/z:0"));
}

TEST(ExportTest, R15CondContextIsStrippedAndKeepsItsBranch) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/cond/x", "NoOp");
  tensorflow::CondContextDef c;
  c.set_context_name("s/cond/cond_text");
  c.set_pred_name("s/cond/pred_id:0");
  c.set_pivot_name("s/cond/switch_t:0");
  c.set_branch(1);
  c.mutable_values_def()->add_values("s/cond/v:0");
  AddBytes(&mg, "cond_context", Serialize(c));
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"));
  auto cs =
      ParseBytesList<tensorflow::CondContextDef>(out.collection_def().at("cond_context"));
  ASSERT_EQ(cs.size(), 1u);
  EXPECT_EQ(cs[0].context_name(), "cond/cond_text");
  EXPECT_EQ(cs[0].pred_name(), "cond/pred_id:0");
  EXPECT_EQ(cs[0].pivot_name(), "cond/switch_t:0");
  EXPECT_EQ(cs[0].branch(), 1);
  EXPECT_THAT(cs[0].values_def().values(), ElementsAre("cond/v:0"));
}

TEST(ExportTest, R15InvalidRegisteredEntryIsFailedPrecondition) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "NoOp");
  AddBytes(&mg, "variables", "\xff\xff");
  auto r = ExportMetaGraphMessage(mg, ClearDevices());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kFailedPrecondition);
}

// --- R17 / R18: savers ---

TEST(ExportTest, R17SaverDefIsCopiedVerbatimUnderAScope) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "m/save/Const", "Const");
  *mg.mutable_saver_def() = Saver("m/save");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("m"));
  EXPECT_EQ(out.saver_def().filename_tensor_name(), "m/save/Const:0");
}

tensorflow::MetaGraphDef TwoSavers() {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "w", "VariableV2");
  for (const char* scope : {"save", "save_1"}) {
    std::string s = scope;
    AddNode(&mg, s + "/Const", "Const");
    AddNode(&mg, s + "/SaveV2", "SaveV2", {s + "/Const", "w"});
    AddNode(&mg, s + "/control_dependency", "Identity",
            {s + "/Const", "^" + s + "/SaveV2"});
    AddNode(&mg, s + "/RestoreV2", "RestoreV2", {s + "/Const"});
    AddNode(&mg, s + "/restore_all", "NoOp", {"^" + s + "/RestoreV2"});
    AddBytes(&mg, "savers", Serialize(Saver(s)));
  }
  AddNodeList(&mg, "train_op",
              {"save/restore_all", "save_1/restore_all", "save/Const:0"});
  *mg.mutable_saver_def() = Saver("save_1");
  return mg;
}

TEST(ExportTest, R18ClearExtraneousSaversDropsOtherSaverScopesAndResetsSavers) {
  tensorflow::MetaGraphDef mg = TwoSavers();
  ExportOptions o;
  o.clear_extraneous_savers = true;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  for (const auto& name : NodeNames(out)) {
    EXPECT_FALSE(absl::StartsWith(name, "save/")) << name;
  }
  EXPECT_EQ(out.graph_def().node_size(), 6);
  auto savers = ParseBytesList<tensorflow::SaverDef>(out.collection_def().at("savers"));
  ASSERT_EQ(savers.size(), 1u);
  EXPECT_EQ(savers[0].restore_op_name(), "save_1/restore_all");
  // Collection items are excluded by exact node name: the op goes, the tensor stays.
  EXPECT_THAT(out.collection_def().at("train_op").node_list().value(),
              ElementsAre("save_1/restore_all", "save/Const:0"));
}

TEST(ExportTest, R18WithoutSaverDefEverySaverScopeIsExtraneous) {
  tensorflow::MetaGraphDef mg = TwoSavers();
  mg.clear_saver_def();
  ExportOptions o;
  o.clear_extraneous_savers = true;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_THAT(NodeNames(out), ElementsAre("w"));
  EXPECT_FALSE(out.collection_def().count("savers"));
}

TEST(ExportTest, R18SaversAskedForExplicitlyComeFromSaverDef) {
  tensorflow::MetaGraphDef mg = TwoSavers();
  mg.mutable_collection_def()->erase("savers");
  ExportOptions o;
  o.clear_extraneous_savers = true;
  o.collection_list = std::vector<std::string>{"savers"};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  ASSERT_TRUE(out.collection_def().count("savers"));
  EXPECT_EQ(out.collection_def().at("savers").bytes_list().value_size(), 1);
}

TEST(ExportTest, R18EmptyNodeInputIsFailedPreconditionAsInTensorFlow) {
  tensorflow::MetaGraphDef mg = TwoSavers();
  AddNode(&mg, "bad", "Identity", {""});
  ExportOptions o;
  o.clear_extraneous_savers = true;
  EXPECT_EQ(ExportMetaGraphMessage(mg, o).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// --- R19-R21, D2-D4: meta_info_def ---

tensorflow::OpDef OpWithDefault(const std::string& name, const std::string& attr,
                                tensorflow::DataType def) {
  tensorflow::OpDef op;
  op.set_name(name);
  auto* a = op.add_attr();
  a->set_name(attr);
  a->set_type("type");
  a->mutable_default_value()->set_type(def);
  return op;
}

TEST(ExportTest, R19D2MetaInfoKeepsOnlyVersionsAndOpList) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "NoOp");
  auto* info = mg.mutable_meta_info_def();
  info->set_meta_graph_version("v1");
  info->add_tags("serve");
  info->set_tensorflow_version("2.9.0");
  info->set_tensorflow_git_version("v2.9.0-abc");
  info->mutable_any_info()->set_type_url("x");
  (*info->mutable_function_aliases())["a"] = "b";
  info->set_stripped_default_attrs(true);
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_EQ(out.meta_info_def().tensorflow_version(), "2.9.0");
  EXPECT_EQ(out.meta_info_def().tensorflow_git_version(), "v2.9.0-abc");
  EXPECT_TRUE(out.meta_info_def().tags().empty());
  EXPECT_EQ(out.meta_info_def().meta_graph_version(), "");
  EXPECT_FALSE(out.meta_info_def().has_any_info());
  EXPECT_TRUE(out.meta_info_def().function_aliases().empty());
  EXPECT_FALSE(out.meta_info_def().stripped_default_attrs());
  EXPECT_TRUE(out.meta_info_def().has_stripped_op_list());
}

TEST(ExportTest,
     R20D3StrippedOpListIsReducedToOpsOfTheFilteredGraphAndReachableFunctions) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const");
  AddNode(&mg, "s/call", "outer_fn");
  AddNode(&mg, "t/b", "MatMul");
  auto* lib = mg.mutable_graph_def()->mutable_library();
  auto* outer = lib->add_function();
  outer->mutable_signature()->set_name("outer_fn");
  outer->add_node_def()->set_op("inner_fn");
  auto* inner = lib->add_function();
  inner->mutable_signature()->set_name("inner_fn");
  inner->add_node_def()->set_op("Sigmoid");
  auto* unused = lib->add_function();
  unused->mutable_signature()->set_name("unused_fn");
  unused->add_node_def()->set_op("Tanh");
  for (const char* op : {"Const", "MatMul", "Sigmoid", "Tanh"}) {
    mg.mutable_meta_info_def()->mutable_stripped_op_list()->add_op()->set_name(op);
  }
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("s/"));
  std::vector<std::string> ops;
  for (const auto& op : out.meta_info_def().stripped_op_list().op())
    ops.push_back(op.name());
  EXPECT_THAT(ops, ElementsAre("Const", "Sigmoid"));
  EXPECT_EQ(out.graph_def().library().function_size(), 3);
}

TEST(ExportTest, D3EmptyStoredOpListStaysEmpty) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  tensorflow::MetaGraphDef out = ExportBoth(mg, ClearDevices());
  EXPECT_EQ(out.meta_info_def().stripped_op_list().op_size(), 0);
}

TEST(ExportTest, R21D4StripDefaultAttrsUsesTheStoredOpListOnNodesAndFunctions) {
  tensorflow::MetaGraphDef mg;
  auto* a = AddNode(&mg, "a", "Cast");
  (*a->mutable_attr())["Truncate"].set_type(tensorflow::DT_FLOAT);  // equals default
  (*a->mutable_attr())["DstT"].set_type(tensorflow::DT_INT32);      // no default
  (*a->mutable_attr())["_output_shapes"].mutable_list();            // not declared
  auto* b = AddNode(&mg, "b", "Cast");
  (*b->mutable_attr())["Truncate"].set_type(tensorflow::DT_INT64);  // differs
  auto* c = AddNode(&mg, "c", "Unknown");
  (*c->mutable_attr())["Truncate"].set_type(tensorflow::DT_FLOAT);
  auto* d = AddNode(&mg, "d", "fn");
  (*d->mutable_attr())["Truncate"].set_type(tensorflow::DT_FLOAT);
  auto* f = mg.mutable_graph_def()->mutable_library()->add_function();
  f->mutable_signature()->set_name("fn");
  auto* fn_node = f->add_node_def();
  fn_node->set_op("Cast");
  (*fn_node->mutable_attr())["Truncate"].set_type(tensorflow::DT_FLOAT);
  tensorflow::OpDef cast = OpWithDefault("Cast", "Truncate", tensorflow::DT_FLOAT);
  cast.add_attr()->set_name("DstT");
  *mg.mutable_meta_info_def()->mutable_stripped_op_list()->add_op() = cast;
  ExportOptions o;
  o.strip_default_attrs = true;
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_FALSE(FindNode(out, "a")->attr().count("Truncate"));
  EXPECT_TRUE(FindNode(out, "a")->attr().count("DstT"));
  EXPECT_TRUE(FindNode(out, "a")->attr().count("_output_shapes"));
  EXPECT_TRUE(FindNode(out, "b")->attr().count("Truncate"));
  EXPECT_TRUE(FindNode(out, "c")->attr().count("Truncate"));
  EXPECT_TRUE(FindNode(out, "d")->attr().count("Truncate"));
  EXPECT_FALSE(
      out.graph_def().library().function(0).node_def(0).attr().count("Truncate"));
  EXPECT_TRUE(out.meta_info_def().stripped_default_attrs());
}

// --- R23-R25 ---

TEST(ExportTest, R23SignatureDefsAssetsAndObjectGraphNeverSurvive) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  (*mg.mutable_signature_def())["serving_default"].set_method_name("predict");
  mg.add_asset_file_def()->set_filename("vocab.txt");
  mg.mutable_object_graph_def();
  ExportOptions o;
  o.collection_list = std::vector<std::string>{};
  tensorflow::MetaGraphDef out = ExportBoth(mg, o);
  EXPECT_TRUE(out.signature_def().empty());
  EXPECT_EQ(out.asset_file_def_size(), 0);
  EXPECT_FALSE(out.has_object_graph_def());
}

TEST(ExportTest, R24TextFormatInputIsAccepted) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const", {}, "/device:CPU:0");
  std::string text;
  ASSERT_TRUE(google::protobuf::TextFormat::PrintToString(mg, &text));
  auto r = ExportMetaGraph(text, Scoped("s/"));
  ASSERT_TRUE(r.ok()) << r.status();
  auto expected = ExportMetaGraphMessage(mg, Scoped("s/"));
  ASSERT_TRUE(expected.ok());
  EXPECT_EQ(r->bytes, expected->bytes);
}

TEST(ExportTest, R24GarbageIsInvalidArgument) {
  EXPECT_EQ(ExportMetaGraph("\xff\xfe not a graph", Scoped("s")).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ExportMetaGraph("", ExportOptions()).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ExportTest, R25DebugInfoIsNeverWrittenIntoARewrittenMetaGraph) {
  // save_debug_info writes a separate file in TensorFlow; the export options have no such
  // switch and a rewritten graph carries no debug_info (R2).
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  mg.mutable_graph_def()->mutable_debug_info()->add_files("model.py");
  tensorflow::MetaGraphDef out = ExportBoth(mg, Scoped("a"));
  EXPECT_FALSE(out.graph_def().has_debug_info());
}

// --- D1, D7, D8 ---

TEST(ExportTest, D1NoOptionReturnsTheStoredBytesVerbatim) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  AddNodeList(&mg, "train_op", {"a"});
  (*mg.mutable_signature_def())["x"].set_method_name("m");
  // Append an unknown field: verbatim means even that survives.
  std::string stored = Serialize(mg) + std::string("\xf8\x01\x05", 3);
  auto r = ExportMetaGraph(stored, ExportOptions());
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->bytes, stored);
  EXPECT_EQ(r->node_count, 1);
  EXPECT_THAT(r->collections, ElementsAre("train_op"));
}

TEST(ExportTest, D7OutputIsDeterministicWhateverTheStoredMapOrder) {
  tensorflow::MetaGraphDef mg;
  auto* n = AddNode(&mg, "s/a", "Const", {}, "/device:CPU:0");
  for (const char* k : {"zeta", "alpha", "mid", "_class", "dtype"})
    SetStringAttr(n, k, k);
  SetClass(n, {"loc:@s/a"});
  AddNodeList(&mg, "b", {"s/a"});
  AddNodeList(&mg, "a", {"s/a"});
  ExportOptions o = Scoped("s");
  o.clear_devices = true;
  auto first = ExportMetaGraphMessage(mg, o);
  auto second = ExportMetaGraph(Serialize(mg), o);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(first->bytes, second->bytes);
  EXPECT_EQ(ExportMetaGraph(Serialize(mg), o)->bytes, second->bytes);
}

TEST(ExportTest, D8AsTextIsTextFormatOfTheBinaryExport) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const", {"x"}, "/device:CPU:0");
  ExportOptions o = Scoped("s");
  auto binary = ExportMetaGraph(Serialize(mg), o);
  o.as_text = true;
  auto text = ExportMetaGraph(Serialize(mg), o);
  ASSERT_TRUE(binary.ok() && text.ok());
  tensorflow::MetaGraphDef from_text, from_binary;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text->bytes, &from_text));
  ASSERT_TRUE(from_binary.ParseFromString(binary->bytes));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(from_text, from_binary));
  EXPECT_EQ(text->node_count, 1);
}

TEST(ExportTest, D8AsTextAloneIsTheStoredMessageAsText) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "a", "Const");
  (*mg.mutable_signature_def())["x"].set_method_name("m");
  ExportOptions o;
  o.as_text = true;
  auto text = ExportMetaGraph(Serialize(mg), o);
  ASSERT_TRUE(text.ok());
  tensorflow::MetaGraphDef back;
  ASSERT_TRUE(google::protobuf::TextFormat::ParseFromString(text->bytes, &back));
  EXPECT_TRUE(google::protobuf::util::MessageDifferencer::Equals(back, mg));
}

TEST(ExportTest, TfEqualityHelperIgnoresNodeOrderButNotContent) {
  tensorflow::MetaGraphDef a, b;
  AddNode(&a, "x", "Const");
  AddNode(&a, "y", "Const");
  AddNode(&b, "y", "Const");
  AddNode(&b, "x", "Const");
  EXPECT_EQ(testing::TfDifference(a, b), "");
  b.mutable_graph_def()->mutable_node(0)->set_device("/device:CPU:0");
  EXPECT_NE(testing::TfDifference(a, b), "");
}

}  // namespace
}  // namespace mgreg
