#include "common/names.h"

#include <algorithm>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace mgreg {
namespace {

bool IsSegmentStart(char c) { return absl::ascii_isalnum(static_cast<unsigned char>(c)); }
bool IsSegmentChar(char c) {
  return IsSegmentStart(c) || c == '.' || c == '_' || c == '-';
}

}  // namespace

std::string QuoteInput(absl::string_view s) {
  constexpr size_t kMaxEchoed = 64;
  if (s.size() <= kMaxEchoed) return absl::StrCat("'", absl::CEscape(s), "'");
  return absl::StrCat("'", absl::CEscape(s.substr(0, kMaxEchoed)), "'...(", s.size(),
                      " bytes)");
}

absl::Status ValidateModelName(absl::string_view name) {
  if (name.empty()) {
    return absl::InvalidArgumentError(
        "model name is empty; give a name such as 'resnet'");
  }
  if (name.size() > kMaxModelNameBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "model name is ", name.size(), " bytes; the limit is ", kMaxModelNameBytes));
  }
  for (absl::string_view seg : absl::StrSplit(name, '/')) {
    if (seg.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "model name ", QuoteInput(name),
          " has an empty segment: no leading, trailing or doubled '/' allowed"));
    }
    if (!IsSegmentStart(seg[0])) {
      return absl::InvalidArgumentError(
          absl::StrCat("model name ", QuoteInput(name), ": segment ", QuoteInput(seg),
                       " must start with a letter or digit"));
    }
    for (char c : seg) {
      if (!IsSegmentChar(c)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "model name ", QuoteInput(name), " contains '",
            absl::CEscape(absl::string_view(&c, 1)),
            "'; use letters, digits, '.', '_', '-' and '/' between segments"));
      }
    }
  }
  return absl::OkStatus();
}

absl::Status ValidateStep(int64_t step) {
  if (step < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("step ", step, " is negative; steps are integers >= 0"));
  }
  return absl::OkStatus();
}

absl::Status ValidateFileName(absl::string_view name) {
  if (name == "index" || name == "meta") return absl::OkStatus();
  // data-NNNNN-of-MMMMM
  // Exactly five digits each: SimpleAtoi alone would also take "0000\f" or "+0001".
  auto digits = [](absl::string_view s) {
    return std::all_of(s.begin(), s.end(), [](char c) { return absl::ascii_isdigit(c); });
  };
  int64_t shard = 0, count = 0;
  if (name.size() == 19 && absl::StartsWith(name, "data-") &&
      name.substr(10, 4) == "-of-" && digits(name.substr(5, 5)) &&
      digits(name.substr(14, 5)) && absl::SimpleAtoi(name.substr(5, 5), &shard) &&
      absl::SimpleAtoi(name.substr(14, 5), &count) && shard >= 0 && count > 0 &&
      shard < count) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "file name ", QuoteInput(name),
      " is not a checkpoint file: expected 'index', 'meta' or 'data-NNNNN-of-MMMMM'"));
}

}  // namespace mgreg
