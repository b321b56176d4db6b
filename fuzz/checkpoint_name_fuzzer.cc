// Names from clients: checkpoint prefixes and data-file names
// (metagraph/checkpoint_name.h) and the registry's validators (common/names.h). What
// parses must format back to a name that parses to the same parts.
#include <string>

#include "common/names.h"
#include "fuzz/fuzz_target.h"
#include "metagraph/checkpoint_name.h"

namespace mgreg::fuzz {

int FuzzOne(const uint8_t* data, size_t size) {
  const absl::string_view s(reinterpret_cast<const char*>(data), size);

  absl::StatusOr<CheckpointPrefix> prefix = ParseCheckpointPrefix(s);
  if (prefix.ok() && prefix->step.has_value()) {
    FUZZ_CHECK(*prefix->step >= 0);
    const std::string name = CheckpointPrefixName(prefix->basename, *prefix->step);
    absl::StatusOr<CheckpointPrefix> again = ParseCheckpointPrefix(name);
    // A basename such as "m.data-00000-of" makes the name "m.data-00000-of-7" read as
    // a data file of prefix "m" (the parser strips file suffixes first, by contract):
    // such names are ambiguous, not wrong.
    const size_t dot = name.rfind('.');
    const absl::string_view suffix = dot == std::string::npos
                                         ? absl::string_view()
                                         : absl::string_view(name).substr(dot + 1);
    const bool ambiguous =
        suffix == "index" || suffix == "meta" || ParseDataFileName(suffix).ok();
    if (!ambiguous) {
      FUZZ_CHECK(again.ok());
      FUZZ_CHECK(again->basename == prefix->basename);
      FUZZ_CHECK(again->step == prefix->step);
    }
  }

  absl::StatusOr<DataShard> shard = ParseDataFileName(s);
  if (shard.ok()) {
    FUZZ_CHECK(shard->shard >= 0 && shard->shard < shard->num_shards);
    absl::StatusOr<DataShard> again =
        ParseDataFileName(DataFileName(shard->shard, shard->num_shards));
    FUZZ_CHECK(again.ok());
    FUZZ_CHECK(again->shard == shard->shard && again->num_shards == shard->num_shards);
  }

  if (ValidateModelName(s).ok()) FUZZ_CHECK(!s.empty() && s.size() <= kMaxModelNameBytes);
  if (ValidateFileName(s).ok() && s.substr(0, 5) == "data-") {
    FUZZ_CHECK(ParseDataFileName(s).ok());
  }
  if (size >= 8) {
    int64_t step = 0;
    for (size_t i = 0; i < 8; ++i)
      step = static_cast<int64_t>(static_cast<uint64_t>(step) << 8 | data[i]);
    FUZZ_CHECK(ValidateStep(step).ok() == (step >= 0));
  }
  return 0;
}

}  // namespace mgreg::fuzz
