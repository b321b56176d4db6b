#include "tests/testing/checkpoint_builder.h"

#include <google/protobuf/io/coded_stream.h>
#include <google/protobuf/io/zero_copy_stream_impl_lite.h>

#include <cstring>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/crc32c.h"
#include "gtest/gtest.h"
#include "leveldb/env.h"
#include "leveldb/options.h"
#include "leveldb/table_builder.h"
#include "tensorflow/core/framework/variable.pb.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"
#include "tests/testing/test_util.h"

namespace mgreg::testing {

std::string FloatBytes(size_t n, uint32_t seed) {
  std::string out(n * 4, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    const float f = static_cast<float>(x % 20000) / 10000.0f - 1.0f;
    std::memcpy(&out[i * 4], &f, 4);
  }
  return out;
}

std::string WriteCheckpoint(const CheckpointSpec& spec) {
  const std::string prefix =
      absl::StrCat(spec.directory, "/", spec.basename, "-", spec.step);
  // Data shards, and an entry per tensor pointing into them.
  std::map<std::string, tensorflow::BundleEntryProto> entries;
  std::vector<std::string> shards(spec.num_shards);
  for (const TensorSpec& t : spec.tensors) {
    tensorflow::BundleEntryProto& e = entries[t.name];
    e.set_dtype(tensorflow::DT_FLOAT);
    e.mutable_shape()->add_dim()->set_size(static_cast<int64_t>(t.bytes.size() / 4));
    e.set_shard_id(t.shard);
    e.set_offset(static_cast<int64_t>(shards[t.shard].size()));
    e.set_size(static_cast<int64_t>(t.bytes.size()));
    e.set_crc32c(MaskCrc32c(Crc32c(t.bytes)));
    shards[t.shard] += t.bytes;
  }
  for (int i = 0; i < spec.num_shards; ++i) {
    WriteFileOrDie(absl::StrFormat("%s.data-%05d-of-%05d", prefix, i, spec.num_shards),
                   shards[i]);
  }
  // The .index: a LevelDB table, "" -> header, then the entries in key order.
  leveldb::WritableFile* file = nullptr;
  leveldb::Status s = leveldb::Env::Default()->NewWritableFile(prefix + ".index", &file);
  if (!s.ok()) {
    ADD_FAILURE() << s.ToString();
    return prefix;
  }
  std::unique_ptr<leveldb::WritableFile> owned(file);
  leveldb::Options options;
  options.compression = leveldb::kNoCompression;
  leveldb::TableBuilder builder(options, file);
  tensorflow::BundleHeaderProto header;
  header.set_num_shards(spec.num_shards);
  header.mutable_version()->set_producer(1);
  builder.Add("", header.SerializeAsString());
  for (const auto& [name, entry] : entries) builder.Add(name, entry.SerializeAsString());
  s = builder.Finish();
  if (s.ok()) s = file->Close();
  if (!s.ok()) ADD_FAILURE() << s.ToString();
  if (spec.meta.has_value()) WriteFileOrDie(prefix + ".meta", *spec.meta);
  return prefix;
}

tensorflow::MetaGraphDef SmallMetaGraph(const std::string& name_scope) {
  tensorflow::MetaGraphDef m;
  m.mutable_meta_info_def()->set_tensorflow_version("1.15.0");
  auto* graph = m.mutable_graph_def();
  auto add = [&](const std::string& name, const std::string& op,
                 std::vector<std::string> inputs) {
    tensorflow::NodeDef* n = graph->add_node();
    n->set_name(name);
    n->set_op(op);
    n->set_device("/job:worker/replica:0/task:0/device:CPU:0");
    for (const std::string& i : inputs) n->add_input(i);
    return n;
  };
  const std::string w = name_scope + "/w";
  add(w, "VariableV2", {});
  add(w + "/Initializer/zeros", "Const", {});
  tensorflow::NodeDef* assign =
      add(w + "/Assign", "Assign", {w, w + "/Initializer/zeros"});
  (*assign->mutable_attr())["_class"].mutable_list()->add_s("loc:@" + w);
  add("save/Const", "Const", {});
  add("save/SaveV2", "SaveV2", {"save/Const", w});
  add("save/control_dependency", "Identity", {"save/Const", "^save/SaveV2"});
  add("save/RestoreV2", "RestoreV2", {"save/Const"});
  add("save/restore_all", "NoOp", {"^save/RestoreV2"});
  graph->mutable_versions()->set_producer(27);
  m.mutable_saver_def()->set_filename_tensor_name("save/Const:0");
  m.mutable_saver_def()->set_save_tensor_name("save/control_dependency:0");
  m.mutable_saver_def()->set_restore_op_name("save/restore_all");
  m.mutable_saver_def()->set_max_to_keep(5);
  m.mutable_saver_def()->set_version(tensorflow::SaverDef::V2);
  tensorflow::VariableDef var;
  var.set_variable_name(w + ":0");
  var.set_initializer_name(w + "/Assign");
  var.set_snapshot_name(w + "/read:0");
  var.set_trainable(true);
  auto& vars = (*m.mutable_collection_def())["variables"];
  vars.mutable_bytes_list()->add_value(var.SerializeAsString());
  auto& hparams = (*m.mutable_collection_def())["hparams"];
  hparams.mutable_bytes_list()->add_value("learning_rate=0.01");
  return m;
}

google::protobuf::FileDescriptorSet LayerDefDescriptorSet() {
  google::protobuf::FileDescriptorSet set;
  google::protobuf::FileDescriptorProto* file = set.add_file();
  file->set_name("mylib/layers.proto");
  file->set_package("mylib");
  file->set_syntax("proto3");
  google::protobuf::DescriptorProto* layer = file->add_message_type();
  layer->set_name("LayerDef");
  google::protobuf::DescriptorProto* output = layer->add_nested_type();
  output->set_name("Output");
  using F = google::protobuf::FieldDescriptorProto;
  auto add = [](google::protobuf::DescriptorProto* m, const char* name, int number,
                F::Type type, F::Label label) {
    F* f = m->add_field();
    f->set_name(name);
    f->set_json_name(name);
    f->set_number(number);
    f->set_type(type);
    f->set_label(label);
    return f;
  };
  add(output, "tensor", 1, F::TYPE_STRING, F::LABEL_OPTIONAL);
  add(layer, "name", 1, F::TYPE_STRING, F::LABEL_OPTIONAL);
  add(layer, "inputs", 2, F::TYPE_STRING, F::LABEL_REPEATED);
  add(layer, "output", 3, F::TYPE_MESSAGE, F::LABEL_OPTIONAL)
      ->set_type_name(".mylib.LayerDef.Output");
  add(layer, "units", 4, F::TYPE_INT32, F::LABEL_OPTIONAL);
  return set;
}

std::string LayerDefBytes(const std::string& name, const std::vector<std::string>& inputs,
                          const std::string& output, int units) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    auto string_field = [&](int number, const std::string& value) {
      coded.WriteTag((number << 3) | 2);
      coded.WriteVarint32(static_cast<uint32_t>(value.size()));
      coded.WriteString(value);
    };
    string_field(1, name);
    for (const std::string& input : inputs) string_field(2, input);
    const std::string tensor =
        absl::StrCat("\x0a", std::string(1, static_cast<char>(output.size())), output);
    string_field(3, tensor);
    coded.WriteTag((4 << 3) | 0);
    coded.WriteVarint32(static_cast<uint32_t>(units));
  }
  return out;
}

tensorflow::MetaGraphDef MetaGraphWithLayers() {
  tensorflow::MetaGraphDef m = SmallMetaGraph("dense");
  auto* layers = (*m.mutable_collection_def())["layers"].mutable_bytes_list();
  layers->add_value(
      LayerDefBytes("dense/layer", {"dense/w:0", "other/x:0"}, "dense/out:0", 8));
  layers->add_value(LayerDefBytes("head/layer", {"dense/out:0"}, "head/out:0", 2));
  return m;
}

std::string SmallMetaGraphBytes(const std::string& name_scope) {
  std::string out;
  {
    google::protobuf::io::StringOutputStream stream(&out);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    SmallMetaGraph(name_scope).SerializeToCodedStream(&coded);
  }  // flushed into `out` here
  return out;
}

}  // namespace mgreg::testing
