// TensorFlow's `checkpoint` state file (text format) from an untrusted directory or
// upload: ParseCheckpointState, and what parses formats to text that parses back to the
// same text (checkpoint_state.h: formatting and parsing round-trip).
#include <string>
#include <vector>

#include "fuzz/fuzz_target.h"
#include "metagraph/checkpoint_state.h"

namespace mgreg::fuzz {

int FuzzOne(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  absl::StatusOr<tensorflow::CheckpointState> state = ParseCheckpointState(text);
  if (!state.ok()) return 0;
  const std::string formatted = FormatCheckpointState(*state);
  absl::StatusOr<tensorflow::CheckpointState> again = ParseCheckpointState(formatted);
  FUZZ_CHECK(again.ok());
  FUZZ_CHECK(FormatCheckpointState(*again) == formatted);

  std::vector<std::string> paths(state->all_model_checkpoint_paths().begin(),
                                 state->all_model_checkpoint_paths().end());
  std::vector<double> stamps(state->all_model_checkpoint_timestamps().begin(),
                             state->all_model_checkpoint_timestamps().end());
  if (stamps.size() != paths.size()) stamps.clear();
  tensorflow::CheckpointState made =
      MakeCheckpointState(paths, stamps, state->last_preserved_timestamp());
  (void)FormatCheckpointState(made);
  return 0;
}

}  // namespace mgreg::fuzz
