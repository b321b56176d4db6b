#include "metagraph/checkpoint_name.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace mgreg {
namespace {

bool AllDigits(absl::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// If `s` ends with ".data-NNNNN-of-MMMMM", returns the length of that suffix, else 0.
size_t DataSuffixLength(absl::string_view s) {
  size_t dot = s.rfind(".data-");
  if (dot == absl::string_view::npos) return 0;
  if (!ParseDataFileName(s.substr(dot + 1)).ok()) return 0;
  return s.size() - dot;
}

}  // namespace

absl::StatusOr<CheckpointPrefix> ParseCheckpointPrefix(absl::string_view prefix) {
  if (prefix.empty()) {
    return absl::InvalidArgumentError(
        "checkpoint prefix is empty; give one such as 'dir/model.ckpt-1000'");
  }
  if (prefix.back() == '/') {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint prefix '", prefix,
        "' ends in '/'; give the prefix of the files in that directory, such as '",
        prefix, "model.ckpt-1000'"));
  }
  absl::string_view p = prefix;
  size_t data_suffix = DataSuffixLength(p);
  if (data_suffix > 0) {
    p.remove_suffix(data_suffix);
  } else if (absl::EndsWith(p, ".index")) {
    p.remove_suffix(6);
  } else if (absl::EndsWith(p, ".meta")) {
    p.remove_suffix(5);
  }

  CheckpointPrefix out;
  absl::string_view base = p;
  size_t slash = p.rfind('/');
  if (slash != absl::string_view::npos) {
    out.directory = std::string(slash == 0 ? p.substr(0, 1) : p.substr(0, slash));
    base = p.substr(slash + 1);
  }
  if (base.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint prefix '", prefix,
        "' has no file name before its suffix; give one such as 'dir/model.ckpt-1000'"));
  }

  size_t dash = base.rfind('-');
  if (dash != absl::string_view::npos && AllDigits(base.substr(dash + 1))) {
    if (dash == 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint prefix '", prefix,
          "' has nothing before '-<step>'; give a name such as 'model.ckpt", base, "'"));
    }
    int64_t step = 0;
    if (!absl::SimpleAtoi(base.substr(dash + 1), &step)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "checkpoint prefix '", prefix, "' has step ", base.substr(dash + 1),
          ", which does not fit in a signed 64-bit integer; use a smaller step"));
    }
    out.basename = std::string(base.substr(0, dash));
    out.step = step;
  } else {
    out.basename = std::string(base);
  }
  return out;
}

std::string CheckpointPrefixName(absl::string_view basename, int64_t step) {
  return absl::StrCat(basename, "-", step);
}

absl::StatusOr<DataShard> ParseDataFileName(absl::string_view name) {
  auto bad = [&]() {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", name,
        "' is not a data file name: expected 'data-NNNNN-of-MMMMM' (at least five digits "
        "each, NNNNN < MMMMM)"));
  };
  if (!absl::StartsWith(name, "data-")) return bad();
  absl::string_view rest = name.substr(5);
  size_t of = rest.find("-of-");
  if (of == absl::string_view::npos) return bad();
  absl::string_view shard_s = rest.substr(0, of);
  absl::string_view count_s = rest.substr(of + 4);
  if (shard_s.size() < 5 || count_s.size() < 5 || !AllDigits(shard_s) ||
      !AllDigits(count_s)) {
    return bad();
  }
  DataShard out;
  if (!absl::SimpleAtoi(shard_s, &out.shard) ||
      !absl::SimpleAtoi(count_s, &out.num_shards) || out.num_shards <= 0 ||
      out.shard >= out.num_shards) {
    return bad();
  }
  return out;
}

std::string DataFileName(int shard, int num_shards) {
  return absl::StrFormat("data-%05d-of-%05d", shard, num_shards);
}

}  // namespace mgreg
