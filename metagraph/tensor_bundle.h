// The `.index` file of a TensorFlow V2 checkpoint (a "tensor bundle").
//
// The index is a LevelDB-format table. The value of the empty key "" is a
// BundleHeaderProto (number of data shards, endianness, version); every other key is a
// tensor name whose value is a BundleEntryProto giving the tensor's dtype, shape, data
// shard, byte range and masked CRC32C. The tensors' bytes live in the data files
// "<prefix>.data-NNNNN-of-MMMMM". All functions here work on bytes in memory (no file
// I/O) and are thread-safe.
#ifndef MGREG_METAGRAPH_TENSOR_BUNDLE_H_
#define MGREG_METAGRAPH_TENSOR_BUNDLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensorflow/core/protobuf/tensor_bundle.pb.h"

namespace mgreg {

// The parsed content of a .index file.
struct BundleIndex {
  tensorflow::BundleHeaderProto header;
  // Every non-empty key with its entry, sorted bytewise by key.
  std::vector<std::pair<std::string, tensorflow::BundleEntryProto>> entries;
};

// Reads a .index from memory. Raw and Snappy-compressed blocks are accepted; every block
// checksum is verified.
// Returns INVALID_ARGUMENT if the bytes are not a table (too short, bad footer magic, bad
// block handle, unknown block type), if the "" header entry is missing or does not parse
// (the message says which), or if an entry does not parse as a BundleEntryProto (naming
// the key). Returns INVALID_ARGUMENT "V1 checkpoint ... not supported" for a V1
// checkpoint table (values are SavedTensorSlices). Returns DATA_LOSS if a block checksum
// does not match (the file was corrupted after TensorFlow wrote it).
absl::StatusOr<BundleIndex> ReadBundleIndex(absl::string_view index_bytes);

// Checks `index` against the data files pushed with it: `num_data_files` is how many
// data files there are and `shard_sizes` maps shard id -> size in bytes of
// data-<shard>-of-<num_data_files>.
// Returns INVALID_ARGUMENT naming the problem if header.num_shards differs from
// num_data_files, a shard in [0, num_shards) has no size, shard_sizes names a shard
// outside that range, or an entry's shard_id/offset/size lies outside its shard.
// Entries of partitioned tensors (non-empty `slices`, which hold no bytes themselves)
// are not located.
absl::Status ValidateBundle(const BundleIndex& index, int num_data_files,
                            const std::map<int, int64_t>& shard_sizes);

// Checks one tensor's bytes (as cut from its data file) against its entry: the masked
// CRC32C of the bytes, or for DT_STRING tensors (stored as varint lengths, a length
// checksum, then the strings) the checksum TensorFlow computes over that layout.
// Returns DATA_LOSS naming the tensor if bytes.size() differs from entry.size(), the
// checksum differs from entry.crc32c(), or a DT_STRING layout is malformed. Returns
// UNIMPLEMENTED for DT_VARIANT tensors, whose checksum this does not compute.
absl::Status VerifyTensorCrc(const std::string& name,
                             const tensorflow::BundleEntryProto& entry,
                             absl::string_view bytes);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_TENSOR_BUNDLE_H_
