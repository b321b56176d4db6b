// Names of TensorFlow checkpoint prefixes and their files.
//
// A checkpoint is identified by a prefix such as "dir/model.ckpt-1000"; its files are
// "<prefix>.index", "<prefix>.meta" and "<prefix>.data-NNNNN-of-MMMMM". TensorFlow's
// Saver builds the prefix as "<basename>-<global_step>". All functions here are pure
// string manipulation (no file-system access) and thread-safe.
#ifndef MGREG_METAGRAPH_CHECKPOINT_NAME_H_
#define MGREG_METAGRAPH_CHECKPOINT_NAME_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace mgreg {

// A checkpoint prefix split into its parts.
struct CheckpointPrefix {
  // "" or the directory part, no trailing '/' ("/" for a prefix in the root directory).
  std::string directory;
  // "model.ckpt"
  std::string basename;
  // 1000 for "model.ckpt-1000"; nullopt when there is no -<digits> suffix.
  std::optional<int64_t> step;
};

// Splits a checkpoint prefix:
//   "dir/model.ckpt-1000" -> {"dir", "model.ckpt", 1000}
//   "ckpt-19"             -> {"", "ckpt", 19}
//   "dir/model"           -> {"dir", "model", nullopt}
// Also accepts the path of one of the checkpoint's files ("dir/model.ckpt-1000.index",
// "....meta", "....data-00000-of-00001") and strips that suffix first. The step is the
// decimal number after the last '-' of the file name; leading zeros are accepted
// ("m-007" has step 7, which CheckpointPrefixName writes back as "m-7").
//
// Returns INVALID_ARGUMENT, saying what to change, if the prefix is empty, ends in '/',
// has nothing before "-<step>" or before a stripped file suffix, or has a step that does
// not fit in int64.
absl::StatusOr<CheckpointPrefix> ParseCheckpointPrefix(absl::string_view prefix);

// "<basename>-<step>", as TensorFlow's Saver names the prefix of global step `step`:
// CheckpointPrefixName("model.ckpt", 1000) == "model.ckpt-1000".
std::string CheckpointPrefixName(absl::string_view basename, int64_t step);

// Shard number and shard count of a data file.
struct DataShard {
  int shard = 0;
  int num_shards = 0;
};

// Parses a data file name without the prefix: "data-00001-of-00002" -> {1, 2}. Both
// numbers have at least five digits (TensorFlow's "%05d"); shard < num_shards.
// Returns INVALID_ARGUMENT naming the expected form otherwise.
absl::StatusOr<DataShard> ParseDataFileName(absl::string_view name);

// The data file name TensorFlow writes: DataFileName(1, 2) == "data-00001-of-00002".
std::string DataFileName(int shard, int num_shards);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_CHECKPOINT_NAME_H_
