// Validation of the registry's names (DESIGN §4), shared by server and client.
#ifndef MGREG_COMMON_NAMES_H_
#define MGREG_COMMON_NAMES_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace mgreg {

inline constexpr size_t kMaxModelNameBytes = 256;

// OK if `name` is one or more segments of [A-Za-z0-9][A-Za-z0-9._-]* joined by "/",
// at most 256 bytes. Returns INVALID_ARGUMENT saying what is wrong otherwise.
absl::Status ValidateModelName(absl::string_view name);

// `s` for an error message: C-escaped, cut after 64 bytes ("'...'...(5000 bytes)"), in
// quotes, so messages never carry raw control characters or kilobytes of input.
std::string QuoteInput(absl::string_view s);

// OK if `step` >= 0; INVALID_ARGUMENT otherwise.
absl::Status ValidateStep(int64_t step);

// OK if `name` is a checkpoint file name as stored: "index", "meta" or
// "data-NNNNN-of-MMMMM" with NNNNN < MMMMM. INVALID_ARGUMENT otherwise.
absl::Status ValidateFileName(absl::string_view name);

}  // namespace mgreg

#endif  // MGREG_COMMON_NAMES_H_
