// The wire-level fast path of ExportMetaGraph against the message path on inputs that a
// protobuf serializer would not write the same way (maps out of order, repeated singular
// fields, unknown fields, split graph_defs): the output must still be byte-identical
// (D7), and malformed input must fail like a parse.
#include <random>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "metagraph/export.h"
#include "metagraph/metagraph_io.h"
#include "tests/testing/export_test_util.h"

namespace mgreg {
namespace {

using testing::AddNode;
using testing::Serialize;

std::string Varint(uint64_t v) {
  std::string out;
  while (v >= 0x80) {
    out.push_back(static_cast<char>(v | 0x80));
    v >>= 7;
  }
  out.push_back(static_cast<char>(v));
  return out;
}

std::string Len(int field, const std::string& payload) {
  return Varint((field << 3) | 2) + Varint(payload.size()) + payload;
}

std::string AttrEntry(const std::string& key, const std::string& value) {
  return Len(5, Len(1, key) + Len(2, value));
}

std::string StringAttr(const std::string& s) { return Len(2, s); }

// A MetaGraphDef whose only graph_def holds the given raw NodeDef payloads.
std::string GraphOf(const std::vector<std::string>& nodes) {
  std::string graph;
  for (const auto& n : nodes) graph += Len(1, n);
  return Len(1, Len(5, "2.9.0")) + Len(2, graph);
}

// Runs both paths on `bytes` for several option sets and expects identical results.
void ExpectPathsAgree(const std::string& bytes) {
  auto parsed = ParseMetaGraph(bytes);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  std::vector<ExportOptions> all;
  for (const char* scope : {"", "s", "s/"}) {
    for (bool clear : {false, true}) {
      for (bool list : {false, true}) {
        ExportOptions o;
        o.export_scope = scope;
        o.clear_devices = clear;
        if (list) o.collection_list = std::vector<std::string>{"c"};
        if (o.export_scope.empty() && !clear && !list) continue;
        all.push_back(o);
      }
    }
  }
  for (const ExportOptions& o : all) {
    SCOPED_TRACE(absl::StrCat("scope=", o.export_scope, " clear=", o.clear_devices));
    auto a = ExportMetaGraphMessage(*parsed, o);
    auto b = ExportMetaGraph(bytes, o);
    ASSERT_EQ(a.ok(), b.ok()) << a.status() << " / " << b.status();
    if (!a.ok()) {
      EXPECT_EQ(a.status(), b.status());
      continue;
    }
    EXPECT_EQ(a->bytes, b->bytes);
    EXPECT_EQ(a->node_count, b->node_count);
  }
}

TEST(ExportFastTest, D7AttrMapWrittenInHashOrderGivesTheSameBytes) {
  std::string node =
      Len(1, "s/a") + Len(2, "Const") + Len(3, "other/x") + Len(4, "/cpu:0") +
      AttrEntry("zeta", StringAttr("z")) +
      AttrEntry("_class", Len(1, Len(2, "loc:@s/b") + Len(2, "loc:@t/c"))) +
      AttrEntry("alpha", StringAttr("a"));
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, D7DuplicateAttrKeysKeepTheLastValueLikeAParse) {
  std::string node = Len(1, "s/a") + Len(2, "Const") +
                     AttrEntry("k", StringAttr("first")) +
                     AttrEntry("k", StringAttr("second"));
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, D7RepeatedSingularFieldsAndFieldsOutOfOrder) {
  std::string node = Len(2, "Const") + Len(1, "s/ignored") + Len(1, "s/a") +
                     Len(3, "s/b") + Len(4, "/gpu:0") + Len(4, "/cpu:0");
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, D7UnknownNodeFieldsSurviveLikeInAParse) {
  std::string node = Len(1, "s/a") + Len(2, "Const") + Len(99, "future") + Len(3, "x");
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, D7ExplicitEmptyFieldsAndMissingMapValues) {
  std::string node = Len(1, "s/a") + Len(2, "") + Len(4, "") + Len(5, Len(1, "novalue")) +
                     Len(5, Len(2, StringAttr("nokey")));
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, D7FunctionAttrWithUnsortedNestedMap) {
  std::string func = Len(1, "fn") + Len(2, Len(1, "z") + Len(2, StringAttr("1"))) +
                     Len(2, Len(1, "a") + Len(2, StringAttr("2")));
  std::string list_func = Len(1, Len(9, func));
  std::string node = Len(1, "s/call") + Len(2, "PartitionedCall") +
                     AttrEntry("f", Len(10, func)) + AttrEntry("fs", list_func);
  ExpectPathsAgree(GraphOf({node}));
}

TEST(ExportFastTest, R7ClassListMergeSemanticsOfRepeatedListFields) {
  // Two `list` occurrences merge; a later `s` would switch the oneof away from list.
  std::string merged = Len(1, Len(2, "loc:@s/a")) + Len(1, Len(2, "loc:@s/b"));
  std::string switched = Len(1, Len(2, "loc:@s/a")) + Len(2, "x");
  std::string n1 = Len(1, "s/n1") + Len(2, "Const") + AttrEntry("_class", merged);
  std::string n2 = Len(1, "s/n2") + Len(2, "Const") + AttrEntry("_class", switched);
  std::string n3 = Len(1, "s/n3") + Len(2, "Enter") +
                   AttrEntry("frame_name", Len(1, "") + Len(2, "s/while/ctx"));
  ExpectPathsAgree(GraphOf({n1, n2, n3}));
}

TEST(ExportFastTest, R2SplitGraphDefsMergeLikeAParse) {
  std::string g1 = Len(1, Len(1, "s/a") + Len(2, "Const")) + Len(4, "\x08\x01") +
                   Len(2, Len(1, Len(1, Len(1, "f1"))));
  std::string g2 = Len(1, Len(1, "s/b") + Len(2, "Add") + Len(3, "s/a")) +
                   Len(4, "\x10\x02") + Len(2, Len(1, Len(1, Len(1, "f2")))) +
                   std::string("\x18\x05", 2) + Len(5, Len(1, "file.py"));
  std::string bytes = Len(2, g1) + Len(1, Len(5, "2.9")) + Len(2, g2) +
                      Len(4, Len(1, "c") + Len(2, Len(1, Len(1, "s/a"))));
  ExpectPathsAgree(bytes);
}

TEST(ExportFastTest, R24TruncatedInputIsInvalidArgument) {
  tensorflow::MetaGraphDef mg;
  AddNode(&mg, "s/a", "Const");
  std::string bytes = Serialize(mg);
  bytes.resize(bytes.size() - 2);
  ExportOptions o;
  o.export_scope = "s";
  EXPECT_EQ(ExportMetaGraph(bytes, o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// Random graphs with the shapes the rules care about, many option sets.
TEST(ExportFastTest, D7RandomGraphsAgreeForManyOptionSets) {
  std::mt19937 rng(7);
  const std::vector<std::string> scopes = {"s", "s/", "s/t", "t", "st"};
  for (int round = 0; round < 20; ++round) {
    tensorflow::MetaGraphDef mg;
    std::vector<std::string> names;
    for (int i = 0; i < 60; ++i) {
      std::string name = absl::StrCat(scopes[rng() % scopes.size()], "/n", i);
      std::vector<std::string> inputs;
      for (int k = 0; k < static_cast<int>(rng() % 3) && !names.empty(); ++k) {
        std::string in = names[rng() % names.size()];
        if (rng() % 4 == 0) in = "^" + in;
        inputs.push_back(in);
      }
      auto* n = AddNode(&mg, name, rng() % 5 == 0 ? "Enter" : "Add", inputs,
                        rng() % 3 == 0 ? "/job:ps/replica:0/task:1/device:GPU:0" : "");
      if (rng() % 3 == 0 && !names.empty()) {
        testing::SetClass(n, {"loc:@" + names[rng() % names.size()]});
      }
      if (n->op() == "Enter") testing::SetStringAttr(n, "frame_name", name + "/ctx");
      (*n->mutable_attr())["T"].set_type(tensorflow::DT_FLOAT);
      names.push_back(name);
    }
    testing::AddNodeList(&mg, "c", {names[0], names[1] + ":0", names[2]});
    testing::AddBytes(&mg, "variables", Serialize(testing::Var(names[3])));
    ExpectPathsAgree(Serialize(mg));
  }
}

}  // namespace
}  // namespace mgreg
