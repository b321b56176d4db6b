// Checking the tensors of a checkpoint against their CRCs, reading their bytes through a
// caller-supplied reader (this layer does no I/O: the server reads stored chunks, a tool
// could read local files).
#ifndef MGREG_METAGRAPH_TENSOR_VERIFY_H_
#define MGREG_METAGRAPH_TENSOR_VERIFY_H_

#include <cstdint>
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "metagraph/tensor_bundle.h"

namespace mgreg {

// Reads `size` bytes at `offset` of data shard `shard` (a shard that exists and holds
// that range). For each shard, calls come in increasing offset order, so a reader may
// keep the last piece it read.
using ShardRangeReader =
    std::function<absl::StatusOr<std::string>(int shard, int64_t offset, int64_t size)>;

// The verdict on each tensor of `index` that carries a CRC of its own: "ok", or what is
// wrong ("its data shard is missing", "its bytes lie outside the data file", or
// VerifyTensorCrc's message). Entries of partitioned tensors (non-empty `slices`) carry
// no CRC and get no verdict. `shard_sizes` maps the id of each data shard present to its
// size in bytes. Each shard is read once, in offset order.
// Returns the first error of `read` as is.
absl::StatusOr<std::map<std::string, std::string>> VerifyTensors(
    const BundleIndex& index, const std::map<int, int64_t>& shard_sizes,
    const ShardRangeReader& read);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_TENSOR_VERIFY_H_
