#include "metagraph/checkpoint_state.h"

#include <charconv>
#include <cmath>
#include <cstdlib>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "metagraph/text_format.h"

namespace mgreg {
namespace {

// Python's repr(float), which text_format.MessageToString uses for double fields: the
// shortest digits that round-trip, fixed notation with at least one fractional digit
// unless the decimal exponent is < -4 or >= 16, where it is "d[.ddd]e+XX".
std::string PythonFloatRepr(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v < 0 ? "-inf" : "inf";
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof(buf), v, std::chars_format::scientific);
  std::string sci(buf, res.ptr);  // e.g. "-1.673735799685766e+09"
  std::string sign;
  if (sci[0] == '-') {
    sign = "-";
    sci.erase(0, 1);
  }
  size_t e = sci.find('e');
  std::string mantissa = sci.substr(0, e);
  int exp10 = std::atoi(sci.c_str() + e + 1);
  std::string digits;
  for (char c : mantissa) {
    if (c != '.') digits.push_back(c);
  }
  const int n = static_cast<int>(digits.size());
  const int decpt = exp10 + 1;  // value = 0.<digits> * 10^decpt
  std::string out;
  if (decpt <= -4 || decpt > 16) {
    out = digits.substr(0, 1);
    if (n > 1) absl::StrAppend(&out, ".", digits.substr(1));
    const int shown = decpt - 1;
    absl::StrAppend(&out, "e", shown < 0 ? "-" : "+", std::abs(shown) < 10 ? "0" : "",
                    std::abs(shown));
  } else if (decpt <= 0) {
    out = absl::StrCat("0.", std::string(-decpt, '0'), digits);
  } else if (decpt < n) {
    out = absl::StrCat(digits.substr(0, decpt), ".", digits.substr(decpt));
  } else {
    out = absl::StrCat(digits, std::string(decpt - n, '0'), ".0");
  }
  return sign + out;
}

void AppendString(std::string* out, absl::string_view name, absl::string_view value) {
  absl::StrAppend(out, name, ": \"", absl::CEscape(value), "\"\n");
}

void AppendDouble(std::string* out, absl::string_view name, double value) {
  absl::StrAppend(out, name, ": ", PythonFloatRepr(value), "\n");
}

}  // namespace

absl::StatusOr<tensorflow::CheckpointState> ParseCheckpointState(absl::string_view text) {
  tensorflow::CheckpointState state;
  // TensorFlow reads the file with text_format.Merge.
  if (std::optional<TextFormatError> error =
          ParseTextFormat(text, &state, /*merge=*/true)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "checkpoint state is not a text-format CheckpointState: ", error->ToString()));
  }
  if (state.model_checkpoint_path().empty()) {
    return absl::InvalidArgumentError(
        "checkpoint state has no model_checkpoint_path; it must name the newest "
        "checkpoint prefix");
  }
  return state;
}

std::string FormatCheckpointState(const tensorflow::CheckpointState& state) {
  std::string out;
  if (!state.model_checkpoint_path().empty()) {
    AppendString(&out, "model_checkpoint_path", state.model_checkpoint_path());
  }
  for (const std::string& p : state.all_model_checkpoint_paths()) {
    AppendString(&out, "all_model_checkpoint_paths", p);
  }
  for (double t : state.all_model_checkpoint_timestamps()) {
    AppendDouble(&out, "all_model_checkpoint_timestamps", t);
  }
  // proto3 implicit presence: Python prints it only when non-zero (-0.0 counts as set).
  if (state.last_preserved_timestamp() != 0 ||
      std::signbit(state.last_preserved_timestamp())) {
    AppendDouble(&out, "last_preserved_timestamp", state.last_preserved_timestamp());
  }
  return out;
}

tensorflow::CheckpointState MakeCheckpointState(
    const std::vector<std::string>& prefixes_oldest_first,
    const std::vector<double>& timestamps,
    std::optional<double> last_preserved_timestamp) {
  tensorflow::CheckpointState state;
  if (!prefixes_oldest_first.empty()) {
    state.set_model_checkpoint_path(prefixes_oldest_first.back());
  }
  for (const std::string& p : prefixes_oldest_first)
    state.add_all_model_checkpoint_paths(p);
  for (double t : timestamps) state.add_all_model_checkpoint_timestamps(t);
  if (last_preserved_timestamp.has_value()) {
    state.set_last_preserved_timestamp(*last_preserved_timestamp);
  }
  return state;
}

}  // namespace mgreg
