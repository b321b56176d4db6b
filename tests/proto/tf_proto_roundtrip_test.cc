// Our TensorFlow-compatible protos against every real TensorFlow file in the test data:
// each parses with zero unknown fields anywhere in the message tree and re-serializes to
// the same bytes.
#include <algorithm>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "google/protobuf/any.pb.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "google/protobuf/message.h"
#include "google/protobuf/text_format.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "metagraph/tensor_bundle.h"
#include "tensorflow/core/framework/graph.pb.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/control_flow.pb.h"
#include "tensorflow/core/protobuf/fingerprint.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"
#include "tensorflow/core/protobuf/queue_runner.pb.h"
#include "tensorflow/core/protobuf/saved_model.pb.h"
#include "tensorflow/core/protobuf/saver.pb.h"
#include "tensorflow/core/protobuf/trackable_object_graph.pb.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"
#include "tests/testing/test_util.h"

namespace mgreg {
namespace {

namespace fs = std::filesystem;
using ::google::protobuf::FieldDescriptor;
using ::google::protobuf::Message;
using ::google::protobuf::Reflection;
using ::google::protobuf::util::MessageDifferencer;
using ::mgreg::testing::ReadFileOrDie;
using ::mgreg::testing::TestdataDir;

// The test data (DATA.md) holds exactly these many files of each kind; a missing or
// renamed file must fail the test rather than shrink it.
constexpr int kMetaFiles = 3;
constexpr int kSavedModelFiles = 4;
constexpr int kCheckpointStateFiles = 5;
constexpr int kIndexFiles = 8;

// Files under TestdataDir() whose name satisfies `pred`, sorted.
template <typename Pred>
std::vector<std::string> FindFiles(Pred pred) {
  std::vector<std::string> out;
  for (const auto& e : fs::recursive_directory_iterator(TestdataDir())) {
    if (e.is_regular_file() && pred(e.path().filename().string())) {
      out.push_back(e.path().string());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Appends the path of every message in `m`'s tree (singular, repeated, map values, oneof
// members) that carries unknown fields.
void CollectUnknownFields(const Message& m, const std::string& path,
                          std::vector<std::string>* out) {
  const Reflection* r = m.GetReflection();
  if (!r->GetUnknownFields(m).empty()) {
    out->push_back(absl::StrCat(path, " (", m.GetDescriptor()->full_name(), ")"));
  }
  std::vector<const FieldDescriptor*> fields;
  r->ListFields(m, &fields);  // Set fields only, including the active oneof member.
  for (const FieldDescriptor* f : fields) {
    if (f->cpp_type() != FieldDescriptor::CPPTYPE_MESSAGE) continue;
    if (f->is_repeated()) {  // Map fields are repeated entry messages here.
      for (int i = 0; i < r->FieldSize(m, f); ++i) {
        CollectUnknownFields(r->GetRepeatedMessage(m, f, i),
                             absl::StrCat(path, ".", f->name(), "[", i, "]"), out);
      }
    } else {
      CollectUnknownFields(r->GetMessage(m, f), absl::StrCat(path, ".", f->name()), out);
    }
  }
}

std::vector<std::string> UnknownFields(const Message& m) {
  std::vector<std::string> out;
  CollectUnknownFields(m, m.GetDescriptor()->name(), &out);
  return out;
}

std::string Serialize(const Message& m, bool deterministic) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(deterministic);
    m.SerializeToCodedStream(&coded);
  }
  return out;
}

// Asserts that `bytes` parses as `*m` with no unknown field anywhere and serializes back
// to the same content. Returns true if the re-serialization is byte-identical to `bytes`.
//
// Protobuf promises byte identity only for canonical input: fields in field-number order
// and map entries in the order our serializer picks (deterministic mode sorts them by
// key). Real TensorFlow files are not always canonical, for two reasons seen in the test
// data:
//  - TF1-era writers emitted map entries (NodeDef.attr, signature_def, ...) in hash-map
//    order, e.g. attr "value" before "_output_shapes" before "dtype" in export.meta;
//  - TF 2.x C++ writers of saved_model.pb and fingerprint.pb emit fields in descending
//    field-number order (object_graph_def = 7 first; fingerprint field 6 before 1).
// For those files the test shows instead that nothing is lost: the re-serialization has
// the same length, parses back to a message MessageDifferencer finds equal, and a second
// parse/serialize is a fixed point.
bool ExpectRoundTrip(absl::string_view bytes, Message* m, const std::string& what) {
  if (!m->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()))) {
    ADD_FAILURE() << what << " does not parse as " << m->GetDescriptor()->full_name();
    return false;
  }
  EXPECT_EQ(UnknownFields(*m), std::vector<std::string>{}) << what;
  const std::string canonical = Serialize(*m, /*deterministic=*/true);
  if (canonical == bytes) return true;

  EXPECT_EQ(canonical.size(), bytes.size()) << what;
  std::unique_ptr<Message> again(m->New());
  EXPECT_TRUE(again->ParseFromString(canonical)) << what;
  EXPECT_TRUE(MessageDifferencer::Equals(*m, *again)) << what;
  EXPECT_TRUE(Serialize(*again, /*deterministic=*/true) == canonical)
      << what << ": parse/serialize is not a fixed point";
  return false;
}

// Collection keys whose bytes_list entries TensorFlow fills with one serialized proto
// (ops.register_proto_function), with a prototype of that proto.
const std::map<std::string, const Message*>& RegisteredCollections() {
  static const auto* kMap = new std::map<std::string, const Message*>{
      {"variables", &tensorflow::VariableDef::default_instance()},
      {"trainable_variables", &tensorflow::VariableDef::default_instance()},
      {"local_variables", &tensorflow::VariableDef::default_instance()},
      {"model_variables", &tensorflow::VariableDef::default_instance()},
      {"moving_average_variables", &tensorflow::VariableDef::default_instance()},
      {"global_step", &tensorflow::VariableDef::default_instance()},
      {"metric_variables", &tensorflow::VariableDef::default_instance()},
      {"savers", &tensorflow::SaverDef::default_instance()},
      {"queue_runners", &tensorflow::QueueRunnerDef::default_instance()},
      {"cond_context", &tensorflow::CondContextDef::default_instance()},
      {"while_context", &tensorflow::WhileContextDef::default_instance()},
  };
  return *kMap;
}

// Any payload types we have a schema for, by type_url.
const std::map<std::string, const Message*>& KnownAnyTypes() {
  static const auto* kMap = new std::map<std::string, const Message*>{
      {"type.googleapis.com/tensorflow.AssetFileDef",
       &tensorflow::AssetFileDef::default_instance()},
      {"type.googleapis.com/tensorflow.TensorInfo",
       &tensorflow::TensorInfo::default_instance()},
      {"type.googleapis.com/tensorflow.GraphDef",
       &tensorflow::GraphDef::default_instance()},
  };
  return *kMap;
}

// TensorFlow Serving's own protos (session_bundle); they are passed through untouched.
const std::set<std::string>& ForeignAnyTypes() {
  static const auto* kSet = new std::set<std::string>{
      "type.googleapis.com/tensorflow.serving.Signatures",
      "type.googleapis.com/tensorflow.serving.AssetFile",
  };
  return *kSet;
}

struct PayloadCounts {
  int collection_entries = 0;
  int any_payloads = 0;
  int byte_identical = 0;  // Of collection entries and Any payloads together.
};

// `path` relative to the test data directory.
std::string Relative(const std::string& path) {
  return fs::relative(path, TestdataDir()).string();
}

void ExpectAnyRoundTrips(const google::protobuf::Any& any, const std::string& what,
                         PayloadCounts* counts) {
  auto it = KnownAnyTypes().find(any.type_url());
  if (it == KnownAnyTypes().end()) {
    EXPECT_TRUE(ForeignAnyTypes().count(any.type_url()) == 1)
        << what << ": unexpected Any type " << any.type_url();
    return;
  }
  std::unique_ptr<Message> payload(it->second->New());
  counts->byte_identical += ExpectRoundTrip(any.value(), payload.get(),
                                            absl::StrCat(what, " Any ", any.type_url()));
  ++counts->any_payloads;
}

// The payloads nested as bytes inside a MetaGraphDef: registered collections and Anys.
void ExpectPayloadsRoundTrip(const tensorflow::MetaGraphDef& mg, const std::string& what,
                             PayloadCounts* counts) {
  if (mg.meta_info_def().has_any_info()) {
    ExpectAnyRoundTrips(mg.meta_info_def().any_info(), what, counts);
  }
  for (const auto& [key, col] : mg.collection_def()) {
    if (col.has_any_list()) {
      for (const auto& any : col.any_list().value()) {
        ExpectAnyRoundTrips(any, absl::StrCat(what, " collection ", key), counts);
      }
    }
    auto it = RegisteredCollections().find(key);
    if (it == RegisteredCollections().end()) continue;
    ASSERT_TRUE(col.has_bytes_list()) << what << " collection " << key;
    for (const std::string& entry : col.bytes_list().value()) {
      std::unique_ptr<Message> payload(it->second->New());
      counts->byte_identical +=
          ExpectRoundTrip(entry, payload.get(), absl::StrCat(what, " collection ", key));
      ++counts->collection_entries;
    }
  }
}

TEST(TfProtoRoundTripTest, UnknownFieldWalkFindsFieldsInsideMapValuesAndOneofs) {
  // A field number our schema lacks, inside AttrValue.list (a oneof member) inside the
  // NodeDef.attr map inside GraphDef.node (repeated).
  tensorflow::MetaGraphDef mg;
  auto& attr = (*mg.mutable_graph_def()->add_node()->mutable_attr())["x"];
  attr.mutable_list()
      ->GetReflection()
      ->MutableUnknownFields(attr.mutable_list())
      ->AddVarint(99, 1);
  tensorflow::MetaGraphDef parsed;
  ASSERT_TRUE(parsed.ParseFromString(mg.SerializeAsString()));
  const auto unknown = UnknownFields(parsed);
  ASSERT_EQ(unknown.size(), 1u);
  EXPECT_EQ(unknown[0],
            "MetaGraphDef.graph_def.node[0].attr[0].value.list "
            "(tensorflow.AttrValue.ListValue)");
}

TEST(TfProtoRoundTripTest,
     EveryMetaFileParsesWithoutUnknownFieldsAndReserializesExactly) {
  MGREG_REQUIRE_TESTDATA();
  auto files = FindFiles([](const std::string& n) { return absl::EndsWith(n, ".meta"); });
  ASSERT_EQ(files.size(), kMetaFiles) << absl::StrJoin(files, "\n");
  PayloadCounts counts;
  std::vector<std::string> byte_identical;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    tensorflow::MetaGraphDef mg;
    if (ExpectRoundTrip(ReadFileOrDie(path), &mg, path))
      byte_identical.push_back(Relative(path));
    EXPECT_GT(mg.graph_def().node_size(), 0);
    ExpectPayloadsRoundTrip(mg, path, &counts);
  }
  // tfx's TF 2.9 Saver wrote canonical bytes; the TF 0.12 and 1.11 files have attr maps
  // in hash order (see ExpectRoundTrip).
  EXPECT_EQ(byte_identical,
            std::vector<std::string>{"tfx/tfx/components/testdata/trainer/current/"
                                     "Format-Serving/model.ckpt-1000.meta"});
  // DATA.md: variables/trainable_variables 3+3 (session_bundle), 2+2 (tf2onnx), 60+20
  // plus global_step 1 and savers 1 (tfx) = 92 entries; Anys: session_bundle's
  // serving_graph GraphDef (attr maps in hash order, so not byte-identical either).
  EXPECT_EQ(counts.collection_entries, 92);
  EXPECT_EQ(counts.any_payloads, 1);
  std::cout << "[   INFO   ] byte-identical .meta files: " << byte_identical.size()
            << " of " << files.size()
            << "; byte-identical payloads: " << counts.byte_identical << " of "
            << counts.collection_entries + counts.any_payloads << "\n";
}

TEST(TfProtoRoundTripTest,
     EverySavedModelParsesWithoutUnknownFieldsAndReserializesExactly) {
  MGREG_REQUIRE_TESTDATA();
  auto files = FindFiles([](const std::string& n) { return n == "saved_model.pb"; });
  ASSERT_EQ(files.size(), kSavedModelFiles) << absl::StrJoin(files, "\n");
  PayloadCounts counts;
  int byte_identical = 0;
  bool saw_object_graph = false;
  bool saw_signature_defaults = false;
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    tensorflow::SavedModel sm;
    byte_identical += ExpectRoundTrip(ReadFileOrDie(path), &sm, path);
    ASSERT_GT(sm.meta_graphs_size(), 0);
    for (const auto& mg : sm.meta_graphs()) {
      ExpectPayloadsRoundTrip(mg, path, &counts);
      saw_object_graph |=
          mg.has_object_graph_def() && mg.object_graph_def().nodes_size() > 0;
      for (const auto& [name, sig] : mg.signature_def()) {
        saw_signature_defaults |= !sig.defaults().empty();
      }
    }
  }
  EXPECT_TRUE(saw_object_graph) << "the TF2 SavedModel's object_graph_def was not seen";
  EXPECT_TRUE(saw_signature_defaults) << "SignatureDef.defaults (field 4) was not seen";
  EXPECT_GE(counts.any_payloads, 1);  // saved_model_assets holds an AssetFileDef.
  std::cout << "[   INFO   ] byte-identical saved_model.pb files: " << byte_identical
            << " of " << files.size()
            << "; byte-identical payloads: " << counts.byte_identical << " of "
            << counts.collection_entries + counts.any_payloads << "\n";
}

TEST(TfProtoRoundTripTest, FingerprintParsesWithoutUnknownFieldsAndReserializesExactly) {
  MGREG_REQUIRE_TESTDATA();
  auto files = FindFiles([](const std::string& n) { return n == "fingerprint.pb"; });
  ASSERT_EQ(files.size(), 1u);
  tensorflow::FingerprintDef fp;
  // Written in descending field order by TF 2.14, so equal but not byte-identical.
  EXPECT_FALSE(ExpectRoundTrip(ReadFileOrDie(files[0]), &fp, files[0]));
  EXPECT_EQ(fp.version().producer(), 1);
  EXPECT_NE(fp.saved_model_checksum(), 0u);
}

TEST(TfProtoRoundTripTest, EveryCheckpointStateFileParsesAsTextFormat) {
  MGREG_REQUIRE_TESTDATA();
  auto files = FindFiles([](const std::string& n) { return n == "checkpoint"; });
  ASSERT_EQ(files.size(), kCheckpointStateFiles) << absl::StrJoin(files, "\n");
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    tensorflow::CheckpointState state;
    ASSERT_TRUE(
        google::protobuf::TextFormat::ParseFromString(ReadFileOrDie(path), &state));
    EXPECT_FALSE(state.model_checkpoint_path().empty());
    ASSERT_GT(state.all_model_checkpoint_paths_size(), 0);
    EXPECT_EQ(
        state.all_model_checkpoint_paths(state.all_model_checkpoint_paths_size() - 1),
        state.model_checkpoint_path());
    if (state.all_model_checkpoint_timestamps_size() > 0) {
      EXPECT_EQ(state.all_model_checkpoint_timestamps_size(),
                state.all_model_checkpoint_paths_size());
    }
  }
}

TEST(TfProtoRoundTripTest, EveryIndexHeaderAndEntryParsesWithoutUnknownFields) {
  MGREG_REQUIRE_TESTDATA();
  auto files =
      FindFiles([](const std::string& n) { return absl::EndsWith(n, ".index"); });
  ASSERT_EQ(files.size(), kIndexFiles) << absl::StrJoin(files, "\n");
  for (const std::string& path : files) {
    SCOPED_TRACE(path);
    auto index = ReadBundleIndex(ReadFileOrDie(path));
    ASSERT_TRUE(index.ok()) << index.status();
    EXPECT_EQ(UnknownFields(index->header), std::vector<std::string>{});
    EXPECT_GE(index->header.num_shards(), 1);
    EXPECT_EQ(index->header.version().producer(), 1);
    ASSERT_FALSE(index->entries.empty());
    for (const auto& [key, entry] : index->entries) {
      EXPECT_EQ(UnknownFields(entry), std::vector<std::string>{}) << key;
      if (key == "_CHECKPOINTABLE_OBJECT_GRAPH") {
        EXPECT_EQ(entry.dtype(), tensorflow::DT_STRING);
      }
    }
  }
}

}  // namespace
}  // namespace mgreg
