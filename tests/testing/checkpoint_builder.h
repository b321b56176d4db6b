// Writes small but real TensorFlow V2 checkpoints for tests and benchmarks: a
// tensor-bundle .index (a LevelDB table, as TensorFlow's BundleWriter writes it),
// .data-NNNNN-of-MMMMM shards and optionally a .meta.
#ifndef MGREG_TESTS_TESTING_CHECKPOINT_BUILDER_H_
#define MGREG_TESTS_TESTING_CHECKPOINT_BUILDER_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "google/protobuf/descriptor.pb.h"
#include "tensorflow/core/protobuf/meta_graph.pb.h"

namespace mgreg::testing {

struct TensorSpec {
  std::string name;
  std::string bytes;  // raw little-endian float32 values, as TensorFlow stores them
  int shard = 0;
};

struct CheckpointSpec {
  std::string directory;
  std::string basename = "model.ckpt";
  int64_t step = 0;
  int num_shards = 1;
  std::vector<TensorSpec> tensors;
  // Written as <prefix>.meta when set.
  std::optional<std::string> meta;
};

// Writes the checkpoint; returns its prefix ("dir/model.ckpt-<step>"). Fails the test
// on I/O errors.
std::string WriteCheckpoint(const CheckpointSpec& spec);

// `n` float32 values (as bytes) derived from `seed`.
std::string FloatBytes(size_t n, uint32_t seed);

// A small MetaGraphDef: a variable `name_scope/w` with its initializer and a saver,
// with devices, `_class` and the variables collection, as TensorFlow writes them.
tensorflow::MetaGraphDef SmallMetaGraph(const std::string& name_scope = "dense");
// SmallMetaGraph() serialized deterministically (map order fixed), so the same graph
// always gives the same bytes, as a real .meta written once would.
std::string SmallMetaGraphBytes(const std::string& name_scope = "dense");

// A user's own collection type (a program's ops.register_proto_function), in
// "mylib/layers.proto" as `protoc --include_imports -o` writes it:
//   package mylib;
//   message LayerDef {
//     message Output { string tensor = 1; }
//     string name = 1; repeated string inputs = 2; Output output = 3; int32 units = 4;
//   }
google::protobuf::FileDescriptorSet LayerDefDescriptorSet();
// One mylib.LayerDef, serialized.
std::string LayerDefBytes(const std::string& name, const std::vector<std::string>& inputs,
                          const std::string& output, int units);
// SmallMetaGraph() plus a "layers" collection of two LayerDefs: "dense/layer" (inputs
// "dense/w:0" and "other/x:0", output "dense/out:0", 8 units) and "head/layer" (input
// "dense/out:0", output "head/out:0", 2 units).
tensorflow::MetaGraphDef MetaGraphWithLayers();

}  // namespace mgreg::testing

#endif  // MGREG_TESTS_TESTING_CHECKPOINT_BUILDER_H_
