// The tensor-bundle .index reader on untrusted bytes (ReadBundleIndex), then
// ValidateBundle against data-file sizes derived from the entries (all fit, one byte
// short, or a shard missing) and VerifyTensorCrc on tensor bytes cut from the input.
#include <algorithm>
#include <cstdint>
#include <limits>
#include <map>
#include <string>

#include "fuzz/fuzz_target.h"
#include "metagraph/tensor_bundle.h"

namespace mgreg::fuzz {

int FuzzOne(const uint8_t* data, size_t size) {
  const absl::string_view bytes(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<BundleIndex> index = ReadBundleIndex(bytes);
  if (!index.ok()) return 0;

  // The smallest sizes that hold every located entry, per shard.
  std::map<int, int64_t> fit;
  const int32_t num_shards = index->header.num_shards();
  for (int s = 0; s >= 0 && s < std::min<int32_t>(num_shards, 64); ++s) fit[s] = 0;
  for (const auto& [name, entry] : index->entries) {
    if (entry.slices_size() > 0) continue;
    const int64_t off = entry.offset(), len = entry.size();
    if (off < 0 || len < 0 || off > std::numeric_limits<int64_t>::max() - len) continue;
    fit[entry.shard_id()] = std::max(fit[entry.shard_id()], off + len);
  }
  const int files = static_cast<int>(std::min<int64_t>(num_shards, 1 << 20));
  switch (size % 3) {
    case 0:
      ValidateBundle(*index, files, fit).IgnoreError();
      break;
    case 1: {
      std::map<int, int64_t> short_by_one = fit;
      for (auto& [shard, n] : short_by_one) n = n > 0 ? n - 1 : n;
      ValidateBundle(*index, files, short_by_one).IgnoreError();
      break;
    }
    default: {
      std::map<int, int64_t> missing = fit;
      if (!missing.empty()) missing.erase(missing.begin());
      ValidateBundle(*index, files + 1, missing).IgnoreError();
      break;
    }
  }
  // Checksums over bytes of the entry's size (taken from the input itself).
  for (const auto& [name, entry] : index->entries) {
    if (entry.size() < 0 || static_cast<uint64_t>(entry.size()) > size) continue;
    VerifyTensorCrc(name, entry, bytes.substr(0, static_cast<size_t>(entry.size())))
        .IgnoreError();
  }
  return 0;
}

}  // namespace mgreg::fuzz
