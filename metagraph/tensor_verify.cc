#include "metagraph/tensor_verify.h"

#include <algorithm>
#include <utility>
#include <vector>

#include "common/status_macros.h"

namespace mgreg {

absl::StatusOr<std::map<std::string, std::string>> VerifyTensors(
    const BundleIndex& index, const std::map<int, int64_t>& shard_sizes,
    const ShardRangeReader& read) {
  using Tensor = std::pair<const std::string*, const tensorflow::BundleEntryProto*>;
  std::map<int, std::vector<Tensor>> by_shard;
  for (const auto& [name, entry] : index.entries) {
    if (entry.slices_size() == 0) by_shard[entry.shard_id()].push_back({&name, &entry});
  }
  std::map<std::string, std::string> verdicts;
  for (auto& [shard, tensors] : by_shard) {
    auto size = shard_sizes.find(shard);
    if (size == shard_sizes.end()) {
      for (const Tensor& t : tensors) verdicts[*t.first] = "its data shard is missing";
      continue;
    }
    // In offset order, so that consecutive tensors reuse what the reader read last.
    std::sort(tensors.begin(), tensors.end(), [](const Tensor& a, const Tensor& b) {
      return a.second->offset() < b.second->offset();
    });
    for (const auto& [name, entry] : tensors) {
      const int64_t begin = entry->offset();
      if (begin < 0 || entry->size() < 0 || entry->size() > size->second - begin) {
        verdicts[*name] = "its bytes lie outside the data file";
        continue;
      }
      ASSIGN_OR_RETURN(std::string bytes, read(shard, begin, entry->size()));
      absl::Status crc = VerifyTensorCrc(*name, *entry, bytes);
      verdicts[*name] = crc.ok() ? "ok" : std::string(crc.message());
    }
  }
  return verdicts;
}

}  // namespace mgreg
