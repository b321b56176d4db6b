// TensorFlow's `checkpoint` state file: a text-format tensorflow.CheckpointState listing
// the checkpoint prefixes of a directory, newest last. tf.train.latest_checkpoint(dir)
// reads it. Pure functions, thread-safe.
#ifndef MGREG_METAGRAPH_CHECKPOINT_STATE_H_
#define MGREG_METAGRAPH_CHECKPOINT_STATE_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tensorflow/python/training/checkpoint_state.pb.h"

namespace mgreg {

// Parses the content of a `checkpoint` file the way TensorFlow does (text_format.Merge:
// a repeated singular field keeps its last value).
// Returns INVALID_ARGUMENT with the line and column of the first syntax error or unknown
// field, or if model_checkpoint_path is empty (TensorFlow rejects such a state too).
absl::StatusOr<tensorflow::CheckpointState> ParseCheckpointState(absl::string_view text);

// The text TensorFlow's text_format.MessageToString writes for `state`: one
// "name: value" line per set field in field-number order, strings C-escaped (octal for
// non-printable bytes), doubles in Python's shortest repr ("1673735799.685766", "1e+16").
// Parsing the result gives `state` back; real `checkpoint` files round-trip byte for
// byte.
std::string FormatCheckpointState(const tensorflow::CheckpointState& state);

// The state TensorFlow writes for a directory holding `prefixes_oldest_first` (paths as
// given, usually relative to the directory): all_model_checkpoint_paths = the prefixes,
// model_checkpoint_path = the last one (empty state if there are none). `timestamps`
// (Unix seconds, one per prefix) and `last_preserved_timestamp` are copied as given, as
// tf.train.CheckpointManager writes them; Saver.save writes neither.
tensorflow::CheckpointState MakeCheckpointState(
    const std::vector<std::string>& prefixes_oldest_first,
    const std::vector<double>& timestamps = {},
    std::optional<double> last_preserved_timestamp = std::nullopt);

}  // namespace mgreg

#endif  // MGREG_METAGRAPH_CHECKPOINT_STATE_H_
